// LB-IPAM benchmark (`npm run bench:ipam`, `-- --json` for the JSON line only). A benchmark, not a
// test: it prints figures and checks, and never fails on a timing.
//
// 100,000 Kubernetes-shaped Services over an IPv4 /12 and an IPv6 /64 pool (with selectors, 10% in
// sharing groups, 1% with requested IPs) go through the real adapters (poolInput, serviceInput) and
// the real Allocator. Measured: objects -> inputs, allocate all, rebuild from the statuses the first
// run wrote, one incremental change (create / update / delete), peak RSS; then cost against pool
// size (/12 vs /16) and the peer, on 10,000 services.
//
// The peers (Cilium's operator/pkg/lbipam, MetalLB's internal/allocator) are Go controllers that
// are not installed on these machines, so the side-by-side peer is a naive allocator written
// here: a linear scan of each pool's addresses against a Set<string> of used IPs.
import { seededRandom } from '../api/random.js';
import { spawnSync } from 'node:child_process';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { performance, PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { writeHeapSnapshot } from 'node:v8';
import {
  formatIP,
  parseCIDR,
  rangeContains,
  selectorMatches,
  type Family,
  type IP,
  type LoadBalancerIPPool,
  type Service,
} from '../api/index.js';
import {
  Allocator,
  poolInput,
  serviceInput,
  serviceStatus,
  type PoolInput,
  type ServiceInput,
  type ServiceResult,
} from '../lbipam/index.js';
import { gc, median, percentile, time } from './measure.js';

// ---- workload ----------------------------------------------------------------------------------

/**
 * The bulk pools' blocks. 240.0.0.0/4 is reserved (RFC 1112 section 4, "class E") and never routed:
 * the issue asks for a /12, and the one range our examples may use, 198.18.0.0/15 (RFC 2544), is
 * smaller than that. These addresses only ever live in memory here; nothing is configured or sent.
 * 2001:db8::/32 is the documentation prefix (RFC 3849).
 */
interface Layout {
  readonly name: string;
  readonly v4: string;
  readonly v6: string;
}
const large: Layout = { name: 'IPv4 /12 + IPv6 /64', v4: '240.0.0.0/12', v6: '2001:db8::/64' };
const small: Layout = { name: 'IPv4 /16 + IPv6 /112', v4: '240.0.0.0/16', v6: '2001:db8::/112' };
/** A small preferred pool for the ingress tier: selection must skip it for everyone else. */
const ingressBlocks = ['240.16.0.0/24', '2001:db8:0:1::/120'];

const created = (i: number): string => new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString();

const busySelector: LoadBalancerIPPool['spec']['serviceSelector'] = {
  matchExpressions: [
    { key: 'beacon.io/exposure', operator: 'In', values: ['public', 'internal'] },
    { key: 'io.kubernetes.service.namespace', operator: 'NotIn', values: ['kube-system'] },
  ],
};

function makePools(layout: Layout): LoadBalancerIPPool[] {
  const pool = (name: string, priority: number, cidrs: string[], serviceSelector: LoadBalancerIPPool['spec']['serviceSelector']): LoadBalancerIPPool => ({
    apiVersion: 'beacon.io/v1alpha1',
    kind: 'LoadBalancerIPPool',
    metadata: { name, creationTimestamp: '2025-12-01T00:00:00Z', generation: 1, labels: { 'app.kubernetes.io/managed-by': 'beacon' } },
    spec: { blocks: cidrs.map((cidr) => ({ cidr })), serviceSelector, priority },
  });
  return [
    pool('ingress', 1, ingressBlocks, { matchLabels: { 'beacon.io/tier': 'ingress' } }),
    pool('bulk-v4', 10, [layout.v4], busySelector),
    pool('bulk-v6', 10, [layout.v6], busySelector),
  ];
}

/** A deterministic hash of (n, salt) into [0, 1): any service can be regenerated on its own. */
function unit(n: number, salt: number): number {
  let x = (Math.imul(n, 0x9e3779b1) ^ Math.imul(salt + 1, 0x85ebca77)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d) >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b) >>> 0;
  return ((x ^ (x >>> 16)) >>> 0) / 2 ** 32;
}

type Policy = 'v4' | 'v6' | 'dual';
const policyOf = (n: number): Policy => {
  const u = unit(n, 1);
  return u < 0.6 ? 'v4' : u < 0.8 ? 'v6' : 'dual';
};

/**
 * Service number i. In every block of 30, the first 2, 3 or 4 (cycling) form a sharing group in
 * one namespace with disjoint ports: 10% of services. Numbers ending in 57 (1%) request addresses
 * near the top of the bulk pools, 7 apart, away from where allocation starts. Numbers 505 mod 1000
 * (0.1%) are the ingress tier.
 */
