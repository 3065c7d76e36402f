// L2 election under churn (issue 8): what one pass costs, and how late the lease renewal runs while
// services keep changing.
//   1. Costs at SERVICES services x NODES live nodes (one policy, every tenth service Local with
//      one EndpointSlice): the pass every change used to trigger (the whole input rebuilt from the
//      reflectors, then `electAnnouncers`), the incremental re-election of every IP (a new live
//      set), and one service change with the incremental election.
//   2. Lateness: RATE service changes per second for SECONDS seconds (each moves a service to a new
//      IP) through an in-memory store and its reflectors, with one node leaving or coming back every
//      5 s. A probe timer due every 200 ms (the renewal interval) records how late it fires:
//      "before" beside the old driver (5 ms debounce, then the whole pass), "after" beside the
//      real `L2Announcer`; for "after" also the longest gap between the announcer's own renewals.
// Bounded: fixed durations and counts.
// Usage: node --expose-gc --import tsx bench/l2-election.ts [--services N] [--nodes N] [--rate N] [--seconds N]
import { loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { L2Announcer, l2LeasePrefix, type Responder } from '../agent/l2.js';
import { electionInputOf } from '../agent/l2-feed.js';
import { createLogger } from '../agent/log.js';
import { createMetrics } from '../agent/metrics.js';
import { formatIP, seededRandom } from '../api/index.js';
import { IncrementalElection, electAnnouncers, type LiveNode, type NodeCandidacy } from '../l2announce/index.js';
import { Reflector, type LeaseStore } from '../store/index.js';
import { MemoryStore } from '../test/memory-store.js';
import { sleep } from '../test/process.js';
import { gc, median, percentile, time } from './measure.js';

const { values: flags } = parseArgs({
  options: {
    services: { type: 'string', default: '10000' },
    nodes: { type: 'string', default: '10' },
    rate: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '30' },
  },
});
const SERVICES = Number(flags.services);
const NODES = Number(flags.nodes);
const RATE = Number(flags.rate);
const SECONDS = Number(flags.seconds);
const RENEW_MS = 200;

const random = seededRandom(8);
// Addresses from 198.18.0.0/15 (RFC 2544): service n starts at 198.18.0.0 + 16 + n; moves take fresh ones above.
const address = (n: number): string => formatIP({ family: 4, value: 0xc6120000n + BigInt(n) });
let nextAddress = 16 + SERVICES;

const candidacy = (i: number): NodeCandidacy => ({
  labels: {},
  ready: true,
  draining: false,
  interfaces: [{ name: 'eth0', up: true, addresses: [{ ip: address(i + 1), prefixLength: 15 }] }],
  defaultRoute: { ipv4: ['eth0'], ipv6: [] },
});
const nodeNames = Array.from({ length: NODES }, (_, i) => `node-${i}`);
const liveNodes: LiveNode[] = nodeNames.map((name, i) => ({ name, candidacy: candidacy(i) }));

async function populate(store: MemoryStore): Promise<void> {
  await store.apply({ apiVersion: 'beacon.io/v1alpha1', kind: 'L2AnnouncementPolicy', metadata: { name: 'all' }, spec: {} });
  for (let n = 0; n < SERVICES; n++) {
    const local = n % 10 === 0;
    const svc = await store.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: `s${n}`, namespace: 'bench' }, spec: { type: 'LoadBalancer', ...(local ? { externalTrafficPolicy: 'Local' } : {}) } });
    await store.writeStatus({ kind: 'Service', namespace: 'bench', name: `s${n}` }, { loadBalancer: { ingress: [{ ip: address(16 + n) }] } }, svc.metadata.resourceVersion!);
    if (local) {
      const endpoints = [{ addresses: ['198.19.0.1'], nodeName: nodeNames[(n / 10) % NODES], conditions: { ready: true } }];
      await store.apply({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `s${n}-1`, namespace: 'bench', labels: { 'kubernetes.io/service-name': `s${n}` } }, addressType: 'IPv4', endpoints });
    }
  }
}

async function reflectors(store: MemoryStore): Promise<{ policies: Reflector; services: Reflector; slices: Reflector; stop: () => void }> {
  const [policies, services, slices] = ['L2AnnouncementPolicy', 'Service', 'EndpointSlice'].map((k) => new Reflector(store, k)) as [Reflector, Reflector, Reflector];
  await Promise.all([policies.start(), services.start(), slices.start()]);
  return { policies, services, slices, stop: () => [policies, services, slices].forEach((r) => r.stop()) };
}

