// Socket-level load balancing end to end: `beacon standalone` programs the eBPF datapath from
// Service and EndpointSlice manifests; clients in a lab namespace, inside the test cgroup the
// hooks are attached to, connect() and sendto() the frontends with real sockets and land on
// backends in other namespaces. Nothing else on the machine is in that cgroup.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cgroup2Root, parseMounts } from '../bpf/index.js';
import type { ServiceDescription } from '../kpr/index.js';
import { SocketDatapath } from '../kpr/datapath.js';
import { Lab, type LabHost } from '../lab/index.js';
import { beacon, BeaconProcess, eventually, root } from './process.js';

const child = join(root, 'test', 'kpr-child.ts');
const execFileAsync = promisify(execFile);
const web4 = '198.18.100.10';
const web6 = '2001:db8:100::10';

const service = (name: string, ips: string[], extra = '', annotations = '{}') => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: shop, annotations: ${annotations}}
spec:
  type: ClusterIP
  clusterIP: "${ips[0]}"
  clusterIPs: [${ips.map((ip) => `"${ip}"`).join(', ')}]
  ports: [{name: http, port: 80, protocol: TCP}, {name: dns, port: 53, protocol: UDP}]${extra}
`;
const slice = (name: string, svc: string, family: 'IPv4' | 'IPv6', endpoints: { ip: string; ready?: boolean }[]) => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${name}, namespace: shop, labels: {kubernetes.io/service-name: ${svc}}}
addressType: ${family}
ports: [{name: http, port: 8080, protocol: TCP}, {name: dns, port: 8053, protocol: UDP}]
endpoints: [${endpoints.map((e) => `{addresses: ["${e.ip}"], conditions: {ready: ${e.ready ?? true}}}`).join(', ')}]
`;

interface TcpResult {
  names: Record<string, number>;
  errors: Record<string, number>;
  peers: string[];
}
interface UdpResult {
  names: Record<string, number>;
  errors: Record<string, number>;
  sources: string[];
}
interface HoldResult {
  name: string;
  sent: number;
  echoed: number;
  error: string | null;
}

