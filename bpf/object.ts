// A compiled BPF object (clang -target bpf) opened and loaded through libbpf, and the ways its
// programs are put to work: cgroup hooks held by pinned links, tc filters, test runs.

import { closeSync, existsSync, openSync, statSync, unlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  BpfError, Errno, addressOf, c, check, checkPointer, cString, dupFd, lib, objectInfo, optsBuffer, withLibbpfLog, type Pointer,
} from './libbpf.js';
import { BpfMap } from './map.js';

export interface OpenOptions {
  /**
   * Directory (on a bpf filesystem) where maps declared with `__uint(pinning, LIBBPF_PIN_BY_NAME)`
   * are pinned by name. On load libbpf reuses a compatible map already pinned there (same type,
   * sizes, max_entries, flags) instead of creating one: this is how a restarted agent adopts
   * the running datapath's state. An incompatible pin fails the load. Absent: libbpf's default,
   * /sys/fs/bpf itself.
   */
  readonly pinRoot?: string;
  /** max_entries per map name, replacing the compiled value. */
  readonly mapMaxEntries?: Readonly<Record<string, number>>;
  /** max_entries of the inner-map template of each named map-in-map. */
  readonly innerMapMaxEntries?: Readonly<Record<string, number>>;
}

// struct bpf_object_open_opts (libbpf.h): sz 0, object_name 8, relaxed_maps 16, pin_root_path 24; 80 bytes.
const OPEN_OPTS_SIZE = 80;

export class BpfProgram {
  constructor(
    private readonly object: BpfObject,
    readonly name: string,
    /** The struct bpf_program * inside the object. */
    readonly pointer: Pointer,
  ) {}

  /** The program's fd, owned by its object. */
  get fd(): number {
    this.object.assertLoaded();
    return lib().bpf_program__fd(this.pointer);
  }

  get type(): number {
    return lib().bpf_program__type(this.pointer);
  }
}

export class BpfObject {
  private pointer: Pointer | undefined;
  private loaded = false;
  private readonly mapPointers = new Map<string, Pointer>();
  private readonly programsByName = new Map<string, BpfProgram>();
  private readonly mapHandles = new Map<string, BpfMap>();
  private readonly innerTemplates: BpfMap[] = [];

  private constructor(
    readonly name: string,
    pointer: Pointer,
  ) {
    this.pointer = pointer;
    for (let m = lib().bpf_object__next_map(pointer, null); m !== null; m = lib().bpf_object__next_map(pointer, m)) this.mapPointers.set(lib().bpf_map__name(m), m);
    for (let p = lib().bpf_object__next_program(pointer, null); p !== null; p = lib().bpf_object__next_program(pointer, p)) {
      const name = lib().bpf_program__name(p);
      this.programsByName.set(name, new BpfProgram(this, name, p));
    }
  }

  /** Opens (parses, does not load) the object file at `path`. */
  static open(path: string, opts: OpenOptions = {}): BpfObject {
    const o = optsBuffer(OPEN_OPTS_SIZE);
    const pinRoot = opts.pinRoot === undefined ? undefined : cString(opts.pinRoot);
    o.writeBigUInt64LE(addressOf(pinRoot), 24);
    const pointer = withLibbpfLog(() => checkPointer(lib().bpf_object__open_file(path, o), `bpf_object__open_file(${path})`));
    const obj = new BpfObject(basename(path, '.o'), pointer);
    try {
      for (const [name, n] of Object.entries(opts.mapMaxEntries ?? {})) obj.setMaxEntries(name, n);
      for (const [name, n] of Object.entries(opts.innerMapMaxEntries ?? {})) obj.setMaxEntries(name, n, { inner: true });
    } catch (e) {
      obj.close();
      throw e;
    }
    return obj;
  }

  private get live(): Pointer {
    if (this.pointer === undefined) throw new Error(`BPF object ${this.name} is closed`);
    return this.pointer;
  }

  assertLoaded(): void {
    if (!this.loaded || this.pointer === undefined) throw new Error(`BPF object ${this.name} is not loaded`);
  }

  /** Names of the maps and programs in the object. */
  get mapNames(): string[] {
    return [...this.mapPointers.keys()];
  }

  get programNames(): string[] {
    return [...this.programsByName.keys()];
  }