/** Moves a random service to a fresh address, as LB-IPAM would after an edit. */
async function moveService(store: MemoryStore): Promise<void> {
  const name = `s${Math.floor(random() * SERVICES)}`;
  const o = store.get('Service', `bench/${name}`)!;
  await store.writeStatus({ kind: 'Service', namespace: 'bench', name }, { loadBalancer: { ingress: [{ ip: address(nextAddress++) }] } }, o.metadata.resourceVersion!);
}

const fmt = (ms: number): string => `${ms.toFixed(ms < 1 ? 3 : 1)} ms`;

function costs(sources: Parameters<typeof electionInputOf>[0]): void {
  const runs = 10;
  const oldPass: number[] = [];
  const reference: number[] = [];
  const full: number[] = [];
  const input = electionInputOf(sources, liveNodes);
  const election = new IncrementalElection('node-0');
  election.setPolicies(input.policies);
  for (const s of input.services) election.setService(s.key, s);
  for (const [key, nodes] of input.readyEndpointNodes) election.setReadyEndpointNodes(key, nodes);
  election.setNodes(liveNodes);
  election.elect();
  // A collection before each timed call, so that none pays for the garbage of another.
  for (let r = 0; r < runs; r++) {
    gc();
    oldPass.push(time(() => electAnnouncers(electionInputOf(sources, liveNodes), 'node-0'))[1]);
    gc();
    reference.push(time(() => electAnnouncers(input, 'node-0'))[1]);
    gc();
    // A new live set: every IP elected again (the node list alternates so each run is real work).
    full.push(time(() => (election.setNodes(r % 2 ? liveNodes : liveNodes.slice(1)), election.elect()))[1]);
  }
  const one: number[] = [];
  for (let c = 0; c < 1000; c++) {
    const s = input.services[Math.floor(random() * input.services.length)]!;
    const moved = { ...s, loadBalancerIPs: [address(nextAddress++)] };
    one.push(time(() => (election.setService(s.key, moved), election.elect()))[1]);
  }
  console.log(`\n1. Costs, ${SERVICES} services x ${NODES} live nodes (median of ${runs}; one change: median and p99 of 1,000)`);
  console.log(`   before, every pass: rebuild input + electAnnouncers   ${fmt(median(oldPass))}`);
  console.log(`   electAnnouncers alone (the reference)                 ${fmt(median(reference))}`);
  console.log(`   after, full re-election (new live set or policies)    ${fmt(median(full))}`);
  console.log(`   after, one service change (incremental)               ${fmt(median(one))} (p99 ${fmt(percentile(one, 0.99))})`);
  console.log(`   ratio, before pass / one incremental change           ${Math.round(median(oldPass) / median(one))}x`);
}

/**
 * A timer due every RENEW_MS at a fixed rate, as the renewal is; returns how late each firing was,
 * and the longest stall of the event loop in the meantime (Node's delay monitor, 5 ms resolution).
 */
function probe(): { stop: () => { late: number[]; stall: number } } {
  const late: number[] = [];
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  let due = performance.now() + RENEW_MS;
  let timer: NodeJS.Timeout;
  const tick = () => {
    const now = performance.now();
    late.push(now - due);
    due += RENEW_MS * Math.max(1, Math.ceil((now - due) / RENEW_MS));
    timer = setTimeout(tick, Math.max(0, due - performance.now()));
  };
  timer = setTimeout(tick, RENEW_MS);
  return { stop: () => (clearTimeout(timer), delay.disable(), { late, stall: delay.max / 1e6 }) };
}

/** The change stream, with the other nodes' leases kept alive and one of them leaving or coming back every 5 s. */
async function churn(store: MemoryStore, onNodes: (live: LiveNode[]) => void): Promise<number> {
  let away = false;
  const renewOthers = setInterval(() => {
    for (const [i, name] of nodeNames.entries()) {
      if (i === 0 || (away && i === NODES - 1)) continue;
      void store.leases.acquireOrRenew(`${l2LeasePrefix}${name}`, name, 1000, JSON.stringify(candidacy(i)));
    }
  }, RENEW_MS);
  const start = performance.now();
  let changes = 0;
  let lastToggle = start;
  try {
    while (performance.now() - start < SECONDS * 1000) {
      const due = start + (changes + 1) * (1000 / RATE);
      await sleep(Math.max(0, due - performance.now()));
      await moveService(store);
      changes++;
      if (performance.now() - lastToggle >= 5000) {
        lastToggle = performance.now();
        away = !away;
        onNodes(away ? liveNodes.slice(0, -1) : liveNodes);
      }
    }
  } finally {
    clearInterval(renewOthers);
  }
  return changes;
}

