// `beacon lab` end to end: the whole site in namespaces (BIRD, etcd, three agents, pods, clients),
// the report's JSON contract, a kept site taken down by `beacon lab down`, and Ctrl-C clean-up.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { listRuns, removeKeptRuns, type LabReport } from '../lab/index.js';
import { beacon, beaconBin, root } from './process.js';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

/** `beacon lab ARGS`; `onErr` sees stderr as it grows (progress lines) and may signal the child. */
function lab(args: string[], onErr?: (err: string, kill: (s: NodeJS.Signals) => void) => void, timeoutMs = 170_000): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [beaconBin, 'lab', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGINT'), timeoutMs);
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      onErr?.(err, (s) => child.kill(s));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, err });
    });
  });
}

const namespacesOf = (runId: string) => listRuns().flatMap((r) => (r.runId === runId ? r.presentNamespaces : []));
const mountsOf = (runId: string) => readFileSync('/proc/self/mounts', 'utf8').split('\n').filter((l) => l.includes(`/${runId}/`));
const runIdIn = (text: string) => /building site (bl-[0-9a-f]{6})/.exec(text)?.[1];

describe('beacon lab', { timeout: 200_000 }, () => {
  const kept: string[] = [];
  afterAll(() => {
    // A failed test may have left its kept site up.
    if (kept.length > 0) removeKeptRuns({ runIds: kept });
  });

  it('reports IPs, announcers, routes, spread, failover and restart as JSON; --keep leaves the site up until `lab down`', async () => {
    const run = await lab(['-o', 'json', '--keep']);
    const runId = runIdIn(run.err);
    if (runId) kept.push(runId);
    expect(run.code, run.err).toBe(0);
    const report = JSON.parse(run.out) as LabReport;
    expect(report.runId).toBe(runId);

    const byName = Object.fromEntries(report.services.map((s) => [s.name, s]));
    expect(byName.web).toMatchObject({ namespace: 'shop', ips: ['198.18.0.200', '2001:db8::200'], reason: 'satisfied', client: 'lan-client', failed: 0, routes: [] });
    expect(byName.api).toMatchObject({ namespace: 'shop', ips: ['198.18.50.1', '2001:db8:50::1'], reason: 'satisfied', client: 'wan-client', failed: 0, announcer: null });
    // L2: the LAN client's neighbour table names a node for each IP.
    expect(['node-1', 'node-2', 'node-3']).toContain(byName.web!.announcer);
    for (const ip of byName.web!.ips) expect(['node-1', 'node-2', 'node-3']).toContain(byName.web!.announcers[ip]);
    // BGP: every node is an equal-cost next hop at the router.
    expect(byName.api!.routes).toEqual([
      { prefix: '198.18.50.1/32', nextHops: ['node-1', 'node-2', 'node-3'] },
      { prefix: '2001:db8:50::1/128', nextHops: ['node-1', 'node-2', 'node-3'] },
    ]);
    // Spread: random selection over three pods; 60 requests reach at least two of them.
    for (const s of [byName.web!, byName.api!]) {
      expect(s.requests).toBe(60);
      expect(Object.keys(s.backendsHit).length).toBeGreaterThanOrEqual(2);
      expect(Object.keys(s.backendsHit).every((b) => /^pod-[123]$/.test(b))).toBe(true);
    }

    // Failover: the client noticed (requests failed) and was served again through another node.
    const f = report.failover;
    expect(f.ip).toBe('198.18.0.200');
    expect(f.from).toBe(byName.web!.announcer);
    expect(['node-1', 'node-2', 'node-3'].filter((n) => n !== f.from)).toContain(f.to);
    expect(f.failed).toBeGreaterThan(0);
    expect(f.seconds).toBeGreaterThan(0);
    // Restart under traffic: the target is no failed request. A request in flight while its IP
    // moves to another node can be reset (that node has no conntrack entry for it): at most 1 %.
    expect(report.restart.requests).toBeGreaterThan(100);
    expect(report.restart.failed).toBeLessThanOrEqual(Math.ceil(report.restart.requests / 100));
    expect(run.err).toContain(`beacon.js lab down ${runId}`);

    // Kept: the site still serves, and the sweeper leaves it alone.
    expect(listRuns().find((r) => r.runId === runId)?.state?.kept).toBe(true);
    const curl = await new Promise<string>((resolve) => {
      const c = spawn('ip', ['netns', 'exec', `${runId}-lan-client`, 'curl', '-s', '-m', '5', 'http://198.18.0.200/']);
      let text = '';
      c.stdout.on('data', (d: Buffer) => (text += d.toString()));
      c.once('exit', () => resolve(text));
    });
    expect(curl.trim()).toMatch(/^pod-[123]$/);

    const down = beacon('lab', 'down', runId!);
    expect(down.code, down.err).toBe(0);
    expect(down.out).toContain(`${runId}: removed 11 namespaces`);
    expect(namespacesOf(runId!)).toEqual([]);
    expect(mountsOf(runId!)).toEqual([]);
    expect(listRuns().map((r) => r.runId)).not.toContain(runId);
    kept.splice(kept.indexOf(runId!), 1);
  });

  it('Ctrl-C while the site comes up removes everything it made', async () => {
    let signalled = false;
    const run = await lab([], (err, kill) => {
      if (!signalled && err.includes('starting beacon on')) {
        signalled = true;
        kill('SIGINT');
      }
    });
    const runId = runIdIn(run.err);
    expect(signalled, run.err).toBe(true);
    expect(run.signal).toBe('SIGINT');
    expect(namespacesOf(runId!)).toEqual([]);
    expect(mountsOf(runId!)).toEqual([]);
    expect(listRuns().map((r) => r.runId)).not.toContain(runId);
  });

  it('explains what it needs: root, a known output format, a kept site that exists', () => {
    const user = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, beaconBin, 'lab'], { cwd: root, encoding: 'utf8', timeout: 30_000 });
    expect(user.status).toBe(1);
    expect(user.stderr).toContain('beacon lab: needs root');
    const bad = beacon('lab', '-o', 'yaml');
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('-o yaml: one of text, json');
    const unknown = beacon('lab', 'down', 'bl-ffffff');
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('no kept site bl-ffffff');
  });
});