function makeService(i: number, layout: Layout, rev = 0): Service {
  const namespace = `team-${Math.floor(i / 100)}`;
  const block = Math.floor(i / 30);
  const member = i % 30;
  const inGroup = member < 2 + (block % 3);
  const requested = !inGroup && i % 100 === 57;
  const ingress = !inGroup && !requested && i % 1000 === 505;
  const policy = policyOf(inGroup ? block * 30 : i);
  const v6First = policy === 'dual' && unit(i, 2) < 0.1;
  const ipFamilies: ('IPv4' | 'IPv6')[] = policy === 'v4' ? ['IPv4'] : policy === 'v6' ? ['IPv6'] : v6First ? ['IPv6', 'IPv4'] : ['IPv4', 'IPv6'];

  const annotations: Record<string, string> = { 'meta.helm.sh/release-name': `suite-${i % 37}` };
  if (inGroup) annotations['beacon.io/sharing-key'] = `shared-${block}`;
  if (requested) {
    const r = BigInt(Math.floor(i / 100)) * 7n;
    const v4 = formatIP({ family: 4, value: usableLast(layout.v4) - r });
    const v6 = formatIP({ family: 6, value: usableLast(layout.v6) - r });
    annotations['beacon.io/ips'] = ipFamilies.map((f) => (f === 'IPv4' ? v4 : v6)).join(',');
  }
  const app = inGroup ? `app-${block * 30}` : `app-${i}`;
  const ports: NonNullable<Service['spec']['ports']> = inGroup
    ? [{ name: `p${member}`, port: 8000 + member * 10 + (rev % 10), protocol: member % 2 === 0 ? 'TCP' : 'UDP' }]
    : [
        { name: 'http', port: 80 + (rev % 10), protocol: 'TCP' },
        { name: 'https', port: 443, protocol: 'TCP' },
      ];
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: inGroup ? `${app}-${member}` : app,
      namespace,
      uid: `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`,
      resourceVersion: String(1000 + i + rev),
      generation: 1 + rev,
      creationTimestamp: created(i),
      labels: {
        app,
        'app.kubernetes.io/part-of': `suite-${i % 37}`,
        'beacon.io/exposure': i % 5 === 0 ? 'internal' : 'public',
        'beacon.io/tier': ingress ? 'ingress' : 'backend',
        'example.com/revision': String(rev),
      },
      annotations,
    },
    spec: {
      type: 'LoadBalancer',
      ipFamilyPolicy: policy === 'dual' ? 'RequireDualStack' : 'SingleStack',
      ipFamilies,
      ports,
      selector: { app },
      externalTrafficPolicy: 'Cluster',
    },
  };
}

const lastCache = new Map<string, bigint>();
/** The last usable address of a CIDR (its last address is skipped, allowFirstLastIPs: No). */
function usableLast(cidr: string): bigint {
  let v = lastCache.get(cidr);
  if (v === undefined) {
    const parsed = parseCIDR(cidr);
    if (!parsed.ok) throw new Error(parsed.error);
    v = parsed.value.range.last - 1n;
    lastCache.set(cidr, v);
  }
  return v;
}

const NOW = '2026-06-01T00:00:00Z';
/** The object as the API server returns it after the operator wrote its status. */
/**
 * The object as the API server returns it after the operator wrote its status, decoded from JSON
 * as an informer would. (Built in place, `{ ...svc, status }` would give every object its own
 * hidden class in V8 and inflate the fixture; decoded objects share theirs.)
 */
const withStatus = (svc: Service, result: ServiceResult | undefined): Service =>
  JSON.parse(JSON.stringify({ ...svc, status: serviceStatus(svc.status, result, svc.metadata.generation, NOW) })) as Service;

// ---- measuring ---------------------------------------------------------------------------------

const rssMB = (): number => process.resourceUsage().maxRSS / 1024;
const heapMB = (): number => process.memoryUsage().heapUsed / 2 ** 20;

function summarize(results: Map<string, ServiceResult>): { satisfied: number; reasons: Record<string, number> } {
  const reasons: Record<string, number> = {};
  let satisfied = 0;
  for (const r of results.values()) {
    if (r.satisfied) satisfied++;
    reasons[r.reason] = (reasons[r.reason] ?? 0) + 1;
  }
  return { satisfied, reasons };
}

const sameIPsOf = (a: readonly string[] | undefined, b: readonly string[] | undefined): boolean =>
  a !== undefined && b !== undefined && a.length === b.length && a.every((ip, i) => ip === b[i]);

// ---- the peer: a naive allocator ---------------------------------------------------------------

interface NaiveShare {
  readonly ip: string;
  readonly family: Family;
  readonly namespace: string;
  readonly ports: Set<string>;
}
type NaivePick = { ip: string; family: Family; share: NaiveShare | undefined };

interface NaiveRun {
  processed: number;
  total: number;
  elapsedMs: number;
  finished: boolean;
  ips: Map<string, string[]>;
}

/**
 * What a simple allocator does: services oldest first; for each slot the requested IP, else an IP
 * already used under the same sharing key with disjoint ports, else the first address of the first
 * selecting pool (in preference order) whose text is not in the Set of used IPs, scanning from the
 * bottom of the range. Each scan stops after used.size + 1 candidates (one of them must be free),
 * and the whole run stops at the time budget.
 */
