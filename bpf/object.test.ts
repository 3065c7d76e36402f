// BpfObject on the real kernel: loading (and the verifier log of a rejected program), maps
// pinned by name and adopted by the next load, max_entries before load, and test runs of the
// tc program on crafted packets. Needs root.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BpfError, BpfMap, BpfObject, Errno, MapType, ProgType, ensureBpffs, testRun } from './index.js';

const root = join(import.meta.dirname, '..');
const fixture = join(root, 'dist/bpf/testdata/fixture.o');
const bad = join(root, 'dist/bpf/testdata/bad.o');
const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;
const COUNT_TC_PACKETS = 0;
const COUNT_TC_DROPS = 1;

const u16 = (n: number) => Buffer.from(Uint16Array.of(n).buffer);
const u32 = (n: number) => Buffer.from(Uint32Array.of(n).buffer);

/** Ethernet + IPv4 + UDP to 198.18.0.2:`port` (checksums are not looked at by the program). */
function udpPacket(port: number, protocol = 17): Buffer {
  const p = Buffer.alloc(14 + 20 + 8 + 4);
  p.writeUInt16BE(0x0800, 12); // ETH_P_IP
  p[14] = 0x45; // version 4, IHL 5
  p.writeUInt16BE(20 + 8 + 4, 16);
  p[22] = 64;
  p[23] = protocol;
  p.set([198, 18, 0, 1], 26);
  p.set([198, 18, 0, 2], 30);
  p.writeUInt16BE(40000, 34);
  p.writeUInt16BE(port, 36);
  p.writeUInt16BE(8 + 4, 38);
  return p;
}

