// Kubernetes mode end to end: the built `beacon operator` and `beacon agent` on the test API
// server (the production client, the API's rules): IPs and conditions on Services, one operator
// at a time with takeover after kill -9, an agent following its Node object, an API server
// restart and dropped watches mid-run, Events about its decisions, and the request rates at rest of
// the operator and of agents with L2 announcements on.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ipamConditionType } from '../api/index.js';
import { KubeApiServer } from './kube-apiserver.js';
import { beacon, BeaconProcess, eventually, freePort, sleep, stopAll } from './process.js';

interface KubeService {
  metadata: { name: string };
  status?: { loadBalancer?: { ingress?: { ip?: string }[] }; conditions?: { type: string; status: string }[] };
}
interface KubeEvent {
  type: string;
  reason: string;
  note: string;
  regarding: { kind: string; namespace?: string; name: string; uid?: string };
}
interface Status {
  node: string;
  roles: { operator: boolean; operatorHolder: string | null; agent: boolean };
  store: { backend: string; ok: boolean };
  l2: { enabled: boolean; liveNodes?: string[] };
}

const leaseMs = 3000;
const services = '/api/v1/namespaces/shop/services';
let server: KubeApiServer;
const dir = mkdtempSync(join(tmpdir(), 'beacon-kube-e2e-'));
const kubeconfig = join(dir, 'kubeconfig');