  /** Sets max_entries of a map (or of its inner-map template) before load. */
  setMaxEntries(mapName: string, maxEntries: number, opts: { inner?: boolean } = {}): void {
    void this.live;
    if (this.loaded) throw new Error(`BPF object ${this.name}: max_entries of ${mapName} can only change before load`);
    const map = this.mapPointers.get(mapName);
    if (map === undefined) throw new Error(`BPF object ${this.name} has no map ${mapName}`);
    if (!opts.inner) {
      check(lib().bpf_map__set_max_entries(map, maxEntries), `bpf_map__set_max_entries(${mapName}, ${maxEntries})`);
      return;
    }
    // libbpf 1.1 crashes setting max_entries on the declared inner template (its inner map has no
    // object behind it), so the template is replaced by a map of ours with the same shape.
    const declared = lib().bpf_map__inner_map(map);
    if (declared === null) throw new Error(`BPF object ${this.name}: map ${mapName} has no inner map`);
    const l = lib();
    const template = BpfMap.create(l.bpf_map__type(declared), l.bpf_map__key_size(declared), l.bpf_map__value_size(declared), maxEntries, {
      name: `${mapName}.inner`.slice(0, 15),
      flags: l.bpf_map__map_flags(declared),
    });
    try {
      check(l.bpf_map__set_inner_map_fd(map, template.fd), `bpf_map__set_inner_map_fd(${mapName})`);
    } catch (e) {
      template.close();
      throw e;
    }
    // The kernel copies the template's shape when the outer map is created: it is closed after load.
    this.innerTemplates.push(template);
  }

  /** Creates (or adopts pinned) maps and loads every program; a rejection carries the verifier log. */
  load(): void {
    const obj = this.live;
    if (this.loaded) return;
    withLibbpfLog(() => check(lib().bpf_object__load(obj), `bpf_object__load(${this.name})`));
    this.loaded = true;
    for (const t of this.innerTemplates.splice(0)) t.close();
  }

  /** A handle on a loaded map, owned by this object (closed with it). */
  map(name: string): BpfMap {
    this.assertLoaded();
    const handle = this.mapHandles.get(name);
    if (handle) return handle;
    const m = this.mapPointers.get(name);
    if (m === undefined) throw new Error(`BPF object ${this.name} has no map ${name}`);
    const map = new BpfMap(dupFd(lib().bpf_map__fd(m), `map ${name}`));
    this.mapHandles.set(name, map);
    return map;
  }

  program(name: string): BpfProgram {
    void this.live;
    const p = this.programsByName.get(name);
    if (p === undefined) throw new Error(`BPF object ${this.name} has no program ${name}`);
    return p;
  }

  /** Closes the object and its map handles; pinned maps and links stay in the kernel. */
  close(): void {
    for (const m of [...this.mapHandles.values(), ...this.innerTemplates.splice(0)]) m.close();
    this.mapHandles.clear();
    if (this.pointer !== undefined) lib().bpf_object__close(this.pointer);
    this.pointer = undefined;
  }
}

// struct bpf_link_info (uapi/linux/bpf.h): type 0, id 4, prog_id 8, cgroup.cgroup_id 16 (u64), cgroup.attach_type 24.
const LINK_INFO_SIZE = 48;
interface LinkInfo {
  readonly id: number;
  readonly progId: number;
  readonly cgroupId: bigint;
}

function linkInfo(fd: number, what: string): LinkInfo {
  const b = objectInfo(fd, LINK_INFO_SIZE, `bpf_obj_get_info_by_fd(${what})`);
  return { id: b.readUInt32LE(4), progId: b.readUInt32LE(8), cgroupId: b.readBigUInt64LE(16) };
}

export interface CgroupAttachment {
  readonly linkId: number;
  readonly progId: number;
  /** True when an existing pinned link had its program swapped in place. */
  readonly replaced: boolean;
}

/**
 * Attaches `program` (a cgroup program, e.g. cgroup/connect4) to the cgroup v2 directory
 * `cgroupPath` through a BPF link pinned at `linkPin`. When a link is pinned there already its
 * program is replaced atomically (BPF_LINK_UPDATE), so the hook is never missing — an agent
 * restart or upgrade keeps serving connects throughout.
 */
export function attachCgroup(program: BpfProgram, cgroupPath: string, linkPin: string): CgroupAttachment {
  return withLibbpfLog(() => attachCgroupLink(program, cgroupPath, linkPin));
}

