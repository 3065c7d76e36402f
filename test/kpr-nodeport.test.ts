// North-south load balancing end to end: `beacon standalone` runs inside a node namespace with
// the kube-proxy replacement on and `--devices eth0`, so its tc programs sit on the node's LAN
// interface. A client on the LAN reaches LoadBalancer IPs and NodePorts; the programs send each
// flow to a backend in a pod namespace behind the node (an endpoint on this node: DNAT only) or
// on another node across the LAN (DNAT and SNAT to the node's eth0 address).
//
//   client 198.18.0.1 ─┐                 ┌─ node eth1 198.19.1.1 ── pod 198.19.1.10 (local backend)
//   node   198.18.0.2 ─┼─ LAN (bridge) ──┘
//   other  198.18.0.3 ─┘  other eth1 198.19.2.1 ── remote-pod 198.19.2.10 (remote backend; the node
//                                                  routes 198.19.2.0/24 via other)
//   (IPv6 alike: 2001:db8::/64 on the LAN, 2001:db8:1::/64 and 2001:db8:2::/64 to the pods)
// Each pod has one address: an unbound UDP server answers from the address routing picks.
//
// `ip netns exec` gives the agent a fresh /sys without bpffs or cgroup2, so both are mounted in
// a temporary folder the namespaces share (mounts made before the exec are copied into it); the
// pins are then visible from the host too, where `beacon kpr services` reads them.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceDescription } from '../kpr/index.js';
import { Lab, type LabHost, type LabProcess } from '../lab/index.js';
import { beacon, beaconBin, eventually, root } from './process.js';

const child = join(root, 'test', 'kpr-child.ts');
const nodeName = 'node-1';
const addr = {
  4: { client: '198.18.0.1', node: '198.18.0.2', other: '198.18.0.3', pod: '198.19.1.10', remote: '198.19.2.10', web: '198.18.200.1', local: '198.18.200.2', none: '198.18.200.3' },
  6: { client: '2001:db8::1', node: '2001:db8::2', other: '2001:db8::3', pod: '2001:db8:1::10', remote: '2001:db8:2::10', web: '2001:db8:200::1', local: '2001:db8:200::2', none: '2001:db8:200::3' },
} as const;
type Family = keyof typeof addr;
const families: Family[] = [4, 6];
const BACKEND_PORT = 8080;

/** A dual-stack LoadBalancer whose IPs are requested from the pool; each port a fixed NodePort. */
const lbService = (name: 'web' | 'local' | 'none', n: number, opts: { local?: { healthCheckNodePort: number } } = {}) => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: shop, annotations: {beacon.io/ips: "${addr[4][name]},${addr[6][name]}"}}
spec:
  type: LoadBalancer
  clusterIP: "198.18.100.${n}"
  clusterIPs: ["198.18.100.${n}", "2001:db8:100::${n}"]
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  ports: [{name: http, port: 80, protocol: TCP, nodePort: ${30080 + n}}, {name: dns, port: 53, protocol: UDP, nodePort: ${30080 + n}}, {name: web, port: 8000, protocol: TCP, nodePort: ${30180 + n}}]${
    opts.local ? `\n  externalTrafficPolicy: Local\n  healthCheckNodePort: ${opts.local.healthCheckNodePort}` : ''
  }
`;
/** The pod is on this node (nodeName = the agent's), the remote backend on node-2. */
const slice = (service: string, family: Family, backends: ('pod' | 'remote')[]) => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${service}-v${family}, namespace: shop, labels: {kubernetes.io/service-name: ${service}}}
addressType: IPv${family}
ports: [{name: http, port: ${BACKEND_PORT}, protocol: TCP}, {name: dns, port: ${BACKEND_PORT}, protocol: UDP}, {name: web, port: ${BACKEND_PORT + 1}, protocol: TCP}]
endpoints: [${backends.map((b) => `{addresses: ["${addr[family][b]}"], conditions: {ready: true}, nodeName: ${b === 'pod' ? nodeName : 'node-2'}}`).join(', ')}]
`;

interface Answers {
  names: Record<string, number>;
  errors: Record<string, number>;
  peers?: string[];
  sources?: string[];
}
interface HoldResult {
  name: string;
  sent: number;
  echoed: number;
  error: string | null;
}

const hostPort = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

