import { afterEach, describe, expect, it } from 'vitest';
import type { ServiceStatus } from '../api/index.js';
import { Reflector, type ObjectRef, type RecordedEvent, type StoredObject } from '../store/index.js';
import { eventually } from '../store/conformance.js';
import { MemoryStore } from '../test/memory-store.js';
import { cidrPool, service } from '../test/fixtures.js';
import { createLogger } from './log.js';
import { createMetrics } from './metrics.js';
import { Operator } from './operator.js';
import { Writable } from 'node:stream';

const quiet = createLogger({ destination: new Writable({ write: (_c, _e, done) => done() }) });
const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
});

async function startOperator(store: MemoryStore, metrics = createMetrics()) {
  const pools = new Reflector(store, 'LoadBalancerIPPool', { backoffMs: 5 });
  const services = new Reflector(store, 'Service', { backoffMs: 5 });
  await Promise.all([pools.start(), services.start()]);
  const op = new Operator({ store, pools, services, log: quiet, metrics, now: () => '2026-11-26T00:00:00Z' });
  op.start();
  stops.push(async () => {
    await op.stop();
    pools.stop();
    services.stop();
  });
  return op;
}

/** A store that keeps the Events it is asked to record, as the Kubernetes store sends them. */
class RecordingStore extends MemoryStore {
  readonly told: string[] = [];
  readonly events = { record: (ref: ObjectRef, e: RecordedEvent) => void this.told.push(`${ref.namespace}/${ref.name} ${e.type} ${e.reason}: ${e.note}`) };
}

const ipsOf = (store: MemoryStore, key: string) => ((store.get('Service', key)?.status as ServiceStatus | undefined)?.loadBalancer?.ingress ?? []).map((i) => i.ip);
const as = (o: object) => o as unknown as StoredObject;

