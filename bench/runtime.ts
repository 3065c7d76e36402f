// Runtime benchmark (`npm run bench:runtime`; `-- --json` for the JSON line only, `-- --part
// embedded|etcd` for one store, `-- --services N`, `-- --edits N`, `-- --cpu-prof DIR` to profile
// the beacon process). A benchmark, not a test: it prints figures and checks, and never fails on a
// timing.
//
// End to end, as a user sees it: the built `bin/beacon.js standalone` runs as a child process on
// 10,000 LoadBalancer Services (100 manifest files of 100 Services each, one namespace per file,
// plus a pools file with an IPv4 /16 and an IPv6 /64), and is observed from outside only: its JSON
// log lines (each decision is logged once, with pino's millisecond timestamp), its /metrics, its
// local API and the `beacon services -o json` CLI. Measured per store:
//   start:  spawn -> caches synced -> every service decided (log) -> every status written
//           (beacon_status_writes_total) -> every service with its IPs through the CLI
//   edits:  one file changed (a service added, or a service given a requested IP), alternating;
//           edit -> decision logged -> status written -> visible through the local API -> CLI
//   memory: peak RSS of the beacon process (VmHWM from /proc/PID/status)
//   restart: SIGTERM (stop time), start again on the same state -> every service visible
// On etcd the objects are first written with `beacon apply -f DIR` (timed on its own), and each
// edit is the edited file applied with `beacon apply -f FILE`.
//
// The peers (Cilium's operator, MetalLB's controller) need a Kubernetes API server, which cannot
// run on these machines, so there is no side-by-side peer here: etcd is compared to embedded.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { startEtcd, type EtcdServer } from '../test/etcd-server.js';
import { freePort } from '../test/process.js';
import type { ServiceView } from '../agent/local-api.js';

// ---- options -----------------------------------------------------------------------------------

const { values: flags } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    part: { type: 'string', default: 'all' },
    services: { type: 'string', default: '10000' },
    'per-file': { type: 'string', default: '100' },
    edits: { type: 'string', default: '10' },
    /** Writes a V8 CPU profile of every beacon standalone process into DIR (skews the figures). */
    'cpu-prof': { type: 'string' },
    /** Keeps the temp folder (manifests, state, logs) for inspection. */
    keep: { type: 'boolean', default: false },
  },
  strict: true,
});
const parts = flags.part === 'all' ? ['embedded', 'etcd'] : [flags.part];
if (!parts.every((p) => p === 'embedded' || p === 'etcd')) throw new Error(`--part: embedded, etcd or all, not "${flags.part}"`);
const N = Number(flags.services);
const PER_FILE = Number(flags['per-file']);
const EDITS = Number(flags.edits);
if (!(N > 0 && PER_FILE > 0 && EDITS >= 0)) throw new Error('--services and --per-file must be positive, --edits not negative');
const FILES = Math.ceil(N / PER_FILE);
const targets = { embeddedStartMs: 3000, etcdStartMs: 10_000, editMs: 200, rssMB: 250 } as const;
/** Every wait is bounded: a phase that takes longer than this is reported as failed. */
const PHASE_TIMEOUT_MS = 180_000;
const EDIT_TIMEOUT_MS = 15_000;

/** The project root: the folder with bin/beacon.js above this file (bench/ from tsx, dist/bench/ when built). */
function findRoot(): string {
  for (let dir = import.meta.dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'bin', 'beacon.js')) && existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error('bin/beacon.js not found above the benchmark');
  }
}
const root = findRoot();
const beaconBin = join(root, 'bin', 'beacon.js');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const say = (line = ''): void => {
  if (!flags.json) process.stdout.write(`${line}\n`);
};

// ---- workload ----------------------------------------------------------------------------------

const fileName = (f: number): string => `team-${String(f).padStart(3, '0')}.yaml`;
const namespaceOf = (f: number): string => `team-${String(f).padStart(3, '0')}`;

const poolsYaml = `# Benchmark pools: RFC 2544 (benchmarking) and RFC 3849 (documentation) ranges.
apiVersion: beacon.io/v1alpha1
kind: LoadBalancerIPPool
metadata:
  name: bulk-v4
  creationTimestamp: "2026-01-01T00:00:00Z"
spec:
  blocks:
    - cidr: 198.18.0.0/16
---
apiVersion: beacon.io/v1alpha1
kind: LoadBalancerIPPool
metadata:
  name: bulk-v6
  creationTimestamp: "2026-01-01T00:00:00Z"
spec:
  blocks:
    - cidr: 2001:db8::/64
`;