describe('north-south load balancing through beacon standalone (tc programs on the node)', { timeout: 300_000 }, () => {
  let lab: Lab | undefined;
  let dir = '';
  let cgroup = '';
  /** Undo steps, pushed as each thing is made; afterAll runs them in reverse, all of them. */
  const undo: (() => unknown)[] = [];
  let client: LabHost;
  let node: LabHost;
  let agent: LabProcess | undefined;
  let starts = 0;
  const bpfRoot = () => join(dir, 'bpf', 'beacon');
  const socket = () => join(dir, 'beacon.sock');
  const put = (file: string, text: string) => writeFileSync(join(dir, 'manifests', file), text);

  /** The agent inside the node namespace: tc programs on the devices given, socket hooks on the test cgroup. */
  async function startAgent(devices: string): Promise<LabProcess> {
    const p = await node.spawn(`agent-${++starts}`, process.execPath, [
      beaconBin, 'standalone', '--node-name', nodeName, '--manifests', join(dir, 'manifests'), '--state-dir', join(dir, 'state'),
      '--socket', socket(), '--l2-announcements', 'false', '--bgp', 'false',
      '--kube-proxy-replacement', 'true', '--cgroup-root', cgroup, '--bpf-root', bpfRoot(), '--devices', devices,
    ], { cwd: root });
    agent = p;
    await p.waitForLog('kube-proxy replacement running', 30_000);
    return p;
  }

  /** A client mode of kpr-child in the client namespace; its last JSON line. */
  async function ask<T = Answers>(args: (string | number)[], timeoutMs = 30_000): Promise<T> {
    const r = await client.exec(process.execPath, ['--import', 'tsx', child, ...args.map(String)], { timeoutMs });
    if (r.code !== 0) throw new Error(`kpr-child ${args.join(' ')} failed: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
  }

  /** A long-running client mode: printed() counts its JSON lines so far, line(i) waits for the i-th. */
  async function stream(name: string, args: (string | number)[]) {
    const p = await client.spawn(name, process.execPath, ['--import', 'tsx', child, ...args.map(String)], { cwd: root });
    const lines = () => p.logs().split('\n').filter((l) => l.startsWith('{'));
    return {
      printed: () => lines().length,
      line: <T>(index: number, timeoutMs = 30_000) =>
        eventually(() => {
          const now = lines();
          if (now.length <= index) throw new Error(`${now.length} lines so far; log: ${p.logs().slice(-500)}`);
          return JSON.parse(now[index]!) as T;
        }, timeoutMs, `${name} line ${index}`),
    };
  }

  const kprServices = (): ServiceDescription[] => {
    const r = beacon('kpr', 'services', '-o', 'json', '--bpf-root', bpfRoot());
    if (r.code !== 0) throw new Error(r.err);
    return JSON.parse(r.out) as ServiceDescription[];
  };
  const backendsOf = (ip: string, port: number) =>
    kprServices()
      .find((s) => s.frontend === `${hostPort(ip, port)}/TCP`)
      ?.backends.map((b) => b.address)
      .sort() ?? [];
  /** kpr/nodeport-datapath.ts's filter handle (nodeportFilter), as tc prints it. */
  const ourFilter = /handle 0xbeac /;
  const ingressFilters = async () => (await node.exec('tc', ['filter', 'show', 'dev', 'eth0', 'ingress'])).stdout;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'beacon-np-'));
    undo.push(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, 'manifests'));
    // Our own bpffs instance: unmounting it removes every pin the agent made.
    for (const [fstype, mountpoint] of [['bpf', join(dir, 'bpf')], ['cgroup2', join(dir, 'cgroup')]] as const) {
      mkdirSync(mountpoint);
      execFileSync('mount', ['-t', fstype, fstype, mountpoint], { timeout: 10_000 });
      undo.push(() => execFileSync('umount', [mountpoint], { timeout: 10_000 }));
    }
    cgroup = join(dir, 'cgroup', `beacon-test-np-${process.pid}`);
    mkdirSync(cgroup);
    undo.push(() => rmdirSync(cgroup));

    lab = await Lab.create({ name: 'kpr-np' });
    // Deleting the namespaces stops the agent and the servers, and takes the tc filters with the devices.
    undo.push(() => lab!.destroy({ graceMs: 6_000 }).catch(() => lab!.destroySync()));
    const lan = await lab.bridge('lan');
    client = await lab.host('client');
    node = await lab.host('node', { forwarding: true });
    const other = await lab.host('other', { forwarding: true });
    const pod = await lab.host('pod');
    const remotePod = await lab.host('remote-pod');
    for (const [host, key] of [[client, 'client'], [node, 'node'], [other, 'other']] as const) {
      await lab.attach(host, lan, { ifname: 'eth0', addresses: [`${addr[4][key]}/24`, `${addr[6][key]}/64`] });
    }
    for (const [nodeHost, podHost, key, net] of [[node, pod, 'pod', 1], [other, remotePod, 'remote', 2]] as const) {
      await lab.link(nodeHost, podHost, {
        a: { ifname: 'eth1', addresses: [`198.19.${net}.1/24`, `2001:db8:${net}::1/64`] },
        b: { ifname: 'eth0', addresses: [`${addr[4][key]}/24`, `${addr[6][key]}/64`] },
      });
      await podHost.addRoute('default', { via: `198.19.${net}.1` });
      await podHost.addRoute('default', { via: `2001:db8:${net}::1` });
    }
    // The other node's pods are reached by the node's routing, across the LAN.
    await node.addRoute('198.19.2.0/24', { via: addr[4].other });
    await node.addRoute('2001:db8:2::/64', { via: addr[6].other });
    // The service addresses are routed to the node (what L2 announcement or BGP would arrange).
    await client.addRoute('198.18.200.0/24', { via: addr[4].node });
    await client.addRoute('2001:db8:200::/64', { via: addr[6].node });

    for (const [host, name] of [[pod, 'local'], [remotePod, 'remote']] as const) {
      const server = await host.spawn(`${name}-server`, process.execPath, ['--import', 'tsx', child, 'serve-peer', name, String(BACKEND_PORT)], { cwd: root });
      await server.waitForLog('listening', 20_000);
    }

    put('pool.yaml', 'apiVersion: beacon.io/v1alpha1\nkind: LoadBalancerIPPool\nmetadata: {name: lan}\nspec:\n  blocks: [{cidr: 198.18.200.0/28}, {cidr: "2001:db8:200::/124"}]\n');
    put('web.yaml', lbService('web', 0));
    put('local.yaml', lbService('local', 1, { local: { healthCheckNodePort: 32001 } }));
    put('none.yaml', lbService('none', 2, { local: { healthCheckNodePort: 32002 } }));
    for (const family of families) {
      put(`web-v${family}.yaml`, slice('web', family, ['pod', 'remote']));
      put(`local-v${family}.yaml`, slice('local', family, ['pod', 'remote']));
      put(`none-v${family}.yaml`, slice('none', family, ['remote']));
    }
    await startAgent('eth0');
    await eventually(() => {
      for (const family of families) expect(backendsOf(addr[family].web, 80)).toEqual([addr[family].pod, addr[family].remote].sort());
    }, 30_000, 'LoadBalancer IPs programmed');
  }, 180_000);

  afterAll(async () => {
    const errors: unknown[] = [];
    for (const step of undo.reverse()) await Promise.resolve().then(step).catch((e: unknown) => errors.push(e));
    if (errors.length > 0) throw errors[0];
  }, 60_000);

  // The local backend sees the client; the remote one the node, whose address is the SNAT source.
  const local = (family: Family) => `local ${addr[family].client}`;
  const remote = (family: Family) => `remote ${addr[family].node}`;

  describe.each(families)('IPv%s', (family) => {
    const a = addr[family];
    it.each([
      ['the LoadBalancer IP', a.web, 80],
      ['the NodePort on the node address', a.node, 30080],
    ])('TCP to %s reaches both backends; only the remote one sees the node address', async (_what, ip, port) => {
      const r = await ask(['tcp', ip, port, 24]);
      expect(r.errors).toEqual({});
      expect(Object.keys(r.names).sort()).toEqual([local(family), remote(family)].sort());
      expect(r.peers).toEqual([`${ip}:${port}`]);
    });

    it.each([
      ['the LoadBalancer IP', a.web, 53],
      ['the NodePort on the node address', a.node, 30080],
    ])('UDP to %s reaches both backends, every answer from the frontend', async (_what, ip, port) => {
      const r = await ask(['udp-flows', ip, port, 24]);
      expect(r.errors).toEqual({});
      expect(Object.keys(r.names).sort()).toEqual([local(family), remote(family)].sort());
      expect(r.sources).toEqual([`${ip}:${port}`]);
    });

    it.each([
      ['the LoadBalancer IP', a.web, 8000],
      ['the NodePort on the node address', a.node, 30180],
    ])('curl through %s gets HTTP answers from both backends', async (_what, ip, port) => {
      const url = `http://${family === 6 ? `[${ip}]` : ip}:${port}/`;
      const seen = new Set<string>();
      for (let i = 0; i < 16 && seen.size < 2; i++) {
        const r = await client.exec('curl', ['-sS', '-g', '--max-time', '5', '-w', '%{http_code}', url]); // the body ends with a newline
        expect(r.stdout.trim().split('\n')).toEqual([expect.stringMatching(/^(local|remote) /), '200']);
        seen.add(r.stdout.trim().split('\n')[0]!);
      }
      expect([...seen].sort()).toEqual([local(family), remote(family)].sort());
    });

    it('externalTrafficPolicy Local: only the local backend, which sees the client', async () => {
      for (const [ip, port] of [[a.local, 80], [a.node, 30081]] as const) {
        expect(await ask(['tcp', ip, port, 12])).toMatchObject({ errors: {}, names: { [local(family)]: 12 } });
      }
      expect(await ask(['udp-flows', a.local, 53, 6])).toMatchObject({ errors: {}, names: { [local(family)]: 6 } });
    });
  });

  it('healthCheckNodePort answers the client: 200 with the local endpoint count, 503 with none', async () => {
    const probe = async (port: number) => {
      const r = await client.exec('curl', ['-sS', '--max-time', '5', '-w', '\n%{http_code}', `http://${addr[4].node}:${port}/healthz`]);
      const lines = r.stdout.trim().split('\n');
      return { code: Number(lines.pop()), body: JSON.parse(lines.join('\n')) as { localEndpoints: number; service: { namespace: string; name: string } } };
    };
    // The pod is one local endpoint per family: its IPv4 and its IPv6 address.
    expect(await probe(32001)).toMatchObject({ code: 200, body: { localEndpoints: 2, service: { namespace: 'shop', name: 'local' } } });
    expect(await probe(32002)).toMatchObject({ code: 503, body: { localEndpoints: 0, service: { namespace: 'shop', name: 'none' } } });
  });

  it('an open TCP connection and new ones survive an agent restart; status names eth0', async () => {
    expect(beacon('status', '--socket', socket()).out).toMatch(/KPR:\s+\d+ frontends, \d+ backends; sockets and eth0/);
    const holding = await stream('hold-restart', ['hold', addr[4].web, 80, 4, 20_000]);
    const { connected } = await holding.line<{ connected: string[] }>(0);
    expect(new Set(connected)).toEqual(new Set([local(4), remote(4)]));

    await agent!.stop(6_000);
    // With no agent at all, the programs and maps keep serving new connections.
    expect(await ask(['tcp', addr[4].web, 80, 10])).toMatchObject({ errors: {} });
    const next = await startAgent('eth0');
    await eventually(() => expect(next.logs()).toContain('datapath adopted'), 20_000, 'adoption');
    expect(await ask(['tcp', addr[6].web, 80, 10])).toMatchObject({ errors: {} });
    expect(beacon('status', '--socket', socket()).out).toMatch(/sockets and eth0/);
    expect(holding.printed()).toBe(1); // still holding: the connections span the restart

    const { held } = await holding.line<{ held: HoldResult[] }>(1, 40_000);
    expect(held.map((h) => h.name)).toEqual(connected);
    for (const h of held) expect(h).toMatchObject({ error: null, echoed: h.sent });
    expect(Math.min(...held.map((h) => h.sent))).toBeGreaterThan(50);
  });

  it('backend churn: after the removal is applied no new connection reaches the removed backend; the survivor keeps its connections', async () => {
    const holding = await stream('hold-churn', ['hold', addr[4].web, 80, 4, 15_000]);
    const { connected } = await holding.line<{ connected: string[] }>(0);
    const newConnections = await stream('loop-churn', ['loop', addr[4].web, 80, 10_000]);
    await newConnections.line(0);
    try {
      put('web-v4.yaml', slice('web', 4, ['pod']));
      await eventually(() => expect(backendsOf(addr[4].web, 80)).toEqual([addr[4].pod]), 15_000, 'remote backend removed');
      expect([holding.printed(), newConnections.printed()]).toEqual([1, 1]); // both still running across the change
      const after = await ask(['tcp', addr[4].web, 80, 20]);
      expect(after).toMatchObject({ errors: {}, names: { [local(4)]: 20 } });
      // Connections kept opening while the change was applied, and none failed.
      const loop = await newConnections.line<Answers>(1);
      expect(loop.errors).toEqual({});
      const { held } = await holding.line<{ held: HoldResult[] }>(1, 40_000);
      expect(held.map((h) => h.name)).toEqual(connected);
      for (const h of held.filter((x) => x.name === local(4))) expect(h).toMatchObject({ error: null, echoed: h.sent });
    } finally {
      put('web-v4.yaml', slice('web', 4, ['pod', 'remote']));
    }
    await eventually(() => expect(backendsOf(addr[4].web, 80)).toEqual([addr[4].pod, addr[4].remote].sort()), 15_000, 'remote backend back');
  });

  it('--devices none after a restart takes the programs off eth0; --devices eth0 puts them back', async () => {
    expect(await ingressFilters()).toMatch(ourFilter);
    await agent!.stop(6_000);
    await startAgent('none');
    expect(await ingressFilters()).not.toMatch(ourFilter);
    expect(beacon('status', '--socket', socket()).out).toMatch(/sockets only/);
    expect(await ask(['tcp', addr[4].web, 80, 1], 10_000)).toMatchObject({ names: {} }); // nothing answers for the LB IP now

    await agent!.stop(6_000);
    await startAgent('eth0');
    expect(await ingressFilters()).toMatch(ourFilter);
    expect(await ask(['tcp', addr[4].web, 80, 12])).toMatchObject({ errors: {} });
  });
});