/** The old driver: every burst of changes, 5 ms later, the whole input rebuilt and every IP elected. */
async function before(): Promise<{ late: number[]; stall: number }> {
  const store = new MemoryStore();
  await populate(store);
  const sources = await reflectors(store);
  let live = liveNodes;
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    timer ??= setTimeout(() => {
      timer = undefined;
      electAnnouncers(electionInputOf(sources, live), 'node-0');
    }, 5);
  };
  const unsubscribe = [sources.services.onChange(schedule), sources.slices.onChange(schedule)];
  costs(sources);
  gc();
  const p = probe();
  await churn(store, (nodes) => ((live = nodes), schedule()));
  const late = p.stop();
  clearTimeout(timer);
  for (const u of unsubscribe) u();
  sources.stop();
  return late;
}

/** The announcer itself, with its renewals timed through the lease store. */
async function after(): Promise<{ probe: { late: number[]; stall: number }; gaps: number[]; announced: number }> {
  const store = new MemoryStore();
  await populate(store);
  const sources = await reflectors(store);
  const renewals: number[] = [];
  const leases: LeaseStore = { ...store.leases, acquireOrRenew: (...args) => (args[1] === 'node-0' && renewals.push(performance.now()), store.leases.acquireOrRenew(...args)) };
  let table = 0;
  const responder: Responder = { setTable: (e) => void (table = e.length), setFence: () => undefined, stats: () => ({ answered: { arp: 0, ndp: 0 }, dropped: {}, gratuitous: 0 }), close: () => Promise.resolve() };
  const c = candidacy(0);
  const interfaces = { snapshot: () => ({ interfaces: c.interfaces, defaultRoute: c.defaultRoute }), onChange: () => undefined, close: () => undefined };
  const log = createLogger({ level: 'warn', destination: new Writable({ write: (_c, _e, done) => done() }) });
  const announcer = new L2Announcer({ nodeName: 'node-0', nodeLabels: () => ({}), leases, ...sources, responder, interfaces, log, metrics: createMetrics(), timing: { renewMs: RENEW_MS } });
  announcer.start();
  await sleep(2000); // every node's lease seen and the first full election done
  gc();
  const from = renewals.length;
  const p = probe();
  await churn(store, () => undefined); // the announcer sees nodes leave and return through the lease watch
  const late = p.stop();
  const gaps = renewals.slice(from).flatMap((t, i, all) => (i === 0 ? [] : [t - all[i - 1]!]));
  const announced = table;
  await announcer.stop();
  sources.stop();
  return { probe: late, gaps, announced };
}

function lateness(label: string, { late, stall }: { late: number[]; stall: number }): void {
  console.log(`   ${label.padEnd(40)}max ${fmt(Math.max(...late))}, p99 ${fmt(percentile(late, 0.99))}, median ${fmt(median(late))} (${late.length} firings); longest event-loop stall ${fmt(stall)}`);
}

async function main(): Promise<void> {
  const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');
  console.log(`L2 election under churn: ${SERVICES} services, ${NODES} live nodes, ${RATE} changes/s for ${SECONDS} s (node ${process.version}, load ${load()})`);
  const old = await before();
  gc();
  const now = await after();
  console.log(`\n2. Lateness of a ${RENEW_MS} ms renewal timer under ${RATE} changes/s for ${SECONDS} s, a node leaving or returning every 5 s`);
  lateness('before (whole pass after each burst)', old);
  lateness('after (incremental, 5 ms slices)', now.probe);
  const worstGap = Math.max(...now.gaps);
  console.log(`   (load at the end: ${load()})`);
  console.log(`   after, the announcer's own renewals: longest gap ${fmt(worstGap)} (${fmt(worstGap - RENEW_MS)} over ${RENEW_MS} ms), ${now.gaps.length + 1} renewals; node-0 answered for ${now.announced} IPs at the end`);
}

await main();
