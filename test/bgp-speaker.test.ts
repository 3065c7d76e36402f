// Two Beacon speakers against each other over a veth between two lab hosts, each speaker in a
// child process inside its host (SpeakerProcess from bgp-peers.ts): IPv4 and IPv6 sessions with
// either side active, routes and withdrawals, TCP MD5 (RFC 2385) and GTSM (RFC 5082) enforced by
// the kernel, hold timer expiry against a stopped process, graceful restart, and collisions.
import { spawnSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PeerConfig, PeerStatus, Route } from '../bgp/index.js';
import { Lab, type LabHost } from '../lab/index.js';
import { SpeakerProcess } from './bgp-peers.js';
import { eventually } from './process.js';

const labUnavailable = process.getuid?.() !== 0 ? 'the BGP speaker tests need root (network namespaces)' : undefined;

const A4 = '198.18.100.1';
const B4 = '198.18.100.2';
const A6 = '2001:db8:100::1';
const B6 = '2001:db8:100::2';
const ASN_A = 65001;
const ASN_B = 4200000002; // a 4-octet AS on one side

/** The peer `a` sees (B) and the peer `b` sees (A), over one address family. */
function peersOf(family: 4 | 6, a: Partial<PeerConfig> = {}, b: Partial<PeerConfig> = {}): { a: PeerConfig; b: PeerConfig } {
  const [addrA, addrB] = family === 4 ? [A4, B4] : [A6, B6];
  const common = { holdTimeSeconds: 9, connectRetryTimeSeconds: 5, families: [family === 4 ? 'ipv4-unicast' : 'ipv6-unicast'] } as const;
  return {
    a: { name: `b${family}`, peerAddress: addrB, peerASN: ASN_B, localASN: ASN_A, localAddress: addrA, routerId: '198.18.100.1', ...common, families: [...common.families], ...a },
    b: { name: `a${family}`, peerAddress: addrA, peerASN: ASN_A, localASN: ASN_B, localAddress: addrB, routerId: '198.18.100.2', ...common, families: [...common.families], ...b },
  };
}

const routes = (...prefixes: string[]): Route[] => prefixes.map((prefix) => ({ prefix }));
const nstat = async (host: LabHost, counter: string): Promise<number> => {
  const r = await host.exec('nstat', ['-az', counter]);
  return Number(/\s(\d+)\s/.exec(r.stdout.split('\n').find((l) => l.startsWith(counter)) ?? '')?.[1] ?? 0);
};
/** Established TCP connections to or from port 179 inside the host. */
const bgpConnections = async (host: LabHost): Promise<number> => {
  const r = await host.exec('ss', ['-Htn', 'state', 'established', '( sport = :179 or dport = :179 )']);
  return r.stdout.split('\n').filter((l) => l.trim() !== '').length;
};

