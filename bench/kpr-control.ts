// KPR control-plane benchmark (`npm run bench:kpr-control`; `-- --sizes 10000` for one size,
// `-- --no-peer` without iptables, `-- --json` for the JSON line only). A benchmark, not a test:
// it prints figures and checks, and never fails on a timing.
//
// From an empty datapath, S ClusterIP services × 10 backends go through the agent's own path
// (agent/kpr.ts): buildFrontends → planDatapathFull → SocketDatapath.apply → applyDelta for the full
// pass, and buildFrontends of one service → planDatapathChanges → apply → applyDelta for one
// update. Real BPF maps under a private bpffs directory, hooks attached to a private, empty
// cgroup (no process is in it, so no socket is ever translated); nothing is sent on any network.
// Then adoption (reopen the pinned maps, read them back, re-plan: must be 0 ops), kernel memory
// of the maps (fdinfo memlock), and a Maglev variant.
//
// The peer, in the same run: kube-proxy's iptables mode, i.e. the same services as KUBE-SERVICES →
// KUBE-SVC-* → KUBE-SEP-* nat rules given to iptables-restore inside a network namespace created
// here, and one change as kube-proxy's partial sync writes it (iptables-restore --noflush).
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { EndpointSlice, Service } from '../api/index.js';
import { BpfMap, cgroup2Root, parseMounts } from '../bpf/index.js';
import { SocketDatapath } from '../kpr/datapath.js';
import {
  DEFAULT_MAGLEV_TABLE_SIZE,
  applyDelta,
  buildFrontends,
  emptyDatapathState,
  frontendKey,
  mapNames,
  planDatapath,
  planDatapathFull,
  planDatapathChanges,
  type Algorithm,
  type DatapathState,
  type Frontend,
  type PlanOptions,
} from '../kpr/index.js';
import { iptablesChange, iptablesRuleset, iptablesServiceRule, type BenchService } from './kpr-peers.js';
import { gc, median, percentile, time } from './measure.js';

const { values: flags } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10000,100000' },
    updates: { type: 'string', default: '200' },
    'maglev-services': { type: 'string', default: '10000' },
    'no-peer': { type: 'boolean', default: false },
    /** iptables-restore (Debian's default, nf_tables backend) or iptables-legacy-restore. */
    'iptables-restore': { type: 'string', default: 'iptables-restore' },
    json: { type: 'boolean', default: false },
  },
});
const SIZES = flags.sizes.split(',').map(Number);
const UPDATES = Number(flags.updates);
const MAGLEV_SERVICES = Number(flags['maglev-services']);
const BACKENDS_PER_SERVICE = 10;
/** Backend identities: 10,000 services get distinct backends; beyond that each backend is behind several services. */
const BACKEND_POOL = 100_000;
/** --bpf-lb-map-max: 100,000 services and 100,000 backends fit; slots get 8× (1,048,576 ≥ 1,000,000). */
const LB_MAP_MAX = 131_072;
const MAGLEV_TABLE_SIZE = 1021;
const NODE = 'node-0';
const targets = { programMs: 1000, updateMs: 5 } as const;
/** Hard bounds: the whole run, one iptables-restore of a full ruleset, the iptables changes per size. */
const RUN_DEADLINE = Date.now() + 30 * 60_000;
const RESTORE_TIMEOUT_MS = 240_000;
const PEER_CHANGE_BUDGET_MS = 60_000;
const PEER_CHANGES = 20;
/** Updates before the measured ones: the first calls of the incremental path run cold (JIT, first map writes). */
const WARMUP_UPDATES = 10;
const IPTABLES_RESTORE = flags['iptables-restore'];
if (!/^iptables(-legacy|-nft)?-restore$/.test(IPTABLES_RESTORE)) throw new Error(`--iptables-restore must be iptables[-legacy|-nft]-restore, not ${IPTABLES_RESTORE}`);

