// The BGP peer harness against itself: BIRD, FRR, GoBGP and ExaBGP on one lab LAN, talking to each
// other, read back through their own CLIs. This proves the harness before Beacon's speaker meets it.
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../lab/index.js';
import { BirdDaemon, ExabgpDaemon, FrrDaemon, GobgpDaemon, PeerDaemon, hostPrefixes, type ReceivedRoute } from './bgp-peers.js';
import { eventually } from './process.js';

const addr = { bird: ['198.18.10.1', '2001:db8:10::1'], gobgp: ['198.18.10.2', '2001:db8:10::2'], frr: ['198.18.10.3', '2001:db8:10::3'], exabgp: ['198.18.10.4', '2001:db8:10::4'] } as const;
const running = (pid: number) => existsSync(`/proc/${pid}`) && !/^\d+ \(.*\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
const find = (routes: ReceivedRoute[], prefix: string, from: string) => routes.find((r) => r.prefix === prefix && r.from === from);

describe('BGP peer harness: real daemons against each other', () => {
  let lab: Lab;
  let bird: BirdDaemon;
  let gobgp: GobgpDaemon;
  let frr: FrrDaemon;
  let exabgp: ExabgpDaemon;

  beforeAll(async () => {
    lab = await Lab.create({ name: 'bgp-peers' });
    const lan = await lab.bridge('lan');
    const hosts = Object.fromEntries(
      await Promise.all(
        (Object.keys(addr) as (keyof typeof addr)[]).map(async (name) => {
          const h = await lab.host(name);
          await lab.attach(h, lan, { addresses: [`${addr[name][0]}/24`, `${addr[name][1]}/64`] });
          return [name, h] as const;
        }),
      ),
    );
    // BIRD (AS 65001) in the middle: eBGP to GoBGP (v4 with a 3 s hold time, v6), iBGP to FRR
    // (v4 with TCP MD5, v6 multihop), eBGP to ExaBGP without 4-octet AS numbers.
    [bird, gobgp, frr, exabgp] = await Promise.all([
      PeerDaemon.start('bird', hosts.bird!, {
        localASN: 65001,
        routerId: addr.bird[0],
        localAddresses: [...addr.bird],
        neighbours: [
          { address: addr.gobgp[0], asn: 65002, holdTimeSeconds: 3 },
          { address: addr.gobgp[1], asn: 65002 },
          { address: addr.frr[0], asn: 65001, password: 'lab-secret' },
          { address: addr.frr[1], asn: 65001, multihop: 2 },
          { address: addr.exabgp[0], asn: 65004, asn4: false },
        ],
        originate: [
          { prefix: '198.18.200.1/32', communities: ['65000:100', 'no-export'], largeCommunities: ['1:2:3'] },
          { prefix: '2001:db8:200::1/128', communities: ['65000:101'] },
        ],
      }),
      PeerDaemon.start('gobgp', hosts.gobgp!, {
        localASN: 65002,
        routerId: addr.gobgp[0],
        localAddresses: [...addr.gobgp],
        neighbours: [
          { address: addr.bird[0], asn: 65001, passive: true, holdTimeSeconds: 3 },
          { address: addr.bird[1], asn: 65001 },
        ],
        originate: [
          { prefix: '198.18.201.1/32', communities: ['65000:200'], largeCommunities: ['4:5:6'], med: 20 },
          { prefix: '2001:db8:201::1/128', communities: ['65000:201'] },
        ],
      }),
      PeerDaemon.start('frr', hosts.frr!, {
        localASN: 65001,
        routerId: addr.frr[0],
        localAddresses: [...addr.frr],
        neighbours: [
          { address: addr.bird[0], asn: 65001, password: 'lab-secret' },
          { address: addr.bird[1], asn: 65001, multihop: 2 },
        ],
        originate: [
          { prefix: '198.18.202.1/32', localPreference: 300, med: 5, communities: ['65000:300'] },
          { prefix: '2001:db8:202::1/128', largeCommunities: ['7:8:9'] },
        ],
      }),
      PeerDaemon.start('exabgp', hosts.exabgp!, {
        localASN: 65004,
        routerId: addr.exabgp[0],
        localAddresses: [...addr.exabgp],
        neighbours: [{ address: addr.bird[0], asn: 65001, asn4: false }],
        originate: [{ prefix: '198.18.204.1/32', communities: ['no-export'], med: 9 }],
      }),
    ]);
  }, 60_000);

  afterAll(async () => {
    await lab?.destroy();
  });

  it('BIRD and GoBGP exchange IPv4 and IPv6 routes with communities, large communities and MED', async () => {
    for (const a of addr.gobgp) await bird.waitEstablished(a);
    for (const a of addr.bird) await gobgp.waitEstablished(a);
    const atBird = await eventually(async () => {
      const routes = await bird.routes();
      expect(find(routes, '2001:db8:201::1/128', addr.gobgp[1])).toBeDefined();
      return routes;
    });
    expect(find(atBird, '198.18.201.1/32', addr.gobgp[0])).toMatchObject({ family: 'ipv4-unicast', nextHop: addr.gobgp[0], asPath: [65002], communities: ['65000:200'], largeCommunities: ['4:5:6'], med: 20 });
    expect(find(atBird, '2001:db8:201::1/128', addr.gobgp[1])).toMatchObject({ family: 'ipv6-unicast', nextHop: addr.gobgp[1], asPath: [65002], communities: ['65000:201'] });

    const atGobgp = await eventually(async () => {
      const routes = await gobgp.routes();
      expect(find(routes, '2001:db8:200::1/128', addr.bird[1])).toBeDefined();
      return routes;
    });
    expect(find(atGobgp, '198.18.200.1/32', addr.bird[0])).toMatchObject({ nextHop: addr.bird[0], asPath: [65001], communities: ['65000:100', '65535:65281'], largeCommunities: ['1:2:3'] });
    expect(find(atGobgp, '2001:db8:200::1/128', addr.bird[1])).toMatchObject({ nextHop: addr.bird[1], asPath: [65001], communities: ['65000:101'] });
    // BIRD exports only what it originates: GoBGP never sees FRR's or ExaBGP's routes through it.
    expect(atGobgp.filter((r) => r.from === addr.bird[0]).map((r) => r.prefix)).toEqual(['198.18.200.1/32']);
  });

  it('GoBGP originates thousands of routes in bulk (MRT injection) and BIRD counts them', async () => {
    const prefixes = hostPrefixes('ipv4-unicast', 3_000);
    expect(prefixes.slice(0, 2)).toEqual(['198.18.128.0/32', '198.18.128.1/32']);
    await gobgp.originateMany('ipv4-unicast', prefixes);
    await eventually(async () => expect(await bird.routeCount(addr.gobgp[0], 'ipv4-unicast')).toBe(3_001), 30_000);
    expect(await gobgp.routeCount(addr.bird[0], 'ipv4-unicast')).toBe(1);
    const since = await bird.sessionSince(addr.gobgp[0]);
    const last = await bird.lastImport(addr.gobgp[0]);
    expect(last).toBeGreaterThanOrEqual(since);
  });

  it('FRR and BIRD: iBGP with TCP MD5 carries local preference and MED; IPv6 over a multihop session', async () => {
    for (const a of addr.frr) await bird.waitEstablished(a);
    expect((await frr.session(addr.bird[0])).established).toBe(true);
    const atBird = await eventually(async () => {
      const routes = await bird.routes();
      expect(find(routes, '2001:db8:202::1/128', addr.frr[1])).toBeDefined();
      return routes;
    });
    // iBGP: no AS added, local preference as FRR set it.
    expect(find(atBird, '198.18.202.1/32', addr.frr[0])).toMatchObject({ nextHop: addr.frr[0], asPath: [], localPreference: 300, med: 5, communities: ['65000:300'] });
    expect(find(atBird, '2001:db8:202::1/128', addr.frr[1])).toMatchObject({ nextHop: addr.frr[1], asPath: [], largeCommunities: ['7:8:9'] });

    const atFrr = await eventually(async () => {
      const routes = await frr.routes();
      expect(find(routes, '2001:db8:200::1/128', addr.bird[1])).toBeDefined();
      return routes;
    });
    expect(find(atFrr, '198.18.200.1/32', addr.bird[0])).toMatchObject({ nextHop: addr.bird[0], asPath: [], localPreference: 100, communities: ['65000:100', '65535:65281'], largeCommunities: ['1:2:3'] });
    expect(await frr.routeCount(addr.bird[0], 'ipv4-unicast')).toBe(1);
  });

  it('ExaBGP without 4-octet AS numbers: routes both ways, End-of-RIB, route refresh both ways', async () => {
    await bird.waitEstablished(addr.exabgp[0]);
    await exabgp.waitEstablished(addr.bird[0]);
    const atBird = await eventually(async () => {
      const r = find(await bird.routes('ipv4-unicast'), '198.18.204.1/32', addr.exabgp[0]);
      expect(r).toBeDefined();
      return r;
    });
    expect(atBird).toMatchObject({ nextHop: addr.exabgp[0], asPath: [65004], communities: ['65535:65281'], med: 9 });
    const atExabgp = await eventually(async () => {
      const r = find(await exabgp.routes(), '198.18.200.1/32', addr.bird[0]);
      expect(r).toBeDefined();
      return r;
    });
    expect(atExabgp).toMatchObject({ family: 'ipv4-unicast', nextHop: addr.bird[0], asPath: [65001], communities: ['65000:100', '65535:65281'], largeCommunities: ['1:2:3'] });
    await eventually(() => expect(exabgp.endOfRib(addr.bird[0])).toContain('ipv4 unicast'));

    // ExaBGP asks BIRD for its routes again: BIRD answers with a fresh UPDATE.
    const before = (await exabgp.session(addr.bird[0])).updatesReceived;
    await exabgp.requestRefresh(addr.bird[0], 'ipv4-unicast');
    await eventually(async () => expect((await exabgp.session(addr.bird[0])).updatesReceived).toBeGreaterThan(before));
    // BIRD asks ExaBGP: ExaBGP records the ROUTE-REFRESH.
    await bird.requestRefresh(addr.exabgp[0]);
    await eventually(async () => expect((await exabgp.session(addr.bird[0])).refreshesReceived).toBeGreaterThan(0));
  });

  it('a frozen daemon lets the hold timer expire; thawed, it comes back; a restarted one too', async () => {
    await bird.waitEstablished(addr.gobgp[0]);
    gobgp.freeze();
    try {
      const down = await eventually(async () => {
        const s = await bird.session(addr.gobgp[0]);
        if (s.established) throw new Error('still established');
        return s;
      }, 15_000);
      expect(down.lastError).toMatch(/hold timer expired/i);
    } finally {
      gobgp.thaw();
    }
    await bird.waitEstablished(addr.gobgp[0], 30_000);

    await frr.restart();
    await bird.waitEstablished(addr.frr[0], 30_000);
    await eventually(async () => expect(find(await bird.routes('ipv4-unicast'), '198.18.202.1/32', addr.frr[0])).toBeDefined(), 15_000);
  }, 90_000);

  it('destroying the lab ends every daemon and removes their configuration and sockets', async () => {
    const pids = [bird.pid, gobgp.pid, frr.pid, exabgp.pid];
    const dirs = [bird.dir, gobgp.dir, frr.dir, exabgp.dir];
    expect(pids.every(running)).toBe(true);
    expect(existsSync(`${bird.dir}/bird.ctl`) && existsSync(`${frr.dir}/bgpd.vty`)).toBe(true);
    await lab.destroy();
    await eventually(() => expect(pids.filter(running)).toEqual([]));
    expect(dirs.filter((d) => existsSync(d))).toEqual([]);
  });
});
