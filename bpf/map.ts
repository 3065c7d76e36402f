// A typed handle on one BPF map file descriptor: single and batched operations on raw
// key/value Buffers, iteration, pinning. Every size is checked here before the kernel reads
// our memory, so a wrong Buffer is a RangeError rather than a stray read.

import {
  BpfError, Errno, MapType, UpdateFlags, check, closeFd, cStringAt, lib, objectInfo, optsBuffer,
} from './libbpf.js';

export interface MapInfo {
  readonly type: number;
  readonly id: number;
  readonly keySize: number;
  /** Size of one value as declared; per-CPU maps hold one such value per possible CPU. */
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
  /** The kernel's copy of the name, at most 15 characters. */
  readonly name: string;
}

export interface CreateMapOptions {
  readonly name?: string;
  readonly flags?: number;
  /** A map-in-map outer map is created from a template inner map. */
  readonly innerMapFd?: number;
}

// struct bpf_map_info (uapi/linux/bpf.h): type 0, id 4, key_size 8, value_size 12,
// max_entries 16, map_flags 20, name[16] 24; 88 bytes in the headers these objects are built with.
const MAP_INFO_SIZE = 88;
const MAP_CREATE_OPTS_SIZE = 48; // struct bpf_map_create_opts: inner_map_fd 24, map_flags 28
const BATCH_OPTS_SIZE = 24; // struct bpf_map_batch_opts: elem_flags 8, flags 16
const PERCPU_TYPES: ReadonlySet<number> = new Set([MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH]);
const ARRAY_TYPES: ReadonlySet<number> = new Set([MapType.ARRAY, MapType.PERCPU_ARRAY]);
/** The kernel has no batch operation for this map type (BPF_DO_BATCH answers ENOTSUPP). */
const noBatch = (errno: number) => errno === Errno.ENOTSUPP || errno === Errno.EOPNOTSUPP;
const FIRST_BATCH = 1024;

export class BpfMap {
  readonly info: MapInfo;
  /** Bytes of one value as user space sees it (per-CPU maps: 8-byte-aligned value × possible CPUs). */
  readonly valueBytes: number;
  private open = true;
  private batchUnsupported = false;

  /** Takes ownership of `fd` (closed by close()). */
  constructor(readonly fd: number) {
    const b = objectInfo(fd, MAP_INFO_SIZE, `bpf_obj_get_info_by_fd(map fd ${fd})`);
    this.info = {
      type: b.readUInt32LE(0), id: b.readUInt32LE(4), keySize: b.readUInt32LE(8), valueSize: b.readUInt32LE(12),
      maxEntries: b.readUInt32LE(16), flags: b.readUInt32LE(20), name: cStringAt(b, 24, 16),
    };
    this.valueBytes = PERCPU_TYPES.has(this.info.type) ? Math.ceil(this.info.valueSize / 8) * 8 * lib().libbpf_num_possible_cpus() : this.info.valueSize;
  }

  /** A new map not tied to any object: the inner maps of a map-in-map are made this way. */
  static create(type: number, keySize: number, valueSize: number, maxEntries: number, opts: CreateMapOptions = {}): BpfMap {
    const o = optsBuffer(MAP_CREATE_OPTS_SIZE);
    o.writeUInt32LE(opts.innerMapFd ?? 0, 24);
    o.writeUInt32LE(opts.flags ?? 0, 28);
    const name = opts.name ?? null;
    return new BpfMap(check(lib().bpf_map_create(type, name, keySize, valueSize, maxEntries, o), `bpf_map_create(${name ?? 'anonymous'})`));
  }

  /** The map pinned at `path` on a bpf filesystem. */
  static openPinned(path: string): BpfMap {
    return new BpfMap(check(lib().bpf_obj_get(path), `bpf_obj_get(${path})`));
  }

  /** The map with this kernel id (e.g. an inner map read back from a map-in-map). */
  static fromId(id: number): BpfMap {
    return new BpfMap(check(lib().bpf_map_get_fd_by_id(id), `bpf_map_get_fd_by_id(${id})`));
  }

  private op(name: string): string {
    return `${name}(${this.info.name || `map id ${this.info.id}`})`;
  }