/**
 * Service `j` of file `f`: 60% IPv4, 20% IPv6 single stack, 20% dual stack; in every file four
 * services (j = 90..93) share one IPv4 address through a sharing key, on different ports.
 */
function serviceYaml(f: number, j: number, extra: { name?: string; ips?: string } = {}): string {
  const name = extra.name ?? `svc-${String(j).padStart(2, '0')}`;
  const shared = j >= 90 && j <= 93;
  const kind = shared ? 0 : j % 10;
  const annotations: string[] = [];
  if (shared) annotations.push(`beacon.io/sharing-key: shared-${f}`);
  if (extra.ips) annotations.push(`beacon.io/ips: "${extra.ips}"`);
  const families = kind < 6 ? '' : kind < 8 ? '\n  ipFamilyPolicy: SingleStack\n  ipFamilies: [IPv6]' : '\n  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]';
  const port = shared ? 9000 + j : 443;
  return `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: ${namespaceOf(f)}
  labels:
    app: ${name}
    app.kubernetes.io/part-of: team-${f}
    tier: ${j % 3 === 0 ? 'frontend' : 'backend'}${annotations.length ? `\n  annotations:\n    ${annotations.join('\n    ')}` : ''}
spec:
  type: LoadBalancer${families}
  selector:
    app: ${name}
  ports:
    - name: main
      port: ${port}
      targetPort: 8080
      protocol: TCP
`;
}

/** The documents of each file, kept so that an edit rewrites the file as an editor would. */
function makeFiles(): string[][] {
  return Array.from({ length: FILES }, (_, f) => Array.from({ length: Math.min(PER_FILE, N - f * PER_FILE) }, (_, j) => serviceYaml(f, j)));
}

function writeManifests(dir: string, files: string[][]): void {
  mkdirSync(join(dir, 'services'), { recursive: true });
  writeFileSync(join(dir, 'pools.yaml'), poolsYaml);
  files.forEach((docs, f) => writeFileSync(join(dir, 'services', fileName(f)), docs.join('---\n')));
}

interface Edit {
  kind: 'add' | 'readdress';
  file: number;
  key: string;
  /** The IPs the service must show; undefined: any IPv4 address. */
  ips: string[] | undefined;
}

/** Edit k: even k adds a service at the end of a file, odd k gives the file's last service a requested IPv4 address. */
function applyEdit(files: string[][], k: number): Edit {
  const file = (k * 37) % FILES;
  const docs = files[file]!;
  if (k % 2 === 0) {
    const name = `added-${k}`;
    docs.push(serviceYaml(file, 0, { name }));
    return { kind: 'add', file, key: `${namespaceOf(file)}/${name}`, ips: undefined };
  }
  // Far above where allocation from the bottom of the /16 reaches with 10,000 services.
  const ip = `198.18.250.${k}`;
  // The last single-stack IPv4 service of the file (j % 10 < 6, not in the sharing group 90..93).
  let pick = Math.min(docs.length, PER_FILE) - 1;
  while (pick > 0 && (pick % 10 >= 6 || (pick >= 90 && pick <= 93))) pick--;
  docs[pick] = serviceYaml(file, pick, { ips: ip });
  return { kind: 'readdress', file, key: `${namespaceOf(file)}/svc-${String(pick).padStart(2, '0')}`, ips: [ip] };
}

// ---- processes ---------------------------------------------------------------------------------

interface LogRecord {
  time: number;
  msg: string;
  service?: string;
  ips?: string[];
  [k: string]: unknown;
}

const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of liveChildren) c.kill('SIGKILL');
});

/** A `beacon standalone` process: its JSON log lines parsed as they come, decisions indexed. */
class Beacon {
  readonly child: ChildProcess;
  readonly spawnedAt = Date.now();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private partial = '';
  private tail: string[] = [];
  /** service key -> the last decision logged for it. */
  readonly decisions = new Map<string, LogRecord>();
  /** Time of the last decision record. */
  lastDecisionAt = 0;
  readonly marks = new Map<string, number>();
  private waiters = new Set<(r: LogRecord) => void>();

