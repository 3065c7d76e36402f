// The external devices: the interfaces the north-south datapath's tc programs sit on. Chosen by
// `--devices NAME,...` (a trailing `+` matches a prefix, as Cilium's `eth+`), by default the
// interfaces of the IPv4 and IPv6 default routes; followed as links come, go and change, with
// attach/detach callbacks for the difference.
import { InterfaceWatcher, type InterfaceInventory, type WatchOptions } from '../l2announce/index.js';
import type { Logger } from './log.js';

export type DeviceMissingReason = 'invalid_name' | 'not_found' | 'no_match' | 'no_default_route';

export interface MissingDevice {
  /** The `--devices` entry, or `default route` when none was given. */
  readonly spec: string;
  readonly reason: DeviceMissingReason;
  readonly message: string;
}

export interface DeviceSelection {
  /** Chosen interface names, sorted. */
  readonly devices: readonly string[];
  readonly missing: readonly MissingDevice[];
}

/** An interface with programs on it: tc attachments belong to the ifindex, not the name. */
export interface Device {
  readonly name: string;
  readonly ifindex: number;
}

/** The kernel's dev_valid_name(): at most IFNAMSIZ-1 = 15 bytes, not `.` or `..`, no `/`, `:` or whitespace. */
const validName = (name: string): boolean => name.length > 0 && Buffer.byteLength(name) <= 15 && name !== '.' && name !== '..' && !/[/:\s]/.test(name);

/** The devices `spec` selects among `links`; no spec (or an empty one) means the default-route interfaces. */
export function selectDevices(
  spec: readonly string[] | undefined,
  links: readonly { readonly name: string }[],
  defaultRoutes: { readonly ipv4: readonly string[]; readonly ipv6: readonly string[] },
): DeviceSelection {
  const present = new Set(links.map((l) => l.name));
  const chosen = new Set<string>();
  const missing: MissingDevice[] = [];
  if (spec === undefined || spec.length === 0) {
    for (const name of [...defaultRoutes.ipv4, ...defaultRoutes.ipv6]) if (present.has(name)) chosen.add(name);
    if (chosen.size === 0) missing.push({ spec: 'default route', reason: 'no_default_route', message: 'no interface carries an IPv4 or IPv6 default route' });
    return { devices: [...chosen].sort(), missing };
  }
  for (const entry of spec) {
    const prefix = entry.endsWith('+') ? entry.slice(0, -1) : undefined;
    if (prefix === undefined ? !validName(entry) : prefix !== '' && !validName(prefix)) {
      missing.push({ spec: entry, reason: 'invalid_name', message: `"${entry}" is not an interface name (at most 15 characters, no "/", ":" or spaces), optionally with a trailing "+"` });
    } else if (prefix === undefined) {
      if (present.has(entry)) chosen.add(entry);
      else missing.push({ spec: entry, reason: 'not_found', message: `no interface named ${entry}` });
    } else {
      const matches = [...present].filter((name) => name.startsWith(prefix));
      for (const name of matches) chosen.add(name);
      if (matches.length === 0) missing.push({ spec: entry, reason: 'no_match', message: `no interface name starts with "${prefix}"` });
    }
  }
  return { devices: [...chosen].sort(), missing };
}

/** What to detach and attach to go from `attached` to `wanted`; a name whose ifindex changed is both. */
export function planDeviceChanges(attached: readonly Device[], wanted: readonly Device[]): { detach: Device[]; attach: Device[] } {
  const key = (d: Device) => `${d.name}/${d.ifindex}`;
  const wantedKeys = new Set(wanted.map(key));
  const attachedKeys = new Set(attached.map(key));
  return { detach: attached.filter((d) => !wantedKeys.has(key(d))), attach: wanted.filter((d) => !attachedKeys.has(key(d))) };
}

/** The part of InterfaceWatcher the follower reads. */
export type InterfaceFeed = Pick<InterfaceWatcher, 'snapshot' | 'onChange'>;

export interface DeviceFollowerOptions {
  readonly spec: readonly string[] | undefined;
  /** Puts the programs on a device (again after a failure): it should replace whatever is there. */
  readonly attach: (name: string, ifindex: number) => void | Promise<void>;
  /** Takes them off; called as well for a device that vanished, so its handles can be forgotten. */
  readonly detach: (name: string, ifindex: number) => void | Promise<void>;
  readonly log: Logger;
  /** Devices that already carry the programs (adopted after a restart): kept if still chosen, else detached. */
  readonly attached?: readonly Device[];
  /** The interfaces to follow; default an InterfaceWatcher of this namespace, closed with the follower. */
  readonly interfaces?: InterfaceFeed;
  /** Poll and resync periods of the default watcher (routes are re-read at each resync). */
  readonly watch?: WatchOptions;
  /** Delay before retrying a failed attach or detach; default 5 s. */
  readonly retryMs?: number;
}

