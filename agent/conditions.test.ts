import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { l2PolicyCondition, parseL2Policy, type Condition, type L2AnnouncementPolicy } from '../api/index.js';
import { Reflector, type StoredObject } from '../store/index.js';
import { MemoryStore } from '../test/memory-store.js';
import { eventually } from '../test/process.js';
import { ConditionWriter } from './conditions.js';
import { createLogger } from './log.js';
import { createMetrics } from './metrics.js';

const policy = (spec: Record<string, unknown>): StoredObject => ({ apiVersion: 'beacon.io/v1alpha1', kind: 'L2AnnouncementPolicy', metadata: { name: 'lan' }, spec });
const conditions = (store: MemoryStore): Condition[] => (store.get('L2AnnouncementPolicy', 'lan')?.status as { conditions?: Condition[] } | undefined)?.conditions ?? [];

describe('ConditionWriter', () => {
  const stops: (() => void)[] = [];
  afterEach(() => stops.splice(0).forEach((s) => s()));

  it('writes why a policy is unusable, clears it when fixed, and leaves an unchanged status alone', async () => {
    const store = new MemoryStore();
    await store.apply(policy({ interfaces: ['eth[0-'] }));
    const reflector = new Reflector(store, 'L2AnnouncementPolicy');
    await reflector.start();
    const log = createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });
    const writer = new ConditionWriter(store, reflector, (o) => [l2PolicyCondition(parseL2Policy(o as unknown as L2AnnouncementPolicy))], log, createMetrics());
    writer.start();
    stops.push(() => writer.stop(), () => reflector.stop());

    await eventually(() => expect(conditions(store)).toMatchObject([{ type: 'beacon.io/PolicyValid', status: 'False', reason: 'InvalidInterfacePattern' }]));
    expect(conditions(store)[0]!.message).toMatch(/interfaces\[0\] "eth\[0-":.*announces nothing until fixed/);

    await store.apply(policy({ nodeSelector: { matchExpressions: [{ key: 'zone', operator: 'In' }] } }));
    await eventually(() => expect(conditions(store)).toMatchObject([{ status: 'False', reason: 'InvalidSelector' }]));

    await store.apply(policy({ interfaces: ['^eth0$'] }));
    await eventually(() => expect(conditions(store)).toMatchObject([{ status: 'True', reason: 'Valid' }]));
    const writes = store.writes;
    writer.stop();
    writer.start(); // a new leader reads the same status and writes nothing
    await new Promise((r) => setTimeout(r, 100));
    expect(store.writes).toBe(writes);
  });
});
