import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { maglevTable } from './maglev.js';
import { backendKey, frontendKey, type Algorithm, type Backend, type BackendState, type Frontend, type FrontendType } from './model.js';
import {
  applyDelta,
  describeServices,
  emptyDatapathState,
  RefCounts,
  planDatapath,
  planDatapathChanges,
  planDatapathFull,
  type DatapathBackend,
  type DatapathService,
  type DatapathState,
  type Op,
  type PlanOptions,
} from './state.js';
import { MapSimulator } from './map-simulator.js';

const opts: PlanOptions = { maglevTableSize: 251 };
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

const be = (address: string, state: BackendState = 'active', port = 8080): Backend => ({ address, port, protocol: 'TCP', state });
const fe = (address: string, selected: Backend[], extra: Partial<Frontend> = {}): Frontend => ({
  address,
  port: 80,
  protocol: 'TCP',
  type: 'ClusterIP',
  service: 'ns/web',
  algorithm: 'random',
  backends: selected,
  selected,
  ...extra,
});

/** A one-line text per op, so that tests read like the map writes they expect. */
const show = (ops: readonly Op[]): string[] =>
  ops.map((op) => {
    switch (op.op) {
      case 'upsertBackend':
        return `upsertBackend ${op.backend.id}=${backendKey(op.backend)} ${op.backend.state}`;
      case 'setSlots':
        return `setSlots ${op.serviceId} ${op.slots.map((slot, i) => `${slot}:${op.backendIds[i]}`).join(' ')}`;
      case 'setMaglev':
        return `setMaglev ${op.serviceId} {${[...new Set(op.table)].sort((a, b) => a - b).join(',')}}`;
      case 'upsertService':
        return `upsertService ${op.service.id}=${frontendKey(op.service.frontend)} count=${op.service.slots.length} ${op.service.algorithm}`;
      case 'deleteService':
        return `deleteService ${op.service.id}=${op.key}`;
      case 'deleteSlots':
        return `deleteSlots ${op.serviceId} ${op.slots.join(' ')}`;
      case 'deleteMaglev':
        return `deleteMaglev ${op.serviceId}`;
      case 'deleteBackend':
        return `deleteBackend ${op.id}`;
    }
  });

// ---- a simulated kernel: the maps as the datapath sees them --------------------------------------


/** Applies ops one by one to the simulated maps, checking what a packet could meet after each. */
function run(state: DatapathState, ops: readonly Op[], size = opts.maglevTableSize): MapSimulator {
  const kernel = MapSimulator.of(state);
  for (const [i, op] of ops.entries()) {
    kernel.write(op);
    const broken = kernel.broken(size);
    if (broken) throw new Error(`after op ${i} (${show([op])[0]}): ${broken}`);
  }
  return kernel;
}

const plan = (current: DatapathState, frontends: Frontend[], options: PlanOptions = opts) => {
  const result = planDatapath(current, frontends, options);
  expect(run(current, result.ops, options.maglevTableSize)).toEqual(MapSimulator.of(result.next));
  return result;
};

const web = fe('198.18.100.1', [be('198.18.1.1'), be('198.18.1.2'), be('198.18.1.3')]);
const api = fe('198.18.100.2', [be('198.18.1.2'), be('198.18.1.4')], { service: 'ns/api', type: 'LoadBalancer' });

