// A whole Beacon site in network namespaces, for `beacon lab`, the fault-injection suite and demos:
//
//   wan-client 198.18.1.2 ── router (BIRD, AS 64600) 198.18.0.1 ──┐
//                                                                  ├── LAN 198.18.0.0/24 (bridge)
//   lan-client 198.18.0.100, etcd 198.18.0.5 ──────────────────────┤
//   node-N 198.18.0.1N (beacon standalone on etcd; L2, BGP, KPR) ──┘
//      └─ eth1 198.19.N.1 ── pod-N 198.19.N.10 (HTTP on 8080 and 8081, answering "pod-N")
//   (IPv6 alike: 2001:db8::/64 on the LAN, 2001:db8:1::/64 behind the router, 2001:db8:1N::/64 to the pods)
//
// Nodes route the other nodes' pod networks across the LAN, as a routed pod network would. The
// router installs the BGP routes in its kernel table with all advertising nodes as equal-cost next
// hops. Every agent gets its own bpffs folder and cgroup inside mounts the run owns, so clean-up
// (also by the sweeper) removes every pin and hook.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseCIDR, parseIP, rangeContains } from '../api/ip.js';
import { Lab, LabError, type LabBridge, type LabHost, type LabProcess } from './lab.js';
import type { ProbeOutcome, ProbePlan } from './site-child.js';

export const SITE = {
  lan: { router: ['198.18.0.1', '2001:db8::1'], etcd: ['198.18.0.5', '2001:db8::5'], client: ['198.18.0.100', '2001:db8::100'] },
  wan: { router: ['198.18.1.1', '2001:db8:1::1'], client: ['198.18.1.2', '2001:db8:1::2'] },
  node: (i: number) => [`198.18.0.1${i}`, `2001:db8::1${i}`] as const,
  podGateway: (i: number) => [`198.19.${i}.1`, `2001:db8:1${i}::1`] as const,
  pod: (i: number) => [`198.19.${i}.10`, `2001:db8:1${i}::10`] as const,
  podNet: (i: number) => [`198.19.${i}.0/24`, `2001:db8:1${i}::/64`] as const,
  lanNets: ['198.18.0.0/24', '2001:db8::/64'],
  routerASN: 64600,
  podPorts: [8080, 8081],
} as const;

const ETCD_PORT = 2379;

/** Whether `ip` sits on the nodes' LAN, so the LAN client reaches it through ARP/NDP (else through the router). */
export function onLan(ip: string): boolean {
  const addr = parseIP(ip);
  return addr !== undefined && SITE.lanNets.some((cidr) => {
    const parsed = parseCIDR(cidr);
    return parsed.ok && rangeContains(parsed.value.range, addr);
  });
}
const NODES = 3;

export interface SiteOptions {
  /** The `beacon` executable (bin/beacon.js) the nodes run. */
  readonly beaconBin: string;
  /** Manifests applied to the site's etcd once it is up (files or folders). */
  readonly manifests: readonly string[];
  readonly logRoot?: string;
  readonly stateDir?: string;
  /** Progress lines for a human. */
  readonly progress?: (line: string) => void;
}

export interface SiteNode {
  readonly name: string;
  readonly index: number;
  readonly host: LabHost;
  readonly mac: string;
  readonly socket: string;
  readonly bpfRoot: string;
  readonly cgroup: string;
  agent: LabProcess | undefined;
  starts: number;
}

/** The child program: the compiled .js beside this module, or this .ts under tsx (tests). */
const childArgs = (): string[] => {
  const js = new URL('./site-child.js', import.meta.url).pathname;
  return existsSync(js) ? [js] : ['--import', 'tsx', new URL('./site-child.ts', import.meta.url).pathname];
};

/** An [IPv4, IPv6] pair on the site's /24 and /64 networks. */
const cidrs = (ips: readonly string[]) => [`${ips[0]}/24`, `${ips[1]}/64`];
const url = (ip: string, port: number) => (ip.includes(':') ? `http://[${ip}]:${port}/` : `http://${ip}:${port}/`);

export class Site {
  readonly nodes: SiteNode[] = [];
  private etcdProcess: LabProcess | undefined;
  private birdProcess: LabProcess | undefined;
  private etcdStarts = 0;
  private birdStarts = 0;
  readonly progress: (line: string) => void;

  private constructor(
    readonly lab: Lab,
    readonly opts: SiteOptions,
    readonly router: LabHost,
    readonly etcd: LabHost,
    readonly lanClient: LabHost,
    readonly wanClient: LabHost,
    readonly lan: LabBridge,
    private readonly mounts: { bpf: string; cgroup: string },
  ) {
    this.progress = opts.progress ?? (() => undefined);
  }

