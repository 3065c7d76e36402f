// The kube-proxy replacement on a node: Services and EndpointSlices from the store become
// frontends, the planner's ops and finally map writes in the kernel. A change of one service
// re-plans that service only (its frontends, the backends it releases), so the cost of an update
// does not grow with the number of services.
import type { EndpointSlice, Service } from '../api/index.js';
import { sliceService } from '../api/index.js';
import type { KernelSupport } from '../bpf/index.js';
import {
  applyDelta,
  buildFrontends,
  emptyDatapathState,
  frontendKey,
  planDatapathChanges,
  planDatapathFull,
  type Algorithm,
  type DatapathPlan,
  type DatapathState,
  type Frontend,
  type Op,
  type Problem,
} from '../kpr/index.js';
import type { SocketDatapath } from '../kpr/datapath.js';
import { objectKey, type Reflector } from '../store/index.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

export interface KprOptions {
  /** --kube-proxy-replacement: true, false, or undefined = where the kernel supports it. */
  enabled: boolean | undefined;
  bpfRoot: string;
  /** cgroup v2 directory for the socket hooks; default the host's cgroup v2 root. */
  cgroupRoot: string | undefined;
  maglevTableSize: number;
  lbMapMax: number;
  defaultAlgorithm: Algorithm;
  /** --devices: the external interfaces for north-south traffic; undefined = the default-route ones; 'none' = none. */
  devices: readonly string[] | 'none' | undefined;
}

/** The datapath as the agent needs it: an interface so unit tests run without a kernel. */
export type Datapath = Pick<SocketDatapath, 'apply' | 'read' | 'adopt' | 'stats' | 'close'>;

export interface KprDeps {
  nodeName: string;
  nodeAddresses: () => readonly string[];
  services: Reflector;
  slices: Reflector;
  datapath: Datapath;
  options: Pick<KprOptions, 'maglevTableSize' | 'lbMapMax' | 'defaultAlgorithm'>;
  log: Logger;
  metrics: Metrics;
}

const opCounts = (ops: readonly Op[]): Map<string, number> => {
  const counts = new Map<string, number>();
  for (const op of ops) counts.set(op.op, (counts.get(op.op) ?? 0) + 1);
  return counts;
};

