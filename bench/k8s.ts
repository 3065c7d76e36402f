// Kubernetes-mode API load benchmark (`npm run bench:k8s`): one `beacon operator` and ten
// `beacon agent` processes (the built bin/beacon.js, L2 announcements on, BGP and KPR off) on the
// stand-in API server. Each agent runs in its own lab namespace with an eth0 on a bridge, so its
// packet link answers ARP there and nowhere else. Measured:
//   - API requests per second at steady state with 100, 1,000 and 10,000 LoadBalancer Services:
//     all clients together, per agent (mean, max), the operator's, and by verb;
//   - time from 1,000 Services created (in one burst, on the running cluster with no services)
//     to all of them having IPs in their status, and to all of them being announced; the same
//     for each later step (1,000 → 100 by deletes, 100 → 10,000 by creates).
// Each process reaches the API server through its own counting proxy, so every request is
// attributed to the process that sent it: the process's kubeconfig points to 127.0.0.1:6443 in
// its namespace, a forwarder there carries the bytes to a unix socket (a path, reachable from any
// namespace), and the proxy behind that socket counts the request and passes it on.
// Usage: tsx bench/k8s.ts [--services 1000,100,10000] [--agents 10] [--settle 10] [--window 20] [--minutes 40]
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request as httpRequest, type Server } from 'node:http';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { getLocal, type StatusView } from '../agent/local-api.js';
import { renderTable } from '../agent/table.js';
import { Lab, type LabHost, type LabProcess } from '../lab/index.js';
import { KubeApiServer } from '../test/kube-apiserver.js';
import { beaconBin, eventually, sleep } from '../test/process.js';

const { values } = parseArgs({
  options: {
    services: { type: 'string', default: '1000,100,10000' },
    agents: { type: 'string', default: '10' },
    minutes: { type: 'string', default: '40' },
    settle: { type: 'string', default: '10' },
    window: { type: 'string', default: '20' },
  },
});
const sizes = values.services.split(',').map(Number);
const agentCount = Number(values.agents);
const settleMs = Number(values.settle) * 1000;
const windowMs = Number(values.window) * 1000;
/** The whole run is bounded (10,000 status writes at the operator's 20 requests/s alone take ~8 min). */
const runDeadline = Date.now() + Number(values.minutes) * 60_000;

const apiPort = 6443;
const namespace = 'bench';
const servicesPath = `/api/v1/namespaces/${namespace}/services`;

// ---- counting proxies ----

type Counts = Map<string, number>;