describe('socket-level load balancing (cgroup hooks on the real kernel)', { timeout: 240_000 }, () => {
  let lab: Lab;
  let dir: string;
  let client: LabHost;
  let cgroup: string;
  let bpfRoot: string;
  let agent: BeaconProcess | undefined;
  let starts = 0;
  const put = (file: string, text: string) => writeFileSync(join(dir, 'manifests', file), text);

  /**
   * Runs a client mode of kpr-child in the client namespace, inside the test cgroup. The cgroup
   * is joined before entering the namespace: `ip netns exec` mounts a fresh /sys, without the
   * host's cgroup mounts.
   */
  async function run<T>(args: (string | number)[], timeoutMs = 30_000): Promise<T> {
    const script = `echo $$ > ${cgroup}/cgroup.procs && exec ip netns exec ${client.namespace} ${process.execPath} --import tsx ${child} ${args.join(' ')}`;
    const { stdout } = await execFileAsync('sh', ['-c', script], { cwd: root, timeout: timeoutMs });
    return JSON.parse(stdout.trim().split('\n').pop()!) as T;
  }

  /** Runs a client mode like run(), handing out each JSON line it prints as it comes. */
  function lines(args: (string | number)[], timeoutMs = 30_000): { next(): Promise<unknown> } {
    const script = `echo $$ > ${cgroup}/cgroup.procs && exec ip netns exec ${client.namespace} ${process.execPath} --import tsx ${child} ${args.join(' ')}`;
    const p = spawn('sh', ['-c', script], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], timeout: timeoutMs });
    const queue: unknown[] = [];
    const waiting: ((v: unknown) => void)[] = [];
    createInterface({ input: p.stdout }).on('line', (line) => {
      const v: unknown = JSON.parse(line);
      const w = waiting.shift();
      if (w) w(v);
      else queue.push(v);
    });
    return { next: () => (queue.length > 0 ? Promise.resolve(queue.shift()) : new Promise((resolve) => waiting.push(resolve))) };
  }

  function startAgent(): BeaconProcess {
    const p = new BeaconProcess(`kpr-${++starts}`, [
      'standalone', '--node-name', 'node-1', '--manifests', join(dir, 'manifests'), '--state-dir', join(dir, 'state'),
      '--socket', join(dir, 'beacon.sock'), '--l2-announcements', 'false', '--bgp', 'false',
      '--kube-proxy-replacement', 'true', '--cgroup-root', cgroup, '--bpf-root', bpfRoot, '--node-ips', '198.18.0.1',
      // The agent runs in the host's namespace here: no programs on its interfaces (test/kpr-nodeport covers them).
      '--devices', 'none',
    ]);
    agent = p;
    return p;
  }

  const kprServices = (): ServiceDescription[] => {
    const r = beacon('kpr', 'services', '-o', 'json', '--bpf-root', bpfRoot);
    if (r.code !== 0) throw new Error(r.err);
    return JSON.parse(r.out) as ServiceDescription[];
  };
  const backendsOf = (frontend: string) => kprServices().find((s) => s.frontend === frontend)?.backends.map((b) => b.address) ?? [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'beacon-kpr-'));
    mkdirSync(join(dir, 'manifests'));
    const v2 = cgroup2Root(parseMounts(readFileSync('/proc/self/mounts', 'utf8')));
    if (!v2) throw new Error('no cgroup v2 hierarchy mounted');
    cgroup = join(v2, `beacon-test-kpr-${process.pid}`);
    mkdirSync(cgroup);
    bpfRoot = `/sys/fs/bpf/beacon-test-kpr-${process.pid}`;

    lab = await Lab.create({ name: 'kpr' });
    const br = await lab.bridge('br0');
    client = await lab.host('client');
    await lab.attach(client, br, { addresses: ['198.18.0.1/24', '2001:db8::1/64'] });
    for (const [i, name] of ['be1', 'be2', 'be3'].entries()) {
      const host = await lab.host(name);
      await lab.attach(host, br, { addresses: [`198.18.0.${i + 2}/24`, `2001:db8::${i + 2}/64`] });
      const server = await host.spawn(`${name}-server`, process.execPath, ['--import', 'tsx', child, 'serve', name, '8080'], { cwd: root });
      await server.waitForLog('listening', 20_000);
      const udp = await host.spawn(`${name}-dns`, process.execPath, ['--import', 'tsx', child, 'serve', name, '8053'], { cwd: root });
      await udp.waitForLog('listening', 20_000);
    }
    put('web.yaml', service('web', [web4, web6]));
    put('web-v4.yaml', slice('web-v4', 'web', 'IPv4', [{ ip: '198.18.0.2' }, { ip: '198.18.0.3' }]));
    put('web-v6.yaml', slice('web-v6', 'web', 'IPv6', [{ ip: '2001:db8::2' }, { ip: '2001:db8::3' }]));
    put('sticky.yaml', service('sticky', ['198.18.100.11'], '\n  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}'));
    put('sticky-v4.yaml', slice('sticky-v4', 'sticky', 'IPv4', [{ ip: '198.18.0.2' }, { ip: '198.18.0.3' }]));
    put('empty.yaml', service('empty', ['198.18.100.12']));
    put('empty-v4.yaml', slice('empty-v4', 'empty', 'IPv4', [{ ip: '198.18.0.2', ready: false }]));
    put('pool.yaml', 'apiVersion: beacon.io/v1alpha1\nkind: LoadBalancerIPPool\nmetadata: {name: lan}\nspec:\n  blocks: [{cidr: 198.18.200.0/30}]\n');
    put('lb.yaml', `apiVersion: v1
kind: Service
metadata: {name: lb, namespace: shop}
spec:
  type: LoadBalancer
  clusterIP: 198.18.100.20
  ports: [{name: http, port: 80, protocol: TCP, nodePort: 30080}]
`);
    put('lb-v4.yaml', slice('lb-v4', 'lb', 'IPv4', [{ ip: '198.18.0.4' }]));
    put('maglev.yaml', service('maglev', ['198.18.100.13'], '', '{beacon.io/lb-algorithm: maglev}'));
    put('maglev-v4.yaml', slice('maglev-v4', 'maglev', 'IPv4', [{ ip: '198.18.0.2' }, { ip: '198.18.0.3' }, { ip: '198.18.0.4' }]));
    startAgent();
    await eventually(() => expect(backendsOf(`${web4}:80/TCP`)).toEqual(['198.18.0.2', '198.18.0.3']), 30_000, 'web programmed');
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    await lab?.destroy();
    if (bpfRoot) SocketDatapath.remove(bpfRoot);
    if (cgroup) rmdirSync(cgroup, { recursive: false });
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('attaches all eight hooks to the cgroup (every program passed the verifier)', () => {
    const shown = execFileSync('bpftool', ['-j', 'cgroup', 'show', cgroup], { encoding: 'utf8', timeout: 10_000 });
    const hooks = (JSON.parse(shown) as { attach_type: string; name: string }[]).map((h) => h.attach_type).sort();
    expect(hooks).toEqual(['cgroup_inet4_connect', 'cgroup_inet4_getpeername', 'cgroup_inet6_connect', 'cgroup_inet6_getpeername', 'cgroup_udp4_recvmsg', 'cgroup_udp4_sendmsg', 'cgroup_udp6_recvmsg', 'cgroup_udp6_sendmsg'].sort());
    expect(beacon('status', '--socket', join(dir, 'beacon.sock')).out).toMatch(/KPR:\s+\d+ frontends, \d+ backends; sockets only/);
  });

  it('connects TCP to the frontend on both backends, v4 and v6, and getpeername shows the frontend', async () => {
    for (const [ip, peer] of [[web4, `${web4}:80`], [web6, `${web6}:80`]] as const) {
      const r = await run<TcpResult>(['tcp', ip, 80, 40]);
      expect(r.errors).toEqual({});
      expect(Object.keys(r.names).sort()).toEqual(['be1', 'be2']);
      expect(Math.min(...Object.values(r.names))).toBeGreaterThanOrEqual(5);
      expect(r.peers).toEqual([peer]);
    }
  });

  it('sends UDP to a backend and shows replies as coming from the frontend, v4 and v6', async () => {
    for (const [ip, source] of [[web4, `${web4}:53`], [web6, `${web6}:53`]] as const) {
      const r = await run<UdpResult>(['udp', ip, 53, 10]);
      expect(r.errors).toEqual({});
      expect(Object.values(r.names).reduce((a, b) => a + b, 0)).toBe(10);
      expect(r.sources).toEqual([source]);
    }
  });

  it('keeps a client on one backend with ClientIP affinity, and spreads with Maglev', async () => {
    const sticky = await run<TcpResult>(['tcp', '198.18.100.11', 80, 30]);
    expect(sticky.errors).toEqual({});
    expect(Object.values(sticky.names)).toEqual([30]);
    const maglev = await run<TcpResult>(['tcp', '198.18.100.13', 80, 60]);
    expect(maglev.errors).toEqual({});
    expect(Object.keys(maglev.names).sort()).toEqual(['be1', 'be2', 'be3']);
  });

  it('balances the LoadBalancer IP LB-IPAM assigned and the NodePort on the node address', async () => {
    const lbIP = await eventually(() => {
      const ip = kprServices().find((s) => s.type === 'LoadBalancer')?.frontend.split(':')[0];
      expect(ip).toMatch(/^198\.18\.200\./);
      return ip!;
    }, 20_000, 'LoadBalancer frontend');
    for (const [ip, port] of [[lbIP, 80], ['198.18.0.1', 30080], ['198.18.100.20', 80]] as const) {
      const r = await run<TcpResult>(['tcp', ip, port, 5]);
      expect(r).toMatchObject({ errors: {}, names: { be3: 5 }, peers: [`${ip}:${port}`] });
    }
    expect(kprServices().filter((s) => s.backends[0]?.address === '198.18.0.4' && s.frontend.endsWith('/TCP')).map((s) => s.type).sort()).toEqual(['ClusterIP', 'LoadBalancer', 'NodePort']);
  });

  it('refuses connections to a service without ready backends (ECONNREFUSED, not a hang)', async () => {
    const r = await run<TcpResult>(['tcp', '198.18.100.12', 80, 3]);
    expect(r.errors).toEqual({ ECONNREFUSED: 3 });
  });

  it('keeps open connections when a backend is removed, and sends new ones elsewhere', async () => {
    const holding = lines(['hold', web4, 80, 6, 3000]);
    const connected = (await holding.next()) as { connected: string[] };
    expect(connected.connected).toContain('be2');
    try {
      put('web-v4.yaml', slice('web-v4', 'web', 'IPv4', [{ ip: '198.18.0.2' }]));
      await eventually(() => expect(backendsOf(`${web4}:80/TCP`)).toEqual(['198.18.0.2']), 10_000, 'be2 removed');
      const after = await run<TcpResult>(['tcp', web4, 80, 20]);
      expect(after).toMatchObject({ errors: {}, names: { be1: 20 } });
      // Every connection made before the removal, also those to be2, kept working throughout.
      const { held } = (await holding.next()) as { held: HoldResult[] };
      expect(held.map((h) => h.name)).toEqual(connected.connected);
      for (const h of held) expect(h).toMatchObject({ error: null, echoed: h.sent });
      expect(Math.min(...held.map((h) => h.sent))).toBeGreaterThan(10);
    } finally {
      put('web-v4.yaml', slice('web-v4', 'web', 'IPv4', [{ ip: '198.18.0.2' }, { ip: '198.18.0.3' }]));
    }
    await eventually(() => expect(backendsOf(`${web4}:80/TCP`)).toEqual(['198.18.0.2', '198.18.0.3']), 10_000, 'be2 back');
  });

  it('serves connections throughout an agent restart, and the new agent rewrites nothing', async () => {
    const loop = lines(['loop', web4, 80, 6000]);
    expect(await loop.next()).toHaveProperty('started');
    const old = agent!;
    await old.stop();
    expect(old.logs()).toContain('stopped');
    await new Promise((r) => setTimeout(r, 1500)); // the datapath runs alone
    const next = startAgent();
    await eventually(() => expect(next.logs()).toContain('datapath adopted'), 20_000, 'adoption');
    const r = (await loop.next()) as { names: Record<string, number>; errors: Record<string, number> };
    expect(r.errors).toEqual({});
    expect(Object.keys(r.names).sort()).toEqual(['be1', 'be2']);
    // Adopted maps already hold the desired state: the first full pass writes no operation.
    const synced = await eventually(() => {
      const record = next.records().find((l) => l.msg === 'datapath synced');
      expect(record).toBeDefined();
      return record!;
    }, 10_000, 'first sync');
    expect(synced.ops).toBe(0);
  });
});