  private assertOpen(): void {
    if (!this.open) throw new Error(`map ${this.info.name} is closed`);
  }

  private checkSize(what: 'key' | 'value', b: Buffer, count = 1): void {
    const size = what === 'key' ? this.info.keySize : this.valueBytes;
    if (b.length !== size * count) throw new RangeError(`map ${this.info.name}: ${count === 1 ? what : `${count} ${what}s`} must be ${size * count} bytes, got ${b.length}`);
  }

  lookup(key: Buffer): Buffer | undefined {
    this.assertOpen();
    this.checkSize('key', key);
    const value = Buffer.alloc(this.valueBytes);
    const r = lib().bpf_map_lookup_elem(this.fd, key, value);
    if (r === -Errno.ENOENT) return undefined;
    check(r, this.op('bpf_map_lookup_elem'));
    return value;
  }

  update(key: Buffer, value: Buffer, flags: number = UpdateFlags.ANY): void {
    this.assertOpen();
    this.checkSize('key', key);
    this.checkSize('value', value);
    check(lib().bpf_map_update_elem(this.fd, key, value, flags), this.op('bpf_map_update_elem'));
  }

  /** True when the key was there. Arrays cannot delete (EINVAL): use update or clear(). */
  delete(key: Buffer): boolean {
    this.assertOpen();
    this.checkSize('key', key);
    const r = lib().bpf_map_delete_elem(this.fd, key);
    if (r === -Errno.ENOENT) return false;
    check(r, this.op('bpf_map_delete_elem'));
    return true;
  }

  /** Map-in-map: stores `inner` at `key` (the kernel takes the inner map's fd as a 4-byte value). */
  setInner(key: Buffer, inner: BpfMap, flags: number = UpdateFlags.ANY): void {
    const fd = Buffer.alloc(4);
    fd.writeUInt32LE(inner.fd);
    this.update(key, fd, flags);
  }

  /** Map-in-map: the id of the inner map at `key` (user space reads ids, not fds). */
  innerId(key: Buffer): number | undefined {
    return this.lookup(key)?.readUInt32LE(0);
  }

  /** Writes `count` entries (keys and values concatenated) in one call where the map type allows it. */
  updateBatch(keys: Buffer, values: Buffer, flags: number = UpdateFlags.ANY): void {
    this.assertOpen();
    const count = keys.length / this.info.keySize;
    if (!Number.isInteger(count)) throw new RangeError(`map ${this.info.name}: keys must be a multiple of ${this.info.keySize} bytes`);
    this.checkSize('value', values, count);
    if (count === 0) return;
    if (!this.batchUnsupported) {
      const o = optsBuffer(BATCH_OPTS_SIZE);
      o.writeBigUInt64LE(BigInt(flags), 8);
      const n = Uint32Array.of(count);
      const r = lib().bpf_map_update_batch(this.fd, keys, values, n, o);
      if (r >= 0) return;
      if (!noBatch(-r)) throw new BpfError(`${this.op('bpf_map_update_batch')} after ${n[0]} of ${count} entries`, -r);
      this.batchUnsupported = true;
    }
    const { keySize } = this.info;
    for (let i = 0; i < count; i++) this.update(keys.subarray(i * keySize, (i + 1) * keySize), values.subarray(i * this.valueBytes, (i + 1) * this.valueBytes), flags);
  }

  /** Deletes the keys (concatenated) that are present; returns how many were deleted. */
  deleteBatch(keys: Buffer): number {
    this.assertOpen();
    const { keySize } = this.info;
    const count = keys.length / keySize;
    if (!Number.isInteger(count)) throw new RangeError(`map ${this.info.name}: keys must be a multiple of ${keySize} bytes`);
    let deleted = 0;
    let rest = keys;
    // The kernel stops at the first missing key (ENOENT) and reports how many it deleted before it.
    while (rest.length > 0 && !this.batchUnsupported) {
      const n = Uint32Array.of(rest.length / keySize);
      const r = lib().bpf_map_delete_batch(this.fd, rest, n, optsBuffer(BATCH_OPTS_SIZE));
      if (r >= 0) return deleted + n[0]!;
      if (noBatch(-r)) {
        this.batchUnsupported = true;
        break;
      }
      if (-r !== Errno.ENOENT) throw new BpfError(`${this.op('bpf_map_delete_batch')} after ${deleted + n[0]!} of ${count} keys`, -r);
      deleted += n[0]!;
      rest = rest.subarray((n[0]! + 1) * keySize);
    }
    for (let i = 0; i < rest.length / keySize; i++) if (this.delete(rest.subarray(i * keySize, (i + 1) * keySize))) deleted++;
    return deleted;
  }