describe('planDatapath', () => {
  it('programs backends, then slots, then services, with the lowest ids', () => {
    const { ops, next, problems } = plan(emptyDatapathState(), [api, web]);
    expect(problems).toEqual([]);
    expect(show(ops)).toEqual([
      'upsertBackend 1=198.18.1.1:8080/TCP active',
      'upsertBackend 2=198.18.1.2:8080/TCP active',
      'upsertBackend 3=198.18.1.3:8080/TCP active',
      'upsertBackend 4=198.18.1.4:8080/TCP active',
      'setSlots 1 1:1 2:2 3:3',
      'setSlots 2 1:2 2:4',
      'upsertService 1=198.18.100.1:80/TCP count=3 random',
      'upsertService 2=198.18.100.2:80/TCP count=2 random',
    ]);
    expect(planDatapath(next, [web, api], opts).ops).toEqual([]);
  });

  it('rewrites only the slots that change and deletes what is left over, last', () => {
    const first = plan(emptyDatapathState(), [web, api]).next;
    // 198.18.1.1 goes: the backend in the last slot moves into its slot; 198.18.1.5 arrives in api.
    const second = plan(first, [fe(web.address, [be('198.18.1.2'), be('198.18.1.3')]), { ...api, selected: [...api.selected, be('198.18.1.5')] }]);
    expect(show(second.ops)).toEqual([
      'upsertBackend 5=198.18.1.5:8080/TCP active',
      'setSlots 1 1:3',
      'setSlots 2 3:5',
      'upsertService 1=198.18.100.1:80/TCP count=2 random',
      'upsertService 2=198.18.100.2:80/TCP count=3 random',
      'deleteSlots 1 3',
      'deleteBackend 1',
    ]);
    // The same backends in another order change nothing: slots are a set to random selection.
    expect(planDatapath(second.next, [fe(web.address, [be('198.18.1.3'), be('198.18.1.2')]), { ...api, selected: [...api.selected, be('198.18.1.5')].reverse() }], opts).ops).toEqual([]);
  });

  it('deletes gone services after the upserts and reuses their ids in a later plan, never in the same one', () => {
    const first = plan(emptyDatapathState(), [web, api]).next;
    const other = fe('198.18.100.3', [be('198.18.1.9')], { service: 'ns/other' });
    const second = plan(first, [api, other]);
    expect(show(second.ops)).toEqual([
      'upsertBackend 5=198.18.1.9:8080/TCP active',
      'setSlots 3 1:5',
      'upsertService 3=198.18.100.3:80/TCP count=1 random',
      'deleteService 1=198.18.100.1:80/TCP',
      'deleteSlots 1 1 2 3',
      'deleteBackend 1',
      'deleteBackend 3',
    ]);
    const third = plan(second.next, [api, other, fe('198.18.100.4', [be('198.18.1.1')])]);
    expect(show(third.ops)).toEqual(['upsertBackend 1=198.18.1.1:8080/TCP active', 'setSlots 1 1:1', 'upsertService 1=198.18.100.4:80/TCP count=1 random']);
  });

  it('keeps terminating backends only while a service selects them', () => {
    const first = plan(emptyDatapathState(), [web]).next;
    const draining = fe(web.address, [be('198.18.1.1', 'terminating')], { backends: web.selected });
    const second = plan(first, [draining]);
    expect(show(second.ops)).toEqual([
      'upsertBackend 1=198.18.1.1:8080/TCP terminating',
      'upsertService 1=198.18.100.1:80/TCP count=1 random',
      'deleteSlots 1 2 3',
      'deleteBackend 2',
      'deleteBackend 3',
    ]);
    // Nothing selectable: the service stays with count 0 (the datapath refuses), its backends go.
    const third = plan(second.next, [fe(web.address, [], { backends: draining.selected })]);
    expect(show(third.ops)).toEqual(['upsertService 1=198.18.100.1:80/TCP count=0 random', 'deleteSlots 1 1', 'deleteBackend 1']);
  });

  it('writes a Maglev table only when it changes, and drops it when the service leaves Maglev', () => {
    const maglevWeb = { ...web, algorithm: 'maglev' as const };
    const first = plan(emptyDatapathState(), [maglevWeb]);
    expect(show(first.ops).slice(3)).toEqual(['setSlots 1 1:1 2:2 3:3', 'setMaglev 1 {1,2,3}', 'upsertService 1=198.18.100.1:80/TCP count=3 maglev']);
    // A state change rewrites the backend only.
    const draining = { ...maglevWeb, selected: [be('198.18.1.1', 'terminating'), ...web.selected.slice(1)] };
    expect(show(plan(first.next, [draining]).ops)).toEqual(['upsertBackend 1=198.18.1.1:8080/TCP terminating']);
    const second = plan(first.next, [{ ...maglevWeb, selected: web.selected.slice(1) }]);
    expect(show(second.ops)).toEqual(['setSlots 1 1:3', 'setMaglev 1 {2,3}', 'upsertService 1=198.18.100.1:80/TCP count=2 maglev', 'deleteSlots 1 3', 'deleteBackend 1']);
    const third = plan(second.next, [{ ...web, selected: web.selected.slice(1) }]);
    expect(show(third.ops)).toEqual(['upsertService 1=198.18.100.1:80/TCP count=2 random', 'deleteMaglev 1']);
    const fourth = plan(third.next, [{ ...maglevWeb, selected: [] }]);
    expect(show(fourth.ops)).toEqual(['upsertService 1=198.18.100.1:80/TCP count=0 maglev', 'deleteSlots 1 1 2', 'deleteBackend 2', 'deleteBackend 3']);
  });

  it('fills Maglev tables by backend identity, whatever ids a node gave them', () => {
    const maglevWeb = { ...web, algorithm: 'maglev' as const };
    const here = plan(emptyDatapathState(), [maglevWeb]).next;
    // Another node met other services first, so the same backends carry other ids.
    const there = plan(emptyDatapathState(), [fe('198.18.100.0', [be('198.18.1.3'), be('198.18.1.9')]), maglevWeb]).next;
    const identities = (state: DatapathState) => Array.from(state.services.get(frontendKey(web))!.maglev!, (id) => backendKey(state.backends.get(id)!));
    expect(identities(there)).toEqual(identities(here));
    expect(identities(here)).toEqual(Array.from(maglevTable(web.selected.map(backendKey), 251), (i) => backendKey(web.selected[i]!)));
  });

  it('reports map_full instead of overflowing a map, counting the entries that coexist before deletions', () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => fe(`198.18.100.${i + 1}`, [be(`198.18.1.${i + 1}`)], { service: `ns/s${i}` }));
    const capped = { ...opts, maxServices: 2, maxBackends: 3 };
    const first = plan(emptyDatapathState(), many(3), capped);
    expect(first.problems.map((p) => `${p.reason}: ${p.message}`)).toEqual(['map_full: 198.18.100.3:80/TCP is not programmed: the service map is full']);
    expect([...first.next.services.keys()]).toEqual(['198.18.100.1:80/TCP', '198.18.100.2:80/TCP']);
    const wide = fe('198.18.100.1', [be('198.18.1.1'), be('198.18.1.7'), be('198.18.1.8')]);
    expect(plan(first.next, [wide, many(2)[1]!], capped).problems.map((p) => p.message)).toEqual(['198.18.100.1:80/TCP is not programmed: the backend map is full']);
    // Replacing a service at capacity takes two plans: the old entry lives until the new one is in place.
    const swap = plan(first.next, [many(3)[2]!], capped);
    expect(swap.problems).toHaveLength(1);
    expect(plan(swap.next, [many(3)[2]!], capped).next.services.size).toBe(1);
  });

  it('falls back to random when a Maglev table cannot hold the backends, and reports duplicates', () => {
    const crowded = { ...web, algorithm: 'maglev' as const };
    const { problems, next } = plan(emptyDatapathState(), [crowded, { ...crowded, service: 'ns/dup' }], { maglevTableSize: 3 });
    expect(problems.map((p) => `${p.service} ${p.reason}`)).toEqual(['ns/dup duplicate_frontend', 'ns/web maglev_table_too_small']);
    expect(next.services.get(frontendKey(web))?.algorithm).toBe('random');
    expect(() => planDatapath(emptyDatapathState(), [], { maglevTableSize: 4 })).toThrow(/not a prime/);
  });

  it("marks this node's backends local, and rewrites a backend whose locality changed", () => {
    const onNode = (address: string, nodeName: string): Backend => ({ ...be(address), nodeName });
    const frontends = [fe('198.18.100.1', [onNode('198.18.1.1', 'node-a'), onNode('198.18.1.2', 'node-b')])];
    const first = plan(emptyDatapathState(), frontends, { ...opts, nodeName: 'node-a' });
    expect([...first.next.backends.values()].map((b) => `${b.address} ${b.local ?? false}`)).toEqual(['198.18.1.1 true', '198.18.1.2 false']);
    expect(plan(first.next, frontends, { ...opts, nodeName: 'node-a' }).ops).toEqual([]);
    const renamed = plan(first.next, frontends, { ...opts, nodeName: 'node-b' });
    expect(show(renamed.ops)).toEqual(['upsertBackend 1=198.18.1.1:8080/TCP active', 'upsertBackend 2=198.18.1.2:8080/TCP active']);
    expect([...renamed.next.backends.values()].map((b) => b.local ?? false)).toEqual([false, true]);
  });

  it('adopts a state read back from the kernel: sparse ids, slots in any order, holes, strays', () => {
    const backend = (id: number, address: string): DatapathBackend => ({ id, address, port: 8080, protocol: 'TCP', state: 'active' });
    const service = (id: number, address: string, slots: number[], extra: Partial<DatapathService> = {}): [string, DatapathService] => [
      `${address}:80/TCP`,
      { id, frontend: { address, port: 80, protocol: 'TCP' }, type: 'ClusterIP', algorithm: 'random', affinityTimeoutSeconds: 0, slots, ...extra },
    ];
    const adopted = (): DatapathState => ({
      services: new Map([
        service(7, '198.18.100.1', [30, 12, 40]), // web's backends, shuffled
        service(9, '198.18.100.2', [12, 0], { maglev: new Uint32Array(251).fill(12) }), // a hole, a stale table on a random service
        service(3, '198.18.100.9', [40]), // gone
      ]),
      backends: new Map([
        [40, backend(40, '198.18.1.1')],
        [12, backend(12, '198.18.1.2')],
        [30, backend(30, '198.18.1.3')],
        [5, backend(5, '198.18.1.99')], // referenced by nobody
        [6, backend(6, '198.18.1.2')], // a duplicate of 12
      ]),
    });
    const current = adopted();
    const { ops, next } = planDatapath(current, [web, api], opts);
    expect(current).toEqual(adopted());
    expect(show(ops)).toEqual([
      'upsertBackend 1=198.18.1.4:8080/TCP active',
      'setSlots 9 2:1',
      'upsertService 9=198.18.100.2:80/TCP count=2 random',
      'deleteService 3=198.18.100.9:80/TCP',
      'deleteMaglev 9',
      'deleteSlots 3 1',
      'deleteBackend 5',
      'deleteBackend 6',
    ]);
    expect([...next.services.values()].map((s) => `${s.id}:${s.slots.join(',')}`)).toEqual(['7:30,12,40', '9:12,1']);
    const kernel = MapSimulator.of(current);
    ops.forEach((op) => kernel.write(op));
    expect(kernel).toEqual(MapSimulator.of(next));
    expect(kernel.broken(251)).toBeUndefined();
    expect(planDatapath(next, [web, api], opts).ops).toEqual([]);
  });
});

