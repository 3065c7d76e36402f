// SocketDatapath on the real kernel: planner ops written into the BPF maps read back as the same
// state, adoption of pinned maps after a restart, replacement of incompatible ones, counters, map
// list and the cgroup hooks. No traffic: nothing runs in the private test cgroup. Needs root.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom, type Random } from '../api/random.js';
import { builtObjectPath, cgroup2Root, parseMounts } from '../bpf/index.js';
import { SocketDatapath, type DatapathOptions } from './datapath.js';
import { mapNames, statNames } from './layout.js';
import { frontendKey, type Backend, type Frontend, type FrontendType } from './model.js';
import { applyDelta, emptyDatapathState, planDatapath, planDatapathChanges } from './state.js';

const root = join(import.meta.dirname, '..');
const bpfRoot = `/sys/fs/bpf/beacon-test-dp-${process.pid}`;
const cgroup = join(cgroup2Root(parseMounts(readFileSync('/proc/self/mounts', 'utf8'))) ?? '/sys/fs/cgroup', `beacon-test-dp-${process.pid}`);
const options: DatapathOptions = { bpfRoot, cgroupRoot: cgroup, maglevTableSize: 251, lbMapMax: 1024 };
const plan = { maglevTableSize: 251 };

const be = (address: string, port = 8080, extra: Partial<Backend> = {}): Backend => ({ address, port, protocol: 'TCP', state: 'active', ...extra });
const fe = (address: string, port: number, selected: Backend[], extra: Partial<Frontend> = {}): Frontend => ({
  address,
  port,
  protocol: 'TCP',
  type: 'ClusterIP',
  service: 'shop/web',
  algorithm: 'random',
  backends: selected,
  selected,
  ...extra,
});

const udp = (b: Backend): Backend => ({ ...b, protocol: 'UDP' });
const mix: Frontend[] = [
  fe('198.18.100.1', 80, [be('198.18.1.1'), be('198.18.1.2'), be('198.18.1.3', 8080, { state: 'terminating' })]),
  fe('198.18.100.2', 443, [be('198.18.1.2'), be('198.18.1.4')], { type: 'LoadBalancer', algorithm: 'maglev', service: 'shop/api' }),
  fe('198.18.100.3', 53, [udp(be('198.18.1.5', 8053)), udp(be('198.18.1.6', 8053))], { protocol: 'UDP', type: 'ExternalIP', affinityTimeoutSeconds: 10800 }),
  fe('2001:db8:100::1', 80, [be('2001:db8:1::1'), be('2001:db8:1::2')], { algorithm: 'maglev', affinityTimeoutSeconds: 60 }),
  fe('2001:db8:100::2', 30080, [udp(be('2001:db8:1::3', 8053))], { protocol: 'UDP', type: 'NodePort' }),
  fe('198.18.100.4', 80, [], { service: 'shop/empty' }),
  fe('198.18.100.5', 80, [], { service: 'shop/empty', algorithm: 'maglev' }),
];

let datapath: SocketDatapath | undefined;

function open(extra: Partial<DatapathOptions> = {}): SocketDatapath {
  datapath?.close();
  datapath = SocketDatapath.open({ ...options, ...extra });
  return datapath;
}

function closeDatapath(): void {
  datapath?.close();
  datapath = undefined;
}

/** Starts from nothing pinned: each test owns the datapath it opens. */
function fresh(): SocketDatapath {
  closeDatapath();
  SocketDatapath.remove(bpfRoot);
  return open();
}

const bpftool = (...args: string[]): unknown => JSON.parse(execFileSync('bpftool', ['-j', ...args], { encoding: 'utf8' }).trim() || '[]');
const cgroupHooks = () => (bpftool('cgroup', 'show', cgroup) as { attach_type: string }[]).map((h) => h.attach_type).sort();
const entriesOf = (dp: SocketDatapath) => Object.fromEntries(dp.mapList().map((m) => [m.name, m.entries]));
const idsOf = (dp: SocketDatapath) => Object.fromEntries(dp.mapList().map((m) => [m.name, m.id]));

beforeAll(() => {
  if (!existsSync(builtObjectPath('lb'))) execFileSync('bash', [join(root, 'scripts/build-bpf.sh')], { stdio: 'pipe' });
  mkdirSync(cgroup, { recursive: true });
});

afterEach(closeDatapath);

afterAll(() => {
  closeDatapath();
  SocketDatapath.remove(bpfRoot);
  if (existsSync(cgroup)) rmdirSync(cgroup);
});