function naiveAllocate(pools: readonly PoolInput[], services: readonly ServiceInput[], budgetMs: number): NaiveRun {
  const start = performance.now();
  const ordered = services
    .filter((s) => s.managed && s.error === undefined)
    .sort((a, b) => (a.created < b.created ? -1 : a.created > b.created ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const preferred = pools
    .filter((p) => p.errors.length === 0 && !p.disabled)
    .sort((a, b) => (a.priority ?? Infinity) - (b.priority ?? Infinity) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const used = new Set<string>();
  const shared = new Map<string, NaiveShare[]>();
  const ips = new Map<string, string[]>();
  const selects = (p: PoolInput, s: ServiceInput): boolean => (s.pool === undefined || s.pool === p.name) && selectorMatches(p.selector, s.labels);
  const compatible = (sh: NaiveShare, s: ServiceInput): boolean =>
    sh.namespace === s.namespace && (s.sharing?.ports ?? []).every((port) => !sh.ports.has(port));

  const pickRequested = (s: ServiceInput, ip: IP): NaivePick | undefined => {
    const pool = preferred.find((p) => p.ranges.some((r) => rangeContains(r.usable, ip)));
    if (!pool || !selects(pool, s)) return undefined;
    const text = formatIP(ip);
    if (!used.has(text)) return { ip: text, family: ip.family, share: undefined };
    const share = s.sharing ? shared.get(s.sharing.key)?.find((sh) => sh.ip === text && compatible(sh, s)) : undefined;
    return share ? { ip: text, family: ip.family, share } : undefined;
  };
  const pickAny = (s: ServiceInput, families: readonly Family[]): NaivePick | undefined => {
    for (const family of families) {
      const share = s.sharing ? shared.get(s.sharing.key)?.find((sh) => sh.family === family && compatible(sh, s)) : undefined;
      if (share) return { ip: share.ip, family, share };
      for (const pool of preferred) {
        if (!selects(pool, s)) continue;
        for (const r of pool.ranges) {
          if (r.usable.family !== family) continue;
          let value = r.usable.first;
          for (let n = 0; n <= used.size && value <= r.usable.last; n++, value++) {
            const text = formatIP({ family, value });
            if (!used.has(text)) return { ip: text, family, share: undefined };
          }
        }
      }
    }
    return undefined;
  };

  let processed = 0;
  for (const s of ordered) {
    if (performance.now() - start > budgetMs) break;
    const picks: NaivePick[] = [];
    let failed = false;
    for (const slot of s.slots) {
      const pick = 'ip' in slot ? pickRequested(s, slot.ip) : pickAny(s, slot.families);
      if (pick) picks.push(pick);
      else failed = true;
    }
    const taken = failed && s.need === 'all' ? [] : picks;
    for (const p of taken) {
      if (p.share) {
        for (const port of s.sharing?.ports ?? []) p.share.ports.add(port);
        continue;
      }
      used.add(p.ip);
      if (s.sharing) {
        let list = shared.get(s.sharing.key);
        if (!list) shared.set(s.sharing.key, (list = []));
        list.push({ ip: p.ip, family: p.family, namespace: s.namespace, ports: new Set(s.sharing.ports) });
      }
    }
    ips.set(s.key, taken.map((p) => p.ip));
    processed++;
  }
  return { processed, total: ordered.length, elapsedMs: performance.now() - start, finished: processed === ordered.length, ips };
}

// ---- phases ------------------------------------------------------------------------------------

const { values: flags } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    /** main (100k), size (/12 vs /16), peer (naive scan), or all; one part alone is for profiling. */
    part: { type: 'string', default: 'all' },
    services: { type: 'string', default: '100000' },
    ops: { type: 'string', default: '2000' },
    repeats: { type: 'string', default: '3' },
    /** Profiling aid: heap snapshots in DIR before and after one rebuild (skews RSS and time). */
    'heap-snapshots': { type: 'string' },
  },
  strict: true,
});
const parts = flags.part === 'all' ? ['main', 'size', 'peer', 'footprint'] : [flags.part];
if (!parts.every((p) => ['main', 'size', 'peer', 'footprint', 'footprint-child'].includes(p))) {
  throw new Error(`--part: main, size, peer, footprint or all, not "${flags.part}"`);
}
const N = Number(flags.services);
const OPS = Number(flags.ops);
const REPEATS = Math.max(1, Number(flags.repeats));
const SMALL_N = 10_000;
const SIZE_REPEATS = 9;
const PEER_BUDGET_MS = 10_000;
const WAITING_LEVELS = [0, 100, 1000] as const;
const WAITING_OPS = 200;
const targets = { allocateMs: 1000, rebuildMs: 1000, changeUs: 1000, rssMB: 300 } as const;

// GC pauses arrive asynchronously; they are attributed to phases afterwards by time window.
type Window = readonly [number, number];
const gcPauses: { start: number; duration: number }[] = [];
const gcObserver = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcPauses.push({ start: e.startTime, duration: e.duration });
});
gcObserver.observe({ entryTypes: ['gc'] });
const gcWithin = (windows: readonly Window[]): number =>
  gcPauses.filter((g) => windows.some(([a, b]) => g.start >= a && g.start < b)).reduce((n, g) => n + g.duration, 0);

/** Wall time of f, its window (for GC attribution) and the process CPU time it used (all threads). */
function timed<T>(windows: Window[], cpu: number[], f: () => T): [T, number] {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const out = f();
  const t1 = performance.now();
  const c = process.cpuUsage(c0);
  windows.push([t0, t1]);
  cpu.push((c.user + c.system) / 1000);
  return [out, t1 - t0];
}