describe('two Beacon speakers over a veth', () => {
  let lab: Lab;
  let hostA: LabHost;
  let hostB: LabHost;
  const running: SpeakerProcess[] = [];
  let seq = 0;
  const speaker = async (host: LabHost): Promise<SpeakerProcess> => {
    const s = await SpeakerProcess.start(host, { listen: { port: 179 } }, `speaker-${host.name}-${++seq}`);
    running.push(s);
    return s;
  };
  const state = async (s: SpeakerProcess, peer: string): Promise<PeerStatus> => s.peer(peer);

  beforeAll(async () => {
    if (labUnavailable) throw new Error(labUnavailable);
    expect(spawnSync('nstat', ['-V']).status).toBe(0);
    lab = await Lab.create({ name: 'bgp-speaker' });
    hostA = await lab.host('a');
    hostB = await lab.host('b');
    await lab.link(hostA, hostB, { a: { addresses: [`${A4}/30`, `${A6}/64`] }, b: { addresses: [`${B4}/30`, `${B6}/64`] } });
  }, 60_000);

  afterEach(async () => {
    await Promise.all(running.splice(0).map((s) => s.stop()));
  });

  afterAll(async () => {
    await lab?.destroy({ graceMs: 1_000 }).catch(() => lab.destroySync());
  });

  it('IPv4 and IPv6 sessions, each side active once: routes, attributes and withdrawals', async () => {
    const [a, b] = await Promise.all([speaker(hostA), speaker(hostB)]);
    // IPv4: A connects, B only listens. IPv6: the other way round.
    const v4 = peersOf(4, {}, { passive: true });
    const v6 = peersOf(6, { passive: true }, {});
    await a.setPeers([v4.a, v6.a]);
    await b.setPeers([v4.b, v6.b]);
    await Promise.all([a.waitState('b4', 'established'), a.waitState('b6', 'established'), b.waitState('a4', 'established'), b.waitState('a6', 'established')]);

    await a.setRoutes('b4', [...routes('198.18.10.1/32', '198.18.10.2/32', '198.18.11.0/24'), { prefix: '198.18.12.0/24', communities: ['65000:7', 'no-export'], med: 5 }]);
    await b.setRoutes('a6', routes('2001:db8:10::1/128', '2001:db8:11::/48'));
    await eventually(async () => expect((await state(b, 'a4')).received).toBe(4), 10_000, 'B receives 4 IPv4 routes');
    await eventually(async () => expect((await state(a, 'b6')).received).toBe(2), 10_000, 'A receives 2 IPv6 routes');

    const adv = await a.advertised('b4');
    expect(adv.find((r) => r.prefix === '198.18.12.0/24')).toEqual({ prefix: '198.18.12.0/24', communities: ['65000:7', 'no-export'], med: 5, nextHop: A4, asPath: [ASN_A], family: 'ipv4-unicast' });
    expect((await b.advertised('a6')).map((r) => [r.prefix, r.nextHop, r.asPath])).toEqual([
      ['2001:db8:10::1/128', B6, [ASN_B]],
      ['2001:db8:11::/48', B6, [ASN_B]],
    ]);
    expect(await state(a, 'b4')).toMatchObject({ advertised: 4, families: ['ipv4-unicast'], peerASN: ASN_B });

    await a.setRoutes('b4', routes('198.18.10.2/32'));
    await b.setRoutes('a6', []);
    await eventually(async () => expect((await state(b, 'a4')).received).toBe(1), 10_000, 'B sees 3 withdrawals');
    await eventually(async () => expect((await state(a, 'b6')).received).toBe(0), 10_000, 'A sees the IPv6 withdrawals');
    expect(await state(a, 'b4')).toMatchObject({ state: 'established', advertised: 1 });
  }, 90_000);

  it('TCP MD5: matching keys establish, a wrong key is dropped by the kernel', async () => {
    const [a, b] = await Promise.all([speaker(hostA), speaker(hostB)]);
    const good = peersOf(4, { password: 'lab secret' }, { password: 'lab secret', passive: true });
    await a.setPeers([good.a]);
    await b.setPeers([good.b]);
    await Promise.all([a.waitState('b4', 'established'), b.waitState('a4', 'established')]);
    await a.setRoutes('b4', routes('198.18.20.0/24'));
    await eventually(async () => expect((await state(b, 'a4')).received).toBe(1), 10_000, 'route over the MD5 session');

    // A changed password resets the session; B still has the old key, so every SYN of A fails verification.
    const failuresBefore = await nstat(hostB, 'TcpExtTCPMD5Failure');
    await a.setPeers([{ ...good.a, password: 'wrong secret' }]);
    await eventually(async () => expect(await nstat(hostB, 'TcpExtTCPMD5Failure')).toBeGreaterThan(failuresBefore), 20_000, 'B drops segments with a bad MD5 signature');
    expect((await state(a, 'b4')).state).not.toBe('established');
    expect((await state(b, 'a4')).state).not.toBe('established');
    // Logs never carry the password.
    expect(a.process.logs()).not.toMatch(/secret/);
    expect(b.process.logs()).not.toMatch(/secret/);

    await a.setPeers([good.a]);
    await Promise.all([a.waitState('b4', 'established', 30_000), b.waitState('a4', 'established', 30_000)]);
  }, 90_000);

  it('GTSM: both sides with TTL 255 establish; a peer sending TTL 1 is dropped', async () => {
    const [a, b] = await Promise.all([speaker(hostA), speaker(hostB)]);
    const both = peersOf(6, { gtsm: true }, { gtsm: true, passive: true });
    await a.setPeers([both.a]);
    await b.setPeers([both.b]);
    await Promise.all([a.waitState('b6', 'established'), b.waitState('a6', 'established')]);

    // B requires TTL 255; A now sends with the eBGP default TTL 1.
    const dropsBefore = await nstat(hostB, 'TcpExtTCPMinTTLDrop');
    await a.setPeers([{ ...both.a, gtsm: false }]);
    await eventually(async () => expect(await nstat(hostB, 'TcpExtTCPMinTTLDrop')).toBeGreaterThan(dropsBefore), 20_000, 'B drops segments below its minimum TTL');
    expect((await state(b, 'a6')).state).not.toBe('established');
  }, 90_000);

  it('hold timer expiry when the peer process is frozen, and recovery when it resumes', async () => {
    const [a, b] = await Promise.all([speaker(hostA), speaker(hostB)]);
    const v4 = peersOf(4, { holdTimeSeconds: 3 }, { holdTimeSeconds: 3 });
    await a.setPeers([v4.a]);
    await b.setPeers([v4.b]);
    await Promise.all([a.waitState('b4', 'established'), b.waitState('a4', 'established')]);
    await b.setRoutes('a4', routes('198.18.30.0/24'));
    await eventually(async () => expect((await state(a, 'b4')).received).toBe(1), 10_000, 'route from B');

    expect(b.process.kill('SIGSTOP')).toBe(true);
    try {
      await eventually(async () => expect((await state(a, 'b4')).lastError).toMatch(/hold timer expired/), 15_000, 'A notices the hold timer');
      expect(await state(a, 'b4')).toMatchObject({ received: 0 });
      expect((await state(a, 'b4')).state).not.toBe('established');
    } finally {
      b.process.kill('SIGCONT');
    }
    await Promise.all([a.waitState('b4', 'established', 30_000), b.waitState('a4', 'established', 30_000)]);
    await eventually(async () => expect((await state(a, 'b4')).received).toBe(1), 10_000, 'route from B again');
  }, 90_000);

  it('reconnects after a restart; with graceful restart the peer keeps the routes meanwhile', async () => {
    const [a, b] = await Promise.all([speaker(hostA), speaker(hostB)]);
    const gr = { gracefulRestart: { enabled: true, restartTimeSeconds: 60 } };
    const v6 = peersOf(6, gr, gr);
    await a.setPeers([v6.a]);
    await b.setPeers([v6.b]);
    await Promise.all([a.waitState('b6', 'established'), b.waitState('a6', 'established')]);
    await b.setRoutes('a6', routes('2001:db8:40::/48', '2001:db8:41::/48'));
    await eventually(async () => expect((await state(a, 'b6')).received).toBe(2), 10_000, 'routes from B');

    // B restarts: its sessions drop without a NOTIFICATION; A keeps B's routes as stale.
    await b.close('restart');
    await eventually(async () => expect((await state(a, 'b6')).state).not.toBe('established'), 10_000, 'A sees the session go');
    expect((await state(a, 'b6')).received).toBe(2);

    // The new B announces only one of them: after its End-of-RIB the other stale route is gone.
    await b.restart({ listen: { port: 179 } });
    await b.setPeers([v6.b]);
    await b.setRoutes('a6', routes('2001:db8:40::/48'));
    await Promise.all([a.waitState('b6', 'established', 30_000), b.waitState('a6', 'established', 30_000)]);
    await eventually(async () => expect((await state(a, 'b6')).received).toBe(1), 10_000, 'stale route flushed by End-of-RIB');

    // A plain restart (a new process, no graceful restart) reconnects as well.
    await b.stop();
    const b2 = await speaker(hostB);
    await b2.setPeers([peersOf(6).b]);
    await b2.setRoutes('a6', routes('2001:db8:42::/48'));
    await Promise.all([a.waitState('b6', 'established', 30_000), b2.waitState('a6', 'established', 30_000)]);
    await eventually(async () => expect((await state(a, 'b6')).received).toBe(1), 10_000, 'route from the new B');
  }, 120_000);

  it('graceful shutdown withdraws the routes and ends the session with a Cease', async () => {
    const [a, b] = await Promise.all([speaker(hostA), speaker(hostB)]);
    const v4 = peersOf(4);
    await a.setPeers([v4.a]);
    await b.setPeers([v4.b]);
    await Promise.all([a.waitState('b4', 'established'), b.waitState('a4', 'established')]);
    await a.setRoutes('b4', routes('198.18.50.0/24', '198.18.51.0/24'));
    await eventually(async () => expect((await state(b, 'a4')).received).toBe(2), 10_000, 'routes from A');
    await a.close('graceful', 200);
    await eventually(async () => expect(await state(b, 'a4')).toMatchObject({ received: 0, lastError: expect.stringMatching(/Cease/) as unknown }), 10_000, 'B sees the withdrawals and the Cease');
  }, 60_000);

  it('both sides connecting at once end with one session over one connection', async () => {
    const [a, b] = await Promise.all([speaker(hostA), speaker(hostB)]);
    const v4 = peersOf(4);
    await Promise.all([a.setPeers([v4.a]), b.setPeers([v4.b])]);
    await Promise.all([a.waitState('b4', 'established'), b.waitState('a4', 'established')]);
    await a.setRoutes('b4', routes('198.18.60.0/24'));
    await eventually(async () => expect((await state(b, 'a4')).received).toBe(1), 10_000, 'route over the surviving connection');
    expect(await bgpConnections(hostA)).toBe(1);
    expect(await bgpConnections(hostB)).toBe(1);
  }, 60_000);
});