function attachCgroupLink(program: BpfProgram, cgroupPath: string, linkPin: string): CgroupAttachment {
  // On cgroup v2 a cgroup's id is its directory's inode number (kernfs node id).
  const cgroupId = statSync(cgroupPath, { bigint: true }).ino;
  if (existsSync(linkPin)) {
    const link = checkPointer(lib().bpf_link__open(linkPin), `bpf_link__open(${linkPin})`);
    try {
      const before = linkInfo(lib().bpf_link__fd(link), linkPin);
      if (before.cgroupId !== cgroupId) throw new Error(`${linkPin} holds a link on cgroup id ${before.cgroupId}, not on ${cgroupPath} (id ${cgroupId}): detach it first`);
      check(lib().bpf_link__update_program(link, program.pointer), `bpf_link__update_program(${linkPin}, ${program.name})`);
      return { linkId: before.id, progId: linkInfo(lib().bpf_link__fd(link), linkPin).progId, replaced: true };
    } finally {
      lib().bpf_link__destroy(link);
    }
  }
  // bpf_program__attach_cgroup wants an O_RDONLY fd of the cgroup directory; Node opens directories read-only on Linux.
  const cgroupFd = openSync(cgroupPath, 'r');
  try {
    const link = checkPointer(lib().bpf_program__attach_cgroup(program.pointer, cgroupFd), `bpf_program__attach_cgroup(${program.name}, ${cgroupPath})`);
    try {
      check(lib().bpf_link__pin(link, linkPin), `bpf_link__pin(${linkPin})`);
      const info = linkInfo(lib().bpf_link__fd(link), linkPin);
      return { linkId: info.id, progId: info.progId, replaced: false };
    } finally {
      // Closing our fd leaves a pinned link attached; an unpinned one (pin failed) goes away with it.
      lib().bpf_link__destroy(link);
    }
  } finally {
    closeSync(cgroupFd);
  }
}

/** Detaches the link pinned at `linkPin` and removes the pin; false when nothing is pinned there. */
export function detachPinnedLink(linkPin: string): boolean {
  if (!existsSync(linkPin)) return false;
  withLibbpfLog(() => {
    const link = checkPointer(lib().bpf_link__open(linkPin), `bpf_link__open(${linkPin})`);
    try {
      check(lib().bpf_link__detach(link), `bpf_link__detach(${linkPin})`);
    } finally {
      lib().bpf_link__destroy(link);
    }
  });
  unlinkSync(linkPin);
  return true;
}

export type TcDirection = 'ingress' | 'egress';
export interface TcFilter {
  /** cls_bpf filter handle; default 1. */
  readonly handle?: number;
  /** Filter priority (preference); default 1. */
  readonly priority?: number;
}

// enum bpf_tc_attach_point; BPF_TC_F_REPLACE.
const TC_POINT = { ingress: 1, egress: 2 } as const;
const BPF_TC_F_REPLACE = 1;
// struct bpf_tc_hook: sz 0, ifindex 8, attach_point 12, parent 16; 24 bytes.
// struct bpf_tc_opts: sz 0, prog_fd 8, flags 12, prog_id 16, handle 20, priority 24; 32 bytes.
const TC_HOOK_SIZE = 24;
const TC_OPTS_SIZE = 32;

/** An interface index of the calling thread's network namespace (see withNetns). */
export function ifindexOf(device: number | string): number {
  if (typeof device === 'number') return device;
  const ifindex = c().if_nametoindex(device);
  if (ifindex === 0) throw new BpfError(`if_nametoindex(${device})`, Errno.ENODEV);
  return ifindex;
}

function tcHook(device: number | string, direction: TcDirection): Buffer {
  const hook = optsBuffer(TC_HOOK_SIZE);
  hook.writeInt32LE(ifindexOf(device), 8);
  hook.writeUInt32LE(TC_POINT[direction], 12);
  return hook;
}

function tcOpts(filter: TcFilter, progFd = 0, flags = 0): Buffer {
  const o = optsBuffer(TC_OPTS_SIZE);
  o.writeInt32LE(progFd, 8);
  o.writeUInt32LE(flags, 12);
  o.writeUInt32LE(filter.handle ?? 1, 20);
  o.writeUInt32LE(filter.priority ?? 1, 24);
  return o;
}

/**
 * Attaches a SEC("tc") program as a direct-action cls_bpf filter on the device's clsact hook
 * (created if missing), replacing a filter with the same handle and priority. Acts on the
 * calling thread's network namespace.
 */