const keyOf = (svc: Service): string => `${svc.metadata.namespace ?? 'default'}/${svc.metadata.name}`;
const ingressIPs = (svc: Service): string[] => (svc.status?.loadBalancer?.ingress ?? []).flatMap((i) => (i.ip === undefined ? [] : [i.ip]));
const rss: Record<string, number> = { start: rssMB() };
/** Other work on the machine skews every figure: the 1-minute load average before this run started. */
const loadAtStart = loadavg()[0]!;

/** Allocate all: services with no status yet. Returns the objects as the operator then writes them. */
function allocateAll(pools: readonly PoolInput[]) {
  gc();
  const heap0 = heapMB();
  const objects: Service[] = Array.from({ length: N }, (_, i) => makeService(i, large));
  gc();
  const heapObjects = heapMB() - heap0;
  const convertWindows: Window[] = [];
  const convertCpu: number[] = [];
  const [inputs, convertMs] = timed(convertWindows, convertCpu, () => objects.map(serviceInput));
  gc();
  const heapInputs = heapMB() - heap0 - heapObjects;
  rss.inputs = rssMB();
  const runs: number[] = [];
  const cpu: number[] = [];
  const windows: Window[] = [];
  let allocator: Allocator | undefined;
  for (let r = 0; r < REPEATS; r++) {
    allocator = undefined;
    gc();
    [allocator, runs[r]] = timed(windows, cpu, () => new Allocator(pools, inputs));
  }
  gc();
  const heapAllocator = heapMB() - heap0 - heapObjects - heapInputs;
  rss.allocate = rssMB();
  const [results, readResultsMs] = time(() => allocator!.results());
  const statusObjects = objects.map((svc) => withStatus(svc, results.get(keyOf(svc))));
  return { runs, cpu, windows, convertMs, convertCpu, convertWindows, readResultsMs, summary: summarize(results), heapObjects, heapInputs, heapAllocator, statusObjects };
}

/** Rebuild: the same services carrying their statuses, as after an operator restart. */
function rebuild(pools: readonly PoolInput[], objects: readonly Service[]) {
  gc();
  const heap0 = heapMB();
  const convertWindows: Window[] = [];
  const convertCpu: number[] = [];
  const [inputs, convertMs] = timed(convertWindows, convertCpu, () => objects.map(serviceInput));
  gc();
  const heapInputs = heapMB() - heap0;
  const runs: number[] = [];
  const cpu: number[] = [];
  const windows: Window[] = [];
  let allocator: Allocator | undefined;
  const snapshots = flags['heap-snapshots'];
  if (snapshots !== undefined) writeHeapSnapshot(`${snapshots}/before-rebuild.heapsnapshot`);
  for (let r = 0; r < REPEATS; r++) {
    allocator = undefined;
    gc();
    [allocator, runs[r]] = timed(windows, cpu, () => new Allocator(pools, inputs));
  }
  gc();
  const heapTotal = heapMB();
  const heapAllocator = heapTotal - heap0 - heapInputs;
  if (snapshots !== undefined) writeHeapSnapshot(`${snapshots}/after-rebuild.heapsnapshot`);
  rss.rebuild = rssMB();
  const alloc = allocator!;
  let sameIPs = 0;
  for (const svc of objects) if (sameIPsOf(ingressIPs(svc), alloc.result(keyOf(svc))?.ips)) sameIPs++;
  const [, firstDrainMs] = time(() => alloc.drainChanged());
  return { runs, cpu, windows, convertMs, convertCpu, convertWindows, sameIPs, firstDrainMs, heapObjects: heap0, heapInputs, heapAllocator, heapTotal, alloc };
}

type Kind = 'create' | 'update' | 'delete';
const kinds = ['create', 'update', 'delete'] as const;

/** One change at a time on the built state: create, update (labels and ports), delete, in turn. */
function changes(alloc: Allocator, objects: readonly Service[]) {
  const live = objects.map((object, index) => ({ index, object }));
  const rng = seededRandom(0x2545f491);
  const latency: Record<Kind, { apply: number[]; convert: number[]; drain: number[]; windows: Window[] }> = {
    create: { apply: [], convert: [], drain: [], windows: [] },
    update: { apply: [], convert: [], drain: [], windows: [] },
    delete: { apply: [], convert: [], drain: [], windows: [] },
  };
  const checks = { createsSatisfied: 0, updatesKeptIPs: 0, changedKeysMax: 0 };
  let nextIndex = N;
  for (let op = 0; op < OPS; op++) {
    const kind = kinds[op % 3]!;
    const at = Math.floor(rng() * live.length);
    const target = live[at]!;
    const record = latency[kind];
    // The object as the watch delivers it, then: serviceInput (convert), the change (apply), drainChanged.
    let object: Service | undefined;
    let before: ServiceResult | undefined;
    if (kind === 'create') object = makeService(nextIndex, large);
    if (kind === 'update') {
      before = alloc.result(keyOf(target.object));
      // generation is 1 + revision: the next revision is the current generation.
      object = withStatus(makeService(target.index, large, target.object.metadata.generation ?? 1), before);
    }
    const t0 = performance.now();
    const input = object ? serviceInput(object) : undefined;
    const t1 = performance.now();
    if (input) alloc.upsertService(input);
    else alloc.deleteService(keyOf(target.object));
    const t2 = performance.now();
    const changed = alloc.drainChanged();
    const t3 = performance.now();
    record.convert.push(t1 - t0);
    record.apply.push(t2 - t1);
    record.drain.push(t3 - t2);
    record.windows.push([t1, t2]);
    checks.changedKeysMax = Math.max(checks.changedKeysMax, changed.length);
    if (kind === 'create' && object && input) {
      const result = alloc.result(input.key);
      if (result?.satisfied) checks.createsSatisfied++;
      live.push({ index: nextIndex++, object: withStatus(object, result) });
    } else if (kind === 'update' && object && input) {
      if (sameIPsOf(before?.ips, alloc.result(input.key)?.ips)) checks.updatesKeptIPs++;
      target.object = object;
    } else {
      live[at] = live[live.length - 1]!;
      live.pop();
    }
  }
  rss.change = rssMB();
  return { latency, checks };
}