beforeAll(async () => {
  server = await KubeApiServer.start();
  writeFileSync(kubeconfig, server.kubeconfig());
  const pool = { apiVersion: 'beacon.io/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: 'lan' }, spec: { blocks: [{ cidr: '198.18.0.0/24' }] } };
  expect((await server.request('POST', '/apis/beacon.io/v1alpha1/loadbalancerippools', pool)).status).toBe(201);
});
afterAll(async () => {
  await stopAll();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

const sock = (name: string) => join(dir, `${name}.sock`);
const startOperator = (id: string) =>
  new BeaconProcess(id, ['operator', '--kubeconfig', kubeconfig, '--identity', id, '--socket', sock(id), '--lease-duration', `${leaseMs}ms`]);
const status = (name: string) => JSON.parse(beacon('status', '-o', 'json', '--socket', sock(name)).out) as Status;

async function createService(name: string): Promise<void> {
  const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'shop' }, spec: { type: 'LoadBalancer', ports: [{ port: 80 }] } };
  expect((await server.request('POST', services, svc)).status).toBe(201);
}

/** Each service's IPs as the API server holds them (its status, written by the operator). */
async function assigned(): Promise<Map<string, string>> {
  const { body } = await server.request<{ items: KubeService[] }>('GET', services);
  return new Map(body.items.map((s) => [s.metadata.name, (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip).join(',')]));
}

const waitForIPs = (names: string[], timeoutMs = 15_000) =>
  eventually(
    async () => {
      const ips = await assigned();
      const missing = names.filter((n) => !ips.get(n));
      if (missing.length > 0) throw new Error(`no IP yet: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`);
      return ips;
    },
    timeoutMs,
    'IPs on the services',
  );

describe('Kubernetes mode: beacon operator and beacon agent on the API server', { timeout: 180_000 }, () => {
  const operators = new Map<string, BeaconProcess>();
  let holder = '';

  it('assigns IPs with the condition, through the API server', async () => {
    for (const id of ['op-1', 'op-2']) operators.set(id, startOperator(id));
    await createService('web');
    await waitForIPs(['web']);
    const { body } = await server.request<KubeService>('GET', `${services}/web`);
    expect(body.status?.loadBalancer?.ingress).toEqual([{ ip: expect.stringMatching(/^198\.18\.0\.\d+$/) as string }]);
    expect(body.status?.conditions).toContainEqual(expect.objectContaining({ type: ipamConditionType, status: 'True' }));
  });

  it('records an IPAllocated Event regarding the Service (events.k8s.io/v1)', async () => {
    const { body: web } = await server.request<KubeService & { metadata: { uid: string } }>('GET', `${services}/web`);
    const ip = web.status?.loadBalancer?.ingress?.[0]?.ip;
    const events = await eventually(async () => {
      const { body } = await server.request<{ items: KubeEvent[] }>('GET', '/apis/events.k8s.io/v1/namespaces/shop/events');
      const found = body.items.filter((e) => e.reason === 'IPAllocated' && e.regarding.name === 'web');
      expect(found).toHaveLength(1);
      return found;
    }, 10_000, 'IPAllocated event');
    expect(events[0]).toMatchObject({
      type: 'Normal',
      regarding: { apiVersion: 'v1', kind: 'Service', namespace: 'shop', name: 'web', uid: web.metadata.uid },
      note: `assigned ${ip} from pool lan`,
      reportingController: 'beacon.io/beacon',
      reportingInstance: expect.stringMatching(/^op-[12]$/) as string,
    });
  });

  it('runs exactly one operator; after kill -9 the other takes over, keeps every IP and assigns new ones', async () => {
    const leaders = await eventually(() => {
      const l = [...operators.keys()].filter((id) => status(id).roles.operator);
      expect(l).toHaveLength(1);
      return l;
    }, 10_000);
    holder = leaders[0]!;
    const standby = [...operators.keys()].find((id) => id !== holder)!;
    await eventually(() => expect(status(standby)).toMatchObject({ roles: { operator: false, operatorHolder: holder, agent: false }, store: { backend: 'kubernetes', ok: true } }), 5000);
    await createService('api');
    const before = await waitForIPs(['web', 'api']);

    await operators.get(holder)!.kill('SIGKILL');
    const killedAt = Date.now();
    // Bounded by the lease plus the standby's retry interval and a margin; the figure is logged.
    await eventually(() => expect(status(standby).roles.operator).toBe(true), leaseMs + 2000, 'takeover');
    console.log(`takeover after kill -9: ${Date.now() - killedAt} ms (lease ${leaseMs} ms)`);
    holder = standby;
    expect(await assigned()).toEqual(before);
    await createService('after-takeover');
    const after = await waitForIPs(['after-takeover']);
    expect([...after].filter(([name]) => before.has(name))).toEqual([...before]);
  });

  it('runs the node agent: ready, shown in beacon status, following its Node object\'s labels', async () => {
    const node = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a', labels: { zone: 'a' } } };
    expect((await server.request('POST', '/api/v1/nodes', node)).status).toBe(201);
    const metricsPort = await freePort();
    const agent = new BeaconProcess('node-a', ['agent', '--kube-proxy-replacement', 'false', '--node-name', 'node-a', '--kubeconfig', kubeconfig, '--socket', sock('node-a'), '--metrics-addr', `127.0.0.1:${metricsPort}`, '--l2-announcements', 'false', '--bgp', 'false']);
    await eventually(async () => expect((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status).toBe(200), 15_000, 'agent ready');
    expect(status('node-a')).toMatchObject({ node: 'node-a', roles: { operator: false, agent: true }, store: { backend: 'kubernetes', ok: true } });
    const text = beacon('status', '--socket', sock('node-a')).out;
    expect(text).toMatch(/Node:\s+node-a/);
    const count = (await assigned()).size;
    expect(text).toContain(`Services:  ${count} (${count} with IPs, 0 waiting)`);

    const relabel = await server.request('PATCH', '/api/v1/nodes/node-a', { metadata: { labels: { zone: 'b' } } }, 'application/merge-patch+json');
    expect(relabel.status).toBe(200);
    await eventually(() => expect(agent.records()).toContainEqual(expect.objectContaining({ msg: 'node labels changed', labels: { zone: 'b' } })), 10_000);
    expect((await agent.stop()).code).toBe(0);
  });

  it('keeps working across an API server restart and dropped watches', async () => {
    await server.restart({ keepData: true });
    await createService('after-restart');
    await waitForIPs(['after-restart'], 30_000);
    server.dropWatches();
    await createService('after-drop');
    await waitForIPs(['after-drop'], 30_000);
    // Under load the restart can outlast the lease: the operator must hold it again, without a restart of its own.
    await eventually(() => expect(status(holder).roles.operator).toBe(true), 10_000, 'operator role after the restart');
  });

  it('runs beacon standalone on the Kubernetes store: agent and operator candidate in one process', async () => {
    const both = new BeaconProcess('both', ['standalone', '--kube-proxy-replacement', 'false', '--store', 'kubernetes', '--kubeconfig', kubeconfig, '--node-name', 'both', '--socket', sock('both'), '--l2-announcements', 'false', '--bgp', 'false', '--node-labels', 'zone=a']);
    await eventually(() => expect(status('both')).toMatchObject({ node: 'both', roles: { operator: false, operatorHolder: holder, agent: true }, store: { backend: 'kubernetes', ok: true } }), 15_000);
    expect((await both.stop()).code).toBe(0);
  });

  it('is quiet at rest with 100 services: lease renewals only', async () => {
    const names = Array.from({ length: 100 - 5 }, (_, i) => `bulk-${i}`);
    for (const n of names) await createService(n);
    const ips = await waitForIPs(names, 60_000);
    expect(ips.size).toBe(100);
    expect(new Set(ips.values()).size).toBe(100); // no IP given twice
    await sleep(1000); // let the last status writes and condition checks settle
    server.resetCounts();
    await sleep(3000);
    const counts = server.requestCounts().byVerb;
    console.log(`API requests of the operator over 3 s at rest with 100 services: ${JSON.stringify(counts)}`);
    expect(Object.keys(counts).filter((k) => !k.endsWith(' leases'))).toEqual([]);
  });

  it('runs agents with L2 announcements on under 2 API requests a second each at rest (100 services)', async () => {
    // No L2AnnouncementPolicy exists: the agents elect nothing and send no frame, but keep their
    // liveness leases and the live set as they would with policies.
    const names = ['l2-a', 'l2-b'];
    const agents: BeaconProcess[] = [];
    for (const name of names) {
      expect((await server.request('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name } })).status).toBe(201);
      // Its own user in the kubeconfig: the server counts its requests apart.
      const config = join(dir, `kubeconfig-${name}`);
      writeFileSync(config, server.kubeconfig(name));
      const flags = ['--node-name', name, '--kubeconfig', config, '--socket', sock(name), '--metrics-addr', `127.0.0.1:${await freePort()}`];
      agents.push(new BeaconProcess(name, ['agent', ...flags, '--kube-proxy-replacement', 'false', '--bgp', 'false']));
    }
    for (const name of names) await eventually(() => expect(status(name).l2).toEqual({ enabled: true, liveNodes: names, announcing: 0 }), 45_000, `${name} sees both nodes live`);
    await sleep(1000); // past the first list of every cache
    server.resetCounts();
    const windowS = 5;
    await sleep(windowS * 1000);
    const { byClient } = server.requestCounts();
    for (const name of names) {
      const mine = byClient[name] ?? { total: 0, byVerb: {} };
      console.log(`API requests of agent ${name} (L2 on) over ${windowS} s at rest with 100 services: ${mine.total} (${(mine.total / windowS).toFixed(1)}/s) ${JSON.stringify(mine.byVerb)}`);
      expect(mine.total).toBeLessThanOrEqual(2 * windowS);
      expect(mine.byVerb['list leases'] ?? 0).toBe(0); // the live set comes from the watch
    }
    expect(status('l2-a').l2.liveNodes).toEqual(names);
    for (const a of agents) expect((await a.stop()).code).toBe(0);
  });
});
