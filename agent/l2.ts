// The node agent's L2 announcer: keeps this node's liveness lease (the only store write, a few per
// second whatever the number of services), reads the live set, keeps the election up to date with
// `IncrementalElection` (a changed service re-elects only its IPs), and hands this node's share to
// the responder with a fence deadline.
//
// Timing (defaults of the embedded and etcd stores): the lease lasts 1 s and is renewed every
// 200 ms; the live set is judged every 100 ms. The responder answers only until (start of the last
// successful renewal + duration − margin), so a node that cannot renew goes quiet 200 ms before
// any other node may consider its lease expired; after a kill -9 others take over 0.8–1.1 s later.
//
// The live set comes from the store's lease watch when it has one (Kubernetes: a list costs an
// API request) and is otherwise listed every scan interval. Expiry is judged from renewedAt +
// duration on this host's clock either way, so with a watch the scan costs no request.
//
// Election work never holds up a renewal: renewals run at a fixed rate from the start of the last
// one, and the election runs in slices of at most `electionSliceMs` with a turn of the event loop
// (setImmediate) between them, so a renewal timer that falls due during a full re-election (a new
// live set, 10,000 IPs) runs within one slice. A worker thread would need its own store client
// for the lease; slicing keeps one process state and one client.
import type { Labels } from '../api/index.js';
import { IncrementalElection, type AnnouncementChange, type IPAnnouncement, type L2Reason, type LiveNode, type NodeCandidacy, type NodeInterface } from '../l2announce/index.js';
import { regardingOf, type EventRecorder, type Lease, type LeaseStore, type Reflector } from '../store/index.js';
import { L2ElectionFeed } from './l2-feed.js';
import { defaultL2Timing, type L2Timing } from './l2-timing.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

export { defaultL2Timing, type L2Timing };
export { l2Service } from './l2-feed.js';

/** One (IP, interfaces) pair the responder answers for. */
export interface AnswerEntry {
  readonly ip: string;
  readonly interfaces: readonly string[];
}

export interface ResponderStats {
  readonly answered: { readonly arp: number; readonly ndp: number };
  readonly dropped: Readonly<Record<string, number>>;
  readonly gratuitous: number;
}

/** What answers on the wire (the packet link, or a fake in unit tests). */
export interface Responder {
  /** The full set to answer for; pairs new to it get gratuitous ARP / unsolicited NA at once. */
  setTable(entries: readonly AnswerEntry[]): void;
  /** Answer nothing after this CLOCK_MONOTONIC time (ns), even if this thread stalls. */
  setFence(untilNs: bigint): void;
  stats(): ResponderStats;
  close(): Promise<void>;
}

export interface InterfaceSnapshot {
  readonly interfaces: readonly NodeInterface[];
  readonly defaultRoute: NodeCandidacy['defaultRoute'];
}

/** This node's interfaces, watched for links going down or addresses changing. */
export interface InterfaceSource {
  snapshot(): InterfaceSnapshot;
  onChange(listener: () => void): void;
  close(): void;
}

export interface L2Deps {
  nodeName: string;
  /** This node's labels now (they may change: call nodeLabelsChanged). */
  nodeLabels: () => Labels;
  leases: LeaseStore;
  policies: Reflector;
  services: Reflector;
  slices: Reflector;
  responder: Responder;
  interfaces: InterfaceSource;
  log: Logger;
  metrics: Metrics;
  timing?: Partial<L2Timing>;
  /** Where takeovers are told to the services' owners (Kubernetes Events), when the store has it. */
  events?: EventRecorder | undefined;
  /** The longest the election holds the event loop at a time (default `electionSliceMs`); a slice does at least one step. */
  electionSliceMs?: number;
}

/** One line of `beacon l2 announcements`: the documented JSON contract. */
export interface L2AnnouncementView {
  ip: string;
  services: string[];
  node: string | null;
  interfaces: string[];
  reason: L2Reason;
}

export const l2LeasePrefix = 'l2-node-';

