// BpfMap on the real kernel: every map kind the datapath uses, single and batched operations,
// iteration, clearing, map-in-map, pinning. Needs root (tests run as root here and in CI).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BpfMap, BpfObject, Errno, MapType, UpdateFlags, ensureBpffs } from './index.js';

const root = join(import.meta.dirname, '..');
const fixture = join(root, 'dist/bpf/testdata/fixture.o');

const u16 = (n: number) => Buffer.from(Uint16Array.of(n).buffer);
const u32 = (n: number) => Buffer.from(Uint32Array.of(n).buffer);
const u64 = (n: number) => Buffer.from(BigUint64Array.of(BigInt(n)).buffer);
/** `count` consecutive little-endian keys (or values) of `size` bytes from `first`. */
function sequence(size: 2 | 4 | 8, first: number, count: number): Buffer {
  const b = Buffer.alloc(size * count);
  for (let i = 0; i < count; i++) b.writeUIntLE(first + i, i * size, Math.min(size, 6));
  return b;
}
const sortedHex = (bufs: Iterable<Buffer>) => [...bufs].map((b) => b.toString('hex')).sort();

describe('BpfMap on the kernel', () => {
  let obj: BpfObject;
  let pinDir = '';
  const extra: BpfMap[] = [];

  beforeAll(() => {
    execFileSync('bash', [join(root, 'scripts/build-bpf.sh')], { stdio: 'pipe' });
    ensureBpffs('/sys/fs/bpf');
    pinDir = mkdtempSync('/sys/fs/bpf/beacon-test-');
    obj = BpfObject.open(fixture, { pinRoot: pinDir });
    obj.load();
  });
  afterEach(() => {
    for (const m of extra.splice(0)) m.close();
  });
  afterAll(() => {
    obj?.close();
    if (pinDir) rmSync(pinDir, { recursive: true, force: true });
  });

  it('reads the map info from the kernel', () => {
    expect(obj.map('port_rewrite').info).toMatchObject({ type: MapType.HASH, keySize: 2, valueSize: 2, maxEntries: 1024, name: 'port_rewrite' });
    expect(obj.map('rewritten').info).toMatchObject({ type: MapType.LRU_HASH, keySize: 8, valueSize: 2 });
    expect(obj.map('counters').info).toMatchObject({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 3 });
    expect(obj.map('verdicts').info).toMatchObject({ type: MapType.HASH_OF_MAPS, keySize: 4, valueSize: 4, maxEntries: 64 });
    expect(obj.map('port_rewrite').info.id).toBeGreaterThan(0);
  });

  it.each([
    ['port_rewrite', 2, 2],
    ['rewritten', 8, 2],
  ] as const)('%s (hash kinds): update, lookup, delete, flags, batches, iteration, clear', (name, keySize, valueSize) => {
    const m = obj.map(name);
    const key = keySize === 2 ? u16(80) : u64(80);
    expect(m.lookup(key)).toBeUndefined();
    m.update(key, u16(8080), UpdateFlags.NOEXIST);
    expect(m.lookup(key)).toEqual(u16(8080));
    expect(() => m.update(key, u16(1), UpdateFlags.NOEXIST)).toThrow(`bpf_map_update_elem(${name}) failed: EEXIST`);
    expect(() => m.update(key, u16(1), UpdateFlags.NOEXIST)).toThrow(expect.objectContaining({ name: 'BpfError', errno: Errno.EEXIST }));
    expect(() => m.lookup(Buffer.alloc(keySize + 1))).toThrow(RangeError);
    expect(m.delete(key)).toBe(true);
    expect(m.delete(key)).toBe(false);

    const keys = sequence(keySize, 1000, 600);
    const values = sequence(valueSize, 1, 600);
    m.updateBatch(keys, values);
    const entries = [...m.entries()];
    expect(entries).toHaveLength(600);
    for (const [k, v] of entries) expect(v.readUInt16LE(0)).toBe(k.readUInt16LE(0) - 999);
    expect(sortedHex(m.keys())).toEqual(sortedHex(entries.map(([k]) => k)));

    // Deleting 10 present keys and 5 absent ones deletes the 10.
    expect(m.deleteBatch(Buffer.concat([sequence(keySize, 1000, 10), sequence(keySize, 5000, 5)]))).toBe(10);
    expect([...m.keys()]).toHaveLength(590);
    m.clear();
    expect([...m.entries()]).toEqual([]);
  });

  it('array: every index exists, delete is refused, clear zeroes', () => {
    const m = obj.map('counters');
    expect([...m.entries()].map(([k]) => k.readUInt32LE(0))).toEqual([0, 1, 2]);
    m.updateBatch(sequence(4, 0, 3), sequence(8, 7, 3));
    expect(m.lookup(u32(2))).toEqual(u64(9));
    expect(() => m.delete(u32(0))).toThrow('bpf_map_delete_elem(counters) failed: EINVAL');
    m.clear();
    expect([...m.entries()].map(([, v]) => v)).toEqual([u64(0), u64(0), u64(0)]);
    expect(() => m.update(u32(3), u64(1))).toThrow('E2BIG');
  });

  it('per-CPU array: one 8-byte slot per possible CPU', () => {
    const m = BpfMap.create(MapType.PERCPU_ARRAY, 4, 4, 2, { name: 'percpu_test' });
    extra.push(m);
    expect(m.valueBytes % 8).toBe(0);
    expect(m.valueBytes).toBeGreaterThanOrEqual(8);
    const value = Buffer.alloc(m.valueBytes, 0);
    value.writeUInt32LE(42, 0);
    m.update(u32(1), value);
    expect(m.lookup(u32(1))).toEqual(value);
    expect([...m.entries()]).toHaveLength(2);
  });

  it('hash of maps: inner maps go in by fd and come back as ids; iteration and clear work', () => {
    const outer = obj.map('verdicts');
    const inners = [0, 1, 2].map((i) => BpfMap.create(MapType.ARRAY, 4, 4, 1, { name: `verdict_${i}` }));
    extra.push(...inners);
    inners.forEach((inner, i) => outer.setInner(u32(100 + i), inner));
    expect(outer.innerId(u32(101))).toBe(inners[1]!.info.id);
    expect(outer.innerId(u32(999))).toBeUndefined();
    inners[1]!.update(u32(0), u32(5));
    const readBack = BpfMap.fromId(outer.innerId(u32(101))!);
    extra.push(readBack);
    expect(readBack.lookup(u32(0))).toEqual(u32(5));
    expect(() => BpfMap.fromId(0x7fffffff)).toThrow('bpf_map_get_fd_by_id(2147483647) failed: ENOENT');
    expect(new Set([...outer.entries()].map(([, v]) => v.readUInt32LE(0)))).toEqual(new Set(inners.map((m) => m.info.id)));
    // An inner map unlike the template (here: a hash) is refused by the kernel.
    const unlike = BpfMap.create(MapType.HASH, 4, 4, 1);
    extra.push(unlike);
    expect(() => outer.setInner(u32(7), unlike)).toThrow('bpf_map_update_elem(verdicts) failed: EINVAL');
    expect(outer.delete(u32(100))).toBe(true);
    outer.clear();
    expect([...outer.keys()]).toEqual([]);
  });

  it('pins a created map and opens it again by path: the same map', () => {
    const m = BpfMap.create(MapType.HASH, 4, 8, 16, { name: 'pin_test', flags: 1 /* BPF_F_NO_PREALLOC */ });
    extra.push(m);
    expect(m.info.flags).toBe(1);
    m.update(u32(1), u64(11));
    const path = join(pinDir, 'pin_test');
    m.pin(path);
    const again = BpfMap.openPinned(path);
    extra.push(again);
    expect(again.info.id).toBe(m.info.id);
    expect(again.lookup(u32(1))).toEqual(u64(11));
    expect(() => BpfMap.openPinned(join(pinDir, 'absent'))).toThrow(`bpf_obj_get(${join(pinDir, 'absent')}) failed: ENOENT`);
    rmSync(path);
    expect(existsSync(path)).toBe(false);
  });

  it('a closed map refuses operations', () => {
    const m = BpfMap.create(MapType.HASH, 4, 4, 4);
    m.close();
    expect(() => m.lookup(u32(1))).toThrow('closed');
  });
});