/**
 * Beyond the issue's workload: services that no pool selects (here in kube-system, which the bulk
 * pools exclude) wait for an address, and a change that frees an address or carries a sharing key
 * retries every one of them. Measured on the same state with 0, 100 and 1,000 waiting.
 */
function waitingCost(alloc: Allocator, objects: readonly Service[], firstIndex: number) {
  const levels: { waiting: number; deleteMedianUs: number; deleteP99Us: number; sharingCreateMedianUs: number; sharingCreateP99Us: number }[] = [];
  let index = firstIndex;
  let added = 0;
  let victim = 0;
  const unsatisfied: string[] = [];
  for (const target of WAITING_LEVELS) {
    for (; added < target; added++) {
      const svc = makeService(index++, large);
      svc.metadata.namespace = 'kube-system';
      const input = serviceInput(svc);
      alloc.upsertService(input);
      if (alloc.result(input.key)?.satisfied === false) unsatisfied.push(input.key);
    }
    alloc.drainChanged();
    const deletes: number[] = [];
    const creates: number[] = [];
    for (let j = 0; j < WAITING_OPS; j++) {
      // The next service still present that holds its address alone: deleting it frees the address.
      for (; victim < objects.length; victim++) {
        const o = objects[victim]!;
        if (o.metadata.annotations?.['beacon.io/sharing-key'] === undefined && alloc.result(keyOf(o)) !== undefined) break;
      }
      const o = objects[victim++];
      if (o) {
        const t = performance.now();
        alloc.deleteService(keyOf(o));
        deletes.push(performance.now() - t);
      }
      const svc = makeService(index++, large);
      (svc.metadata.annotations ??= {})['beacon.io/sharing-key'] = `solo-${index}`;
      const input = serviceInput(svc);
      const t = performance.now();
      alloc.upsertService(input);
      creates.push(performance.now() - t);
      alloc.drainChanged();
    }
    levels.push({
      waiting: unsatisfied.filter((k) => alloc.result(k)?.satisfied === false).length,
      deleteMedianUs: median(deletes) * 1000,
      deleteP99Us: percentile(deletes, 0.99) * 1000,
      sharingCreateMedianUs: median(creates) * 1000,
      sharingCreateP99Us: percentile(creates, 0.99) * 1000,
    });
  }
  return levels;
}

function mainCase() {
  const pools = time(() => makePools(large).map(poolInput));
  const a = allocateAll(pools[0]);
  const b = rebuild(pools[0], a.statusObjects);
  const c = changes(b.alloc, a.statusObjects);
  const w = waitingCost(b.alloc, a.statusObjects, N + OPS);
  // Figures only: the objects and the allocator must not outlive this case.
  const allocate = { ...a, statusObjects: undefined };
  const rebuilt = { ...b, alloc: undefined };
  return { convertPoolsMs: pools[1], allocate, rebuilt, change: c, waiting: w };
}

/** Cost against pool size: 10,000 services from a /12 (+ /64) and from a /16 (+ /112), alternating. */
function poolSizeCase() {
  const sizeCase = (layout: Layout) => {
    const pools = makePools(layout).map(poolInput);
    const inputs = Array.from({ length: SMALL_N }, (_, i) => serviceInput(makeService(i, layout)));
    return { layout, pools, inputs, runs: [] as number[], cpu: [] as number[], windows: [] as Window[], satisfied: 0 };
  };
  const cases = [sizeCase(large), sizeCase(small)] as const;
  // Two rounds to warm the JIT, then the measured rounds.
  for (let r = 0; r < SIZE_REPEATS + 2; r++) {
    for (const c of cases) {
      gc();
      const cpu: number[] = [];
      const windows: Window[] = [];
      const [a, ms] = timed(windows, cpu, () => new Allocator(c.pools, c.inputs));
      if (r >= 2) {
        c.runs.push(ms);
        c.cpu.push(cpu[0]!);
      }
      c.satisfied = summarize(a.results()).satisfied;
    }
  }
  rss.size = rssMB();
  const [l, s] = cases;
  return { l, s, ratio: median(l.runs) / median(s.runs), cpuRatio: median(l.cpu) / median(s.cpu) };
}

