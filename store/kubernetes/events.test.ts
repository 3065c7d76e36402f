// The Event recorder against the stand-in API server (test/kube-apiserver.ts) over real HTTP, on
// the production request path, with a fake clock for the dedupe window and the rate limits.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeApiServer } from '../../test/kube-apiserver.js';
import type { RecordedEvent } from '../types.js';
import { KubeEventRecorder, openKubernetesStore, reportingController, type EventRecorderOptions, type KubernetesStore } from './index.js';

interface KubeEvent {
  metadata: { name: string; namespace: string };
  eventTime: string;
  reportingController: string;
  reportingInstance: string;
  regarding: Record<string, string>;
  type: string;
  reason: string;
  action: string;
  note: string;
  series?: { count: number; lastObservedTime: string };
}

const dir = mkdtempSync(join(tmpdir(), 'beacon-kube-events-'));
let server: KubeApiServer;
let store: KubernetesStore;

async function open(s: KubeApiServer, name: string): Promise<KubernetesStore> {
  const kubeconfig = join(dir, name);
  writeFileSync(kubeconfig, s.kubeconfig());
  return openKubernetesStore({ kubeconfig, identity: 'node-a' });
}

beforeAll(async () => {
  server = await KubeApiServer.start();
  store = await open(server, 'kubeconfig');
});
afterAll(async () => {
  await store.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A recorder on the store's requests with a clock the test moves. */
function recorder(opts: Partial<EventRecorderOptions> = {}, on: KubernetesStore = store) {
  const clock = { t: Date.parse('2026-01-01T00:00:00Z') };
  const events = new KubeEventRecorder((m, p, b, c) => on.request(m, p, b, c), { identity: 'node-a', now: () => clock.t, ...opts });
  return { events, clock };
}

async function eventsIn(namespace: string): Promise<KubeEvent[]> {
  const { status, body } = await server.request<{ items: KubeEvent[] }>('GET', `/apis/events.k8s.io/v1/namespaces/${namespace}/events`);
  expect(status).toBe(200);
  return body.items;
}

const allocated: RecordedEvent = { type: 'Normal', reason: 'IPAllocated', action: 'Allocate', note: 'assigned 198.18.0.1 from pool lan' };

describe('Kubernetes Events', () => {
  it('creates an events.k8s.io/v1 Event regarding the object, in its namespace (cluster-scoped: default)', async () => {
    store.events.record({ kind: 'Service', namespace: 'create', name: 'web', uid: 'uid-web' }, allocated);
    store.events.record({ kind: 'LoadBalancerIPPool', name: 'lan' }, { type: 'Warning', reason: 'Conflict', action: 'Validate', note: 'overlaps pool wan' });
    await store.events.flush();
    const [e] = await eventsIn('create');
    expect(e).toMatchObject({
      metadata: { name: expect.stringMatching(/^web\.[0-9a-f]+$/) as string, namespace: 'create' },
      reportingController,
      reportingInstance: 'node-a',
      regarding: { apiVersion: 'v1', kind: 'Service', namespace: 'create', name: 'web', uid: 'uid-web' },
      ...allocated,
    });
    expect(e!.eventTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/); // MicroTime
    expect(e!.series).toBeUndefined();
    const pool = (await eventsIn('default')).find((x) => x.regarding.name === 'lan');
    expect(pool?.regarding).toEqual({ apiVersion: 'beacon.io/v1alpha1', kind: 'LoadBalancerIPPool', name: 'lan' });
    expect(store.events.stats()).toEqual({ created: 2, updated: 0, dropped: { rate: 0, perObject: 0 }, failed: 0 });
  });

  it('counts repeats within 10 minutes in the Event\'s series, and starts a new Event after it or for another note', async () => {
    const { events, clock } = recorder();
    const web = { kind: 'Service', namespace: 'dedupe', name: 'web' };
    events.record(web, allocated);
    clock.t += 2000;
    events.record(web, allocated);
    clock.t += 2000;
    events.record(web, allocated);
    await events.flush();
    let list = await eventsIn('dedupe');
    expect(list).toHaveLength(1);
    expect(list[0]!.series).toEqual({ count: 3, lastObservedTime: new Date(clock.t).toISOString().replace('Z', '000Z') });

    clock.t += 2000;
    events.record(web, { ...allocated, note: 'assigned 198.18.0.2 from pool lan' });
    clock.t += 600_000; // past the window of the first note
    events.record(web, allocated);
    await events.flush();
    list = await eventsIn('dedupe');
    expect(list.map((e) => [e.note, e.series?.count ?? 1]).sort()).toEqual([
      ['assigned 198.18.0.1 from pool lan', 1],
      ['assigned 198.18.0.1 from pool lan', 3],
      ['assigned 198.18.0.2 from pool lan', 1],
    ]);

    // The API server expired the Event (its TTL): the next repeat creates a new one.
    const newest = list.filter((e) => e.note === allocated.note && !e.series)[0]!;
    expect((await server.request('DELETE', `/apis/events.k8s.io/v1/namespaces/dedupe/events/${newest.metadata.name}`)).status).toBe(200);
    clock.t += 2000;
    events.record(web, allocated);
    await events.flush();
    list = await eventsIn('dedupe');
    expect(list).toHaveLength(3);
    expect(list.filter((e) => e.note === allocated.note && !e.series).map((e) => e.metadata.name)).not.toContain(newest.metadata.name);
    expect(events.stats()).toEqual({ created: 4, updated: 2, dropped: { rate: 0, perObject: 0 }, failed: 0 });
  });

  it('drops what exceeds the token bucket or one Event per object a second, and counts it', async () => {
    const { events, clock } = recorder({ qps: 1, burst: 3 });
    for (let i = 0; i < 10; i++) events.record({ kind: 'Service', namespace: 'rate', name: `svc-${i}` }, allocated);
    expect(events.stats().dropped).toEqual({ rate: 7, perObject: 0 });
    clock.t += 1000; // one token back
    events.record({ kind: 'Service', namespace: 'rate', name: 'svc-10' }, allocated);
    events.record({ kind: 'Service', namespace: 'rate', name: 'svc-11' }, allocated);
    await events.flush();
    expect((await eventsIn('rate')).map((e) => e.regarding.name).sort()).toEqual(['svc-0', 'svc-1', 'svc-10', 'svc-2']);

    const perObject = recorder();
    const web = { kind: 'Service', namespace: 'per-object', name: 'web' };
    perObject.events.record(web, allocated);
    perObject.clock.t += 500;
    perObject.events.record(web, { ...allocated, note: 'another decision' }); // same object within a second
    perObject.clock.t += 500;
    perObject.events.record(web, allocated);
    await perObject.events.flush();
    expect(perObject.events.stats()).toEqual({ created: 1, updated: 1, dropped: { rate: 0, perObject: 1 }, failed: 0 });
    expect((await eventsIn('per-object')).map((e) => [e.note, e.series?.count])).toEqual([[allocated.note, 2]]);
  });

  it("takes a token of the store's request budget only when one is there: Events are dropped, never queued ahead of renewals", async () => {
    const { events } = recorder({ admit: () => false });
    events.record({ kind: 'Service', namespace: 'budget', name: 'web' }, allocated);
    await events.flush();
    expect(events.stats()).toEqual({ created: 0, updated: 0, dropped: { rate: 1, perObject: 0 }, failed: 0 });

    const kubeconfig = join(dir, 'kubeconfig-budget');
    writeFileSync(kubeconfig, server.kubeconfig());
    const tight = await openKubernetesStore({ kubeconfig, identity: 'node-b', qps: 1, burst: 2 });
    try {
      for (let i = 0; i < 4; i++) tight.events.record({ kind: 'Service', namespace: 'budget', name: `svc-${i}` }, allocated);
      await tight.events.flush();
      // At most the burst's two tokens went to Events (opening the store may have used one); the
      // rest found none and were dropped, not queued.
      const { created, dropped } = tight.events.stats();
      expect([created + dropped.rate, dropped.rate >= 2]).toEqual([4, true]);
      expect(await eventsIn('budget')).toHaveLength(created);
    } finally {
      await tight.close();
    }
  });

  it('never throws and logs once per error reason when the API server is down or the kind is unknown', async () => {
    const down = await KubeApiServer.start();
    const downStore = await open(down, 'kubeconfig-down');
    await down.close();
    const warnings: object[] = [];
    const { events, clock } = recorder({ log: { warn: (fields) => void warnings.push(fields) } }, downStore);
    for (let i = 0; i < 5; i++) {
      expect(() => events.record({ kind: 'Service', namespace: 'down', name: `svc-${i}` }, allocated)).not.toThrow();
      clock.t += 1000;
    }
    events.record({ kind: 'NoSuchKind', name: 'x' }, allocated);
    await events.flush();
    await downStore.close();
    expect(events.stats()).toEqual({ created: 0, updated: 0, dropped: { rate: 0, perObject: 0 }, failed: 6 });
    expect(warnings).toHaveLength(2);
    expect(warnings).toEqual(expect.arrayContaining([expect.objectContaining({ reason: 'ECONNREFUSED', event: 'IPAllocated' }), expect.objectContaining({ reason: 'Error' })]));
  });
});
