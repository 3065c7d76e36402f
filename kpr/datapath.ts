// The socket-LB datapath in the kernel: loads bpf/progs/lb.c, adopts maps pinned by an earlier
// run, attaches the cgroup hooks through pinned links, writes planner ops into the maps in
// batches and reads the maps back (adoption after a restart, `beacon kpr services`). The only
// part of kpr/ that does I/O.
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  BpfMap,
  BpfObject,
  MapType,
  attachCgroup,
  builtObjectPath,
  detachPinnedLink,
  ensureBpffs,
  type MapInfo,
} from '../bpf/index.js';
import {
  decodeBackend,
  decodeConfig,
  decodeService,
  decodeServiceKey,
  decodeSlotKey,
  decodeU32,
  encodeBackend,
  encodeConfig,
  encodeService,
  encodeServiceKey,
  encodeSlotKey,
  encodeU32,
  mapNames,
  statNames,
  sumPerCpu,
  type StatName,
} from './layout.js';
import { frontendKey } from './model.js';
import type { DatapathBackend, DatapathService, DatapathState, Op } from './state.js';

/** The cgroup hooks, one program each (bpf/progs/lb.c). */
export const socketHooks = [
  'beacon_connect4',
  'beacon_connect6',
  'beacon_sendmsg4',
  'beacon_sendmsg6',
  'beacon_recvmsg4',
  'beacon_recvmsg6',
  'beacon_getpeername4',
  'beacon_getpeername6',
] as const;

export { DEFAULT_BPF_ROOT, DEFAULT_LB_MAP_MAX } from './defaults.js';

export interface DatapathOptions {
  /** bpffs directory for pins: maps at ROOT/NAME, links at ROOT/links/NAME. */
  bpfRoot: string;
  /** cgroup v2 directory the socket hooks attach to. */
  cgroupRoot: string;
  maglevTableSize: number;
  /** Entries of the service and backend maps (Cilium's --bpf-lb-map-max); slots get 8×. */
  lbMapMax: number;
  /** Reports maps that could not be adopted (and were replaced). */
  warn?: (message: string) => void;
}

/** max_entries per map for a given --bpf-lb-map-max. */
export const mapSizes = (lbMapMax: number): Record<string, number> => ({
  [mapNames.services]: lbMapMax,
  [mapNames.backends]: lbMapMax,
  [mapNames.slots]: lbMapMax * 8,
  [mapNames.maglev]: lbMapMax,
  [mapNames.affinity]: lbMapMax,
  [mapNames.revnat]: lbMapMax * 4,
});

const linkPin = (bpfRoot: string, program: string): string => join(bpfRoot, 'links', program);
const BATCH = 8192;
/** BPF_F_INNER_MAP: inner maps of another max_entries may replace the template (table size changes). */
const BPF_F_INNER_MAP = 1 << 12;

/** Entries collected for one batched write or delete on one map, flushed in op order. */
class Batch {
  keys: Buffer;
  private values: Buffer | undefined;
  private n = 0;
  /** Where the entry reserved last goes: set by reserve(), no object per entry. */
  keyAt = 0;
  valueAt = 0;
  /** Entries the buffers hold: small at first (one service's update), doubled up to BATCH. */
  private room = 16;
  constructor(
    private readonly map: BpfMap,
    private readonly kind: 'update' | 'delete',
  ) {
    this.keys = Buffer.alloc(this.room * map.info.keySize);
    this.values = kind === 'update' ? Buffer.alloc(this.room * map.valueBytes) : undefined;
  }
  is(map: BpfMap, kind: 'update' | 'delete'): boolean {
    return this.map === map && this.kind === kind;
  }
  /** The value buffer of an update batch. */
  get value(): Buffer {
    return this.values ?? this.keys;
  }
  /** Room for one more entry, at keyAt / valueAt. */
  reserve(): this {
    if (this.n === this.room && this.room < BATCH) this.grow();
    if (this.n === BATCH) this.flush();
    const at = this.n++;
    this.keyAt = at * this.map.info.keySize;
    this.valueAt = at * this.map.valueBytes;
    return this;
  }
  private grow(): void {
    this.room *= 2;
    const keys = Buffer.alloc(this.room * this.map.info.keySize);
    this.keys.copy(keys);
    this.keys = keys;
    if (this.values) {
      const values = Buffer.alloc(this.room * this.map.valueBytes);
      this.values.copy(values);
      this.values = values;
    }
  }
  flush(): void {
    if (this.n === 0) return;
    const keys = this.keys.subarray(0, this.n * this.map.info.keySize);
    if (this.values) this.map.updateBatch(keys, this.values.subarray(0, this.n * this.map.valueBytes));
    else this.map.deleteBatch(keys);
    this.n = 0;
  }
}

export class SocketDatapath {
  private constructor(
    private readonly object: BpfObject | undefined,
    private readonly maps: Record<keyof typeof mapNames, BpfMap>,
    private readonly opts: Pick<DatapathOptions, 'bpfRoot' | 'maglevTableSize'>,
  ) {}

