// The packet link: answers ARP and NDP for announced addresses from a worker thread (see
// packet-worker.ts). The main thread only hands over the table and the interface inventory and
// moves the fence deadline; the worker answers even while this thread is busy, and stops on its
// own when the deadline passes. Errors (EPERM, a missing interface) show in stats() and the log.
import { writeSync } from 'node:fs';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { InterfaceInventory } from './netif.js';
import { InterfaceWatcher } from './netif.js';
import { EVENTFD_ONE } from './packet-socket.js';
import type { FromWorker, LinkStats, ToWorker, WorkerData, WorkerInterface } from './packet-worker.js';
import { responderDropReasons, type AnswerEntry, type ResponderDropReason } from './responder.js';

export type { InterfaceStats, LinkStats } from './packet-worker.js';

export type LinkLog = (level: 'info' | 'warn' | 'error', msg: string, fields: Readonly<Record<string, string | number>>) => void;

/** Where interface names become ifindex, MAC and up/down: an InterfaceWatcher, or the agent's own. */
export interface InterfaceInventorySource {
  snapshot(): InterfaceInventory;
  /** May return a function that removes the listener; it is called on close(). */
  onChange(listener: () => void): unknown;
}

export interface PacketLinkOptions {
  /** Default: a watcher of its own (polls /sys/class/net every 100 ms), closed with the link. */
  readonly interfaces?: InterfaceInventorySource;
  /** Initial fence (CLOCK_MONOTONIC ns, as process.hrtime.bigint()); default 0n: answer nothing until setFence. */
  readonly fenceUntilNs?: bigint;
  readonly log?: LinkLog;
  /** Longest wait for the worker to start or stop; default 30 s (a cold tsx start on a busy machine is slow). */
  readonly timeoutMs?: number;
}

const emptyStats = (): LinkStats => ({
  answered: { arp: 0, ndp: 0 },
  dropped: Object.fromEntries(responderDropReasons.map((r) => [r, 0])) as Record<ResponderDropReason, number>,
  gratuitous: 0,
  received: 0,
  interfaces: {},
  problems: [],
  answering: false,
});

/**
 * The worker module beside this one: compiled `.js` from dist/, or `.ts` run through tsx (tests,
 * `npx tsx`). Node 20 does not apply the parent's `--import tsx` hooks inside a worker, so a `.ts`
 * worker starts from a one-line shim that loads it with tsx's tsImport.
 */
function workerEntry(): { entry: string | URL; eval: boolean } {
  const own = import.meta.url;
  if (!own.endsWith('.ts')) return { entry: new URL('./packet-worker.js', own), eval: false };
  let api = 'tsx/esm/api';
  try {
    api = import.meta.resolve(api);
  } catch {
    // Where import.meta.resolve is missing, the bare name resolves from the working directory.
  }
  const target = new URL('./packet-worker.ts', own).href;
  return { entry: `import(${JSON.stringify(api)}).then((tsx) => tsx.tsImport(${JSON.stringify(target)}, ${JSON.stringify(target)}));`, eval: true };
}

export class PacketLink {
  /** A fence that never passes, for a node that announces without election (standalone, one host). */
  static readonly FOREVER: bigint = 2n ** 63n - 1n;

  private latest: LinkStats = emptyStats();
  private entries: readonly AnswerEntry[] = [];
  private lastConfig = '';
  private closing: Promise<void> | undefined;
  private failure: string | undefined;
  /** The worker closes its eventfd only after it has read 'close': no write may follow that message. */
  private wakeable = true;
  private readonly exited: Promise<void>;

  private constructor(
    private readonly worker: Worker,
    private readonly port: MessagePort,
    private readonly fence: BigInt64Array,
    private readonly eventfd: number,
    private readonly source: InterfaceInventorySource,
    private readonly ownWatcher: InterfaceWatcher | undefined,
    private readonly log: LinkLog,
    private readonly timeoutMs: number,
    private unsubscribe: unknown = undefined,
  ) {
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
  }