/** The peer, side by side on the same 10,000 inputs (the /12 + /64 layout). */
function peerCase() {
  const pools = makePools(large).map(poolInput);
  const inputs = Array.from({ length: SMALL_N }, (_, i) => serviceInput(makeService(i, large)));
  const beaconRuns: number[] = [];
  let results = new Map<string, ServiceResult>();
  for (let r = 0; r < SIZE_REPEATS + 1; r++) {
    gc();
    const [a, ms] = time(() => new Allocator(pools, inputs));
    if (r >= 1) beaconRuns.push(ms);
    results = a.results();
  }
  gc();
  const naive = naiveAllocate(pools, inputs, PEER_BUDGET_MS);
  let same = 0;
  for (const [key, ips] of naive.ips) if (sameIPsOf(ips, results.get(key)?.ips)) same++;
  // The scan is O(n^2): when the budget stops it, the full time is extrapolated from the part done.
  const fullMs = naive.finished ? naive.elapsedMs : naive.elapsedMs * (naive.total / Math.max(1, naive.processed)) ** 2;
  const beaconMs = median(beaconRuns);
  rss.peer = rssMB();
  return { naive, same, fullMs, beaconMs, beaconRuns, ratio: fullMs / beaconMs };
}

/**
 * LB-IPAM's own memory as the operator holds it: the inputs and the allocator for N services,
 * allocated, then rebuilt from the statuses. Objects are made and converted one at a time (they
 * belong to the store's cache, which bench:runtime measures), and the run happens in a fresh
 * process so that nothing else in this benchmark counts towards its peak RSS.
 */
function footprintChild(): { peakRssMB: number; satisfied: number; heapMB: number } {
  const pools = makePools(large).map(poolInput);
  let inputs: ServiceInput[] = Array.from({ length: N }, (_, i) => serviceInput(makeService(i, large)));
  let alloc: Allocator | undefined = new Allocator(pools, inputs);
  const ips = inputs.map((inp) => alloc!.result(inp.key));
  alloc = undefined;
  inputs = [];
  gc();
  const statusInputs = ips.map((r, i) => serviceInput(withStatus(makeService(i, large), r)));
  ips.length = 0;
  gc();
  const rebuilt = new Allocator(pools, statusInputs);
  gc();
  return { peakRssMB: rssMB(), satisfied: summarize(rebuilt.results()).satisfied, heapMB: heapMB() };
}

function footprintCase(): { peakRssMB: number; satisfied: number; heapMB: number } {
  const child = spawnSync(process.execPath, ['--expose-gc', process.argv[1]!, '--part', 'footprint-child', '--services', String(N)], { encoding: 'utf8', timeout: 120_000 });
  if (child.status !== 0) throw new Error(`footprint run failed: ${child.stderr}`);
  return JSON.parse(child.stdout) as { peakRssMB: number; satisfied: number; heapMB: number };
}

if (parts.includes('footprint-child')) {
  process.stdout.write(JSON.stringify(footprintChild()));
  process.exit(0);
}

const main = parts.includes('main') ? mainCase() : undefined;
gc();
const size = parts.includes('size') ? poolSizeCase() : undefined;
gc();
const peer = parts.includes('peer') ? peerCase() : undefined;
const footprint = parts.includes('footprint') ? footprintCase() : undefined;
// Let the observer deliver the last GC entries.
await new Promise((resolve) => setTimeout(resolve, 100));
gcObserver.disconnect();

// ---- report ------------------------------------------------------------------------------------

const log = (line = ''): void => {
  if (!flags.json) process.stdout.write(`${line}\n`);
};
const round = (v: number, digits = 1): number => Number(v.toFixed(digits));
const ms = (v: number): string => `${v.toFixed(1)} ms`;
const us = (v: number): string => `${v.toFixed(1)} µs`;
const k = (n: number): string => n.toLocaleString('en-US');
const verdict = (ok: boolean): string => (ok ? 'ok' : 'MISSED');
const gcShare = (windows: readonly Window[], runs: readonly number[]): number => gcWithin(windows) / runs.reduce((n, v) => n + v, 0);
const peakMB = Math.max(...Object.values(rss));
const cpu = cpus()[0]?.model ?? 'unknown';