/** The longest the election holds the event loop at a time. */
export const electionSliceMs = 5;

const monotonicNs = (): bigint => process.hrtime.bigint();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const msToNs = (ms: number): bigint => BigInt(Math.round(ms * 1e6));

/** The candidacy a node published, or undefined when it cannot be read (that node is left out). */
export function parseCandidacy(data: string): NodeCandidacy | undefined {
  try {
    const c = JSON.parse(data) as Partial<NodeCandidacy>;
    if (typeof c !== 'object' || c === null || !Array.isArray(c.interfaces) || typeof c.labels !== 'object' || !c.defaultRoute) return undefined;
    return { labels: c.labels, ready: c.ready === true, draining: c.draining === true, interfaces: c.interfaces, defaultRoute: { ipv4: c.defaultRoute.ipv4 ?? [], ipv6: c.defaultRoute.ipv6 ?? [] } };
  } catch {
    return undefined;
  }
}

export class L2Announcer {
  private readonly timing: L2Timing;
  private readonly lease: string;
  private renewTimer: NodeJS.Timeout | undefined;
  private scanTimer: NodeJS.Timeout | undefined;
  private fenceTimer: NodeJS.Timeout | undefined;
  private recomputeTimer: NodeJS.Timeout | undefined;
  /** The next slice of an election pass that did not finish. */
  private nextSlice: NodeJS.Immediate | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  /** Monotonic ns after which this node must not answer (0: never renewed). */
  private fenceNs = 0n;
  private live: LiveNode[] = [];
  private liveSignature = '';
  /** Last renewal seen per node, for the failover time of nodes that disappear. */
  private lastSeen = new Map<string, number>();
  private readonly election: IncrementalElection;
  private readonly feed: L2ElectionFeed;
  /** The IPs the election gives this node. */
  private mine = new Map<string, IPAnnouncement>();
  /** What the responder answers for: IP to its interfaces, joined. */
  private answering = new Map<string, string>();
  private answeringFenced = false;
  private draining = false;
  private stopped = false;
  private unsubscribe: (() => void)[] = [];
  private badCandidacy = new Set<string>();
  /** The node leases as the store's lease watch last told them (watch mode only). */
  private watched: Lease[] | undefined;
  /** Wall time of this node's last renewal that reached the store (0: none yet). */
  private renewedAtMs = 0;
  /**
   * Set while this node could not reach the store, and for one lease duration after it could
   * again (`graceUntilMs`): leases that ran out since `sinceMs` still count as live then, because
   * their holders were most likely cut off by the same outage and are about to renew. Judging
   * them dead at once would move their IPs here and back again (two answering, twice).
   */
  private cutOff: { sinceMs: number; graceUntilMs?: number } | undefined;

  constructor(private readonly deps: L2Deps) {
    this.timing = { ...defaultL2Timing, ...deps.timing };
    this.lease = `${l2LeasePrefix}${deps.nodeName}`;
    this.election = new IncrementalElection(deps.nodeName);
    this.feed = new L2ElectionFeed(this.election, deps);
  }

  start(): void {
    this.unsubscribe = this.feed.subscribe(() => this.schedule());
    this.deps.interfaces.onChange(() => {
      this.schedule();
      void this.renew(false); // publish a link change now, not at the next renewal
    });
    void this.renew(true);
    const { leases } = this.deps;
    if (leases.watch) {
      this.unsubscribe.push(
        leases.watch(l2LeasePrefix, (set) => {
          this.watched = set;
          this.judge(set, this.judgedAt(set));
        }),
      );
      this.judgeWatched();
    } else void this.scan(true);
    this.statsTimer = setInterval(() => this.exportStats(), 1000);
    this.statsTimer.unref();
  }

