// North-south traffic on the node: the tc programs of kpr/nodeport-datapath.ts on the devices
// --devices chooses (default: the default-route interfaces), with the node's addresses there kept
// current. A restart adopts the devices an earlier run left programs on (the pinned devices map):
// kept when still chosen, taken off otherwise. Stopping leaves the programs in place.
import { readFileSync, writeFileSync } from 'node:fs';
import type { InterfaceInventory, InterfaceWatcher } from '../l2announce/index.js';
import { NodePortDatapath, deviceAddresses } from '../kpr/nodeport-datapath.js';
import type { DeviceAddresses } from '../kpr/nodeport-layout.js';
import { DeviceFollower, type Device } from './devices.js';
import type { KprOptions } from './kpr.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

export interface NorthSouth {
  /** Devices carrying the programs now. */
  devices(): string[];
  stop(): Promise<void>;
}

/** Forwarding must be on: translated packets to local backends are routed to them. */
const forwardingSysctls = ['/proc/sys/net/ipv4/ip_forward', '/proc/sys/net/ipv6/conf/all/forwarding'];

/** Turns forwarding on; where /proc/sys is read-only (a container), it must already be on (Kubernetes nodes have it). */
function ensureForwarding(path: string, log: Logger): void {
  try {
    writeFileSync(path, '1');
  } catch (e) {
    if (readFileSync(path, 'utf8').trim() !== '1') log.warn({ sysctl: path, err: (e as Error).message }, 'forwarding is off and cannot be turned on: local backends get no north-south traffic');
  }
}

/** `interfaces`: the agent's watcher of this namespace's links (shared with the L2 link; not closed here). */
export async function startNorthSouth(k: KprOptions, log: Logger, metrics: Metrics, interfaces: () => Promise<InterfaceWatcher>): Promise<NorthSouth> {
  if (k.devices === 'none') {
    // Nothing to load; the programs an earlier run left on devices come off (they would keep serving).
    const ifindexes = NodePortDatapath.detachAll(k.bpfRoot);
    if (ifindexes.length > 0) log.info({ ifindexes }, 'north-south datapath detached: --devices none');
    return { devices: () => [], stop: () => Promise.resolve() };
  }
  const datapath = NodePortDatapath.open({ bpfRoot: k.bpfRoot, maglevTableSize: k.maglevTableSize, lbMapMax: k.lbMapMax });
  try {
    for (const path of forwardingSysctls) ensureForwarding(path, log);
    const watcher = await interfaces();
    const find = (inventory: InterfaceInventory, ifindex: number) => inventory.interfaces.find((i) => i.ifindex === ifindex);
    const addressesOf = (ifindex: number): DeviceAddresses => deviceAddresses(find(watcher.snapshot(), ifindex)?.addresses ?? []);
    /** What the devices map holds per device, to write only changes. */
    const written = new Map<number, string>();

    // Devices an earlier run programmed: those that still exist are handed to the follower.
    const attached: Device[] = [];
    for (const ifindex of datapath.devices().keys()) {
      const link = find(watcher.snapshot(), ifindex);
      if (link) attached.push({ name: link.name, ifindex });
      else datapath.detach(ifindex, false);
    }
    const follower = await DeviceFollower.start({
      spec: k.devices,
      interfaces: watcher,
      attached,
      log,
      attach: (name, ifindex) => {
        const addresses = addressesOf(ifindex);
        datapath.attach(ifindex, addresses);
        written.set(ifindex, JSON.stringify(addresses));
        log.info({ device: name, ifindex, ...addresses }, 'north-south datapath attached');
      },
      detach: (name, ifindex) => {
        datapath.detach(ifindex, find(watcher.snapshot(), ifindex) !== undefined);
        written.delete(ifindex);
        log.info({ device: name, ifindex }, 'north-south datapath detached');
      },
    });
    for (const m of follower.selection.missing) log.warn({ devices: m.spec, reason: m.reason }, m.message);
    // An address added or changed on a device: the SNAT source follows.
    const unsubscribe = watcher.onChange(() => {
      for (const { ifindex } of follower.attached) {
        const addresses = addressesOf(ifindex);
        if (written.get(ifindex) === JSON.stringify(addresses)) continue;
        datapath.setAddresses(ifindex, addresses);
        written.set(ifindex, JSON.stringify(addresses));
      }
    });
    const exportStats = setInterval(() => {
      for (const [event, n] of Object.entries(datapath.stats())) metrics.kprDatapath.set({ event: `nodeport_${event}` }, n);
    }, 5_000);
    exportStats.unref();
    return {
      devices: () => follower.attached.map((d) => d.name),
      stop: async () => {
        clearInterval(exportStats);
        unsubscribe();
        await follower.close();
        datapath.close();
      },
    };
  } catch (e) {
    datapath.close();
    throw e;
  }
}
