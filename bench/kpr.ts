// KPR datapath benchmark (`npm run bench:kpr`; `-- --sizes 1,1000`, `-- --seconds 3`,
// `-- --peers iptables,nftables`, `-- --json` for the JSON line only). A benchmark, not a test: it
// prints figures and never fails on a timing.
//
// Topology (lab namespaces, 198.18.0.0/15 only):
//   client 198.18.0.2 ── 198.18.0.1 node (forwarding) 198.18.1.1 ── 198.18.1.2 backend-a :8080
//                                                      198.18.2.1 ── 198.18.2.2 backend-b :8080
// Service i has the frontend 198.19.(i>>8 & 255).(i & 255) port 80 + ⌊i / 65,536⌋ (so 100,000
// fit in 198.19.0.0/16) and both backends; the client routes 198.19.0.0/16 to the node, the
// backends route back through it, so replies are un-NATed by the node's conntrack.
//
// For each S and each peer in turn on the node: program S services from empty, then new TCP
// connections per second and latency to the worst-placed service (the last in KUBE-SERVICES) with
// wrk (`Connection: close`: one request per connection) and, beside it, a probe that times
// connect() → reply (the NAT decision is made on the SYN), then a few changes of one service (a
// backend replaced by an address nobody serves, and back), then tear-down. Each step is bounded
// by --step-timeout. The backends answer with a small C responder (compiled here) so that the
// load generator and the node, not the backends, set the pace; CPU use of each side is reported.
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Lab, type LabHost, type LabProcess } from '../lab/index.js';
import {
  IPTABLES_EMPTY, IPVS_DUMMY, NFT_EMPTY, ipv4, iptablesChange, iptablesRuleset, iptablesServiceRule, ipvsChange, ipvsDummyAddresses, ipvsRestoreText,
  nftChange, nftRuleset, parseChildrenCpuSeconds, parseWrk, type BenchService, type NodeShell, type Peer, type PerPacket,
} from './kpr-peers.js';
import { beaconPeer } from './kpr-beacon.js';
import { median, percentile } from './measure.js';

const { values: flags } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1,1000,10000,100000' },
    seconds: { type: 'string', default: '3' },
    peers: { type: 'string', default: 'iptables,nftables,ipvs,beacon' },
    /** wrk's concurrent connections (one thread): a bounded load, not an open-ended flood. */
    connections: { type: 'string', default: '16' },
    'step-timeout': { type: 'string', default: '240' },
    json: { type: 'boolean', default: false },
  },
});
const SIZES = flags.sizes.split(',').map(Number);
const SECONDS = Number(flags.seconds);
const CONNECTIONS = Number(flags.connections);
const STEP_TIMEOUT_MS = Number(flags['step-timeout']) * 1000;
if (SIZES.some((s) => !Number.isInteger(s) || s < 1 || s > 65_536 * 100)) throw new Error(`--sizes: whole numbers from 1 to 6,553,600, not ${flags.sizes}`);
if (!(SECONDS >= 1 && SECONDS <= 60)) throw new Error('--seconds: 1 to 60');
if (!(CONNECTIONS >= 1 && CONNECTIONS <= 256)) throw new Error('--connections: 1 to 256');
if (!(STEP_TIMEOUT_MS >= 1000)) throw new Error('--step-timeout: at least 1 (seconds)');
/** Changes per point: forward and back, so the ruleset ends as programmed. Bounded in count and time. */
const CHANGES = 6;
const CHANGE_BUDGET_MS = 60_000;
const RUN_DEADLINE = Date.now() + 60 * 60_000;
const RESPONDER_PORT = 8080;

// ---- workload ---------------------------------------------------------------------------------------

const BACKENDS = ['198.18.1.2', '198.18.2.2'];
const VIP_BASE = (198 << 24) | (19 << 16);
const service = (i: number, backends: readonly string[] = BACKENDS): BenchService => ({
  namespace: `bench-${Math.floor(i / 1000)}`, name: `svc-${i}`, portName: 'http',
  address: ipv4(VIP_BASE + (i % 65_536)), port: 80 + Math.floor(i / 65_536), targetPort: RESPONDER_PORT, backends,
});
/** Change r: the middle service's second backend becomes 198.18.3.(r+1) (routed to the node, never served), then returns. */
const changedBackends = (r: number): string[] => [BACKENDS[0]!, `198.18.3.${r + 1}`];