  /**
   * Hands this node's IPs over and stops: publishes that it is draining; after two scan intervals
   * the successors answer and have sent their first gratuitous ARP / NA, so this node stops
   * answering (a client that asks now hears only them); it stays until the handover window ends,
   * so their repeated announcements reach clients whose neighbour entry was too fresh to change
   * at once (Linux locktime, 1 s), and only then releases its lease.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.draining = true;
    const announced = this.answering.size;
    await this.renew(false).catch(() => undefined);
    if (announced > 0) {
      const overlap = Math.min(this.timing.handoverMs, 2 * this.timing.scanMs + 50);
      await sleep(overlap);
      this.deps.responder.setTable([]);
      this.answering = new Map();
      await sleep(this.timing.handoverMs - overlap);
    }
    this.stopped = true;
    for (const t of [this.renewTimer, this.scanTimer, this.fenceTimer, this.recomputeTimer]) clearTimeout(t);
    clearImmediate(this.nextSlice);
    clearInterval(this.statsTimer);
    for (const u of this.unsubscribe) u();
    this.deps.responder.setTable([]);
    this.deps.responder.setFence(0n);
    await this.deps.leases.release(this.lease, this.deps.nodeName).catch(() => undefined);
    await this.deps.responder.close();
    this.deps.interfaces.close();
  }

  /** Publishes the new labels now (policies select nodes by them) rather than at the next renewal. */
  nodeLabelsChanged(): void {
    this.schedule();
    void this.renew(false);
  }

  /** What `beacon l2 announcements` shows. */
  announcements(): L2AnnouncementView[] {
    return this.election.announcements().map((a) => ({ ip: a.ip, services: [...a.services], node: a.node, interfaces: [...a.interfaces], reason: a.reason }));
  }

