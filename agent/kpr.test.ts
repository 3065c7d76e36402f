// KprAgent against a simulated datapath: real Reflectors over the in-memory store feed it
// Services and EndpointSlices; the fake keeps the maps as the kernel would (service entries with a
// count, slots, Maglev tables, backends) and reads them back as SocketDatapath does.
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { EndpointSlice, Service } from '../api/index.js';
import {
  describeServices,
  frontendKey,
  statNames,
  type Algorithm,
  type DatapathState,
  type FrontendType,
  type Op,
  type ServiceDescription,
} from '../kpr/index.js';
import { Reflector, type StoredObject } from '../store/index.js';
import { MemoryStore } from '../test/memory-store.js';
import { eventually } from '../test/process.js';
import { KprAgent, type Datapath } from './kpr.js';
import { createLogger } from './log.js';
import { createMetrics } from './metrics.js';
import { MapSimulator } from '../kpr/map-simulator.js';

/** A beacon_svc entry: the frontend's slots are counted, not listed. */

/** The maps as the kernel holds them, written op by op; `failNext` fails a write before its last op. */
class FakeDatapath extends MapSimulator implements Datapath {
  readonly calls: Op[][] = [];
  failNext = false;
  closed = false;

  apply(ops: readonly Op[]): void {
    this.calls.push([...ops]);
    const upTo = this.failNext ? ops.length - 1 : ops.length;
    for (const op of ops.slice(0, upTo)) this.write(op);
    if (this.failNext) {
      this.failNext = false;
      throw new Error('bpf_map_update_batch: ENOMEM');
    }
  }

  stats() {
    return Object.fromEntries(statNames.map((n) => [n, 0])) as ReturnType<Datapath['stats']>;
  }

  close(): void {
    this.closed = true;
  }

  /** Ops written since call number `from`. */
  opsSince(from: number): Op[] {
    return this.calls.slice(from).flat();
  }
}

const logLines: string[] = [];
const log = createLogger({
  destination: new Writable({
    write: (chunk: Buffer, _e, done) => {
      logLines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  }),
});

const service = (name: string, spec: Partial<Service['spec']>, annotations?: Record<string, string>): Service => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'shop', ...(annotations ? { annotations } : {}) },
  spec: { type: 'ClusterIP', ports: [{ name: 'http', port: 80, protocol: 'TCP' }], ...spec },
});

const slice = (name: string, svc: string, ips: string[], family: 'IPv4' | 'IPv6' = 'IPv4'): EndpointSlice => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name, namespace: 'shop', labels: { 'kubernetes.io/service-name': svc } },
  addressType: family,
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
});

const as = (o: object) => o as unknown as StoredObject;
const active = (...addresses: string[]): ServiceDescription['backends'] => addresses.map((address) => ({ address, port: 8080, state: 'active' }));
const row = (frontend: string, type: FrontendType, backends: ServiceDescription['backends'], algorithm: Algorithm = 'random'): ServiceDescription => ({ frontend, type, algorithm, backends });

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

