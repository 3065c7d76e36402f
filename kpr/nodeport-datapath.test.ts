// NodePortDatapath on the real kernel: it shares the socket datapath's pinned service tables (the
// same kernel maps, so one write reaches both), puts its two programs on a device of a lab
// namespace with our own filter handle (another filter there stays), keeps the node's addresses
// per device in a pinned map that a restart finds, and detaches cleanly. Needs root.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfMap, BpfObject, attachTc, cgroup2Root, ifindexOf, parseMounts, queryTc, withNetns } from '../bpf/index.js';
import { Lab, type LabHost } from '../lab/index.js';
import { SocketDatapath } from './datapath.js';
import { mapNames } from './layout.js';
import { NodePortDatapath, deviceAddresses, nodeportFilter } from './nodeport-datapath.js';
import { nodeportMapNames } from './nodeport-layout.js';

const root = join(import.meta.dirname, '..');
const bpfRoot = `/sys/fs/bpf/beacon-test-np-${process.pid}`;
const cgroup = join(cgroup2Root(parseMounts(readFileSync('/proc/self/mounts', 'utf8'))) ?? '/sys/fs/cgroup', `beacon-test-np-${process.pid}`);
const sizes = { bpfRoot, maglevTableSize: 251, lbMapMax: 1024 };

describe('deviceAddresses', () => {
  it('takes the first IPv4 and the first global IPv6 address', () => {
    const list = ['fe80::1', '198.18.0.2', '198.18.0.3', '2001:db8::2', '2001:db8::3'].map((ip) => ({ ip }));
    expect(deviceAddresses(list)).toEqual({ ipv4: '198.18.0.2', ipv6: '2001:db8::2' });
    expect(deviceAddresses([{ ip: 'FE80::1' }])).toEqual({});
  });
});

describe('NodePortDatapath', () => {
  let lab: Lab | undefined;
  let node: LabHost;
  let socket: SocketDatapath | undefined;
  let nodeport: NodePortDatapath | undefined;
  let other: BpfObject | undefined;

  beforeAll(async () => {
    execFileSync('bash', [join(root, 'scripts/build-bpf.sh')], { stdio: 'pipe' });
    mkdirSync(cgroup, { recursive: true });
    lab = await Lab.create({ name: 'npdp' });
    const peer = await lab.host('peer');
    node = await lab.host('node');
    await lab.link(node, peer, { a: { addresses: ['198.18.0.1/24', '2001:db8::1/64'] }, b: { addresses: ['198.18.0.2/24'] } });
  });
  afterAll(async () => {
    nodeport?.close();
    other?.close();
    socket?.close();
    SocketDatapath.remove(bpfRoot);
    rmSync(cgroup, { recursive: true, force: true });
    await lab?.destroy({ graceMs: 500 }).catch(() => lab?.destroySync());
  });

  const mapId = (name: string) => BpfMap.openPinned(join(bpfRoot, name));

  it('shares the service tables with the socket datapath, in either load order', () => {
    nodeport = NodePortDatapath.open(sizes);
    socket = SocketDatapath.open({ ...sizes, cgroupRoot: cgroup });
    for (const name of [mapNames.services, mapNames.backends, mapNames.slots, mapNames.maglev, mapNames.config]) {
      const pinned = mapId(name);
      try {
        // The socket datapath adopted what the north-south one pinned first: one kernel map each.
        expect(socket.map(name)!.info.id, name).toBe(pinned.info.id);
      } finally {
        pinned.close();
      }
    }
    const ct = mapId(nodeportMapNames.conntrack);
    expect(ct.info.maxEntries).toBe(4 * sizes.lbMapMax);
    ct.close();
  });

  it('attaches on a device with its own filter handle, beside a filter already there, and detaches', async () => {
    const netns = `/var/run/netns/${node.namespace}`;
    // Another program's filter on the same hook must survive ours coming and going.
    other = BpfObject.open(join(root, 'dist/bpf/testdata/fixture.o'), { pinRoot: join(bpfRoot, 'other') });
    other.load();
    withNetns(netns, () => attachTc(other!.program('classify'), 'eth0', 'ingress', { handle: 1, priority: 1 }));
    const ifindex = withNetns(netns, () => ifindexOf('eth0'));

    withNetns(netns, () => nodeport!.attach(ifindex, { ipv4: '198.18.0.1', ipv6: '2001:db8::1' }));
    const filters = (await node.exec('tc', ['filter', 'show', 'dev', 'eth0', 'ingress'])).stdout;
    // The kernel keeps 15 characters of a program's name.
    expect(filters).toContain('handle 0xbeac beacon_np_ingre');
    expect(filters).toContain('handle 0x1 classify');
    expect((await node.exec('tc', ['filter', 'show', 'dev', 'eth0', 'egress'])).stdout).toContain('handle 0xbeac beacon_np_egres');
    expect(nodeport!.devices()).toEqual(new Map([[ifindex, { ipv4: '198.18.0.1', ipv6: '2001:db8::1' }]]));

    // A restarted agent finds the devices in the pinned map and replaces its filters in place.
    nodeport!.close();
    nodeport = NodePortDatapath.open(sizes);
    expect([...nodeport.devices().keys()]).toEqual([ifindex]);
    withNetns(netns, () => nodeport!.attach(ifindex, { ipv4: '198.18.0.1' }));
    expect((await node.exec('tc', ['filter', 'show', 'dev', 'eth0', 'ingress'])).stdout.match(/handle 0xbeac/g)).toHaveLength(1);
    expect(nodeport.devices().get(ifindex)).toEqual({ ipv4: '198.18.0.1' });

    withNetns(netns, () => nodeport!.detach(ifindex, true));
    withNetns(netns, () => {
      expect(queryTc('eth0', 'ingress', nodeportFilter)).toBeUndefined();
      expect(queryTc('eth0', 'egress', nodeportFilter)).toBeUndefined();
      expect(queryTc('eth0', 'ingress', { handle: 1, priority: 1 })).toBeGreaterThan(0);
    });
    expect(nodeport.devices().size).toBe(0);

    // `beacon bpf cleanup`: the pinned devices map says where the filters are.
    withNetns(netns, () => nodeport!.attach(ifindex, { ipv4: '198.18.0.1' }));
    expect(withNetns(netns, () => NodePortDatapath.detachAll(bpfRoot))).toEqual([ifindex]);
    expect(nodeport.devices().size).toBe(0); // forgotten too: a later run must not adopt it as carrying the programs
    expect((await node.exec('tc', ['filter', 'show', 'dev', 'eth0', 'ingress'])).stdout).not.toContain('0xbeac');
    expect(NodePortDatapath.pinnedMaps(bpfRoot).map((m) => (m.close(), m.info.name)).sort()).toEqual(Object.values(nodeportMapNames).sort());
  });
});
