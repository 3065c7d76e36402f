// A lab run: virtual hosts (network namespaces) joined by veth pairs and bridges, processes
// running inside them with their output in log files, and clean-up of all of it — by destroy(),
// by the owner's exit and signal handlers, or by the sweeper once the owner is dead.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkLabIp, parseLabCidr, type LabCidr } from './addresses.js';
import * as cmd from './commands.js';
import {
  checkHostName, checkInterfaceName, checkProcessName, namespaceName, newRunId, nextInterfaceName, runIdOfNamespace, switchNamespace, switchPortName,
} from './names.js';
import { parseProcStat, serializeRunState, STATE_VERSION, stateFilePath, type RunState } from './state.js';
import { cleanUpRunSync, DEFAULT_LOG_ROOT, DEFAULT_STATE_DIR } from './sweep.js';
import { describeFailure, listNamespacesSync, readProcStat, runCommand, signalGroup, signalPid, type CommandResult } from './system.js';

export interface LabOptions {
  /** What the run is for, shown by listRuns (`test`, `bench`, `demo`). */
  readonly name?: string;
  readonly stateDir?: string;
  /** Logs go to LOGROOT/RUNID/. */
  readonly logRoot?: string;
  /** Keep the log folder after clean-up. destroy({ keepLogs }) decides per call too. */
  readonly keepLogs?: boolean;
  /** Upper bound on namespaces in this run (switch included). */
  readonly maxNamespaces?: number;
}

export interface LinkEnd {
  /** Interface name on the host, ≤ 15 characters; default: the first free eth<n>. */
  readonly ifname?: string;
  /** `address/prefix` from 198.18.0.0/15 or 2001:db8::/32. */
  readonly addresses?: readonly string[];
}

export interface Attachment {
  readonly host: LabHost;
  readonly bridge: LabBridge;
  readonly ifname: string;
  /** The veth end on the bridge, in the switch namespace. */
  readonly port: string;
}

export interface PointToPoint {
  readonly a: { readonly host: LabHost; readonly ifname: string };
  readonly b: { readonly host: LabHost; readonly ifname: string };
}

export interface DestroyReport {
  readonly runId: string;
  readonly namespaces: readonly string[];
  readonly processes: readonly { readonly name: string; readonly pid: number; readonly code: number | null; readonly signal: NodeJS.Signals | null }[];
  readonly logDir: string;
  readonly logsKept: boolean;
}

export class LabError extends Error {
  override name = 'LabError';
}