describe('describeServices', () => {
  it('prints frontends in address order with their selectable backends', () => {
    const v6 = fe('2001:db8::1', [be('2001:db8:1::2', 'terminating', 443)], { type: 'LoadBalancer', algorithm: 'maglev' });
    const { next } = plan(emptyDatapathState(), [v6, { ...web, selected: [...web.selected].reverse() }]);
    expect(JSON.stringify(describeServices(next))).toBe(
      JSON.stringify([
        {
          frontend: '198.18.100.1:80/TCP',
          type: 'ClusterIP',
          algorithm: 'random',
          backends: ['198.18.1.1', '198.18.1.2', '198.18.1.3'].map((address) => ({ address, port: 8080, state: 'active' })),
        },
        { frontend: '[2001:db8::1]:80/TCP', type: 'LoadBalancer', algorithm: 'maglev', backends: [{ address: '2001:db8:1::2', port: 443, state: 'terminating' }] },
      ]),
    );
  });
});

describe('planDatapathChanges', () => {
  it('plans one change alone: its ops and the deletion of the backends only it used', () => {
    const live = emptyDatapathState();
    applyDelta(live, planDatapathChanges(live, new Map([web, api].map((f) => [frontendKey(f), f])), opts).delta);
    const gone = planDatapathChanges(live, new Map([[frontendKey(web), undefined]]), opts);
    expect(show(gone.ops)).toEqual(['deleteService 1=198.18.100.1:80/TCP', 'deleteSlots 1 1 2 3', 'deleteBackend 1', 'deleteBackend 3']);
    applyDelta(live, gone.delta);
    const back = planDatapathChanges(live, new Map([[frontendKey(web), web]]), opts);
    expect(show(back.ops)).toEqual([
      'upsertBackend 1=198.18.1.1:8080/TCP active',
      'upsertBackend 3=198.18.1.3:8080/TCP active',
      'setSlots 1 1:1 2:2 3:3',
      'upsertService 1=198.18.100.1:80/TCP count=3 random',
    ]);
    applyDelta(live, back.delta);
    expect(live).toEqual(planDatapath(emptyDatapathState(), [web, api], opts).next);
  });

  it('notices a state changed behind its back and re-reads it', () => {
    const live = planDatapath(emptyDatapathState(), [web], opts).next;
    expect(planDatapathChanges(live, new Map(), opts).ops).toEqual([]); // indexes `live`
    live.backends.set(4, { id: 4, address: '198.18.1.9', port: 8080, protocol: 'TCP', state: 'active' });
    const added = fe('198.18.100.2', [be('198.18.1.9'), be('198.18.1.8')]);
    expect(show(planDatapathChanges(live, new Map([[frontendKey(added), added]]), opts).ops)).toEqual([
      'upsertBackend 5=198.18.1.8:8080/TCP active',
      'setSlots 2 1:4 2:5',
      'upsertService 2=198.18.100.2:80/TCP count=2 random',
    ]);
  });
});

