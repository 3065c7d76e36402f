// The etcd store against a real etcd 3.4 (one server for this file, a fresh key prefix per test):
// the shared conformance suite, then what only a networked store has to survive — etcd stopping,
// crashing and coming back, compaction, a lease holder that goes silent, racing writers.
import { randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdServer } from '../../test/etcd-server.js';
import { describeStoreConformance, eventually } from '../conformance.js';
import { ConflictError, ExpiredError, NotFoundError, type ObjectRef, type StoredObject, type WatchEvent } from '../types.js';
import { EtcdStore, openEtcdStore, redactEndpoint, type EtcdStoreOptions } from './index.js';

let server: EtcdServer;
const opened = new Set<EtcdStore>();

beforeAll(async () => {
  server = await startEtcd();
}, 30_000);

afterAll(async () => {
  await Promise.allSettled([...opened].map((s) => s.close()));
  await server?.close();
}, 20_000);

const newPrefix = (): string => `/test-${randomUUID()}`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function open(prefix: string, extra: Partial<EtcdStoreOptions> = {}): Promise<EtcdStore> {
  const store = await openEtcdStore({ endpoints: [server.endpoint], prefix, healthCheckIntervalMs: 200, ...extra });
  opened.add(store);
  return store;
}

const thing = (name: string, spec: unknown = { v: 1 }): StoredObject => ({ apiVersion: 'test.beacon.io/v1', kind: 'Thing', metadata: { name }, spec });
const thingRef = (name: string): ObjectRef => ({ kind: 'Thing', name });
const describeEvent = (e: WatchEvent): string => `${e.type} ${e.object.metadata.name}`;

describeStoreConformance('etcd', async () => {
  const prefix = newPrefix();
  const store = await open(prefix);
  const peers: EtcdStore[] = [];
  return {
    store,
    put: async (o) => {
      await store.apply(o);
    },
    remove: async (ref) => {
      await store.delete(ref);
    },
    peer: async () => {
      const p = await open(prefix);
      peers.push(p);
      return p;
    },
    close: async () => {
      await Promise.all([store, ...peers].map((s) => s.close()));
    },
  };
});