  get etcdEndpoint(): string {
    return `http://${SITE.lan.etcd[0]}:${ETCD_PORT}`;
  }

  get dir(): string {
    return this.lab.logDir;
  }

  /** Builds the site, starts etcd, BIRD, the pods and the three agents, and applies the manifests. */
  static async build(opts: SiteOptions): Promise<Site> {
    const lab = await Lab.create({ name: 'beacon-lab', maxNamespaces: 16, ...(opts.logRoot ? { logRoot: opts.logRoot } : {}), ...(opts.stateDir ? { stateDir: opts.stateDir } : {}) });
    try {
      const progress = opts.progress ?? (() => undefined);
      progress(`building site ${lab.runId}: namespaces, links and mounts`);
      const mounts = { bpf: await lab.mount('bpf', 'bpf'), cgroup: await lab.mount('cgroup2', 'cgroup') };
      const lan = await lab.bridge('lan');
      const router = await lab.host('router', { forwarding: true });
      const etcd = await lab.host('etcd');
      const lanClient = await lab.host('lan-client');
      const wanClient = await lab.host('wan-client');
      await lab.attach(router, lan, { ifname: 'eth0', addresses: cidrs(SITE.lan.router) });
      await lab.attach(etcd, lan, { ifname: 'eth0', addresses: cidrs(SITE.lan.etcd) });
      await lab.attach(lanClient, lan, { ifname: 'eth0', addresses: cidrs(SITE.lan.client) });
      await lab.link(router, wanClient, { a: { ifname: 'eth1', addresses: cidrs(SITE.wan.router) }, b: { ifname: 'eth0', addresses: cidrs(SITE.wan.client) } });
      for (const via of SITE.wan.router) await wanClient.addRoute('default', { via });
      const site = new Site(lab, opts, router, etcd, lanClient, wanClient, lan, mounts);
      for (let i = 1; i <= NODES; i++) await site.addNode(i);
      for (const n of site.nodes) await site.addNodeRoutes(n);
      progress('starting etcd, BIRD and the pods');
      await site.startEtcd();
      await site.startRouter();
      for (const n of site.nodes) {
        const pod = await lab.host(`pod-${n.index}`);
        const ips = SITE.pod(n.index);
        await lab.link(n.host, pod, { a: { ifname: 'eth1', addresses: cidrs(SITE.podGateway(n.index)) }, b: { ifname: 'eth0', addresses: cidrs(ips) } });
        for (const via of SITE.podGateway(n.index)) await pod.addRoute('default', { via });
        const server = await pod.spawn(`pod-${n.index}`, process.execPath, [...childArgs(), 'serve', `pod-${n.index}`, ...SITE.podPorts.map(String)]);
        await server.waitForLog(`listening on ${SITE.podPorts.at(-1)}`, 20_000);
      }
      progress(`applying ${opts.manifests.join(', ')}`);
      await site.beaconIn(etcd, ['apply', ...opts.manifests.flatMap((m) => ['-f', m]), '--etcd-endpoints', site.etcdEndpoint]);
      progress('starting beacon on node-1, node-2, node-3');
      await Promise.all(site.nodes.map((n) => site.startAgent(n)));
      return site;
    } catch (e) {
      await lab.destroy({ keepLogs: true }).catch(() => lab.destroySync());
      throw e;
    }
  }

  private async addNode(index: number): Promise<void> {
    const name = `node-${index}`;
    const host = await this.lab.host(name, { forwarding: true });
    const ips = SITE.node(index);
    await this.lab.attach(host, this.lan, { ifname: 'eth0', addresses: cidrs(ips) });
    // A link that goes down and up keeps its IPv6 addresses, as IPv4 ones are kept (the kernel's default flushes them).
    await this.lab.must(['ip', 'netns', 'exec', host.namespace, 'sysctl', '-qw', 'net.ipv6.conf.eth0.keep_addr_on_down=1']);
    const link = JSON.parse((await host.exec('ip', ['-j', 'link', 'show', 'eth0'])).stdout) as { address: string }[];
    const bpfRoot = join(this.mounts.bpf, name);
    mkdirSync(bpfRoot);
    this.nodes.push({ name, index, host, mac: link[0]!.address, socket: join(this.dir, `${name}.sock`), bpfRoot, cgroup: this.lab.cgroup(this.mounts.cgroup, name), agent: undefined, starts: 0 });
  }

  /**
   * The node's routes over the LAN: default via the router, the other nodes' pod networks via
   * them (a routed pod network). The kernel drops them when the link goes down.
   */
  private async addNodeRoutes(n: SiteNode): Promise<void> {
    for (const via of SITE.lan.router) await n.host.addRoute('default', { via });
    for (const other of this.nodes.filter((o) => o !== n)) {
      for (const f of [0, 1]) await n.host.addRoute(SITE.podNet(other.index)[f]!, { via: SITE.node(other.index)[f]! });
    }
  }