// ---- properties ------------------------------------------------------------------------------------

const frontendAddresses = ['198.18.100.1', '198.18.100.2', '2001:db8:100::1'];
const backendAddresses = { 4: ['198.18.1.1', '198.18.1.2', '198.18.1.3', '198.18.1.4', '198.18.1.5'], 6: ['2001:db8:1::1', '2001:db8:1::2', '2001:db8:1::3'] };

const arbFrontend = fc
  .record({
    address: fc.constantFrom(...frontendAddresses),
    port: fc.constantFrom(80, 443),
    protocol: fc.constantFrom('TCP' as const, 'UDP' as const),
    type: fc.constantFrom<FrontendType>('ClusterIP', 'LoadBalancer', 'NodePort'),
    algorithm: fc.constantFrom<Algorithm>('random', 'maglev'),
    affinity: fc.constantFrom(undefined, 60, 10800),
    picks: fc.array(fc.record({ n: fc.nat(4), port: fc.constantFrom(8080, 9090), terminating: fc.boolean() }), { maxLength: 6 }),
  })
  .map(({ address, port, protocol, type, algorithm, affinity, picks }): Frontend => {
    const pool = backendAddresses[address.includes(':') ? 6 : 4];
    const selected = picks.map(({ n, port: p, terminating }) => ({ address: pool[n % pool.length]!, port: p, protocol, state: terminating ? ('terminating' as const) : ('active' as const) }));
    const unique = [...new Map(selected.map((b) => [backendKey(b), b])).values()];
    return { address, port, protocol, type, service: `ns/${address}`, algorithm, ...(affinity ? { affinityTimeoutSeconds: affinity } : {}), backends: unique, selected: unique };
  });

