// The speaker over the in-memory transport: Adj-RIB-Out diffing and dense packing, withdrawals,
// End-of-RIB, next-hop self, iBGP/eBGP attributes, AS4 towards a 2-octet peer, route refresh,
// graceful shutdown and graceful restart, configuration changes and bad input from one peer.
import { afterEach, describe, expect, it } from 'vitest';
import { parseIP } from '../api/index.js';
import { AS_TRANS, AttrType, MessageType } from './constants.js';
import { WellKnownCommunity } from './attributes.js';
import { Framer, type Frame } from './framer.js';
import { decodeMessage, encodeKeepalive } from './message.js';
import { MemoryNetwork } from './memory-transport.js';
import { buildOpen, encodeOpen } from './open.js';
import { Speaker, parseCanonicalIPv4Prefix, resolvePeer, type PeerConfig, type SpeakerLog } from './speaker.js';
import { parsePrefix } from './prefix.js';
import type { BgpSocket } from './transport.js';
import { decodeUpdate, type Update } from './update.js';

const A = '198.18.0.1';
const B = '198.18.0.2';
const C = '198.18.0.3';
const speakers: Speaker[] = [];
afterEach(async () => {
  for (const s of speakers.splice(0)) await s.close('immediate');
});

const lines: string[] = [];
const log: SpeakerLog = { info: (_o, m) => lines.push(m), warn: (_o, m) => lines.push(m), debug: (_o, m) => lines.push(m) };

async function speakerAt(net: MemoryNetwork, address: string): Promise<Speaker> {
  const s = await Speaker.start({ transport: net.transport(address), listen: { port: 179 }, log });
  speakers.push(s);
  return s;
}

const peer = (name: string, peerAddress: string, localASN: number, peerASN: number, routerId: string, extra: Partial<PeerConfig> = {}): PeerConfig => ({
  name,
  peerAddress,
  peerASN,
  localASN,
  routerId,
  holdTimeSeconds: 9,
  // Sessions reset by a test come back within a second.
  connectRetryTimeSeconds: 1,
  ...extra,
});

async function pair(a: Partial<PeerConfig> = {}, b: Partial<PeerConfig> = {}, asnB = 65002) {
  const net = new MemoryNetwork();
  const sa = await speakerAt(net, A);
  const sb = await speakerAt(net, B);
  sa.setPeers([peer('b', B, 65001, asnB, A, a)]);
  sb.setPeers([peer('a', A, asnB, 65001, B, { passive: true, ...b })]);
  await until(() => sa.peers()[0]!.state === 'established' && sb.peers()[0]!.state === 'established', 'established');
  return { net, sa, sb };
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1500; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 4));
  }
  throw new Error(`not reached: ${what}`);
}

/** Every message one end wrote, decoded (UPDATEs with the given 4-octet AS setting). */
function framesFrom(net: MemoryNetwork, from: string): Frame[] {
  return net.sockets.filter((s) => s.localAddress === from).flatMap((s) => {
    const framer = new Framer();
    return s.written.flatMap((w) => framer.push(w).frames);
  });
}