  constructor(args: string[], readonly logFile: string) {
    // Node refuses --cpu-prof in NODE_OPTIONS: it goes on the command line.
    const prof = flags['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${flags['cpu-prof']}`] : [];
    this.child = spawn(process.execPath, [...prof, beaconBin, ...args], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    liveChildren.add(this.child);
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        liveChildren.delete(this.child);
        resolve({ code, signal });
      }),
    );
    // Read continuously: a full stderr pipe would block the process being measured.
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (chunk: string) => this.onData(chunk));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  private onData(chunk: string): void {
    const lines = (this.partial + chunk).split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) {
      this.tail.push(line);
      if (this.tail.length > 40) this.tail.shift();
      if (!line.startsWith('{')) continue;
      let r: LogRecord;
      try {
        r = JSON.parse(line) as LogRecord;
      } catch {
        continue;
      }
      if (!this.marks.has(r.msg)) this.marks.set(r.msg, r.time);
      if (typeof r.service === 'string' && Array.isArray(r.ips)) {
        this.decisions.set(r.service, r);
        this.lastDecisionAt = Math.max(this.lastDecisionAt, r.time);
      }
      for (const w of this.waiters) w(r);
    }
  }

  logTail(): string {
    return this.tail.join('\n');
  }

  /** The first record (from now on) that `match` accepts; bounded. */
  waitFor(match: (r: LogRecord) => boolean, timeoutMs: number, what: string): Promise<LogRecord> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`${what}: no such log record within ${timeoutMs} ms`));
      }, timeoutMs);
      const w = (r: LogRecord): void => {
        if (!match(r)) return;
        clearTimeout(timer);
        this.waiters.delete(w);
        resolve(r);
      };
      this.waiters.add(w);
    });
  }

  /** Peak resident set size (VmHWM), MB. */
  peakRssMB(): number {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  }

  /** SIGTERM; SIGKILL after graceMs. Resolves with how long the stop took. */
  async stop(graceMs = 6000): Promise<{ ms: number; code: number | null; signal: NodeJS.Signals | null }> {
    const t0 = Date.now();
    if (this.running) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const r = await this.exited;
    clearTimeout(timer);
    writeFileSync(this.logFile, this.tail.join('\n'));
    return { ms: Date.now() - t0, ...r };
  }
}

interface CliResult {
  code: number | null;
  out: string;
  err: string;
  startedAt: number;
  endedAt: number;
}

/** Runs a `beacon` command to completion without blocking this event loop (bounded); `onLine` sees each stdout line as it comes. */
function cli(args: string[], timeoutMs = 120_000, onLine?: (line: string) => void): Promise<CliResult> {
  const startedAt = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [beaconBin, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    liveChildren.add(child);
    const out: string[] = [];
    const err: string[] = [];
    let partial = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out.push(d);
      if (!onLine) return;
      const lines = (partial + d).split('\n');
      partial = lines.pop()!;
      for (const l of lines) onLine(l);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      resolve({ code, out: out.join(''), err: err.join(''), startedAt, endedAt: Date.now() });
    });
  });
}

async function cliServices(socket: string): Promise<{ views: ServiceView[] | undefined; r: CliResult }> {
  const r = await cli(['services', '-o', 'json', '--socket', socket], 30_000);
  if (r.code !== 0) return { views: undefined, r };
  try {
    return { views: JSON.parse(r.out) as ServiceView[], r };
  } catch {
    return { views: undefined, r };
  }
}

/** GET on the local API's unix socket: what the CLI reads, without the CLI's process start. */
function localGet<T>(socket: string, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method: 'GET', timeout: 10_000 }, (res) => {
      const chunks: string[] = [];
      res.setEncoding('utf8');
      res.on('data', (c: string) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(chunks.join('')) as T);
        } catch (e) {
          reject(e instanceof Error ? e : new Error(String(e)));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('local API timeout')));
    req.on('error', reject);
    req.end();
  });
}

interface MetricsSample {
  at: number;
  serviceWritesOk: number;
  serviceWritesConflict: number;
  reconciles: number;
  reconcileSeconds: number;
  satisfied: number;
}