  private etcdArgs(): string[] {
    const client = this.etcdEndpoint;
    const peer = 'http://127.0.0.1:2380';
    return [
      '--name', 'lab', '--data-dir', join(this.dir, 'etcd-data'), '--listen-client-urls', client, '--advertise-client-urls', client,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `lab=${peer}`, '--log-level', 'warn',
    ];
  }

  /** etcd on its host, on the same data folder each time; waits for /health. */
  private async startEtcd(): Promise<void> {
    const p = await this.etcd.spawn(`etcd-${++this.etcdStarts}`, '/usr/bin/etcd', this.etcdArgs());
    this.etcdProcess = p;
    const health = `fetch('${this.etcdEndpoint}/health').then(r=>r.json()).then(j=>process.exit(j.health==='true'?0:1),()=>process.exit(1))`;
    await this.until(async () => (await this.etcd.exec(process.execPath, ['-e', health])).code === 0, 20_000, () => `etcd healthy (log: ${p.logs().slice(-500)})`);
  }

  /** etcd killed (SIGKILL) and, after `downMs`, started again on the same data: a store outage. */
  async restartEtcd(downMs = 0): Promise<void> {
    this.etcdProcess?.kill('SIGKILL');
    await this.etcdProcess?.exited;
    await sleep(downMs);
    await this.startEtcd();
  }

  private birdConfig(): string {
    const lines = [
      `router id ${SITE.lan.router[0]};`,
      'log stderr all;',
      'protocol device { scan time 10; }',
      'protocol direct { ipv4; ipv6; }',
      // Only BGP routes reach the kernel; routes to one prefix from several nodes become one multipath route.
      'protocol kernel { ipv4 { export where source = RTS_BGP; }; merge paths on; }',
      'protocol kernel { ipv6 { export where source = RTS_BGP; }; merge paths on; }',
      'template bgp node {',
      `  local ${SITE.lan.router[0]} as ${SITE.routerASN};`,
      '  connect delay time 1; connect retry time 2; error wait time 1, 4;',
      '  graceful restart on;',
      '  ipv4 { import all; export none; };',
      '  ipv6 { import all; export none; };',
      '}',
      ...this.nodes.map((n) => `protocol bgp ${n.name.replace('-', '_')} from node { neighbor ${SITE.node(n.index)[0]} as 64512; }`),
    ];
    return `${lines.join('\n')}\n`;
  }

  /** BIRD on the router; `restartRouter` kills and starts it again (a BGP peer restart). */
  async startRouter(): Promise<void> {
    writeFileSync(join(this.dir, 'bird.conf'), this.birdConfig());
    const p = await this.router.spawn(`bird-${++this.birdStarts}`, 'bird', ['-f', '-c', join(this.dir, 'bird.conf'), '-s', join(this.dir, 'bird.ctl'), '-P', join(this.dir, 'bird.pid')]);
    this.birdProcess = p;
    await this.until(async () => (await this.birdc('show status')).includes('Daemon is up'), 10_000, () => `BIRD up (log: ${p.logs().slice(-500)})`);
  }

  async restartRouter(downMs = 0): Promise<void> {
    await this.stopRouter();
    await sleep(downMs);
    await this.startRouter();
  }

  /**
   * BIRD killed and its kernel routes flushed, until `startRouter`: the router's address and BGP
   * port are free for another speaker (the fault-injection suite's malformed-message peer).
   */
  async stopRouter(): Promise<void> {
    this.birdProcess?.kill('SIGKILL');
    await this.birdProcess?.exited;
    // BIRD died without a chance to remove its kernel routes: a real reboot loses them too.
    for (const family of ['-4', '-6']) await this.router.exec('ip', [family, 'route', 'flush', 'proto', 'bird']);
  }

  birdc(command: string): Promise<string> {
    return this.router.exec('birdc', ['-s', join(this.dir, 'bird.ctl'), command]).then((r) => r.stdout);
  }

  /** Starts (or restarts) the node's agent and waits until its datapath runs. */
  async startAgent(n: SiteNode): Promise<LabProcess> {
    if (n.agent?.running) throw new LabError(`${n.name}'s agent runs already`);
    n.agent = await n.host.spawn(`${n.name}-agent-${++n.starts}`, process.execPath, [
      this.opts.beaconBin, 'standalone', '--node-name', n.name, '--node-labels', 'role=node', '--node-ips', SITE.node(n.index).join(','), '--store', 'etcd', '--etcd-endpoints', this.etcdEndpoint,
      '--socket', n.socket, '--lease-duration', '3s',
      '--kube-proxy-replacement', 'true', '--cgroup-root', n.cgroup, '--bpf-root', n.bpfRoot, '--devices', 'eth0',
    ]);
    await n.agent.waitForLog('kube-proxy replacement running', 30_000);
    return n.agent;
  }

