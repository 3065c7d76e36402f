// The lab harness on the real kernel: namespaces, veth, bridges, processes, clean-up and the
// sweeper. Every address is from 198.18.0.0/15 or 2001:db8::/32, every namespace is the run's.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_STATE_DIR, Lab, listRuns, removeKeptRuns, sweepStaleRuns, type LabOptions } from '../lab/index.js';

const root = join(import.meta.dirname, '..');
// Tests run as root here and in CI; without it they fail with the reason rather than skip.
const labUnavailable = process.getuid?.() !== 0 ? 'the lab tests need root (network namespaces)' : spawnSync('ip', ['netns', 'list'], { timeout: 5_000 }).status !== 0 ? '`ip netns` does not work here' : undefined;

const namespaces = (): string[] => {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 5_000 });
  return r.stdout.split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
};
const namespacesOfRun = (runId: string) => namespaces().filter((ns) => ns.startsWith(`${runId}-`));
const rootLinks = () => spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8', timeout: 5_000 }).stdout.split('\n').map((l) => l.split(':').slice(0, 2).join(':')).sort();
/** True while `pid` runs (a zombie waiting for its reaper counts as ended). */
const running = (pid: number) => {
  try {
    return !/^\d+ \(.*\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

describe('lab harness on the real kernel', () => {
  beforeAll(() => {
    if (labUnavailable) throw new Error(labUnavailable);
  });
  const labs: Lab[] = [];
  const children: ChildProcess[] = [];
  let dir = '';
  const newLab = async (opts: LabOptions = {}) => {
    const lab = await Lab.create({ name: 'test', ...opts });
    labs.push(lab);
    return lab;
  };

  afterEach(async (ctx) => {
    // A failed test keeps its logs for reading; the namespaces go in every case.
    const keepLogs = ctx.task.result?.state === 'fail';
    for (const lab of labs.splice(0)) {
      await lab.destroy({ keepLogs, graceMs: 500 }).catch(() => lab.destroySync());
      if (keepLogs) console.error(`lab ${lab.runId}: logs kept in ${lab.logDir}`);
    }
  });
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'beacon-lab-test-'));
  });
  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
    // Leftovers of the children above, if a test stopped half way.
    sweepStaleRuns();
  });

  it('two hosts on a bridge reach each other over IPv4 and IPv6, and the root namespace is untouched', async () => {
    const before = rootLinks();
    const lab = await newLab();
    expect(lab.runId).toMatch(/^bl-[0-9a-f]{6}$/);
    const [a, b] = [await lab.host('a'), await lab.host('b')];
    const lan = await lab.bridge('lan');
    const at = await lab.attach(a, lan, { addresses: ['198.18.0.11/24', '2001:db8::11/64'] });
    await lab.attach(b, lan, { ifname: 'lan0', addresses: ['198.18.0.12/24', '2001:db8::12/64'] });
    expect(at.ifname).toBe('eth0');
    expect(namespacesOfRun(lab.runId).sort()).toEqual([`${lab.runId}-a`, `${lab.runId}-b`, `${lab.runId}-switch`]);

    for (const [from, to] of [[a, '198.18.0.12'], [a, '2001:db8::12'], [b, '198.18.0.11'], [b, '2001:db8::11']] as const) {
      const r = await from.ping(to);
      expect(r.reachable, `${from.name} -> ${to}: ${r.detail}`).toBe(true);
    }
    // The probe used where ping(8) is missing works as well.
    expect((await a.ping('2001:db8::12', { method: 'tcp' })).reachable).toBe(true);
    expect((await a.ping('198.18.0.99', { timeoutMs: 500 })).reachable).toBe(false);

    const addrs = await b.exec('ip', ['-br', 'addr', 'show', 'lan0']);
    expect(addrs.code).toBe(0);
    expect(addrs.stdout).toMatch(/lan0@\S+\s+UP\s+198\.18\.0\.12\/24 2001:db8::12\/64/);
    // No tentative (DAD) state: v6 works at once.
    expect(addrs.stdout).not.toMatch(/tentative/);
    expect(rootLinks()).toEqual(before);
  });

  it('point-to-point links, routes through a forwarding host, and links going down', async () => {
    const lab = await newLab();
    const [a, r, b] = [await lab.host('a'), await lab.host('r', { forwarding: true }), await lab.host('b')];
    await lab.link(a, r, { a: { addresses: ['198.18.1.1/30', '2001:db8:1::1/64'] }, b: { ifname: 'to-a', addresses: ['198.18.1.2/30', '2001:db8:1::2/64'] } });
    await lab.link(r, b, { a: { ifname: 'to-b', addresses: ['198.18.2.1/30', '2001:db8:2::1/64'] }, b: { addresses: ['198.18.2.2/30', '2001:db8:2::2/64'] } });
    expect((await a.ping('198.18.1.2')).reachable).toBe(true);
    expect((await a.ping('198.18.2.2', { timeoutMs: 500 })).reachable).toBe(false);

    await a.addRoute('default', { via: '198.18.1.2' });
    await a.addRoute('2001:db8:2::/64', { via: '2001:db8:1::2' });
    await b.addRoute('198.18.1.0/30', { via: '198.18.2.1' });
    await b.addRoute('default', { via: '2001:db8:2::1' });
    expect((await a.ping('198.18.2.2')).reachable).toBe(true);
    expect((await a.ping('2001:db8:2::2')).reachable).toBe(true);

    expect(await r.setLink('to-b', 'down')).toMatchObject({ operstate: 'DOWN', carrier: false });
    expect((await a.ping('198.18.2.2', { timeoutMs: 500 })).reachable).toBe(false);
    expect(await r.setLink('to-b', 'up')).toMatchObject({ operstate: 'UP', carrier: true });
    expect((await a.ping('198.18.2.2')).reachable).toBe(true);
  });

  it('runs commands and processes inside a host, with their output in logs, and stops them', async () => {
    const lab = await newLab();
    const h = await lab.host('h');
    const lan = await lab.bridge('lan');
    await lab.attach(h, lan, { addresses: ['198.18.3.1/24'] });

    const r = await h.exec('sh', ['-c', 'echo out; echo err >&2; ip -br -4 addr show eth0; exit 3']);
    expect(r).toMatchObject({ code: 3, timedOut: false });
    expect(r.stdout).toMatch(/^out\neth0@\S+\s+UP\s+198\.18\.3\.1\/24/);
    expect(r.stderr).toBe('err\n');
    const slow = await h.exec('sleep', ['10'], { timeoutMs: 200 });
    expect(slow).toMatchObject({ timedOut: true, code: null, signal: 'SIGKILL' });

    const talker = await h.spawn('talker', 'sh', ['-c', 'echo "ready $GREETING"; echo to-stderr >&2; ip -br -4 addr show eth0; exec sleep 60'], { env: { GREETING: 'hi' } });
    expect(talker.logPath).toBe(join(lab.logDir, 'talker.log'));
    await talker.waitForLog(/198\.18\.3\.1\/24/, 5_000);
    expect(talker.logs()).toMatch(/ready hi\nto-stderr\neth0/);
    expect(talker.running).toBe(true);
    expect(talker.kill('SIGTERM')).toBe(true);
    expect(await talker.exited).toEqual({ code: null, signal: 'SIGTERM' });
    expect(talker.running).toBe(false);
    expect(running(talker.pid)).toBe(false);
    await expect(h.spawn('talker', 'true')).rejects.toThrow(/exists already/);

    // destroy() stops what still runs; kept logs stay readable.
    const sleeper = await h.spawn('sleeper', 'sleep', ['60']);
    const report = await lab.destroy({ keepLogs: true, graceMs: 500 });
    expect(report.processes.find((p) => p.name === 'sleeper')).toMatchObject({ pid: sleeper.pid, signal: 'SIGTERM' });
    expect(report.logsKept).toBe(true);
    expect(readFileSync(join(lab.logDir, 'talker.log'), 'utf8')).toMatch(/ready hi/);
    expect(readFileSync(join(lab.logDir, 'lab.log'), 'utf8')).toMatch(/\$ ip -n bl-[0-9a-f]{6}-h link add eth0 type veth peer name port1 netns bl-[0-9a-f]{6}-switch/);
    rmSync(lab.logDir, { recursive: true, force: true });
  });

  it('destroy removes every namespace, process, state file and log of the run, and is idempotent', async () => {
    const lab = await newLab();
    const lan = await lab.bridge('lan');
    for (const name of ['n1', 'n2', 'n3']) await lab.attach(await lab.host(name), lan);
    const p = await lab.hosts[0]!.spawn('sleeper', 'sleep', ['60']);
    expect(namespacesOfRun(lab.runId)).toHaveLength(4);
    expect(existsSync(join(DEFAULT_STATE_DIR, `${lab.runId}.json`))).toBe(true);

    const first = await lab.destroy({ graceMs: 500 });
    expect([...first.namespaces].sort()).toEqual(['n1', 'n2', 'n3', 'switch'].map((n) => `${lab.runId}-${n}`));
    expect(namespacesOfRun(lab.runId)).toEqual([]);
    expect(running(p.pid)).toBe(false);
    expect(existsSync(join(DEFAULT_STATE_DIR, `${lab.runId}.json`))).toBe(false);
    expect(existsSync(lab.logDir)).toBe(false);
    expect(first.logsKept).toBe(false);

    expect(await lab.destroy()).toBe(first);
    lab.destroySync();
    await expect(lab.host('n4')).rejects.toThrow(/is destroyed/);
  });

  it('refuses addresses outside 198.18.0.0/15 and 2001:db8::/32, and names the kernel would not take', async () => {
    const lab = await newLab();
    const [a, b] = [await lab.host('a'), await lab.host('b')];
    const lan = await lab.bridge('lan');
    await expect(lab.attach(a, lan, { addresses: ['203.0.113.1/24'] })).rejects.toThrow(/address 203\.0\.113\.1\/24 is outside the lab ranges \(allowed: 198\.18\.0\.0\/15, 2001:db8::\/32/);
    await expect(lab.link(a, b, { b: { addresses: ['2001:db9::1/64'] } })).rejects.toThrow(/outside the lab ranges/);
    await expect(lab.attach(a, lan, { ifname: 'a-very-long-name0' })).rejects.toThrow(/1-15 characters/);
    await expect(a.addRoute('default', { via: '192.0.2.1' })).rejects.toThrow(/outside the lab ranges/);
    await expect(a.ping('8.8.8.8')).rejects.toThrow(/outside the lab ranges/);
    await expect(lab.host('switch')).rejects.toThrow(/reserved/);
    // Nothing was created by the refused calls: eth0 is still free.
    expect((await lab.attach(a, lan)).ifname).toBe('eth0');
    expect((await a.exec('ip', ['-o', 'link'])).stdout.split('\n').filter(Boolean)).toHaveLength(2);
  });

  describe('runs whose owner ends', () => {
    // A child process that builds a lab with a host, a bridge and a running process, then says so.
    let script = '';
    beforeAll(() => {
      script = join(dir, 'owner.mts');
      writeFileSync(
        script,
        `import { Lab } from ${JSON.stringify(pathToFileURL(join(root, 'lab', 'index.ts')).href)};
const mode = process.argv[2];
const lab = await Lab.create({ name: 'owner-' + mode });
const h = await lab.host('victim');
await lab.attach(h, await lab.bridge('lan'), { addresses: ['198.18.9.1/24'] });
const p = await h.spawn('sleeper', 'sleep', ['300']);
process.stdout.write(JSON.stringify({ runId: lab.runId, sleeper: p.pid, logDir: lab.logDir }) + '\\n');
if (mode === 'exit') process.exit(0);
setInterval(() => undefined, 1000);
`,
      );
    });
    const startOwner = async (mode: 'exit' | 'wait') => {
      const child = spawn(process.execPath, ['--import', 'tsx', script, mode], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
      // The first line, or an error once stdout closes without one (or after 20 s).
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`owner did not start within 20 s: ${err}`)), 20_000);
        child.stdout.on('data', () => out.includes('\n') && (clearTimeout(timer), resolve()));
        child.stdout.once('close', () => (clearTimeout(timer), out.includes('\n') ? resolve() : reject(new Error(`owner did not start: ${err}`))));
      });
      const info = JSON.parse(out.split('\n')[0]!) as { runId: string; sleeper: number; logDir: string };
      if (mode === 'wait') {
        expect(namespacesOfRun(info.runId)).toHaveLength(2);
        expect(running(info.sleeper)).toBe(true);
      }
      return { child, info, exited };
    };

    it('the exit handler cleans up a lab its owner never destroyed', async () => {
      const { info, exited } = await startOwner('exit');
      expect(await exited).toEqual({ code: 0, signal: null });
      expect(namespacesOfRun(info.runId)).toEqual([]);
      expect(running(info.sleeper)).toBe(false);
      expect(existsSync(join(DEFAULT_STATE_DIR, `${info.runId}.json`))).toBe(false);
      expect(existsSync(info.logDir)).toBe(false);
    });

    it('SIGTERM to the owner cleans up, and the owner still dies of the signal', async () => {
      const { child, info, exited } = await startOwner('wait');
      child.kill('SIGTERM');
      expect(await exited).toEqual({ code: null, signal: 'SIGTERM' });
      expect(namespacesOfRun(info.runId)).toEqual([]);
      expect(running(info.sleeper)).toBe(false);
    });

    it('the sweeper removes what a SIGKILLed owner left, and leaves live runs alone', async () => {
      const live = await newLab({ name: 'live' });
      const keeper = await live.host('keeper');
      const { child, info, exited } = await startOwner('wait');
      child.kill('SIGKILL');
      expect(await exited).toEqual({ code: null, signal: 'SIGKILL' });
      // Killed: nothing ran its clean-up.
      expect(namespacesOfRun(info.runId)).toHaveLength(2);
      expect(running(info.sleeper)).toBe(true);
      const runs = listRuns();
      expect(runs.find((r) => r.runId === info.runId)).toMatchObject({ owner: 'owner_gone', state: { name: 'owner-wait', owner: { pid: child.pid } } });
      expect(runs.find((r) => r.runId === live.runId)).toMatchObject({ owner: 'owner_alive', presentNamespaces: [keeper.namespace] });

      const report = sweepStaleRuns();
      const swept = report.removed.find((r) => r.runId === info.runId);
      expect(swept).toMatchObject({ owner: 'owner_gone', ownerPid: child.pid, logsRemoved: true });
      expect(swept!.namespaces.map((n) => n.namespace).sort()).toEqual([`${info.runId}-switch`, `${info.runId}-victim`].sort());
      expect(swept!.namespaces.every((n) => n.deleted)).toBe(true);
      expect(swept!.namespaces.flatMap((n) => n.killedPids)).toContain(info.sleeper);
      expect(namespacesOfRun(info.runId)).toEqual([]);
      expect(existsSync(join(DEFAULT_STATE_DIR, `${info.runId}.json`))).toBe(false);
      expect(existsSync(info.logDir)).toBe(false);
      await expect.poll(() => running(info.sleeper), { timeout: 5_000 }).toBe(false);

      // The live run: listed as kept, namespace and state intact, still usable.
      expect(report.kept).toContainEqual({ runId: live.runId, reason: 'owner_alive' });
      expect(report.removed.map((r) => r.runId)).not.toContain(live.runId);
      expect(namespacesOfRun(live.runId)).toEqual([keeper.namespace]);
      expect((await keeper.exec('ip', ['-br', 'link', 'show', 'lo'])).code).toBe(0);
      // A second sweep finds nothing more of the dead run.
      expect(sweepStaleRuns().removed.map((r) => r.runId)).not.toContain(info.runId);
    });
  });
  describe('mounts, cgroups and kept runs', () => {
    const mounted = (path: string) => readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === path);

    it('a bpffs and a cgroup2 mount of the run, and a cgroup in it, are visible inside its hosts and gone after destroy', async () => {
      const lab = await newLab();
      const bpf = await lab.mount('bpf', 'bpf');
      const cgroupMount = await lab.mount('cgroup2', 'cgroup');
      const cgroup = lab.cgroup(cgroupMount, 'node');
      expect(cgroup).toBe(join(cgroupMount, `${lab.runId}-node`));
      const host = await lab.host('node');
      // Mounted before the exec: `ip netns exec` copies it into the host's view.
      expect((await host.exec('stat', ['-f', '-c', '%T', bpf])).stdout.trim()).toBe('bpf_fs');
      expect((await host.exec('cat', [join(cgroup, 'cgroup.procs')])).code).toBe(0);
      await lab.destroy();
      expect(mounted(bpf)).toBe(false);
      expect(mounted(cgroupMount)).toBe(false);
      expect(existsSync(join('/sys/fs/cgroup', `${lab.runId}-node`))).toBe(false);
      expect(existsSync(lab.logDir)).toBe(false);
    });

    it('a kept run is left alone by the sweeper (whatever its owner) until removeKeptRuns takes it down with its mounts', async () => {
      const lab = await newLab({ name: 'kept' });
      const bpf = await lab.mount('bpf', 'bpf');
      const host = await lab.host('box');
      const sleeper = await host.spawn('sleeper', 'sleep', ['300']);
      lab.keep();
      labs.splice(labs.indexOf(lab), 1);
      const sweep = sweepStaleRuns();
      expect(sweep.kept).toContainEqual({ runId: lab.runId, reason: 'kept' });
      expect(listRuns().find((r) => r.runId === lab.runId)?.state).toMatchObject({ kept: true, mounts: [bpf] });
      expect(sleeper.running).toBe(true);

      const [report] = removeKeptRuns({ runIds: [lab.runId] });
      expect(report).toMatchObject({ runId: lab.runId, logsRemoved: true });
      expect(namespacesOfRun(lab.runId)).toEqual([]);
      expect(mounted(bpf)).toBe(false);
      expect(existsSync(lab.logDir)).toBe(false);
      expect(existsSync(join(DEFAULT_STATE_DIR, `${lab.runId}.json`))).toBe(false);
      await expect.poll(() => running(sleeper.pid), { timeout: 5_000 }).toBe(false);
    });
  });
});
