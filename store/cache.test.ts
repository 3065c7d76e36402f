import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../test/memory-store.js';
import { Reflector } from './cache.js';
import { eventually } from './conformance.js';
import type { StoredObject } from './types.js';

const svc = (name: string, labels: Record<string, string> = {}): StoredObject => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'ns', labels }, spec: {} });

describe('Reflector', () => {
  it('mirrors a kind through list + watch and names the changed key', async () => {
    const store = new MemoryStore();
    await store.apply(svc('a'));
    const r = new Reflector(store, 'Service');
    const keys: (string | undefined)[] = [];
    r.onChange((k) => keys.push(k));
    await r.start();
    expect(r.items().map((o) => o.metadata.name)).toEqual(['a']);
    await store.apply(svc('b'));
    await store.delete({ kind: 'Service', namespace: 'ns', name: 'a' });
    await eventually(() => expect(r.items().map((o) => o.metadata.name)).toEqual(['b']));
    expect(keys).toEqual([undefined, 'ns/b', 'ns/a']);
    r.stop();
  });

  it('lists again after a dropped watch and reports the error, missing nothing', async () => {
    const store = new MemoryStore();
    const errors: string[] = [];
    const r = new Reflector(store, 'Service', { backoffMs: 5, onError: (e) => errors.push(e.message) });
    await r.start();
    store.dropWatches();
    await store.apply(svc('while-down'));
    await eventually(() => expect(r.get('ns/while-down')).toBeDefined());
    expect(errors).toEqual(['connection reset']);
    r.stop();
  });

  it('waits for the first list when the store is not there yet', async () => {
    const store = new MemoryStore();
    const list = store.list.bind(store);
    let failures = 2;
    store.list = (kind) => (failures-- > 0 ? Promise.reject(new Error('unreachable')) : list(kind));
    const r = new Reflector(store, 'Service', { backoffMs: 5 });
    await r.start();
    expect(r.hasSynced).toBe(true);
    r.stop();
  });
});