/** `verb resource[/status]` as the API server's request metrics name it, from method and URL. */
function requestKey(method: string, url: string): string {
  const { pathname, searchParams } = new URL(url, 'http://x');
  const parts = pathname.split('/').filter(Boolean);
  let rest = parts[0] === 'api' ? parts.slice(2) : parts.slice(3);
  if (rest[0] === 'namespaces' && rest.length >= 3) rest = rest.slice(2);
  const [resource = '?', name, sub] = rest;
  const watch = ['1', 'true'].includes(searchParams.get('watch') ?? '');
  const verb =
    method === 'GET' ? (watch ? 'watch' : name === undefined ? 'list' : 'get')
    : ({ POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' } as Record<string, string>)[method] ?? method.toLowerCase();
  return `${verb} ${resource}${sub ? `/${sub}` : ''}`;
}

/** An HTTP proxy on a unix socket that counts each request (watches once, when they start). */
function countingProxy(socketPath: string, upstream: string): Promise<{ server: Server; counts: Counts }> {
  const counts: Counts = new Map();
  const agent = new Agent({ keepAlive: true });
  const server = createServer((req, res) => {
    const key = requestKey(req.method ?? 'GET', req.url ?? '/');
    counts.set(key, (counts.get(key) ?? 0) + 1);
    const up = httpRequest(`${upstream}${req.url ?? '/'}`, { method: req.method, headers: req.headers, agent }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve({ server, counts }));
  });
}

// Runs inside a namespace: TCP on its loopback → the unix socket of that process's proxy.
const FORWARDER = `const net=require('net');const [port,path]=process.argv.slice(1);
net.createServer((c)=>{const u=net.connect(path);c.pipe(u).pipe(c);c.on('error',()=>u.destroy());u.on('error',()=>c.destroy());})
.listen(Number(port),'127.0.0.1',()=>console.log('forwarding'));`;

// ---- processes ----

interface Client {
  name: string;
  role: 'operator' | 'agent';
  counts: Counts;
  proc: LabProcess;
  socket: string;
}

/** CPU seconds (user + system) a process has used, from /proc/PID/stat (clock ticks of 10 ms). */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

// ---- measurement ----

interface Window {
  services: number;
  seconds: number;
  total: number;
  perAgent: number[];
  operator: number;
  byVerb: Map<string, number>;
  agentCpu: number[];
  operatorCpu: number;
  serverCpu: number;
  load: [number, number];
}

const sum = (xs: Iterable<number>): number => [...xs].reduce((a, b) => a + b, 0);
const snapshot = (clients: Client[]): Map<string, Counts> => new Map(clients.map((c) => [c.name, new Map(c.counts)]));
const diff = (now: Counts, before: Counts | undefined): Counts => new Map([...now].map(([k, v]) => [k, v - (before?.get(k) ?? 0)]).filter(([, v]) => (v as number) > 0) as [string, number][]);

async function measureWindow(clients: Client[], services: number): Promise<Window> {
  const load0 = loadavg()[0]!;
  const cpu0 = new Map(clients.map((c) => [c.name, cpuSeconds(c.proc.pid)]));
  const serverCpu0 = process.cpuUsage();
  const before = snapshot(clients);
  const t0 = performance.now();
  await sleep(windowMs);
  const seconds = (performance.now() - t0) / 1000;
  const after = snapshot(clients);
  const byClient = new Map(clients.map((c) => [c.name, diff(after.get(c.name)!, before.get(c.name))]));
  const byVerb = new Map<string, number>();
  for (const [name, counts] of byClient) {
    const role = clients.find((c) => c.name === name)!.role;
    for (const [k, v] of counts) byVerb.set(`${role}: ${k}`, (byVerb.get(`${role}: ${k}`) ?? 0) + v);
  }
  const rate = (name: string) => sum(byClient.get(name)!.values()) / seconds;
  const agents = clients.filter((c) => c.role === 'agent');
  const operator = clients.find((c) => c.role === 'operator')!;
  const cpu = (c: Client) => (cpuSeconds(c.proc.pid) - cpu0.get(c.name)!) / seconds;
  const serverCpu = process.cpuUsage(serverCpu0);
  return {
    services,
    seconds,
    total: sum(clients.map((c) => rate(c.name))),
    perAgent: agents.map((a) => rate(a.name)),
    operator: rate(operator.name),
    byVerb,
    agentCpu: agents.map(cpu),
    operatorCpu: cpu(operator),
    serverCpu: (serverCpu.user + serverCpu.system) / 1e6 / seconds,
    load: [load0, loadavg()[0]!],
  };
}

interface Step {
  /** Services created (positive) or deleted (negative) in this step. */
  change: number;
  /** ms until every create/delete request was answered; then until all had IPs, all were announced. */
  written: number;
  ips: number;
  announced: number | undefined;
  window: Window;
}

const secondsText = (ms: number | undefined): string => (ms === undefined ? 'not reached' : `${(ms / 1000).toFixed(2)} s`);

// ---- the cluster's objects ----

const names = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `svc-${String(from + i).padStart(5, '0')}`);

/** Creates or deletes through the API, a few requests at a time; returns when all are answered. */
async function inBulk(items: string[], one: (name: string) => Promise<void>, parallel = 16): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < items.length) await one(items[next++]!);
    }),
  );
}