export function attachTc(program: BpfProgram, device: number | string, direction: TcDirection, filter: TcFilter = {}): { handle: number; priority: number; progId: number } {
  const hook = tcHook(device, direction);
  const created = withLibbpfLog(() => lib().bpf_tc_hook_create(hook), (r) => r === -Errno.EEXIST);
  if (created < 0 && created !== -Errno.EEXIST) throw new BpfError(`bpf_tc_hook_create(${device} ${direction})`, -created);
  const o = tcOpts(filter, program.fd, BPF_TC_F_REPLACE);
  withLibbpfLog(() => check(lib().bpf_tc_attach(hook, o), `bpf_tc_attach(${program.name}, ${device} ${direction})`));
  return { handle: o.readUInt32LE(20), priority: o.readUInt32LE(24), progId: o.readUInt32LE(16) };
}

/** No such filter (ENOENT), or no clsact qdisc to hold one (EINVAL). */
const absentFilter = (r: number) => r === -Errno.ENOENT || r === -Errno.EINVAL;

/** Removes the tc filter; false when there was none. The clsact qdisc stays (others may use it). */
export function detachTc(device: number | string, direction: TcDirection, filter: TcFilter = {}): boolean {
  const r = withLibbpfLog(() => lib().bpf_tc_detach(tcHook(device, direction), tcOpts(filter)), absentFilter);
  if (absentFilter(r)) return false;
  check(r, `bpf_tc_detach(${device} ${direction})`);
  return true;
}

/** The id of the program in the tc filter, or undefined when there is none. */
export function queryTc(device: number | string, direction: TcDirection, filter: TcFilter = {}): number | undefined {
  const o = tcOpts(filter);
  const r = withLibbpfLog(() => lib().bpf_tc_query(tcHook(device, direction), o), absentFilter);
  if (absentFilter(r)) return undefined;
  check(r, `bpf_tc_query(${device} ${direction})`);
  return o.readUInt32LE(16);
}

export interface TestRunOptions {
  /** Runs of the program; durationNs is their average. Default 1. */
  readonly repeat?: number;
  /** Room for the packet as the program leaves it; default the input plus 256 bytes. */
  readonly dataSizeOut?: number;
  /** Program context (e.g. a struct __sk_buff) passed in. */
  readonly ctxIn?: Buffer;
}

export interface TestRunResult {
  readonly retval: number;
  readonly dataOut: Buffer;
  readonly durationNs: number;
}

// struct bpf_test_run_opts (bpf.h): data_in 8, data_out 16, data_size_in 24, data_size_out 28,
// ctx_in 32, ctx_out 40, ctx_size_in 48, ctx_size_out 52, retval 56, repeat 60, duration 64; 80 bytes.
const TEST_RUN_OPTS_SIZE = 80;

/** Runs the program in the kernel on `packet` (BPF_PROG_TEST_RUN) without any device. */
export function testRun(program: BpfProgram, packet: Buffer, opts: TestRunOptions = {}): TestRunResult {
  const out = Buffer.alloc(opts.dataSizeOut ?? packet.length + 256);
  const o = optsBuffer(TEST_RUN_OPTS_SIZE);
  o.writeBigUInt64LE(addressOf(packet), 8);
  o.writeBigUInt64LE(addressOf(out), 16);
  o.writeUInt32LE(packet.length, 24);
  o.writeUInt32LE(out.length, 28);
  if (opts.ctxIn) {
    o.writeBigUInt64LE(addressOf(opts.ctxIn), 32);
    o.writeUInt32LE(opts.ctxIn.length, 48);
  }
  o.writeInt32LE(opts.repeat ?? 1, 60);
  check(lib().bpf_prog_test_run_opts(program.fd, o), `bpf_prog_test_run_opts(${program.name})`);
  return { retval: o.readUInt32LE(56), dataOut: out.subarray(0, o.readUInt32LE(28)), durationNs: o.readUInt32LE(64) };
}

/**
 * Where the build put `NAME.o` (scripts/build-bpf.sh): beside this module once compiled to
 * dist/bpf/, or under dist/bpf/ when running from source.
 */
export function builtObjectPath(name: string): string {
  const beside = join(import.meta.dirname, `${name}.o`);
  return existsSync(beside) ? beside : join(import.meta.dirname, '..', 'dist', 'bpf', `${name}.o`);
}