// ---- workload -------------------------------------------------------------------------------------
// Only 198.18.0.0/15 (RFC 2544), and only in maps: ClusterIPs in 198.18.0.0/16 (port 80, then 81
// once the /16 is used up), backends in 198.19.0.0/16: pool backend j is 198.19.0.0 + (j mod 50,000)
// on port 8080 + ⌊j / 50,000⌋, so one service's 10 backends share a target port (one slice).
// Fresh backends for updates come from 198.19.195.80 up (offset 50,000), outside the pool.

const v4 = (base: number, offset: number): string => {
  const n = (base + offset) >>> 0;
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
};
const CLUSTER_BASE = (198 << 24) | (18 << 16);
const BACKEND_BASE = (198 << 24) | (19 << 16);
const POOL_BAND = 50_000;

const nameOf = (i: number): { namespace: string; name: string } => ({ namespace: `bench-${Math.floor(i / 1000)}`, name: `svc-${i}` });
const frontendOf = (i: number): { address: string; port: number } => ({ address: v4(CLUSTER_BASE, i % 65_536), port: 80 + Math.floor(i / 65_536) });
const firstBackend = (i: number): number => (i * BACKENDS_PER_SERVICE) % BACKEND_POOL;
const targetPortOf = (i: number): number => 8080 + Math.floor(firstBackend(i) / POOL_BAND);
const poolAddresses = (i: number): string[] =>
  Array.from({ length: BACKENDS_PER_SERVICE }, (_, k) => v4(BACKEND_BASE, (firstBackend(i) + k) % POOL_BAND));
const freshAddress = (update: number): string => v4(BACKEND_BASE, POOL_BAND + update);

function makeService(i: number, algorithm: Algorithm): Service {
  const { namespace, name } = nameOf(i);
  const { address, port } = frontendOf(i);
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace, name, annotations: { 'beacon.io/lb-algorithm': algorithm } },
    spec: { type: 'ClusterIP', clusterIP: address, clusterIPs: [address], ports: [{ name: 'http', port, protocol: 'TCP', targetPort: targetPortOf(i) }] },
  };
}

function makeSlice(i: number, addresses: readonly string[]): EndpointSlice {
  const { namespace, name } = nameOf(i);
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace, name: `${name}-x7k2p`, labels: { 'kubernetes.io/service-name': name } },
    addressType: 'IPv4',
    endpoints: addresses.map((address, k) => ({ addresses: [address], conditions: { ready: true, serving: true, terminating: false }, nodeName: `node-${k}` })),
    ports: [{ name: 'http', port: targetPortOf(i), protocol: 'TCP' }],
  };
}

/** Update r: service (r × 7919) mod S (distinct services, spread over the set) gets backend r mod 10 replaced by a fresh one. */
const updatedService = (r: number, services: number): number => (r * 7919) % services;

// ---- measuring ------------------------------------------------------------------------------------

const maxRssMB = (): number => process.resourceUsage().maxRSS / 1024;
const rssMB = (): number => process.memoryUsage().rss / 2 ** 20;
const checkDeadline = (what: string): void => {
  if (Date.now() > RUN_DEADLINE) throw new Error(`benchmark deadline passed before ${what}`);
};

/** The kernel's charge for a map (fdinfo "memlock": bpf_map_memory_usage on Linux ≥ 6.5). */
const memlockOf = (fd: number): number => Number(/^memlock:\s*(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1] ?? NaN);

// ---- private kernel objects and their cleanup -----------------------------------------------------

const bpfRoot = `/sys/fs/bpf/beacon-bench-${process.pid}`;
const cgroupBase = cgroup2Root(parseMounts(readFileSync('/proc/self/mounts', 'utf8')));
if (cgroupBase === undefined) throw new Error('no cgroup v2 mount in /proc/self/mounts');
const cgroupRoot = join(cgroupBase, `beacon-bench-${process.pid}`);
const netns = `beacon-bench-ipt-${process.pid}`;
let datapath: SocketDatapath | undefined;
let netnsCreated = false;