  /** The announcing nodes per service key, for `beacon services`. */
  announcersByService(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const a of this.election.announcements()) {
      if (!a.node) continue;
      for (const s of a.services) {
        const list = out.get(s) ?? [];
        if (!list.includes(a.node)) list.push(a.node);
        out.set(s, list);
      }
    }
    return out;
  }

  get liveNodes(): readonly string[] {
    return this.live.map((n) => n.name);
  }

  private candidacy(): NodeCandidacy {
    const { interfaces, defaultRoute } = this.deps.interfaces.snapshot();
    const { policies, services, slices } = this.deps;
    return {
      labels: this.deps.nodeLabels(),
      ready: policies.hasSynced && services.hasSynced && slices.hasSynced,
      draining: this.draining,
      interfaces: interfaces.filter((i) => i.name !== 'lo'),
      defaultRoute,
    };
  }

  private async renew(loop: boolean): Promise<void> {
    if (this.stopped) return;
    const started = monotonicNs();
    this.deps.metrics.l2LeaseWrites.inc();
    try {
      const { held, lease } = await this.deps.leases.acquireOrRenew(this.lease, this.deps.nodeName, this.timing.leaseDurationMs, JSON.stringify(this.candidacy()));
      if (held && !this.stopped) {
        this.renewedAtMs = Date.now();
        if (this.cutOff && this.cutOff.graceUntilMs === undefined) this.cutOff.graceUntilMs = this.renewedAtMs + this.timing.leaseDurationMs;
        const fence = started + msToNs(this.timing.leaseDurationMs - this.timing.marginMs);
        if (fence > this.fenceNs) {
          const wasFenced = this.fenceNs <= monotonicNs();
          this.fenceNs = fence;
          this.deps.responder.setFence(fence);
          this.armFence();
          if (wasFenced) this.schedule();
        }
      } else if (!held) {
        this.deps.log.error({ lease: this.lease, holder: lease.holder }, 'another process holds this node\'s L2 lease (same --node-name?); not announcing');
      }
    } catch (e) {
      if (this.renewedAtMs > 0) this.cutOff = { sinceMs: this.cutOff?.sinceMs ?? this.renewedAtMs };
      this.deps.metrics.l2RenewFailures.inc();
      this.deps.log.warn({ err: (e as Error).message }, 'L2 liveness lease renewal failed; answering stops when the last renewal runs out');
    }
    // At a fixed rate from the start of this renewal: a slow answer does not push the next one back.
    const next = this.timing.renewMs - Number(monotonicNs() - started) / 1e6;
    if (loop && !this.stopped) this.renewTimer = setTimeout(() => void this.renew(true), Math.max(0, next));
  }

  /** When the last renewal runs out: stop answering (the responder also enforces it on its own). */
  private armFence(): void {
    clearTimeout(this.fenceTimer);
    const ms = Number(this.fenceNs - monotonicNs()) / 1e6;
    this.fenceTimer = setTimeout(() => {
      if (this.fenceNs <= monotonicNs() && this.answering.size > 0) {
        this.deps.log.warn({ ips: this.answering.size }, 'L2 lease not renewed in time: stopped answering');
      }
      this.schedule();
    }, Math.max(0, ms) + 1);
  }

  /** Polling: list the node leases every scan interval (stores without a lease watch). */
  private async scan(loop: boolean): Promise<void> {
    if (this.stopped) return;
    try {
      const now = Date.now();
      this.judge(await this.deps.leases.list(l2LeasePrefix), now);
    } catch (e) {
      this.deps.log.warn({ err: (e as Error).message }, 'reading the L2 live set failed; keeping the last one');
    }
    if (loop && !this.stopped) this.scanTimer = setTimeout(() => void this.scan(true), this.timing.scanMs);
  }

  /** Watching: leases run out without any event, so judge the last set again every scan interval. */
  private judgeWatched(): void {
    if (this.stopped) return;
    if (this.watched) this.judge(this.watched, this.judgedAt(this.watched));
    this.scanTimer = setTimeout(() => this.judgeWatched(), this.timing.scanMs);
  }

  /**
   * The time up to which the watched set is known to be complete. This node's own renewal comes
   * back through the same watch, in order, about once per renew interval; while it keeps coming
   * the set is current and expiry is judged at now. When it stops (a stalled or broken watch), the
   * judgement stops a margin after the last echo, so a silent watch never makes a live node look
   * expired (two nodes would answer), as a failed list keeps the last set when polling. Until the
   * first echo nothing expires.
   */
  private judgedAt(set: readonly Lease[]): number {
    const own = set.find((l) => l.name === this.lease && l.holder === this.deps.nodeName);
    return Math.min(Date.now(), own ? own.renewedAt + this.timing.renewMs + this.timing.marginMs : -Infinity);
  }

  /** The live nodes among `leases` at time `at` (epoch ms); recompute when they changed. */
  private judge(leases: readonly Lease[], at: number): void {
    if (this.stopped) return;
    if (this.cutOff?.graceUntilMs !== undefined && at >= this.cutOff.graceUntilMs) this.cutOff = undefined;
    const ranOutLive = this.cutOff?.sinceMs ?? Infinity;
    const live: LiveNode[] = [];
    for (const l of leases) {
      const name = l.name.slice(l2LeasePrefix.length);
      const expiresAt = l.renewedAt + l.durationMs;
      if (l.holder !== name || (expiresAt <= at && expiresAt <= ranOutLive)) continue;
      this.lastSeen.set(name, l.renewedAt);
      const candidacy = parseCandidacy(l.data);
      if (!candidacy) {
        if (!this.badCandidacy.has(name)) this.deps.log.warn({ node: name }, 'unreadable L2 candidacy in a node lease; that node is left out of the election');
        this.badCandidacy.add(name);
        continue;
      }
      this.badCandidacy.delete(name);
      live.push({ name, candidacy });
    }
    const signature = JSON.stringify(live);
    if (signature !== this.liveSignature) {
      this.liveSignature = signature;
      this.live = live;
      this.deps.metrics.l2LiveNodes.set(live.length);
      this.election.setNodes(live);
      this.schedule();
    }
  }

  /** Elect soon, once for a burst of changes; a pass under way picks them up in its next slice. */
  private schedule(): void {
    if (this.recomputeTimer || this.nextSlice || this.stopped) return;
    this.recomputeTimer = setTimeout(() => {
      this.recomputeTimer = undefined;
      this.electSlice();
    }, 5);
  }

  /** One slice of an election pass: take in the changes and elect, for at most a slice in all; apply; yield. */
  private electSlice(): void {
    this.nextSlice = undefined;
    if (this.stopped) return;
    const until = performance.now() + (this.deps.electionSliceMs ?? electionSliceMs);
    let steps = 0;
    const more = () => steps++ === 0 || performance.now() < until;
    this.feed.sync(more);
    this.apply(this.election.elect(more));
    if (this.election.pendingIPs > 0 || this.feed.pending) this.nextSlice = setImmediate(() => this.electSlice());
  }

  /** Brings the responder in line with the election's changes and the fence. */
  private apply(changes: readonly AnnouncementChange[]): void {
    for (const c of changes) {
      if (c.after?.reason === 'announcing') this.mine.set(c.ip, c.after);
      else this.mine.delete(c.ip);
    }
    // While draining, keep answering what this node had until stop() ends the handover window.
    if (this.draining) return;
    const fenced = this.fenceNs <= monotonicNs();
    if (changes.length === 0 && fenced === this.answeringFenced) return;
    this.answeringFenced = fenced;
    const table = fenced ? [] : [...this.mine.values()];
    const next = new Map(table.map((a) => [a.ip, a.interfaces.join(',')]));
    const previous = new Map(changes.map((c) => [c.ip, c.before?.node ?? null]));
    const liveNames = new Set(this.live.map((n) => n.name));
    for (const a of table) {
      if (this.answering.has(a.ip)) continue;
      // An IP that did not change in this slice was already this node's: answering it again is new.
      const before = previous.has(a.ip) ? previous.get(a.ip)! : this.deps.nodeName;
      const cause = before === null || before === this.deps.nodeName ? 'new' : liveNames.has(before) ? 'move' : 'failover';
      this.deps.metrics.l2Takeovers.inc({ cause });
      if (cause === 'failover') {
        const last = this.lastSeen.get(before);
        if (last !== undefined) this.deps.metrics.l2FailoverSeconds.observe((Date.now() - last) / 1000);
      }
      this.deps.log.info({ ip: a.ip, interfaces: a.interfaces, services: a.services, previous: before, cause }, 'announcing');
      // Only the start is told: a node that stops (other than by shutting down) has a successor that tells its own start.
      const note = `node ${this.deps.nodeName} answers ${a.ip.includes(':') ? 'NDP' : 'ARP'} for ${a.ip} on ${a.interfaces.join(', ')}${cause === 'new' ? '' : ` (${cause === 'move' ? 'moved' : 'failover'} from ${before})`}`;
      for (const key of a.services) {
        const o = this.deps.services.get(key);
        if (o) this.deps.events?.record(regardingOf(o), { type: 'Normal', reason: 'Announcing', action: 'Announce', note });
      }
    }
    for (const ip of this.answering.keys()) {
      // Fenced, the election may still name this node: the reason is the fence, not the election.
      if (!next.has(ip)) this.deps.log.info({ ip, reason: fenced && this.mine.has(ip) ? 'fenced' : (this.election.get(ip)?.reason ?? 'gone') }, 'stopped announcing');
    }
    const changed = next.size !== this.answering.size || [...next].some(([ip, ifs]) => this.answering.get(ip) !== ifs);
    this.answering = next;
    if (changed) this.deps.responder.setTable(table.map((a) => ({ ip: a.ip, interfaces: a.interfaces })));
    this.deps.metrics.l2Announced.set(table.length);
  }

  private exportStats(): void {
    const s = this.deps.responder.stats();
    const m = this.deps.metrics;
    m.l2Answered.set({ protocol: 'arp' }, s.answered.arp);
    m.l2Answered.set({ protocol: 'ndp' }, s.answered.ndp);
    for (const [reason, n] of Object.entries(s.dropped)) m.l2Dropped.set({ reason }, n);
    m.l2Gratuitous.set(s.gratuitous);
  }
}

