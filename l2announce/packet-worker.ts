// The packet link's worker thread: blocks in poll(2) on the packet sockets of every announcing
// interface and an eventfd the main thread writes to, answers ARP requests and Neighbor
// Solicitations from its own copy of the table (so a stalled main thread delays nothing), sends the
// gratuitous bursts, and answers nothing once the fence deadline in shared memory has passed.
// It never runs on libuv's thread pool: the blocking call is this thread's own.
import { isMainThread, parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { formatMAC, parseMAC, type MAC } from './mac.js';
import { ipv6MulticastMAC, solicitedNodeMulticast } from './ipv6.js';
import {
  ETH_P_ARP,
  ETH_P_IPV6,
  EventFd,
  PacketSocket,
  PacketSocketError,
  POLLERR,
  POLLFD_SIZE,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  arpRequestFilter,
  neighborSolicitationFilter,
  pollFds,
} from './packet-socket.js';
import {
  buildAnnouncementTable,
  GRATUITOUS_SCHEDULE_MS,
  gratuitousFrames,
  respond,
  responderDropReasons,
  ResponderTable,
  type AnnouncedPair,
  type AnswerEntry,
  type ResponderDropReason,
} from './responder.js';

// ---- the protocol between the threads -------------------------------------------------------------

/** An interface the worker may open, as the main thread's inventory sees it. */
export interface WorkerInterface {
  readonly name: string;
  readonly ifindex: number;
  readonly mac: string;
  readonly up: boolean;
}

export type ToWorker =
  | { readonly type: 'config'; readonly interfaces: readonly WorkerInterface[]; readonly entries: readonly AnswerEntry[] }
  | { readonly type: 'close' };

export interface InterfaceStats {
  readonly ifindex: number;
  /** `open`: answering; `down`: link down (sockets kept, the kernel re-arms them on up); `error`: sockets could not be opened, see `error`. */
  readonly state: 'open' | 'down' | 'error';
  readonly error?: string;
  readonly received: number;
  readonly answeredARP: number;
  readonly answeredNDP: number;
  readonly gratuitous: number;
  readonly sendErrors: number;
}

/** Totals since the link started: monotonic, fit for counters. */
export interface LinkStats {
  readonly answered: { readonly arp: number; readonly ndp: number };
  /** Every reason, zeros included. */
  readonly dropped: Readonly<Record<ResponderDropReason, number>>;
  readonly gratuitous: number;
  readonly received: number;
  /** Interfaces with sockets (named in the table and present); their counts start when they are (re)opened. */
  readonly interfaces: Readonly<Record<string, InterfaceStats>>;
  /** Entries of the last table that could not be used (unknown interface, bad IP). */
  readonly problems: readonly string[];
  /** Whether the fence allowed answering when the stats were taken. */
  readonly answering: boolean;
}

export type FromWorker =
  | { readonly type: 'ready'; readonly eventfd: number }
  | { readonly type: 'stats'; readonly stats: LinkStats }
  | { readonly type: 'log'; readonly level: 'info' | 'warn' | 'error'; readonly msg: string; readonly fields: Readonly<Record<string, string | number>> }
  | { readonly type: 'failed'; readonly error: string };

export interface WorkerData {
  readonly port: MessagePort;
  /** One BigInt64 slot: answer nothing at or after this CLOCK_MONOTONIC time (ns). */
  readonly fence: SharedArrayBuffer;
}

// ---- the worker ---------------------------------------------------------------------------------

/** The longest poll(): Node joins worker threads on exit, so a blocked poll must return soon. */
const POLL_CAP_MS = 200;
const STATS_EVERY_NS = 100_000_000n;
/** Frames read per socket per wake-up before others get their turn. */
const RECEIVE_BUDGET = 64;
const FRAME_BUFFER = 2048;
const RECEIVE_QUEUE_BYTES = 4 << 20;

interface OpenInterface {
  readonly name: string;
  ifindex: number;
  mac: MAC;
  up: boolean;
  arp: PacketSocket | undefined;
  ndp: PacketSocket | undefined;
  /** Solicited-node group MACs joined on the NDP socket, by text. */
  readonly groups: Set<string>;
  error: string | undefined;
  stats: { received: number; answeredARP: number; answeredNDP: number; gratuitous: number; sendErrors: number };
}

interface PendingBurst {
  readonly pair: AnnouncedPair;
  readonly frames: readonly Uint8Array[];
  readonly startNs: bigint;
  /** Index into the family's schedule of the next send. */
  step: number;
}

const errorText = (e: unknown): string => (e instanceof PacketSocketError ? e.message : e instanceof Error ? e.message : String(e));

class PacketWorker {
  private readonly interfaces = new Map<string, OpenInterface>();
  private table = new ResponderTable(new Map());
  private pairs: readonly AnnouncedPair[] = [];
  private problems: readonly string[] = [];
  private readonly bursts = new Map<string, PendingBurst>();
  /** Pairs that are ours and live (interface up, answering): a pair entering this set gets a burst. */
  private live = new Set<string>();
  private answering = false;
  /** Since the worker started: per-interface counts restart when an interface is reopened, these never go back. */
  private readonly totals = { arp: 0, ndp: 0, gratuitous: 0, received: 0 };
  private readonly dropped = Object.fromEntries(responderDropReasons.map((r) => [r, 0])) as Record<ResponderDropReason, number>;
  private statsDirty = true;
  private lastStatsNs = 0n;
  private pollfds = new Uint8Array(0);
  private polled: (OpenInterface | undefined)[] = [];
  private pollSockets: (PacketSocket | undefined)[] = [];
  private readonly frame = new Uint8Array(FRAME_BUFFER);
  private stopping = false;

  constructor(
    private readonly port: MessagePort,
    private readonly fence: BigInt64Array,
    private readonly wake: EventFd,
  ) {}

  run(): void {
    this.rebuildPoll();
    this.send({ type: 'ready', eventfd: this.wake.fd });
    let woken = true;
    for (;;) {
      if (woken) this.drainMessages();
      if (this.stopping) break;
      const now = process.hrtime.bigint();
      this.checkFence(now);
      this.sendDueBursts(now);
      this.flushStats(now, false);
      const n = pollFds(this.pollfds, this.polled.length, this.timeoutMs(process.hrtime.bigint()));
      woken = n !== 0; // on an error (EINTR) too: look at everything again
      if (n > 0) this.serviceSockets();
    }
    this.flushStats(process.hrtime.bigint(), true);
    for (const i of this.interfaces.values()) this.closeSockets(i);
    this.wake.close();
  }

  private send(message: FromWorker): void {
    this.port.postMessage(message);
  }

  private log(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, string | number>): void {
    this.send({ type: 'log', level, msg, fields });
  }

  private drainMessages(): void {
    this.wake.drain();
    for (let i = 0; i < 10_000; i++) {
      const received = receiveMessageOnPort(this.port);
      if (received === undefined) return;
      const message = received.message as ToWorker;
      if (message.type === 'close') this.stopping = true;
      else this.configure(message.interfaces, message.entries);
    }
  }

  // ---- configuration: sockets, table, memberships, bursts ----

  private configure(inventory: readonly WorkerInterface[], entries: readonly AnswerEntry[]): void {
    const wanted = new Set(entries.flatMap((e) => e.interfaces));
    const known = new Map(inventory.map((i) => [i.name, i]));
    for (const [name, open] of this.interfaces) {
      const now = known.get(name);
      if (!wanted.has(name) || now === undefined || now.ifindex !== open.ifindex) {
        // Gone, re-created (a new ifindex: the old socket is unbound for good) or no longer used.
        this.closeSockets(open);
        this.interfaces.delete(name);
      }
    }
    for (const name of wanted) {
      const info = known.get(name);
      const mac = info === undefined ? undefined : parseMAC(info.mac);
      if (info === undefined || mac === undefined) continue;
      let open = this.interfaces.get(name);
      if (open === undefined) {
        open = { name, ifindex: info.ifindex, mac, up: info.up, arp: undefined, ndp: undefined, groups: new Set(), error: undefined, stats: { received: 0, answeredARP: 0, answeredNDP: 0, gratuitous: 0, sendErrors: 0 } };
        this.interfaces.set(name, open);
        this.openSockets(open);
      }
      // A failed open (EPERM, ENODEV while the link was being re-created) is retried on each change.
      if (open.arp === undefined) this.openSockets(open);
      open.mac = mac;
      open.up = info.up;
    }
    const macs = new Map<string, MAC>();
    for (const i of this.interfaces.values()) if (i.arp !== undefined && i.ndp !== undefined) macs.set(i.name, i.mac);
    const built = buildAnnouncementTable(entries, macs);
    for (const p of built.problems) if (!this.problems.includes(p)) this.log('warn', 'cannot answer', { problem: p });
    this.table = new ResponderTable(built.table);
    this.pairs = built.pairs;
    this.problems = built.problems;
    for (const i of this.interfaces.values()) this.syncGroups(i);
    this.rebuildPoll();
    this.updateLive(process.hrtime.bigint());
    this.statsDirty = true;
  }

  private openSockets(i: OpenInterface): void {
    try {
      i.arp = PacketSocket.open(i.ifindex, ETH_P_ARP, arpRequestFilter);
      i.ndp = PacketSocket.open(i.ifindex, ETH_P_IPV6, neighborSolicitationFilter);
      // Room for a burst of requests while this thread waits for a core (the default holds ~300 frames).
      for (const s of [i.arp, i.ndp]) s.setReceiveBuffer(RECEIVE_QUEUE_BYTES);
      i.error = undefined;
    } catch (e) {
      this.closeSockets(i);
      const error = errorText(e);
      if (i.error !== error) this.log('error', 'cannot open packet sockets', { interface: i.name, ifindex: i.ifindex, error });
      i.error = error;
    }
  }

  private closeSockets(i: OpenInterface): void {
    i.arp?.close();
    i.ndp?.close();
    i.arp = i.ndp = undefined;
    i.groups.clear();
  }

  /** Joins the solicited-node groups (33:33:ff:xx:xx:xx, RFC 4291 §2.7.1, RFC 2464 §7) of the IPv6 addresses announced here. */
  private syncGroups(i: OpenInterface): void {
    if (i.ndp === undefined) return;
    const wanted = new Set<string>();
    for (const p of this.pairs) if (p.ifname === i.name && p.ip.family === 6) wanted.add(formatMAC(ipv6MulticastMAC(solicitedNodeMulticast(p.ip))));
    const change = (group: string, join: boolean) => {
      try {
        i.ndp!.setMembership(parseMAC(group)!, join);
        if (join) i.groups.add(group);
        else i.groups.delete(group);
      } catch (e) {
        this.log('warn', 'multicast membership failed', { interface: i.name, group, error: errorText(e) });
      }
    };
    for (const g of [...i.groups]) if (!wanted.has(g)) change(g, false);
    for (const g of wanted) if (!i.groups.has(g)) change(g, true);
  }

  private rebuildPoll(): void {
    const sockets: [OpenInterface | undefined, PacketSocket | undefined][] = [[undefined, undefined]];
    for (const i of this.interfaces.values()) for (const s of [i.arp, i.ndp]) if (s !== undefined) sockets.push([i, s]);
    this.pollfds = new Uint8Array(sockets.length * POLLFD_SIZE);
    const view = new DataView(this.pollfds.buffer);
    sockets.forEach(([, s], k) => {
      view.setInt32(k * POLLFD_SIZE, s === undefined ? this.wake.fd : s.fd, true);
      view.setInt16(k * POLLFD_SIZE + 4, POLLIN, true);
    });
    this.polled = sockets.map(([i]) => i);
    this.pollSockets = sockets.map(([, s]) => s);
  }

  // ---- the fence and gratuitous bursts ----

  private checkFence(now: bigint): void {
    const answering = now < Atomics.load(this.fence, 0);
    if (answering === this.answering) return;
    this.answering = answering;
    this.statsDirty = true;
    this.updateLive(now);
  }

  /** A pair becomes live when it is ours, its link is up and the fence allows answering; each new live pair starts a burst. */
  private updateLive(now: bigint): void {
    const live = new Set<string>();
    if (this.answering) for (const p of this.pairs) if (this.interfaces.get(p.ifname)?.up === true) live.add(p.key);
    for (const key of this.bursts.keys()) if (!live.has(key)) this.bursts.delete(key);
    for (const p of this.pairs) {
      if (live.has(p.key) && !this.live.has(p.key)) this.bursts.set(p.key, { pair: p, frames: gratuitousFrames(p.mac, p.ip), startNs: now, step: 0 });
    }
    this.live = live;
  }

  private sendDueBursts(now: bigint): void {
    if (!this.answering) return;
    for (const [key, burst] of this.bursts) {
      const schedule = GRATUITOUS_SCHEDULE_MS[burst.pair.ip.family];
      const i = this.interfaces.get(burst.pair.ifname);
      while (burst.step < schedule.length && burst.startNs + BigInt(schedule[burst.step]!) * 1_000_000n <= now) {
        burst.step++;
        if (i?.arp === undefined) continue;
        for (const frame of burst.frames) {
          if (!this.transmit(i, i.arp, frame)) continue;
          i.stats.gratuitous++;
          this.totals.gratuitous++;
        }
      }
      if (burst.step >= schedule.length) this.bursts.delete(key);
    }
  }

  private transmit(i: OpenInterface, socket: PacketSocket, frame: Uint8Array): boolean {
    try {
      socket.send(frame);
      this.statsDirty = true;
      return true;
    } catch (e) {
      i.stats.sendErrors++;
      this.statsDirty = true;
      if (i.stats.sendErrors === 1 || i.stats.sendErrors % 1000 === 0) this.log('warn', 'send failed', { interface: i.name, error: errorText(e), count: i.stats.sendErrors });
      return false;
    }
  }

  private timeoutMs(now: bigint): number {
    let until = now + BigInt(POLL_CAP_MS) * 1_000_000n;
    const at = (t: bigint) => {
      if (t < until) until = t;
    };
    if (this.answering) {
      at(Atomics.load(this.fence, 0));
      for (const b of this.bursts.values()) {
        const next = GRATUITOUS_SCHEDULE_MS[b.pair.ip.family][b.step];
        if (next !== undefined) at(b.startNs + BigInt(next) * 1_000_000n);
      }
    }
    if (this.statsDirty) at(this.lastStatsNs + STATS_EVERY_NS);
    // Round up: waking a little late is harmless, waking early spins.
    return until <= now ? 0 : Number((until - now + 999_999n) / 1_000_000n);
  }

  // ---- answering ----

  private serviceSockets(): void {
    const view = new DataView(this.pollfds.buffer);
    for (let k = 1; k < this.polled.length; k++) {
      const revents = view.getInt16(k * POLLFD_SIZE + 6, true);
      if (revents === 0) continue;
      const i = this.polled[k]!;
      const socket = this.pollSockets[k]!;
      if ((revents & POLLNVAL) !== 0) continue;
      if ((revents & (POLLIN | POLLERR | POLLHUP)) !== 0) this.receiveFrom(i, socket);
    }
  }

  private receiveFrom(i: OpenInterface, socket: PacketSocket): void {
    for (let n = 0; n < RECEIVE_BUDGET; n++) {
      let length: number;
      try {
        length = socket.receive(this.frame);
      } catch (e) {
        // ENETDOWN: the link went down (or away). The kernel re-arms a bound packet socket when
        // the same link comes up again; a link re-created under a new ifindex is reopened by configure().
        this.log('info', 'packet socket reported an error', { interface: i.name, error: errorText(e) });
        return;
      }
      if (length < 0) return;
      i.stats.received++;
      this.totals.received++;
      this.statsDirty = true;
      const decision = respond(this.table, i.name, this.frame.subarray(0, length));
      if (!decision.answer) {
        this.dropped[decision.reason]++;
        continue;
      }
      // Checked per reply, not per wake-up: the deadline may pass while this loop runs.
      if (process.hrtime.bigint() >= Atomics.load(this.fence, 0)) {
        this.dropped.fenced++;
        continue;
      }
      if (!this.transmit(i, socket, decision.frame)) continue;
      if (decision.protocol === 'arp') {
        i.stats.answeredARP++;
        this.totals.arp++;
      } else {
        i.stats.answeredNDP++;
        this.totals.ndp++;
      }
    }
  }

  // ---- stats ----

  private flushStats(now: bigint, force: boolean): void {
    if (!force && (!this.statsDirty || now - this.lastStatsNs < STATS_EVERY_NS)) return;
    this.statsDirty = false;
    this.lastStatsNs = now;
    const interfaces: Record<string, InterfaceStats> = {};
    for (const i of this.interfaces.values()) {
      const state = i.arp === undefined || i.ndp === undefined ? 'error' : i.up ? 'open' : 'down';
      interfaces[i.name] = { ifindex: i.ifindex, state, ...(i.error !== undefined ? { error: i.error } : {}), ...i.stats };
    }
    const { arp, ndp, gratuitous, received } = this.totals;
    this.send({ type: 'stats', stats: { answered: { arp, ndp }, dropped: { ...this.dropped }, gratuitous, received, interfaces, problems: this.problems, answering: this.answering } });
  }
}

if (!isMainThread && parentPort !== null) {
  const data = workerData as WorkerData;
  try {
    new PacketWorker(data.port, new BigInt64Array(data.fence), EventFd.create()).run();
  } catch (e) {
    data.port.postMessage({ type: 'failed', error: e instanceof Error ? (e.stack ?? e.message) : String(e) } satisfies FromWorker);
  }
  data.port.close();
}
