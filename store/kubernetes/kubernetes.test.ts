// The Kubernetes store against the stand-in API server (test/kube-apiserver.ts) over real HTTP,
// with the production client: the conformance suite, then what only this backend has to survive.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { KubeApiServer, type KubeApiServerOptions } from '../../test/kube-apiserver.js';
import { sleep } from '../../test/process.js';
import { Reflector } from '../cache.js';
import { describeStoreConformance, eventually } from '../conformance.js';
import { ConflictError, ExpiredError, NotFoundError, type Lease, type ObjectRef, type StoredObject, type WatchEvent } from '../types.js';
import { leaseDataAnnotation, leaseDurationAnnotation, leaseLabel, openKubernetesStore, resourceOf, resourcePath, type KubernetesStore, type KubernetesStoreOptions } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'beacon-kube-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let configs = 0;
async function openStore(server: KubeApiServer, opts: Omit<KubernetesStoreOptions, 'kubeconfig'> = {}): Promise<KubernetesStore> {
  const kubeconfig = join(dir, `kubeconfig-${++configs}`);
  writeFileSync(kubeconfig, server.kubeconfig());
  return openKubernetesStore({ kubeconfig, ...opts });
}

/** As `kubectl create`, then `kubectl replace` when it exists. */
async function put(server: KubeApiServer, o: StoredObject): Promise<StoredObject> {
  const r = resourceOf(o.kind);
  const created = await server.request('POST', resourcePath(r, o.metadata.namespace), o);
  if (created.status === 201) return created.body as StoredObject;
  const replaced = await server.request('PUT', resourcePath(r, o.metadata.namespace, o.metadata.name), o);
  if (replaced.status !== 200) throw new Error(`replace ${o.metadata.name}: ${JSON.stringify(replaced.body)}`);
  return replaced.body as StoredObject;
}

async function remove(server: KubeApiServer, ref: ObjectRef): Promise<void> {
  await server.request('DELETE', resourcePath(resourceOf(ref.kind), ref.namespace, ref.name));
}

describeStoreConformance('kubernetes', async () => {
  const server = await KubeApiServer.start();
  const stores = [await openStore(server)];
  return {
    store: stores[0]!,
    put: async (o) => void (await put(server, o)),
    remove: (ref) => remove(server, ref),
    peer: async () => {
      stores.push(await openStore(server));
      return stores.at(-1)!;
    },
    close: async () => {
      await Promise.all(stores.map((s) => s.close()));
      await server.close();
    },
  };
}, { leaseWatch: true });

const pool = (name: string, cidr = '198.18.0.0/28'): StoredObject => ({
  apiVersion: 'beacon.io/v1alpha1',
  kind: 'LoadBalancerIPPool',
  metadata: { name },
  spec: { blocks: [{ cidr }] },
});
const describeEvent = (e: WatchEvent): string => `${e.type} ${e.object.metadata.name}`;

