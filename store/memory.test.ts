// The in-memory test store keeps the Store rules too, so tests built on it mean something.
import { MemoryStore } from '../test/memory-store.js';
import { describeStoreConformance } from './conformance.js';

describeStoreConformance('memory', () => {
  const store = new MemoryStore();
  return Promise.resolve({
    store,
    put: async (o) => void (await store.apply(o)),
    remove: async (ref) => void (await store.delete(ref)),
    // A peer shares the same state: the same object stands in for a second process.
    peer: () => Promise.resolve(Object.assign(Object.create(store) as MemoryStore, { close: () => Promise.resolve() })),
    close: () => store.close(),
  });
}, { leaseWatch: true });