async function must(server: KubeApiServer, method: string, path: string, body?: unknown): Promise<void> {
  const r = await server.request(method, path, body);
  if (r.status >= 300) throw new Error(`${method} ${path}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
}

const service = (name: string) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { type: 'LoadBalancer', ports: [{ port: 80 }] } });

interface KubeServiceList {
  items: { metadata: { name: string }; status?: { loadBalancer?: { ingress?: { ip?: string }[] } } }[];
}

/** How many services in the namespace have an IP, and how many there are (read directly, not counted). */
async function withIPs(server: KubeApiServer): Promise<{ total: number; withIP: number }> {
  const { body } = await server.request<KubeServiceList>('GET', servicesPath);
  return { total: body.items.length, withIP: body.items.filter((s) => s.status?.loadBalancer?.ingress?.some((i) => i.ip)).length };
}

/** Polls until every one of `count` services has an IP; returns the ms since `since`. */
async function waitForIPs(server: KubeApiServer, count: number, since: number, pollMs: number): Promise<number> {
  const timeoutMs = Math.min(runDeadline - Date.now(), 60_000 + count * 100);
  const end = Date.now() + timeoutMs;
  for (;;) {
    const { total, withIP } = await withIPs(server);
    if (total === count && withIP === count) return performance.now() - since;
    if (Date.now() > end) throw new Error(`${withIP} of ${total} services have IPs (want ${count}) after ${timeoutMs} ms`);
    await sleep(pollMs);
  }
}

/**
 * Polls the agents' local APIs until together they announce exactly `count` IPs and each sees
 * every node live; returns ms since `since`, or undefined (with a warning) when that is not
 * reached in time: an overloaded machine can delay renewals past the lease, and the request
 * figures are still worth taking.
 */
async function waitForAnnounced(agents: Client[], count: number, since: number, pollMs: number): Promise<number | undefined> {
  const timeoutMs = Math.min(runDeadline - Date.now(), 60_000 + count * 20);
  const end = Date.now() + timeoutMs;
  for (;;) {
    // An agent still starting has no socket yet: it counts as announcing nothing and seeing no one.
    const views = await Promise.all(agents.map((a) => getLocal<StatusView>(a.socket, '/v1/status', 10_000).catch(() => undefined)));
    const announcing = sum(views.map((v) => (v?.l2.enabled ? v.l2.announcing : 0)));
    const live = Math.min(...views.map((v) => (v?.l2.enabled ? v.l2.liveNodes.length : 0)));
    if (announcing === count && live === agents.length) return performance.now() - since;
    if (Date.now() > end) {
      log(`warning: ${announcing} IPs announced (want ${count}), as few as ${live} live nodes seen (want ${agents.length}) after ${timeoutMs} ms`);
      return undefined;
    }
    await sleep(pollMs);
  }
}

// ---- main ----

const log = (text: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${text}\n`);
const fixed = (n: number, digits = 2) => n.toFixed(digits);

async function main(): Promise<void> {
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  log(`Kubernetes-mode API load benchmark, node ${process.version}, ${availableParallelism()} CPUs (${cpu}), load average ${loadavg().map((l) => fixed(l)).join(' ')} at the start`);
  const dir = mkdtempSync(join(tmpdir(), 'beacon-bench-k8s-'));
  // BEACON_KEEP_LOGS=1 keeps the processes' logs (info level) for a look afterwards.
  const keepLogs = process.env.BEACON_KEEP_LOGS === '1';
  const lab = await Lab.create({ name: 'bench', keepLogs });
  // A history that covers the bursts, so a restarted watch resumes instead of relisting.
  const server = await KubeApiServer.start({ historySize: 50_000 });
  const proxies: Server[] = [];
  const cleanUp = async () => {
    await lab.destroy().catch((e: Error) => log(`lab clean-up: ${e.message}`));
    for (const p of proxies) p.closeAllConnections();
    await Promise.all(proxies.map((p) => new Promise((r) => p.close(r))));
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  };
  const abort = (why: string) => {
    log(`${why}: cleaning up`);
    void cleanUp().finally(() => process.exit(1));
  };
  // The lab's own handlers kill its processes and remove its namespaces on a signal; ours also closes the rest.
  process.once('SIGINT', () => abort('SIGINT'));
  process.once('SIGTERM', () => abort('SIGTERM'));
  const deadline = setTimeout(() => abort('run deadline passed'), runDeadline - Date.now());
  deadline.unref();
  log(`logs: ${lab.logDir}`);

  try {
    await must(server, 'POST', '/apis/beacon.io/v1alpha1/loadbalancerippools', {
      apiVersion: 'beacon.io/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: 'bench' }, spec: { blocks: [{ cidr: '198.18.0.0/18' }] },
    });
    await must(server, 'POST', '/apis/beacon.io/v1alpha1/l2announcementpolicies', {
      apiVersion: 'beacon.io/v1alpha1', kind: 'L2AnnouncementPolicy', metadata: { name: 'all' }, spec: { interfaces: ['^eth0$'] },
    });
    const bridge = await lab.bridge('br0');

    /** A process in its own namespace whose API requests go through its own counting proxy. */
    const startClient = async (name: string, role: Client['role'], host: LabHost, args: string[]): Promise<Client> => {
      const apiSocket = join(dir, `${name}.api.sock`);
      const { server: proxy, counts } = await countingProxy(apiSocket, server.url);
      proxies.push(proxy);
      const forwarder = await host.spawn(`${name}-fwd`, process.execPath, ['--max-old-space-size=32', '-e', FORWARDER, String(apiPort), apiSocket]);
      await forwarder.waitForLog('forwarding');
      const kubeconfig = join(dir, `${name}.kubeconfig`);
      writeFileSync(kubeconfig, server.kubeconfig().replace(server.url, `http://127.0.0.1:${apiPort}`));
      const socket = join(dir, `${name}.sock`);
      const proc = await host.spawn(name, process.execPath, [beaconBin, role, '--kubeconfig', kubeconfig, '--socket', socket, '--log-level', keepLogs ? 'info' : 'warn', ...args]);
      return { name, role, counts, proc, socket };
    };

    const operatorHost = await lab.host('operator');
    const clients = [await startClient('operator', 'operator', operatorHost, ['--identity', 'operator'])];
    for (let i = 1; i <= agentCount; i++) {
      const name = `node-${i}`;
      await must(server, 'POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name, 'beacon.io/bench': 'true' } } });
      const host = await lab.host(name);
      await lab.attach(host, bridge, { ifname: 'eth0', addresses: [`198.19.0.${i}/24`] });
      clients.push(await startClient(name, 'agent', host, ['--node-name', name, '--kube-proxy-replacement', 'false', '--bgp', 'false', '--l2-announcements', 'true']));
    }
    const agents = clients.filter((c) => c.role === 'agent');
    const operator = clients[0]!;
    await eventually(async () => {
      const s = await getLocal<StatusView>(operator.socket, '/v1/status');
      if (!s.roles.operator) throw new Error('operator role not taken yet');
    }, 30_000, 'operator role');
    await waitForAnnounced(agents, 0, performance.now(), 500);
    const lease = (await server.request<{ metadata: { annotations?: Record<string, string> } }>('GET', '/apis/coordination.k8s.io/v1/namespaces/beacon-system/leases/l2-node-node-1')).body;
    const leaseMs = lease.metadata.annotations?.['beacon.io/lease-duration-ms'] ?? '?';
    log(`operator and ${agents.length} agents up; every agent sees ${agents.length} live nodes; L2 lease duration ${leaseMs} ms`);

    // Each step brings the namespace to `size` services (creating or deleting, a few requests at a
    // time), waits for every IP and announcement, settles, and counts. The first step, from none to
    // 1,000 on the running cluster, is the timed burst.
    const steps: Step[] = [];
    let present = 0;
    for (const size of sizes) {
      const t0 = performance.now();
      if (size > present) await inBulk(names(present, size), (n) => must(server, 'POST', servicesPath, service(n)));
      else await inBulk(names(size, present), (n) => must(server, 'DELETE', `${servicesPath}/${n}`));
      const written = performance.now() - t0;
      const change = size - present;
      present = size;
      const ips = await waitForIPs(server, size, t0, size > 2000 ? 1000 : 100);
      const announced = await waitForAnnounced(agents, size, t0, size > 2000 ? 1000 : 100);
      log(`${size} services (${change > 0 ? '+' : ''}${change}): requests done in ${secondsText(written)}; all with IPs ${secondsText(ips)} and all announced ${secondsText(announced)} after the first request; settling ${settleMs / 1000} s`);
      await sleep(settleMs);
      const w = await measureWindow(clients, size);
      steps.push({ change, written, ips, announced, window: w });
      for (const c of clients) if (!c.proc.running) throw new Error(`${c.name} exited: ${c.proc.logs().slice(-2000)}`);
      // Printed after every step, so a run cut short by its deadline still leaves its figures.
      report(steps, leaseMs);
    }
  } finally {
    clearTimeout(deadline);
    await cleanUp();
  }
}

function report(steps: Step[], leaseMs: string): void {
  const out = (t: string) => process.stdout.write(`${t}\n`);
  const mean = (xs: number[]) => sum(xs) / xs.length;
  const windows = steps.map((s) => s.window);
  out(`\nSteady state: ${agentCount} agents + 1 operator, L2 on (lease ${leaseMs} ms), requests counted over ${windowMs / 1000} s after ${settleMs / 1000} s of settling`);
  out(renderTable(
    ['SERVICES', 'TOTAL REQ/S', 'PER AGENT MEAN', 'PER AGENT MAX', 'OPERATOR', 'AGENT CPU MEAN', 'OPERATOR CPU', 'API SERVER+PROXIES CPU', 'LOAD AVG'],
    windows.map((w) => [
      String(w.services), fixed(w.total), fixed(mean(w.perAgent)), fixed(Math.max(...w.perAgent)), fixed(w.operator),
      `${fixed(mean(w.agentCpu) * 100, 1)}%`, `${fixed(w.operatorCpu * 100, 1)}%`, `${fixed(w.serverCpu * 100, 1)}%`, `${fixed(w.load[0])}→${fixed(w.load[1])}`,
    ]),
  ));
  const verbs = [...new Set(windows.flatMap((w) => [...w.byVerb.keys()]))].sort();
  out('Requests/s by client role and verb (agents summed):');
  out(renderTable(['REQUEST', ...windows.map((w) => `${w.services} SVC`)], verbs.map((v) => [v, ...windows.map((w) => fixed((w.byVerb.get(v) ?? 0) / w.seconds))])));
  out('Steps (times from the first create/delete request of the step):');
  out(renderTable(
    ['SERVICES', 'CHANGE', 'REQUESTS DONE', 'ALL WITH IPS', 'ALL ANNOUNCED'],
    steps.map((s) => [String(s.window.services), `${s.change > 0 ? '+' : ''}${s.change}`, secondsText(s.written), secondsText(s.ips), secondsText(s.announced)]),
  ));
}

await main();