async function metrics(addr: string): Promise<MetricsSample | undefined> {
  try {
    const res = await fetch(`http://${addr}/metrics`, { signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    const value = (re: RegExp): number => Number(re.exec(text)?.[1] ?? 0);
    return {
      at: Date.now(),
      serviceWritesOk: value(/^beacon_status_writes_total\{kind="service",result="ok"\} (\S+)$/m),
      serviceWritesConflict: value(/^beacon_status_writes_total\{kind="service",result="conflict"\} (\S+)$/m),
      reconciles: value(/^beacon_reconcile_total\{controller="lbipam"\} (\S+)$/m),
      reconcileSeconds: value(/^beacon_reconcile_duration_seconds_sum\{controller="lbipam"\} (\S+)$/m),
      satisfied: value(/^beacon_ipam_services_satisfied (\S+)$/m),
    };
  } catch {
    return undefined;
  }
}


// ---- phases ------------------------------------------------------------------------------------

const allAssigned = (views: ServiceView[] | undefined, n: number): boolean =>
  views !== undefined && views.length === n && views.every((v) => v.satisfied && v.ips.length > 0);

interface StartFigures {
  /** Spawn -> log "beacon standalone started" (store open, caches synced, API up). */
  startedMs: number;
  /** Spawn -> last decision logged (every service decided). */
  decidedMs: number | null;
  /** Spawn -> beacon_status_writes_total{service,ok} reached the number of services. */
  writtenMs: number | null;
  /** Spawn -> the first `beacon services -o json` that showed every service with its IPs (its end). */
  visibleMs: number;
  /** CPU time (user + system) the beacon process had used when every status was written (or, on a restart, when it was visible). */
  cpuMs: number | null;
  /** CLI calls made while waiting, and the duration of the last one. */
  cliCalls: number;
  lastCliMs: number;
  statusWrites: number;
  conflicts: number;
  reconciles: number;
}

/** Starts nothing: watches a spawned beacon until every one of `n` services is visible through the CLI. */
/** IPs by namespace/name, as the CLI showed them. */
type Assignments = Map<string, string>;
const assignments = (views: ServiceView[]): Assignments => new Map(views.map((v) => [`${v.namespace}/${v.name}`, v.ips.join(',')]));

async function measureStart(b: Beacon, socket: string, metricsAddr: string, n: number, expectWrites: boolean): Promise<{ figures: StartFigures; shown: Assignments }> {
  const t0 = b.spawnedAt;
  const end = t0 + PHASE_TIMEOUT_MS;
  let writtenAt: number | undefined;
  let writtenCpu: number | undefined;
  let last: MetricsSample | undefined;
  let done = false;
  const poller = (async () => {
    for (let i = 0; !done && Date.now() < end && i < PHASE_TIMEOUT_MS / 25; i++) {
      const m = await metrics(metricsAddr);
      if (m) {
        last = m;
        if (writtenAt === undefined && m.serviceWritesOk >= n) {
          writtenAt = m.at;
          writtenCpu = cpuMs(b.pid);
        }
      }
      await sleep(25);
    }
  })();
  let calls = 0;
  let visible: CliResult | undefined;
  let shown: ServiceView[] = [];
  let lastCli: CliResult | undefined;
  try {
    // A CLI call costs most of a core for most of a second with 10,000 services: calling it in a
    // loop would slow the process it waits for. It is called once the metrics say the statuses
    // are written (or, on a restart, once the process is up), and then until it shows them all.
    for (let i = 0; Date.now() < end && i < PHASE_TIMEOUT_MS / 25; i++) {
      if (!b.running) throw new Error(`beacon exited during start:\n${b.logTail()}`);
      if (expectWrites ? writtenAt !== undefined : b.marks.has('beacon standalone started')) break;
      await sleep(25);
    }
    for (; Date.now() < end && calls < 2000; calls++) {
      if (!b.running) throw new Error(`beacon exited during start:\n${b.logTail()}`);
      const { views, r } = await cliServices(socket);
      lastCli = r;
      if (allAssigned(views, n)) {
        visible = r;
        shown = views!;
        break;
      }
      await sleep(50);
    }
  } finally {
    done = true;
    await poller;
  }
  const visibleCpu = cpuMs(b.pid);
  if (!visible) throw new Error(`not every service visible within ${PHASE_TIMEOUT_MS} ms (${calls} CLI calls; last: ${lastCli?.err.slice(0, 300) ?? ''})\n${b.logTail()}`);
  // The counter may lag the CLI by one poll: read it once more.
  const m = (await metrics(metricsAddr)) ?? last;
  if (writtenAt === undefined && m && m.serviceWritesOk >= n) writtenAt = m.at;
  const started = b.marks.get('beacon standalone started');
  const figures = {
    startedMs: started !== undefined ? started - t0 : NaN,
    decidedMs: expectWrites && b.decisions.size >= n ? b.lastDecisionAt - t0 : null,
    writtenMs: expectWrites && writtenAt !== undefined ? writtenAt - t0 : null,
    visibleMs: visible.endedAt - t0,
    cpuMs: expectWrites ? (writtenCpu ?? null) : visibleCpu,
    cliCalls: calls + 1,
    lastCliMs: visible.endedAt - visible.startedAt,
    statusWrites: m?.serviceWritesOk ?? 0,
    conflicts: m?.serviceWritesConflict ?? 0,
    reconciles: m?.reconciles ?? 0,
  };
  return { figures, shown: assignments(shown) };
}

interface EditFigures {
  kind: Edit['kind'];
  key: string;
  /** etcd: the `beacon apply -f FILE` run (ms); embedded: 0. */
  applyMs: number;
  /** etcd: apply started -> it reported the changed object written. Embedded: 0 (the file save is the change). */
  storedMs: number;
  /** Change in the store (file saved / object written to etcd) -> decision logged. */
  decidedMs: number;
  /** Change -> status write counted in /metrics (polled every 5 ms). */
  writtenMs: number;
  /** Change -> the local API (what the CLI reads) shows it. */
  apiMs: number;
  /** Change -> a `beacon services -o json` started after the API showed it, ended. */
  cliMs: number;
  /** That CLI call alone. */
  cliCallMs: number;
  /** Reconcile passes during the edit, and their summed duration (histogram). */
  passes: number;
  passMs: number;
}

const showsEdit = (views: ServiceView[] | undefined, e: Edit): boolean => {
  const v = views?.find((s) => `${s.namespace}/${s.name}` === e.key);
  return v !== undefined && v.satisfied && (e.ips ? v.ips.join(',') === e.ips.join(',') : v.ips.length === 1 && v.ips[0]!.startsWith('198.18.'));
};

/** What saving an edit did: how long the apply took (etcd) and when the change reached the store (epoch ms). */
interface Saved {
  applyMs: number;
  changedAt: number;
}

async function measureEdit(b: Beacon, socket: string, metricsAddr: string, e: Edit, save: () => Promise<Saved>): Promise<EditFigures> {
  const before = await metrics(metricsAddr);
  if (!before) throw new Error('metrics unreachable');
  const decided = b.waitFor(
    (r) => r.service === e.key && Array.isArray(r.ips) && (e.ips ? r.ips.join(',') === e.ips.join(',') : r.ips.length === 1),
    EDIT_TIMEOUT_MS,
    `decision for ${e.key}`,
  );
  decided.catch(() => undefined);
  const t = Date.now();
  const saved = await save();
  const t0 = saved.changedAt;
  const end = t + EDIT_TIMEOUT_MS;
  let written: MetricsSample | undefined;
  for (let i = 0; Date.now() < end && i < EDIT_TIMEOUT_MS / 5; i++) {
    const m = await metrics(metricsAddr);
    if (m && m.serviceWritesOk > before.serviceWritesOk) {
      written = m;
      break;
    }
    await sleep(5);
  }
  if (!written) throw new Error(`${e.kind} ${e.key}: no status write within ${EDIT_TIMEOUT_MS} ms\n${b.logTail()}`);
  const rec = await decided;
  let apiAt: number | undefined;
  for (let i = 0; Date.now() < end && i < 1000; i++) {
    const views = await localGet<ServiceView[]>(socket, '/v1/services');
    if (showsEdit(views, e)) {
      apiAt = Date.now();
      break;
    }
    await sleep(5);
  }
  if (apiAt === undefined) throw new Error(`${e.kind} ${e.key}: not shown by the local API within ${EDIT_TIMEOUT_MS} ms`);
  const { views, r } = await cliServices(socket);
  if (!showsEdit(views, e)) throw new Error(`${e.kind} ${e.key}: the CLI does not show it (${r.err.slice(0, 300)})`);
  // Let trailing passes (the watch event of our own write) finish before reading the histogram.
  await sleep(100);
  const after = (await metrics(metricsAddr)) ?? written;
  return {
    kind: e.kind,
    key: e.key,
    applyMs: saved.applyMs,
    storedMs: saved.changedAt - t,
    decidedMs: rec.time - t0,
    writtenMs: written.at - t0,
    apiMs: apiAt - t0,
    cliMs: r.endedAt - t0,
    cliCallMs: r.endedAt - r.startedAt,
    passes: after.reconciles - before.reconciles,
    passMs: (after.reconcileSeconds - before.reconcileSeconds) * 1000,
  };
}

interface StoreRun {
  store: 'embedded' | 'etcd';
  applyAll?: { ms: number; objects: number };
  start: StartFigures;
  edits: EditFigures[];
  peakRssMB: number;
  stopMs: number;
  restart: StartFigures;
  /** Services showing the same IPs after the restart as before it. */
  keptIPs: number;
  restartPeakRssMB: number;
  finalCheck: { services: number; withIPs: number; ms: number; how: string };
  idleCpuPercent: number;
}

/** CPU time (user + system) of a process so far, in ms, from /proc/PID/stat. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime are fields 14 and 15 (1-based); after the "comm) " split, fields[11] and [12].
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

async function runStore(store: 'embedded' | 'etcd', work: string): Promise<StoreRun> {
  const files = makeFiles();
  const manifests = join(work, 'manifests');
  writeManifests(manifests, files);
  const socket = join(work, 'beacon.sock');
  const metricsAddr = `127.0.0.1:${await freePort()}`;
  let etcd: EtcdServer | undefined;
  let b: Beacon | undefined;
  try {
    const common = ['standalone', '--kube-proxy-replacement', 'false', '--node-name', 'bench-1', '--socket', socket, '--metrics-addr', metricsAddr, '--lease-duration', '5s', '--l2-announcements', 'false'];
    let storeArgs: string[];
    let applyAll: StoreRun['applyAll'];
    const etcdArgs = (): string[] => ['--etcd-endpoints', etcd!.endpoint, '--etcd-prefix', '/beacon-bench'];
    if (store === 'embedded') {
      storeArgs = ['--store', 'embedded', '--manifests', manifests, '--state-dir', join(work, 'state')];
    } else {
      etcd = await startEtcd();
      say(`  etcd ${etcd.endpoint} (data in ${etcd.dataDir})`);
      const r = await cli(['apply', '-f', manifests, ...etcdArgs()], PHASE_TIMEOUT_MS);
      if (r.code !== 0) throw new Error(`beacon apply failed (${r.code}): ${r.err.slice(0, 500)}`);
      applyAll = { ms: r.endedAt - r.startedAt, objects: r.out.split('\n').filter((l) => l.endsWith(' applied')).length };
      say(`  beacon apply -f (${applyAll.objects} objects): ${(applyAll.ms / 1000).toFixed(2)} s`);
      storeArgs = ['--store', 'etcd', ...etcdArgs()];
    }

    b = new Beacon([...common, ...storeArgs], join(work, 'beacon-1.log'));
    const { figures: start } = await measureStart(b, socket, metricsAddr, N, true);
    say(`  start: visible through the CLI after ${(start.visibleMs / 1000).toFixed(2)} s`);

    // Idle cost: CPU used over 2 s with nothing changing (periodic rescans, polls).
    await sleep(500);
    const c0 = cpuMs(b.pid);
    await sleep(2000);
    const idleCpuPercent = (cpuMs(b.pid) - c0) / 20;

    const edits: EditFigures[] = [];
    for (let k = 0; k < EDITS; k++) {
      const e = applyEdit(files, k);
      const path = join(manifests, 'services', fileName(e.file));
      const text = files[e.file]!.join('---\n');
      const save =
        store === 'embedded'
          ? (): Promise<Saved> => {
              writeFileSync(path, text);
              return Promise.resolve({ applyMs: 0, changedAt: Date.now() });
            }
          : async (): Promise<Saved> => {
              writeFileSync(path, text);
              // `beacon apply` prints "Service NS/NAME applied" right after each object's write.
              let changedAt: number | undefined;
              const line = `Service ${e.key} applied`;
              const r = await cli(['apply', '-f', path, ...etcdArgs()], 60_000, (l) => {
                if (l === line) changedAt ??= Date.now();
              });
              if (r.code !== 0 || changedAt === undefined) throw new Error(`beacon apply -f ${path} failed: ${r.err.slice(0, 300)}`);
              return { applyMs: r.endedAt - r.startedAt, changedAt };
            };
      edits.push(await measureEdit(b, socket, metricsAddr, e, save));
      // Edits a user makes are apart; also keeps each edit's passes separate.
      await sleep(300);
    }
    const expected = N + Math.ceil(EDITS / 2);
    const peakRssMB = b.peakRssMB();
    const last = await cliServices(socket);
    if (!last.views) throw new Error(`beacon services failed: ${last.r.err.slice(0, 300)}`);
    const before = assignments(last.views);
    const stop = await b.stop();
    if (stop.code !== 0) throw new Error(`beacon stopped with ${stop.code ?? stop.signal}`);

    // Restart on the same state: statuses are there, nothing needs writing.
    b = new Beacon([...common, ...storeArgs], join(work, 'beacon-2.log'));
    const { figures: restart, shown: after } = await measureStart(b, socket, metricsAddr, expected, false);
    // Assigned IPs are never reshuffled by a restart.
    const keptIPs = [...before].filter(([k, ips]) => after.get(k) === ips).length;
    const restartPeakRssMB = b.peakRssMB();
    await b.stop();
    b = undefined;

    // The statuses as stored: on etcd through `beacon get svc`, on embedded through a fresh process above.
    let finalCheck: StoreRun['finalCheck'];
    if (store === 'etcd') {
      const r = await cli(['get', 'svc', '-o', 'json', ...etcdArgs()], PHASE_TIMEOUT_MS);
      const list = JSON.parse(r.out) as { items: { status?: { loadBalancer?: { ingress?: unknown[] } } }[] };
      finalCheck = { services: list.items.length, withIPs: list.items.filter((o) => (o.status?.loadBalancer?.ingress?.length ?? 0) > 0).length, ms: r.endedAt - r.startedAt, how: 'beacon get svc -o json (from etcd)' };
    } else {
      finalCheck = { services: expected, withIPs: expected, ms: restart.visibleMs, how: 'a restarted process showed every service from the state database' };
    }
    return { store, ...(applyAll ? { applyAll } : {}), start, edits, peakRssMB, stopMs: stop.ms, restart, keptIPs, restartPeakRssMB, finalCheck, idleCpuPercent };
  } finally {
    if (b) await b.stop(2000);
    await etcd?.close();
  }
}

// ---- run ---------------------------------------------------------------------------------------

const work = mkdtempSync(join(tmpdir(), 'beacon-bench-runtime-'));
let interrupted = false;
const onSignal = (sig: NodeJS.Signals): void => {
  if (interrupted) return;
  interrupted = true;
  for (const c of liveChildren) c.kill('SIGKILL');
  if (!flags.keep) rmSync(work, { recursive: true, force: true });
  process.kill(process.pid, sig);
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);
if (flags['cpu-prof']) mkdirSync(flags['cpu-prof'], { recursive: true });

const loadAtStart = loadavg()[0]!;
const cpuModel = cpus()[0]?.model ?? 'unknown';
say(`Runtime benchmark, node ${process.version}, ${availableParallelism()} CPUs (${cpuModel}), load average ${loadAtStart.toFixed(2)} before the run`);
if (loadAtStart > 0.5) say('warning: the machine was busy before this run; figures are skewed by the other work');
say(`${N.toLocaleString('en-US')} services in ${FILES} files of ${PER_FILE} (one namespace each) + pools 198.18.0.0/16 and 2001:db8::/64; ${EDITS} edits`);

const runs: StoreRun[] = [];
let failure: Error | undefined;
try {
  for (const p of parts) {
    say(`${p}:`);
    const dir = join(work, p);
    mkdirSync(dir);
    runs.push(await runStore(p, dir));
  }
} catch (e) {
  failure = e as Error;
} finally {
  if (flags.keep) say(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

// ---- report ------------------------------------------------------------------------------------

const round = (v: number | null, digits = 0): number | null => (v === null || Number.isNaN(v) ? null : Number(v.toFixed(digits)));
const median = (values: readonly number[]): number => {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const max = (values: readonly number[]): number => (values.length ? Math.max(...values) : NaN);
const sec = (ms: number | null): string => (ms === null ? '-' : `${(ms / 1000).toFixed(2)} s`);
const msText = (ms: number): string => `${ms.toFixed(0)} ms`;
const verdict = (ok: boolean): string => (ok ? 'ok' : 'MISSED');

const summaries = runs.map((r) => {
  const startTarget = r.store === 'embedded' ? targets.embeddedStartMs : targets.etcdStartMs;
  const field = (f: keyof EditFigures) => r.edits.map((e) => e[f] as number);
  const edits = {
    n: r.edits.length,
    applyMedianMs: round(median(field('applyMs'))),
    storedMedianMs: round(median(field('storedMs'))),
    decidedMedianMs: round(median(field('decidedMs'))),
    writtenMedianMs: round(median(field('writtenMs'))),
    apiMedianMs: round(median(field('apiMs'))),
    apiMaxMs: round(max(field('apiMs'))),
    cliMedianMs: round(median(field('cliMs'))),
    cliCallMedianMs: round(median(field('cliCallMs'))),
    passesMedian: median(field('passes')),
    passMedianMs: round(median(field('passMs')), 1),
  };
  // The target is on Beacon's part: from the change in the store to the result in the local API.
  const reactMs = median(field('apiMs'));
  return {
    store: r.store,
    applyAll: r.applyAll,
    start: { ...r.start, targetMs: startTarget, met: r.start.visibleMs < startTarget },
    edits: { ...edits, reactMedianMs: round(reactMs), targetMs: targets.editMs, met: reactMs < targets.editMs, runs: r.edits },
    memory: { peakRssMB: round(r.peakRssMB, 1), restartPeakRssMB: round(r.restartPeakRssMB, 1), targetMB: targets.rssMB, met: r.peakRssMB < targets.rssMB },
    stopMs: r.stopMs,
    restart: { ...r.restart, keptIPs: r.keptIPs },
    idleCpuPercent: round(r.idleCpuPercent, 1),
    finalCheck: r.finalCheck,
  };
});

const byStore = Object.fromEntries(summaries.map((s) => [s.store, s]));
const e = byStore['embedded'];
const d = byStore['etcd'];
const ratio = (a: number | null | undefined, b: number | null | undefined): number | null => (a && b ? round(a / b, 2) : null);
const ratios =
  e && d
    ? {
        startVisible: ratio(d.start.visibleMs, e.start.visibleMs),
        startWritten: ratio(d.start.writtenMs, e.start.writtenMs),
        editVisible: ratio(d.edits.reactMedianMs, e.edits.reactMedianMs),
        peakRss: ratio(d.memory.peakRssMB, e.memory.peakRssMB),
        restartVisible: ratio(d.restart.visibleMs, e.restart.visibleMs),
      }
    : undefined;

say();
for (const s of summaries) {
  say(`${s.store}${s.applyAll ? ` (beacon apply -f of ${s.applyAll.objects} objects first: ${sec(s.applyAll.ms)})` : ''}`);
  say(`  start -> caches synced      ${sec(s.start.startedMs)}`);
  say(`  start -> all decided (log)  ${sec(s.start.decidedMs)}`);
  say(`  start -> all status written ${sec(s.start.writtenMs)}  (${s.start.statusWrites} writes, ${s.start.conflicts} conflicts, ${s.start.reconciles} reconcile passes; beacon used ${sec(s.start.cpuMs)} of CPU by then)`);
  say(`  start -> visible in CLI     ${sec(s.start.visibleMs)}  target < ${sec(s.start.targetMs)}: ${verdict(s.start.met)}  (${s.start.cliCalls} CLI calls; one takes ${msText(s.start.lastCliMs)})`);
  const ed = s.edits;
  say(
    `  one edit (median of ${ed.n})  ${s.store === 'etcd' ? `beacon apply -f FILE ${msText(ed.applyMedianMs ?? NaN)} (object written after ${msText(ed.storedMedianMs ?? NaN)}); from the write: ` : 'from the file save: '}decided ${msText(ed.decidedMedianMs ?? NaN)}, status written ${msText(ed.writtenMedianMs ?? NaN)}, CLI ${msText(ed.cliMedianMs ?? NaN)} (the call alone ${msText(ed.cliCallMedianMs ?? NaN)})`,
  );
  say(`  edit -> visible in local API ${msText(ed.reactMedianMs ?? NaN)} (max ${msText(ed.apiMaxMs ?? NaN)})  target < ${ed.targetMs} ms: ${verdict(ed.met)}; ${ed.passesMedian} reconcile passes, ${ed.passMedianMs} ms in all`);
  say(`  peak RSS                    ${s.memory.peakRssMB} MB  target < ${s.memory.targetMB} MB: ${verdict(s.memory.met)}  (after restart: ${s.memory.restartPeakRssMB} MB)`);
  say(`  idle CPU                    ${s.idleCpuPercent}% of one core`);
  say(`  stop (SIGTERM)              ${msText(s.stopMs)}; restart -> visible in CLI ${sec(s.restart.visibleMs)} (${s.restart.statusWrites} status writes; ${sec(s.restart.cpuMs)} of CPU); same IPs as before: ${s.restart.keptIPs} of ${s.finalCheck.services}`);
  say(`  stored: ${s.finalCheck.withIPs} of ${s.finalCheck.services} services with IPs (${s.finalCheck.how}, ${sec(s.finalCheck.ms)})`);
}
if (ratios) say(`etcd / embedded: start->visible ${ratios.startVisible}x, start->written ${ratios.startWritten}x, edit -> visible ${ratios.editVisible}x, peak RSS ${ratios.peakRss}x, restart ${ratios.restartVisible}x`);
say('peer: none runs here (Cilium operator and MetalLB controller need a Kubernetes API server)');
if (failure) say(`FAILED: ${failure.message}`);
say();

const report = {
  bench: 'runtime',
  date: new Date().toISOString(),
  node: process.version,
  cpus: availableParallelism(),
  cpuModel,
  loadAverage: { atStart: round(loadAtStart, 2), atEnd: round(loadavg()[0]!, 2) },
  workload: { services: N, files: FILES, perFile: PER_FILE, pools: ['198.18.0.0/16', '2001:db8::/64'], edits: EDITS },
  targets,
  stores: byStore,
  ratios,
  peer: null,
  error: failure?.message ?? null,
};
process.stdout.write(`${JSON.stringify(report)}\n`);
if (failure) process.exitCode = 1;
