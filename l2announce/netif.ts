// The interfaces of the current network namespace: names, indexes, MACs, whether they pass
// packets, their addresses and which carry the default route. Read with iproute2's JSON output
// (`ip -j addr`, `ip -j route`); watched by polling /sys/class/net, which costs a few small reads
// per interface and notices a link going down within one poll period (failover must finish in 2 s).
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

export interface InterfaceAddress {
  /** Canonical text, as iproute2 prints it. */
  readonly ip: string;
  readonly prefixLength: number;
}

export interface NetInterface {
  readonly name: string;
  readonly ifindex: number;
  /** `aa:bb:cc:dd:ee:ff`, or '' for links without one (tunnels). */
  readonly mac: string;
  /** iproute2's link type: `ether`, `loopback`, `none` … Only `ether` links can answer ARP/NDP. */
  readonly linkType: string;
  /** RFC 2863 operational state, lower case (`up`, `down`, `unknown`, `lowerlayerdown` …). */
  readonly operstate: string;
  readonly carrier: boolean;
  /** Passes packets: carrier, and operstate `up` (or `unknown`, which drivers without operstate report). */
  readonly up: boolean;
  readonly addresses: readonly InterfaceAddress[];
}

export interface InterfaceInventory {
  readonly interfaces: readonly NetInterface[];
  /** Interfaces that carry a default route, per family (several with multipath or metrics). */
  readonly defaultRoute: { readonly ipv4: readonly string[]; readonly ipv6: readonly string[] };
}

export const isOperationallyUp = (operstate: string, carrier: boolean): boolean => carrier && (operstate === 'up' || operstate === 'unknown');

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const list = (v: unknown): unknown[] => (Array.isArray(v) ? (v as unknown[]) : []);

function parseJsonArray(text: string, what: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const value: unknown = JSON.parse(trimmed);
  if (!Array.isArray(value)) throw new Error(`${what}: expected a JSON array`);
  return value;
}

/** Parses `ip -j addr show`. Entries without a name or index are skipped. */
export function parseAddrJson(text: string): NetInterface[] {
  const out: NetInterface[] = [];
  for (const link of parseJsonArray(text, 'ip -j addr')) {
    if (!isRecord(link) || typeof link.ifname !== 'string' || typeof link.ifindex !== 'number') continue;
    const flags = list(link.flags).map(str);
    const carrier = flags.includes('LOWER_UP');
    const operstate = str(link.operstate).toLowerCase();
    const addresses: InterfaceAddress[] = [];
    for (const a of list(link.addr_info)) {
      if (!isRecord(a) || typeof a.local !== 'string' || typeof a.prefixlen !== 'number') continue;
      if (a.family !== 'inet' && a.family !== 'inet6') continue;
      addresses.push({ ip: a.local, prefixLength: a.prefixlen });
    }
    const linkType = str(link.link_type);
    out.push({ name: link.ifname, ifindex: link.ifindex, mac: linkType === 'ether' ? str(link.address) : '', linkType, operstate, carrier, up: isOperationallyUp(operstate, carrier), addresses });
  }
  return out;
}

/** Parses `ip -j route show default` (either family): the devices of every default route and multipath next hop. */
export function parseDefaultRouteJson(text: string): string[] {
  const devices = new Set<string>();
  for (const route of parseJsonArray(text, 'ip -j route')) {
    if (!isRecord(route)) continue;
    if (typeof route.dev === 'string') devices.add(route.dev);
    for (const hop of list(route.nexthops)) if (isRecord(hop) && typeof hop.dev === 'string') devices.add(hop.dev);
  }
  return [...devices].sort();
}

const run = promisify(execFile);
const ip = async (...args: string[]): Promise<string> => (await run('ip', ['-j', ...args], { timeout: 5_000, maxBuffer: 16 << 20 })).stdout;

/** One full read of the current namespace's interfaces, addresses and default routes. */
export async function readInventory(): Promise<InterfaceInventory> {
  const [addr, v4, v6] = await Promise.all([ip('addr', 'show'), ip('-4', 'route', 'show', 'default'), ip('-6', 'route', 'show', 'default')]);
  return { interfaces: parseAddrJson(addr), defaultRoute: { ipv4: parseDefaultRouteJson(v4), ipv6: parseDefaultRouteJson(v6) } };
}

// ---- the watcher ----------------------------------------------------------------------------------

const SYS_NET = '/sys/class/net';

interface LinkState {
  readonly ifindex: number;
  readonly operstate: string;
  readonly carrier: boolean;
}

function readSys(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    // `carrier` fails with EINVAL while the link is administratively down; a vanished link fails too.
    return undefined;
  }
}

/** operstate, carrier and ifindex of every link, from sysfs: the cheap poll. */
export function readLinkStates(root = SYS_NET): Map<string, LinkState> {
  const out = new Map<string, LinkState>();
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return out;
  }
  for (const name of names) {
    const ifindex = Number(readSys(join(root, name, 'ifindex')));
    if (!Number.isInteger(ifindex)) continue;
    out.set(name, { ifindex, operstate: readSys(join(root, name, 'operstate')) ?? 'unknown', carrier: readSys(join(root, name, 'carrier')) === '1' });
  }
  return out;
}