  /** Stops the node's agent with `signal` (SIGTERM: a clean stop; SIGKILL: a crash) and waits for its end. */
  async stopAgent(n: SiteNode, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const agent = n.agent;
    if (!agent?.running) return;
    agent.kill(signal);
    const ended = await Promise.race([agent.exited, sleep(15_000).then(() => undefined)]);
    if (ended === undefined) {
      agent.kill('SIGKILL');
      await agent.exited;
    }
  }

  /** The node's LAN link down or up: the node falls off (or comes back to) the network, routes and all. */
  async setNodeLink(n: SiteNode, state: 'up' | 'down'): Promise<void> {
    await n.host.setLink('eth0', state);
    if (state === 'up') await this.addNodeRoutes(n);
  }

  /** A `beacon` command inside `host`, output parsed as JSON when `-o json` is among the args. */
  async beaconIn(host: LabHost, args: readonly string[], timeoutMs = 30_000): Promise<string> {
    const r = await host.exec(process.execPath, [this.opts.beaconBin, ...args], { timeoutMs });
    if (r.code !== 0) throw new LabError(`beacon ${args.join(' ')} on ${host.name}: ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout;
  }

  /** A CLI query against a node's agent (`beacon ARGS -o json --socket ...`). */
  async cli<T>(n: SiteNode, ...args: string[]): Promise<T> {
    return JSON.parse(await this.beaconIn(n.host, [...args, '-o', 'json', '--socket', n.socket])) as T;
  }

  /** The node whose MAC `client` holds for `ip` in its neighbour table, after one request to fill it. */
  async neighbourOf(ip: string, client: LabHost = this.lanClient): Promise<string | undefined> {
    const r = await client.exec('ip', ['-j', 'neigh', 'show', 'to', ip, 'dev', 'eth0']);
    const entries = r.code === 0 ? (JSON.parse(r.stdout || '[]') as { lladdr?: string; state?: string[] }[]) : [];
    const mac = entries.find((e) => e.lladdr && !e.state?.includes('FAILED'))?.lladdr;
    return this.nodes.find((n) => n.mac === mac)?.name;
  }

  /** The next hops (node names, or addresses not of a node) of the router's kernel route to `ip`. */
  async routesTo(ip: string): Promise<string[]> {
    const family = ip.includes(':') ? '-6' : '-4';
    const r = await this.router.exec('ip', [family, '-j', 'route', 'show', 'exact', ip.includes(':') ? `${ip}/128` : `${ip}/32`, 'proto', 'bird']);
    const routes = r.code === 0 ? (JSON.parse(r.stdout || '[]') as { gateway?: string; nexthops?: { gateway?: string }[] }[]) : [];
    const gateways = routes.flatMap((x) => (x.nexthops ? x.nexthops.map((h) => h.gateway) : [x.gateway])).filter((g): g is string => g !== undefined);
    return gateways.map((g) => this.nodes.find((n) => SITE.node(n.index).includes(g as never))?.name ?? g).sort();
  }

  /** Runs the probe client in `client`; resolves with every outcome. */
  async probe(client: LabHost, targets: readonly { ip: string; port: number }[], plan: Omit<ProbePlan, 'urls'>): Promise<ProbeOutcome[]> {
    const full: ProbePlan = { ...plan, urls: targets.map((t) => url(t.ip, t.port)) };
    const r = await client.exec(process.execPath, [...childArgs(), 'probe', JSON.stringify(full)], { timeoutMs: plan.durationMs + plan.timeoutMs + 15_000 });
    if (r.code !== 0) throw new LabError(`probe from ${client.name} failed: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as ProbeOutcome[];
  }

  /** Polls `check` every 200 ms until it is true, at most `timeoutMs`. */
  async until(check: () => Promise<boolean> | boolean, timeoutMs: number, what: () => string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 10_000; i++) {
      const ok = await Promise.resolve().then(check).catch(() => false);
      if (ok) return;
      if (Date.now() >= deadline) throw new LabError(`timed out after ${timeoutMs} ms waiting for ${what()}`);
      await sleep(200);
    }
  }

  /** Everything down: processes, namespaces, mounts, cgroups; logs kept when asked. */
  async destroy(keepLogs = false): Promise<void> {
    await this.lab.destroy({ keepLogs, graceMs: 3_000 });
  }
}
