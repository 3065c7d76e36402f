// The north-south tc programs (bpf/progs/nodeport.c) on the real kernel. Through
// BPF_PROG_TEST_RUN: fixture frames in, verdict and frame out, decoded with every checksum
// recomputed; the runs happen inside a lab namespace (the node) whose routes the programs' FIB
// lookups see. A test run's packet comes "from" that namespace's loopback (ifindex 1), and a
// redirect is only a verdict. Then real traffic: a client namespace reaches frontends balanced to
// a backend on the node and one in another namespace. The maps are filled as the agent fills
// them (kpr/layout.ts, kpr/nodeport-layout.ts). Needs root.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TCP_FLAGS, buildFrame, buildIPPacket, decodeFrame, type DecodedFrame, type PacketSpec } from '../kpr/packet.js';
import { addressBytes, encodeConfig, encodeService, encodeServiceKey, encodeSlotKey, encodeU32, sumPerCpu, type Address } from '../kpr/layout.js';
import {
  decodeCt,
  decodeCtKey,
  encodeCt,
  encodeCtKey,
  encodeDevice,
  flowHash,
  natPortCandidates,
  nodeportMapNames,
  nodeportPrograms,
  nodeportStatNames,
  type NodeportStatName,
} from '../kpr/nodeport-layout.js';
import { Lab, type LabHost } from '../lab/index.js';
import { BpfMap, BpfObject, MapType, attachTc, ensureBpffs, ifindexOf, testRun, withNetns } from './index.js';

const root = join(import.meta.dirname, '..');
const TC_ACT_OK = 0;
const TC_ACT_REDIRECT = 7;
const LB_BACKEND_LOCAL = 2;
const MAGLEV_SIZE = 251;
const BPF_F_INNER_MAP = 1 << 12;
const LOOPBACK = 1;
const node = { ipv4: '198.18.0.100', ipv6: '2001:db8::100' };
const client = { 4: '198.18.30.1', 6: '2001:db8:30::1' } as const;
type Family = 4 | 6;
type Protocol = 'TCP' | 'UDP';

/** Monotonic nanoseconds, the clock bpf_ktime_get_ns reads. */
const nowNs = () => process.hrtime.bigint();