describe('kubernetes store', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });
  async function setup(serverOpts: KubeApiServerOptions = {}, storeOpts: Omit<KubernetesStoreOptions, 'kubeconfig'> = {}) {
    const server = await KubeApiServer.start(serverOpts);
    cleanup.push(() => server.close());
    const store = await openStore(server, storeOpts);
    cleanup.push(() => store.close());
    return { server, store };
  }
  /** Watches a kind from now on, collecting events and errors. */
  async function watching(store: KubernetesStore, kind = 'LoadBalancerIPPool') {
    const events: WatchEvent[] = [];
    const errors: Error[] = [];
    const w = store.watch(kind, (await store.list(kind)).revision, (e) => events.push(e), (e) => errors.push(e));
    cleanup.push(() => Promise.resolve(w.close()));
    return { events, errors, names: () => events.map(describeEvent) };
  }

  it('maps kinds to their API paths and refuses unknown kinds and missing namespaces clearly', async () => {
    const { server, store } = await setup();
    await put(server, { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'web-1', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } }, endpoints: [] });
    const slices = await store.list('EndpointSlice');
    expect(slices.items.map((o) => [o.kind, o.apiVersion, o.metadata.namespace, o.metadata.name])).toEqual([['EndpointSlice', 'discovery.k8s.io/v1', 'shop', 'web-1']]);
    await expect(store.list('Gadget')).rejects.toThrow(/unknown kind "Gadget"/);
    expect(() => store.watch('Gadget', '1', () => undefined, () => undefined)).toThrow(/unknown kind/);
    await expect(store.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'x' } })).rejects.toThrow(/namespaced and needs a namespace/);
    await expect(store.writeStatus({ kind: 'LoadBalancerIPPool', name: 'none' }, {}, '1')).rejects.toBeInstanceOf(NotFoundError);
    // A store that ends up in a log line does not carry the kubeconfig's token, also while it watches.
    const w = store.watch('EndpointSlice', slices.revision, () => undefined, () => undefined);
    await eventually(() => expect(server.requestCounts().byVerb['watch endpointslices']).toBe(1));
    expect(inspect(store, { depth: Infinity, showHidden: true })).not.toContain(server.token);
    w.close();
  });

  it('fails to open with a clear error when the API server does not answer or refuses the token', async () => {
    const server = await KubeApiServer.start();
    const kubeconfig = join(dir, 'kubeconfig-wrong-token');
    writeFileSync(kubeconfig, server.kubeconfig().replace(server.token, 'wrong-token'));
    await expect(openKubernetesStore({ kubeconfig })).rejects.toThrow(/not usable: .*Unauthorized/);
    await server.close();
    writeFileSync(kubeconfig, server.kubeconfig());
    await expect(openKubernetesStore({ kubeconfig, requestTimeoutMs: 1000 })).rejects.toThrow(/not usable: .*ECONNREFUSED/);
  });

  it('applies desired state without touching status, and deletes', async () => {
    const { server, store } = await setup();
    const created = await store.apply(pool('a'));
    expect(created.metadata).toMatchObject({ name: 'a', generation: 1 });
    const withStatus = await store.writeStatus({ kind: 'LoadBalancerIPPool', name: 'a' }, { ips: 16 }, created.metadata.resourceVersion!);
    server.resetCounts();
    const changed = await store.apply(pool('a', '198.18.1.0/28'));
    expect(server.requestCounts().byVerb).toEqual({ 'get loadbalancerippools': 1, 'update loadbalancerippools': 1 });
    expect(changed).toMatchObject({ status: { ips: 16 }, metadata: { generation: 2, uid: created.metadata.uid } });
    expect(changed.metadata.resourceVersion).not.toBe(withStatus.metadata.resourceVersion);
    expect(await store.delete({ kind: 'LoadBalancerIPPool', name: 'a' })).toBe(true);
    expect(await store.delete({ kind: 'LoadBalancerIPPool', name: 'a' })).toBe(false);
  });

  it('replaces the whole status, and a stale write is a ConflictError naming the current version', async () => {
    const { server, store } = await setup();
    const created = await put(server, pool('a'));
    const ref = { kind: 'LoadBalancerIPPool', name: 'a' };
    const first = await store.writeStatus(ref, { ips: 16, conditions: [{ type: 'x' }] }, created.metadata.resourceVersion!);
    const second = await store.writeStatus(ref, { ips: 15 }, first.metadata.resourceVersion!);
    expect(second.status).toEqual({ ips: 15 }); // conditions gone: replaced, not merged
    const stale = await store.writeStatus(ref, { ips: 0 }, first.metadata.resourceVersion!).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(ConflictError);
    expect(stale).toMatchObject({ expected: first.metadata.resourceVersion, actual: second.metadata.resourceVersion });
    expect(server.requestCounts().byVerb['patch loadbalancerippools/status']).toBe(3);
  });

  it('ends a watch from a version the server no longer has with one ExpiredError', async () => {
    const { server, store } = await setup();
    await put(server, pool('a'));
    const { revision } = await store.list('LoadBalancerIPPool');
    await put(server, pool('b'));
    server.compact();
    const errors: Error[] = [];
    store.watch('LoadBalancerIPPool', revision, () => undefined, (e) => errors.push(e));
    await eventually(() => expect(errors).toHaveLength(1));
    expect(errors[0]).toBeInstanceOf(ExpiredError);
  });

  it('resumes a dropped watch from its last version without losing or repeating events', async () => {
    const { server, store } = await setup();
    const w = await watching(store);
    await put(server, pool('a'));
    await eventually(() => expect(w.names()).toEqual(['added a']));
    for (let i = 0; i < 3; i++) {
      server.dropWatches();
      await put(server, pool(`b${i}`)); // made while the watch reconnects
    }
    await put(server, pool('a', '198.18.2.0/28'));
    await remove(server, { kind: 'LoadBalancerIPPool', name: 'b0' });
    const expected = ['added a', 'added b0', 'added b1', 'added b2', 'modified a', 'deleted b0'];
    await eventually(() => expect(w.names()).toEqual(expected));
    expect(server.requestCounts().byVerb['watch loadbalancerippools']).toBeGreaterThanOrEqual(2);
    await sleep(200); // nothing arrives twice, late
    expect(w.names()).toEqual(expected);
    expect(w.errors).toEqual([]);
  });

  it('keeps watching across an API server restart, and reports health while it is down', async () => {
    const { server, store } = await setup();
    const w = await watching(store);
    await put(server, pool('a'));
    await eventually(() => expect(w.names()).toEqual(['added a']));
    await server.close();
    await expect(store.list('LoadBalancerIPPool')).rejects.toThrow();
    expect(store.health()).toMatchObject({ ok: false, message: expect.stringContaining('unreachable') as string });
    await server.restart({ keepData: true });
    await put(server, pool('b'));
    await eventually(() => expect(w.names()).toEqual(['added a', 'added b']), 10_000);
    expect(w.errors).toEqual([]);
    await store.list('LoadBalancerIPPool');
    expect(store.health().ok).toBe(true);
  });

  it('a Reflector relists after 410 Gone (server restarted without its data) and stays in sync', async () => {
    const { server, store } = await setup();
    await put(server, pool('a'));
    const reflector = new Reflector(store, 'LoadBalancerIPPool', { backoffMs: 50 });
    cleanup.push(() => Promise.resolve(reflector.stop()));
    await reflector.start();
    expect(reflector.items().map((o) => o.metadata.name)).toEqual(['a']);
    await server.restart({ keepData: false });
    await put(server, pool('fresh'));
    await eventually(() => expect(reflector.items().map((o) => o.metadata.name)).toEqual(['fresh']), 10_000);
    expect(server.requestCounts().byVerb['list loadbalancerippools']).toBeGreaterThanOrEqual(2); // the first list and the relist
    await put(server, pool('later'));
    await eventually(() => expect(reflector.items().map((o) => o.metadata.name).sort()).toEqual(['fresh', 'later']));
  });

  it('restarts a watch that stays quiet too long, and follows bookmarks', async () => {
    // Bookmarks every 30 s, quiet limit 300 ms: the watchdog restarts the watch again and again.
    const { server, store } = await setup({ bookmarkIntervalMs: 30_000 }, { watchQuietMs: 300 });
    const w = await watching(store);
    await eventually(() => expect(server.requestCounts().byVerb['watch loadbalancerippools']).toBeGreaterThanOrEqual(3));
    await put(server, pool('a'));
    await eventually(() => expect(w.names()).toEqual(['added a']));
    // With frequent bookmarks the limit never fires (a wide margin, so a busy machine cannot fake a quiet watch).
    const { server: chatty, store: calm } = await setup({ bookmarkIntervalMs: 50 }, { watchQuietMs: 1000 });
    await watching(calm);
    await sleep(1500);
    expect(chatty.requestCounts().byVerb['watch loadbalancerippools']).toBe(1);
  });

  it('stores leases as coordination.k8s.io Lease objects; a renewal is one request; takeover after expiry', async () => {
    const { server, store } = await setup();
    const other = await openStore(server);
    cleanup.push(() => other.close());
    const first = await store.leases.acquireOrRenew('operator', 'node-a', 1000, '{"up":true}');
    expect(first.held).toBe(true);
    const lease = (await server.request<{ spec: { renewTime: string } }>('GET', '/apis/coordination.k8s.io/v1/namespaces/beacon-system/leases/operator')).body;
    expect(lease).toMatchObject({
      metadata: { labels: { [leaseLabel]: 'true' }, annotations: { [leaseDataAnnotation]: '{"up":true}', [leaseDurationAnnotation]: '1000' } },
      spec: { holderIdentity: 'node-a', leaseDurationSeconds: 1, leaseTransitions: 0 },
    });
    expect(lease.spec.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    server.resetCounts();
    for (let i = 0; i < 5; i++) expect((await store.leases.acquireOrRenew('operator', 'node-a', 1000, '{"up":true}')).held).toBe(true);
    expect(server.requestCounts().byVerb).toEqual({ 'update leases': 5 });
    server.resetCounts();
    expect((await other.leases.acquireOrRenew('operator', 'node-b', 1000)).held).toBe(false);
    expect(server.requestCounts().byVerb).toEqual({ 'get leases': 1 });
    // node-a goes silent; node-b takes over once renewTime + duration has passed.
    let taken: Awaited<ReturnType<typeof other.leases.acquireOrRenew>> | undefined;
    await eventually(async () => {
      taken = await other.leases.acquireOrRenew('operator', 'node-b', 1000);
      expect(taken.held).toBe(true);
    }, 5000);
    expect(taken!.lease).toMatchObject({ holder: 'node-b', transitions: 1, data: '' });
    // node-a's remembered copy is stale: its next attempt costs a conflict and a read, and fails.
    server.resetCounts();
    expect((await store.leases.acquireOrRenew('operator', 'node-a', 1000)).held).toBe(false);
    expect(server.requestCounts().byVerb).toEqual({ 'get leases': 1, 'update leases': 1 });
  });

  it('watches the node leases with one list and one watch: resumes a dropped watch, lists again after 410 Gone', async () => {
    // Rare bookmarks: the watch stays behind changes to other kinds, so compaction makes it too old.
    const { server, store } = await setup({ bookmarkIntervalMs: 60_000 });
    const other = await openStore(server);
    cleanup.push(() => other.close());
    await store.leases.acquireOrRenew('l2-node-a', 'a', 3000, 'a1');
    server.resetCounts();
    const sets: Lease[][] = [];
    const latest = () => sets.at(-1)?.map((l) => `${l.holder}:${l.data}`);
    const stop = store.leases.watch!('l2-node-', (set) => sets.push(set));
    cleanup.push(() => Promise.resolve(stop()));
    await eventually(() => expect(latest()).toEqual(['a:a1']));
    for (const data of ['b1', 'b2', 'b3']) await other.leases.acquireOrRenew('l2-node-b', 'b', 3000, data);
    await other.leases.acquireOrRenew('operator', 'b', 3000); // a Beacon lease, not a node's: no new set
    await eventually(() => expect(latest()).toEqual(['a:a1', 'b:b3']));
    const told = sets.length;
    // A first acquisition reads (404) and creates; a renewal is one update; the watch is one list and one watch.
    expect(server.requestCounts().byVerb).toEqual({ 'create leases': 2, 'get leases': 2, 'list leases': 1, 'update leases': 2, 'watch leases': 1 });

    server.dropWatches();
    await other.leases.acquireOrRenew('l2-node-b', 'b', 3000, 'b4');
    await eventually(() => expect(latest()).toEqual(['a:a1', 'b:b4']));
    expect(server.requestCounts().byVerb).toMatchObject({ 'list leases': 1, 'watch leases': 2 }); // resumed, not listed again

    await put(server, pool('elsewhere'));
    server.compact();
    server.dropWatches();
    await eventually(() => expect(server.requestCounts().byVerb).toMatchObject({ 'list leases': 2, 'watch leases': 4 })); // 410, then a new list and watch
    await store.leases.release('l2-node-a', 'a');
    await eventually(() => expect(latest()).toEqual(['b:b4']));
    expect(sets.length).toBeGreaterThan(told);
    expect(sets.flat().filter((l) => !l.name.startsWith('l2-node-'))).toEqual([]);
  });

  it('keeps sub-second lease durations exact, and reads leases other clients wrote in whole seconds', async () => {
    const { server, store } = await setup();
    const short = await store.leases.acquireOrRenew('node-x', 'x', 600);
    expect(short.lease.durationMs).toBe(600);
    const leases = '/apis/coordination.k8s.io/v1/namespaces/beacon-system/leases';
    const written = (await server.request<{ spec: object; metadata: object }>('GET', `${leases}/node-x`)).body;
    expect(written.spec).toMatchObject({ leaseDurationSeconds: 1 });
    // Someone edits the seconds (kubectl, client-go): the seconds win over the stale annotation.
    await server.request('PUT', `${leases}/node-x`, { ...written, spec: { ...written.spec, leaseDurationSeconds: 15 } });
    expect((await store.leases.get('node-x'))?.durationMs).toBe(15_000);
    const now = new Date().toISOString().replace('Z', '000Z');
    const foreign = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'kube-controller-manager' }, spec: { holderIdentity: 'cp-1', leaseDurationSeconds: 15, renewTime: now, acquireTime: now, leaseTransitions: 3 } };
    expect((await server.request('POST', leases, foreign)).status).toBe(201);
    expect(await store.leases.get('kube-controller-manager')).toMatchObject({ holder: 'cp-1', durationMs: 15_000, transitions: 3, data: '' });
    expect(await store.leases.list('kube-')).toEqual([]); // not one of Beacon's (no beacon.io/lease label)
  });
});