  /**
   * Loads the programs, adopting the maps pinned under bpfRoot when they are compatible (an
   * incompatible one, e.g. after --bpf-lb-map-max changed, is replaced and reported), and
   * attaches every hook. An existing pinned link gets the new program atomically, so sockets
   * are translated throughout an agent restart.
   */
  static open(opts: DatapathOptions): SocketDatapath {
    ensureBpffs(opts.bpfRoot);
    mkdirSync(join(opts.bpfRoot, 'links'), { recursive: true, mode: 0o700 });
    const maxEntries = mapSizes(opts.lbMapMax);
    const object = BpfObject.open(builtObjectPath('lb'), {
      pinRoot: opts.bpfRoot,
      mapMaxEntries: maxEntries,
      innerMapMaxEntries: { [mapNames.maglev]: opts.maglevTableSize },
    });
    try {
      for (const name of object.mapNames) {
        const pin = join(opts.bpfRoot, name);
        if (!existsSync(pin)) continue;
        const pinned = BpfMap.openPinned(pin);
        const want = maxEntries[name];
        const stale = want !== undefined && pinned.info.maxEntries !== want;
        pinned.close();
        if (stale) {
          opts.warn?.(`pinned map ${name} has ${pinned.info.maxEntries} entries, not ${want}: replaced (its entries are rewritten)`);
          rmSync(pin);
        }
      }
      object.load();
      for (const program of socketHooks) attachCgroup(object.program(program), opts.cgroupRoot, linkPin(opts.bpfRoot, program));
      const maps = Object.fromEntries(Object.entries(mapNames).map(([k, name]) => [k, object.map(name)])) as Record<keyof typeof mapNames, BpfMap>;
      maps.config.update(encodeU32(0), encodeConfig({ maglevTableSize: opts.maglevTableSize }));
      return new SocketDatapath(object, maps, opts);
    } catch (e) {
      object.close();
      throw e;
    }
  }

  /** The pinned maps only, for reading (the CLI); undefined when no datapath is pinned there. */
  static openPinned(bpfRoot: string): SocketDatapath | undefined {
    if (!existsSync(join(bpfRoot, mapNames.services))) return undefined;
    const maps = Object.fromEntries(Object.entries(mapNames).map(([k, name]) => [k, BpfMap.openPinned(join(bpfRoot, name))])) as Record<keyof typeof mapNames, BpfMap>;
    const config = maps.config.lookup(encodeU32(0));
    return new SocketDatapath(undefined, maps, { bpfRoot, maglevTableSize: config ? decodeConfig(config).maglevTableSize : 0 });
  }

  /**
   * Detaches every hook and removes every pin under bpfRoot: the datapath is gone once no
   * process holds it. For --kube-proxy-replacement=false and for tests.
   */
  static remove(bpfRoot: string): void {
    for (const program of socketHooks) detachPinnedLink(linkPin(bpfRoot, program));
    if (!existsSync(bpfRoot)) return;
    for (const name of readdirSync(bpfRoot)) rmSync(join(bpfRoot, name), { recursive: true, force: true });
    rmSync(bpfRoot, { recursive: true, force: true });
  }

  /** Writes the ops in their order; consecutive writes to one map go in one batch. */
  apply(ops: readonly Op[]): void {
    const m = this.maps;
    let batch: Batch | undefined;
    const into = (map: BpfMap, kind: 'update' | 'delete') => {
      if (!batch?.is(map, kind)) {
        batch?.flush();
        batch = new Batch(map, kind);
      }
      return batch.reserve();
    };
    for (const op of ops) {
      switch (op.op) {
        case 'upsertBackend': {
          const e = into(m.backends, 'update');
          encodeU32(op.backend.id, e.keys, e.keyAt);
          encodeBackend(op.backend, e.value, e.valueAt);
          break;
        }
        case 'setSlots':
          for (let i = 0; i < op.slots.length; i++) {
            const e = into(m.slots, 'update');
            encodeSlotKey(op.serviceId, op.slots[i]!, e.keys, e.keyAt);
            encodeU32(op.backendIds[i]!, e.value, e.valueAt);
          }
          break;
        case 'setMaglev':
          batch?.flush();
          this.writeMaglev(op.serviceId, op.table);
          break;
        case 'upsertService': {
          const e = into(m.services, 'update');
          encodeServiceKey(op.service.frontend, e.keys, e.keyAt);
          const { id, slots, algorithm, type, affinityTimeoutSeconds } = op.service;
          encodeService({ id, count: slots.length, algorithm, type, affinityTimeoutSeconds }, e.value, e.valueAt);
          break;
        }
        case 'deleteService': {
          const e = into(m.services, 'delete');
          encodeServiceKey(op.service.frontend, e.keys, e.keyAt);
          break;
        }
        case 'deleteSlots':
          for (const slot of op.slots) {
            const e = into(m.slots, 'delete');
            encodeSlotKey(op.serviceId, slot, e.keys, e.keyAt);
          }
          break;
        case 'deleteMaglev':
          batch?.flush();
          batch = undefined;
          m.maglev.delete(encodeU32(op.serviceId));
          break;
        case 'deleteBackend': {
          const e = into(m.backends, 'delete');
          encodeU32(op.id, e.keys, e.keyAt);
          break;
        }
      }
    }
    batch?.flush();
  }

