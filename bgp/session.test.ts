// The session runtime over the in-memory transport: establishment and negotiation, collision
// resolution, hold and keepalive timers on a fake clock, NOTIFICATIONs for bad input, MD5
// mismatches, and reconnecting with backoff. No sockets, no root.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseIP } from '../api/index.js';
import { MemoryNetwork } from './memory-transport.js';
import { decodeMessage } from './message.js';
import { encodeOpen, buildOpen } from './open.js';
import { Framer } from './framer.js';
import { sessionConfig, type SessionStateName } from './fsm.js';
import { Session, type EstablishedInfo, type SessionLog } from './session.js';
import type { BgpSocket, Listener } from './transport.js';
import { encodeKeepalive } from './message.js';

const A = '198.18.0.1';
const B = '198.18.0.2';

interface Side {
  session: Session;
  listener: Listener;
  states: SessionStateName[];
  established: EstablishedInfo[];
  logs: string[];
}

const recordingLog = (logs: string[]): SessionLog => ({
  info: (_o, m) => logs.push(`info ${m}`),
  warn: (_o, m) => logs.push(`warn ${m}`),
  debug: (_o, m) => logs.push(`debug ${m}`),
});

async function side(net: MemoryNetwork, local: string, remote: string, opts: { asn: number; peerAS: number; id: string; passive?: boolean; password?: string; hold?: number; keepaliveMs?: number }): Promise<Side> {
  const logs: string[] = [];
  const states: SessionStateName[] = [];
  const established: EstablishedInfo[] = [];
  const transport = net.transport(local);
  const listener = await transport.listen({ port: 179 });
  const session = new Session({
    name: `to-${remote}`,
    peerAddress: remote,
    peerPort: 179,
    socket: opts.password === undefined ? {} : { password: opts.password },
    ...(opts.keepaliveMs === undefined ? {} : { keepaliveMs: opts.keepaliveMs }),
    fsm: sessionConfig({
      localOpen: buildOpen({ asn: opts.asn, holdTime: opts.hold ?? 9, bgpId: parseIP(opts.id)!, gracefulRestart: { restartState: false, notification: false, restartTime: 30, families: [] } }),
      peerAS: opts.peerAS,
      passive: opts.passive ?? false,
      connectRetry: { minMs: 1_000, maxMs: 8_000 },
      random: () => 0.5,
    }),
    transport,
    log: recordingLog(logs),
    handlers: {
      state: (s) => states.push(s),
      established: (i) => established.push(i),
      down: () => undefined,
      update: () => undefined,
      routeRefresh: () => undefined,
    },
  });
  listener.addPeer(remote, opts.password === undefined ? {} : { password: opts.password }, (s) => session.accept(s));
  return { session, listener, states, established, logs };
}

/** Lets queued deliveries and due timers run. */
const settle = async (ms = 0): Promise<void> => {
  await vi.advanceTimersByTimeAsync(ms);
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

/** A hand-driven peer: a raw connection that records the messages it receives. */
/** B listening passively, and A as raw bytes on a connection to it (for malformed input). */
async function passiveBWithRawA() {
  const net = new MemoryNetwork();
  const b = await side(net, B, A, { asn: 65002, peerAS: 65001, id: B, passive: true });
  b.session.start();
  return { b, raw: await rawPeer(net, A, B) };
}

function rawPeer(net: MemoryNetwork, from: string, to: string): Promise<{ socket: BgpSocket; received: ReturnType<typeof decodeMessage>[]; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    net.transport(from).connect({ peerAddress: to, peerPort: 179 }, (r) => {
      if (!r.ok) return reject(new Error(r.error));
      const framer = new Framer();
      const received: ReturnType<typeof decodeMessage>[] = [];
      let closed = false;
      r.socket.bind({
        data: (chunk) => framer.push(chunk).frames.forEach((f) => received.push(decodeMessage(f, { fourOctetAS: true }))),
        closed: () => (closed = true),
      });
      resolve({ socket: r.socket, received, closed: () => closed });
    });
  });
}

