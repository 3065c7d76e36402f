// Beacon's BGP speaker against BIRD 2, FRR 8, GoBGP 3 and ExaBGP 4 on one lab LAN. Every check
// reads the peer's own table through its own CLI: what a real router holds is the only proof.
//
//   peer     AS        Beacon's side            session(s)
//   BIRD     65001     AS 65010, eBGP           v4: Beacon active, TCP MD5, graceful restart; v6: Beacon passive
//   FRR      65010     AS 65010, iBGP           v4: Beacon active, TCP MD5; v6: Beacon passive
//   GoBGP    65003     AS 65010, eBGP           one v4 session carrying IPv4 and IPv6 routes, Beacon passive
//   ExaBGP   65004     AS 4200000001, eBGP      ExaBGP without 4-octet AS support (sees AS_TRANS), Beacon active
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PeerConfig, Route, SpeakerOptions } from '../bgp/index.js';
import { Lab } from '../lab/index.js';
import { numericCommunity, PeerDaemon, SpeakerProcess, type BirdDaemon, type ExabgpDaemon, type Family, type FrrDaemon, type GobgpDaemon, type ReceivedRoute } from './bgp-peers.js';
import { eventually, sleep } from './process.js';

const ip = {
  beacon: ['198.18.20.10', '2001:db8:20::10'],
  bird: ['198.18.20.1', '2001:db8:20::1'],
  frr: ['198.18.20.2', '2001:db8:20::2'],
  gobgp: ['198.18.20.3', '2001:db8:20::3'],
  exabgp: ['198.18.20.4', '2001:db8:20::4'],
} as const;
const [beacon4, beacon6] = ip.beacon;
const BEACON_AS = 65010;
const BEACON_AS4 = 4_200_000_001;
const AS_TRANS = 23456;

const timers = { routerId: beacon4, holdTimeSeconds: 6, keepAliveTimeSeconds: 2, connectRetryTimeSeconds: 2 };
const peerConfigs = (passwords: { bird?: string; frr?: string } = {}): PeerConfig[] => [
  { name: 'bird-v4', peerAddress: ip.bird[0], peerASN: 65001, localASN: BEACON_AS, localAddress: beacon4, password: passwords.bird ?? 'bird-md5', gracefulRestart: { enabled: true, restartTimeSeconds: 60 }, families: ['ipv4-unicast'], ...timers },
  { name: 'bird-v6', peerAddress: ip.bird[1], peerASN: 65001, localASN: BEACON_AS, localAddress: beacon6, passive: true, families: ['ipv6-unicast'], ...timers },
  { name: 'frr-v4', peerAddress: ip.frr[0], peerASN: BEACON_AS, localASN: BEACON_AS, localAddress: beacon4, password: passwords.frr ?? 'frr-md5', families: ['ipv4-unicast'], ...timers },
  { name: 'frr-v6', peerAddress: ip.frr[1], peerASN: BEACON_AS, localASN: BEACON_AS, localAddress: beacon6, passive: true, families: ['ipv6-unicast'], ...timers },
  { name: 'gobgp', peerAddress: ip.gobgp[0], peerASN: 65003, localASN: BEACON_AS, localAddress: beacon4, passive: true, families: ['ipv4-unicast', 'ipv6-unicast'], nextHop: { ipv6: beacon6 }, ...timers },
  { name: 'exabgp', peerAddress: ip.exabgp[0], peerASN: 65004, localASN: BEACON_AS4, localAddress: beacon4, families: ['ipv4-unicast'], ...timers },
];
const speakerOptions: SpeakerOptions = { listen: { port: 179, addresses: [beacon4, beacon6] } };

