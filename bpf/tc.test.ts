// tc attach inside a lab namespace on the real kernel: the filter shows in `tc filter show`,
// counts and drops real packets sent over a veth, and goes away on detach. Also withNetns'
// guarantees. Needs root.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, type LabHost } from '../lab/index.js';
import { eventually } from '../test/process.js';
import { BpfObject, attachTc, detachTc, ensureBpffs, ifindexOf, queryTc, withNetns } from './index.js';

const root = join(import.meta.dirname, '..');
const fixture = join(root, 'dist/bpf/testdata/fixture.o');
const COUNT_TC_PACKETS = 0;
const COUNT_TC_DROPS = 1;
const u32 = (n: number) => Buffer.from(Uint32Array.of(n).buffer);
const currentNetns = () => readlinkSync('/proc/thread-self/ns/net');

const SEND_UDP = `const s = require('dgram').createSocket('udp4');
let left = 3;
const next = () => (left-- === 0 ? s.close() : s.send('x', 9999, '198.18.0.2', next));
next();`;

describe('tc attach in a network namespace', () => {
  let lab: Lab | undefined;
  let a: LabHost;
  let b: LabHost;
  let netnsB = '';
  let pinDir = '';
  let obj: BpfObject | undefined;

  beforeAll(async () => {
    execFileSync('bash', [join(root, 'scripts/build-bpf.sh')], { stdio: 'pipe' });
    ensureBpffs('/sys/fs/bpf');
    pinDir = mkdtempSync('/sys/fs/bpf/beacon-test-');
    lab = await Lab.create({ name: 'test' });
    [a, b] = [await lab.host('a'), await lab.host('b')];
    await lab.link(a, b, { a: { addresses: ['198.18.0.1/24'] }, b: { addresses: ['198.18.0.2/24'] } });
    netnsB = `/var/run/netns/${b.namespace}`;
    obj = BpfObject.open(fixture, { pinRoot: pinDir });
    obj.load();
  });
  afterAll(async () => {
    obj?.close();
    if (pinDir) rmSync(pinDir, { recursive: true, force: true });
    // Deleting the namespace removes its devices, qdiscs and filters with it.
    await lab?.destroy({ graceMs: 500 }).catch(() => lab?.destroySync());
  });

  it('attaches to ingress of a veth inside the namespace, sees real packets, and detaches', async () => {
    const before = currentNetns();
    obj!.map('drop_port').update(u32(0), u32(9999));
    const attached = withNetns(netnsB, () => attachTc(obj!.program('classify'), 'eth0', 'ingress', { handle: 1, priority: 1 }));
    expect(currentNetns()).toBe(before);
    expect(attached).toMatchObject({ handle: 1, priority: 1 });
    expect(attached.progId).toBeGreaterThan(0);

    const shown = await b.exec('tc', ['filter', 'show', 'dev', 'eth0', 'ingress']);
    expect(shown.stdout).toContain('classify');
    expect(shown.stdout).toContain('direct-action');
    expect(shown.stdout).toContain(`id ${attached.progId}`);
    expect(withNetns(netnsB, () => queryTc('eth0', 'ingress'))).toBe(attached.progId);
    expect(withNetns(netnsB, () => queryTc('eth0', 'egress'))).toBeUndefined();

    // Three datagrams to the drop port are dropped; every packet is counted.
    const sent = await a.exec(process.execPath, ['-e', SEND_UDP]);
    expect(sent.code, sent.stderr).toBe(0);
    const counters = obj!.map('counters');
    await eventually(() => expect(counters.lookup(u32(COUNT_TC_DROPS))!.readBigUInt64LE(0)).toBe(3n), 5_000, 'three drops');
    expect(counters.lookup(u32(COUNT_TC_PACKETS))!.readBigUInt64LE(0)).toBeGreaterThanOrEqual(3n);

    // Attaching again with the same handle and priority replaces the filter rather than adding one.
    withNetns(netnsB, () => attachTc(obj!.program('classify'), 'eth0', 'ingress', { handle: 1, priority: 1 }));
    expect((await b.exec('tc', ['filter', 'show', 'dev', 'eth0', 'ingress'])).stdout.match(/handle 0x1 classify/g)).toHaveLength(1);

    expect(withNetns(netnsB, () => detachTc('eth0', 'ingress', { handle: 1, priority: 1 }))).toBe(true);
    expect(withNetns(netnsB, () => queryTc('eth0', 'ingress'))).toBeUndefined();
    expect(withNetns(netnsB, () => detachTc('eth0', 'ingress'))).toBe(false);
    expect((await b.exec('tc', ['filter', 'show', 'dev', 'eth0', 'ingress'])).stdout).not.toContain('classify');
  });

  it('withNetns switches only for the call, comes back after a throw, and refuses async functions', () => {
    const before = currentNetns();
    const inside = withNetns(netnsB, () => currentNetns());
    expect(inside).not.toBe(before);
    expect(withNetns(netnsB, () => ifindexOf('eth0'))).toBeGreaterThan(1);
    expect(() => withNetns(netnsB, () => ifindexOf('no-such-dev'))).toThrow('if_nametoindex(no-such-dev) failed: ENODEV');
    expect(currentNetns()).toBe(before);
    expect(() => withNetns(netnsB, () => Promise.resolve(1))).toThrow('synchronous');
    expect(currentNetns()).toBe(before);
    expect(() => withNetns('/nonexistent/netns', () => 1)).toThrow('ENOENT');
  });
});