  /** Every entry, read in batches where the map type allows it, else key by key. */
  *entries(): Generator<[key: Buffer, value: Buffer]> {
    this.assertOpen();
    if (!this.batchUnsupported) {
      const done = yield* this.entriesBatched();
      if (done) return;
    }
    for (const key of this.keys()) {
      const value = this.lookup(key);
      if (value) yield [key, value];
    }
  }

  /** False when the map type has no batch lookup (nothing was yielded then). */
  private *entriesBatched(): Generator<[Buffer, Buffer], boolean> {
    const { keySize } = this.info;
    // The batch token is a key for arrays and a bucket number (u32) for hash maps.
    const tokenSize = Math.max(keySize, 8);
    let inBatch: Buffer | null = null;
    let chunk = Math.min(FIRST_BATCH, Math.max(1, this.info.maxEntries));
    for (let rounds = 0; rounds <= this.info.maxEntries + 64; rounds++) {
      const outBatch = Buffer.alloc(tokenSize);
      const keys = Buffer.alloc(chunk * keySize);
      const values = Buffer.alloc(chunk * this.valueBytes);
      const n = Uint32Array.of(chunk);
      const r = lib().bpf_map_lookup_batch(this.fd, inBatch, outBatch, keys, values, n, optsBuffer(BATCH_OPTS_SIZE));
      if (r < 0 && noBatch(-r) && inBatch === null) {
        this.batchUnsupported = true;
        return false;
      }
      // A hash bucket holding more entries than fit is ENOSPC: retry it with room for more.
      if (r === -Errno.ENOSPC && n[0] === 0) {
        chunk *= 2;
        continue;
      }
      if (r < 0 && r !== -Errno.ENOENT) throw new BpfError(this.op('bpf_map_lookup_batch'), -r);
      for (let i = 0; i < n[0]!; i++) yield [keys.subarray(i * keySize, (i + 1) * keySize), values.subarray(i * this.valueBytes, (i + 1) * this.valueBytes)];
      if (r === -Errno.ENOENT) return true;
      inBatch = outBatch;
    }
    throw new Error(`${this.op('bpf_map_lookup_batch')}: no end after ${this.info.maxEntries} rounds`);
  }

  /** Every key, by bpf_map_get_next_key (bounded by max_entries: a map cannot hold more). */
  *keys(): Generator<Buffer> {
    this.assertOpen();
    let key: Buffer | null = null;
    for (let i = 0; i < this.info.maxEntries; i++) {
      const next = Buffer.alloc(this.info.keySize);
      const r = lib().bpf_map_get_next_key(this.fd, key, next);
      if (r === -Errno.ENOENT) return;
      check(r, this.op('bpf_map_get_next_key'));
      yield next;
      key = next;
    }
  }

  /** Empties the map: hash-like maps lose every key, arrays get zeroed values. */
  clear(): void {
    this.assertOpen();
    const { keySize, maxEntries, type } = this.info;
    if (ARRAY_TYPES.has(type)) {
      const keys = Buffer.alloc(maxEntries * keySize);
      for (let i = 0; i < maxEntries; i++) keys.writeUInt32LE(i, i * keySize);
      this.updateBatch(keys, Buffer.alloc(maxEntries * this.valueBytes));
      return;
    }
    this.deleteBatch(Buffer.concat(Array.from(this.entries(), ([key]) => key)));
  }

  /** Pins the map at `path` on a bpf filesystem (the pin keeps the map alive after close). */
  pin(path: string): void {
    this.assertOpen();
    check(lib().bpf_obj_pin(this.fd, path), this.op(`bpf_obj_pin(${path})`));
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    closeFd(this.fd);
  }
}