const mainReport = main && (() => {
  const { allocate: a, rebuilt: b, change: c } = main;
  const all = kinds.flatMap((kind) => c.latency[kind].apply);
  const endToEnd = kinds.flatMap((kind) => c.latency[kind].apply.map((v, i) => v + c.latency[kind].convert[i]! + c.latency[kind].drain[i]!));
  return {
    services: N,
    pools: { ingress: ingressBlocks, bulkV4: large.v4, bulkV6: large.v6 },
    convert: {
      poolsMs: round(main.convertPoolsMs, 2),
      servicesMs: round(a.convertMs),
      servicesCpuMs: round(a.convertCpu[0]!),
      servicesGcShare: round(gcShare(a.convertWindows, [a.convertMs]), 2),
      servicesWithStatusMs: round(b.convertMs),
      servicesWithStatusCpuMs: round(b.convertCpu[0]!),
      servicesWithStatusGcShare: round(gcShare(b.convertWindows, [b.convertMs]), 2),
    },
    allocateAll: {
      medianMs: round(median(a.runs)),
      runsMs: a.runs.map((v) => round(v)),
      cpuMedianMs: round(median(a.cpu)),
      cpuRunsMs: a.cpu.map((v) => round(v)),
      gcShare: round(gcShare(a.windows, a.runs), 2),
      endToEndMs: round(main.convertPoolsMs + a.convertMs + median(a.runs)),
      resultsMs: round(a.readResultsMs),
      ...a.summary,
      targetMs: targets.allocateMs,
      met: median(a.runs) < targets.allocateMs,
    },
    rebuild: {
      medianMs: round(median(b.runs)),
      runsMs: b.runs.map((v) => round(v)),
      cpuMedianMs: round(median(b.cpu)),
      cpuRunsMs: b.cpu.map((v) => round(v)),
      gcShare: round(gcShare(b.windows, b.runs), 2),
      endToEndMs: round(main.convertPoolsMs + b.convertMs + median(b.runs)),
      sameIPs: b.sameIPs,
      firstDrainChangedMs: round(b.firstDrainMs),
      targetMs: targets.rebuildMs,
      met: median(b.runs) < targets.rebuildMs,
    },
    change: {
      ops: OPS,
      medianUs: round(median(all) * 1000),
      p99Us: round(percentile(all, 0.99) * 1000),
      endToEndMedianUs: round(median(endToEnd) * 1000),
      endToEndP99Us: round(percentile(endToEnd, 0.99) * 1000),
      byKind: Object.fromEntries(
        kinds.map((kind) => {
          const l = c.latency[kind];
          return [
            kind,
            {
              n: l.apply.length,
              medianUs: round(median(l.apply) * 1000),
              p99Us: round(percentile(l.apply, 0.99) * 1000),
              maxUs: round(Math.max(...l.apply) * 1000),
              gcMs: round(gcWithin(l.windows)),
              convertMedianUs: round(median(l.convert) * 1000),
              drainMedianUs: round(median(l.drain) * 1000),
            },
          ];
        }),
      ) as Record<Kind, { n: number; medianUs: number; p99Us: number; maxUs: number; gcMs: number; convertMedianUs: number; drainMedianUs: number }>,
      ...c.checks,
      targetUs: targets.changeUs,
      met: median(all) * 1000 < targets.changeUs,
    },
    waiting: main.waiting.map((l) => ({
      waiting: l.waiting,
      deleteMedianUs: round(l.deleteMedianUs),
      deleteP99Us: round(l.deleteP99Us),
      sharingCreateMedianUs: round(l.sharingCreateMedianUs),
      sharingCreateP99Us: round(l.sharingCreateP99Us),
    })),
    heapMB: {
      objects: round(a.heapObjects),
      inputs: round(a.heapInputs),
      allocatorAfterAllocateAll: round(a.heapAllocator),
      inputsWithStatus: round(b.heapInputs),
      objectsWithStatus: round(b.heapObjects),
      allocatorAfterRebuild: round(b.heapAllocator),
      totalAfterRebuild: round(b.heapTotal),
    },
  };
})();

const sizeReport = size && {
  services: SMALL_N,
  large: { layout: size.l.layout.name, medianMs: round(median(size.l.runs)), cpuMedianMs: round(median(size.l.cpu)), runsMs: size.l.runs.map((v) => round(v)), satisfied: size.l.satisfied },
  small: { layout: size.s.layout.name, medianMs: round(median(size.s.runs)), cpuMedianMs: round(median(size.s.cpu)), runsMs: size.s.runs.map((v) => round(v)), satisfied: size.s.satisfied },
  ratio: round(size.ratio, 2),
  cpuRatio: round(size.cpuRatio, 2),
};

const peerReport = peer && {
  name: 'naive linear scan + Set<string>, in bench/ipam.ts (Cilium and MetalLB are Go controllers, not runnable here)',
  services: peer.naive.total,
  processed: peer.naive.processed,
  finished: peer.naive.finished,
  elapsedMs: round(peer.naive.elapsedMs),
  fullMs: round(peer.fullMs),
  estimated: !peer.naive.finished,
  sameIPs: peer.same,
  beaconMs: round(peer.beaconMs),
  ratio: round(peer.ratio),
};

const report = {
  bench: 'lbipam',
  date: new Date().toISOString(),
  node: process.version,
  cpus: availableParallelism(),
  cpuModel: cpu,
  loadAverage: { atStart: round(loadAtStart, 2), atEnd: round(loadavg()[0]!, 2) },
  main: mainReport,
  memory: {
    // The target applies to LB-IPAM's footprint (inputs + allocator, allocate then rebuild, in a
    // fresh process); this benchmark process also holds every phase's objects at once.
    footprintPeakRssMB: footprint ? round(footprint.peakRssMB) : undefined,
    footprintHeapMB: footprint ? round(footprint.heapMB) : undefined,
    benchProcessPeakRssMB: round(peakMB),
    rssByPhaseMB: Object.fromEntries(Object.entries(rss).map(([p, v]) => [p, round(v)])),
    targetMB: targets.rssMB,
    met: footprint ? footprint.peakRssMB < targets.rssMB : peakMB < targets.rssMB,
  },
  poolSize: sizeReport,
  peer: peerReport,
};