/** Every lab of this process that is not destroyed yet: the exit and signal handlers clean them up. */
const liveLabs = new Set<Lab>();
const SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function cleanUpAllSync(): void {
  for (const lab of [...liveLabs]) {
    try {
      lab.destroySync();
    } catch {
      // Best effort while the process goes away; the sweeper removes whatever is left.
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  cleanUpAllSync();
  unhookProcess();
  // Our listener replaced the default action (exit); restore it unless someone else handles the signal.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function hookProcess(): void {
  if (liveLabs.size !== 1) return;
  process.on('exit', cleanUpAllSync);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function unhookProcess(): void {
  process.off('exit', cleanUpAllSync);
  for (const s of SIGNALS) process.off(s, onSignal);
}

export class Lab {
  readonly runId: string;
  readonly name: string;
  readonly stateDir: string;
  readonly logDir: string;
  private readonly keepLogs: boolean;
  private readonly maxNamespaces: number;
  private state: RunState;
  private readonly hostsByName = new Map<string, LabHost>();
  private readonly bridgesByName = new Map<string, LabBridge>();
  private readonly processes: LabProcess[] = [];
  private switchReady: Promise<string> | undefined;
  private ports = 0;
  private destroying: Promise<DestroyReport> | undefined;
  private destroyedSync = false;

  private constructor(runId: string, opts: LabOptions, stateDir: string, logDir: string) {
    this.runId = runId;
    this.name = opts.name ?? 'lab';
    this.stateDir = stateDir;
    this.logDir = logDir;
    this.keepLogs = opts.keepLogs ?? false;
    this.maxNamespaces = opts.maxNamespaces ?? 64;
    const stat = parseProcStat(readProcStat(process.pid) ?? '');
    this.state = {
      version: STATE_VERSION,
      runId,
      name: this.name,
      owner: stat ? { pid: process.pid, startTicks: stat.startTicks } : { pid: process.pid },
      startedAt: new Date().toISOString(),
      namespaces: [],
      logDir,
      keepLogs: this.keepLogs,
    };
  }

  /** Starts a run: picks a free run id and records it before anything is created. Needs root. */
  static create(opts: LabOptions = {}): Promise<Lab> {
    // The executor turns any throw below into a rejection.
    return new Promise((resolve) => resolve(Lab.start(opts)));
  }

  private static start(opts: LabOptions): Lab {
    if (process.getuid?.() !== 0) throw new LabError('a lab needs root (it creates network namespaces)');
    const stateDir = opts.stateDir ?? DEFAULT_STATE_DIR;
    const logRoot = opts.logRoot ?? DEFAULT_LOG_ROOT;
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const taken = new Set(listNamespacesSync().map(runIdOfNamespace));
    for (let attempt = 0; attempt < 20; attempt++) {
      const runId = newRunId(randomBytes);
      if (taken.has(runId) || existsSync(stateFilePath(stateDir, runId)) || existsSync(join(logRoot, runId))) continue;
      const lab = new Lab(runId, opts, stateDir, join(logRoot, runId));
      mkdirSync(lab.logDir, { recursive: true });
      lab.writeState();
      liveLabs.add(lab);
      hookProcess();
      return lab;
    }
    throw new LabError('no free run id after 20 attempts');
  }

  get destroyed(): boolean {
    return this.destroying !== undefined || this.destroyedSync;
  }

  get hosts(): readonly LabHost[] {
    return [...this.hostsByName.values()];
  }

  /** A new virtual host: namespace RUNID-NAME with lo up and IPv6 DAD off. */
  async host(name: string, opts: { forwarding?: boolean } = {}): Promise<LabHost> {
    this.assertUsable();
    checkHostName(name);
    if (this.hostsByName.has(name)) throw new LabError(`host ${name} exists already in run ${this.runId}`);
    const ns = namespaceName(this.runId, name);
    const host = new LabHost(this, name, ns);
    this.hostsByName.set(name, host);
    await this.addNamespace(ns, { forwarding: opts.forwarding ?? false });
    return host;
  }

  /** A bridge (a switch) in the run's switch namespace. */
  async bridge(name: string): Promise<LabBridge> {
    this.assertUsable();
    checkInterfaceName(name);
    if (this.bridgesByName.has(name)) throw new LabError(`bridge ${name} exists already in run ${this.runId}`);
    const bridge = new LabBridge(this, name);
    this.bridgesByName.set(name, bridge);
    const sw = await this.switchNamespace();
    for (const argv of cmd.addBridge(sw, name)) await this.must(argv);
    return bridge;
  }

  /** Plugs a host into a bridge with a veth pair: `ifname` on the host, a port on the bridge. */
  async attach(host: LabHost, bridge: LabBridge, end: LinkEnd = {}): Promise<Attachment> {
    this.assertUsable();
    this.assertOwn(host);
    if (bridge.lab !== this) throw new LabError(`bridge ${bridge.name} belongs to another run`);
    const addresses = (end.addresses ?? []).map(parseLabCidr);
    const ifname = host.claimInterface(end.ifname);
    const port = switchPortName(++this.ports);
    const sw = await this.switchNamespace();
    await this.must(cmd.addVeth(host.namespace, ifname, sw, port));
    await this.must(cmd.setMaster(sw, port, bridge.name));
    await this.configure(host, ifname, addresses);
    await this.waitUp(host.namespace, ifname);
    await this.waitUp(sw, port);
    return { host, bridge, ifname, port };
  }

  /** A point-to-point veth pair between two hosts. */
  async link(a: LabHost, b: LabHost, ends: { a?: LinkEnd; b?: LinkEnd } = {}): Promise<PointToPoint> {
    this.assertUsable();
    this.assertOwn(a);
    this.assertOwn(b);
    if (a === b) throw new LabError(`cannot link host ${a.name} to itself`);
    const addrA = (ends.a?.addresses ?? []).map(parseLabCidr);
    const addrB = (ends.b?.addresses ?? []).map(parseLabCidr);
    const ifA = a.claimInterface(ends.a?.ifname);
    const ifB = b.claimInterface(ends.b?.ifname);
    await this.must(cmd.addVeth(a.namespace, ifA, b.namespace, ifB));
    await this.configure(a, ifA, addrA);
    await this.configure(b, ifB, addrB);
    await this.waitUp(a.namespace, ifA);
    await this.waitUp(b.namespace, ifB);
    return { a: { host: a, ifname: ifA }, b: { host: b, ifname: ifB } };
  }

  /**
   * Mounts a filesystem of its own (`bpf`, `cgroup2`) at LOGDIR/mnt/NAME, recorded first so any
   * clean-up unmounts it. Mounted before processes start, it is visible inside every namespace
   * (`ip netns exec` gives a process a fresh /sys, so /sys/fs/bpf and /sys/fs/cgroup are not).
   */
  async mount(fstype: 'bpf' | 'cgroup2', name: string): Promise<string> {
    this.assertUsable();
    checkHostName(name);
    const path = join(this.logDir, 'mnt', name);
    if (this.state.mounts?.includes(path)) throw new LabError(`mount ${name} exists already in run ${this.runId}`);
    mkdirSync(path, { recursive: true });
    this.state = { ...this.state, mounts: [...(this.state.mounts ?? []), path] };
    this.writeState();
    const r = await runCommand(['mount', '-t', fstype, fstype, path], { timeoutMs: 10_000 });
    if (r.code !== 0) throw new LabError(describeFailure(['mount', '-t', fstype, fstype, path], r));
    return path;
  }

  /** A cgroup NAME inside the run's cgroup2 mount `mountPath`, removed at clean-up. */
  cgroup(mountPath: string, name: string): string {
    this.assertUsable();
    checkHostName(name);
    if (!this.state.mounts?.includes(mountPath)) throw new LabError(`${mountPath} is not a mount of run ${this.runId}`);
    const path = join(mountPath, `${this.runId}-${name}`);
    this.state = { ...this.state, cgroups: [...(this.state.cgroups ?? []), path] };
    this.writeState();
    mkdirSync(path);
    return path;
  }

  /**
   * Leaves the run in place when this process exits (`beacon lab --keep`): no exit clean-up, and
   * the sweeper skips it; its processes live on (their output goes to files). `removeKeptRun`
   * takes it down later.
   */
  keep(): void {
    this.assertUsable();
    this.state = { ...this.state, kept: true, keepLogs: true };
    this.writeState();
    for (const p of this.processes) p.detach();
    this.forget();
  }

  /**
   * Stops every process (SIGTERM, then SIGKILL after `graceMs`), deletes every namespace of the
   * run and, unless logs are kept, the log folder. Calling it again returns the first report.
   */
  destroy(opts: { keepLogs?: boolean; graceMs?: number } = {}): Promise<DestroyReport> {
    this.destroying ??= this.tearDown(opts.keepLogs ?? this.keepLogs, opts.graceMs ?? 2_000);
    return this.destroying;
  }

  /** Synchronous clean-up for 'exit' and signal handlers: SIGKILL, no grace. */
  destroySync(): void {
    if (this.destroyedSync) return;
    this.destroyedSync = true;
    for (const p of this.processes) p.kill('SIGKILL');
    cleanUpRunSync(this.state, this.stateDir, this.keepLogs);
    this.forget();
  }

  private async tearDown(keepLogs: boolean, graceMs: number): Promise<DestroyReport> {
    const processes = await Promise.all(this.processes.map(async (p) => ({ name: p.name, pid: p.pid, ...(await p.stop(graceMs)) })));
    if (this.destroyedSync) return { runId: this.runId, namespaces: [], processes, logDir: this.logDir, logsKept: this.keepLogs };
    this.destroyedSync = true;
    const report = cleanUpRunSync(this.state, this.stateDir, keepLogs);
    this.forget();
    const failed = report.namespaces.filter((n) => !n.deleted);
    if (failed.length > 0) throw new LabError(`run ${this.runId}: could not delete ${failed.map((n) => `${n.namespace} (${n.error ?? '?'})`).join(', ')}`);
    return { runId: this.runId, namespaces: report.namespaces.map((n) => n.namespace), processes, logDir: this.logDir, logsKept: !report.logsRemoved };
  }

  private forget(): void {
    liveLabs.delete(this);
    if (liveLabs.size === 0) unhookProcess();
  }

  private assertUsable(): void {
    if (this.destroyed) throw new LabError(`lab run ${this.runId} is destroyed`);
  }

  private assertOwn(host: LabHost): void {
    if (host.lab !== this) throw new LabError(`host ${host.name} belongs to another run`);
  }

  private writeState(): void {
    // Write then rename: a reader (the sweeper) never sees half a file.
    const path = stateFilePath(this.stateDir, this.runId);
    writeFileSync(`${path}.tmp`, serializeRunState(this.state), { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
  }

  private async addNamespace(ns: string, opts: cmd.NamespaceOptions): Promise<void> {
    if (this.state.namespaces.length >= this.maxNamespaces) throw new LabError(`run ${this.runId} has ${this.maxNamespaces} namespaces already (maxNamespaces)`);
    // Recorded before it exists: if we die between the two, the sweeper still finds it.
    this.state = { ...this.state, namespaces: [...this.state.namespaces, ns] };
    this.writeState();
    await this.must(cmd.addNamespace(ns));
    for (const argv of cmd.setUpNamespace(ns, opts)) await this.must(argv);
  }

  private switchNamespace(): Promise<string> {
    this.switchReady ??= (async () => {
      const sw = switchNamespace(this.runId);
      await this.addNamespace(sw, { isSwitch: true });
      return sw;
    })();
    return this.switchReady;
  }

  private async configure(host: LabHost, ifname: string, addresses: readonly LabCidr[]): Promise<void> {
    for (const a of addresses) await this.must(cmd.addAddress(host.namespace, ifname, a));
    await this.must(cmd.setLink(host.namespace, ifname, 'up'));
  }

  /** @internal Waits (at most `timeoutMs`) until the link passes packets or has no carrier; returns its state. */
  async settleLink(ns: string, ifname: string, timeoutMs = 3_000): Promise<cmd.LinkState> {
    const deadline = Date.now() + timeoutMs;
    let state: cmd.LinkState | undefined;
    for (let i = 0; i < 1_000; i++) {
      const r = await this.run(cmd.showLink(ns, ifname));
      state = r.code === 0 ? cmd.parseLinkState(r.stdout) : undefined;
      if (state === undefined) throw new LabError(describeFailure(cmd.showLink(ns, ifname), r));
      if (cmd.linkSettled(state) || Date.now() >= deadline) break;
      await sleep(10);
    }
    return state!;
  }

  private async waitUp(ns: string, ifname: string): Promise<void> {
    const state = await this.settleLink(ns, ifname);
    if (!state.carrier || !cmd.linkSettled(state)) throw new LabError(`${ns}/${ifname} did not come up: ${JSON.stringify(state)}`);
  }

  /** Runs a command of this run (refusing any outside its namespaces) and records it in lab.log. */
  async run(argv: cmd.Argv, opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<CommandResult> {
    cmd.assertInRun(argv, this.runId);
    const r = await runCommand(argv, opts);
    try {
      appendFileSync(join(this.logDir, 'lab.log'), `$ ${argv.join(' ')}\n${r.code === 0 ? '' : `# ${describeFailure(argv, r)}\n`}`);
    } catch {
      // The log is a help, not a requirement (the folder may be gone during destroy).
    }
    return r;
  }

  /** Runs a command that must succeed. */
  async must(argv: cmd.Argv, timeoutMs?: number): Promise<CommandResult> {
    const r = await this.run(argv, timeoutMs === undefined ? {} : { timeoutMs });
    if (r.code !== 0) throw new LabError(describeFailure(argv, r));
    return r;
  }

  /** @internal */
  track(p: LabProcess): void {
    this.processes.push(p);
  }
}

export class LabBridge {
  constructor(
    readonly lab: Lab,
    readonly name: string,
  ) {}
}

export interface ExecOptions {
  readonly timeoutMs?: number;
  /** Added to the environment of this process. */
  readonly env?: Readonly<Record<string, string>>;
  readonly input?: string;
}

export interface PingResult {
  readonly reachable: boolean;
  /** `icmp` when ping(8) is installed; otherwise `tcp`: a SYN answered by SYN-ACK or RST proves the round trip. */
  readonly method: 'icmp' | 'tcp';
  readonly detail: string;
}

/** Whether ping(8) is on PATH; looked up once. */
let pingPath: string | null | undefined;
function findPing(): string | null {
  pingPath ??= (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter).map((d) => join(d, 'ping')).find((p) => existsSync(p)) ?? null;
  return pingPath;
}

// Connects to the discard port: "connected" or ECONNREFUSED (an RST) both mean the target answered.
const TCP_PROBE = `const net=require('net');const [a,t]=process.argv.slice(1);const done=(r)=>{process.stdout.write(r);process.exit(0)};
const s=net.connect({host:a,port:9});s.setTimeout(Number(t),()=>done('timeout'));s.on('connect',()=>done('connected'));s.on('error',(e)=>done(e.code||e.message));`;

export class LabHost {
  private readonly interfaces = new Set<string>(['lo']);

  constructor(
    readonly lab: Lab,
    readonly name: string,
    readonly namespace: string,
  ) {}

  /** Runs `cmd args` inside the host; never rejects on a failing command (see `code`). Default limit 10 s. */
  exec(command: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<CommandResult> {
    return this.lab.run(cmd.execIn(this.namespace, command, args), { timeoutMs: opts.timeoutMs ?? 10_000, env: { ...process.env, ...opts.env }, ...(opts.input !== undefined ? { input: opts.input } : {}) });
  }

  /** Starts a long-running process inside the host; stdout and stderr go to LOGDIR/NAME.log. */
  spawn(name: string, command: string, args: readonly string[] = [], opts: { env?: Readonly<Record<string, string>>; cwd?: string } = {}): Promise<LabProcess> {
    return new Promise((resolve, reject) => {
      if (this.lab.destroyed) throw new LabError(`lab run ${this.lab.runId} is destroyed`);
      checkProcessName(name);
      const logPath = join(this.lab.logDir, `${name}.log`);
      if (existsSync(logPath)) throw new LabError(`a process named ${name} exists already in run ${this.lab.runId}`);
      const argv = cmd.execIn(this.namespace, command, args);
      cmd.assertInRun(argv, this.lab.runId);
      const fd = openSync(logPath, 'a');
      try {
        // Detached: its own process group, so kill() reaches its children too. The log is a file,
        // not a pipe, so output is kept even if this process dies first.
        const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', fd, fd], detached: true, env: { ...process.env, ...opts.env }, ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}) });
        child.once('error', reject);
        child.once('spawn', () => {
          const p = new LabProcess(name, child.pid!, logPath, `${command} ${args.join(' ')}`.trim(), child);
          this.lab.track(p);
          resolve(p);
        });
      } finally {
        closeSync(fd);
      }
    });
  }

  async addAddress(ifname: string, address: string): Promise<void> {
    const cidr = parseLabCidr(address);
    checkInterfaceName(ifname);
    await this.lab.must(cmd.addAddress(this.namespace, ifname, cidr));
  }

  /** A route inside the host. `destination` is `default` or a lab CIDR; `via` a lab address. */
  async addRoute(destination: string, opts: { via?: string; dev?: string }): Promise<void> {
    const viaFamily = opts.via === undefined ? undefined : checkLabIp(opts.via);
    if (opts.dev !== undefined) checkInterfaceName(opts.dev);
    let family: 4 | 6;
    if (destination === 'default') {
      if (viaFamily === undefined) throw new LabError('a default route needs `via` (it tells the address family)');
      family = viaFamily;
    } else {
      family = parseLabCidr(destination).family;
      if (viaFamily !== undefined && viaFamily !== family) throw new LabError(`route ${destination} via ${opts.via}: address families differ`);
    }
    if (opts.via === undefined && opts.dev === undefined) throw new LabError(`route ${destination} needs \`via\` or \`dev\``);
    await this.lab.must(cmd.addRoute(this.namespace, { family, destination, ...opts }));
  }

  /** Sets a link up or down; after `up`, waits until it passes packets (or has no carrier). Returns its state. */
  async setLink(ifname: string, state: 'up' | 'down'): Promise<cmd.LinkState> {
    checkInterfaceName(ifname);
    await this.lab.must(cmd.setLink(this.namespace, ifname, state));
    return this.lab.settleLink(this.namespace, ifname);
  }

  /**
   * One probe to a lab address, bounded by `timeoutMs` (default 1 s). ICMP echo when ping(8) is
   * installed, else (or with `method: 'tcp'`) a TCP SYN to port 9.
   */
  async ping(address: string, opts: { timeoutMs?: number; method?: 'icmp' | 'tcp' } = {}): Promise<PingResult> {
    checkLabIp(address);
    const timeoutMs = opts.timeoutMs ?? 1_000;
    const ping = opts.method === 'tcp' ? null : findPing();
    if (opts.method === 'icmp' && ping === null) throw new LabError('ping(8) is not installed (iputils-ping); use method "tcp"');
    if (ping !== null) {
      const r = await this.exec(ping, ['-c1', '-n', `-W${Math.max(1, Math.ceil(timeoutMs / 1000))}`, address], { timeoutMs: timeoutMs + 2_000 });
      return { reachable: r.code === 0, method: 'icmp', detail: (r.stdout + r.stderr).trim() };
    }
    const r = await this.lab.run(cmd.execIn(this.namespace, process.execPath, ['-e', TCP_PROBE, address, String(timeoutMs)]), {
      timeoutMs: timeoutMs + 5_000,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
    const outcome = r.stdout.trim() || describeFailure(['node', 'tcp-probe', address], r);
    return { reachable: outcome === 'connected' || outcome === 'ECONNREFUSED', method: 'tcp', detail: outcome };
  }

  /** @internal Reserves an interface name on this host (the first free eth<n> by default). */
  claimInterface(ifname: string | undefined): string {
    const name = ifname ?? nextInterfaceName(this.interfaces);
    checkInterfaceName(name);
    if (this.interfaces.has(name)) throw new LabError(`host ${this.name} has an interface ${name} already`);
    this.interfaces.add(name);
    return name;
  }
}

export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export class LabProcess {
  /** Resolves when the process has ended; never rejects. */
  readonly exited: Promise<ProcessExit>;
  private ended: ProcessExit | undefined;

  constructor(
    readonly name: string,
    readonly pid: number,
    readonly logPath: string,
    readonly command: string,
    private readonly child: ChildProcess,
  ) {
    // A failed kill() is reported as 'error' on the child; kill() already returns false for it.
    child.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.ended = { code, signal };
        resolve(this.ended);
      });
    });
  }

  get running(): boolean {
    return this.ended === undefined;
  }

  /** @internal Lets this process exit while the child runs on (a kept lab). */
  detach(): void {
    this.child.unref();
  }

  /** What the process wrote to stdout and stderr so far. */
  logs(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** Signals the process group (the process and whatever it started). False when it has ended. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    if (!this.running) return false;
    return signalGroup(this.pid, signal) || signalPid(this.pid, signal);
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves with how it ended. */
  async stop(graceMs = 2_000): Promise<ProcessExit> {
    if (this.ended) return this.ended;
    this.kill('SIGTERM');
    const graceful = await Promise.race([this.exited, sleep(graceMs, undefined, { ref: false })]);
    if (graceful) return graceful;
    this.kill('SIGKILL');
    const killed = await Promise.race([this.exited, sleep(5_000, undefined, { ref: false })]);
    return killed ?? { code: null, signal: null };
  }

  /** Waits until the log matches `pattern`; rejects with the log's tail on timeout or early exit. */
  async waitForLog(pattern: RegExp | string, timeoutMs = 10_000): Promise<string> {
    const matches = (text: string) => (typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text));
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 10_000; i++) {
      const text = this.logs();
      if (matches(text)) return text;
      if (!this.running) throw new LabError(`${this.name} exited (${JSON.stringify(this.ended)}) before its log matched ${String(pattern)}; log tail:\n${text.slice(-2000)}`);
      if (Date.now() >= deadline) throw new LabError(`${this.name}: log did not match ${String(pattern)} within ${timeoutMs} ms; log tail:\n${text.slice(-2000)}`);
      await sleep(50);
    }
    throw new LabError(`${this.name}: gave up waiting for ${String(pattern)}`);
  }
}