// ---- the peers --------------------------------------------------------------------------------------

/** A command of a peer: its output, or an error naming the command. */
async function must(node: NodeShell, command: string, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await node.run(command, args, opts);
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')}: ${r.timedOut ? 'timed out' : `exit ${r.code ?? r.signal}`}: ${r.stderr.trim().split('\n')[0] ?? ''}`);
  return r.stdout;
}
const unless = async (node: NodeShell, command: string, args: readonly string[], reason: string): Promise<string | undefined> => {
  const r = await node.run(command, args, { timeoutMs: 10_000 });
  return r.code === 0 ? undefined : `${reason} (${command}: ${(r.stderr.trim() || `exit ${r.code}`).split('\n')[0]})`;
};

/** `iptables` (Debian's default, the nf_tables backend) or `iptables-legacy` (x_tables). */
function iptablesPeer(iptables: 'iptables' | 'iptables-legacy'): Peer {
  // kube-proxy keeps the KUBE-SERVICES rules of its last sync; so does this peer, for the partial sync.
  let servicesRules: string[] = [];
  return {
    name: iptables,
    unavailable: (node) => unless(node, iptables, ['-t', 'nat', '-S'], `${iptables}: not usable here`),
    async program(node, services, timeoutMs) {
      servicesRules = services.map(iptablesServiceRule);
      await must(node, `${iptables}-restore`, [], { input: iptablesRuleset(services).text, timeoutMs });
    },
    async change(node, from, to, all, timeoutMs) {
      const rules = servicesRules.length === all.length ? servicesRules : all.map(iptablesServiceRule);
      await must(node, `${iptables}-restore`, ['--noflush'], { input: iptablesChange(from, to, rules), timeoutMs });
    },
    async teardown(node, timeoutMs) {
      servicesRules = [];
      await must(node, `${iptables}-restore`, [], { input: IPTABLES_EMPTY, timeoutMs });
    },
  };
}

const nftablesPeer: Peer = {
  name: 'nftables',
  unavailable: (node) => unless(node, 'nft', ['list', 'tables'], 'nftables: not usable here'),
  program: async (node, services, timeoutMs) => void (await must(node, 'nft', ['-f', '-'], { input: nftRuleset(services), timeoutMs })),
  change: async (node, from, to, _all, timeoutMs) => void (await must(node, 'nft', ['-f', '-'], { input: nftChange(from, to), timeoutMs })),
  teardown: async (node, timeoutMs) => void (await must(node, 'nft', ['-f', '-'], { input: NFT_EMPTY, timeoutMs })),
};

const ipvsPeer: Peer = {
  name: 'ipvs',
  unavailable: (node) => unless(node, 'ipvsadm', ['-Ln'], 'IPVS: not available on this kernel'),
  async program(node, services, timeoutMs) {
    await must(node, 'ip', ['link', 'add', IPVS_DUMMY, 'type', 'dummy']);
    await must(node, 'ip', ['-batch', '-'], { input: ipvsDummyAddresses(services), timeoutMs });
    await must(node, 'ipvsadm-restore', [], { input: ipvsRestoreText(services), timeoutMs });
  },
  change: async (node, from, to, _all, timeoutMs) => void (await must(node, 'ipvsadm-restore', [], { input: ipvsChange(from, to), timeoutMs })),
  async teardown(node, timeoutMs) {
    await must(node, 'ipvsadm', ['-C'], { timeoutMs });
    // The dummy interface is missing when programming failed before it was made.
    if ((await node.run('ip', ['link', 'show', IPVS_DUMMY])).code === 0) await must(node, 'ip', ['link', 'del', IPVS_DUMMY], { timeoutMs });
  },
};