const run = (cmd: string, args: readonly string[], input?: string, timeout = 30_000) =>
  spawnSync(cmd, args, { input, timeout, maxBuffer: 16 * 2 ** 20, encoding: 'utf8' });

function cleanup(): void {
  const steps: [string, () => void][] = [
    ['close datapath', () => datapath?.close()],
    ['remove pins', () => SocketDatapath.remove(bpfRoot)],
    ['remove cgroup', () => rmdirSync(cgroupRoot)],
    ['delete netns', () => netnsCreated && run('ip', ['netns', 'del', netns])],
  ];
  datapath = undefined;
  for (const [what, step] of steps) {
    try {
      step();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') process.stderr.write(`cleanup: ${what}: ${(e as Error).message}\n`);
    }
  }
  netnsCreated = false;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    cleanup();
    process.exit(130);
  });
}

const log = (line = ''): void => {
  if (!flags.json) process.stdout.write(`${line}\n`);
};
/** Progress on stderr: a full run takes minutes. */
const progress = (what: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${what}\n`);
};

// ---- Beacon ---------------------------------------------------------------------------------------

interface UpdateParts {
  buildMs: number;
  planMs: number;
  applyMs: number;
  applyDeltaMs: number;
}

interface BeaconRun {
  services: number;
  algorithm: Algorithm;
  maglevTableSize: number;
  program: { buildMs: number; planMs: number; applyMs: number; applyDeltaMs: number; totalMs: number; ops: number; problems: number; frontends: number; backends: number };
  update: { n: number; medianMs: number; p99Ms: number; maxMs: number; parts: UpdateParts; opsMedian: number; cold: UpdateParts & { totalMs: number } };
  adopt: { openMs: number; readMs: number; replanBuildMs: number; replanPlanMs: number; replanOps: number; sameSize: boolean };
  kernel: { mapsMB: number; perMaglevTableBytes?: number; maglevTables?: number; maglevTablesMB?: number };
  rss: { afterProgramMB: number; afterUpdatesMB: number; maxSoFarMB: number };
}

function beaconRun(S: number, algorithm: Algorithm): BeaconRun {
  checkDeadline(`${S} services (${algorithm})`);
  progress(`Beacon: ${S} services, ${algorithm}`);
  const maglevTableSize = algorithm === 'maglev' ? MAGLEV_TABLE_SIZE : DEFAULT_MAGLEV_TABLE_SIZE;
  const open = (): SocketDatapath => SocketDatapath.open({ bpfRoot, cgroupRoot, maglevTableSize, lbMapMax: LB_MAP_MAX });
  const opts: PlanOptions = { maglevTableSize, maxServices: LB_MAP_MAX, maxBackends: LB_MAP_MAX, nodeName: NODE };
  const frontendsOf = (services: Service[], slices: EndpointSlice[]) =>
    buildFrontends({ services, slices, nodeName: NODE, nodeAddresses: [], defaultAlgorithm: 'random' });

  const services = Array.from({ length: S }, (_, i) => makeService(i, algorithm));
  const slices = Array.from({ length: S }, (_, i) => makeSlice(i, poolAddresses(i)));
  datapath = open();
  try {
    // 1. Program S services from an empty datapath, as the agent's first full pass does.
    gc();
    const state: DatapathState = emptyDatapathState();
    const [built, buildMs] = time(() => frontendsOf(services, slices));
    const [plan, planMs] = time(() => planDatapathFull(state, built.frontends, opts));
    const dp = datapath;
    const [, applyMs] = time(() => dp.apply(plan.ops));
    const [, applyDeltaMs] = time(() => applyDelta(state, plan.delta));
    const program = {
      buildMs, planMs, applyMs, applyDeltaMs, totalMs: buildMs + planMs + applyMs + applyDeltaMs,
      ops: plan.ops.length, problems: built.problems.length + plan.problems.length, frontends: state.services.size, backends: state.backends.size,
    };
    const afterProgramMB = rssMB();

    // 2. One service's endpoints change: one backend replaced by a fresh one, the agent's incremental path.
    const n = Math.min(UPDATES, S - WARMUP_UPDATES);
    const latency: number[] = [];
    const parts = { build: [] as number[], plan: [] as number[], apply: [] as number[], applyDelta: [] as number[] };
    const opCounts: number[] = [];
    gc();
    for (let r = 0; r < WARMUP_UPDATES + n; r++) {
      const i = updatedService(r, S);
      const addresses = slices[i]!.endpoints!.map((e) => e.addresses[0]!);
      addresses[r % BACKENDS_PER_SERVICE] = freshAddress(r);
      slices[i] = makeSlice(i, addresses);
      const t0 = performance.now();
      const { frontends } = frontendsOf([services[i]!], [slices[i]]);
      const t1 = performance.now();
      const change = planDatapathChanges(state, new Map(frontends.map((f): [string, Frontend] => [frontendKey(f), f])), opts);
      const t2 = performance.now();
      dp.apply(change.ops);
      const t3 = performance.now();
      applyDelta(state, change.delta);
      const t4 = performance.now();
      latency.push(t4 - t0);
      parts.build.push(t1 - t0);
      parts.plan.push(t2 - t1);
      parts.apply.push(t3 - t2);
      parts.applyDelta.push(t4 - t3);
      opCounts.push(change.ops.length);
    }
    const measured = <T>(values: T[]): T[] => values.slice(WARMUP_UPDATES);
    const update = {
      n, medianMs: median(measured(latency)), p99Ms: percentile(measured(latency), 0.99), maxMs: Math.max(...measured(latency)),
      parts: { buildMs: median(measured(parts.build)), planMs: median(measured(parts.plan)), applyMs: median(measured(parts.apply)), applyDeltaMs: median(measured(parts.applyDelta)) },
      opsMedian: median(measured(opCounts)),
      cold: { totalMs: latency[0]!, buildMs: parts.build[0]!, planMs: parts.plan[0]!, applyMs: parts.apply[0]!, applyDeltaMs: parts.applyDelta[0]! },
    };
    const afterUpdatesMB = rssMB();

    // Kernel memory of the maps, and of one Maglev table (an inner array map).
    const mapsBytes = Object.values(mapNames).reduce((sum, name) => sum + memlockOf(dp.map(name)!.fd), 0);
    let kernel: BeaconRun['kernel'] = { mapsMB: mapsBytes / 2 ** 20 };
    if (algorithm === 'maglev') {
      const ids = [...dp.map('beacon_maglev')!.entries()].map(([, v]) => v.readUInt32LE(0));
      const table = BpfMap.fromId(ids[0]!);
      const perTable = memlockOf(table.fd);
      table.close();
      kernel = { ...kernel, perMaglevTableBytes: perTable, maglevTables: ids.length, maglevTablesMB: (perTable * ids.length) / 2 ** 20 };
    }

    // 3. Adoption, as after an agent restart: reopen the pinned maps, read them, re-plan everything.
    dp.close();
    datapath = undefined;
    gc();
    const [reopened, openMs] = time(open);
    datapath = reopened;
    const [adopted, readMs] = time(() => reopened.read());
    const [desired, replanBuildMs] = time(() => frontendsOf(services, slices).frontends);
    const [replan, replanPlanMs] = time(() => planDatapath(adopted, desired, opts));
    const adopt = { openMs, readMs, replanBuildMs, replanPlanMs, replanOps: replan.ops.length, sameSize: adopted.services.size === state.services.size && adopted.backends.size === state.backends.size };
    return { services: S, algorithm, maglevTableSize, program, update, adopt, kernel, rss: { afterProgramMB, afterUpdatesMB, maxSoFarMB: maxRssMB() } };
  } finally {
    datapath?.close();
    datapath = undefined;
    SocketDatapath.remove(bpfRoot);
  }
}

// ---- the peer: kube-proxy's iptables rules -------------------------------------------------------
// The rule text comes from kpr-peers.ts (KUBE-SERVICES → KUBE-SVC-* → KUBE-SEP-*, as
// kube-proxy's iptables mode writes it), here for the same services as Beacon's.

const benchService = (i: number, backends: readonly string[] = poolAddresses(i)): BenchService => ({
  ...nameOf(i), portName: 'http', ...frontendOf(i), targetPort: targetPortOf(i), backends,
});
const fullRuleset = (S: number): { text: string; rules: number } => iptablesRuleset(Array.from({ length: S }, (_, i) => benchService(i)));

interface PeerRun {
  services: number;
  rules: number;
  inputMB: number;
  generateMs: number;
  restore: { ms: number | undefined; ok: boolean; error?: string };
  netnsExecMs: number;
  change?: { n: number; chainsOnlyMedianMs: number; chainsOnlyP99Ms: number; kubeProxyMedianMs: number; kubeProxyP99Ms: number; kubeProxyInputKB: number };
}

function restore(text: string, noflush: boolean, timeout = RESTORE_TIMEOUT_MS): { ms: number; ok: boolean; error?: string } {
  const t0 = performance.now();
  const r = run('ip', ['netns', 'exec', netns, IPTABLES_RESTORE, ...(noflush ? ['--noflush'] : [])], text, timeout);
  const ms = performance.now() - t0;
  const ok = r.status === 0;
  return ok ? { ms, ok } : { ms, ok, error: r.error ? r.error.message : `exit ${r.status ?? r.signal}: ${r.stderr.trim().split('\n')[0]}` };
}

function peerRun(S: number): PeerRun {
  checkDeadline(`the iptables peer at ${S}`);
  progress(`${IPTABLES_RESTORE}: ${S} services`);
  const made = run('ip', ['netns', 'add', netns]);
  if (made.status !== 0) throw new Error(`ip netns add ${netns}: ${made.stderr}`);
  netnsCreated = true;
  try {
    const execs = Array.from({ length: 5 }, () => time(() => run('ip', ['netns', 'exec', netns, 'true']))[1]);
    const [{ text, rules }, generateMs] = time(() => fullRuleset(S));
    const full = restore(text, false);
    const result: PeerRun = {
      services: S, rules, inputMB: Buffer.byteLength(text) / 2 ** 20, generateMs,
      restore: full.ok ? { ms: full.ms, ok: true } : { ms: undefined, ok: false, error: full.error! }, netnsExecMs: median(execs),
    };
    progress(`iptables-restore: full ruleset ${full.ok ? `in ${Math.round(full.ms)} ms` : `failed: ${full.error}`}`);
    if (!full.ok) return result;

    // One change, the same as Beacon's updates: backend r mod 10 of service (r × 7919) mod S replaced.
    // kube-proxy's partial sync rewrites KUBE-SERVICES in full plus the changed service's chains,
    // and deletes the endpoint chain that went away; "chains only" is the least any writer must send.
    const allServiceRules = Array.from({ length: S }, (_, i) => iptablesServiceRule(benchService(i)));
    const chainsOnly: number[] = [];
    const kubeProxy: number[] = [];
    let inputBytes = 0;
    const started = performance.now();
    for (let r = 0; r < PEER_CHANGES && performance.now() - started < PEER_CHANGE_BUDGET_MS; r++) {
      const i = updatedService(r, S);
      const before = benchService(i);
      const after = [...before.backends];
      after[r % BACKENDS_PER_SERVICE] = freshAddress(r);
      const changed = benchService(i, after);
      const chainsText = iptablesChange(before, changed);
      const kubeProxyText = iptablesChange(changed, before, allServiceRules);
      inputBytes = Buffer.byteLength(kubeProxyText);
      // Forward (chains only) then back to the pool backend (kube-proxy form): the ruleset returns to its start.
      const a = restore(chainsText, true, 60_000);
      const b = restore(kubeProxyText, true, 60_000);
      if (!a.ok || !b.ok) throw new Error(`iptables-restore --noflush failed: ${a.error ?? b.error}`);
      chainsOnly.push(a.ms);
      kubeProxy.push(b.ms);
    }
    result.change = {
      n: chainsOnly.length,
      chainsOnlyMedianMs: median(chainsOnly), chainsOnlyP99Ms: percentile(chainsOnly, 0.99),
      kubeProxyMedianMs: median(kubeProxy), kubeProxyP99Ms: percentile(kubeProxy, 0.99), kubeProxyInputKB: inputBytes / 1024,
    };
    return result;
  } finally {
    run('ip', ['netns', 'del', netns]);
    netnsCreated = false;
  }
}

// ---- run ------------------------------------------------------------------------------------------

const ms = (v: number | undefined): string => (v === undefined ? '–' : v < 10 ? `${v.toFixed(2)} ms` : `${v.toFixed(0)} ms`);
const k = (n: number): string => n.toLocaleString('en-US');
const verdict = (ok: boolean): string => (ok ? 'ok' : 'MISSED');
const ratio = (beacon: number, peer: number | undefined): string => (peer === undefined ? '–' : `${(peer / beacon).toFixed(peer / beacon < 10 ? 1 : 0)}× faster`);

const loadAtStart = loadavg();
const cpu = cpus()[0]?.model ?? 'unknown';
log(`KPR control-plane benchmark, node ${process.version}, ${availableParallelism()} CPUs (${cpu}), load average ${loadAtStart.map((l) => l.toFixed(2)).join(' ')} at the start`);
log(`datapath: bpffs ${bpfRoot}, cgroup ${cgroupRoot}, lbMapMax ${k(LB_MAP_MAX)}; ${BACKENDS_PER_SERVICE} backends per service from a pool of ${k(BACKEND_POOL)}`);

const beacon: BeaconRun[] = [];
const peers: PeerRun[] = [];
mkdirSync(cgroupRoot);
try {
  for (const S of SIZES) {
    beacon.push(beaconRun(S, 'random'));
    gc();
    if (!flags['no-peer']) peers.push(peerRun(S));
    if (S === MAGLEV_SERVICES) beacon.push(beaconRun(S, 'maglev'));
    gc();
  }
} finally {
  cleanup();
}

log();
log('| services | algorithm | buildFrontends | planDatapath | apply (BPF) | applyDelta | program total | ops | one update median / p99 / max | read() | re-plan from read state |');
log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const b of beacon) {
  const p = b.program;
  log(
    `| ${k(b.services)} | ${b.algorithm}${b.algorithm === 'maglev' ? ` (M=${b.maglevTableSize})` : ''} | ${ms(p.buildMs)} | ${ms(p.planMs)} | ${ms(p.applyMs)} | ${ms(p.applyDeltaMs)} | **${ms(p.totalMs)}** | ${k(p.ops)} | ${ms(b.update.medianMs)} / ${ms(b.update.p99Ms)} / ${ms(b.update.maxMs)} | ${ms(b.adopt.readMs)} | ${ms(b.adopt.replanBuildMs + b.adopt.replanPlanMs)}, ${b.adopt.replanOps} ops |`,
  );
}
log();
for (const b of beacon) {
  const u = b.update.parts;
  log(
    `${k(b.services)} ${b.algorithm}: ${k(b.program.frontends)} frontends, ${k(b.program.backends)} backends, ${b.program.problems} problems; ` +
      (b.algorithm === 'random' && b.services <= 10_000 ? `program ${verdict(b.program.totalMs < targets.programMs)} (target < ${targets.programMs} ms at 10,000); ` : '') +
      `update ${b.algorithm === 'random' ? `${verdict(b.update.medianMs < targets.updateMs && b.update.p99Ms < targets.updateMs)} (target median and p99 < ${targets.updateMs} ms) ` : ''}over ${b.update.n} after ${WARMUP_UPDATES} warm-up (the first, cold: ${ms(b.update.cold.totalMs)} = build ${ms(b.update.cold.buildMs)} + plan ${ms(b.update.cold.planMs)} + apply ${ms(b.update.cold.applyMs)} + applyDelta ${ms(b.update.cold.applyDeltaMs)}), ${b.update.opsMedian} ops; ` +
      `parts (medians) build ${ms(u.buildMs)}, plan ${ms(u.planMs)}, apply ${ms(u.applyMs)}, applyDelta ${ms(u.applyDeltaMs)}`,
  );
  log(
    `  adoption: reopen ${ms(b.adopt.openMs)}, read ${ms(b.adopt.readMs)}, re-plan ${ms(b.adopt.replanBuildMs)} buildFrontends + ${ms(b.adopt.replanPlanMs)} planDatapath → ${b.adopt.replanOps} ops (${verdict(b.adopt.replanOps === 0 && b.adopt.sameSize)}); ` +
      `kernel maps ${b.kernel.mapsMB.toFixed(1)} MB` +
      (b.kernel.perMaglevTableBytes === undefined ? '' : `, Maglev tables ${k(b.kernel.maglevTables!)} × ${k(b.kernel.perMaglevTableBytes)} B = ${b.kernel.maglevTablesMB!.toFixed(1)} MB`) +
      `; RSS ${b.rss.afterProgramMB.toFixed(0)} MB after programming, ${b.rss.afterUpdatesMB.toFixed(0)} MB after updates, peak so far ${b.rss.maxSoFarMB.toFixed(0)} MB`,
  );
}
if (peers.length > 0) {
  log();
  log('| services | iptables rules | iptables-restore (full) | Beacon program total | ratio | one change: iptables-restore --noflush, kube-proxy form / chains only (median, p99) | Beacon one update (median, p99) | ratio (kube-proxy form, median) |');
  log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const p of peers) {
    const b = beacon.find((x) => x.services === p.services && x.algorithm === 'random')!;
    const c = p.change;
    log(
      `| ${k(p.services)} | ${k(p.rules)} (${p.inputMB.toFixed(0)} MB) | ${p.restore.ok ? ms(p.restore.ms) : `failed: ${p.restore.error}`} | ${ms(b.program.totalMs)} | ${ratio(b.program.totalMs, p.restore.ms)} | ` +
        `${c ? `${ms(c.kubeProxyMedianMs)}, ${ms(c.kubeProxyP99Ms)} / ${ms(c.chainsOnlyMedianMs)}, ${ms(c.chainsOnlyP99Ms)} (n=${c.n})` : '–'} | ${ms(b.update.medianMs)}, ${ms(b.update.p99Ms)} | ${c ? ratio(b.update.medianMs, c.kubeProxyMedianMs) : '–'} |`,
    );
  }
  log(`(iptables: ${run(IPTABLES_RESTORE, ['--version']).stdout.trim()}; ip netns exec alone ${peers.map((p) => ms(p.netnsExecMs)).join(', ')}; rule text built in ${peers.map((p) => ms(p.generateMs)).join(', ')}, not counted)`);
}
const loadAtEnd = loadavg();
log(`peak RSS of the process ${maxRssMB().toFixed(0)} MB; load average ${loadAtEnd.map((l) => l.toFixed(2)).join(' ')} at the end`);
process.stdout.write(
  `${JSON.stringify({ bench: 'kpr-control', date: new Date().toISOString(), node: process.version, cpus: availableParallelism(), cpuModel: cpu, loadAverage: { atStart: loadAtStart, atEnd: loadAtEnd }, peakRssMB: maxRssMB(), beacon, peers })}\n`,
);
