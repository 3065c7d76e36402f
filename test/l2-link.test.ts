// The packet link on the real kernel: a node host runs a PacketLink (in a child process inside its
// namespace), a client host asks with arping, ndisc6 and its own kernel's neighbour resolution.
// Every address is from 198.18.0.0/15 or 2001:db8::/32; the lab is destroyed whatever happens.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseIP } from '../api/index.js';
import { encodeARP, encodeEthernet, ETHERTYPE_ARP, encodeNDPFrame, encodeNeighborSolicitation, fuzzCorpus, ipv6MulticastMAC, parseMAC, solicitedNodeMulticast, broadcastMAC, zeroMAC } from '../l2announce/index.js';
import { PacketLink } from '../l2announce/packet-link.js';
import { Lab, type LabHost } from '../lab/index.js';
import { LinkChild } from './l2-link-harness.js';
import { eventually, sleep } from './process.js';

const VIP4 = '198.18.0.100';
const VIP6 = '2001:db8::100';
const OTHER4 = '198.18.0.101';
const LAN2_VIP4 = '198.18.1.100';

describe('packet link on the real kernel', () => {
  let lab: Lab;
  let client: LabHost;
  let node1: LinkChild;
  let node2: LinkChild;
  let injector: LinkChild;
  const mac: Record<string, string> = {};

  const macOf = async (host: LabHost, ifname: string) => (await host.exec('cat', [`/sys/class/net/${ifname}/address`])).stdout.trim();
  /** The client's neighbour entry for `ip` on `dev`: its MAC, or undefined. */
  const neighbour = async (ip: string, dev = 'eth0') => {
    const r = await client.exec('ip', ['-j', 'neigh', 'show', ip, 'dev', dev]);
    const entries = JSON.parse(r.stdout || '[]') as { lladdr?: string; state?: string[] }[];
    return entries[0]?.lladdr;
  };
  /** arping: the MACs that replied (empty when none did). */
  const arping = async (ip: string, dev = 'eth0', count = 3) => {
    const r = await client.exec('arping', ['-c', String(count), '-C', '1', '-w', '2', '-i', dev, ip], { timeoutMs: 10_000 });
    return [...r.stdout.matchAll(/bytes from ([0-9a-f:]{17})/g)].map((m) => m[1]!);
  };
  const ndisc = async (ip: string, dev = 'eth0') => {
    const r = await client.exec('ndisc6', ['-q', '-r', '3', '-w', '500', ip, dev], { timeoutMs: 10_000 });
    return r.stdout.trim().toLowerCase();
  };

  beforeAll(async () => {
    lab = await Lab.create({ name: 'l2-link' });
    const lan = await lab.bridge('lan');
    const lan2 = await lab.bridge('lan2');
    client = await lab.host('client');
    const [h1, h2, hInject] = [await lab.host('node1'), await lab.host('node2'), await lab.host('inject')];
    await lab.attach(client, lan, { addresses: ['198.18.0.2/24', '2001:db8::2/64'] });
    await lab.attach(client, lan2, { addresses: ['198.18.1.2/24'] });
    await lab.attach(h1, lan, { addresses: ['198.18.0.11/24', '2001:db8::11/64'] });
    await lab.attach(h1, lan2, { addresses: ['198.18.1.11/24'] });
    await lab.attach(h2, lan, { addresses: ['198.18.0.12/24', '2001:db8::12/64'] });
    await lab.attach(hInject, lan, { addresses: ['198.18.0.3/24'] });
    for (const [name, host, dev] of [['node1', h1, 'eth0'], ['node1.eth1', h1, 'eth1'], ['node2', h2, 'eth0'], ['client', client, 'eth0'], ['inject', hInject, 'eth0']] as const) mac[name] = await macOf(host, dev);
    [node1, node2, injector] = await Promise.all([LinkChild.start(h1, 'node'), LinkChild.start(h2, 'node'), LinkChild.start(hInject, 'raw')]);
  }, 120_000);

  afterEach(async () => {
    // Each test starts from nothing announced and an empty neighbour table.
    for (const n of [node1, node2]) {
      await n?.setTable([]);
      await n?.fence(0);
    }
    await client?.exec('ip', ['neigh', 'flush', 'all']);
  });

  afterAll(async () => {
    await Promise.all([node1, node2, injector].map((c) => c?.stop()));
    await lab?.destroy({ graceMs: 500 }).catch(() => lab.destroySync());
  }, 30_000);

  it('answers ARP and NDP for announced addresses with the interface MAC, and the client kernel learns it', async () => {
    await node1.setTable([{ ip: VIP4, interfaces: ['eth0'] }, { ip: VIP6, interfaces: ['eth0'] }]);
    await node1.fence('forever');

    expect(await arping(VIP4)).toContain(mac.node1);
    expect(await ndisc(VIP6)).toBe(mac.node1);
    // The client's own kernel resolves the VIP (ping gets no echo reply: nobody owns the address).
    await client.ping(VIP4, { timeoutMs: 500 });
    await client.ping(VIP6, { timeoutMs: 500 });
    expect(await neighbour(VIP4)).toBe(mac.node1);
    expect(await neighbour(VIP6)).toBe(mac.node1);

    const stats = await eventually(async () => {
      const s = await node1.stats();
      expect(s.answered.arp).toBeGreaterThanOrEqual(2);
      expect(s.answered.ndp).toBeGreaterThanOrEqual(2);
      return s;
    });
    expect(stats.interfaces.eth0).toMatchObject({ state: 'open' });
    expect(stats.answering).toBe(true);
    // The address is not on the node: the kernel neither answers nor routes for it.
    const addrs = await node1.host.exec('ip', ['-br', 'addr']);
    expect(addrs.stdout).not.toContain(VIP4);
    expect(addrs.stdout).not.toContain(VIP6);
  });

  it('does not answer for an address it does not announce, and counts why', async () => {
    await node1.setTable([{ ip: VIP4, interfaces: ['eth0'] }]);
    await node1.fence('forever');
    expect(await arping(OTHER4, 'eth0', 2)).toEqual([]);
    expect(await ndisc(VIP6)).toBe('');
    await eventually(async () => expect((await node1.stats()).dropped.target_not_announced).toBeGreaterThanOrEqual(4), 5_000, 'drops counted');
    // Node 2 announces nothing, so it has no socket open at all and saw nothing.
    expect((await node2.stats()).received).toBe(0);
  });

  it('answers only on the interfaces listed for an address (two NICs on two bridges)', async () => {
    await node1.setTable([{ ip: VIP4, interfaces: ['eth0'] }, { ip: LAN2_VIP4, interfaces: ['eth1'] }]);
    await node1.fence('forever');
    expect(await arping(VIP4, 'eth0')).toContain(mac.node1);
    expect(await arping(VIP4, 'eth1', 2)).toEqual([]);
    expect(await arping(LAN2_VIP4, 'eth1')).toEqual(expect.arrayContaining([mac['node1.eth1']]));
    expect(await arping(LAN2_VIP4, 'eth0', 2)).toEqual([]);
    const s = await eventually(async () => {
      const st = await node1.stats();
      expect(st.interfaces.eth1?.answeredARP).toBeGreaterThan(0);
      return st;
    });
    expect(s.interfaces.eth0?.answeredARP).toBeGreaterThan(0);
  });

  it('stops answering when the fence passes, and the kernel does not answer in its place', async () => {
    await node1.setTable([{ ip: VIP4, interfaces: ['eth0'] }, { ip: VIP6, interfaces: ['eth0'] }]);
    const fenceAt = Date.now() + 1_500;
    await node1.fence(1_500);
    expect(await arping(VIP4)).toContain(mac.node1);
    // Stats trail the worker by up to ~100 ms: wait for the deadline itself before reading them.
    await sleep(Math.max(0, fenceAt + 200 - Date.now()));
    await eventually(async () => expect((await node1.stats()).answering).toBe(false), 5_000, 'fence passed');
    expect(await arping(VIP4, 'eth0', 2)).toEqual([]);
    expect(await ndisc(VIP6)).toBe('');
    expect((await node1.stats()).dropped.fenced).toBeGreaterThanOrEqual(2);
    // Extended again: answers again.
    await node1.fence('forever');
    expect(await arping(VIP4)).toContain(mac.node1);
  });

  it('answers while the main thread is stalled, and still stops at the fence then', async () => {
    await node1.setTable([{ ip: VIP4, interfaces: ['eth0'] }]);
    await node1.fence('forever');
    let stalled = node1.call('stall', { ms: 3_000 });
    expect(await arping(VIP4)).toContain(mac.node1);
    await stalled;

    // The deadline passes while the main thread cannot extend it: the worker goes quiet on its own.
    const fencedAt = Date.now() + 3_000;
    await node1.fence(3_000);
    stalled = node1.call('stall', { ms: 9_000 });
    expect(await arping(VIP4)).toContain(mac.node1);
    await sleep(Math.max(0, fencedAt + 500 - Date.now()));
    expect(await arping(VIP4, 'eth0', 2)).toEqual([]);
    await stalled;
  });

  it('a takeover moves the client neighbour entries to the new node by gratuitous ARP and unsolicited NA, without the client asking', async () => {
    await node1.setTable([{ ip: VIP4, interfaces: ['eth0'] }, { ip: VIP6, interfaces: ['eth0'] }]);
    await node1.fence('forever');
    await client.ping(VIP4, { timeoutMs: 500 });
    await client.ping(VIP6, { timeoutMs: 500 });
    expect(await neighbour(VIP4)).toBe(mac.node1);
    expect(await neighbour(VIP6)).toBe(mac.node1);

    await node1.fence(0);
    await node1.setTable([]);
    const before = (await node2.stats()).gratuitous;
    await node2.setTable([{ ip: VIP4, interfaces: ['eth0'] }, { ip: VIP6, interfaces: ['eth0'] }]);
    await node2.fence('forever');
    // Linux ignores an ARP that changes a fresh entry within locktime (1 s): the burst's later frames cover it.
    await eventually(async () => expect(await neighbour(VIP4)).toBe(mac.node2), 8_000, 'IPv4 entry moved');
    await eventually(async () => expect(await neighbour(VIP6)).toBe(mac.node2), 8_000, 'IPv6 entry moved');
    await eventually(async () => expect((await node2.stats()).gratuitous - before).toBeGreaterThanOrEqual(3), 5_000, 'gratuitous counted');
  });

  it('drops malformed frames injected on the wire, counts them, and keeps answering', async () => {
    await node1.setTable([{ ip: VIP4, interfaces: ['eth0'] }, { ip: VIP6, interfaces: ['eth0'] }]);
    await node1.fence('forever');
    const src = parseMAC(mac.inject!)!;
    const arpRequest = (tweak: (bytes: Uint8Array) => void) => {
      const payload = encodeARP({ op: 'request', senderMAC: src, senderIP: parseIP('198.18.0.3')!, targetMAC: zeroMAC(), targetIP: parseIP(VIP4)! });
      tweak(payload);
      return encodeEthernet({ dst: broadcastMAC(), src, ethertype: ETHERTYPE_ARP }, payload);
    };
    const target = parseIP(VIP6)!;
    const from = parseIP('2001:db8::3')!;
    const dst = solicitedNodeMulticast(target);
    const ns = encodeNeighborSolicitation({ target, sourceLinkLayer: src }, from, dst);
    const badChecksum = ns.slice();
    badChecksum[2]! ^= 0xff;
    const nsFrame = (message: Uint8Array) => encodeNDPFrame({ src, dst: ipv6MulticastMAC(dst) }, from, dst, message);
    const hopLimit64 = nsFrame(ns);
    hopLimit64[14 + 7] = 64;

    const before = (await node1.stats()).dropped;
    await injector.send('eth0', arpRequest((b) => (b[1] = 6))); // hardware type 6 (IEEE 802)
    await injector.send('eth0', arpRequest((b) => (b[5] = 16))); // protocol length 16
    await injector.send('eth0', nsFrame(badChecksum));
    await injector.send('eth0', hopLimit64);
    // And a fuzz corpus: random, valid and mutated frames of every kind.
    for (const c of fuzzCorpus(300, 7)) if (c.bytes.length >= 14) await injector.send('eth0', c.bytes);

    await eventually(async () => {
      const d = (await node1.stats()).dropped;
      expect(d.arp_bad_hardware_type - before.arp_bad_hardware_type).toBeGreaterThanOrEqual(1);
      expect(d.arp_bad_lengths - before.arp_bad_lengths).toBeGreaterThanOrEqual(1);
      expect(d.icmpv6_bad_checksum - before.icmpv6_bad_checksum).toBeGreaterThanOrEqual(1);
      expect(d.ndp_hop_limit_not_255 - before.ndp_hop_limit_not_255).toBeGreaterThanOrEqual(1);
    }, 5_000, 'malformed frames counted');
    expect(await arping(VIP4)).toContain(mac.node1);
    expect(await ndisc(VIP6)).toBe(mac.node1);
  });

  it('follows a link going down and up, and reports unknown interfaces as problems', async () => {
    await node1.setTable([{ ip: VIP4, interfaces: ['eth0', 'nosuch0'] }]);
    await node1.fence('forever');
    expect(await arping(VIP4)).toContain(mac.node1);
    await eventually(async () => expect((await node1.stats()).problems).toContain(`${VIP4}: interface nosuch0 is not available`), 5_000, 'problem reported');

    await node1.host.setLink('eth0', 'down');
    await eventually(async () => expect((await node1.stats()).interfaces.eth0?.state).toBe('down'), 5_000, 'eth0 down');
    expect(await arping(VIP4, 'eth0', 2)).toEqual([]);
    const gratuitous = (await node1.stats()).interfaces.eth0!.gratuitous;
    await node1.host.setLink('eth0', 'up');
    await eventually(async () => expect((await node1.stats()).interfaces.eth0?.state).toBe('open'), 5_000, 'eth0 up');
    // Back up: the pair is live again, so it is announced again.
    await eventually(async () => expect((await node1.stats()).interfaces.eth0!.gratuitous).toBeGreaterThan(gratuitous), 5_000, 'burst after link up');
    expect(await arping(VIP4)).toContain(mac.node1);
  });

  it('reopens its sockets when an interface is deleted and created again under a new ifindex', async () => {
    // A veth pair made by hand between node 1 and the client, outside the lab's bridges.
    const create = async () => {
      const r = await node1.host.exec('ip', ['link', 'add', 'dyn0', 'type', 'veth', 'peer', 'name', 'dyn1', 'netns', client.namespace]);
      expect(r.code, r.stderr).toBe(0);
      expect((await node1.host.exec('ip', ['link', 'set', 'dyn0', 'up'])).code).toBe(0);
      expect((await client.exec('ip', ['addr', 'add', '198.18.2.2/24', 'dev', 'dyn1'])).code).toBe(0);
      expect((await client.exec('ip', ['link', 'set', 'dyn1', 'up'])).code).toBe(0);
      return macOf(node1.host, 'dyn0');
    };
    try {
      const first = await create();
      await node1.setTable([{ ip: '198.18.2.100', interfaces: ['dyn0'] }]);
      await node1.fence('forever');
      await eventually(async () => expect(await arping('198.18.2.100', 'dyn1', 1)).toContain(first), 10_000, 'answers on dyn0');
      // Stats trail the worker by up to ~100 ms.
      await eventually(async () => expect((await node1.stats()).interfaces.dyn0).toBeDefined(), 5_000, 'dyn0 in the stats');
      const ifindex = (await node1.stats()).interfaces.dyn0!.ifindex;

      expect((await node1.host.exec('ip', ['link', 'del', 'dyn0'])).code).toBe(0);
      await eventually(async () => expect((await node1.stats()).interfaces.dyn0).toBeUndefined(), 5_000, 'dyn0 closed');
      const second = await create();
      await eventually(async () => expect((await node1.stats()).interfaces.dyn0?.ifindex).not.toBe(ifindex), 10_000, 'dyn0 reopened');
      await eventually(async () => expect(await arping('198.18.2.100', 'dyn1', 1)).toContain(second), 10_000, 'answers on the new dyn0');
    } finally {
      await node1.host.exec('ip', ['link', 'del', 'dyn0']);
    }
  });
});

describe('packet link in the test process', () => {
  it('starts its worker from the TypeScript sources, reports what it cannot use, and closes', async () => {
    // Nothing announced on an existing interface: no socket opens, nothing is sent.
    const logs: string[] = [];
    const link = await PacketLink.start({ log: (level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields)}`) });
    try {
      link.setTable([{ ip: '198.18.0.100', interfaces: ['nosuch0'] }, { ip: 'bogus', interfaces: ['nosuch0'] }]);
      link.setFence(PacketLink.FOREVER);
      const stats = await eventually(() => {
        const s = link.stats();
        expect(s.answering).toBe(true);
        expect(s.problems).toEqual(['198.18.0.100: interface nosuch0 is not available', '"bogus" is not an IP address']);
        return s;
      }, 10_000, 'stats');
      expect(stats.interfaces).toEqual({});
      expect(logs.some((l) => l.startsWith('warn cannot answer'))).toBe(true);
      expect(link.failed).toBeUndefined();
    } finally {
      await link.close();
    }
    // Closing twice is harmless; a closed link ignores further calls.
    await link.close();
    link.setFence(0n);
  });
});