describe('Operator', () => {
  it('writes IPs, conditions and pool counts, and only what changed', async () => {
    const store = new MemoryStore();
    await store.apply(as(cidrPool('p', '198.18.0.0/29')));
    await store.apply(as(service('shop/web')));
    await store.apply(as(service('shop/api')));
    await store.apply(as(service('shop/other', { loadBalancerClass: 'example.com/lb' })));
    const op = await startOperator(store);
    await eventually(() => expect([ipsOf(store, 'shop/api'), ipsOf(store, 'shop/web')]).toEqual([['198.18.0.1'], ['198.18.0.2']]));
    await op.idle();
    const web = store.get('Service', 'shop/web')!.status as ServiceStatus;
    expect(web.conditions).toEqual([{ type: 'beacon.io/IPAMRequestSatisfied', status: 'True', observedGeneration: 1, reason: 'satisfied', message: 'assigned 198.18.0.2 from pool p', lastTransitionTime: '2026-11-26T00:00:00Z' }]);
    expect(store.get('Service', 'shop/other')!.status).toBeUndefined();
    const pool = store.get('LoadBalancerIPPool', 'p')!.status as { conditions: { type: string; message: string }[] };
    expect(pool.conditions.find((c) => c.type === 'beacon.io/IPsUsed')?.message).toBe('2');
    const writes = store.writes;
    await store.apply(as(service('shop/web', { labels: { edited: 'yes' } })));
    await eventually(() => expect(store.get('Service', 'shop/web')!.metadata.labels).toEqual({ edited: 'yes' }));
    await op.idle();
    expect(store.writes).toBe(writes); // same IP, same condition: nothing to write
  });

  it('records an Event when a service\'s result changes, not on every write', async () => {
    const store = new RecordingStore();
    await store.apply(as(cidrPool('p', '198.18.0.1/32')));
    await store.apply(as(service('shop/web', { created: '2026-01-01T00:00:00Z' })));
    await store.apply(as(service('shop/api', { created: '2026-01-02T00:00:00Z' })));
    const op = await startOperator(store);
    await eventually(() => expect(ipsOf(store, 'shop/web')).toEqual(['198.18.0.1']));
    await op.idle();
    expect(store.told.sort()).toEqual(['shop/api Warning OutOfIps: no free IPv4 address in pool p', 'shop/web Normal IPAllocated: assigned 198.18.0.1 from pool p']);
    await store.delete({ kind: 'Service', namespace: 'shop', name: 'web' });
    await eventually(() => expect(ipsOf(store, 'shop/api')).toEqual(['198.18.0.1']));
    await store.apply(as(service('shop/api', { created: '2026-01-02T00:00:00Z', labels: { edited: 'yes' } })));
    await eventually(() => expect(store.get('Service', 'shop/api')!.metadata.labels).toEqual({ edited: 'yes' }));
    await op.idle();
    expect(store.told.slice(2)).toEqual(['shop/api Normal IPAllocated: assigned 198.18.0.1 from pool p']); // the edit changed nothing
  });

  it('retries lost status races from fresh state', async () => {
    const store = new MemoryStore();
    await store.apply(as(cidrPool('p', '198.18.0.0/29')));
    store.conflictsToInject = 3;
    for (const n of ['a', 'b', 'c']) await store.apply(as(service(`ns/${n}`)));
    await startOperator(store);
    await eventually(() => expect(['a', 'b', 'c'].map((n) => ipsOf(store, `ns/${n}`))).toEqual([['198.18.0.1'], ['198.18.0.2'], ['198.18.0.3']]));
  });

  it('does not write again from a watch that trails behind its own writes', async () => {
    const store = new MemoryStore();
    await store.apply(as(cidrPool('p', '198.18.0.0/27')));
    for (let i = 0; i < 20; i++) await store.apply(as(service(`ns/s${i}`)));
    store.heldKinds.add('Service'); // the operator sees none of its own service writes for now
    const metrics = createMetrics();
    const op = await startOperator(store, metrics);
    await eventually(() => expect(store.writes).toBe(21)); // 20 services and the pool's counts
    await op.idle();
    // Another pass (a pool event) must not take the stale copies for news.
    await store.apply(as({ ...cidrPool('p', '198.18.0.0/27'), metadata: { name: 'p', labels: { touched: 'yes' } } }));
    await eventually(() => expect(store.get('LoadBalancerIPPool', 'p')!.metadata.labels).toEqual({ touched: 'yes' }));
    await op.idle();
    store.releaseEvents();
    await op.idle();
    // A change after the echoes arrived is served as usual.
    await store.delete({ kind: 'Service', namespace: 'ns', name: 's0' });
    await store.apply(as(service('ns/late')));
    await eventually(() => expect(ipsOf(store, 'ns/late')).toEqual(['198.18.0.1']));
    await op.idle();
    const conflicts = (await metrics.statusWrites.get()).values.find((v) => v.labels.result === 'conflict')?.value ?? 0;
    expect(conflicts).toBe(0);
    expect(store.writes).toBe(21 + 1); // the late service (it takes s0's address: the pool's counts stay)
  });

  it('keeps every IP across an operator restart and writes nothing new', async () => {
    const store = new MemoryStore();
    await store.apply(as(cidrPool('p', '198.18.0.0/28')));
    for (let i = 0; i < 8; i++) await store.apply(as(service(`ns/s${i}`, { created: `2026-01-0${i + 1}T00:00:00Z` })));
    const first = await startOperator(store);
    await eventually(() => expect(ipsOf(store, 'ns/s7')).toEqual(['198.18.0.8']));
    await first.idle();
    await first.stop();
    const before = Array.from({ length: 8 }, (_, i) => ipsOf(store, `ns/s${i}`));
    // Newer services created while no operator ran must not take anyone's address.
    await store.delete({ kind: 'Service', namespace: 'ns', name: 's0' });
    await store.apply(as(service('ns/late', { created: '2026-02-01T00:00:00Z' })));
    const writes = store.writes;
    const second = await startOperator(store);
    await eventually(() => expect(ipsOf(store, 'ns/late')).toEqual(['198.18.0.1']));
    await second.idle();
    expect(Array.from({ length: 7 }, (_, i) => ipsOf(store, `ns/s${i + 1}`))).toEqual(before.slice(1));
    expect(store.writes - writes).toBe(1); // only the late service: pool counts did not change
  });

  it('clears its status from a service that stops qualifying, and recovers from dropped watches', async () => {
    const store = new MemoryStore();
    await store.apply(as(cidrPool('p', '198.18.0.0/29')));
    await store.apply(as(service('ns/a')));
    await startOperator(store);
    await eventually(() => expect(ipsOf(store, 'ns/a')).toEqual(['198.18.0.1']));
    store.dropWatches();
    await store.apply(as(service('ns/a', { type: 'ClusterIP' })));
    await store.apply(as(service('ns/b')));
    await eventually(() => {
      expect(ipsOf(store, 'ns/a')).toEqual([]);
      expect((store.get('Service', 'ns/a')!.status as ServiceStatus).conditions).toEqual([]);
      expect(ipsOf(store, 'ns/b')).toEqual(['198.18.0.1']);
    });
  });
});