  /** Starts the worker (rejects if it cannot: koffi or libc missing, no worker threads). */
  static async start(opts: PacketLinkOptions = {}): Promise<PacketLink> {
    const log: LinkLog = opts.log ?? (() => undefined);
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const ownWatcher = opts.interfaces === undefined ? await InterfaceWatcher.start({ onError: (e) => log('warn', 'interface inventory read failed', { error: e.message }) }) : undefined;
    const source = opts.interfaces ?? ownWatcher!;
    const fenceBuffer = new SharedArrayBuffer(8);
    const fence = new BigInt64Array(fenceBuffer);
    Atomics.store(fence, 0, opts.fenceUntilNs ?? 0n);
    const { port1, port2 } = new MessageChannel();
    const { entry, eval: isEval } = workerEntry();
    const worker = new Worker(entry, { eval: isEval, workerData: { port: port2, fence: fenceBuffer } satisfies WorkerData, transferList: [port2], name: 'beacon-packet-link' });
    let eventfd: number;
    try {
      eventfd = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`packet worker did not start within ${timeoutMs} ms`)), timeoutMs);
        const settle = (f: () => void) => {
          clearTimeout(timer);
          f();
        };
        port1.once('message', (m: FromWorker) => settle(() => (m.type === 'ready' ? resolve(m.eventfd) : reject(new Error(`packet worker failed: ${m.type === 'failed' ? m.error : m.type}`)))));
        worker.once('error', (e) => settle(() => reject(e)));
        worker.once('exit', (code) => settle(() => reject(new Error(`packet worker exited with code ${code} while starting`))));
      });
    } catch (e) {
      await worker.terminate();
      port1.close();
      ownWatcher?.close();
      throw e;
    }
    const link = new PacketLink(worker, port1, fence, eventfd, source, ownWatcher, log, timeoutMs);
    link.attach();
    return link;
  }

  private attach(): void {
    this.port.on('message', (m: FromWorker) => {
      if (m.type === 'stats') this.latest = m.stats;
      else if (m.type === 'log') this.log(m.level, m.msg, m.fields);
      else if (m.type === 'failed') this.fail(m.error);
    });
    this.worker.on('error', (e) => this.fail(e.message));
    this.worker.on('exit', (code) => {
      if (this.closing === undefined) this.fail(`packet worker exited with code ${code}`);
    });
    // The link never keeps a process alive by itself; the worker dies with the process.
    this.worker.unref();
    this.port.unref();
    this.unsubscribe = this.source.onChange(() => this.push());
    this.push();
  }

  private fail(error: string): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.log('error', 'packet link stopped', { error });
  }

  /** Why the worker stopped, when it stopped without close(). */
  get failed(): string | undefined {
    return this.failure;
  }

  /**
   * The full set of (IP, interfaces) to answer for. A pair that is new (or whose interface came up,
   * or whose MAC changed) gets a gratuitous burst as soon as the fence allows answering.
   */
  setTable(entries: readonly AnswerEntry[]): void {
    this.entries = entries.map((e) => ({ ip: e.ip, interfaces: [...e.interfaces] }));
    this.push();
  }

  /**
   * Answer nothing at or after `untilNs` (CLOCK_MONOTONIC, process.hrtime.bigint()). Extending a
   * lapsed fence counts as a new start: every pair gets a gratuitous burst again.
   */
  setFence(untilNs: bigint): void {
    Atomics.store(this.fence, 0, untilNs);
    this.wake();
  }

  /** The worker's counters, at most ~100 ms old. */
  stats(): LinkStats {
    return this.latest;
  }

  /** Stops answering, closes the sockets and the worker (and the watcher it started). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      Atomics.store(this.fence, 0, 0n);
      if (typeof this.unsubscribe === 'function') (this.unsubscribe as () => void)();
      this.ownWatcher?.close();
      this.post({ type: 'close' });
      this.wakeable = false;
      const timer = setTimeout(() => void this.worker.terminate(), this.timeoutMs);
      await this.exited;
      clearTimeout(timer);
      this.port.close();
    })();
    return this.closing;
  }

  private push(): void {
    if (this.closing !== undefined) return;
    const interfaces: WorkerInterface[] = this.source.snapshot().interfaces.map((i) => ({ name: i.name, ifindex: i.ifindex, mac: i.mac, up: i.up }));
    const config: ToWorker = { type: 'config', interfaces, entries: this.entries };
    const text = JSON.stringify(config);
    if (text === this.lastConfig) return;
    this.lastConfig = text;
    this.post(config);
  }

  private post(message: ToWorker): void {
    this.port.postMessage(message);
    this.wake();
  }

  private wake(): void {
    if (!this.wakeable) return;
    try {
      writeSync(this.eventfd, EVENTFD_ONE);
    } catch {
      // The worker has gone (and closed its eventfd): nothing to wake.
    }
  }
}