describe('etcd store', () => {
  it('keeps creationTimestamp, counts generation on spec changes only, and skips writes that change nothing', async () => {
    const s = await open(newPrefix());
    const created = await s.apply(thing('a'));
    expect(created.metadata).toMatchObject({ name: 'a', generation: 1 });
    expect(Date.parse(created.metadata.creationTimestamp!)).not.toBeNaN();
    expect(await s.apply(thing('a'))).toEqual(created);
    const relabelled = await s.apply({ ...thing('a'), metadata: { name: 'a', labels: { tier: 'edge' } } });
    expect(relabelled.metadata.generation).toBe(1);
    expect(relabelled.metadata.resourceVersion).not.toBe(created.metadata.resourceVersion);
    const respecced = await s.apply(thing('a', { v: 2 }));
    expect(respecced.metadata).toMatchObject({ generation: 2, creationTimestamp: created.metadata.creationTimestamp });
    expect(respecced.metadata.labels).toBeUndefined();
    const stored = await s.get(thingRef('a'));
    expect(stored).toEqual(respecced);
    expect(await s.delete(thingRef('a'))).toBe(true);
    expect(await s.delete(thingRef('a'))).toBe(false);
    await expect(s.writeStatus(thingRef('a'), {}, respecced.metadata.resourceVersion!)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('skips a value that is not an object instead of failing the list or the watch', async () => {
    const prefix = newPrefix();
    const s = await open(prefix);
    const { revision } = await s.list('Thing');
    const events: string[] = [];
    const w = s.watch('Thing', revision, (e) => events.push(describeEvent(e)), () => undefined);
    try {
      await s.call((c) => c.kv.put({ key: Buffer.from(`${prefix}/objects/Thing/_cluster/garbage`), value: Buffer.from('{not json') }));
      await s.apply(thing('good'));
      expect((await s.list('Thing')).items.map((o) => o.metadata.name)).toEqual(['good']);
      await eventually(() => expect(events).toEqual(['added good']));
    } finally {
      w.close();
    }
  });

  it('ends a watch from a compacted revision with one ExpiredError', async () => {
    const s = await open(newPrefix());
    await s.apply(thing('a'));
    const { revision } = await s.list('Thing');
    await s.apply(thing('b'));
    await s.apply(thing('c'));
    const latest = (await s.list('Thing')).revision;
    await s.call((c) => c.kv.compact({ revision: latest, physical: true }));
    const events: WatchEvent[] = [];
    const errors: Error[] = [];
    s.watch('Thing', revision, (e) => events.push(e), (e) => errors.push(e));
    await eventually(() => expect(errors).toHaveLength(1));
    expect(errors[0]).toBeInstanceOf(ExpiredError);
    const bad: Error[] = [];
    s.watch('Thing', 'not-a-revision', () => undefined, (e) => bad.push(e));
    await eventually(() => expect(bad).toHaveLength(1));
    expect(bad[0]).toBeInstanceOf(ExpiredError);
    await sleep(200);
    expect(errors).toHaveLength(1);
    expect(events).toEqual([]);
    // The store is still fine for a fresh list + watch from the latest revision.
    const again: string[] = [];
    const w = s.watch('Thing', (await s.list('Thing')).revision, (e) => again.push(describeEvent(e)), () => undefined);
    await s.delete(thingRef('b'));
    await eventually(() => expect(again).toEqual(['deleted b']));
    w.close();
  });

  it('stops delivering events once a watch or the store is closed', async () => {
    const prefix = newPrefix();
    const s = await open(prefix);
    const writer = await open(prefix);
    const { revision } = await s.list('Thing');
    const closedWatch: string[] = [];
    const storeWatch: string[] = [];
    const w = s.watch('Thing', revision, (e) => closedWatch.push(describeEvent(e)), () => undefined);
    s.watch('Thing', revision, (e) => storeWatch.push(describeEvent(e)), () => undefined);
    await writer.apply(thing('a'));
    await eventually(() => expect(storeWatch).toEqual(['added a']));
    w.close();
    await writer.apply(thing('b'));
    await eventually(() => expect(storeWatch).toEqual(['added a', 'added b']));
    await s.close();
    expect(s.health().ok).toBe(false);
    await writer.apply(thing('c'));
    await sleep(300);
    expect(closedWatch).toEqual(['added a']);
    expect(storeWatch).toEqual(['added a', 'added b']);
  });

  /** Writes after a restart retry while the client reconnects (its circuit breaker may still be open). */
  const retrying = (fn: () => Promise<unknown>): Promise<void> =>
    eventually(async () => {
      await fn();
    }, 15_000);

  async function watchAcrossRestart(down: () => Promise<void>, changeBeforeDown: boolean): Promise<void> {
    const prefix = newPrefix();
    const watching = await open(prefix);
    const writer = await open(prefix);
    await writer.apply(thing('old'));
    const { revision } = await watching.list('Thing');
    const events: string[] = [];
    const versions: string[] = [];
    const errors: Error[] = [];
    const w = watching.watch(
      'Thing',
      revision,
      (e) => {
        events.push(describeEvent(e));
        versions.push(e.object.metadata.resourceVersion!);
      },
      (e) => errors.push(e),
    );
    try {
      await writer.apply(thing('before'));
      await eventually(() => expect(events).toEqual(['added before']));
      // Acknowledged by etcd (so on its disk), but the watcher may not have it yet.
      if (changeBeforeDown) await writer.apply(thing('in-flight'));
      await down();
      await eventually(() => expect(watching.health().ok).toBe(false));
      await server.restart();
      await retrying(() => writer.apply(thing('after-1')));
      await writer.apply(thing('after-2'));
      await writer.apply(thing('before', { v: 2 }));
      await writer.delete(thingRef('old'));
      const expected = ['added before', ...(changeBeforeDown ? ['added in-flight'] : []), 'added after-1', 'added after-2', 'modified before', 'deleted old'];
      await eventually(() => expect(events).toEqual(expected), 15_000);
      await sleep(300); // nothing arrives twice, late
      expect(events).toEqual(expected);
      expect(new Set(versions).size).toBe(versions.length);
      expect(errors).toEqual([]);
      await eventually(() => expect(watching.health().ok).toBe(true), 15_000);
    } finally {
      w.close();
    }
  }

  it('watch loses and repeats nothing across an etcd stop and restart', () => watchAcrossRestart(() => server.stop(), false), 40_000);

  it('watch loses and repeats nothing across an etcd kill -9 and restart', () => watchAcrossRestart(() => server.kill9(), true), 40_000);

  it('reports unhealthy while etcd is down, and healthy again once it is back', async () => {
    const s = await open(newPrefix());
    expect(s.health()).toMatchObject({ ok: true });
    await server.stop();
    try {
      await eventually(() => expect(s.health().ok).toBe(false));
      expect(s.health().message).toContain('unreachable');
      await expect(s.list('Thing')).rejects.toThrow();
      expect(s.health().ok).toBe(false);
    } finally {
      await server.restart();
    }
    await eventually(() => expect(s.health().ok).toBe(true), 15_000);
    await retrying(() => s.list('Thing'));
  }, 40_000);

  it('fails to open with a clear error when etcd is not there, and never shows credentials', async () => {
    const lines: string[] = [];
    const logger = { info: (f: object, m: string) => lines.push(m + JSON.stringify(f)), warn: (f: object, m: string) => lines.push(m + JSON.stringify(f)) };
    const password = 'hunter2-do-not-log';
    // etcd runs without auth here, so authenticating fails: the error and the logs must still not
    // carry the password.
    const withAuth = openEtcdStore({ endpoints: [server.endpoint], prefix: newPrefix(), auth: { username: 'beacon', password }, dialTimeoutMs: 1000, logger });
    const outcome = await withAuth.then(
      async (s) => {
        await s.close();
        return s.health().message;
      },
      (e: Error) => e.message,
    );
    expect(outcome).not.toContain(password);
    expect(lines.join('\n')).not.toContain(password);
    // A store that ends up in a log line (util.inspect, as console and loggers render it) does not carry it either.
    const unopened = new EtcdStore({ endpoints: [server.endpoint], auth: { username: 'beacon', password } });
    expect(inspect(unopened, { depth: Infinity, showHidden: true })).not.toContain(password);
    await unopened.close();
    await expect(openEtcdStore({ endpoints: ['http://127.0.0.1:1'], dialTimeoutMs: 500, logger })).rejects.toThrow(/not reachable within 500 ms/);
    expect(redactEndpoint('https://root:hunter2@198.18.0.1:2379')).toBe('https://198.18.0.1:2379');
  });

  it('a renewing holder keeps the lease past its TTL; a silent one loses it to the next', async () => {
    const prefix = newPrefix();
    const a = await open(prefix);
    const b = await open(prefix);
    const first = await a.leases.acquireOrRenew('leader', 'node-a', 2000);
    expect(first.held).toBe(true);
    // Renewing every 500 ms keeps it across more than one TTL.
    const until = Date.now() + 2600;
    while (Date.now() < until) {
      expect((await a.leases.acquireOrRenew('leader', 'node-a', 2000)).held).toBe(true);
      expect((await b.leases.acquireOrRenew('leader', 'node-b', 2000)).held).toBe(false);
      await sleep(500);
    }
    const last = await a.leases.get('leader');
    expect(last!.renewedAt).toBeGreaterThan(first.lease.renewedAt);
    // node-a's process goes silent: no release, no more keepalives.
    await a.close();
    expect((await b.leases.acquireOrRenew('leader', 'node-b', 2000)).held).toBe(false);
    let taken: Awaited<ReturnType<typeof b.leases.acquireOrRenew>> | undefined;
    await eventually(async () => {
      taken = await b.leases.acquireOrRenew('leader', 'node-b', 2000);
      expect(taken.held).toBe(true);
    }, 8000);
    expect(taken!.lease).toMatchObject({ holder: 'node-b', transitions: first.lease.transitions + 1 });
    expect((await b.leases.get('leader'))?.holder).toBe('node-b');
  }, 20_000);

  it('rejects stale status writes with ConflictError and loses no update between racing writers', async () => {
    const prefix = newPrefix();
    const a = await open(prefix);
    const b = await open(prefix);
    const ref: ObjectRef = { kind: 'Counter', name: 'c' };
    const created = await a.apply({ apiVersion: 'test.beacon.io/v1', kind: 'Counter', metadata: { name: 'c' }, spec: {} });
    const rv0 = created.metadata.resourceVersion!;
    const written = await a.writeStatus(ref, { count: 0, log: [] }, rv0);
    const stale = await b.writeStatus(ref, { count: 99, log: ['lost'] }, rv0).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(ConflictError);
    expect(stale).toMatchObject({ expected: rv0, actual: written.metadata.resourceVersion });

    type Counter = { count: number; log: string[] };
    const race = async (store: EtcdStore, who: string): Promise<number> => {
      let conflicts = 0;
      for (let i = 0; i < 20; ) {
        const current = (await store.get(ref))!; // a fresh read before every attempt
        const status = current.status as Counter;
        try {
          await store.writeStatus(ref, { count: status.count + 1, log: [...status.log, `${who}${i}`] }, current.metadata.resourceVersion!);
          i++;
        } catch (e) {
          if (!(e instanceof ConflictError)) throw e;
          if (++conflicts > 400) throw new Error(`${who}: no progress after ${conflicts} conflicts`);
        }
      }
      return conflicts;
    };
    // How many conflicts happen is up to the scheduler; that none of the 40 updates is lost is not.
    await Promise.all([race(a, 'a'), race(b, 'b')]);
    const final = (await a.get(ref))!.status as Counter;
    expect(final.count).toBe(40);
    expect([...final.log].sort()).toEqual([...Array.from({ length: 20 }, (_, i) => `a${i}`), ...Array.from({ length: 20 }, (_, i) => `b${i}`)].sort());
  });

  it('writes statuses made together in shared txns, each with its own outcome', async () => {
    const s = await open(newPrefix());
    const versions = new Map<string, string>();
    for (let i = 0; i < 250; i++) versions.set(`t${i}`, (await s.apply(thing(`t${i}`))).metadata.resourceVersion!);
    const other = await s.apply(thing('other'));
    await s.apply(thing('other', { v: 2 })); // `other` moves on: its old version is stale
    // Made in one turn: 250 writes (more than one txn holds), two racing on t0, one stale, one missing.
    const results = await Promise.allSettled([
      ...[...versions].map(([name, rv]) => s.writeStatus(thingRef(name), { n: name }, rv)),
      s.writeStatus(thingRef('t0'), { n: 'second' }, versions.get('t0')!),
      s.writeStatus(thingRef('other'), { n: 'stale' }, other.metadata.resourceVersion!),
      s.writeStatus(thingRef('missing'), { n: 'missing' }, '1'),
    ]);
    const outcome = (r: PromiseSettledResult<StoredObject>): string => (r.status === 'rejected' ? (r.reason as Error).name : 'done');
    expect(results.slice(1, 250).every((r) => r.status === 'fulfilled')).toBe(true);
    // Of the two writers of t0 from the same version, exactly one wins.
    expect([outcome(results[0]), outcome(results[250]!)].sort()).toEqual(['ConflictError', 'done']);
    expect(results.slice(251).map(outcome)).toEqual(['ConflictError', 'NotFoundError']);
    expect((await s.get(thingRef('t0')))!.status).toEqual(results[0].status === 'fulfilled' ? { n: 't0' } : { n: 'second' });
    for (const name of ['t123', 't249']) {
      const stored = (await s.get(thingRef(name)))!;
      expect(stored.status).toEqual({ n: name });
      const returned = (results[Number(name.slice(1))] as PromiseFulfilledResult<StoredObject>).value;
      expect(returned.metadata.resourceVersion).toBe(stored.metadata.resourceVersion);
    }
    // The same status again writes nothing.
    const t1 = (await s.get(thingRef('t1')))!;
    expect(await s.writeStatus(thingRef('t1'), { n: 't1' }, t1.metadata.resourceVersion!)).toEqual(t1);
  });
});