describe('Session over the in-memory transport', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('establishes with one side passive and negotiates the capabilities', async () => {
    const net = new MemoryNetwork();
    const a = await side(net, A, B, { asn: 65001, peerAS: 4200000002, id: A });
    const b = await side(net, B, A, { asn: 4200000002, peerAS: 65001, id: B, passive: true, hold: 30 });
    b.session.start();
    a.session.start();
    await settle();
    expect(a.session.established && b.session.established).toBe(true);
    expect(a.states).toEqual(['Connect', 'OpenSent', 'OpenConfirm', 'Established']);
    expect(b.states).toEqual(['Active', 'OpenSent', 'OpenConfirm', 'Established']);
    expect(a.established[0]).toMatchObject({ localAddress: A, remoteAddress: B, negotiated: { holdTime: 9, keepaliveTime: 3, peerAS: 4200000002, fourOctetAS: true, routeRefresh: true, families: [{ afi: 1, safi: 1 }, { afi: 2, safi: 1 }] } });
    expect(a.established[0]!.negotiated.peerGracefulRestart).toMatchObject({ restartTime: 30 });
    expect(net.between(A, B)).toHaveLength(2);
  });

  it('keeps the connection started by the higher BGP identifier when both sides connect at once', async () => {
    const net = new MemoryNetwork();
    const a = await side(net, A, B, { asn: 65001, peerAS: 65002, id: '198.18.0.1' });
    const b = await side(net, B, A, { asn: 65002, peerAS: 65001, id: '198.18.0.2' });
    a.session.start();
    b.session.start();
    await settle();
    expect(a.session.established && b.session.established).toBe(true);
    // One connection is left (two ends), the one B (the higher identifier) opened.
    const open = net.between(A, B);
    expect(open).toHaveLength(2);
    expect(a.session.state.connection).toBe('incoming');
    expect(b.session.state.connection).toBe('outgoing');
    expect([...a.logs, ...b.logs].filter((l) => l.includes('connection collision'))).not.toHaveLength(0);
    // It stays that way: keepalives flow, nothing flaps.
    await settle(60_000);
    expect(a.session.established && b.session.established).toBe(true);
    expect(a.states.filter((s) => s === 'Established')).toHaveLength(1);
  });

  it('sends KEEPALIVEs, and a peer that stops answering hits the hold timer (NOTIFICATION 4)', async () => {
    const net = new MemoryNetwork();
    const a = await side(net, A, B, { asn: 65001, peerAS: 65002, id: A });
    const b = await side(net, B, A, { asn: 65002, peerAS: 65001, id: B, passive: true });
    b.session.start();
    a.session.start();
    await settle();
    // 30 s of keepalives every 3 s keep the 9 s hold timer from expiring.
    await settle(30_000);
    expect(a.session.established && b.session.established).toBe(true);

    // A's end stops reading, as a stopped process would.
    const aEnd = net.between(A, B).find((s) => s.localAddress === A)!;
    aEnd.frozen = true;
    await settle(9_000);
    expect(a.session.state.name).toBe('Idle');
    expect(a.session.lastError).toBe('session Established -> Idle: hold timer expired');
    expect(a.logs).toContain('warn session Established -> Idle: hold timer expired');
    await settle();
    expect(b.session.state.name).not.toBe('Established');
    expect(b.logs.some((l) => l.includes('peer sent Hold Timer Expired'))).toBe(true);

    // Both come back by themselves after the backoff.
    await settle(10_000);
    expect(a.session.established && b.session.established).toBe(true);
  });

  it('sends KEEPALIVEs every third of the hold time, or more often when configured', async () => {
    const net = new MemoryNetwork();
    const a = await side(net, A, B, { asn: 65001, peerAS: 65002, id: A, keepaliveMs: 1_000 });
    const b = await side(net, B, A, { asn: 65002, peerAS: 65001, id: B, passive: true });
    b.session.start();
    a.session.start();
    await settle();
    const keepalives = (from: string): number => {
      const framer = new Framer();
      return net.sockets.filter((s) => s.localAddress === from).flatMap((s) => s.written.flatMap((w) => framer.push(w).frames)).filter((f) => f.type === 4).length;
    };
    const [ka, kb] = [keepalives(A), keepalives(B)];
    await settle(30_000);
    expect(keepalives(A) - ka).toBe(30);
    expect(keepalives(B) - kb).toBe(10);
  });

  it('answers a broken stream with a NOTIFICATION naming the error, and logs the reason', async () => {
    const { b, raw } = await passiveBWithRawA();
    raw.socket.write(encodeOpen(buildOpen({ asn: 65001, holdTime: 9, bgpId: parseIP(A)! })));
    raw.socket.write(encodeKeepalive());
    await settle();
    expect(b.session.established).toBe(true);
    // A header with a broken marker: the stream is out of sync (RFC 4271 section 6.1).
    raw.socket.write(Uint8Array.from([...new Array<number>(16).fill(0xfe), 0, 19, 4]));
    await settle();
    const last = raw.received.at(-1);
    expect(last).toMatchObject({ type: 'notification', notification: { code: 1, subcode: 1 } });
    expect(raw.closed()).toBe(true);
    expect(b.session.state.name).toBe('Idle');
    expect(b.logs).toContain('warn session Established -> Idle: bad_marker');
  });

  it('refuses a peer with the wrong AS (Bad Peer AS) and an OPEN before anything in Established', async () => {
    const { b, raw } = await passiveBWithRawA();
    raw.socket.write(encodeOpen(buildOpen({ asn: 65009, holdTime: 9, bgpId: parseIP(A)! })));
    await settle();
    expect(raw.received.map((m) => m.type)).toEqual(['open', 'notification']);
    expect(raw.received[1]).toMatchObject({ notification: { code: 2, subcode: 2 } });
    expect(b.session.lastError).toMatch(/peer announced AS 65009, expected AS 65001/);
  });

  it('never connects with mismatched MD5 keys, and keeps retrying with backoff', async () => {
    const net = new MemoryNetwork();
    const a = await side(net, A, B, { asn: 65001, peerAS: 65002, id: A, password: 'one' });
    const b = await side(net, B, A, { asn: 65002, peerAS: 65001, id: B, passive: true, password: 'two' });
    b.session.start();
    a.session.start();
    await settle(20_000);
    expect(a.session.established).toBe(false);
    expect(a.session.lastError).toBe(`session Connect -> Active: TCP connection failed: connect to ${B} port 179 failed: ETIMEDOUT`);
    // Initial try plus retries at 1 s, then 1, 2, 4, 8 s steps (jitter 0.5 → ×0.875): several, not a storm.
    const attempts = a.states.filter((s) => s === 'Connect').length;
    expect(attempts).toBeGreaterThan(2);
    expect(attempts).toBeLessThan(10);
    expect(a.logs.join('\n')).not.toMatch(/one|two/);
  });

  it('stop() sends a Cease with the shutdown communication and does not restart', async () => {
    const { b, raw } = await passiveBWithRawA();
    raw.socket.write(encodeOpen(buildOpen({ asn: 65001, holdTime: 9, bgpId: parseIP(A)! })));
    raw.socket.write(encodeKeepalive());
    await settle();
    b.session.stop('maintenance');
    await settle(60_000);
    expect(raw.received.at(-1)).toMatchObject({ type: 'notification', notification: { code: 6, subcode: 2, shutdownCommunication: 'maintenance' } });
    expect(b.session.state.name).toBe('Idle');
    expect(raw.closed()).toBe(true);
  });
});