async function startAgent(store: MemoryStore, opts: { datapath?: FakeDatapath; nodeAddresses?: () => string[] } = {}) {
  const datapath = opts.datapath ?? new FakeDatapath();
  const metrics = createMetrics();
  const services = new Reflector(store, 'Service', { backoffMs: 5 });
  const slices = new Reflector(store, 'EndpointSlice', { backoffMs: 5 });
  await Promise.all([services.start(), slices.start()]);
  const agent = new KprAgent({
    nodeName: 'node-a',
    nodeAddresses: opts.nodeAddresses ?? (() => ['198.18.0.10']),
    services,
    slices,
    datapath,
    options: { maglevTableSize: 251, lbMapMax: 1024, defaultAlgorithm: 'random' },
    log,
    metrics,
  });
  agent.start();
  stops.push(() => {
    services.stop();
    slices.stop();
  });
  stops.push(() => agent.stop());
  const problems = async (reason: string) => (await metrics.kprProblems.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
  return { agent, datapath, metrics, problems };
}

const contents = (datapath: FakeDatapath) => describeServices(datapath.read());

/** The frontends (named by key, also for ops that only carry a service id) and backends (key, or id when deleted) the ops touch. */
function touched(ops: readonly Op[], state: DatapathState): { frontends: Set<string>; backends: Set<string> } {
  const frontends = new Set<string>();
  const backends = new Set<string>();
  const byId = new Map([...state.services.values()].map((s) => [s.id, frontendKey(s.frontend)]));
  for (const op of ops) {
    if (op.op === 'upsertBackend') backends.add(frontendKey(op.backend));
    else if (op.op === 'deleteBackend') backends.add(String(op.id));
    else if (op.op === 'upsertService' || op.op === 'deleteService') frontends.add(frontendKey(op.service.frontend));
    else frontends.add(byId.get(op.serviceId) ?? `id ${op.serviceId}`);
  }
  return { frontends, backends };
}

describe('KprAgent', () => {
  it('programs services and slices of both families into the datapath', async () => {
    const store = new MemoryStore();
    await store.apply(as(service('web', { clusterIP: '198.18.100.1', clusterIPs: ['198.18.100.1', '2001:db8:100::1'], externalIPs: ['198.18.200.1'] })));
    await store.apply(as(service('api', { clusterIP: '198.18.100.2', sessionAffinity: 'ClientIP' })));
    await store.apply(as(slice('web-4', 'web', ['198.18.1.2', '198.18.1.1'])));
    await store.apply(as(slice('web-6', 'web', ['2001:db8:1::1'], 'IPv6')));
    await store.apply(as(slice('api-4', 'api', ['198.18.1.3'])));
    const { agent, datapath } = await startAgent(store);
    await eventually(() =>
      expect(contents(datapath)).toEqual([
        row('198.18.100.1:80/TCP', 'ClusterIP', active('198.18.1.1', '198.18.1.2')),
        row('198.18.100.2:80/TCP', 'ClusterIP', active('198.18.1.3')),
        row('198.18.200.1:80/TCP', 'ExternalIP', active('198.18.1.1', '198.18.1.2')),
        row('[2001:db8:100::1]:80/TCP', 'ClusterIP', active('2001:db8:1::1')),
      ]),
    );
    expect(datapath.read().services.get('198.18.100.2:80/TCP')?.affinityTimeoutSeconds).toBe(10800);
    expect([agent.frontends, agent.backends]).toEqual([4, 4]);
  });

  it('re-plans only the service whose slice changed', async () => {
    const store = new MemoryStore();
    await store.apply(as(service('web', { clusterIP: '198.18.100.1', externalIPs: ['198.18.200.1'] })));
    await store.apply(as(service('api', { clusterIP: '198.18.100.2' }, { 'beacon.io/lb-algorithm': 'maglev' })));
    await store.apply(as(slice('web-4', 'web', ['198.18.1.1', '198.18.1.2'])));
    await store.apply(as(slice('api-4', 'api', ['198.18.1.3', '198.18.1.4'])));
    const { datapath } = await startAgent(store);
    await eventually(() => expect(datapath.read().services.size).toBe(3));
    const before = datapath.read();
    const from = datapath.calls.length;
    await store.apply(as(slice('web-4', 'web', ['198.18.1.1', '198.18.1.5'])));
    await eventually(() => expect(contents(datapath)[0]!.backends).toEqual(active('198.18.1.1', '198.18.1.5')));
    const ops = datapath.opsSince(from);
    const removed = String([...before.backends.values()].find((b) => b.address === '198.18.1.2')!.id);
    expect(touched(ops, before)).toEqual({ frontends: new Set(['198.18.100.1:80/TCP', '198.18.200.1:80/TCP']), backends: new Set(['198.18.1.5:8080/TCP', removed]) });
    // The other service's entries, Maglev table included, are untouched.
    expect(datapath.read().services.get('198.18.100.2:80/TCP')).toEqual(before.services.get('198.18.100.2:80/TCP'));
  });

  it('removes a deleted service\'s frontends and the backends nobody else uses', async () => {
    const store = new MemoryStore();
    await store.apply(as(service('web', { clusterIP: '198.18.100.1' })));
    await store.apply(as(service('api', { clusterIP: '198.18.100.2' })));
    await store.apply(as(slice('web-4', 'web', ['198.18.1.1', '198.18.1.2'])));
    await store.apply(as(slice('api-4', 'api', ['198.18.1.2', '198.18.1.3'])));
    const { datapath } = await startAgent(store);
    await eventually(() => expect(datapath.read().backends.size).toBe(3));
    await store.delete({ kind: 'Service', namespace: 'shop', name: 'web' });
    await eventually(() => expect(contents(datapath)).toEqual([row('198.18.100.2:80/TCP', 'ClusterIP', active('198.18.1.2', '198.18.1.3'))]));
    expect([...datapath.backends.values()].map((b) => b.address).sort()).toEqual(['198.18.1.2', '198.18.1.3']);
    expect([...datapath.slots.keys()]).toHaveLength(2);
  });

  it('gives a contested frontend to the service holding it, and hands it over when the holder goes', async () => {
    const store = new MemoryStore();
    // zeta comes first; alpha, which sorts first by name, asks for the same external IP later.
    await store.apply(as(service('zeta', { clusterIP: '198.18.100.1', externalIPs: ['198.18.200.1'] })));
    await store.apply(as(slice('zeta-4', 'zeta', ['198.18.1.1'])));
    await store.apply(as(slice('alpha-4', 'alpha', ['198.18.1.9'])));
    const { datapath, problems } = await startAgent(store);
    await eventually(() => expect(datapath.read().services.size).toBe(2));
    await store.apply(as(service('alpha', { clusterIP: '198.18.100.2', externalIPs: ['198.18.200.1'] })));
    await eventually(() => expect(datapath.read().services.size).toBe(3));
    await eventually(async () => expect(await problems('frontend_conflict')).toBe(1));
    expect(contents(datapath).find((r) => r.frontend === '198.18.200.1:80/TCP')?.backends).toEqual(active('198.18.1.1'));
    expect(logLines.some((l) => l.includes('"reason":"frontend_conflict"') && l.includes('198.18.200.1:80/TCP is already served for shop/zeta'))).toBe(true);

    await store.delete({ kind: 'Service', namespace: 'shop', name: 'zeta' });
    await eventually(() =>
      expect(contents(datapath)).toEqual([
        row('198.18.100.2:80/TCP', 'ClusterIP', active('198.18.1.9')),
        row('198.18.200.1:80/TCP', 'ExternalIP', active('198.18.1.9')),
      ]),
    );
    await eventually(async () => expect(await problems('frontend_conflict')).toBe(0));
  });

  it('keeps a contested frontend with its holder through a full pass', async () => {
    const store = new MemoryStore();
    await store.apply(as(service('zeta', { externalIPs: ['198.18.200.1'] })));
    await store.apply(as(slice('zeta-4', 'zeta', ['198.18.1.1'])));
    await store.apply(as(slice('alpha-4', 'alpha', ['198.18.1.9'])));
    const { agent, datapath, problems } = await startAgent(store);
    await eventually(() => expect(datapath.read().services.size).toBe(1));
    await store.apply(as(service('alpha', { externalIPs: ['198.18.200.1'] })));
    await eventually(async () => expect(await problems('frontend_conflict')).toBe(1));
    const calls = datapath.calls.length;
    agent.nodeAddressesChanged(); // a full pass, as the periodic resync makes
    await eventually(() => expect(datapath.calls.length).toBeGreaterThan(calls));
    expect(contents(datapath)).toEqual([row('198.18.200.1:80/TCP', 'ExternalIP', active('198.18.1.1'))]);
  });

  it('hands a frontend over when the holder goes, also when the conflict was found at start', async () => {
    const store = new MemoryStore();
    await store.apply(as(service('alpha', { externalIPs: ['198.18.200.1'] })));
    await store.apply(as(service('zeta', { externalIPs: ['198.18.200.1'] })));
    await store.apply(as(slice('alpha-4', 'alpha', ['198.18.1.1'])));
    await store.apply(as(slice('zeta-4', 'zeta', ['198.18.1.9'])));
    const { datapath, problems } = await startAgent(store);
    await eventually(async () => expect(await problems('frontend_conflict')).toBe(1));
    expect(contents(datapath)).toEqual([row('198.18.200.1:80/TCP', 'ExternalIP', active('198.18.1.1'))]);
    await store.delete({ kind: 'Service', namespace: 'shop', name: 'alpha' });
    await eventually(() => expect(contents(datapath)).toEqual([row('198.18.200.1:80/TCP', 'ExternalIP', active('198.18.1.9'))]), 3000);
  });

  it('adopts a datapath that already holds the desired state without writing anything', async () => {
    const store = new MemoryStore();
    await store.apply(as(service('web', { clusterIP: '198.18.100.1', clusterIPs: ['198.18.100.1', '2001:db8:100::1'] })));
    await store.apply(as(service('api', { clusterIP: '198.18.100.2' }, { 'beacon.io/lb-algorithm': 'maglev' })));
    await store.apply(as(slice('web-4', 'web', ['198.18.1.1', '198.18.1.2'])));
    await store.apply(as(slice('web-6', 'web', ['2001:db8:1::1'], 'IPv6')));
    await store.apply(as(slice('api-4', 'api', ['198.18.1.3', '198.18.1.4'])));
    const first = await startAgent(store);
    await eventually(() => expect(first.datapath.read().services.size).toBe(3));
    const kernel = first.datapath;
    await first.agent.stop();
    expect(kernel.closed).toBe(true);
    const restarted = new FakeDatapath();
    Object.assign(restarted, { services: kernel.services, slots: kernel.slots, maglev: kernel.maglev, backends: kernel.backends });
    const second = await startAgent(store, { datapath: restarted });
    await eventually(() => expect(restarted.calls.length).toBeGreaterThan(0));
    expect(restarted.calls.flat()).toEqual([]);
    expect([second.agent.frontends, second.agent.backends]).toEqual([3, 5]);
  });

  it('re-reads the maps after a failed write and converges on the next pass', async () => {
    const store = new MemoryStore();
    await store.apply(as(service('web', { clusterIP: '198.18.100.1' })));
    await store.apply(as(slice('web-4', 'web', ['198.18.1.1', '198.18.1.2'])));
    const { datapath } = await startAgent(store);
    await eventually(() => expect(datapath.read().services.size).toBe(1));
    datapath.failNext = true;
    await store.apply(as(service('api', { clusterIP: '198.18.100.2' })));
    await store.apply(as(slice('api-4', 'api', ['198.18.1.3', '198.18.1.4', '198.18.1.5'])));
    await eventually(() => expect(datapath.failNext).toBe(false));
    expect(logLines.some((l) => l.includes('datapath write failed'))).toBe(true);
    await eventually(
      () =>
        expect(contents(datapath)).toEqual([
          row('198.18.100.1:80/TCP', 'ClusterIP', active('198.18.1.1', '198.18.1.2')),
          row('198.18.100.2:80/TCP', 'ClusterIP', active('198.18.1.3', '198.18.1.4', '198.18.1.5')),
        ]),
      5000,
    );
    // The agent's view is the maps' again: a later edit plans against the truth.
    await store.apply(as(slice('api-4', 'api', ['198.18.1.3'])));
    await eventually(() => expect(contents(datapath)[1]!.backends).toEqual(active('198.18.1.3')));
    expect([...datapath.backends.values()].map((b) => b.address).sort()).toEqual(['198.18.1.1', '198.18.1.2', '198.18.1.3']);
  });

  it('leaves no stray slots when a failed write is followed by an edit', async () => {
    const store = new MemoryStore();
    await store.apply(as(service('web', { clusterIP: '198.18.100.1' })));
    const { datapath } = await startAgent(store);
    await eventually(() => expect(datapath.read().services.size).toBe(1));
    datapath.failNext = true; // the slots of the new frontend are written, its service entry is not
    await store.apply(as(slice('web-4', 'web', ['198.18.1.1', '198.18.1.2', '198.18.1.3'])));
    await eventually(() => expect(datapath.failNext).toBe(false));
    await store.apply(as(slice('web-4', 'web', ['198.18.1.1'])));
    await eventually(() => expect(contents(datapath)).toEqual([row('198.18.100.1:80/TCP', 'ClusterIP', active('198.18.1.1'))]));
    expect([...datapath.slots.keys()]).toHaveLength(1);
  });

  it('adds NodePort frontends for new node addresses', async () => {
    const store = new MemoryStore();
    await store.apply(as(service('web', { type: 'NodePort', clusterIP: '198.18.100.1', ports: [{ name: 'http', port: 80, nodePort: 30080, protocol: 'TCP' }] })));
    await store.apply(as(slice('web-4', 'web', ['198.18.1.1'])));
    let addresses = ['198.18.0.10'];
    const { agent, datapath } = await startAgent(store, { nodeAddresses: () => addresses });
    await eventually(() => expect(contents(datapath).map((r) => r.frontend)).toEqual(['198.18.0.10:30080/TCP', '198.18.100.1:80/TCP']));
    addresses = ['198.18.0.10', '198.18.0.11'];
    agent.nodeAddressesChanged();
    await eventually(() =>
      expect(contents(datapath)).toEqual([
        row('198.18.0.10:30080/TCP', 'NodePort', active('198.18.1.1')),
        row('198.18.0.11:30080/TCP', 'NodePort', active('198.18.1.1')),
        row('198.18.100.1:80/TCP', 'ClusterIP', active('198.18.1.1')),
      ]),
    );
    addresses = ['198.18.0.11'];
    agent.nodeAddressesChanged();
    await eventually(() => expect(contents(datapath).map((r) => r.frontend)).toEqual(['198.18.0.11:30080/TCP', '198.18.100.1:80/TCP']));
  });
});