/**
 * What --peers may name: a Peer, or the reason it cannot run (printed, never silently dropped).
 * Beacon's tc datapath (issue 7 §1) replaces its string with a Peer once it exists; ratios are
 * against `iptables`.
 */
const PEERS: Record<string, Peer | string> = {
  iptables: iptablesPeer('iptables'),
  'iptables-legacy': iptablesPeer('iptables-legacy'),
  nftables: nftablesPeer,
  ipvs: ipvsPeer,
  beacon: beaconPeer(),
};

// ---- the responder ------------------------------------------------------------------------------------
// One request per connection, then close: the shortest path through accept/recv/send/close.
// TCP_DEFER_ACCEPT wakes accept() only once the request has arrived, so one thread never waits on
// a slow client; alarm() ends it even if the harness dies without cleaning up.
const RESPONDER_C = `#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (argc != 3) return 2;
  alarm((unsigned)atoi(argv[2]));
  signal(SIGPIPE, SIG_IGN);
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(s, IPPROTO_TCP, TCP_DEFER_ACCEPT, &one, sizeof one);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1])) };
  if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 4096)) { perror("listen"); return 1; }
  printf("listening\\n");
  fflush(stdout);
  static const char reply[] = "HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok";
  char buf[2048];
  for (;;) {
    int c = accept(s, 0, 0);
    if (c < 0) continue;
    if (recv(c, buf, sizeof buf, 0) > 0) send(c, reply, sizeof reply - 1, MSG_NOSIGNAL);
    close(c);
  }
}
`;

// ---- measuring ----------------------------------------------------------------------------------------

const CLOCK_TICKS = 100; // USER_HZ: the unit of /proc/PID/stat and /proc/stat times on Linux.

/** CPU seconds of a process so far (utime + stime, fields 14 and 15 of /proc/PID/stat). */
function processCpuSeconds(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}
/** CPU seconds of the whole machine so far: busy (all but idle and iowait) and in softirq (where veth forwarding and NAT run), from /proc/stat. */
function machineCpuSeconds(): { busy: number; softirq: number } {
  const [, ...times] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
  const total = times.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: (total - times[3]! - times[4]!) / CLOCK_TICKS, softirq: times[6]! / CLOCK_TICKS };
}

// wrk starts its latency clock once connected, but the NAT decision is made on the SYN: this probe
// runs beside wrk (so it sees the same load) and times each connection from connect() to the end
// of the reply, one connection at a time, at most PROBE_CONNECTIONS or --seconds.
const PROBE_CONNECTIONS = 5_000;
const CONNECT_PROBE = `const net=require('net');const [host,port,seconds,max]=process.argv.slice(1);const deadline=Date.now()+seconds*1000;
const total=[];let errors=0;const one=()=>new Promise((done)=>{const t0=process.hrtime.bigint();let ok=false;const s=net.connect({host,port:+port});
s.setTimeout(2000,()=>{s.destroy();done();});s.on('connect',()=>{ok=true;s.end('GET / HTTP/1.1\\r\\nHost: bench\\r\\nConnection: close\\r\\n\\r\\n');});s.on('data',()=>{});
s.on('end',()=>{if(ok)total.push(Number(process.hrtime.bigint()-t0)/1000);s.destroy();done();});s.on('close',()=>done());s.on('error',()=>{errors++;done();});});
(async()=>{for(let i=0;i<max&&Date.now()<deadline;i++)await one();process.stdout.write(JSON.stringify({total,errors}));})();`;

interface Load {
  connectionsPerSecond: number;
  /** wrk: request written → reply read, on connections already set up. */
  p50Us: number;
  p99Us: number;
  /** The probe: connect() → reply read, one connection at a time beside wrk. */
  probe: { n: number; p50Us: number; p99Us: number; errors: number };
  errors: number;
  /** Cores busy during the point: wrk (client), both responders (backends), softirq, the whole machine (other users included). */
  cpu: { client: number; backends: number; softirq: number; machine: number };
}