export class KprAgent {
  private state: DatapathState = emptyDatapathState();
  /** Frontends each service produced at its last plan, by frontend key. */
  private byService = new Map<string, Map<string, Frontend>>();
  /** Which service holds each frontend key: a second service asking for it is refused. */
  private owner = new Map<string, string>();
  /** Keys a service was refused: when their holder lets go, a full pass gives them out again. */
  private conflicted = new Set<string>();
  /** Slices by service and service by slice, so a slice change finds its service at once. */
  private slicesOf = new Map<string, Set<string>>();
  private sliceOwner = new Map<string, string>();
  private dirty = new Set<string>();
  private full = true;
  private timer: NodeJS.Timeout | undefined;
  private resync: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void)[] = [];
  private problems = new Map<string, Problem[]>();
  private stopped = false;

  constructor(private readonly deps: KprDeps) {}

  /** Adopts what the maps hold (a restart writes only real differences) and starts following. */
  start(): void {
    this.state = this.deps.datapath.adopt();
    this.deps.log.info({ frontends: this.state.services.size, backends: this.state.backends.size }, 'datapath adopted');
    this.reindexSlices();
    this.unsubscribe = [
      this.deps.services.onChange((key) => this.changed(key)),
      this.deps.slices.onChange((key) => {
        if (key === undefined) return this.changed(undefined);
        const before = this.sliceOwner.get(key);
        const o = this.deps.slices.get(key);
        const after = o ? sliceService(o) : undefined;
        this.index(key, after);
        for (const svc of [before, after]) if (svc) this.changed(svc);
      }),
    ];
    // A periodic full pass repairs drift (a map edited by hand, a write that failed).
    this.resync = setInterval(() => this.changed(undefined), 60_000);
    this.resync.unref();
    this.changed(undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.resync);
    for (const u of this.unsubscribe) u();
    // The maps and links stay pinned: the datapath keeps serving while the agent is away.
    this.deps.datapath.close();
    return Promise.resolve();
  }

  /** Node addresses changed: every NodePort frontend may have. */
  nodeAddressesChanged(): void {
    this.changed(undefined);
  }

  get frontends(): number {
    return this.state.services.size;
  }

  get backends(): number {
    return this.state.backends.size;
  }

  private changed(serviceKey: string | undefined): void {
    if (serviceKey === undefined) this.full = true;
    else this.dirty.add(serviceKey);
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.reconcile();
    }, 5);
  }

  private index(sliceKey: string, service: string | undefined): void {
    const before = this.sliceOwner.get(sliceKey);
    if (before) this.slicesOf.get(before)?.delete(sliceKey);
    if (service) {
      this.sliceOwner.set(sliceKey, service);
      let set = this.slicesOf.get(service);
      if (!set) this.slicesOf.set(service, (set = new Set()));
      set.add(sliceKey);
    } else this.sliceOwner.delete(sliceKey);
  }

  private reindexSlices(): void {
    this.slicesOf.clear();
    this.sliceOwner.clear();
    for (const o of this.deps.slices.items()) {
      this.index(objectKey(o), sliceService(o));
    }
  }

  /**
   * Frontends of some services (all when keys is undefined), with the problems found. Built one
   * service at a time so that claim(), not buildFrontends' name order, decides who gets a
   * contested key; the frontends of a key's current holder come first.
   */
  private frontendsOf(keys: Iterable<string> | undefined): { frontends: Frontend[]; problems: Problem[] } {
    const services = keys === undefined ? this.deps.services.items() : [...keys].flatMap((k) => this.deps.services.get(k) ?? []);
    const nodeAddresses = this.deps.nodeAddresses();
    const frontends: Frontend[] = [];
    const problems = new Map<string, Problem>();
    for (const service of services) {
      const key = objectKey(service);
      const slices = [...(this.slicesOf.get(key) ?? [])].flatMap((s) => this.deps.slices.get(s) ?? []);
      const built = buildFrontends({
        services: [service as unknown as Service],
        slices: slices as unknown as EndpointSlice[],
        nodeName: this.deps.nodeName,
        nodeAddresses,
        defaultAlgorithm: this.deps.options.defaultAlgorithm,
      });
      frontends.push(...built.frontends);
      for (const p of built.problems) problems.set(`${p.service}|${p.reason}|${p.message}`, p);
    }
    const holds = (f: Frontend) => (this.owner.get(frontendKey(f)) === f.service ? 0 : 1);
    return { frontends: frontends.sort((a, b) => holds(a) - holds(b)), problems: [...problems.values()] }; // a stable sort
  }

  private reconcile(): void {
    if (this.stopped) return;
    const started = performance.now();
    const opts = { maglevTableSize: this.deps.options.maglevTableSize, maxServices: this.deps.options.lbMapMax, maxBackends: this.deps.options.lbMapMax, nodeName: this.deps.nodeName };
    let plan: DatapathPlan;
    let touched: string[];
    if (this.full) {
      this.full = false;
      this.dirty.clear();
      this.reindexSlices();
      const { frontends, problems } = this.frontendsOf(undefined);
      const wanted = this.claim(frontends, undefined);
      const full = planDatapathFull(this.state, wanted.frontends, opts);
      plan = { ...full, problems: [...problems, ...wanted.problems, ...full.problems] };
      touched = [];
      this.problems.clear();
    } else {
      touched = [...this.dirty];
      this.dirty.clear();
      const { frontends, problems } = this.frontendsOf(touched);
      const wanted = this.claim(frontends, touched);
      plan = { ...planDatapathChanges(this.state, wanted.changes, opts), problems: [...problems, ...wanted.problems] };
      for (const k of touched) this.problems.delete(k);
    }
    try {
      this.deps.datapath.apply(plan.ops);
    } catch (e) {
      // The maps are now somewhere between the old and the new state: read them back and
      // re-plan everything on the next pass.
      this.deps.log.error({ err: (e as Error).message }, 'datapath write failed; re-reading the maps');
      this.state = this.deps.datapath.adopt();
      this.full = true;
      setTimeout(() => this.changed(undefined), 1000).unref();
      return;
    }
    applyDelta(this.state, plan.delta);
    this.report(plan, touched, performance.now() - started);
  }

  /**
   * Gives each frontend key to one service (the one holding it keeps it) and turns a partial
   * pass into the planner's change map: every key the touched services held or now want.
   */
  private claim(frontends: Frontend[], touched: string[] | undefined): { frontends: Frontend[]; changes: Map<string, Frontend | undefined>; problems: Problem[] } {
    const problems: Problem[] = [];
    const changes = new Map<string, Frontend | undefined>();
    if (touched === undefined) {
      this.byService.clear();
      this.owner.clear();
      this.conflicted.clear();
    } else {
      for (const svc of touched) {
        for (const key of this.byService.get(svc)?.keys() ?? []) {
          changes.set(key, undefined);
          this.owner.delete(key);
        }
        this.byService.delete(svc);
      }
    }
    const kept: Frontend[] = [];
    let released = false;
    for (const f of frontends) {
      const key = frontendKey(f);
      const holder = this.owner.get(key);
      if (holder !== undefined && holder !== f.service) {
        problems.push({ service: f.service, reason: 'frontend_conflict', message: `${key} is already served for ${holder}` });
        this.conflicted.add(key);
        continue;
      }
      this.owner.set(key, f.service);
      let mine = this.byService.get(f.service);
      if (!mine) this.byService.set(f.service, (mine = new Map<string, Frontend>()));
      mine.set(key, f);
      changes.set(key, f);
      kept.push(f);
    }
    // A key given up may be wanted by a service that was refused it: let a full pass decide.
    for (const [key, f] of changes) if (f === undefined && this.conflicted.has(key)) released = true;
    if (released) setTimeout(() => this.changed(undefined), 0).unref();
    return { frontends: kept, changes, problems };
  }

  private report(plan: DatapathPlan, touched: string[], ms: number): void {
    const { log, metrics } = this.deps;
    for (const p of plan.problems) {
      const list = this.problems.get(p.service) ?? [];
      list.push(p);
      this.problems.set(p.service, list);
      log.warn({ service: p.service, reason: p.reason }, p.message);
    }
    metrics.kprProblems.reset();
    for (const list of this.problems.values()) for (const p of list) metrics.kprProblems.inc({ reason: p.reason });
    for (const [op, n] of opCounts(plan.ops)) metrics.kprMapWrites.inc({ op }, n);
    metrics.kprFrontends.set(this.state.services.size);
    metrics.kprBackends.set(this.state.backends.size);
    for (const [event, n] of Object.entries(this.deps.datapath.stats())) metrics.kprDatapath.set({ event }, n);
    const fields = { ops: plan.ops.length, frontends: this.state.services.size, backends: this.state.backends.size, ms: Math.round(ms * 10) / 10 };
    if (touched.length === 0) log.info(fields, 'datapath synced');
    else if (plan.ops.length > 0) log.debug({ ...fields, services: touched.length }, 'datapath updated');
  }
}

/** Why the datapath is off, or undefined when it should run (flag, then kernel support). */
export function kprOffReason(enabled: boolean | undefined, support: () => KernelSupport): string | undefined {
  if (enabled === false) return 'disabled by --kube-proxy-replacement false';
  const s = support();
  if (s.ok) return undefined;
  return enabled === true ? `--kube-proxy-replacement true, but the kernel lacks support: ${s.reason}` : `the kernel lacks support: ${s.reason}`;
}