log(`LB-IPAM benchmark, node ${process.version}, ${availableParallelism()} CPUs (${cpu}), load average ${loadAtStart.toFixed(2)} before the run`);
if (loadAtStart > 0.5) log('warning: the machine was busy before this run; figures are skewed by the other work');
if (mainReport) {
  const m = mainReport;
  log(`${k(N)} services; pools ingress (${ingressBlocks.join(', ')}; priority 1, tier=ingress), bulk-v4 ${large.v4}, bulk-v6 ${large.v6}`);
  log();
  log(`objects -> inputs     pools ${ms(m.convert.poolsMs)}, services ${ms(m.convert.servicesMs)} (GC ${(m.convert.servicesGcShare * 100).toFixed(0)}%), services with status ${ms(m.convert.servicesWithStatusMs)} (GC ${(m.convert.servicesWithStatusGcShare * 100).toFixed(0)}%)`);
  log(`allocate all          ${ms(m.allocateAll.medianMs)} median of ${REPEATS} [${m.allocateAll.runsMs.map(ms).join(', ')}], CPU ${ms(m.allocateAll.cpuMedianMs)}, GC ${(m.allocateAll.gcShare * 100).toFixed(0)}%  target < ${targets.allocateMs} ms: ${verdict(m.allocateAll.met)}`);
  log(`                      end to end (with conversion) ${ms(m.allocateAll.endToEndMs)}; results() ${ms(m.allocateAll.resultsMs)}`);
  log(`                      satisfied ${k(m.allocateAll.satisfied)} of ${k(N)} ${JSON.stringify(m.allocateAll.reasons)}`);
  log(`rebuild from status   ${ms(m.rebuild.medianMs)} median of ${REPEATS} [${m.rebuild.runsMs.map(ms).join(', ')}], CPU ${ms(m.rebuild.cpuMedianMs)}, GC ${(m.rebuild.gcShare * 100).toFixed(0)}%  target < ${targets.rebuildMs} ms: ${verdict(m.rebuild.met)}`);
  log(`                      end to end (with conversion) ${ms(m.rebuild.endToEndMs)}; same IPs as the statuses: ${k(m.rebuild.sameIPs)} of ${k(N)}`);
  log(`one change            median ${us(m.change.medianUs)}, p99 ${us(m.change.p99Us)} over ${k(OPS)} ops  target < 1 ms: ${verdict(m.change.met)}`);
  for (const kind of kinds) {
    const b = m.change.byKind[kind];
    log(`  ${kind.padEnd(7)} n=${b.n}  median ${us(b.medianUs)}  p99 ${us(b.p99Us)}  max ${us(b.maxUs)} (GC ${ms(b.gcMs)} in all)  + serviceInput ${us(b.convertMedianUs)}, drainChanged ${us(b.drainMedianUs)}`);
  }
  log(`                      end to end median ${us(m.change.endToEndMedianUs)}, p99 ${us(m.change.endToEndP99Us)}; creates satisfied ${m.change.createsSatisfied}, updates kept their IPs ${m.change.updatesKeptIPs}`);
  log(`with services waiting (no pool selects them), ${WAITING_OPS} deletes and ${WAITING_OPS} creates with a sharing key each:`);
  for (const l of m.waiting) {
    log(`  ${String(l.waiting).padStart(5)} waiting: delete median ${us(l.deleteMedianUs)} (p99 ${us(l.deleteP99Us)}), create with sharing key median ${us(l.sharingCreateMedianUs)} (p99 ${us(l.sharingCreateP99Us)})`);
  }
  log(`heap                  objects ${m.heapMB.objects} MB, inputs ${m.heapMB.inputs} MB, allocator ${m.heapMB.allocatorAfterAllocateAll} MB (after allocate all), ${m.heapMB.allocatorAfterRebuild} MB (after rebuild); in use after rebuild ${m.heapMB.totalAfterRebuild} MB (objects with status ${m.heapMB.objectsWithStatus}, inputs ${m.heapMB.inputsWithStatus})`);
}
if (footprint) {
  log(`peak RSS              ${footprint.peakRssMB.toFixed(0)} MB for LB-IPAM alone (${k(N)} services: inputs + allocator, allocate then rebuild, fresh process; heap ${footprint.heapMB.toFixed(0)} MB)  target < ${targets.rssMB} MB: ${verdict(report.memory.met)}`);
}
log(`                      ${peakMB.toFixed(0)} MB for this whole benchmark process (it keeps every phase's objects); by phase ${Object.entries(rss).map(([p, v]) => `${p} ${v.toFixed(0)}`).join(', ')}`);
if (sizeReport) {
  log();
  log(`pool size, ${k(SMALL_N)} services: ${sizeReport.large.layout} ${ms(sizeReport.large.medianMs)}, ${sizeReport.small.layout} ${ms(sizeReport.small.medianMs)} (median of ${SIZE_REPEATS}); ratio ${sizeReport.ratio.toFixed(2)} (CPU time ${sizeReport.large.cpuMedianMs} / ${sizeReport.small.cpuMedianMs} ms: ${sizeReport.cpuRatio.toFixed(2)})`);
}
if (peerReport) {
  const p = peerReport;
  log(
    `peer (naive linear scan), ${k(p.services)} services: ${p.finished ? ms(p.elapsedMs) : `stopped at ${ms(p.elapsedMs)} after ${k(p.processed)}, full run estimated ${ms(p.fullMs)}`}` +
      ` vs Beacon ${ms(p.beaconMs)}: ${p.ratio.toFixed(0)}x${p.finished ? '' : ' (estimated)'}; same IPs for ${k(p.sameIPs)} of ${k(p.processed)}`,
  );
}
log();
process.stdout.write(`${JSON.stringify(report)}\n`);