const v4Route: Route = { prefix: '198.18.210.1/32', communities: ['65000:100', 'no-export', 'blackhole', 'no-peer'], largeCommunities: ['65010:1:2'], med: 10, localPreference: 250 };
const v4Second: Route = { prefix: '198.18.210.2/32' };
const v6Route: Route = { prefix: '2001:db8:210::1/128', communities: ['65000:600', 'no-advertise'], largeCommunities: ['4200000001:7:8'], localPreference: 250 };
const numeric = (r: Route) => (r.communities ?? []).map(numericCommunity).sort();
const sorted = (r: ReceivedRoute | undefined) => r && { ...r, communities: [...r.communities].sort() };

describe('Beacon BGP speaker against BIRD, FRR, GoBGP and ExaBGP', () => {
  let lab: Lab;
  let beacon: SpeakerProcess;
  let bird: BirdDaemon;
  let frr: FrrDaemon;
  let gobgp: GobgpDaemon;
  let exabgp: ExabgpDaemon;
  const daemons = () => [bird, frr, gobgp, exabgp];

  /** What each Beacon peer should advertise: its families' share of `v4` and `v6`. */
  const advertise = async (v4: Route[], v6: Route[], only?: string) => {
    for (const p of peerConfigs()) {
      if (only !== undefined && p.name !== only) continue;
      await beacon.setRoutes(p.name, p.families!.flatMap((f: Family) => (f === 'ipv4-unicast' ? v4 : v6)));
    }
  };
  const allEstablished = (timeoutMs = 30_000) =>
    eventually(async () => {
      const down = (await beacon.peers()).filter((p) => p.state !== 'established');
      if (down.length > 0) throw new Error(down.map((p) => `${p.name}: ${p.state} ${p.lastError ?? ''}`).join('; '));
    }, timeoutMs, 'every Beacon session established');
  /** The route `prefix` from Beacon in `daemon`'s table, once it is there. */
  const routeAt = (daemon: PeerDaemon, from: string, prefix: string, timeoutMs = 15_000) =>
    eventually(async () => {
      const r = (await daemon.routes()).find((x) => x.from === from && x.prefix === prefix);
      if (!r) throw new Error(`${daemon.name} has no ${prefix} from ${from}`);
      return sorted(r)!;
    }, timeoutMs, `${prefix} at ${daemon.name}`);
  const absentAt = (daemon: PeerDaemon, from: string, prefix: string, timeoutMs = 15_000) =>
    eventually(async () => expect((await daemon.routes()).filter((x) => x.from === from && x.prefix === prefix)).toEqual([]), timeoutMs, `${prefix} gone from ${daemon.name}`);

  beforeAll(async () => {
    lab = await Lab.create({ name: 'bgp-interop' });
    const lan = await lab.bridge('lan');
    const host = async (name: keyof typeof ip) => {
      const h = await lab.host(name);
      await lab.attach(h, lan, { addresses: [`${ip[name][0]}/24`, `${ip[name][1]}/64`] });
      return h;
    };
    const [hb, hbird, hfrr, hgobgp, hexabgp] = await Promise.all([host('beacon'), host('bird'), host('frr'), host('gobgp'), host('exabgp')]);
    [bird, frr, gobgp, exabgp, beacon] = await Promise.all([
      PeerDaemon.start('bird', hbird, {
        localASN: 65001,
        routerId: ip.bird[0],
        localAddresses: [...ip.bird],
        neighbours: [
          { address: beacon4, asn: BEACON_AS, passive: true, password: 'bird-md5', gracefulRestart: true },
          { address: beacon6, asn: BEACON_AS },
        ],
        originate: [{ prefix: '198.18.221.1/32' }, { prefix: '2001:db8:221::1/128' }],
      }),
      PeerDaemon.start('frr', hfrr, {
        localASN: BEACON_AS,
        routerId: ip.frr[0],
        localAddresses: [...ip.frr],
        neighbours: [
          { address: beacon4, asn: BEACON_AS, passive: true, password: 'frr-md5' },
          { address: beacon6, asn: BEACON_AS },
        ],
        originate: [{ prefix: '198.18.222.1/32' }, { prefix: '2001:db8:222::1/128' }],
      }),
      PeerDaemon.start('gobgp', hgobgp, {
        localASN: 65003,
        routerId: ip.gobgp[0],
        localAddresses: [...ip.gobgp],
        neighbours: [{ address: beacon4, asn: BEACON_AS, families: ['ipv4-unicast', 'ipv6-unicast'] }],
        originate: [{ prefix: '198.18.223.1/32' }],
      }),
      PeerDaemon.start('exabgp', hexabgp, {
        localASN: 65004,
        routerId: ip.exabgp[0],
        localAddresses: [...ip.exabgp],
        // A 2-octet-only speaker sees a 4-octet AS as AS_TRANS (RFC 6793 section 4.2.2).
        neighbours: [{ address: beacon4, asn: AS_TRANS, asn4: false, passive: true }],
        originate: [{ prefix: '198.18.224.1/32' }],
      }),
      SpeakerProcess.start(hb, speakerOptions),
    ]);
    await beacon.setPeers(peerConfigs());
    await advertise([v4Route, v4Second], [v6Route]);
  }, 90_000);

  afterAll(async () => {
    await beacon?.stop();
    await lab?.destroy();
  });

  it('establishes every session, Beacon active (BIRD v4, FRR v4, ExaBGP) and passive (BIRD v6, FRR v6, GoBGP)', async () => {
    await allEstablished();
    for (const a of ip.beacon) {
      await bird.waitEstablished(a);
      await frr.waitEstablished(a);
    }
    await gobgp.waitEstablished(beacon4);
    await exabgp.waitEstablished(beacon4);
    // The peers' own routes reach Beacon (counted, not installed).
    const expected: Record<string, string> = { 'bird-v4': '198.18.221.1/32', 'bird-v6': '2001:db8:221::1/128', 'frr-v4': '198.18.222.1/32', 'frr-v6': '2001:db8:222::1/128', gobgp: '198.18.223.1/32', exabgp: '198.18.224.1/32' };
    for (const [peer, prefix] of Object.entries(expected)) await eventually(async () => expect(await beacon.receivedPrefixes(peer)).toContain(prefix));
    // RFC 4724 section 2: End-of-RIB after the initial routes.
    await eventually(() => expect(exabgp.endOfRib(beacon4)).toContain('ipv4 unicast'));
  });

  it('IPv4 and IPv6 routes arrive with next hop, AS path, standard, well-known and large communities, MED', async () => {
    const v4 = { prefix: v4Route.prefix, nextHop: beacon4, communities: numeric(v4Route), largeCommunities: v4Route.largeCommunities, med: 10 };
    const v6 = { prefix: v6Route.prefix, communities: numeric(v6Route), largeCommunities: v6Route.largeCommunities };
    expect(await routeAt(bird, beacon4, v4Route.prefix)).toMatchObject({ ...v4, asPath: [BEACON_AS] });
    expect(await routeAt(bird, beacon6, v6Route.prefix)).toMatchObject({ ...v6, nextHop: beacon6, asPath: [BEACON_AS] });
    expect(await routeAt(gobgp, beacon4, v4Route.prefix)).toMatchObject({ ...v4, asPath: [BEACON_AS] });
    // An IPv6 route over the IPv4 session: the configured IPv6 next hop (RFC 4760).
    expect(await routeAt(gobgp, beacon4, v6Route.prefix)).toMatchObject({ ...v6, nextHop: beacon6, asPath: [BEACON_AS] });
    expect(await routeAt(frr, beacon4, v4Route.prefix)).toMatchObject({ ...v4, asPath: [] });
    expect(await routeAt(frr, beacon6, v6Route.prefix)).toMatchObject({ ...v6, nextHop: beacon6, asPath: [] });
    expect(await routeAt(exabgp, beacon4, v4Route.prefix)).toMatchObject({ ...v4 });
    expect(await routeAt(bird, beacon4, v4Second.prefix)).toMatchObject({ nextHop: beacon4, communities: [], largeCommunities: [] });
  });

  it('local preference goes to the iBGP peer (FRR) only, never to eBGP peers (RFC 4271 section 5.1.5)', async () => {
    expect((await routeAt(frr, beacon4, v4Route.prefix)).localPreference).toBe(250);
    expect((await routeAt(frr, beacon6, v6Route.prefix)).localPreference).toBe(250);
    expect((await routeAt(frr, beacon4, v4Second.prefix)).localPreference).toBe(100);
    expect((await routeAt(gobgp, beacon4, v4Route.prefix)).localPreference).toBeUndefined();
    expect((await routeAt(exabgp, beacon4, v4Route.prefix)).localPreference).toBeUndefined();
    expect((await beacon.advertised('frr-v4')).find((r) => r.prefix === v4Route.prefix)).toMatchObject({ localPreference: 250, asPath: [], nextHop: beacon4 });
    expect((await beacon.advertised('gobgp')).find((r) => r.prefix === v4Route.prefix)?.localPreference).toBeUndefined();
  });

  it('a 2-octet-AS peer gets AS_TRANS in the OPEN and the AS_PATH, the real AS in AS4_PATH (RFC 6793 section 4.2.2)', async () => {
    // ExaBGP was configured with peer-as 23456: the session is up, so Beacon's OPEN carried AS_TRANS.
    await exabgp.waitEstablished(beacon4);
    // ExaBGP merges AS4_PATH back into the path it reports…
    expect((await routeAt(exabgp, beacon4, v4Route.prefix)).asPath).toEqual([BEACON_AS4]);
    // …and the wire shows how: AS_PATH with 2-octet AS_TRANS, AS4_PATH with the 4-octet AS (both AS_SEQUENCE of one).
    const withPath = exabgp.rawAttributes(beacon4).filter((a) => a.has(2));
    expect(withPath.length).toBeGreaterThan(0);
    for (const attrs of withPath) {
      expect(attrs.get(2)!.toString('hex')).toBe('02015ba0');
      expect(attrs.get(17)?.toString('hex')).toBe('0201fa56ea01');
    }
  });

  it('withdraws routes taken out of the desired set from every peer', async () => {
    await advertise([v4Route], [v6Route]);
    for (const d of [bird, frr, gobgp, exabgp]) await absentAt(d, beacon4, v4Second.prefix);
    await advertise([v4Route], []);
    for (const [d, from] of [[bird, beacon6], [frr, beacon6], [gobgp, beacon4]] as const) await absentAt(d, from, v6Route.prefix);
    // What stays is untouched.
    for (const d of daemons()) await routeAt(d, beacon4, v4Route.prefix);
    await advertise([v4Route], [v6Route]);
    await routeAt(bird, beacon6, v6Route.prefix);
  });

  it('route refresh: Beacon asks the peers (RFC 2918), and answers when they ask', async () => {
    const before = {
      frr: (await frr.session(beacon4)).refreshesReceived ?? 0,
      gobgp: (await gobgp.session(beacon4)).refreshesReceived ?? 0,
      exabgp: (await exabgp.session(beacon4)).refreshesReceived ?? 0,
    };
    for (const p of ['frr-v4', 'gobgp', 'exabgp']) await beacon.refresh(p);
    await eventually(async () => expect((await frr.session(beacon4)).refreshesReceived).toBeGreaterThan(before.frr));
    await eventually(async () => expect((await gobgp.session(beacon4)).refreshesReceived).toBeGreaterThan(before.gobgp));
    await eventually(async () => expect((await exabgp.session(beacon4)).refreshesReceived).toBeGreaterThan(before.exabgp));

    // Each peer asks Beacon for its IPv4 routes again: a fresh UPDATE arrives, the table is unchanged.
    // (gobgp has no command that sends ROUTE-REFRESH.)
    for (const d of [bird, frr, exabgp]) {
      const updates = (await d.session(beacon4)).updatesReceived;
      await d.requestRefresh(beacon4, 'ipv4-unicast');
      await eventually(async () => expect((await d.session(beacon4)).updatesReceived, d.name).toBeGreaterThan(updates));
      await routeAt(d, beacon4, v4Route.prefix);
    }
  });

  it('TCP MD5: a wrong password keeps the BIRD and FRR sessions down; the right one brings them back', async () => {
    await beacon.setPeers(peerConfigs({ bird: 'wrong', frr: 'wrong' }));
    // The peers drop segments without the right signature (RFC 2385 section 2.0): no session for a while.
    await eventually(async () => expect((await bird.session(beacon4)).established || (await frr.session(beacon4)).established).toBe(false), 15_000);
    for (let i = 0; i < 8; i++) {
      await sleep(1_000);
      const states = (await beacon.peers()).filter((p) => p.name === 'bird-v4' || p.name === 'frr-v4').map((p) => p.state);
      expect(states).not.toContain('established');
      expect((await bird.session(beacon4)).established).toBe(false);
      expect((await frr.session(beacon4)).established).toBe(false);
    }
    await beacon.setPeers(peerConfigs());
    await allEstablished();
    await advertise([v4Route], [v6Route], 'bird-v4');
    await routeAt(bird, beacon4, v4Route.prefix);
    await routeAt(frr, beacon4, v4Route.prefix);
  }, 60_000);

  it('hold timer: Beacon ends the sessions of frozen peers, and they return once thawed', async () => {
    await allEstablished();
    for (const d of daemons()) d.freeze();
    try {
      await eventually(async () => {
        const peers = await beacon.peers();
        for (const p of peers) {
          if (p.state === 'established') throw new Error(`${p.name} still established`);
          expect(p.lastError, p.name).toMatch(/hold/i);
        }
      }, 20_000, 'every session down with hold timer expired');
    } finally {
      for (const d of daemons()) d.thaw();
    }
    await allEstablished(40_000);
    for (const d of daemons()) await routeAt(d, beacon4, v4Route.prefix);
  }, 90_000);

  it('reconnects after every peer restarts, and advertises its routes again', async () => {
    await Promise.all(daemons().map((d) => d.restart()));
    await allEstablished(40_000);
    for (const d of daemons()) await routeAt(d, beacon4, v4Route.prefix);
    await routeAt(bird, beacon6, v6Route.prefix);
    await routeAt(gobgp, beacon4, v6Route.prefix);
  }, 90_000);

  it('graceful restart: BIRD keeps the routes while the speaker restarts; End-of-RIB clears the stale ones', async () => {
    const kept = { prefix: '198.18.210.5/32' };
    const dropped = { prefix: '198.18.210.6/32' };
    const added = { prefix: '198.18.210.7/32' };
    await beacon.setRoutes('bird-v4', [v4Route, kept, dropped]);
    await routeAt(bird, beacon4, dropped.prefix);

    await beacon.close('restart');
    await eventually(async () => expect((await bird.session(beacon4)).established).toBe(false), 20_000);
    // RFC 4724 section 4.2: the session is gone, the routes stay (stale) for the restart time.
    const during = (await bird.routes('ipv4-unicast')).filter((r) => r.from === beacon4).map((r) => r.prefix);
    expect(during).toEqual(expect.arrayContaining([v4Route.prefix, kept.prefix, dropped.prefix]));

    await beacon.restart(speakerOptions);
    await beacon.setPeers(peerConfigs());
    await beacon.setRoutes('bird-v4', [v4Route, kept, added]);
    await bird.waitEstablished(beacon4, 30_000);
    await routeAt(bird, beacon4, added.prefix);
    // After End-of-RIB, what the new speaker did not send again is gone; the rest stays.
    await absentAt(bird, beacon4, dropped.prefix);
    await routeAt(bird, beacon4, kept.prefix);
  }, 90_000);
});