// Client ports: each load point gets a window of its own. With Connection: close the backend closes
// first and keeps the 4-tuple in TIME_WAIT, and the node's conntrack keeps its entry 120 s; a port
// reused by a later point towards another frontend then meets a stale entry (the reply tuple is
// taken, or the backend's TIME_WAIT socket rejects the SYN) and the SYN is retried after 1 s.
// Reuse within a point (same frontend) is fine: conntrack reopens the entry.
const PORT_SPAN = [1024, 65_535] as const;
const portWindows = { count: 1, next: 0 };
function nextPortRange(): string {
  const size = Math.floor((PORT_SPAN[1] - PORT_SPAN[0] + 1) / portWindows.count);
  const first = PORT_SPAN[0] + (portWindows.next++ % portWindows.count) * size;
  return `${first} ${first + size - 1}`;
}

async function measureLoad(client: LabHost, responders: readonly LabProcess[], target: string): Promise<Load> {
  await client.lab.must(['ip', 'netns', 'exec', client.namespace, 'sysctl', '-q', '-w', `net.ipv4.ip_local_port_range=${nextPortRange()}`]);
  const backendsCpu = (): number => responders.reduce((sum, p) => sum + processCpuSeconds(p.pid), 0);
  const [address, port] = target.split(':') as [string, string];
  const timeoutMs = SECONDS * 1000 + 30_000;
  const before = { backends: backendsCpu(), machine: machineCpuSeconds(), at: performance.now() };
  const [r, p] = await Promise.all([
    // sh's \`times\` gives wrk's CPU time (the shell's children) without racing its exit for /proc.
    client.exec('sh', ['-c', 'wrk "$@"; status=$?; times; exit $status', 'wrk', '-t1', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '--timeout', '2s', '--latency', '-H', 'Connection: close', `http://${target}/`], { timeoutMs }),
    client.exec(process.execPath, ['-e', CONNECT_PROBE, address, port, String(SECONDS), String(PROBE_CONNECTIONS)], { timeoutMs }),
  ]);
  const after = { backends: backendsCpu(), machine: machineCpuSeconds(), at: performance.now() };
  const wall = (after.at - before.at) / 1000;
  if (r.code !== 0) throw new Error(`wrk: exit ${r.code ?? r.signal}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
  if (p.code !== 0) throw new Error(`connect probe: exit ${p.code ?? p.signal}: ${p.stderr.trim().slice(0, 300)}`);
  const probe = JSON.parse(p.stdout) as { total: number[]; errors: number };
  const wrk = parseWrk(r.stdout);
  if (wrk.requests === 0) throw new Error(`wrk: no request answered (${wrk.errors} errors): the frontend is not reachable`);
  return {
    connectionsPerSecond: wrk.requestsPerSecond, p50Us: wrk.latencyUs.p50, p99Us: wrk.latencyUs.p99, errors: wrk.errors,
    probe: { n: probe.total.length, p50Us: percentile(probe.total, 0.5), p99Us: percentile(probe.total, 0.99), errors: probe.errors },
    cpu: {
      client: parseChildrenCpuSeconds(r.stdout) / wrk.seconds,
      backends: (after.backends - before.backends) / wall,
      softirq: (after.machine.softirq - before.machine.softirq) / wall,
      machine: (after.machine.busy - before.machine.busy) / wall,
    },
  };
}

type Step = { ms: number } | { error: string };
/** Runs one step within the step timeout; a step that overruns is reported as such, not thrown. */
async function bounded(f: () => Promise<void>, timeoutMs = STEP_TIMEOUT_MS): Promise<Step> {
  if (Date.now() > RUN_DEADLINE) return { error: 'skipped: the run deadline (60 min) passed' };
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const overrun = new Promise<'overrun'>((resolve) => (timer = setTimeout(() => resolve('overrun'), timeoutMs + 5_000)));
  try {
    const outcome = await Promise.race([f(), overrun]);
    const ms = performance.now() - t0;
    return outcome === 'overrun' || ms >= timeoutMs ? { error: `did not finish in ${timeoutMs / 1000} s` } : { ms };
  } catch (e) {
    const ms = performance.now() - t0;
    return { error: ms >= timeoutMs ? `did not finish in ${timeoutMs / 1000} s` : `failed: ${(e as Error).message}` };
  } finally {
    clearTimeout(timer);
  }
}

interface PointResult {
  peer: string;
  services: number;
  program: Step;
  load?: Load | { error: string };
  change?: { n: number; medianMs: number; maxMs: number } | { error: string };
  teardown?: Step;
  perPacket?: PerPacket | { error: string };
}

const log = (line = ''): void => {
  if (!flags.json) process.stdout.write(`${line}\n`);
};
const progress = (what: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${what}\n`);
};

