// cgroup/connect4 through a pinned BPF link on the real kernel: a process in the test cgroup that
// connects to a port nobody listens on reaches the listener the map points to; a second attach
// swaps the program inside the same link; detach removes the hook. Needs root.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, rmdirSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../test/process.js';
import { BpfObject, attachCgroup, detachPinnedLink, ensureBpffs, ensureCgroup2 } from './index.js';

const root = join(import.meta.dirname, '..');
const fixture = join(root, 'dist/bpf/testdata/fixture.o');
const COUNT_REWRITES = 2;
const u16 = (n: number) => Buffer.from(Uint16Array.of(n).buffer);
const u32 = (n: number) => Buffer.from(Uint32Array.of(n).buffer);

// The child joins the cgroup itself (`echo $$` is the shell, which then becomes node), so every
// socket it opens is under the cgroup's hooks from the start.
const CONNECT = `const s = require('net').connect(+process.argv[1], '127.0.0.1');
s.on('connect', () => { console.log('connected'); s.destroy(); });
s.on('error', (e) => { console.log(e.code); process.exitCode = 1; });
setTimeout(() => process.exit(2), 5000).unref();`;

/** Connects to 127.0.0.1:`port` from a process inside `cgroup`; resolves to 'connected' or the error code. */
function connectFromCgroup(cgroup: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    execFile('sh', ['-c', 'echo $$ > "$1/cgroup.procs" && exec "$2" -e "$3" "$4"', 'sh', cgroup, process.execPath, CONNECT, String(port)], { timeout: 10_000 }, (_e, stdout, stderr) =>
      resolve(`${stdout}${stderr}`.trim()),
    );
  });
}

/** Connects from this process (outside the test cgroup). */
function connectHere(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = createConnection(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

describe('cgroup connect4 through a pinned link', () => {
  let pinDir = '';
  const cgroups: string[] = [];
  const objects: BpfObject[] = [];
  let server: Server | undefined;
  let accepted = 0;

  beforeAll(() => {
    execFileSync('bash', [join(root, 'scripts/build-bpf.sh')], { stdio: 'pipe' });
    ensureBpffs('/sys/fs/bpf');
    pinDir = mkdtempSync('/sys/fs/bpf/beacon-test-');
    const cgroupRoot = ensureCgroup2();
    for (let i = 0; i < 2; i++) cgroups.push(mkdtempSync(join(cgroupRoot, 'beacon-test-')));
  });
  afterAll(async () => {
    for (const pin of ['connect4', 'other']) {
      try {
        detachPinnedLink(join(pinDir, pin));
      } catch (e) {
        console.error(e);
      }
    }
    for (const o of objects) o.close();
    // The children have exited, so the cgroups are empty and rmdir removes them.
    for (const cg of cgroups) rmdirSync(cg);
    if (pinDir) rmSync(pinDir, { recursive: true, force: true });
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
  });

  const load = () => {
    const o = BpfObject.open(fixture, { pinRoot: pinDir });
    objects.push(o);
    o.load();
    return o;
  };

  it('rewrites the port for processes in the cgroup, replaces the program in place, and detaches', async () => {
    const [cgroup, otherCgroup] = cgroups as [string, string];
    const [unused, listening] = [await freePort(), await freePort()];
    server = createServer((s) => {
      accepted++;
      s.destroy();
    });
    await new Promise<void>((r) => server!.listen(listening, '127.0.0.1', r));
    const linkPin = join(pinDir, 'connect4');

    const first = load();
    first.map('port_rewrite').update(u16(unused), u16(listening));
    const attached = attachCgroup(first.program('rewrite_connect4'), cgroup, linkPin);
    expect(attached.replaced).toBe(false);
    expect(existsSync(linkPin)).toBe(true);

    expect(await connectFromCgroup(cgroup, unused)).toBe('connected');
    expect(accepted).toBe(1);
    expect(await connectHere(unused)).toBe('ECONNREFUSED'); // outside the cgroup nothing changes
    expect(first.map('counters').lookup(u32(COUNT_REWRITES))!.readBigUInt64LE(0)).toBe(1n);
    expect([...first.map('rewritten').entries()].map(([, v]) => v.readUInt16LE(0))).toEqual([unused]);

    // A new load (sharing the pinned rules) takes over the same link: same link id, new program.
    const second = load();
    const replaced = attachCgroup(second.program('rewrite_connect4'), cgroup, linkPin);
    expect(replaced).toMatchObject({ replaced: true, linkId: attached.linkId });
    expect(replaced.progId).not.toBe(attached.progId);
    expect(await connectFromCgroup(cgroup, unused)).toBe('connected');
    expect(second.map('counters').lookup(u32(COUNT_REWRITES))!.readBigUInt64LE(0)).toBe(1n);
    expect(first.map('counters').lookup(u32(COUNT_REWRITES))!.readBigUInt64LE(0)).toBe(1n);

    // A pin holding a link on another cgroup is not silently moved.
    expect(() => attachCgroup(second.program('rewrite_connect4'), otherCgroup, linkPin)).toThrow(/holds a link on cgroup id \d+, not on/);

    expect(detachPinnedLink(linkPin)).toBe(true);
    expect(existsSync(linkPin)).toBe(false);
    expect(detachPinnedLink(linkPin)).toBe(false);
    expect(await connectFromCgroup(cgroup, unused)).toBe('ECONNREFUSED');
    expect(accepted).toBe(2);
  });

  it('attaching to a path that is not a cgroup names the call', () => {
    const o = load();
    expect(() => attachCgroup(o.program('rewrite_connect4'), pinDir, join(pinDir, 'other'))).toThrow(/bpf_program__attach_cgroup\(rewrite_connect4, .*\) failed: EBADF/);
  });
});