const arbFrontends = fc.array(arbFrontend, { maxLength: 8 }).map((list) => [...new Map(list.map((f) => [frontendKey(f), f])).values()]);

/** A backend's state must agree across services (it is one endpoint): the first mention wins. */
function consistent(frontends: Frontend[]): Frontend[] {
  const states = new Map<string, BackendState>();
  return frontends.map((f) => {
    const selected = f.selected.map((b) => {
      const state = states.get(backendKey(b)) ?? b.state;
      states.set(backendKey(b), state);
      return { ...b, state };
    });
    return { ...f, selected, backends: selected };
  });
}

/** Frontends and backend identities present before and after keep their ids. */
function keepsIds(before: DatapathState, after: DatapathState): void {
  for (const [key, service] of before.services) if (after.services.has(key)) expect(after.services.get(key)!.id).toBe(service.id);
  const ids = new Map([...after.backends.values()].map((b) => [backendKey(b), b.id]));
  for (const backend of before.backends.values()) if (ids.has(backendKey(backend))) expect(ids.get(backendKey(backend))).toBe(backend.id);
}

describe('planDatapath properties', () => {
  it('never exposes a missing backend, lands on `next`, is idempotent and keeps ids, over random edits', { timeout: 120_000 }, () => {
    fc.assert(
      fc.property(
        fc.array(arbFrontends.map(consistent), { minLength: 1, maxLength: 6 }),
        fc.option(fc.record({ maxServices: fc.integer({ min: 1, max: 8 }), maxBackends: fc.integer({ min: 1, max: 16 }) }), { nil: undefined }),
        (steps, caps) => {
          const options = { ...opts, ...caps };
          let current = emptyDatapathState();
          for (const frontends of steps) {
            const before = structuredClone(current);
            const { ops, next: planned, problems } = planDatapath(current, frontends, options);
            expect(current).toEqual(before); // (pure)
            expect(run(current, ops)).toEqual(MapSimulator.of(planned)); // (a) at every op, (b) at the end
            // (c) at once; or, when a full map held something back, within a few plans as deletions make room.
            let next = planned;
            let settled = planDatapath(next, frontends, options);
            for (let round = 0; settled.ops.length > 0 && round < 4; round++) {
              expect(problems.some((p) => p.reason === 'map_full')).toBe(true);
              next = plan(next, frontends, options).next;
              settled = planDatapath(next, frontends, options);
            }
            expect(settled.ops).toEqual([]);
            const heldBack = (key: string) => settled.problems.some((p) => p.reason === 'map_full' && p.message.startsWith(`${key} `));
            keepsIds(current, planned); // (d)
            // Exactly the selected backends are programmed, each service's slots are its selection.
            for (const f of frontends) {
              const service = next.services.get(frontendKey(f));
              if (heldBack(frontendKey(f))) continue;
              expect(service).toBeDefined();
              if (!service) continue;
              expect(service.slots.map((id) => backendKey(next.backends.get(id)!)).sort()).toEqual(f.selected.map(backendKey).sort());
              expect(service.slots.map((id) => next.backends.get(id)!.state).sort()).toEqual(f.selected.map((b) => b.state).sort());
            }
            const referenced = new Set([...next.services.values()].flatMap((s) => s.slots));
            expect([...next.backends.keys()].sort()).toEqual([...referenced].sort());
            current = next;
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('adopts any renumbering and slot order of its own output: only strays are deleted, every id is kept', { timeout: 120_000 }, () => {
    fc.assert(
      fc.property(arbFrontends.map(consistent), fc.integer({ min: 1, max: 1000 }), fc.integer(), fc.nat(3), (frontends, stride, seed, strays) => {
        const { next } = planDatapath(emptyDatapathState(), frontends, opts);
        // What the lead might read back: other ids, slots in another order, backends nobody uses.
        const renumber = (id: number) => id * stride + 1_000;
        const shuffle = (ids: readonly number[]) => [...ids].sort((a, b) => ((a * 2654435761) ^ seed) % 97 - ((b * 2654435761) ^ seed) % 97);
        const adopted: DatapathState = {
          services: new Map(
            [...next.services].map(([key, s]) => [
              key,
              { ...s, id: renumber(s.id), slots: shuffle(s.slots.map(renumber)), ...(s.maglev ? { maglev: s.maglev.map(renumber) } : {}) },
            ]),
          ),
          backends: new Map([...next.backends.values()].map((b) => [renumber(b.id), { ...b, id: renumber(b.id) }])),
        };
        for (let i = 0; i < strays; i++) adopted.backends.set(7 + i, { id: 7 + i, address: `198.18.9.${i}`, port: 1, protocol: 'UDP', state: 'active' });
        const result = planDatapath(adopted, frontends, opts);
        expect(show(result.ops)).toEqual(range(strays).map((i) => `deleteBackend ${7 + i}`));
        keepsIds(adopted, result.next);
      }),
      { numRuns: 200 },
    );
  });

  it('plans the same ops for the changed frontends alone as for everything', { timeout: 120_000 }, () => {
    fc.assert(
      fc.property(fc.array(arbFrontends.map(consistent), { minLength: 1, maxLength: 8 }), (steps) => {
        let full = emptyDatapathState();
        const live = emptyDatapathState(); // changed in place, with its index kept up to date
        let previous = new Map<string, Frontend>();
        for (const frontends of steps) {
          const desired = new Map(frontends.map((f) => [frontendKey(f), f]));
          const changed = new Map<string, Frontend | undefined>();
          for (const [key, f] of desired) if (JSON.stringify(previous.get(key)) !== JSON.stringify(f)) changed.set(key, f);
          for (const key of previous.keys()) if (!desired.has(key)) changed.set(key, undefined);
          const whole = planDatapath(full, frontends, opts);
          const partial = planDatapathChanges(live, changed, opts);
          expect(partial.ops).toEqual(whole.ops);
          applyDelta(live, partial.delta);
          expect(live).toEqual(whole.next);
          full = whole.next;
          previous = desired;
        }
      }),
      { numRuns: 300 },
    );
  });

  it('keeps the index of a state programmed from empty as a freshly built one would be', { timeout: 120_000 }, () => {
    fc.assert(
      fc.property(arbFrontends.map(consistent), fc.array(arbFrontends.map(consistent), { maxLength: 6 }), (first, steps) => {
        // The agent's first pass: a full plan from nothing, whose identities the index takes whole.
        const live = emptyDatapathState();
        applyDelta(live, planDatapathFull(live, first, opts).delta);
        let previous = new Map(first.map((f) => [frontendKey(f), f]));
        for (const frontends of steps) {
          const desired = new Map(frontends.map((f) => [frontendKey(f), f]));
          const changed = new Map<string, Frontend | undefined>([...desired].filter(([key, f]) => previous.get(key) !== f));
          for (const key of previous.keys()) if (!desired.has(key)) changed.set(key, undefined);
          const fresh: DatapathState = { services: new Map(live.services), backends: new Map(live.backends) }; // indexed from scratch
          const partial = planDatapathChanges(live, changed, opts);
          expect(partial.ops).toEqual(planDatapathChanges(fresh, changed, opts).ops);
          applyDelta(live, partial.delta);
          previous = desired;
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('RefCounts', () => {
  it('counts dense ids in a growing array and any u32 id beyond it', () => {
    const refs = new RefCounts();
    const ids = [0, 1, 1023, 1024, 70_000, 2 ** 22 - 1, 2 ** 22, 2 ** 32 - 1];
    for (const id of ids) refs.add(id, 2);
    refs.add(1024, -1);
    refs.add(2 ** 32 - 1, -2);
    expect(ids.map((id) => refs.get(id))).toEqual([2, 2, 2, 1, 2, 2, 2, 0]);
    expect(refs.get(5)).toBe(0);
    expect(refs.get(2 ** 31)).toBe(0);
  });
});