/**
 * The last full inventory with the polled link states applied: links that vanished are dropped, up
 * and carrier follow sysfs at once. Addresses and new links wait for the full re-read.
 */
export function applyLinkStates(inventory: InterfaceInventory, states: ReadonlyMap<string, LinkState>): InterfaceInventory {
  const interfaces: NetInterface[] = [];
  for (const i of inventory.interfaces) {
    const s = states.get(i.name);
    if (s === undefined || s.ifindex !== i.ifindex) continue;
    interfaces.push(s.operstate === i.operstate && s.carrier === i.carrier ? i : { ...i, operstate: s.operstate, carrier: s.carrier, up: isOperationallyUp(s.operstate, s.carrier) });
  }
  const present = new Set(interfaces.map((i) => i.name));
  const keep = (names: readonly string[]) => names.filter((n) => present.has(n));
  return { interfaces, defaultRoute: { ipv4: keep(inventory.defaultRoute.ipv4), ipv6: keep(inventory.defaultRoute.ipv6) } };
}

const linkSignature = (states: ReadonlyMap<string, LinkState>): string =>
  [...states].map(([name, s]) => `${name}/${s.ifindex}/${s.operstate}/${s.carrier ? 1 : 0}`).join(' ');

export interface WatchOptions {
  /** sysfs poll period; default 100 ms. */
  readonly pollMs?: number;
  /** Full re-read period even when sysfs shows no change (addresses, routes); default 5 s. */
  readonly resyncMs?: number;
  /** Called when a full read fails (the last inventory stays in use). */
  readonly onError?: (error: Error) => void;
}

/**
 * Keeps the inventory current and calls listeners when it changes. A link going down is seen by
 * the next sysfs poll and reported at once, before the full re-read that follows it.
 */
export class InterfaceWatcher {
  private current: InterfaceInventory;
  private currentJson: string;
  private signature: string;
  private readonly listeners = new Set<(inventory: InterfaceInventory) => void>();
  private readonly timers: NodeJS.Timeout[] = [];
  private reading: Promise<void> | undefined;
  private rereadWanted = false;
  private closed = false;
  private error: string | undefined;

  private constructor(
    first: InterfaceInventory,
    private readonly opts: WatchOptions,
  ) {
    this.current = first;
    this.currentJson = JSON.stringify(first);
    this.signature = linkSignature(readLinkStates());
  }

  /** Reads the inventory once (rejects if that fails), then watches it. */
  static async start(opts: WatchOptions = {}): Promise<InterfaceWatcher> {
    const watcher = new InterfaceWatcher(await readInventory(), opts);
    const timer = (ms: number, fn: () => void) => watcher.timers.push(setInterval(fn, ms).unref());
    timer(opts.pollMs ?? 100, () => watcher.poll());
    timer(opts.resyncMs ?? 5_000, () => watcher.reread());
    return watcher;
  }

  snapshot(): InterfaceInventory {
    return this.current;
  }

  /** The last full read's failure, if the last one failed. */
  get lastError(): string | undefined {
    return this.error;
  }

  /** Calls `listener` after each change; returns the function that removes it. */
  onChange(listener: (inventory: InterfaceInventory) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers.splice(0)) clearInterval(t);
    this.listeners.clear();
  }

  /** A full re-read now (coalesced with one in flight); resolves when the inventory reflects it. */
  async refresh(): Promise<InterfaceInventory> {
    this.reread();
    while (this.reading !== undefined) await this.reading;
    return this.current;
  }

  private poll(): void {
    const states = readLinkStates();
    const signature = linkSignature(states);
    if (signature === this.signature) return;
    this.signature = signature;
    this.publish(applyLinkStates(this.current, states));
    this.reread();
  }

  private reread(): void {
    if (this.closed) return;
    if (this.reading !== undefined) {
      this.rereadWanted = true;
      return;
    }
    this.reading = readInventory().then(
      (inventory) => {
        this.error = undefined;
        // A read that began before a link went away may finish after the poll saw it go: the link states now win.
        this.publish(applyLinkStates(inventory, readLinkStates()));
      },
      (e: unknown) => {
        this.error = e instanceof Error ? e.message : String(e);
        this.opts.onError?.(e instanceof Error ? e : new Error(this.error));
      },
    ).finally(() => {
      this.reading = undefined;
      if (this.rereadWanted) {
        this.rereadWanted = false;
        this.reread();
      }
    });
  }

  private publish(inventory: InterfaceInventory): void {
    if (this.closed) return;
    const json = JSON.stringify(inventory);
    if (json === this.currentJson) return;
    this.current = inventory;
    this.currentJson = json;
    for (const listener of [...this.listeners]) listener(inventory);
  }
}
