import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Reflector } from '../store/index.js';
import { eventually } from '../store/conformance.js';
import { MemoryStore } from '../test/memory-store.js';
import { fixedNodeLabels, nodeObjectLabels } from './kubernetes-node.js';
import { createLogger } from './log.js';

const quiet = createLogger({ level: 'warn', destination: new Writable({ write: (_c, _e, done) => done() }) });
const node = (name: string, labels: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels } });

describe('node labels', () => {
  it('follows this node\'s Node object: changes reach listeners once, other nodes are ignored', async () => {
    const store = new MemoryStore();
    await store.apply(node('a', { zone: 'one' }));
    await store.apply(node('b', { zone: 'two' }));
    const nodes = new Reflector(store, 'Node');
    await nodes.start();
    const labels = nodeObjectLabels(nodes, 'a', quiet);
    expect(labels.get()).toEqual({ zone: 'one' });
    let changes = 0;
    const unsubscribe = labels.onChange(() => changes++);

    await store.apply(node('b', { zone: 'three' }));
    await store.apply(node('a', { zone: 'one', rack: 'r1' }));
    await eventually(() => expect(labels.get()).toEqual({ zone: 'one', rack: 'r1' }));
    expect(changes).toBe(1);

    await store.delete({ kind: 'Node', name: 'a' });
    await eventually(() => expect(labels.get()).toEqual({}));
    expect(changes).toBe(2);
    unsubscribe();
    await store.apply(node('a', { zone: 'four' }));
    await eventually(() => expect(labels.get()).toEqual({ zone: 'four' }));
    expect(changes).toBe(2);
    nodes.stop();
  });

  it('keeps fixed labels', () => {
    const labels = fixedNodeLabels({ zone: 'one' });
    expect(labels.get()).toEqual({ zone: 'one' });
  });
});
