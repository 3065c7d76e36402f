// The behaviour every Store must have, as a test suite each backend runs against itself
// (`describeStoreConformance` in its own *.test.ts). Only test code imports this file.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConflictError, type Lease, type Store, type StoredObject, type WatchEvent, type ObjectRef } from './types.js';

export interface StoreHarness {
  readonly store: Store;
  /** Makes the object exist as desired state, the way users do with this backend. */
  put(object: StoredObject): Promise<void>;
  /** Removes it the same way. */
  remove(ref: ObjectRef): Promise<void>;
  /** A second store on the same state (another process would open this one). */
  peer(): Promise<Store>;
  close(): Promise<void>;
}

const pool = (name: string, cidr: string): StoredObject => ({
  apiVersion: 'beacon.io/v1alpha1',
  kind: 'LoadBalancerIPPool',
  metadata: { name },
  spec: { blocks: [{ cidr }] },
});

const svc = (name: string): StoredObject => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'shop' },
  spec: { type: 'LoadBalancer' },
});

/** Polls until `check` passes (bounded: 5 s), for changes that arrive through watches. */
export async function eventually(check: () => void | Promise<void>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (e) {
      if (Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/** What a backend has beyond the required interface (each adds its cases). */
export interface StoreFeatures {
  /** `leases.watch`: a live view of the held leases. */
  readonly leaseWatch?: boolean;
}

export function describeStoreConformance(name: string, open: () => Promise<StoreHarness>, features: StoreFeatures = {}): void {
  describe(`${name} store conformance`, () => {
    let h: StoreHarness;
    beforeEach(async () => {
      h = await open();
    });
    afterEach(async () => {
      await h.close();
    });

    it('lists objects with resource versions, per kind', async () => {
      await h.put(pool('a', '198.18.0.0/28'));
      await h.put(svc('web'));
      await eventually(async () => {
        const pools = await h.store.list('LoadBalancerIPPool');
        expect(pools.items.map((o) => o.metadata.name)).toEqual(['a']);
        expect(pools.items[0]!.metadata.resourceVersion).toMatch(/\S/);
        const services = await h.store.list('Service');
        expect(services.items.map((o) => `${o.metadata.namespace}/${o.metadata.name}`)).toEqual(['shop/web']);
      });
    });

    it('watches additions, changes and deletions after a list, in order', async () => {
      const { revision } = await h.store.list('LoadBalancerIPPool');
      const events: WatchEvent[] = [];
      const errors: Error[] = [];
      const w = h.store.watch('LoadBalancerIPPool', revision, (e) => events.push(e), (e) => errors.push(e));
      try {
        await h.put(pool('a', '198.18.0.0/28'));
        await eventually(() => expect(events.map((e) => e.type)).toEqual(['added']));
        await h.put(pool('a', '198.18.1.0/28'));
        await eventually(() => expect(events.map((e) => e.type)).toEqual(['added', 'modified']));
        expect((events[1]!.object.spec as { blocks: { cidr: string }[] }).blocks[0]!.cidr).toBe('198.18.1.0/28');
        await h.remove({ kind: 'LoadBalancerIPPool', name: 'a' });
        await eventually(() => expect(events.map((e) => e.type)).toEqual(['added', 'modified', 'deleted']));
        expect(events[2]!.object.metadata.name).toBe('a');
        expect(errors).toEqual([]);
      } finally {
        w.close();
      }
    });

    it('writes status only on the current resourceVersion, and keeps it across spec changes', async () => {
      await h.put(svc('web'));
      let current: StoredObject | undefined;
      await eventually(async () => {
        current = (await h.store.list('Service')).items[0];
        expect(current).toBeDefined();
      });
      const ref = { kind: 'Service', namespace: 'shop', name: 'web' };
      const status = { loadBalancer: { ingress: [{ ip: '198.18.0.1' }] } };
      const written = await h.store.writeStatus(ref, status, current!.metadata.resourceVersion!);
      expect(written.status).toEqual(status);
      expect(written.metadata.resourceVersion).not.toBe(current!.metadata.resourceVersion);
      await expect(h.store.writeStatus(ref, { loadBalancer: {} }, current!.metadata.resourceVersion!)).rejects.toBeInstanceOf(ConflictError);
      await h.put({ ...svc('web'), metadata: { name: 'web', namespace: 'shop', labels: { edited: 'yes' } } });
      await eventually(async () => {
        const again = (await h.store.list('Service')).items[0]!;
        expect(again.metadata.labels).toEqual({ edited: 'yes' });
        expect(again.status).toEqual(status);
      });
    });

    it('shares status with a second store on the same state', async () => {
      await h.put(svc('web'));
      const other = await h.peer();
      try {
        let rv = '';
        await eventually(async () => {
          rv = (await other.list('Service')).items[0]!.metadata.resourceVersion!;
        });
        await other.writeStatus({ kind: 'Service', namespace: 'shop', name: 'web' }, { loadBalancer: { ingress: [{ ip: '198.18.0.9' }] } }, rv);
        await eventually(async () => expect((await h.store.list('Service')).items[0]!.status).toEqual({ loadBalancer: { ingress: [{ ip: '198.18.0.9' }] } }));
      } finally {
        await other.close();
      }
    });

    it('hands a lease to one holder at a time, renews, expires and releases', async () => {
      const { leases } = h.store;
      const other = await h.peer();
      try {
        const first = await leases.acquireOrRenew('operator', 'node-a', 2000);
        expect(first).toMatchObject({ held: true, lease: { holder: 'node-a', durationMs: 2000 } });
        const taken = await other.leases.acquireOrRenew('operator', 'node-b', 2000);
        expect(taken).toMatchObject({ held: false, lease: { holder: 'node-a' } });
        const renewed = await leases.acquireOrRenew('operator', 'node-a', 2000);
        expect(renewed.held).toBe(true);
        expect(renewed.lease.transitions).toBe(first.lease.transitions);
        await other.leases.release('operator', 'node-b'); // not the holder: no effect
        expect((await leases.get('operator'))?.holder).toBe('node-a');
        await leases.release('operator', 'node-a');
        const after = await other.leases.acquireOrRenew('operator', 'node-b', 2000);
        expect(after).toMatchObject({ held: true, lease: { holder: 'node-b' } });
        expect(after.lease.transitions).toBe(first.lease.transitions + 1);
        // node-b stops renewing: node-a gets it once the duration has passed, not before.
        expect((await leases.acquireOrRenew('operator', 'node-a', 2000)).held).toBe(false);
        await eventually(async () => expect((await leases.acquireOrRenew('operator', 'node-a', 2000)).held).toBe(true), 6000);
      } finally {
        await other.close();
      }
    });

    it('publishes data with a lease and lists held leases by name prefix', async () => {
      const { leases } = h.store;
      const other = await h.peer();
      try {
        await leases.acquireOrRenew('node-a', 'a', 5000, '{"up":true}');
        await other.leases.acquireOrRenew('node-b', 'b', 5000);
        await leases.acquireOrRenew('operator-x', 'a', 5000);
        expect((await other.leases.list('node-')).map((l) => [l.name, l.holder, l.data])).toEqual([
          ['node-a', 'a', '{"up":true}'],
          ['node-b', 'b', ''],
        ]);
        await leases.acquireOrRenew('node-a', 'a', 5000, '{"up":false}');
        expect((await other.leases.get('node-a'))?.data).toBe('{"up":false}');
        // Someone else's data never replaces the holder's.
        expect((await other.leases.acquireOrRenew('node-a', 'b', 5000, 'x')).lease.data).toBe('{"up":false}');
        await leases.release('node-a', 'a');
        expect((await other.leases.list('node-')).map((l) => l.name)).toEqual(['node-b']);
        expect(await leases.list('nothing-')).toEqual([]);
      } finally {
        await other.close();
      }
    });

    if (features.leaseWatch) {
      it('watches held leases by name prefix: the current set, then new holders, renewals and releases', async () => {
        const { leases } = h.store;
        expect(typeof leases.watch).toBe('function');
        const other = await h.peer();
        const sets: Lease[][] = [];
        const latest = () => sets.at(-1)?.map((l) => `${l.name}=${l.holder}:${l.data}`);
        await leases.acquireOrRenew('node-a', 'a', 5000, '1');
        const stop = leases.watch!('node-', (set) => sets.push(set));
        try {
          await eventually(() => expect(latest()).toEqual(['node-a=a:1']));
          await other.leases.acquireOrRenew('node-b', 'b', 5000, '2');
          await eventually(() => expect(latest()).toEqual(['node-a=a:1', 'node-b=b:2']));
          const renewedAt = sets.at(-1)![0]!.renewedAt;
          await leases.acquireOrRenew('node-a', 'a', 5000, '3');
          await eventually(() => expect(latest()).toEqual(['node-a=a:3', 'node-b=b:2']));
          expect(sets.at(-1)![0]!.renewedAt).toBeGreaterThanOrEqual(renewedAt);
          await other.leases.acquireOrRenew('operator', 'b', 5000); // not under the prefix
          await other.leases.release('node-b', 'b');
          await eventually(() => expect(latest()).toEqual(['node-a=a:3']));
          expect(sets.flat().filter((l) => !l.name.startsWith('node-'))).toEqual([]);
        } finally {
          stop();
          await other.close();
        }
        const told = sets.length;
        await leases.acquireOrRenew('node-a', 'a', 5000, '4');
        await new Promise((r) => setTimeout(r, 200));
        expect(sets).toHaveLength(told); // stopped: nothing more
      });
    }

    it('reports health', () => {
      expect(h.store.health().ok).toBe(true);
    });
  });
}