async function measurePeer(peer: Peer, S: number, node: NodeShell, client: LabHost, responders: readonly LabProcess[]): Promise<PointResult> {
  const services = Array.from({ length: S }, (_, i) => service(i));
  progress(`${peer.name}: programming ${S.toLocaleString('en-US')} services`);
  const result: PointResult = { peer: peer.name, services: S, program: await bounded(() => peer.program(node, services, STEP_TIMEOUT_MS)) };
  try {
    if ('error' in result.program) return result;
    if (peer.perPacket) {
      try {
        result.perPacket = peer.perPacket();
      } catch (e) {
        result.perPacket = { error: (e as Error).message };
      }
    }
    const worst = services[S - 1]!;
    progress(`${peer.name}: load on ${worst.address}:${worst.port} for ${SECONDS} s`);
    result.load = await measureLoad(client, responders, `${worst.address}:${worst.port}`).catch((e: Error) => ({ error: e.message }));

    const middle = Math.floor(S / 2);
    const times: number[] = [];
    const started = performance.now();
    for (let r = 0; r < CHANGES && performance.now() - started < CHANGE_BUDGET_MS; r++) {
      // Even r: to a fresh backend; odd r: back to the pair, so the ruleset ends where it started.
      const from = r % 2 === 0 ? services[middle]! : service(middle, changedBackends(r - 1));
      const to = r % 2 === 0 ? service(middle, changedBackends(r)) : services[middle]!;
      const step = await bounded(() => peer.change(node, from, to, services, STEP_TIMEOUT_MS));
      if ('error' in step) {
        result.change = step;
        break;
      }
      times.push(step.ms);
    }
    result.change ??= { n: times.length, medianMs: median(times), maxMs: Math.max(...times) };
    return result;
  } finally {
    progress(`${peer.name}: tear-down`);
    result.teardown = await bounded(() => peer.teardown(node, STEP_TIMEOUT_MS));
  }
}

// ---- run ----------------------------------------------------------------------------------------------

const loadAtStart = loadavg();
const requested = flags.peers.split(',').map((p) => p.trim()).filter(Boolean);
for (const p of requested) if (!(p in PEERS)) throw new Error(`--peers: unknown peer ${p} (known: ${Object.keys(PEERS).join(', ')})`);