/**
 * Follows the chosen devices and calls attach/detach for the difference, one call at a time.
 * Closing stops following and detaches nothing: the datapath keeps serving while the agent restarts.
 */
export class DeviceFollower {
  private attachedNow: Device[];
  private current: DeviceSelection = { devices: [], missing: [] };
  private running: Promise<void> | undefined;
  private again = false;
  private retry: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly unsubscribe: () => void;

  private constructor(
    private readonly opts: DeviceFollowerOptions,
    private readonly interfaces: InterfaceFeed,
    private readonly owned: InterfaceWatcher | undefined,
  ) {
    this.attachedNow = [...(opts.attached ?? [])];
    this.unsubscribe = interfaces.onChange(() => this.wake());
  }

  /** Starts following; resolves after the first pass of attach/detach calls. */
  static async start(opts: DeviceFollowerOptions): Promise<DeviceFollower> {
    const owned = opts.interfaces ? undefined : await InterfaceWatcher.start({ onError: (e) => opts.log.warn({ err: e.message }, 'reading the interfaces failed; keeping the last inventory'), ...opts.watch });
    const follower = new DeviceFollower(opts, opts.interfaces ?? owned!, owned);
    follower.wake();
    await follower.settled();
    return follower;
  }

  get selection(): DeviceSelection {
    return this.current;
  }

  /** Devices whose programs are in place now. */
  get attached(): readonly Device[] {
    return this.attachedNow;
  }

  /** Resolves when no pass is running or queued. */
  async settled(): Promise<void> {
    while (this.running !== undefined) await this.running;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    this.unsubscribe();
    this.owned?.close();
    await this.settled();
  }

  private wake(): void {
    if (this.closed) return;
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    const pass = this.reconcile().catch((e: unknown) => this.opts.log.error({ err: e instanceof Error ? e.message : String(e) }, 'following the devices failed'));
    this.running = pass.finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.wake();
      }
    });
  }

  private async reconcile(): Promise<void> {
    const inventory: InterfaceInventory = this.interfaces.snapshot();
    const selection = selectDevices(this.opts.spec, inventory.interfaces, inventory.defaultRoute);
    if (JSON.stringify(selection) !== JSON.stringify(this.current)) {
      this.opts.log.info({ devices: selection.devices }, 'external devices selected');
      for (const m of selection.missing) this.opts.log.warn({ device: m.spec, reason: m.reason }, m.message);
      this.current = selection;
    }
    const byName = new Map(inventory.interfaces.map((i) => [i.name, i.ifindex]));
    const wanted = selection.devices.map((name) => ({ name, ifindex: byName.get(name)! }));
    const { detach, attach } = planDeviceChanges(this.attachedNow, wanted);
    let failed = false;
    for (const device of detach) {
      if (this.closed) return;
      const error = await attempt(() => this.opts.detach(device.name, device.ifindex));
      // The kernel drops a device's tc filters with it, so a failed detach of a vanished device is done anyway.
      if (error !== undefined && byName.get(device.name) === device.ifindex) {
        failed = true;
        this.opts.log.warn({ device: device.name, ifindex: device.ifindex, err: error }, 'detaching from the device failed; retrying');
        continue;
      }
      this.attachedNow = this.attachedNow.filter((d) => d !== device);
      this.opts.log.info({ device: device.name, ifindex: device.ifindex }, 'detached from the device');
    }
    for (const device of attach) {
      if (this.closed) return;
      const error = await attempt(() => this.opts.attach(device.name, device.ifindex));
      if (error !== undefined) {
        failed = true;
        this.opts.log.warn({ device: device.name, ifindex: device.ifindex, err: error }, 'attaching to the device failed; retrying');
        continue;
      }
      this.attachedNow = [...this.attachedNow, device];
      this.opts.log.info({ device: device.name, ifindex: device.ifindex }, 'attached to the device');
    }
    if (failed && !this.closed) {
      clearTimeout(this.retry);
      this.retry = setTimeout(() => this.wake(), this.opts.retryMs ?? 5_000).unref();
    }
  }
}

async function attempt(call: () => void | Promise<void>): Promise<string | undefined> {
  try {
    await call();
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}