describe('BpfObject on the kernel', () => {
  let pinDir = '';
  const objects: BpfObject[] = [];
  // Without a pin root libbpf pins into /sys/fs/bpf itself: every test pins under its own directory.
  const open = (path: string, opts: Parameters<typeof BpfObject.open>[1] = {}) => {
    const o = BpfObject.open(path, { pinRoot: join(pinDir, 'default'), ...opts });
    objects.push(o);
    return o;
  };

  beforeAll(() => {
    execFileSync('bash', [join(root, 'scripts/build-bpf.sh')], { stdio: 'pipe' });
    ensureBpffs('/sys/fs/bpf');
    pinDir = mkdtempSync('/sys/fs/bpf/beacon-test-');
  });
  afterEach(() => {
    for (const o of objects.splice(0)) o.close();
  });
  afterAll(() => {
    if (pinDir) rmSync(pinDir, { recursive: true, force: true });
  });

  it('lists maps and programs, and loads them', () => {
    const obj = open(fixture);
    expect(obj.mapNames.sort()).toEqual(['counters', 'drop_port', 'port_rewrite', 'rewritten', 'verdicts']);
    expect(obj.programNames.sort()).toEqual(['classify', 'rewrite_connect4']);
    expect(() => obj.map('counters')).toThrow('not loaded');
    obj.load();
    expect(obj.program('classify').type).toBe(ProgType.SCHED_CLS);
    expect(obj.program('rewrite_connect4').type).toBe(ProgType.CGROUP_SOCK_ADDR);
    expect(obj.program('classify').fd).toBeGreaterThan(0);
    expect(() => obj.program('nope')).toThrow('has no program nope');
  });

  it('a program the verifier rejects fails the load with the verifier log in the error', () => {
    const obj = open(bad);
    let error: unknown;
    try {
      obj.load();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(BpfError);
    const e = error as BpfError;
    expect(e.operation).toBe('bpf_object__load(bad)');
    expect(e.errno).toBe(Errno.EACCES);
    expect(e.message).toMatch(/^bpf_object__load\(bad\) failed: EACCES\n/);
    expect(e.log).toContain('invalid access to packet');
    expect(e.log).toContain('unchecked_read');
  });

  it('a missing file names the call and ENOENT', () => {
    expect(() => BpfObject.open('/nonexistent/beacon.o')).toThrow('bpf_object__open_file(/nonexistent/beacon.o) failed: ENOENT');
  });

  it('maps pinned by name are reused by the next load with the same pin root, contents kept', () => {
    const reuse = join(pinDir, 'reuse');
    const first = open(fixture, { pinRoot: reuse });
    first.load();
    expect(existsSync(join(reuse, 'port_rewrite'))).toBe(true);
    // Only maps declared with pinning are pinned.
    expect(existsSync(join(reuse, 'counters'))).toBe(false);
    const id = first.map('port_rewrite').info.id;
    first.map('port_rewrite').update(u16(80), u16(8080));
    first.close();

    const second = open(fixture, { pinRoot: reuse });
    second.load();
    expect(second.map('port_rewrite').info.id).toBe(id);
    expect(second.map('port_rewrite').lookup(u16(80))).toEqual(u16(8080));
    second.close();

    // A pin that does not match the declaration (other max_entries) is refused, and libbpf says why.
    const incompatible = open(fixture, { pinRoot: reuse, mapMaxEntries: { port_rewrite: 2048 } });
    expect(() => incompatible.load()).toThrow(/bpf_object__load\(fixture\) failed: EINVAL\n[\s\S]*port_rewrite/);
  });

  it('max_entries of maps and inner-map templates can be set before load', () => {
    const obj = open(fixture, { mapMaxEntries: { rewritten: 4096 }, innerMapMaxEntries: { verdicts: 4 } });
    expect(() => obj.setMaxEntries('nope', 1)).toThrow('has no map nope');
    expect(() => obj.setMaxEntries('counters', 1, { inner: true })).toThrow('has no inner map');
    obj.load();
    expect(obj.map('rewritten').info.maxEntries).toBe(4096);
    expect(() => obj.setMaxEntries('rewritten', 1)).toThrow('before load');
    // Inner arrays must match the template's max_entries.
    const small = BpfMap.create(MapType.ARRAY, 4, 4, 1);
    const fitting = BpfMap.create(MapType.ARRAY, 4, 4, 4);
    try {
      expect(() => obj.map('verdicts').setInner(u32(1), small)).toThrow('EINVAL');
      obj.map('verdicts').setInner(u32(1), fitting);
      expect(obj.map('verdicts').innerId(u32(1))).toBe(fitting.info.id);
    } finally {
      small.close();
      fitting.close();
    }
  });

  it('test runs of the tc program: verdicts from the drop port and from an inner map, counted', () => {
    const obj = open(fixture);
    obj.load();
    const classify = obj.program('classify');
    const counters = obj.map('counters');

    const passed = testRun(classify, udpPacket(53));
    expect(passed.retval).toBe(TC_ACT_OK);
    expect(passed.dataOut).toEqual(udpPacket(53));

    obj.map('drop_port').update(u32(0), u32(9999));
    expect(testRun(classify, udpPacket(9999), { repeat: 10 }).retval).toBe(TC_ACT_SHOT);
    expect(testRun(classify, udpPacket(9999, 6)).retval).toBe(TC_ACT_OK); // TCP to that port passes

    const verdict = BpfMap.create(MapType.ARRAY, 4, 4, 1);
    try {
      verdict.update(u32(0), u32(TC_ACT_SHOT));
      obj.map('verdicts').setInner(u32(7), verdict);
      expect(testRun(classify, udpPacket(7)).retval).toBe(TC_ACT_SHOT);
    } finally {
      verdict.close();
    }
    expect(counters.lookup(u32(COUNT_TC_PACKETS))!.readBigUInt64LE(0)).toBe(13n); // 1 + 10 repeats + 1 + 1
    expect(counters.lookup(u32(COUNT_TC_DROPS))!.readBigUInt64LE(0)).toBe(10n);
    expect(() => testRun(classify, Buffer.alloc(4))).toThrow('bpf_prog_test_run_opts(classify) failed: EINVAL');
  });
});