  /** A new table swapped in whole: a lookup sees the old table or the new one, never a mix. */
  private writeMaglev(serviceId: number, table: Uint32Array): void {
    const inner = BpfMap.create(MapType.ARRAY, 4, 4, table.length, { name: 'beacon_mtab', flags: BPF_F_INNER_MAP });
    try {
      const keys = Buffer.alloc(table.length * 4);
      for (let i = 0; i < table.length; i++) keys.writeUInt32LE(i, i * 4);
      inner.updateBatch(keys, Buffer.from(table.buffer, table.byteOffset, table.byteLength));
      this.maps.maglev.setInner(encodeU32(serviceId), inner);
    } finally {
      inner.close();
    }
  }

  /**
   * read(), after deleting what the planner's state cannot express and so would never delete:
   * slots beyond a service's count and slots or Maglev tables of service ids no frontend has
   * (left by a crash between writes). A restarted agent starts from this.
   */
  adopt(): DatapathState {
    const state = this.read();
    const counts = new Map([...state.services.values()].map((s) => [s.id, s]));
    const strays: Buffer[] = [];
    for (const key of this.maps.slots.keys()) {
      const { serviceId, slot } = decodeSlotKey(key);
      const service = counts.get(serviceId);
      if (!service || slot > service.slots.length) strays.push(key);
    }
    if (strays.length > 0) this.maps.slots.deleteBatch(Buffer.concat(strays));
    for (const key of this.maps.maglev.keys()) {
      const service = counts.get(decodeU32(key));
      if (service?.algorithm !== 'maglev') this.maps.maglev.delete(key);
    }
    return state;
  }

  /** The maps read back as the planner's state. */
  read(): DatapathState {
    const m = this.maps;
    const backends = new Map<number, DatapathBackend>();
    for (const [k, v] of m.backends.entries()) backends.set(decodeU32(k), { id: decodeU32(k), ...decodeBackend(v) });
    const slotsById = new Map<number, Map<number, number>>();
    for (const [k, v] of m.slots.entries()) {
      const { serviceId, slot } = decodeSlotKey(k);
      let slots = slotsById.get(serviceId);
      if (!slots) slotsById.set(serviceId, (slots = new Map<number, number>()));
      slots.set(slot, decodeU32(v));
    }
    const services = new Map<string, DatapathService>();
    for (const [k, v] of m.services.entries()) {
      const frontend = decodeServiceKey(k);
      const entry = decodeService(v);
      const held = slotsById.get(entry.id);
      const slots = Array.from({ length: entry.count }, (_, i) => held?.get(i + 1) ?? 0);
      const maglev = entry.algorithm === 'maglev' ? this.readMaglev(entry.id) : undefined;
      services.set(frontendKey(frontend), {
        id: entry.id,
        frontend,
        type: entry.type,
        algorithm: entry.algorithm,
        affinityTimeoutSeconds: entry.affinityTimeoutSeconds,
        slots,
        ...(maglev ? { maglev } : {}),
      });
    }
    return { services, backends };
  }

  private readMaglev(serviceId: number): Uint32Array | undefined {
    const id = this.maps.maglev.innerId(encodeU32(serviceId));
    if (id === undefined) return undefined;
    const inner = BpfMap.fromId(id);
    try {
      const table = new Uint32Array(inner.info.maxEntries);
      for (const [k, v] of inner.entries()) table[decodeU32(k)] = decodeU32(v);
      return table;
    } finally {
      inner.close();
    }
  }

  /** The datapath's counters (summed over CPUs). */
  stats(): Record<StatName, number> {
    const out = {} as Record<StatName, number>;
    statNames.forEach((name, i) => {
      const v = this.maps.stats.lookup(encodeU32(i));
      out[name] = v ? Number(sumPerCpu(v)) : 0;
    });
    return out;
  }

  /** Name, type, entries and max entries of each map (`beacon bpf maps`). */
  mapList(): Array<MapInfo & { entries: number }> {
    return listMaps(Object.values(this.maps));
  }

  map(name: string): BpfMap | undefined {
    return Object.values(this.maps).find((m) => m.info.name === name);
  }

  get maglevTableSize(): number {
    return this.opts.maglevTableSize;
  }

  /** Closes our handles; pinned maps and links stay, so the datapath keeps working. */
  close(): void {
    if (this.object) this.object.close();
    else for (const map of Object.values(this.maps)) map.close();
  }
}

/** Name, type, entries and max entries of maps. */
export const listMaps = (maps: readonly BpfMap[]): Array<MapInfo & { entries: number }> => maps.map((map) => ({ ...map.info, entries: countEntries(map) }));

function countEntries(map: BpfMap): number {
  if (map.info.type === MapType.ARRAY || map.info.type === MapType.PERCPU_ARRAY) return map.info.maxEntries;
  let n = 0;
  for (const _ of map.keys()) n++;
  return n;
}
