// The north-south datapath: bpf/progs/nodeport.c as tc programs on the node's external devices.
// It reads the service tables the socket datapath writes (the same maps, pinned by name under the
// same bpffs root), so the planner's writes reach both; this edge only loads the programs, puts
// them on devices with the node's addresses there (the source of SNAT to remote backends), and
// reads its counters. Filters are not pinned: they stay on the device while the agent is away,
// and a restarted agent replaces them in place (same handle and priority).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap, BpfObject, builtObjectPath, detachTc, attachTc, type BpfProgram } from '../bpf/index.js';
import { mapSizes } from './datapath.js';
import { encodeU32, decodeU32, sumPerCpu, mapNames } from './layout.js';
import { decodeDevice, encodeDevice, nodeportMapNames, nodeportPrograms, nodeportStatNames, type DeviceAddresses, type NodeportStatName } from './nodeport-layout.js';

export interface NodePortOptions {
  /** The socket datapath's bpffs root: the service tables are shared through their pins. */
  bpfRoot: string;
  maglevTableSize: number;
  /** As the socket datapath's: a pinned map of another size cannot be shared. Conntrack gets 4×. */
  lbMapMax: number;
}

/** Our cls_bpf filter on each hook: a handle of our own, so filters of other programs stay. */
export const nodeportFilter = { handle: 0xbeac, priority: 1 } as const;

/** The node's addresses on a device as the datapath wants them: one global address per family. */
export function deviceAddresses(addresses: readonly { ip: string }[]): DeviceAddresses {
  const out: DeviceAddresses = {};
  for (const { ip } of addresses) {
    if (!ip.includes(':')) out.ipv4 ??= ip;
    else if (!/^fe[89ab]/i.test(ip)) out.ipv6 ??= ip; // link-local (fe80::/10) cannot be a NAT source for routed traffic
  }
  return out;
}

export class NodePortDatapath {
  private constructor(
    private readonly object: BpfObject,
    private readonly devicesMap: BpfMap,
    private readonly statsMap: BpfMap,
  ) {}

  /** Loads the programs, adopting the shared tables and the pinned conntrack of an earlier run. */
  static open(opts: NodePortOptions): NodePortDatapath {
    const object = BpfObject.open(builtObjectPath('nodeport'), {
      pinRoot: opts.bpfRoot,
      mapMaxEntries: { ...sharedSizes(opts.lbMapMax), [nodeportMapNames.conntrack]: opts.lbMapMax * 4, [nodeportMapNames.affinity]: opts.lbMapMax },
      innerMapMaxEntries: { [mapNames.maglev]: opts.maglevTableSize },
    });
    try {
      object.load();
      return new NodePortDatapath(object, object.map(nodeportMapNames.devices), object.map(nodeportMapNames.stats));
    } catch (e) {
      object.close();
      throw e;
    }
  }

  /** Puts both programs on the device (replacing ours if there), with the node's addresses there. */
  attach(ifindex: number, addresses: DeviceAddresses): void {
    this.setAddresses(ifindex, addresses);
    attachTc(this.object.program(nodeportPrograms.ingress), ifindex, 'ingress', nodeportFilter);
    attachTc(this.object.program(nodeportPrograms.egress), ifindex, 'egress', nodeportFilter);
  }

  setAddresses(ifindex: number, addresses: DeviceAddresses): void {
    this.devicesMap.update(encodeU32(ifindex), encodeDevice(addresses));
  }

  /** Takes the programs off (a device that is gone has lost them already) and forgets its addresses. */
  detach(ifindex: number, exists: boolean): void {
    if (exists) for (const hook of ['ingress', 'egress'] as const) detachTc(ifindex, hook, nodeportFilter);
    this.devicesMap.delete(encodeU32(ifindex));
  }

  /** The devices the programs were put on, by ifindex (pinned: an earlier run's too). */
  devices(): Map<number, DeviceAddresses> {
    return new Map([...this.devicesMap.entries()].map(([k, v]) => [decodeU32(k), decodeDevice(v)]));
  }

  stats(): Record<NodeportStatName, number> {
    const out = {} as Record<NodeportStatName, number>;
    nodeportStatNames.forEach((name, i) => {
      const v = this.statsMap.lookup(encodeU32(i));
      out[name] = v ? Number(sumPerCpu(v)) : 0;
    });
    return out;
  }

  /** A program, e.g. for BPF_PROG_TEST_RUN. */
  program(hook: keyof typeof nodeportPrograms): BpfProgram {
    return this.object.program(nodeportPrograms[hook]);
  }

  /** Forgets every tracked flow (the benchmark's tear-down; the agent never needs it). */
  clearConntrack(): void {
    this.object.map(nodeportMapNames.conntrack).clear();
  }

  /** This datapath's own pinned maps under bpfRoot (the CLI reads them while the agent is stopped). */
  static pinnedMaps(bpfRoot: string): BpfMap[] {
    return Object.values(nodeportMapNames).flatMap((name) => (existsSync(join(bpfRoot, name)) ? [BpfMap.openPinned(join(bpfRoot, name))] : []));
  }

  /**
   * Takes the programs off every device the pinned devices map names (in the calling thread's
   * namespace) and forgets those devices: filters are not pinned, so removing the pins alone would
   * leave them running, and a device left in the map would be adopted as carrying them.
   * Returns the ifindexes.
   */
  static detachAll(bpfRoot: string): number[] {
    const pin = join(bpfRoot, nodeportMapNames.devices);
    if (!existsSync(pin)) return [];
    const map = BpfMap.openPinned(pin);
    try {
      const ifindexes = [...map.keys()].map((k) => decodeU32(k));
      for (const ifindex of ifindexes) {
        for (const hook of ['ingress', 'egress'] as const) {
          try {
            detachTc(ifindex, hook, nodeportFilter);
          } catch {
            // The device is gone, and its filters with it.
          }
        }
        map.delete(encodeU32(ifindex));
      }
      return ifindexes;
    } finally {
      map.close();
    }
  }

  /** Closes our handles; the filters and pins stay, so traffic keeps flowing. */
  close(): void {
    this.object.close();
  }
}

/** The socket datapath's sizes for the tables this object shares with it (libbpf refuses a pin of another size). */
function sharedSizes(lbMapMax: number): Record<string, number> {
  const shared = new Set<string>([mapNames.services, mapNames.backends, mapNames.slots, mapNames.maglev]);
  return Object.fromEntries(Object.entries(mapSizes(lbMapMax)).filter(([name]) => shared.has(name)));
}