describe('SocketDatapath on the kernel', () => {
  it('reads back exactly what a plan from empty wrote: v4 and v6, TCP and UDP, Maglev, affinity, no backends', () => {
    const dp = fresh();
    const { ops, next, problems } = planDatapath(emptyDatapathState(), mix, plan);
    expect(problems).toEqual([]);
    dp.apply(ops);
    const read = dp.read();
    expect(read.backends).toEqual(next.backends);
    expect(read.services).toEqual(next.services);
    const maglev = read.services.get('198.18.100.2:443/TCP')!.maglev!;
    expect(maglev).toHaveLength(251);
    expect(maglev).toEqual(next.services.get('198.18.100.2:443/TCP')!.maglev);
    expect(read.services.get('198.18.100.5:80/TCP')).toMatchObject({ algorithm: 'maglev', slots: [] });
    expect(read.services.get('198.18.100.5:80/TCP')!.maglev).toBeUndefined();
  });

  it('follows ~30 random incremental edits: after each, the maps read back as the in-memory state', () => {
    const dp = fresh();
    const random = seededRandom(20261126);
    const state = emptyDatapathState();
    const desired = new Map<string, Frontend>();
    for (let step = 0; step < 30; step++) {
      const changed = new Map<string, Frontend | undefined>();
      const edits = 1 + Math.floor(random() * 3);
      for (let i = 0; i < edits; i++) {
        const f = randomFrontend(random);
        const key = frontendKey(f);
        const gone = desired.has(key) && random() < 0.3;
        if (gone) desired.delete(key);
        else desired.set(key, f);
        changed.set(key, gone ? undefined : f);
      }
      const { ops, delta } = planDatapathChanges(state, changed, plan);
      dp.apply(ops);
      applyDelta(state, delta);
      expect(dp.read(), `step ${step}`).toEqual(state);
    }
    // The incremental state is what a full plan would reach: nothing left to write.
    expect(planDatapath(dp.read(), [...desired.values()], plan).ops).toEqual([]);
  });

  it('adopts its pinned maps after a restart: same map ids, same contents, nothing to write', () => {
    const dp = fresh();
    const { ops, next } = planDatapath(emptyDatapathState(), mix, plan);
    dp.apply(ops);
    const ids = idsOf(dp);
    const before = dp.read();
    closeDatapath();
    const warnings: string[] = [];
    const again = open({ warn: (m) => warnings.push(m) });
    expect(warnings).toEqual([]);
    expect(idsOf(again)).toEqual(ids);
    const adopted = again.read();
    expect(adopted).toEqual(before);
    expect(adopted).toEqual(next);
    expect(planDatapath(adopted, mix, plan).ops).toEqual([]);
    expect(cgroupHooks()).toHaveLength(8);
  });

  it('adopt() deletes slots and Maglev tables no service entry can reach, and keeps the rest', () => {
    const dp = fresh();
    const { ops, next } = planDatapath(emptyDatapathState(), mix, plan);
    dp.apply(ops);
    const counted = entriesOf(dp);
    const web = next.services.get('198.18.100.1:80/TCP')!; // random, three slots
    const api = next.services.get('198.18.100.2:443/TCP')!; // Maglev
    const orphan = Math.max(...[...next.services.values()].map((s) => s.id)) + 1;
    // What a crash between the planner's steps leaves: slots past a count, an id without a frontend.
    dp.apply([
      { op: 'setSlots', serviceId: web.id, slots: [web.slots.length + 1], backendIds: [web.slots[0]!] },
      { op: 'setSlots', serviceId: orphan, slots: [1], backendIds: [web.slots[0]!] },
      { op: 'setMaglev', serviceId: orphan, table: api.maglev! },
      { op: 'setMaglev', serviceId: web.id, table: api.maglev! },
    ]);
    expect(entriesOf(dp)[mapNames.slots]).toBe(counted[mapNames.slots]! + 2);
    expect(dp.adopt()).toEqual(next);
    expect(entriesOf(dp)).toEqual(counted);
    expect(planDatapath(dp.read(), mix, plan).ops).toEqual([]);
  });

  it('replaces maps sized for another --bpf-lb-map-max, says so, and starts them empty', () => {
    const dp = fresh();
    dp.apply(planDatapath(emptyDatapathState(), mix, plan).ops);
    const ids = idsOf(dp);
    closeDatapath();
    const warnings: string[] = [];
    const again = open({ lbMapMax: 2048, warn: (m) => warnings.push(m) });
    const resized = [mapNames.services, mapNames.backends, mapNames.slots, mapNames.maglev, mapNames.affinity, mapNames.revnat];
    expect(warnings).toHaveLength(resized.length);
    for (const name of resized) expect(warnings.some((w) => w.startsWith(`pinned map ${name} `))).toBe(true);
    expect(again.read()).toEqual(emptyDatapathState());
    const now = idsOf(again);
    for (const name of resized) expect(now[name]).not.toBe(ids[name]);
    expect(now[mapNames.stats]).toBe(ids[mapNames.stats]);
    expect(Object.fromEntries(again.mapList().map((m) => [m.name, m.maxEntries]))).toMatchObject({ [mapNames.services]: 2048, [mapNames.slots]: 2048 * 8, [mapNames.revnat]: 2048 * 4 });
    // The replaced maps work: the same plan writes and reads back.
    const { ops, next } = planDatapath(again.read(), mix, plan);
    again.apply(ops);
    expect(again.read()).toEqual(next);
  });

  it('reports every counter (zero on a fresh datapath) and lists the 8 maps with their entry counts', () => {
    const dp = fresh();
    expect(dp.stats()).toEqual(Object.fromEntries(statNames.map((n) => [n, 0])));
    const { ops, next } = planDatapath(emptyDatapathState(), mix, plan);
    dp.apply(ops);
    expect(dp.mapList().map((m) => m.name).sort()).toEqual(Object.values(mapNames).sort());
    const slots = [...next.services.values()].reduce((n, s) => n + s.slots.length, 0);
    const tables = [...next.services.values()].filter((s) => s.maglev).length;
    expect(entriesOf(dp)).toEqual({
      [mapNames.services]: mix.length,
      [mapNames.backends]: next.backends.size,
      [mapNames.slots]: slots,
      [mapNames.maglev]: tables,
      [mapNames.affinity]: 0,
      [mapNames.revnat]: 0,
      [mapNames.config]: 1,
      [mapNames.stats]: statNames.length,
    });
    expect(dp.map(mapNames.config)?.info.name).toBe(mapNames.config);
    expect(dp.maglevTableSize).toBe(251);
  });

  it('reads through openPinned as the CLI does', () => {
    const dp = fresh();
    const { ops, next } = planDatapath(emptyDatapathState(), mix, plan);
    dp.apply(ops);
    const pinned = SocketDatapath.openPinned(bpfRoot)!;
    try {
      expect(pinned.maglevTableSize).toBe(251);
      expect(pinned.read()).toEqual(next);
    } finally {
      pinned.close();
    }
    expect(SocketDatapath.openPinned(`${bpfRoot}-absent`)).toBeUndefined();
  });

  it('attaches the 8 socket hooks to the cgroup, and remove() detaches them and unpins everything', () => {
    fresh();
    expect(cgroupHooks()).toEqual(
      [
        'cgroup_inet4_connect',
        'cgroup_inet6_connect',
        'cgroup_udp4_sendmsg',
        'cgroup_udp6_sendmsg',
        'cgroup_udp4_recvmsg',
        'cgroup_udp6_recvmsg',
        'cgroup_inet4_getpeername',
        'cgroup_inet6_getpeername',
      ].sort(),
    );
    closeDatapath();
    SocketDatapath.remove(bpfRoot);
    expect(cgroupHooks()).toEqual([]);
    expect(existsSync(bpfRoot)).toBe(false);
  });
});

const frontendAddresses = ['198.18.100.1', '198.18.100.2', '198.18.100.3', '2001:db8:100::1', '2001:db8:100::2'];
const types: FrontendType[] = ['ClusterIP', 'LoadBalancer', 'ExternalIP', 'NodePort'];
const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

/** A frontend from a small pool of keys, with a random subset of a small pool of backends of its family. */
function randomFrontend(random: Random): Frontend {
  const address = pick(random, frontendAddresses);
  const protocol = pick(random, ['TCP', 'UDP'] as const);
  // A backend's state belongs to its endpoint, so every frontend that selects it agrees on it.
  const pool = Array.from({ length: 8 }, (_, i) => be(address.includes(':') ? `2001:db8:1::${i + 1}` : `198.18.1.${i + 1}`, 8080 + (i % 2), { protocol, state: i % 4 === 3 ? 'terminating' : 'active' }));
  const selected = pool.filter(() => random() < 0.4);
  return fe(address, pick(random, [80, 443]), selected, {
    protocol,
    type: pick(random, types),
    algorithm: random() < 0.5 ? 'maglev' : 'random',
    ...(random() < 0.3 ? { affinityTimeoutSeconds: 1 + Math.floor(random() * 1000) } : {}),
  });
}