const lab = await Lab.create({ name: 'bench' });
const results: PointResult[] = [];
const unavailable: Record<string, string> = {};
let baseline: Load | undefined;
let execOverheadMs = NaN;
try {
  const client = await lab.host('client');
  const node = await lab.host('node', { forwarding: true });
  const backends = [await lab.host('backend-a'), await lab.host('backend-b')];
  const devices = [(await lab.link(client, node, { a: { addresses: ['198.18.0.2/24'] }, b: { addresses: ['198.18.0.1/24'] } })).b.ifname];
  for (const [k, backend] of backends.entries()) {
    devices.push((await lab.link(node, backend, { a: { addresses: [`198.18.${k + 1}.1/24`] }, b: { addresses: [`198.18.${k + 1}.2/24`] } })).a.ifname);
    await backend.addRoute('default', { via: `198.18.${k + 1}.1` });
  }
  await client.addRoute('default', { via: '198.18.0.1' });

  const source = join(lab.logDir, 'responder.c');
  const binary = join(lab.logDir, 'responder');
  writeFileSync(source, RESPONDER_C);
  const cc = await client.exec('gcc', ['-O2', '-Wall', '-o', binary, source], { timeoutMs: 60_000 });
  if (cc.code !== 0) throw new Error(`gcc responder.c: ${cc.stderr}`);
  const lifetime = String(Math.ceil((RUN_DEADLINE - Date.now()) / 1000) + 60);
  const responders = await Promise.all(backends.map((b) => b.spawn(`responder-${b.name}`, binary, [String(RESPONDER_PORT), lifetime])));
  for (const p of responders) await p.waitForLog('listening');

  const shell: NodeShell = { namespace: node.namespace, devices, run: (command, args, opts = {}) => node.exec(command, args, opts) };
  const execTimes: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await must(shell, 'true', []);
    execTimes.push(performance.now() - t0);
  }
  execOverheadMs = median(execTimes);
  const runnable: Peer[] = [];
  for (const name of requested) {
    const peer = PEERS[name]!;
    const reason = typeof peer === 'string' ? peer : await peer.unavailable(shell);
    if (reason === undefined && typeof peer !== 'string') runnable.push(peer);
    else {
      unavailable[name] = reason!;
      progress(reason!);
    }
  }
  portWindows.count = 1 + SIZES.length * runnable.length;
  progress('baseline: client → backend-a directly, no rules on the node');
  baseline = await measureLoad(client, responders, `${BACKENDS[0]}:${RESPONDER_PORT}`);

  const gaveUp = new Map<string, string>();
  for (const S of SIZES) {
    for (const peer of runnable) {
      const earlier = gaveUp.get(peer.name);
      if (earlier !== undefined) {
        results.push({ peer: peer.name, services: S, program: { error: `skipped: ${earlier} at a smaller size` } });
        continue;
      }
      const point = await measurePeer(peer, S, shell, client, responders);
      results.push(point);
      if ('error' in point.program) gaveUp.set(peer.name, point.program.error);
      if (point.teardown && 'error' in point.teardown) throw new Error(`${peer.name} tear-down at ${S}: ${point.teardown.error}; the node is not clean, stopping`);
    }
  }
} finally {
  for (const peer of Object.values(PEERS)) if (typeof peer !== 'string') await peer.close?.().catch((e: Error) => process.stderr.write(`${peer.name} close: ${e.message}\n`));
  await lab.destroy({ graceMs: 500 }).catch((e: Error) => {
    process.stderr.write(`lab clean-up: ${e.message}\n`);
    lab.destroySync();
  });
}

// ---- report -------------------------------------------------------------------------------------------

const k = (n: number): string => n.toLocaleString('en-US');
const ms = (v: number): string => (v < 10 ? `${v.toFixed(2)} ms` : `${k(Math.round(v))} ms`);
const us = (v: number): string => (v < 1000 ? `${Math.round(v)} µs` : `${(v / 1000).toFixed(2)} ms`);
const step = (s: Step | undefined): string => (s === undefined ? '–' : 'ms' in s ? ms(s.ms) : s.error);
const x = (v: number): string => `${v.toFixed(v < 10 ? 2 : 0)}×`;
const loadOf = (r: PointResult): Load | undefined => (r.load && !('error' in r.load) ? r.load : undefined);
const changeOf = (r: PointResult): number | undefined => (r.change && !('error' in r.change) && r.change.n > 0 ? r.change.medianMs : undefined);
const programOf = (r: PointResult): number | undefined => ('ms' in r.program ? r.program.ms : undefined);
/** Peer against iptables at the same S; > 1 means the peer is better (faster, more connections, lower p99). */
function ratios(r: PointResult): string {
  const ipt = results.find((p) => p.peer === 'iptables' && p.services === r.services);
  if (!ipt || ipt === r) return '–';
  const pair = (a: number | undefined, b: number | undefined, f: (a: number, b: number) => number): string => (a === undefined || b === undefined ? '–' : x(f(a, b)));
  const [l, li] = [loadOf(r), loadOf(ipt)];
  return [
    `program ${pair(programOf(r), programOf(ipt), (a, b) => b / a)}`,
    `change ${pair(changeOf(r), changeOf(ipt), (a, b) => b / a)}`,
    `conn/s ${pair(l?.connectionsPerSecond, li?.connectionsPerSecond, (a, b) => a / b)}`,
    `p99 ${pair(l?.probe.p99Us, li?.probe.p99Us, (a, b) => b / a)}`,
  ].join(', ');
}
const latencyText = (l: Load): string => `${us(l.probe.p50Us)} / ${us(l.probe.p99Us)} (n=${k(l.probe.n)}) | ${us(l.p50Us)} / ${us(l.p99Us)}`;
const cpuText = (l: Load): string => [l.cpu.client, l.cpu.backends, l.cpu.softirq, l.cpu.machine].map((c) => c.toFixed(2)).join(' / ');