describe('nodeport tc programs', () => {
  let pinDir = '';
  let obj: BpfObject | undefined;
  let lab: Lab | undefined;
  let clientHost: LabHost;
  let nodeHost: LabHost;
  let backendHost: LabHost;
  let nodeNetns = '';
  const map = (name: string) => obj!.map(name);

  beforeAll(async () => {
    lab = await Lab.create({ name: 'test' });
    [clientHost, nodeHost, backendHost] = [await lab.host('client'), await lab.host('node', { forwarding: true }), await lab.host('backend')];
    nodeNetns = `/var/run/netns/${nodeHost.namespace}`;
    // node eth0 faces clients, eth1 the backends on "another node"
    await lab.link(clientHost, nodeHost, { a: { addresses: ['198.18.40.1/24', '2001:db8:40::1/64'] }, b: { addresses: ['198.18.40.2/24', '2001:db8:40::2/64'] } });
    await lab.link(nodeHost, backendHost, { a: { addresses: ['198.19.0.1/16', '2001:db8:19::1/64'] }, b: { addresses: ['198.19.0.2/16', '2001:db8:19::2/64'] } });
    await nodeHost.addRoute('198.18.30.0/24', { via: '198.18.40.1' });
    await nodeHost.addRoute('2001:db8:30::/64', { via: '2001:db8:40::1' });
    for (const prefix of ['198.18.50.0/24', '2001:db8:50::/64']) await clientHost.addRoute(prefix, { via: prefix.includes(':') ? '2001:db8:40::2' : '198.18.40.2' });
    await backendHost.addRoute('198.18.0.0/15', { via: '198.19.0.1' }); // the connected /16 stays more specific
    await backendHost.addRoute('2001:db8::/32', { via: '2001:db8:19::1' });

    execFileSync('bash', [join(root, 'scripts/build-bpf.sh')], { stdio: 'pipe' });
    ensureBpffs('/sys/fs/bpf');
    pinDir = mkdtempSync('/sys/fs/bpf/beacon-test-');
    obj = BpfObject.open(join(root, 'dist/bpf/nodeport.o'), { pinRoot: pinDir });
    obj.load();
    map('beacon_config').update(encodeU32(0), encodeConfig({ maglevTableSize: MAGLEV_SIZE }));
    map(nodeportMapNames.devices).update(encodeU32(LOOPBACK), encodeDevice(node));
  }, 120_000);
  afterAll(async () => {
    obj?.close();
    if (pinDir) rmSync(pinDir, { recursive: true, force: true });
    // Deleting the namespaces removes their devices and tc filters with them.
    await lab?.destroy({ graceMs: 500 }).catch(() => lab?.destroySync());
  }, 60_000);

  // struct lb_backend: the 19 bytes of an address (as in a service key) and the flags byte.
  const addBackend = (id: number, b: Address, local: boolean) => {
    const value = encodeServiceKey(b);
    value[19] = local ? LB_BACKEND_LOCAL : 0;
    map('beacon_backends').update(encodeU32(id), value);
  };
  const setService = (id: number, frontend: Address, backendIds: number[], opts: { maglev?: Uint32Array; affinitySeconds?: number } = {}) => {
    backendIds.forEach((b, i) => map('beacon_slots').update(encodeSlotKey(id, i + 1), encodeU32(b)));
    if (opts.maglev) {
      const inner = BpfMap.create(MapType.ARRAY, 4, 4, MAGLEV_SIZE, { name: 'beacon_mtab', flags: BPF_F_INNER_MAP });
      opts.maglev.forEach((b, i) => inner.update(encodeU32(i), encodeU32(b)));
      map('beacon_maglev').setInner(encodeU32(id), inner);
      inner.close();
    }
    const entry = { id, count: backendIds.length, algorithm: opts.maglev ? ('maglev' as const) : ('random' as const), type: 'LoadBalancer' as const, affinityTimeoutSeconds: opts.affinitySeconds ?? 0 };
    map('beacon_svc').update(encodeServiceKey(frontend), encodeService(entry));
  };

  const rawRun = (direction: 'ingress' | 'egress', frame: Buffer) => withNetns(nodeNetns, () => testRun(obj!.program(nodeportPrograms[direction]), frame));
  const run = (direction: 'ingress' | 'egress', frame: Buffer): { retval: number; out: Buffer; decoded: DecodedFrame } => {
    const r = rawRun(direction, frame);
    return { retval: r.retval, out: r.dataOut, decoded: decodeFrame(r.dataOut) };
  };
  const stats = (): Record<NodeportStatName, number> => {
    const out = {} as Record<NodeportStatName, number>;
    nodeportStatNames.forEach((name, i) => (out[name] = Number(sumPerCpu(map(nodeportMapNames.stats).lookup(encodeU32(i))!))));
    return out;
  };
  const counted = (fn: () => void): Partial<Record<NodeportStatName, number>> => {
    const before = stats();
    fn();
    const after = stats();
    return Object.fromEntries(nodeportStatNames.filter((n) => after[n] !== before[n]).map((n) => [n, after[n] - before[n]]));
  };

  const l4 = (protocol: Protocol, srcPort: number, dstPort: number, flags: number = TCP_FLAGS.SYN): PacketSpec['l4'] =>
    protocol === 'TCP' ? { protocol, srcPort, dstPort, flags, seq: 1000, ack: flags & TCP_FLAGS.ACK ? 5000 : 0 } : { protocol, srcPort, dstPort };
  const packet = (src: string, dst: string, protocol: Protocol, srcPort: number, dstPort: number, flags?: number) =>
    buildFrame({ src, dst, l4: l4(protocol, srcPort, dstPort, flags), payload: Buffer.from('hello') });
  const ends = (d: DecodedFrame) => ({ src: d.src, srcPort: d.l4.srcPort, dst: d.dst, dstPort: d.l4.dstPort });

  const frontendOf = (family: Family, n: number) => (family === 4 ? `198.18.10.${n}` : `2001:db8:10::${n}`);
  const localOf = (family: Family, n: number) => (family === 4 ? `198.18.20.${n}` : `2001:db8:20::${n}`);
  const remoteOf = (family: Family, n: number) => (family === 4 ? `198.19.1.${n}` : `2001:db8:19::1:${n}`);
  let nextId = 1;

  describe.each([
    [4, 'TCP'],
    [4, 'UDP'],
    [6, 'TCP'],
    [6, 'UDP'],
  ] as [Family, Protocol][])('IPv%s %s', (family, protocol) => {
    it('to a local backend: DNAT only, the client address kept; the reply leaves through egress as the frontend', () => {
      const id = nextId++;
      const frontend = { address: frontendOf(family, id), port: 80, protocol };
      const backend = { address: localOf(family, id), port: 8080, protocol };
      addBackend(100 + id, backend, true);
      setService(id, frontend, [100 + id]);

      let forward!: ReturnType<typeof run>;
      expect(counted(() => (forward = run('ingress', packet(client[family], frontend.address, protocol, 40000, 80))))).toEqual({ new_local: 1 });
      expect(forward.retval).toBe(TC_ACT_OK);
      expect(ends(forward.decoded)).toEqual({ src: client[family], srcPort: 40000, dst: backend.address, dstPort: 8080 });
      expect(forward.decoded.checksumErrors).toEqual([]);
      expect(forward.decoded.payload.toString()).toBe('hello');

      let reply!: ReturnType<typeof run>;
      expect(counted(() => (reply = run('egress', packet(backend.address, client[family], protocol, 8080, 40000, TCP_FLAGS.SYN | TCP_FLAGS.ACK))))).toEqual({ reply: 1 });
      expect(reply.retval).toBe(TC_ACT_OK);
      expect(ends(reply.decoded)).toEqual({ src: frontend.address, srcPort: 80, dst: client[family], dstPort: 40000 });
      expect(reply.decoded.checksumErrors).toEqual([]);
    });

    it('to a remote backend: DNAT and SNAT to the node address, on by the FIB; the reply arriving at the NAT port is translated back', () => {
      const id = nextId++;
      const frontend = { address: frontendOf(family, id), port: 443, protocol };
      const backend = { address: remoteOf(family, id), port: 8443, protocol };
      addBackend(100 + id, backend, false);
      setService(id, frontend, [100 + id]);

      const forward = run('ingress', packet(client[family], frontend.address, protocol, 41000, 443));
      // No neighbour entry for the backend yet: bpf_redirect_neigh out of eth1, TTL spent by one.
      expect(forward.retval).toBe(TC_ACT_REDIRECT);
      expect(forward.decoded.ttl).toBe(63);
      const natPort = forward.decoded.l4.srcPort!;
      expect(ends(forward.decoded)).toEqual({ src: family === 4 ? node.ipv4 : node.ipv6, srcPort: natPort, dst: backend.address, dstPort: 8443 });
      expect(forward.decoded.checksumErrors).toEqual([]);
      // The kernel's flow hash is the one kpr/nodeport-layout.ts predicts.
      expect(natPort).toBe(natPortCandidates(encodeCtKey({ src: client[family], dst: frontend.address, srcPort: 41000, dstPort: 443, protocol }))[0]);

      const reply = run('ingress', packet(backend.address, forward.decoded.src, protocol, 8443, natPort, TCP_FLAGS.SYN | TCP_FLAGS.ACK));
      expect(reply.retval).toBe(TC_ACT_REDIRECT);
      expect(ends(reply.decoded)).toEqual({ src: frontend.address, srcPort: 443, dst: client[family], dstPort: 41000 });
      expect(reply.decoded.checksumErrors).toEqual([]);

      // Both entries are in beacon_ct, readable with the layout's decoders.
      const fwdKey = encodeCtKey({ src: client[family], dst: frontend.address, srcPort: 41000, dstPort: 443, protocol });
      expect(decodeCt(map(nodeportMapNames.conntrack).lookup(fwdKey)!)).toMatchObject({
        to: ends(forward.decoded),
        backendId: 100 + id,
        reply: false,
        snat: true,
      });
      const replyKey = encodeCtKey({ src: backend.address, dst: forward.decoded.src, srcPort: 8443, dstPort: natPort, protocol });
      expect(decodeCt(map(nodeportMapNames.conntrack).lookup(replyKey)!)).toMatchObject({ to: ends(reply.decoded), reply: true, snat: true });
    });

    it('no selectable backend: answered from the frontend back out of the device (TCP RST, UDP ICMP port unreachable)', () => {
      const id = nextId++;
      const frontend = { address: frontendOf(family, id), port: 80, protocol };
      setService(id, frontend, []);
      const input = packet(client[family], frontend.address, protocol, 42000, 80);
      let r!: ReturnType<typeof run>;
      expect(counted(() => (r = run('ingress', input)))).toEqual({ reject: 1 });
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.decoded).toMatchObject({ srcMac: '02:00:00:00:00:02', dstMac: '02:00:00:00:00:01', src: frontend.address, dst: client[family], ttl: 64, checksumErrors: [] });
      if (protocol === 'TCP') {
        // RFC 9293, segment arriving in CLOSED state: the SYN had no ACK, so RST|ACK with ack = seq + 1 (the SYN) + 5 data bytes.
        expect(r.decoded.l4).toMatchObject({ protocol: 'TCP', srcPort: 80, dstPort: 42000, flags: TCP_FLAGS.RST | TCP_FLAGS.ACK, seq: 0, ack: 1006 });
        expect(r.decoded.payload).toHaveLength(0);
      } else {
        expect(r.decoded.l4).toMatchObject(family === 4 ? { type: 3, code: 3 } : { type: 1, code: 4 });
        expect(r.decoded.quoted).toEqual({ src: client[family], dst: frontend.address, protocol: 17, srcPort: 42000, dstPort: 80 });
      }
    });
  });

  it('a RST to a frontend without backends is not answered', () => {
    const id = nextId++;
    const frontend = { address: frontendOf(4, id), port: 80, protocol: 'TCP' as const };
    setService(id, frontend, []);
    expect(run('ingress', packet(client[4], frontend.address, 'TCP', 42001, 80, TCP_FLAGS.RST)).retval).toBe(2 /* TC_ACT_SHOT */);
  });

  it('answers TCP with an ACK by RST with seq = the ACK number (RFC 9293, segment arriving in CLOSED state)', () => {
    const id = nextId++;
    const frontend = { address: frontendOf(6, id), port: 80, protocol: 'TCP' as const };
    setService(id, frontend, []);
    const r = run('ingress', packet(client[6], frontend.address, 'TCP', 42002, 80, TCP_FLAGS.ACK));
    expect(r.decoded.l4).toMatchObject({ flags: TCP_FLAGS.RST, seq: 5000, ack: 0 });
    expect(r.decoded.checksumErrors).toEqual([]);
  });

  it('an IPv4 UDP datagram without checksum keeps none through DNAT', () => {
    const id = nextId++;
    const frontend = { address: frontendOf(4, id), port: 53, protocol: 'UDP' as const };
    addBackend(100 + id, { address: localOf(4, id), port: 5353, protocol: 'UDP' }, true);
    setService(id, frontend, [100 + id]);
    const r = run('ingress', buildFrame({ src: client[4], dst: frontend.address, l4: { protocol: 'UDP', srcPort: 4000, dstPort: 53, noChecksum: true } }));
    expect(ends(r.decoded)).toEqual({ src: client[4], srcPort: 4000, dst: localOf(4, id), dstPort: 5353 });
    expect(r.decoded.l4.checksum).toBe(0);
    expect(r.decoded.checksumErrors).toEqual([]);
  });

  it('passes packets that are not for a frontend, and untracked egress packets, byte for byte', () => {
    const inputs = [
      packet(client[4], '198.18.10.250', 'TCP', 40000, 80),
      packet(client[6], frontendOf(6, 1), 'TCP', 40000, 81), // a frontend address on another port
      packet(client[4], node.ipv4, 'UDP', 40000, 61000), // a NAT port nobody holds
      Buffer.concat([Buffer.from('ffffffffffff020000000001', 'hex'), Buffer.from('0806', 'hex'), Buffer.alloc(28)]), // ARP
    ];
    expect(
      counted(() => {
        for (const input of inputs) {
          for (const direction of ['ingress', 'egress'] as const) {
            const r = rawRun(direction, input);
            expect(r.retval).toBe(TC_ACT_OK);
            expect(r.dataOut).toEqual(input);
          }
        }
      }),
    ).toEqual({});
  });

  it('an established flow keeps its backend while it exists, then moves; new flows spread', () => {
    const id = nextId++;
    const frontend = { address: frontendOf(4, id), port: 80, protocol: 'TCP' as const };
    const [a, b] = [{ address: localOf(4, 100), port: 8080, protocol: 'TCP' as const }, { address: localOf(4, 101), port: 8080, protocol: 'TCP' as const }];
    addBackend(200, a, true);
    addBackend(201, b, true);
    setService(id, frontend, [200, 201]);

    const first = run('ingress', packet(client[4], frontend.address, 'TCP', 43000, 80)).decoded.dst;
    const counts = counted(() => {
      for (let i = 0; i < 20; i++) expect(run('ingress', packet(client[4], frontend.address, 'TCP', 43000, 80, TCP_FLAGS.ACK)).decoded.dst).toBe(first);
    });
    expect(counts).toEqual({ established: 20 });

    const seen = new Set<string>();
    for (let port = 44000; port < 44040; port++) seen.add(run('ingress', packet(client[4], frontend.address, 'TCP', port, 80)).decoded.dst);
    expect(seen).toEqual(new Set([a.address, b.address]));

    // The flow's backend leaves the service (slots rewritten, backend deleted): the flow moves.
    const [gone, stays] = first === a.address ? [200, 201] : [201, 200];
    setService(id, frontend, [stays]);
    map('beacon_slots').delete(encodeSlotKey(id, 2));
    map('beacon_backends').delete(encodeU32(gone));
    let moved!: ReturnType<typeof run>;
    expect(counted(() => (moved = run('ingress', packet(client[4], frontend.address, 'TCP', 43000, 80, TCP_FLAGS.ACK))))).toEqual({ backend_gone: 1, new_local: 1 });
    expect(moved.decoded.dst).toBe(stays === 200 ? a.address : b.address);
  });

  it('an expired conntrack entry is chosen anew; a fresh one keeps its backend', () => {
    const id = nextId++;
    const frontend = { address: frontendOf(6, id), port: 80, protocol: 'UDP' as const };
    const [old, current] = [{ address: localOf(6, 110), port: 53, protocol: 'UDP' as const }, { address: localOf(6, 111), port: 53, protocol: 'UDP' as const }];
    addBackend(210, old, true);
    addBackend(211, current, true);
    setService(id, frontend, [211]);
    const key = encodeCtKey({ src: client[6], dst: frontend.address, srcPort: 45000, dstPort: 80, protocol: 'UDP' });
    const entry = (lastSeenNs: bigint) =>
      encodeCt({ to: { src: client[6], dst: old.address, srcPort: 45000, dstPort: 53 }, backendId: 210, lastSeenNs, reply: false, snat: false, established: false, closing: false });

    map(nodeportMapNames.conntrack).update(key, entry(nowNs()));
    expect(run('ingress', packet(client[6], frontend.address, 'UDP', 45000, 80)).decoded.dst).toBe(old.address);
    map(nodeportMapNames.conntrack).update(key, entry(nowNs() - 61_000_000_000n)); // UDP lives 60 s
    expect(run('ingress', packet(client[6], frontend.address, 'UDP', 45000, 80)).decoded.dst).toBe(current.address);
  });

  it('Maglev: the table entry the flow hash names, the same after conntrack forgets the flow', () => {
    const id = nextId++;
    const frontend = { address: frontendOf(6, id), port: 80, protocol: 'TCP' as const };
    const backends = [220, 221, 222];
    backends.forEach((b, i) => addBackend(b, { address: remoteOf(6, 120 + i), port: 8080, protocol: 'TCP' }, false));
    const table = Uint32Array.from({ length: MAGLEV_SIZE }, (_, i) => backends[(i * 7) % 3]!);
    setService(id, frontend, backends, { maglev: table });

    const used = new Set<string>();
    for (let port = 46000; port < 46030; port++) {
      const key = encodeCtKey({ src: client[6], dst: frontend.address, srcPort: port, dstPort: 80, protocol: 'TCP' });
      const expected = remoteOf(6, 120 + backends.indexOf(table[flowHash(key) % MAGLEV_SIZE]!));
      const first = run('ingress', packet(client[6], frontend.address, 'TCP', port, 80)).decoded;
      expect(first.dst).toBe(expected);
      map(nodeportMapNames.conntrack).delete(key);
      expect(run('ingress', packet(client[6], frontend.address, 'TCP', port, 80)).decoded.dst).toBe(expected);
      used.add(expected);
    }
    expect(used.size).toBe(3);
  });

  it('ClientIP affinity: every flow of one client reaches the same backend', () => {
    const id = nextId++;
    const frontend = { address: frontendOf(4, id), port: 80, protocol: 'TCP' as const };
    [230, 231].forEach((b, i) => addBackend(b, { address: localOf(4, 130 + i), port: 8080, protocol: 'TCP' }, true));
    setService(id, frontend, [230, 231], { affinitySeconds: 100 });

    const clients = ['198.18.31.1', '198.18.31.2', '198.18.31.3', '198.18.31.4', '198.18.31.5', '198.18.31.6'];
    let hits = 0;
    for (const c of clients) {
      const backends = new Set<string>();
      hits += counted(() => {
        for (let port = 47000; port < 47010; port++) backends.add(run('ingress', packet(c, frontend.address, 'TCP', port, 80)).decoded.dst);
      }).affinity_hit ?? 0;
      expect(backends.size).toBe(1);
      const remembered = map(nodeportMapNames.affinity).lookup(Buffer.concat([addressBytes(c), encodeU32(id), encodeU32(0)]));
      expect(remembered?.readUInt32LE(0)).toBeOneOf([230, 231]);
    }
    expect(hits).toBe(clients.length * 9);
  });

  it('SNAT ports: a taken one is skipped, an expired one is reused, none free rejects and is counted', () => {
    const id = nextId++;
    const frontend = { address: frontendOf(4, id), port: 80, protocol: 'UDP' as const };
    const backend = { address: remoteOf(4, 140), port: 53, protocol: 'UDP' as const };
    addBackend(240, backend, false);
    setService(id, frontend, [240]);
    const ct = map(nodeportMapNames.conntrack);
    const flowKey = (port: number) => encodeCtKey({ src: client[4], dst: frontend.address, srcPort: port, dstPort: 80, protocol: 'UDP' });
    const holdPort = (natPort: number, lastSeenNs: bigint) =>
      ct.update(
        encodeCtKey({ src: backend.address, dst: node.ipv4, srcPort: 53, dstPort: natPort, protocol: 'UDP' }),
        encodeCt({ to: { src: frontend.address, dst: '198.18.31.9', srcPort: 80, dstPort: 9 }, backendId: 240, lastSeenNs, reply: true, snat: true, established: false, closing: false }),
      );

    const [first, second] = natPortCandidates(flowKey(48000));
    holdPort(first!, nowNs());
    expect(run('ingress', packet(client[4], frontend.address, 'UDP', 48000, 80)).decoded.l4.srcPort).toBe(second);

    const [stale] = natPortCandidates(flowKey(48001));
    holdPort(stale!, nowNs() - 61_000_000_000n);
    expect(run('ingress', packet(client[4], frontend.address, 'UDP', 48001, 80)).decoded.l4.srcPort).toBe(stale);

    for (const p of natPortCandidates(flowKey(48002))) holdPort(p, nowNs());
    let r!: ReturnType<typeof run>;
    expect(counted(() => (r = run('ingress', packet(client[4], frontend.address, 'UDP', 48002, 80))))).toEqual({ nat_exhausted: 1, reject: 1 });
    expect(r.retval).toBe(TC_ACT_REDIRECT);
    expect(r.decoded.l4).toMatchObject({ type: 3, code: 3 });
  });

  it('a remote backend without a node address on the device is refused and counted', () => {
    const id = nextId++;
    const frontend = { address: frontendOf(6, id), port: 80, protocol: 'TCP' as const };
    addBackend(250, { address: remoteOf(6, 150), port: 8080, protocol: 'TCP' }, false);
    setService(id, frontend, [250]);
    map(nodeportMapNames.devices).update(encodeU32(LOOPBACK), encodeDevice({ ipv4: node.ipv4 }));
    try {
      let r!: ReturnType<typeof run>;
      expect(counted(() => (r = run('ingress', packet(client[6], frontend.address, 'TCP', 49000, 80))))).toEqual({ no_node_addr: 1, reject: 1 });
      expect(r.decoded.l4.flags).toBe(TCP_FLAGS.RST | TCP_FLAGS.ACK);
    } finally {
      map(nodeportMapNames.devices).update(encodeU32(LOOPBACK), encodeDevice(node));
    }
  });

  describe('ICMP errors about a translated flow', () => {
    /** The IP packet inside a test run's output frame, cut to what an ICMP error quotes. */
    const quote = (frame: Buffer, family: Family) => frame.subarray(14, 14 + (family === 4 ? 28 : 48));

    it('port unreachable from a remote backend reaches the client about its own datagram to the frontend', () => {
      const id = nextId++;
      const frontend = { address: frontendOf(4, id), port: 53, protocol: 'UDP' as const };
      const backend = { address: remoteOf(4, 160), port: 5353, protocol: 'UDP' as const };
      addBackend(260, backend, false);
      setService(id, frontend, [260]);
      const forward = run('ingress', packet(client[4], frontend.address, 'UDP', 50000, 53));
      const error = buildFrame({ src: backend.address, dst: node.ipv4, l4: { protocol: 'ICMP', type: 3, code: 3 }, payload: quote(forward.out, 4) });
      let r!: ReturnType<typeof run>;
      expect(counted(() => (r = run('ingress', error)))).toEqual({ icmp_error: 1 });
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.decoded).toMatchObject({
        src: frontend.address,
        dst: client[4],
        l4: { type: 3, code: 3 },
        quoted: { src: client[4], srcPort: 50000, dst: frontend.address, dstPort: 53, protocol: 17 },
        checksumErrors: [],
      });

      // A router on the client's side reports a reply too big: the backend learns it about its own reply.
      const reply = run('ingress', packet(backend.address, node.ipv4, 'UDP', 5353, forward.decoded.l4.srcPort!));
      const tooBig = buildFrame({ src: '198.18.99.1', dst: frontend.address, l4: { protocol: 'ICMP', type: 3, code: 4, rest: 1400 }, payload: quote(reply.out, 4) });
      expect(run('ingress', tooBig).decoded).toMatchObject({
        src: '198.18.99.1',
        dst: backend.address,
        l4: { type: 3, code: 4 },
        quoted: { src: backend.address, srcPort: 5353, dst: node.ipv4, dstPort: forward.decoded.l4.srcPort, protocol: 17 },
        checksumErrors: [],
      });
    });

    it('packet too big from a local IPv6 backend leaves egress about the client packet to the frontend', () => {
      const id = nextId++;
      const frontend = { address: frontendOf(6, id), port: 80, protocol: 'TCP' as const };
      const backend = { address: localOf(6, 170), port: 8080, protocol: 'TCP' as const };
      addBackend(270, backend, true);
      setService(id, frontend, [270]);
      const forward = run('ingress', packet(client[6], frontend.address, 'TCP', 51000, 80));
      const error = buildFrame({ src: backend.address, dst: client[6], l4: { protocol: 'ICMP', type: 2, code: 0, rest: 1280 }, payload: quote(forward.out, 6) });
      const r = run('egress', error);
      expect(r.decoded).toMatchObject({
        src: frontend.address,
        dst: client[6],
        l4: { type: 2, code: 0 },
        quoted: { src: client[6], srcPort: 51000, dst: frontend.address, dstPort: 80, protocol: 6 },
        checksumErrors: [],
      });
    });

    it('errors about untracked flows and ICMP that is not an error pass byte for byte', () => {
      const stranger = buildIPPacket({ src: client[4], dst: '198.18.10.250', l4: { protocol: 'UDP', srcPort: 1, dstPort: 2 } });
      const inputs = [
        buildFrame({ src: '198.18.10.250', dst: client[4], l4: { protocol: 'ICMP', type: 3, code: 3 }, payload: stranger.subarray(0, 28) }),
        buildFrame({ src: client[4], dst: frontendOf(4, 1), l4: { protocol: 'ICMP', type: 8, code: 0 }, payload: Buffer.from('ping') }),
        buildFrame({ src: client[6], dst: frontendOf(6, 3), l4: { protocol: 'ICMP', type: 128, code: 0 }, payload: Buffer.from('ping') }),
      ];
      for (const input of inputs) {
        for (const direction of ['ingress', 'egress'] as const) expect(rawRun(direction, input)).toMatchObject({ retval: TC_ACT_OK, dataOut: input });
      }
    });
  });

  describe('real traffic: client namespace -> node (tc programs) -> backends', () => {
    // Each backend answers with its name and the client address it sees, over TCP and UDP.
    const SERVER = `const [name, tcpPort, udpPort] = process.argv.slice(1);
const plain = (a) => a.replace(/^::ffff:/, '');
require('net').createServer((s) => s.end(name + ' ' + plain(s.remoteAddress))).listen(+tcpPort, '::');
for (const type of ['udp4', 'udp6']) {
  const u = require('dgram').createSocket({ type, ipv6Only: type === 'udp6' });
  u.on('message', (m, r) => u.send(name + ' ' + r.address, r.port, r.address));
  u.bind(+udpPort);
}
setTimeout(() => console.log('listening'), 200);`;
    // A connected socket: a reply from any address but the frontend's is not delivered.
    const CLIENT = `const [kind, host, port] = process.argv.slice(1);
const done = (text) => { console.log(text); process.exit(0); };
setTimeout(() => done('timeout'), 4000);
if (kind === 'tcp') {
  let got = '';
  require('net').connect(+port, host).on('data', (d) => (got += d)).on('end', () => done(got)).on('error', (e) => done(e.code));
} else {
  const u = require('dgram').createSocket(host.includes(':') ? 'udp6' : 'udp4');
  u.on('message', (m) => done(String(m))).on('error', (e) => done(e.code));
  u.connect(+port, host, () => u.send('x'));
}`;
    const ask = async (kind: 'tcp' | 'udp', host: string, port: number) => (await clientHost.exec(process.execPath, ['-e', CLIENT, kind, host, String(port)])).stdout.trim();

    beforeAll(async () => {
      const servers = [await backendHost.spawn('remote-backend', process.execPath, ['-e', SERVER, 'remote', '8080', '8053']), await nodeHost.spawn('local-backend', process.execPath, ['-e', SERVER, 'local', '8081', '8054'])];
      for (const server of servers) await server.waitForLog('listening');
      const backends = [
        { family: 4, name: 'remote', address: '198.19.0.2', local: false, ports: [8080, 8053] },
        { family: 4, name: 'local', address: '198.18.40.2', local: true, ports: [8081, 8054] },
        { family: 6, name: 'remote', address: '2001:db8:19::2', local: false, ports: [8080, 8053] },
        { family: 6, name: 'local', address: '2001:db8:40::2', local: true, ports: [8081, 8054] },
      ] as const;
      let id = 1000;
      for (const b of backends) {
        const frontend = b.family === 4 ? `198.18.50.${b.local ? 2 : 1}` : `2001:db8:50::${b.local ? 2 : 1}`;
        for (const [protocol, port, backendPort] of [['TCP', 80, b.ports[0]], ['UDP', 53, b.ports[1]]] as const) {
          addBackend(++id, { address: b.address, port: backendPort, protocol }, b.local);
          setService(id, { address: frontend, port, protocol }, [id]);
        }
      }
      for (const frontend of ['198.18.50.3', '2001:db8:50::3']) {
        setService(++id, { address: frontend, port: 80, protocol: 'TCP' }, []);
        setService(++id, { address: frontend, port: 53, protocol: 'UDP' }, []);
      }
      // Backends with nothing listening on the port: their kernels answer port unreachable.
      for (const b of backends) {
        const frontend = b.family === 4 ? `198.18.50.${b.local ? 2 : 1}` : `2001:db8:50::${b.local ? 2 : 1}`;
        addBackend(++id, { address: b.address, port: 9999, protocol: 'UDP' }, b.local);
        setService(id, { address: frontend, port: 54, protocol: 'UDP' }, [id]);
      }
      withNetns(nodeNetns, () => {
        map(nodeportMapNames.devices).update(encodeU32(ifindexOf('eth0')), encodeDevice({ ipv4: '198.18.40.2', ipv6: '2001:db8:40::2' }));
        map(nodeportMapNames.devices).update(encodeU32(ifindexOf('eth1')), encodeDevice({ ipv4: '198.19.0.1', ipv6: '2001:db8:19::1' }));
        for (const dev of ['eth0', 'eth1']) attachTc(obj!.program(nodeportPrograms.ingress), dev, 'ingress');
        attachTc(obj!.program(nodeportPrograms.egress), 'eth0', 'egress');
      });
    }, 60_000);

    it.each([
      [4, '198.18.50.1', '198.18.50.2', '198.18.40.2', '198.18.40.1'],
      [6, '2001:db8:50::1', '2001:db8:50::2', '2001:db8:40::2', '2001:db8:40::1'],
    ])('IPv%s: TCP and UDP reach the remote backend from the node address and the local one from the client address', async (_family, remoteFrontend, localFrontend, nodeAddress, clientAddress) => {
      expect(await ask('tcp', remoteFrontend, 80)).toBe(`remote ${nodeAddress}`);
      expect(await ask('udp', remoteFrontend, 53)).toBe(`remote ${nodeAddress}`);
      expect(await ask('tcp', localFrontend, 80)).toBe(`local ${clientAddress}`);
      expect(await ask('udp', localFrontend, 53)).toBe(`local ${clientAddress}`);
    });

    it('a frontend without backends refuses at once: RST, ICMP port unreachable, out of the device they came in on', async () => {
      for (const frontend of ['198.18.50.3', '2001:db8:50::3']) {
        expect(await ask('tcp', frontend, 80)).toBe('ECONNREFUSED');
        expect(await ask('udp', frontend, 53)).toBe('ECONNREFUSED');
      }
    });

    it("a backend's port unreachable reaches the client as an error about its datagram to the frontend", async () => {
      for (const frontend of ['198.18.50.1', '198.18.50.2', '2001:db8:50::1', '2001:db8:50::2']) expect(await ask('udp', frontend, 54)).toBe('ECONNREFUSED');
    });
  });

  it('conntrack holds one forward and one reply entry per flow, all decodable', () => {
    const entries = [...map(nodeportMapNames.conntrack).entries()].map(([k, v]) => ({ key: decodeCtKey(k), value: decodeCt(v) }));
    const forward = entries.filter((e) => !e.value.reply);
    expect(forward.length).toBeGreaterThan(50);
    expect(entries.filter((e) => e.value.reply).length).toBeGreaterThan(50);
    for (const e of forward) expect(e.value.backendId).toBeGreaterThan(100);
  });
});