function wire(net: MemoryNetwork, from: string, fourOctetAS = true): { frames: Frame[]; updates: Update[]; endOfRib: number } {
  const frames = framesFrom(net, from);
  const updates: Update[] = [];
  let endOfRib = 0;
  for (const f of frames) {
    if (f.type !== MessageType.UPDATE) continue;
    const d = decodeUpdate(f.body, { fourOctetAS });
    if (d.action !== 'ok') throw new Error(`bad UPDATE: ${JSON.stringify(d, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
    if (d.endOfRib !== undefined) endOfRib++;
    else updates.push(d.update);
  }
  return { frames, updates, endOfRib };
}

const hosts = (n: number, base = 0): { prefix: string }[] => Array.from({ length: n }, (_, i) => ({ prefix: `198.18.${128 + ((base + i) >> 8)}.${(base + i) & 0xff}/32` }));

describe('Speaker', () => {
  it('packs many routes per UPDATE, sends End-of-RIB, and diffs later changes', async () => {
    const { net, sa, sb } = await pair();
    sa.setRoutes('b', hosts(2000));
    await until(() => sb.peers()[0]!.received === 2000, '2000 routes');
    let w = wire(net, A);
    // 2000 × 5 octets of NLRI in 4096-octet messages: 3 UPDATEs, not 2000.
    expect(w.updates).toHaveLength(3);
    expect(w.endOfRib).toBe(2);
    expect(w.updates[0]!.attributes).toMatchObject({ origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: parseIP(A) });

    // 15 withdrawn, 5 new, 1 with a new MED: one withdrawal message, one per attribute set.
    const next = [...hosts(1985, 10), { prefix: '198.18.200.0/24' }, { prefix: '198.18.200.1/32' }, { prefix: '198.18.200.2/32' }, { prefix: '198.18.200.3/32' }, { prefix: '198.18.200.4/32' }];
    next[0] = { ...next[0]!, med: 7 } as (typeof next)[number];
    sa.setRoutes('b', next);
    await until(() => sb.peers()[0]!.received === 1990, '1990 routes');
    w = wire(net, A);
    const later = w.updates.slice(3);
    expect(later).toHaveLength(3);
    expect(later[0]!.withdrawn).toHaveLength(15);
    expect(later.map((u) => u.nlri.length).sort((x, y) => x - y)).toEqual([0, 1, 5]);
    expect(later.find((u) => u.nlri.length === 1)!.attributes.med).toBe(7);
    expect(sa.peers()[0]).toMatchObject({ advertised: 1990, received: 0 });

    // Running the same desired state again sends nothing.
    sa.setRoutes('b', next);
    await new Promise((r) => setTimeout(r, 20));
    expect(wire(net, A).updates).toHaveLength(6);
  });

  it('routes set before the session go out whole when it comes up; refreshes and changes after that still diff correctly', async () => {
    const net = new MemoryNetwork();
    const sa = await speakerAt(net, A);
    const sb = await speakerAt(net, B);
    sa.setPeers([peer('b', B, 65001, 65002, A, { passive: true })]);
    sa.setRoutes('b', [...hosts(1500), { prefix: '198.18.200.0/24', med: 5 }]);
    // The initial sync is prepared while the peer is away (setImmediate after setRoutes).
    await new Promise((r) => setImmediate(r));
    sb.setPeers([peer('a', A, 65002, 65001, B)]);
    await until(() => sb.peers()[0]!.received === 1501, '1501 routes');
    let w = wire(net, A);
    expect(w.updates.map((u) => [u.nlri.length, u.attributes.med])).toEqual([[810, undefined], [690, undefined], [1, 5]]);
    expect(w.endOfRib).toBe(2);

    // A refresh re-sends everything and leaves the desired state as it was: repeating it sends nothing.
    sb.refresh('a');
    await until(() => wire(net, A).updates.length === 6, 'the routes again');
    sa.setRoutes('b', [...hosts(1500), { prefix: '198.18.200.0/24', med: 5 }]);
    await new Promise((r) => setTimeout(r, 20));
    expect(wire(net, A).updates).toHaveLength(6);

    // A change sends only the difference, and the peer's view follows.
    sa.setRoutes('b', hosts(1499));
    await until(() => sb.peers()[0]!.received === 1499, '1499 routes');
    w = wire(net, A);
    expect(w.updates.slice(6).map((u) => u.withdrawn.length)).toEqual([2]);
    expect(sa.peers()[0]).toMatchObject({ advertised: 1499 });
    expect(sa.advertised('b')).toHaveLength(1499);
  });

  it('IPv6 routes go in MP_REACH_NLRI with our IPv6 session address, or the configured next hop', async () => {
    const net = new MemoryNetwork();
    const [x, y] = ['2001:db8::1', '2001:db8::2'];
    const sx = await speakerAt(net, x);
    const sy = await speakerAt(net, y);
    sx.setPeers([peer('y', y, 65001, 65002, A)]);
    sy.setPeers([peer('x', x, 65002, 65001, B, { passive: true })]);
    sx.setRoutes('y', [{ prefix: '2001:db8:1::/48' }, { prefix: '198.18.9.0/24' }]);
    await until(() => sy.peers()[0]!.received === 1, 'one route');
    // The IPv4 route has no IPv4 next hop on an IPv6 session: not advertised, and said so.
    expect(sx.advertised('y')).toEqual([{ prefix: '2001:db8:1::/48', nextHop: x, asPath: [65001], family: 'ipv6-unicast' }]);
    expect(lines).toContain('1 route(s) not advertised: no next hop of their family (set nextHop in the peer configuration)');
    sx.setPeers([peer('y', y, 65001, 65002, A, { nextHop: { ipv4: '198.18.0.9' } })]);
    await until(() => sy.peers()[0]!.received === 2, 'both routes after the change');
    expect(sx.advertised('y').find((r) => r.family === 'ipv4-unicast')?.nextHop).toBe('198.18.0.9');
    expect(sy.receivedPrefixes('x')).toEqual(['198.18.9.0/24', '2001:db8:1::/48']);
  });

  it('iBGP: LOCAL_PREF (default 100) and an empty AS path; communities by name', async () => {
    const { net, sa } = await pair({}, {}, 65001);
    sa.setRoutes('b', [{ prefix: '198.18.5.0/24', communities: ['65001:10', 'no-export', 'local-as'], largeCommunities: ['65001:1:2'] }, { prefix: '198.18.6.0/24', localPreference: 200 }]);
    await until(() => wire(net, A).updates.length === 2, 'two UPDATEs');
    const [u1, u2] = wire(net, A).updates.sort((p, q) => (p.attributes.localPref ?? 0) - (q.attributes.localPref ?? 0));
    expect(u1!.attributes).toMatchObject({ asPath: [], localPref: 100, communities: [65001 * 65536 + 10, WellKnownCommunity.NO_EXPORT, WellKnownCommunity.NO_EXPORT_SUBCONFED], largeCommunities: [{ global: 65001, local1: 1, local2: 2 }] });
    expect(u2!.attributes).toMatchObject({ asPath: [], localPref: 200 });
    expect(sa.advertised('b').map((r) => r.localPreference)).toEqual([100, 200]);
  });

  it('towards a 2-octet peer: AS_TRANS in AS_PATH and the real AS in AS4_PATH (RFC 6793)', async () => {
    const net = new MemoryNetwork();
    const s = await speakerAt(net, B);
    s.setPeers([peer('old', A, 4200000001, 65001, B, { passive: true })]);
    s.setRoutes('old', [{ prefix: '198.18.7.0/24' }]);
    const raw = await connectRaw(net, A, B);
    const open = buildOpen({ asn: 65001, holdTime: 9, bgpId: parseIP(A)! });
    raw.write(encodeOpen({ ...open, capabilities: { ...open.capabilities, fourOctetAS: undefined } }));
    raw.write(encodeKeepalive());
    await until(() => wire(net, B, false).updates.length === 1, 'one UPDATE');
    const opens = framesFrom(net, B).filter((f) => f.type === MessageType.OPEN);
    expect(decodeMessage(opens[0]!, { fourOctetAS: true })).toMatchObject({ result: { open: { myAS: AS_TRANS, capabilities: { fourOctetAS: 4200000001 } } } });
    const update = wire(net, B, false).frames.find((f) => f.type === MessageType.UPDATE && f.body.length > 4)!;
    // Decoded as the old speaker reads it: AS_TRANS on the wire, merged with AS4_PATH to the real AS.
    expect(decodeUpdate(update.body, { fourOctetAS: false })).toMatchObject({ action: 'ok', update: { attributes: { asPath: [{ type: 2, asns: [4200000001] }] } } });
    const types = attributeTypes(update.body);
    expect(types).toContain(AttrType.AS4_PATH);
    expect(Buffer.from(update.body).includes(Buffer.from([2, 1, AS_TRANS >> 8, AS_TRANS & 0xff]))).toBe(true);
  });

  it('re-sends its Adj-RIB-Out on ROUTE-REFRESH and asks the peer for one', async () => {
    const { net, sa, sb } = await pair();
    sa.setRoutes('b', hosts(10));
    sb.setRoutes('a', hosts(3, 100));
    await until(() => sb.peers()[0]!.received === 10 && sa.peers()[0]!.received === 3, 'routes both ways');
    const before = wire(net, A).updates.length;
    sb.refresh('a');
    await until(() => wire(net, A).updates.length === before + 1, 'the routes again');
    expect(wire(net, B).frames.filter((f) => f.type === MessageType.ROUTE_REFRESH)).toHaveLength(2);
    expect(sb.peers()[0]!.received).toBe(10);
  });

  it('graceful shutdown: GRACEFUL_SHUTDOWN community, then withdrawals, then Cease', async () => {
    const { net, sa, sb } = await pair();
    sa.setRoutes('b', hosts(4));
    await until(() => sb.peers()[0]!.received === 4, 'routes');
    speakers.splice(speakers.indexOf(sa), 1);
    await sa.close('graceful', 10);
    const w = wire(net, A);
    const [gshut, withdraw] = w.updates.slice(1);
    expect(gshut!.attributes.communities).toEqual([WellKnownCommunity.GRACEFUL_SHUTDOWN]);
    expect(gshut!.nlri).toHaveLength(4);
    expect(withdraw!.withdrawn).toHaveLength(4);
    expect(decodeMessage(w.frames.at(-1)!, { fourOctetAS: true })).toMatchObject({ type: 'notification', notification: { code: 6, subcode: 2, shutdownCommunication: 'graceful shutdown' } });
    await until(() => sb.peers()[0]!.state !== 'established', 'B sees the session end');
    expect(sb.peers()[0]).toMatchObject({ received: 0, lastError: 'session Established -> Idle: peer sent Cease / Administrative Shutdown (6/2): "graceful shutdown"' });
  });

  it('graceful restart: the peer keeps our routes as stale until the End-of-RIB of the new session', async () => {
    const gr = { gracefulRestart: { enabled: true, restartTimeSeconds: 60 } };
    const { net, sa, sb } = await pair(gr, gr);
    sa.setRoutes('b', hosts(5));
    await until(() => sb.peers()[0]!.received === 5, 'routes');
    speakers.splice(speakers.indexOf(sa), 1);
    await sa.close('restart');
    await until(() => sb.peers()[0]!.state !== 'established', 'B sees the connection drop');
    expect(sb.peers()[0]!.received).toBe(5);
    // No NOTIFICATION went out.
    expect(wire(net, A).frames.filter((f) => f.type === MessageType.NOTIFICATION)).toHaveLength(0);

    const again = await speakerAt(net, A);
    again.setPeers([peer('b', B, 65001, 65002, A, gr)]);
    again.setRoutes('b', hosts(2));
    await until(() => again.peers()[0]!.state === 'established', 'back');
    await until(() => sb.peers()[0]!.received === 2, 'stale routes dropped after End-of-RIB');
  });

  it('a peer sending garbage gets a NOTIFICATION; the other peers are not affected', async () => {
    const net = new MemoryNetwork();
    const s = await speakerAt(net, B);
    const other = await speakerAt(net, C);
    s.setPeers([peer('bad', A, 65002, 65001, B, { passive: true }), peer('good', C, 65002, 65003, B)]);
    other.setPeers([peer('b', B, 65003, 65002, C, { passive: true })]);
    s.setRoutes('good', hosts(3));
    await until(() => other.peers()[0]!.received === 3, 'good peer has routes');
    const raw = await connectRaw(net, A, B);
    raw.write(encodeOpen(buildOpen({ asn: 65001, holdTime: 9, bgpId: parseIP(A)! })));
    raw.write(encodeKeepalive());
    await until(() => s.peers()[0]!.state === 'established', 'bad peer established');
    // An UPDATE whose withdrawn-routes length runs past the message: reset (RFC 7606 section 3).
    raw.write(Uint8Array.from([...new Array<number>(16).fill(0xff), 0, 23, 2, 0, 9, 0, 0]));
    await until(() => s.peers()[0]!.state !== 'established', 'bad peer reset');
    expect(s.peers()[0]!.lastError).toMatch(/withdrawn_length_overrun/);
    const answer = wire(net, B).frames.filter((f) => f.type === MessageType.NOTIFICATION);
    expect(decodeMessage(answer.at(-1)!, { fourOctetAS: true })).toMatchObject({ notification: { code: 3, subcode: 1 } });
    expect(s.peers()[1]).toMatchObject({ name: 'good', state: 'established', advertised: 3 });
    expect(other.peers()[0]).toMatchObject({ state: 'established', received: 3 });
  });

  it('setPeers is level-triggered: unchanged peers stay, changed ones reset, removed ones get a Cease', async () => {
    const { sa, sb } = await pair();
    sa.setRoutes('b', hosts(2));
    await until(() => sb.peers()[0]!.received === 2, 'routes');
    const uptimeState = sb.peers()[0]!.state;
    sa.setPeers([peer('b', B, 65001, 65002, A)]);
    expect(sb.peers()[0]!.state).toBe(uptimeState);
    // A new hold time resets the session; the routes come back with it.
    sa.setPeers([peer('b', B, 65001, 65002, A, { holdTimeSeconds: 30 })]);
    await until(() => sb.peers()[0]!.lastError?.includes('peer configuration changed') === true, 'B told why');
    await until(() => sa.peers()[0]!.state === 'established' && sb.peers()[0]!.received === 2, 'back with routes');
    sa.setPeers([]);
    expect(sa.peers()).toEqual([]);
    await until(() => sb.peers()[0]!.lastError?.includes('peer de-configured') === true, 'B told the peer is gone');
  });

  it('reports bad configuration and bad routes without dropping the good ones', async () => {
    const { sa, sb } = await pair();
    const errors: string[] = [];
    sa.events.on('error', (_name: string, reason: string) => errors.push(reason));
    sa.setRoutes('b', [{ prefix: '198.18.1.0/24' }, { prefix: '198.18.1.1/24' }, { prefix: '198.18.2.0/24', communities: ['nope'] }]);
    await until(() => sb.peers()[0]!.received === 1, 'the good route');
    expect(errors).toEqual(['2 route(s) ignored, first: bad prefix "198.18.1.1/24"']);
    // 1100 communities do not fit in one UPDATE: those routes stay out, the rest go.
    const many = Array.from({ length: 1100 }, (_, i) => `65000:${i}`);
    sa.setRoutes('b', [{ prefix: '198.18.1.0/24' }, { prefix: '198.18.3.0/24', communities: many }, { prefix: '198.18.4.0/24' }]);
    await until(() => sb.peers()[0]!.received === 2, 'the encodable routes');
    expect(errors[1]).toMatch(/^1 route\(s\) not advertised: /);
    expect(sa.advertised('b').map((r) => r.prefix)).toEqual(['198.18.1.0/24', '198.18.4.0/24']);
    expect(resolvePeer(peer('x', 'nowhere', 1, 2, A))).toBe('bad peer address "nowhere"');
    expect(resolvePeer(peer('x', B, 1, 2, A, { holdTimeSeconds: 2 }))).toBe('hold time 2 must be 0 or 3..65535');
    expect(resolvePeer(peer('x', B, 1, 2, A, { password: 'x'.repeat(81) }))).toBe('the TCP MD5 password is longer than 80 octets');
    const p = resolvePeer(peer('x', B, 1, 2, A, { password: 'hunter2', gtsm: true }));
    expect(typeof p === 'object' && p.fingerprint).not.toMatch(/hunter2/);
    expect(typeof p === 'object' && p.socket).toEqual({ password: 'hunter2', ttl: 255, minTtl: 255 });
    expect(() => sa.setRoutes('nobody', [])).toThrow('no BGP peer named nobody');
  });
});

function connectRaw(net: MemoryNetwork, from: string, to: string): Promise<BgpSocket> {
  return new Promise((resolve, reject) => {
    net.transport(from).connect({ peerAddress: to, peerPort: 179 }, (r) => {
      if (!r.ok) return reject(new Error(r.error));
      r.socket.bind({ data: () => undefined, closed: () => undefined });
      resolve(r.socket);
    });
  });
}

/** Attribute type codes of an UPDATE body, in order. */
function attributeTypes(body: Uint8Array): number[] {
  const withdrawn = (body[0]! << 8) | body[1]!;
  let i = 4 + withdrawn;
  const end = i + ((body[2 + withdrawn]! << 8) | body[3 + withdrawn]!);
  const types: number[] = [];
  while (i < end) {
    const flags = body[i]!;
    types.push(body[i + 1]!);
    const extended = (flags & 0x10) !== 0;
    const len = extended ? (body[i + 2]! << 8) | body[i + 3]! : body[i + 2]!;
    i += (extended ? 4 : 3) + len;
  }
  return types;
}

describe('parseCanonicalIPv4Prefix', () => {
  it('reads what parsePrefix reads for canonical IPv4 text, and leaves everything else to it', () => {
    const out = { value: 0, length: 0 };
    for (const text of ['198.18.0.1/32', '198.18.0.0/15', '0.0.0.0/0', '255.255.255.255', '240.0.0.0/8', '198.18.7.128/25']) {
      expect(parseCanonicalIPv4Prefix(text, out), text).toBe(true);
      const p = parsePrefix(text)!;
      expect([BigInt(out.value), out.length], text).toEqual([p.value, p.length]);
    }
    for (const text of ['198.18.0.01/32', '198.18.0.1/24', '256.0.0.0/8', '198.18.0/24', '198.18.0.0/033', '198.18.0.0/33', '198.18.0.0/', '198.18.0.0/24 ', '2001:db8::/32', '1.2.3.4.5', '']) {
      expect(parseCanonicalIPv4Prefix(text, out), text).toBe(false);
    }
  });
});