const loadAtEnd = loadavg();
log(`KPR datapath benchmark, node ${process.version}, ${availableParallelism()} CPUs (${cpus()[0]?.model ?? 'unknown'}), load average ${loadAtStart.map((l) => l.toFixed(2)).join(' ')} at the start`);
log(`load: wrk 1 thread, ${CONNECTIONS} connections, Connection: close, ${SECONDS} s per point, to the last service; 2 backends (C responder, one thread each)`);
for (const reason of Object.values(unavailable)) log(reason);
log(`starting a command in the node namespace (ip netns exec true, median of 5) takes ${ms(execOverheadMs)}: part of every program, change and tear-down figure`);
if (baseline) {
  log(`baseline (client → backend-a directly, no NAT): ${k(Math.round(baseline.connectionsPerSecond))} conn/s, connect → reply p50 / p99 ${us(baseline.probe.p50Us)} / ${us(baseline.probe.p99Us)}, wrk p50 / p99 ${us(baseline.p50Us)} / ${us(baseline.p99Us)}, CPU wrk/backends/softirq/machine ${cpuText(baseline)} cores`);
}
log();
log('| services | peer | program from empty | change one service (median, max) | tear-down | new conn/s (wrk) | connect → reply p50 / p99 (probe) | wrk p50 / p99 | errors | CPU cores: wrk / backends / softirq / machine | vs iptables (× better) |');
log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of results) {
  const l = loadOf(r);
  const change = r.change === undefined ? '–' : 'error' in r.change ? r.change.error : `${ms(r.change.medianMs)}, ${ms(r.change.maxMs)} (n=${r.change.n})`;
  log(
    `| ${k(r.services)} | ${r.peer} | ${step(r.program)} | ${change} | ${step(r.teardown)} | ` +
      (l ? `${k(Math.round(l.connectionsPerSecond))} | ${latencyText(l)} | ${l.errors + l.probe.errors} | ${cpuText(l)}` : `${r.load && 'error' in r.load ? r.load.error : '–'} | – | – | – | –`) +
      ` | ${ratios(r)} |`,
  );
}
const perPacket = results.filter((r) => r.perPacket !== undefined);
if (perPacket.length > 0) {
  log();
  log('Per-packet cost of the tc ingress program (BPF_PROG_TEST_RUN, 10⁶ runs, best of 3): a packet of a tracked flow to a frontend (translated), and one to no frontend (passes):');
  log();
  log('| services | translated | passes |');
  log('| --- | --- | --- |');
  for (const r of perPacket) log(`| ${k(r.services)} | ${'error' in r.perPacket! ? r.perPacket.error : `${r.perPacket!.translatedNs} ns`} | ${'error' in r.perPacket! ? '–' : `${r.perPacket!.passNs} ns`} |`);
}
log();
log('Latency: the probe (one connection at a time beside wrk) times connect() → end of reply, so it includes the SYN, where the NAT lookup happens; wrk times request → reply only. p99 ratio: probe.');
log(`load average ${loadAtEnd.map((l) => l.toFixed(2)).join(' ')} at the end`);
process.stdout.write(
  `${JSON.stringify({ bench: 'kpr', date: new Date().toISOString(), node: process.version, cpus: availableParallelism(), loadAverage: { atStart: loadAtStart, atEnd: loadAtEnd }, load: { tool: 'wrk', threads: 1, connections: CONNECTIONS, seconds: SECONDS }, unavailable, execOverheadMs, baseline, results })}\n`,
);
