// Operator takeover benchmark (`npm run bench:takeover`): three `beacon standalone` processes on
// one store; the operator is killed with SIGKILL and we measure how long until another process
// holds the operator role, on the embedded store and on a real etcd. The lease duration is the
// bound the design promises to stay within (plus one second).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEtcd, type EtcdServer } from '../test/etcd-server.js';
import { sleep } from '../test/process.js';

const root = join(import.meta.dirname, '..', '..');
const beaconBin = join(root, 'bin', 'beacon.js');
const leaseSeconds = Number(process.env.LEASE_SECONDS ?? 3);
const trials = Number(process.env.TRIALS ?? 5);
const nodes = ['n1', 'n2', 'n3'];

interface Proc {
  name: string;
  child: ChildProcess;
  /** Epoch ms of each "operator role taken" log record. */
  taken: number[];
}

function startProc(name: string, args: string[]): Proc {
  const child = spawn(process.execPath, [beaconBin, 'standalone', '--kube-proxy-replacement', 'false', '--node-name', name, '--lease-duration', `${leaseSeconds}s`, '--l2-announcements', 'false', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const proc: Proc = { name, child, taken: [] };
  let buf = '';
  child.stderr.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.includes('"operator role taken"')) proc.taken.push((JSON.parse(line) as { time: number }).time);
    }
  });
  return proc;
}

async function waitFor<T>(what: string, check: () => T | undefined, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(10);
  }
}

/** Who leads now: the process whose last "taken" is the latest among the living. */
const leaderOf = (procs: Proc[]) => procs.filter((p) => p.child.exitCode === null && p.taken.length > 0).sort((a, b) => b.taken.at(-1)! - a.taken.at(-1)!)[0];

async function measure(kind: string, argsFor: (name: string) => string[]): Promise<number[]> {
  const procs = nodes.map((n) => startProc(n, argsFor(n)));
  const seconds: number[] = [];
  try {
    await waitFor('first operator', () => leaderOf(procs), 20_000);
    for (let t = 0; t < trials; t++) {
      const leader = leaderOf(procs)!;
      await sleep(leaseSeconds * 400); // let a few renewals happen, as in steady state
      const killedAt = Date.now();
      leader.child.kill('SIGKILL');
      await new Promise((r) => leader.child.once('exit', r));
      const next = await waitFor('takeover', () => procs.find((p) => p !== leader && (p.taken.at(-1) ?? 0) > killedAt), (leaseSeconds + 10) * 1000);
      seconds.push((next.taken.at(-1)! - killedAt) / 1000);
      // Bring the killed node back so three candidates remain.
      const i = procs.indexOf(leader);
      procs[i] = startProc(leader.name, argsFor(leader.name));
      await sleep(500);
    }
  } finally {
    for (const p of procs) p.child.kill('SIGKILL');
  }
  console.log(`${kind}: takeover after SIGKILL, lease ${leaseSeconds}s: ${seconds.map((s) => s.toFixed(2)).join(', ')} s`);
  return seconds;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'beacon-takeover-'));
  let etcd: EtcdServer | undefined;
  try {
    const manifests = join(dir, 'manifests');
    mkdirSync(manifests);
    writeFileSync(join(manifests, 'pool.yaml'), 'apiVersion: beacon.io/v1alpha1\nkind: LoadBalancerIPPool\nmetadata: {name: lan}\nspec:\n  blocks: [{cidr: 198.18.0.0/24}]\n');
    const embedded = await measure('embedded', (n) => ['--manifests', manifests, '--state-dir', join(dir, 'state'), '--socket', join(dir, `${n}.sock`)]);
    etcd = await startEtcd();
    const ep = etcd.endpoint;
    const onEtcd = await measure('etcd', (n) => ['--store', 'etcd', '--etcd-endpoints', ep, '--etcd-prefix', '/takeover', '--socket', join(dir, `e-${n}.sock`)]);
    const report = {
      date: new Date().toISOString(),
      leaseSeconds,
      trials,
      embedded: { medianSeconds: median(embedded), maxSeconds: Math.max(...embedded) },
      etcd: { medianSeconds: median(onEtcd), maxSeconds: Math.max(...onEtcd) },
      boundSeconds: leaseSeconds + 1,
    };
    console.log(JSON.stringify(report));
  } finally {
    await etcd?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
