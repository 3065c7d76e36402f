// Model-based property tests of the LB-IPAM allocator: random sequences of pool and Service
// changes, drawn from a small universe so that overlaps, full pools and shared addresses happen
// often, fed through the same adapters as the operator (poolInput, serviceInput, serviceStatus).
// After every step the contract is checked against an independent model of the pools:
//   1. an IP held by several services only when they are pairwise sharing-compatible;
//   2. every held IP lies in a usable range of a pool selecting the service (or, while some pool
//      is invalid, outside every usable range), fits the request, and the result is consistent;
//   3. a rebuild from pools + services with their written status gives the same results (ips,
//      satisfied, reason; messages in a property of their own), and its premise: no waiting
//      service could be served, and the oldest waiting service is served first;
//   4. IPs never move because of an unrelated change, and new IPs come from allocatable pools;
//   5. pool counts add up and match the held IPs;
//   6. nothing throws, whatever the input;
//   7. building from the same objects in another order gives the same results.
// Seeds are left to fast-check; a failure prints its seed, path and the shrunk list of operations
// (a JSON record each), and the violation names the failing step and what differs.
import { seededRandom } from '../api/random.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  parseCIDR,
  parseIP,
  parseSelector,
  rangeContains,
  rangeSize,
  rangesOverlap,
  selectorMatches,
  serviceNameLabel,
  serviceNamespaceLabel,
  type IP,
  type IPRange,
  type LoadBalancerIPPool,
  type PoolBlock,
  type PoolSpec,
  type Selector,
  type Service,
  type ServicePort,
  type ServiceSpec,
} from '../api/index.js';
import { Allocator, poolInput, serviceInput, serviceStatus, sharingConflict, type ServiceInput, type ServiceResult } from './index.js';

// ---- the universe ----------------------------------------------------------------------------

const times = ['2024-01-01T00:00:00Z', '2024-01-02T00:00:00Z', '2024-01-03T00:00:00Z', undefined] as const;
const poolNames = ['p1', 'p2', 'p3', 'p4'] as const;
const namespaces = ['ns1', 'ns2'] as const;
const serviceNames = ['s1', 's2', 's3', 's4'] as const;
const NOW = '2024-02-01T00:00:00Z';
const unknownTime = '\uffff';

const v4Blocks: PoolBlock[] = [
  { cidr: '198.18.0.0/30' },
  { cidr: '198.18.0.0/29' },
  { cidr: '198.18.0.4/31' },
  { cidr: '198.18.0.6/32' },
  { cidr: '198.18.0.8/30' },
  { start: '198.18.0.2', stop: '198.18.0.5' },
  { start: '198.18.0.16', stop: '198.18.0.17' },
  { start: '198.18.0.20' },
];
const v6Blocks: PoolBlock[] = [
  { cidr: '2001:db8::/126' },
  { cidr: '2001:db8::4/127' },
  { cidr: '2001:db8::/125' },
  { start: '2001:db8::10', stop: '2001:db8::11' },
];
const badBlocks: PoolBlock[] = [
  { cidr: '198.18.0.1/29' },
  { cidr: '198.18.0.0/33' },
  { start: '198.18.0.9', stop: '198.18.0.3' },
  { start: '198.18.0.300' },
  { start: '198.18.0.1', stop: '2001:db8::1' },
  { cidr: '198.18.0.0/30', start: '198.18.0.1' },
  {},
];
const v4Addresses = ['198.18.0.0', '198.18.0.1', '198.18.0.2', '198.18.0.3', '198.18.0.4', '198.18.0.6', '198.18.0.9', '198.18.0.16', '198.18.0.20', '198.18.0.30'];
const v6Addresses = ['2001:db8::1', '2001:db8::2', '2001:db8::4', '2001:db8::10'];
const malformedAddresses = ['198.18.0.999', '2001:db8::zz', '198.18.0.01'];

// ---- operations ------------------------------------------------------------------------------

type Op =
  | { op: 'putPool'; name: string; created?: string; spec: PoolSpec }
  | { op: 'deletePool'; name: string }
  | {
      op: 'putService';
      ns: string;
      name: string;
      created?: string;
      labels?: Record<string, string>;
      annotations?: Record<string, string>;
      spec: ServiceSpec;
      /** Status IPs a newly created object already carries (a restore, a stale write); ignored on update. */
      status?: string[];
    }
  | { op: 'deleteService'; ns: string; name: string }
  /** Writes the reported status back, spec unchanged: the update event the operator's own write causes. */
  | { op: 'touchService'; ns: string; name: string }
  /** The operator restarts: a new allocator built from the pools and the services with their written status. */
  | { op: 'restart' };

/** Drops undefined fields so that counterexamples print compactly. */
function compact<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

const maybe = <T>(arb: fc.Arbitrary<T>, weight = 1, absent = 1): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: absent, arbitrary: fc.constant(undefined) }, { weight, arbitrary: arb });

const blockArb: fc.Arbitrary<PoolBlock> = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom(...v4Blocks) },
  { weight: 6, arbitrary: fc.constantFrom(...v6Blocks) },
  { weight: 1, arbitrary: fc.constantFrom(...badBlocks) },
);

const tierArb = fc.constantFrom('a', 'b');
// Bad selectors come from YAML the schema did not check; the allocator must turn them into an error.
const badSelectors = [
  { matchExpressions: [{ key: 'tier', operator: 'Bogus' }] },
  { matchExpressions: [{ key: 'tier', operator: 'In', values: [] }] },
  { matchLabels: { 'bad key!': 'a' } },
] as unknown as NonNullable<PoolSpec['serviceSelector']>[];
const selectorArb: fc.Arbitrary<PoolSpec['serviceSelector']> = fc.oneof(
  { weight: 5, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: tierArb.map((v) => ({ matchLabels: { tier: v } })) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom('In' as const, 'NotIn' as const), fc.constantFrom<string[]>(['a'], ['b'], ['a', 'b']))
      .map(([operator, values]) => ({ matchExpressions: [{ key: 'tier', operator, values }] })),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom('Exists' as const, 'DoesNotExist' as const).map((operator) => ({ matchExpressions: [{ key: 'tier', operator }] })),
  },
  { weight: 1, arbitrary: fc.constantFrom(...namespaces).map((ns) => ({ matchLabels: { [serviceNamespaceLabel]: ns } })) },
  { weight: 1, arbitrary: fc.constantFrom(...badSelectors) },
);

const poolSpecArb: fc.Arbitrary<PoolSpec> = fc
  .record({
    blocks: fc.oneof({ weight: 1, arbitrary: fc.constant<PoolBlock[]>([]) }, { weight: 30, arbitrary: fc.array(blockArb, { minLength: 1, maxLength: 3 }) }),
    serviceSelector: selectorArb,
    disabled: maybe(fc.constantFrom(false, true), 1, 3),
    allowFirstLastIPs: maybe(fc.constantFrom('Yes' as const, 'No' as const)),
    priority: maybe(fc.integer({ min: 0, max: 3 })),
  })
  .map((s) => compact(s));

const putPoolArb: fc.Arbitrary<Op> = fc
  .record({ name: fc.constantFrom(...poolNames), created: fc.constantFrom(...times), spec: poolSpecArb })
  .map(({ name, created, spec }) => compact({ op: 'putPool' as const, name, created, spec }));

const ipsAnnotationArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...v4Addresses) },
  { weight: 2, arbitrary: fc.constantFrom(...v6Addresses) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...v4Addresses), fc.constantFrom(...v6Addresses)).map(([a, b]) => `${a},${b}`) },
  { weight: 1, arbitrary: fc.constantFrom(...malformedAddresses) },
);

const annotationsArb = fc
  .record({
    'beacon.io/ips': maybe(ipsAnnotationArb, 1, 4),
    'beacon.io/pool': maybe(fc.constantFrom(...poolNames, 'nope'), 1, 7),
    'beacon.io/sharing-key': maybe(fc.constantFrom('k1', 'k1', 'k1', 'k2'), 4, 1),
    'beacon.io/sharing-cross-namespace': maybe(fc.constant('*'), 3, 1),
  })
  .map((a) => compact(a) as Record<string, string>)
  .map((a) => (Object.keys(a).length === 0 ? undefined : a));

const http = { port: 80, protocol: 'TCP' as const };
const dnsUDP = { port: 53, protocol: 'UDP' as const };
const dnsTCP = { port: 53, protocol: 'TCP' as const };
// Mostly one port, so that sharers often fit together; sometimes two, so that they clash.
const portsArb = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom<ServicePort[]>([http], [dnsUDP], [dnsTCP]) },
  { weight: 1, arbitrary: fc.constantFrom<ServicePort[]>([dnsUDP, dnsTCP], [http, dnsTCP]) },
  // No protocol: TCP by default, so it clashes with 80/TCP.
  { weight: 1, arbitrary: fc.constant<ServicePort[]>([{ port: 80 }]) },
);

const serviceSpecArb: fc.Arbitrary<ServiceSpec> = fc
  .record({
    type: fc.oneof({ weight: 12, arbitrary: fc.constant('LoadBalancer') }, { weight: 1, arbitrary: fc.constant('ClusterIP') }),
    loadBalancerClass: maybe(fc.constantFrom('other.io/x', 'beacon.io/l2-announcer', 'beacon.io/bgp-control-plane'), 1, 8),
    // The deprecated field, read when no annotation requests an address.
    loadBalancerIP: maybe(fc.constantFrom('198.18.0.2', '198.18.0.16', '198.18.0.999'), 1, 15),
    ipFamilyPolicy: maybe(fc.constantFrom('SingleStack' as const, 'PreferDualStack' as const, 'RequireDualStack' as const), 1, 1),
    ipFamilies: maybe(
      fc.oneof(
        { weight: 12, arbitrary: fc.constantFrom<('IPv4' | 'IPv6')[]>(['IPv4'], ['IPv4'], ['IPv6'], ['IPv4', 'IPv6'], ['IPv6', 'IPv4']) },
        { weight: 1, arbitrary: fc.constant<('IPv4' | 'IPv6')[]>(['IPv4', 'IPv4']) },
      ),
      1,
      2,
    ),
    ports: portsArb,
    selector: fc.constantFrom({ app: 'x' }, { app: 'y' }),
    externalTrafficPolicy: maybe(fc.constantFrom('Cluster' as const, 'Local' as const), 1, 4),
  })
  .map((s) => compact(s));

const putServiceArb: fc.Arbitrary<Op> = fc
  .record({
    ns: fc.constantFrom(...namespaces),
    name: fc.constantFrom(...serviceNames),
    created: fc.constantFrom(...times),
    labels: fc.constantFrom<Record<string, string> | undefined>({ tier: 'a' }, { tier: 'b' }, undefined),
    annotations: annotationsArb,
    spec: serviceSpecArb,
    status: maybe(fc.subarray([...v4Addresses.slice(0, 6), ...v6Addresses.slice(0, 2), 'not-an-ip'], { minLength: 1, maxLength: 2 }), 1, 6),
  })
  .map((s) => compact({ op: 'putService' as const, ...s }));

const serviceRefArb = fc.record({ ns: fc.constantFrom(...namespaces), name: fc.constantFrom(...serviceNames) });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: putPoolArb },
  { weight: 1, arbitrary: fc.constantFrom(...poolNames).map((name): Op => ({ op: 'deletePool', name })) },
  { weight: 7, arbitrary: putServiceArb },
  { weight: 2, arbitrary: serviceRefArb.map((r): Op => ({ op: 'deleteService', ...r })) },
  { weight: 1, arbitrary: serviceRefArb.map((r): Op => ({ op: 'touchService', ...r })) },
  { weight: 1, arbitrary: fc.constant<Op>({ op: 'restart' }) },
);

// ---- the world: objects as the store holds them, and the live allocator ----------------------

const keyOf = (ns: string, name: string): string => `${ns}/${name}`;

interface Snapshot {
  readonly results: Map<string, ServiceResult>;
  readonly pools: LoadBalancerIPPool[];
  readonly services: Map<string, Service>;
}

interface Step {
  readonly index: number;
  readonly op: Op;
  /** The service the operation changed, if any. */
  readonly target: string | undefined;
  readonly before: Snapshot;
  readonly after: Snapshot;
}

class World {
  readonly pools = new Map<string, LoadBalancerIPPool>();
  readonly services = new Map<string, Service>();
  allocator = new Allocator();
  private steps = 0;

  constructor(private readonly checks: readonly Check[] = []) {}

  /** Applies one operation, then checks the invariants; anything the allocator throws fails too. */
  step(op: Op): void {
    const index = this.steps++;
    const before = this.snapshot();
    let target: string | undefined;
    try {
      target = this.apply(op);
    } catch (e) {
      fail({ index, op, target: undefined, before, after: before }, `the allocator threw: ${String(e)}`, { stack: (e as Error).stack });
    }
    const step: Step = { index, op, target, before, after: this.snapshot() };
    for (const check of this.checks) check(step, this);
  }

  snapshot(): Snapshot {
    return { results: this.allocator.results(), pools: [...this.pools.values()], services: new Map(this.services) };
  }

  /** The status the operator writes for a service from the allocator's current result. */
  statusOf(key: string, svc: Service): Service['status'] {
    return serviceStatus(svc.status, this.allocator.result(key), svc.metadata.generation, NOW);
  }

  /** Every service as it stands in the store once the operator has written its status. */
  servicesWithStatus(): Service[] {
    return [...this.services].map(([key, svc]) => ({ ...svc, status: this.statusOf(key, svc) }));
  }

  apply(op: Op): string | undefined {
    switch (op.op) {
      case 'putPool': {
        const prev = this.pools.get(op.name);
        const created = prev ? prev.metadata.creationTimestamp : op.created;
        const pool: LoadBalancerIPPool = {
          apiVersion: 'beacon.io/v1alpha1',
          kind: 'LoadBalancerIPPool',
          metadata: compact({ name: op.name, creationTimestamp: created }),
          spec: op.spec,
        };
        this.pools.set(op.name, pool);
        this.allocator.setPools([...this.pools.values()].map(poolInput));
        return undefined;
      }
      case 'deletePool':
        // Also run when the pool does not exist: an unchanged pool set must change nothing.
        this.pools.delete(op.name);
        this.allocator.setPools([...this.pools.values()].map(poolInput));
        return undefined;
      case 'putService': {
        const key = keyOf(op.ns, op.name);
        const prev = this.services.get(key);
        // creationTimestamp is immutable: an update keeps the stored one.
        const created = prev ? prev.metadata.creationTimestamp : op.created;
        const svc: Service = {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: compact({ name: op.name, namespace: op.ns, creationTimestamp: created, labels: op.labels, annotations: op.annotations }),
          spec: op.spec,
        };
        if (prev) svc.status = this.statusOf(key, prev);
        else if (op.status) svc.status = { loadBalancer: { ingress: op.status.map((ip) => ({ ip })) } };
        this.services.set(key, svc);
        this.allocator.upsertService(serviceInput(svc));
        return key;
      }
      case 'deleteService': {
        const key = keyOf(op.ns, op.name);
        this.services.delete(key);
        this.allocator.deleteService(key);
        return key;
      }
      case 'touchService': {
        const key = keyOf(op.ns, op.name);
        const prev = this.services.get(key);
        if (!prev) return undefined;
        const svc = { ...prev, status: this.statusOf(key, prev) };
        this.services.set(key, svc);
        this.allocator.upsertService(serviceInput(svc));
        return key;
      }
      case 'restart': {
        const services = this.servicesWithStatus();
        for (const svc of services) this.services.set(keyOf(svc.metadata.namespace!, svc.metadata.name), svc);
        this.allocator = new Allocator([...this.pools.values()].map(poolInput), services.map(serviceInput));
        return undefined;
      }
    }
  }
}

type Check = (step: Step, world: World) => void;

class Violation extends Error {}

function fail(step: Step, what: string, details: Record<string, unknown> = {}): never {
  const plain = (x: unknown): unknown =>
    typeof x === 'bigint' ? x.toString() : x instanceof Map ? Object.fromEntries(x as Map<string, unknown>) : x instanceof Set ? [...(x as Set<unknown>)] : x;
  const show = (v: unknown) => JSON.stringify(v, (_k, x: unknown) => plain(x));
  const lines = [`step ${step.index} (${show(step.op)}): ${what}`];
  for (const [k, v] of Object.entries(details)) lines.push(`  ${k}: ${show(v)}`);
  throw new Violation(lines.join('\n'));
}

/**
 * One generated operation as a fast-check command: it applies the operation to the world, then
 * runs the property's checks. With fc.commands, shrinking drops the operations after the failing
 * one, and the counterexample prints as the list of operations that ran.
 */
class OpCommand implements fc.Command<object, World> {
  constructor(readonly op: Op) {}

  check(): boolean {
    return true;
  }

  run(_model: object, world: World): void {
    world.step(this.op);
  }

  toString(): string {
    return JSON.stringify(this.op);
  }
}

const commandsArb = fc.commands([opArb.map((op) => new OpCommand(op))], { maxCommands: 40, size: 'medium' });

/** Runs the commands on a fresh world that checks `checks` after every step. */
function run(commands: Iterable<fc.Command<object, World>>, checks: readonly Check[]): void {
  fc.modelRun(() => ({ model: {}, real: new World(checks) }), commands);
}

// ---- the independent model of pools ----------------------------------------------------------

interface ModelPool {
  readonly name: string;
  readonly valid: boolean;
  readonly conflicting: boolean;
  readonly disabled: boolean;
  /** Addresses that may be held, per block (first/last trimmed as allowFirstLastIPs says). */
  readonly usable: readonly IPRange[];
  readonly total: bigint;
  readonly selector: Selector | undefined;
}

interface Model {
  readonly pools: readonly ModelPool[];
  readonly anyInvalid: boolean;
}

function modelBlock(b: PoolBlock, allowFirstLast: boolean): { usable: IPRange; whole: IPRange } | undefined {
  if (b.cidr !== undefined) {
    if (b.start !== undefined || b.stop !== undefined) return undefined;
    const parsed = parseCIDR(b.cidr);
    if (!parsed.ok) return undefined;
    const { range, prefix } = parsed.value;
    const bits = range.family === 4 ? 32 : 128;
    // Network and broadcast addresses are skipped, except in /31 and /32 (/127, /128).
    const trim = !allowFirstLast && prefix < bits - 1;
    return { usable: trim ? { ...range, first: range.first + 1n, last: range.last - 1n } : range, whole: range };
  }
  if (b.start === undefined) return undefined;
  const start = parseIP(b.start);
  const stop = b.stop === undefined ? start : parseIP(b.stop);
  if (!start || !stop || start.family !== stop.family || start.value > stop.value) return undefined;
  const range: IPRange = { family: start.family, first: start.value, last: stop.value };
  return { usable: range, whole: range };
}

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const models = new WeakMap<readonly LoadBalancerIPPool[], Model>();

/** The model of a snapshot's pools, computed once per snapshot. */
function modelOf(pools: readonly LoadBalancerIPPool[]): Model {
  let m = models.get(pools);
  if (!m) models.set(pools, (m = buildModel(pools)));
  return m;
}

function buildModel(pools: readonly LoadBalancerIPPool[]): Model {
  const parsed = pools.map((p) => {
    const allow = p.spec.allowFirstLastIPs === 'Yes';
    const blocks = p.spec.blocks.map((b) => modelBlock(b, allow));
    const good = blocks.filter((b) => b !== undefined);
    const selector = parseSelector(p.spec.serviceSelector);
    const valid = blocks.length > 0 && good.length === blocks.length && selector.ok;
    return { p, good, valid, selector: selector.ok ? selector.value : undefined };
  });
  // A pool conflicts when one of its blocks overlaps another of its own or one of an older pool.
  const conflicting = new Set<string>();
  const older: IPRange[] = [];
  const age = (x: (typeof parsed)[number]) => x.p.metadata.creationTimestamp ?? unknownTime;
  for (const x of [...parsed].sort((a, b) => byText(age(a), age(b)) || byText(a.p.metadata.name, b.p.metadata.name))) {
    const own = x.good.map((b) => b.whole);
    const self = own.some((r, i) => own.some((o, j) => j < i && rangesOverlap(o, r)));
    if (self || own.some((r) => older.some((o) => rangesOverlap(o, r)))) conflicting.add(x.p.metadata.name);
    older.push(...own);
  }
  const out = parsed.map(
    (x): ModelPool => ({
      name: x.p.metadata.name,
      valid: x.valid,
      conflicting: conflicting.has(x.p.metadata.name),
      disabled: x.p.spec.disabled === true,
      usable: x.good.map((b) => b.usable),
      total: x.valid ? x.good.reduce((n, b) => n + rangeSize(b.usable), 0n) : 0n,
      selector: x.selector,
    }),
  );
  return { pools: out, anyInvalid: out.some((p) => !p.valid) };
}

const poolUsableM = (p: ModelPool): boolean => p.valid && !p.conflicting;

function managedM(svc: Service): boolean {
  const cls = svc.spec.loadBalancerClass;
  return svc.spec.type === 'LoadBalancer' && (cls === undefined || cls === 'beacon.io/l2-announcer' || cls === 'beacon.io/bgp-control-plane');
}

function selectsM(pool: ModelPool, svc: Service): boolean {
  const named = svc.metadata.annotations?.['beacon.io/pool']?.trim();
  if (named !== undefined && named !== '' && named !== pool.name) return false;
  if (!pool.selector) return false;
  const ns = svc.metadata.namespace ?? 'default';
  return selectorMatches(pool.selector, { ...svc.metadata.labels, [serviceNamespaceLabel]: ns, [serviceNameLabel]: svc.metadata.name });
}

/** The usable pool whose range holds the address, if any (usable pools never overlap). */
const ownerOf = (model: Model, ip: IP): ModelPool | undefined =>
  model.pools.find((p) => poolUsableM(p) && p.usable.some((r) => rangeContains(r, ip)));

/** Why the service may not hold this address under these pools, or undefined when it may. */
function holdProblemM(model: Model, ip: IP, svc: Service): string | undefined {
  const owner = ownerOf(model, ip);
  if (owner) return selectsM(owner, svc) ? undefined : `it lies in pool ${owner.name}, which does not select the service`;
  // Documented exception: while some pool is invalid its ranges are unknown, so addresses outside
  // every usable range are kept.
  if (model.anyInvalid) return undefined;
  return 'it lies in no usable range of any pool';
}

const ipOf = (text: string): IP => {
  const ip = parseIP(text);
  if (!ip) throw new Error(`the allocator reported a malformed IP ${text}`);
  return ip;
};

const sameIP = (a: IP, b: IP): boolean => a.family === b.family && a.value === b.value;

const slotAccepts = (slot: ServiceInput['slots'][number], ip: IP): boolean =>
  'ip' in slot ? sameIP(slot.ip, ip) : slot.families.includes(ip.family);

const inputs = new WeakMap<Service, ServiceInput>();

/** serviceInput, computed once per object (objects are never mutated). */
function inputOf(svc: Service): ServiceInput {
  let i = inputs.get(svc);
  if (!i) inputs.set(svc, (i = serviceInput(svc)));
  return i;
}

// ---- the invariants --------------------------------------------------------------------------

/** 1: an address has several holders only when every pair of them may share it. */
const checkSharing: Check = (step) => {
  const { results, services } = step.after;
  const holders = new Map<string, string[]>();
  for (const [key, r] of results) {
    for (const text of r.ips) {
      if (r.ips.filter((t) => t === text).length > 1) fail(step, `${key} lists ${text} twice`, { result: r });
      holders.set(text, [...(holders.get(text) ?? []), key]);
    }
  }
  for (const [ip, keys] of holders) {
    for (const a of keys) {
      for (const b of keys) {
        if (a >= b) continue;
        const ia = inputOf(services.get(a)!);
        const ib = inputOf(services.get(b)!);
        const why = sharingConflict(ia, ib) ?? sharingConflict(ib, ia);
        if (why !== undefined) fail(step, `${ip} is held by ${a} and ${b}, which may not share it: ${why}`, { [a]: results.get(a), [b]: results.get(b) });
      }
    }
  }
};

/** 2 (and result consistency): held addresses are allowed by the pools and fit the request. */
const checkHeldAllowed: Check = (step) => {
  const { results, services, pools } = step.after;
  const model = modelOf(pools);
  const managed = [...services].filter(([, s]) => managedM(s)).map(([k]) => k).sort();
  const reported = [...results.keys()].sort();
  if (managed.join() !== reported.join()) fail(step, 'results are not exactly the managed services', { managed, reported });
  for (const [key, r] of results) {
    const svc = services.get(key)!;
    for (const text of r.ips) {
      const why = holdProblemM(model, ipOf(text), svc);
      if (why !== undefined) fail(step, `${key} holds ${text} but ${why}`, { result: r, pools: model.pools });
    }
    const input = inputOf(svc);
    if (input.error !== undefined) {
      if (r.reason !== 'invalid_request' || r.satisfied) fail(step, `${key} has an invalid request but reason ${r.reason}`, { result: r });
      continue;
    }
    // Fits the request: each address fills its own slot.
    const free = [...input.slots];
    for (const text of r.ips) {
      const i = free.findIndex((slot) => slotAccepts(slot, ipOf(text)));
      if (i < 0) fail(step, `${key} holds ${text}, which no slot of its request accepts`, { result: r, slots: input.slots });
      free.splice(i, 1);
    }
    const satisfied = input.need === 'all' ? r.ips.length === input.slots.length : r.ips.length > 0;
    if (r.satisfied !== satisfied || (r.reason === 'satisfied') !== r.satisfied) {
      fail(step, `${key}: satisfied=${r.satisfied} reason=${r.reason} with ${r.ips.length} of ${input.slots.length} slots (need ${input.need})`, { result: r });
    }
  }
};

/** 5: used + available = total, and used counts the held addresses in a usable pool's ranges. */
const checkPoolCounts: Check = (step, world) => {
  const { results, pools } = step.after;
  const model = modelOf(pools);
  const held = new Set<string>();
  for (const r of results.values()) for (const t of r.ips) held.add(t);
  const counted = world.allocator.pools();
  const names = counted.map((p) => p.name).sort();
  if (names.join() !== model.pools.map((p) => p.name).sort().join()) fail(step, 'pools() does not list exactly the pools', { names });
  for (const c of counted) {
    const m = model.pools.find((p) => p.name === c.name)!;
    if (c.used + c.available !== c.total) fail(step, `pool ${c.name}: used ${c.used} + available ${c.available} != total ${c.total}`);
    if (c.total !== m.total) fail(step, `pool ${c.name}: total ${c.total}, expected ${m.total}`, { pool: c, model: m });
    if (c.conflicting !== m.conflicting) fail(step, `pool ${c.name}: conflicting=${c.conflicting}, expected ${m.conflicting}`, { pool: c, model: m });
    if ((c.invalid === undefined) !== m.valid) fail(step, `pool ${c.name}: invalid=${c.invalid}, expected valid=${m.valid}`, { pool: c });
    if (poolUsableM(m)) {
      const inside = [...held].filter((t) => m.usable.some((r) => rangeContains(r, ipOf(t)))).length;
      if (c.used !== BigInt(inside)) fail(step, `pool ${c.name}: used ${c.used}, but ${inside} held addresses lie in its ranges`, { pool: c, held: [...held] });
    }
  }
};

/** 4: nothing moves without a reason; gained addresses come from allocatable, selecting pools. */
const checkStability: Check = (step) => {
  const { before, after, target } = step;
  const model = modelOf(after.pools);
  for (const key of new Set([...before.results.keys(), ...after.results.keys()])) {
    const old = before.results.get(key);
    const now = after.results.get(key);
    if (key !== target && (old === undefined) !== (now === undefined)) fail(step, `unrelated service ${key} appeared or vanished`, { old, now });
    if (!now) continue;
    const svc = after.services.get(key)!;
    const oldIPs = old?.ips ?? [];
    // New addresses (neither held before nor claimed by a created object's status) are handed out
    // only from an enabled, usable pool that selects the service.
    const claimed = old ? [] : (svc.status?.loadBalancer?.ingress ?? []).map((i) => i.ip);
    for (const text of now.ips) {
      if (oldIPs.includes(text) || claimed.includes(text)) continue;
      const owner = ownerOf(model, ipOf(text));
      if (!owner || owner.disabled || !selectsM(owner, svc)) {
        fail(step, `${key} was given ${text}, not from an enabled pool selecting it`, { old, now, owner });
      }
    }
    // `all` requests (RequireDualStack, requested IPs) get every missing address at once or none.
    const gained = now.ips.filter((t) => !oldIPs.includes(t) && !claimed.includes(t));
    const request = inputOf(svc);
    if (gained.length > 0 && request.error === undefined && request.need === 'all' && now.ips.length < request.slots.length) {
      fail(step, `${key} needs all its addresses at once but was given ${gained.join(', ')} alone`, { old, now, slots: request.slots });
    }
    if (!old) continue;
    const dropped = old.ips.filter((t) => !now.ips.includes(t));
    if (key !== target) {
      for (const text of dropped) {
        const why = holdProblemM(model, ipOf(text), svc);
        if (why === undefined) fail(step, `unrelated service ${key} lost ${text} although it is still usable for it`, { old, now });
      }
      continue;
    }
    if (step.op.op === 'touchService' && old.ips.join() !== now.ips.join()) {
      fail(step, `writing back ${key}'s own status moved its addresses`, { old, now });
    }
    // The service itself changed: an address it held stays while it is still usable for it, fits
    // the new request and may still be shared with the other holders.
    const input = inputOf(svc);
    for (const text of dropped) {
      const ip = ipOf(text);
      if (holdProblemM(model, ip, svc) !== undefined) continue;
      const others = [...after.results].filter(([k, r]) => k !== key && r.ips.includes(text)).map(([k]) => inputOf(after.services.get(k)!));
      if (others.some((o) => sharingConflict(input, o) !== undefined || sharingConflict(o, input) !== undefined)) continue;
      if (input.error !== undefined) fail(step, `${key} (invalid request) dropped ${text}, which it may keep`, { old, now });
      const accepting = input.slots.filter((slot) => slotAccepts(slot, ip));
      const keptThere = old.ips.filter((t) => now.ips.includes(t) && accepting.some((slot) => slotAccepts(slot, ipOf(t)))).length;
      if (accepting.length > keptThere) fail(step, `updated ${key} dropped ${text} although it still fits its request and is usable`, { old, now, slots: input.slots });
    }
  }
};

/** Age order of services, as the allocator documents it: creationTimestamp, then namespace/name. */
function olderThan(a: Service, b: Service): boolean {
  const ca = a.metadata.creationTimestamp ?? unknownTime;
  const cb = b.metadata.creationTimestamp ?? unknownTime;
  if (ca !== cb) return ca < cb;
  return keyOf(a.metadata.namespace!, a.metadata.name) < keyOf(b.metadata.namespace!, b.metadata.name);
}

const addrKey = (ip: IP): string => `${ip.family}:${ip.value}`;

/** Every address of the range (the universe keeps them small). */
function* addresses(r: IPRange): Generator<IP> {
  for (let v = r.first; v <= r.last && v < r.first + 1024n; v++) yield { family: r.family, value: v };
}

/** The slots of the request that the reported addresses leave empty. */
function emptySlots(input: ServiceInput, ips: readonly string[]): ServiceInput['slots'][number][] {
  const free = [...input.slots];
  for (const text of ips) {
    const i = free.findIndex((slot) => slotAccepts(slot, ipOf(text)));
    if (i >= 0) free.splice(i, 1);
  }
  return free;
}

/**
 * Could the service be given an address for its empty slots now: a free address (or one whose
 * holders may share it) in an enabled, usable pool that selects it? `holders` maps addresses to
 * the keys holding them.
 */
function couldServe(model: Model, svc: Service, input: ServiceInput, holders: Map<string, string[]>, inputs: Map<string, ServiceInput>, ips: readonly string[]): boolean {
  if (input.error !== undefined) return false;
  const empty = emptySlots(input, ips);
  if (empty.length === 0) return false;
  const pools = model.pools.filter((p) => poolUsableM(p) && !p.disabled && selectsM(p, svc));
  const available = (ip: IP): boolean =>
    pools.some((p) => p.usable.some((r) => rangeContains(r, ip))) &&
    (holders.get(addrKey(ip)) ?? [])
      .filter((k) => k !== input.key)
      .every((k) => sharingConflict(input, inputs.get(k)!) === undefined && sharingConflict(inputs.get(k)!, input) === undefined);
  const servable = (slot: ServiceInput['slots'][number]): boolean =>
    'ip' in slot
      ? available(slot.ip)
      : pools.some((p) => p.usable.some((r) => slot.families.includes(r.family) && [...addresses(r)].some(available)));
  return input.need === 'any' ? empty.some(servable) : empty.every(servable);
}

/**
 * The premise of rebuild equivalence: after every step no waiting service could be served (else
 * a restart would serve it), and an address handed out in a step never went to a younger service
 * while an older one that could have used it keeps waiting.
 */
const checkWaiting: Check = (step) => {
  const { before, after } = step;
  const model = modelOf(after.pools);
  const inputs = new Map([...after.results.keys()].map((k) => [k, inputOf(after.services.get(k)!)]));
  const holders = new Map<string, string[]>();
  for (const [key, r] of after.results) for (const t of r.ips) holders.set(addrKey(ipOf(t)), [...(holders.get(addrKey(ipOf(t))) ?? []), key]);
  for (const [key, r] of after.results) {
    if (couldServe(model, after.services.get(key)!, inputs.get(key)!, holders, inputs, r.ips)) {
      fail(step, `${key} waits (${r.reason}) although an address is available to it`, { result: r, holders: Object.fromEntries(holders) });
    }
  }
  for (const [young, r] of after.results) {
    const svc = after.services.get(young)!;
    const had = before.results.get(young)?.ips ?? (svc.status?.loadBalancer?.ingress ?? []).map((i) => i.ip);
    for (const text of r.ips.filter((t) => !had.includes(t))) {
      const k = addrKey(ipOf(text));
      const without = new Map(holders);
      without.set(k, (holders.get(k) ?? []).filter((h) => h !== young));
      for (const [old, w] of after.results) {
        if (old === young || !olderThan(after.services.get(old)!, svc)) continue;
        if (couldServe(model, after.services.get(old)!, inputs.get(old)!, without, inputs, w.ips)) {
          fail(step, `${young} was given ${text} while the older ${old}, which could use it, keeps waiting`, { [young]: r, [old]: w });
        }
      }
    }
  }
};

interface Comparable {
  ips: string;
  satisfied: boolean;
  reason: string;
  message?: string;
}

function comparable(results: Map<string, ServiceResult>, withMessages: boolean): Record<string, Comparable> {
  return Object.fromEntries(
    [...results]
      .sort(([a], [b]) => byText(a, b))
      .map(([k, r]) => [k, { ips: r.ips.join(','), satisfied: r.satisfied, reason: r.reason, ...(withMessages ? { message: r.message } : {}) }]),
  );
}

function diff(a: Record<string, Comparable>, b: Record<string, Comparable>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) out[k] = { live: a[k], rebuilt: b[k] };
  }
  return out;
}

/** 3: a restart (new Allocator from the objects with their written status) reproduces the live state. */
const rebuildCheck =
  (withMessages: boolean): Check =>
  (step, world) => {
    const rebuilt = new Allocator(step.after.pools.map(poolInput), world.servicesWithStatus().map(serviceInput));
    const live = comparable(step.after.results, withMessages);
    const again = comparable(rebuilt.results(), withMessages);
    const d = diff(live, again);
    if (Object.keys(d).length > 0) fail(step, `a rebuild gives other results${withMessages ? ' (messages compared)' : ''}`, d);
  };

/** A small seeded generator, so that a shuffle is part of the (printed) counterexample. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const next = seededRandom(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * 7: the order in which objects are listed does not matter: with the status the operator wrote,
 * with the status the objects carry in the store (possibly stale, possibly claiming one address
 * twice), and with no status at all (a fresh start, where age alone decides).
 */
const determinismCheck =
  (seed: number): Check =>
  (step, world) => {
    const pools = step.after.pools;
    const variants: [string, Service[]][] = [
      ['written status', world.servicesWithStatus()],
      ['stored status', [...world.services.values()]],
      ['no status', [...world.services.values()].map((s) => ({ ...s, status: undefined }))],
    ];
    const show = (x: Allocator) => JSON.stringify(x.pools(), (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
    variants.forEach(([name, services], i) => {
      const a = new Allocator(pools.map(poolInput), services.map(serviceInput));
      const b = new Allocator(shuffled(pools, seed + step.index + i).map(poolInput), shuffled(services, ~seed - step.index - i).map(serviceInput));
      const d = diff(comparable(a.results(), true), comparable(b.results(), true));
      if (Object.keys(d).length > 0) fail(step, `building from shuffled objects (${name}) gives other results`, d);
      if (show(a) !== show(b)) fail(step, `building from shuffled objects (${name}) gives other pool results`, { ordered: show(a), shuffled: show(b) });
    });
  };

// ---- the properties --------------------------------------------------------------------------

const numRuns = 300;

describe('Allocator properties (random pool and service changes)', () => {
  it('never throws, and holds only allowed, shareable, request-fitting addresses with consistent pool counts (1, 2, 5, 6)', () => {
    fc.assert(
      fc.property(commandsArb, (cmds) => run(cmds, [checkSharing, checkHeldAllowed, checkPoolCounts])),
      { numRuns },
    );
  });

  it('moves no address without a reason, and hands out new ones only from enabled selecting pools (4)', () => {
    fc.assert(
      fc.property(commandsArb, (cmds) => run(cmds, [checkStability])),
      { numRuns },
    );
  });

  it('leaves no service waiting that could be served, and serves the oldest first (premise of 3)', () => {
    fc.assert(
      fc.property(commandsArb, (cmds) => run(cmds, [checkWaiting])),
      { numRuns },
    );
  });

  it('rebuilds to the same ips, satisfied and reason as the live allocator (3)', () => {
    fc.assert(
      fc.property(commandsArb, (cmds) => run(cmds, [rebuildCheck(false)])),
      { numRuns },
    );
  });

  it('rebuilds to the same messages as the live allocator (3, messages)', () => {
    fc.assert(
      fc.property(commandsArb, (cmds) => run(cmds, [rebuildCheck(true)])),
      { numRuns },
    );
  });

  it('gives the same results whatever order the objects are listed in (7)', () => {
    fc.assert(
      fc.property(commandsArb, fc.integer(), (cmds, seed) => run(cmds, [determinismCheck(seed)])),
      // Six allocators per step: fewer runs keep the suite fast.
      { numRuns: 200 },
    );
  });
});

// ---- focused examples ------------------------------------------------------------------------

function pool(name: string, blocks: PoolBlock[], extra: Partial<PoolSpec> = {}, created = times[0]): LoadBalancerIPPool {
  return { apiVersion: 'beacon.io/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name, creationTimestamp: created }, spec: { blocks, ...extra } };
}

function service(
  name: string,
  created: string,
  opts: { ns?: string; annotations?: Record<string, string>; spec?: Partial<ServiceSpec>; ips?: string[] } = {},
): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: compact({ name, namespace: opts.ns ?? 'ns1', creationTimestamp: created, annotations: opts.annotations }),
    spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP' }], ...opts.spec },
    ...(opts.ips ? { status: { loadBalancer: { ingress: opts.ips.map((ip) => ({ ip })) } } } : {}),
  };
}

const ipsOf = (a: Allocator, key: string): readonly string[] | undefined => a.result(key)?.ips;
const withStatus = (a: Allocator, s: Service): Service => ({ ...s, status: serviceStatus(s.status, a.result(keyOf(s.metadata.namespace!, s.metadata.name)), undefined, NOW) });

describe('Allocator examples', () => {
  const t1 = '2024-01-01T00:00:00Z';
  const t2 = '2024-01-02T00:00:00Z';
  const t3 = '2024-01-03T00:00:00Z';
  const one = [pool('p1', [{ cidr: '198.18.0.6/32' }])];

  it('serves a waiting service when an address is freed', () => {
    const a = new Allocator(one.map(poolInput));
    a.upsertService(serviceInput(service('a', t1)));
    a.upsertService(serviceInput(service('b', t2)));
    expect(ipsOf(a, 'ns1/a')).toEqual(['198.18.0.6']);
    expect(a.result('ns1/b')).toMatchObject({ ips: [], satisfied: false, reason: 'out_of_ips' });
    a.deleteService('ns1/a');
    expect(a.result('ns1/b')).toMatchObject({ ips: ['198.18.0.6'], satisfied: true, reason: 'satisfied' });
  });

  it('serves the oldest waiting service first, whatever order they arrived in', () => {
    const a = new Allocator(one.map(poolInput));
    a.upsertService(serviceInput(service('holder', t1)));
    a.upsertService(serviceInput(service('young', t3)));
    a.upsertService(serviceInput(service('old', t2)));
    a.deleteService('ns1/holder');
    expect(ipsOf(a, 'ns1/old')).toEqual(['198.18.0.6']);
    expect(ipsOf(a, 'ns1/young')).toEqual([]);
  });

  it('frees an address when its holder leaves LB-IPAM (type change) and serves the waiting one', () => {
    const a = new Allocator(one.map(poolInput));
    const holder = service('holder', t1);
    a.upsertService(serviceInput(holder));
    a.upsertService(serviceInput(service('w', t2)));
    a.upsertService(serviceInput(withStatus(a, { ...holder, spec: { ...holder.spec, type: 'ClusterIP' } })));
    expect(a.result('ns1/holder')).toBeUndefined();
    expect(ipsOf(a, 'ns1/w')).toEqual(['198.18.0.6']);
  });

  it('honours status on a restart: the holder keeps its address even when a waiting service is older', () => {
    const a = new Allocator(one.map(poolInput), [service('old', t1), service('young', t2, { ips: ['198.18.0.6'] })].map(serviceInput));
    expect(ipsOf(a, 'ns1/young')).toEqual(['198.18.0.6']);
    expect(a.result('ns1/old')).toMatchObject({ ips: [], reason: 'out_of_ips' });
  });

  it('keeps addresses in a disabled pool but hands out no new ones', () => {
    const a = new Allocator(one.map(poolInput));
    a.upsertService(serviceInput(service('a', t1)));
    a.setPools([pool('p1', [{ cidr: '198.18.0.6/32' }, { cidr: '198.18.0.4/31' }], { disabled: true })].map(poolInput));
    expect(ipsOf(a, 'ns1/a')).toEqual(['198.18.0.6']);
    a.upsertService(serviceInput(service('b', t2)));
    expect(a.result('ns1/b')).toMatchObject({ ips: [], reason: 'no_pool' });
  });

  it('keeps an address outside every known range while some pool is invalid, and drops it once none is', () => {
    const a = new Allocator(one.map(poolInput));
    a.upsertService(serviceInput(service('a', t1)));
    a.setPools([pool('p1', [{ cidr: '198.18.0.6/33' }])].map(poolInput));
    expect(ipsOf(a, 'ns1/a')).toEqual(['198.18.0.6']);
    a.setPools([pool('p1', [{ cidr: '198.18.0.4/31' }])].map(poolInput));
    expect(ipsOf(a, 'ns1/a')).toEqual(['198.18.0.4']);
  });

  it('shares one address between compatible services and refuses an incompatible one', () => {
    const shared = { 'beacon.io/sharing-key': 'k1' };
    const a = new Allocator(one.map(poolInput));
    a.upsertService(serviceInput(service('web', t1, { annotations: shared })));
    a.upsertService(serviceInput(service('dns', t2, { annotations: shared, spec: { ports: [{ port: 53, protocol: 'UDP' }] } })));
    a.upsertService(serviceInput(service('web2', t3, { annotations: shared })));
    expect(ipsOf(a, 'ns1/web')).toEqual(['198.18.0.6']);
    expect(ipsOf(a, 'ns1/dns')).toEqual(['198.18.0.6']);
    expect(a.result('ns1/web2')).toMatchObject({ ips: [], satisfied: false });
  });

  // A waiting service is only retried when an address is freed. Here nothing is freed: the holder
  // of the requested address becomes compatible with the waiting one (it takes the same sharing
  // key), so the waiting one could now share it, and a restart indeed gives it the address.
  it('serves a service waiting for a held address once the holder becomes shareable (live = rebuild)', () => {
    const pools = one;
    const holder = service('holder', t1);
    const waiter = service('waiter', t2, {
      annotations: { 'beacon.io/ips': '198.18.0.6', 'beacon.io/sharing-key': 'k1' },
      spec: { ports: [{ port: 53, protocol: 'UDP' }] },
    });
    const a = new Allocator(pools.map(poolInput));
    a.upsertService(serviceInput(holder));
    a.upsertService(serviceInput(waiter));
    expect(a.result('ns1/waiter')).toMatchObject({ ips: [], reason: 'already_allocated' });
    const holder2 = withStatus(a, { ...holder, metadata: { ...holder.metadata, annotations: { 'beacon.io/sharing-key': 'k1' } } });
    a.upsertService(serviceInput(holder2));
    const rebuilt = new Allocator(pools.map(poolInput), [holder2, withStatus(a, waiter)].map(serviceInput));
    expect(ipsOf(rebuilt, 'ns1/waiter')).toEqual(['198.18.0.6']);
    expect(ipsOf(a, 'ns1/waiter')).toEqual(ipsOf(rebuilt, 'ns1/waiter'));
  });

  // Found by the rebuild property. A RequireDualStack service picks its IPv4 address, fails on
  // IPv6 and so holds nothing, and records only the IPv6 failure (no_pool). When another service
  // then takes that IPv4 address, the waiting service's result is not recomputed; a rebuild reads
  // out_of_ips ("no free IPv4 address in pool p1; no usable pool has IPv6 addresses").
  it('reports the same reason for a waiting RequireDualStack service after a rebuild', () => {
    const dual = service('dual', t1, { spec: { ipFamilyPolicy: 'RequireDualStack' } });
    const plain = service('plain', t2);
    const a = new Allocator(one.map(poolInput));
    a.upsertService(serviceInput(dual));
    a.upsertService(serviceInput(plain));
    const rebuilt = new Allocator(one.map(poolInput), [withStatus(a, dual), withStatus(a, plain)].map(serviceInput));
    expect(ipsOf(a, 'ns1/plain')).toEqual(['198.18.0.6']);
    expect(a.result('ns1/dual')).toEqual(rebuilt.result('ns1/dual'));
  });

  // Found by the rebuild property, messages compared. "not shared with <ip>: <why>" names the
  // first holder of <ip> that conflicts, in the order the holders joined, which a rebuild (age
  // order) does not reproduce: the message names another, equally conflicting, holder.
  it('names the same conflicting holder in "not shared with" after a rebuild', () => {
    const pools = [pool('p1', [{ cidr: '198.18.0.4/31' }])];
    const k1 = { 'beacon.io/sharing-key': 'k1' };
    const older = service('a', t1, { annotations: k1, spec: { ports: [{ port: 53, protocol: 'UDP' }] } });
    const newer = service('b', t2, { annotations: k1, spec: { ports: [{ port: 53, protocol: 'TCP' }] } });
    const other = service('c', t1, { ns: 'ns2', annotations: k1 });
    const a = new Allocator(pools.map(poolInput));
    a.upsertService(serviceInput(older));
    a.upsertService(serviceInput(newer));
    a.upsertService(serviceInput(other));
    // The older sharer is updated (its status written back): it joins the holders after the newer one.
    a.upsertService(serviceInput(withStatus(a, older)));
    const rebuilt = new Allocator(pools.map(poolInput), [older, newer, other].map((s) => withStatus(a, s)).map(serviceInput));
    expect(a.result('ns2/c')?.ips).toEqual(rebuilt.result('ns2/c')?.ips);
    expect(a.result('ns2/c')?.message).toBe(rebuilt.result('ns2/c')?.message);
  });

  // Found by the rebuild property, messages compared. A waiting service served when an address is
  // freed may start a new address under its sharing key, which changes what the other services
  // with that key report ("not shared with ..."); only the key of the deleted or updated service is
  // refreshed, so their messages stay stale until a rebuild.
  it('refreshes the messages of the sharing group of a service served from the waiting list', () => {
    const pools = [pool('p1', [{ cidr: '198.18.0.4/31' }])];
    const k1 = { 'beacon.io/sharing-key': 'k1' };
    const first = service('a', t1, { annotations: k1 });
    const blocker = service('b', t2);
    const waiter = service('c', t3, { annotations: k1 });
    const a = new Allocator(pools.map(poolInput));
    for (const s of [first, blocker, waiter]) a.upsertService(serviceInput(s));
    expect(a.result('ns1/c')).toMatchObject({ ips: [], reason: 'out_of_ips' });
    a.deleteService('ns1/b');
    expect(ipsOf(a, 'ns1/c')).toEqual(['198.18.0.5']);
    const rebuilt = new Allocator(pools.map(poolInput), [first, waiter].map((s) => withStatus(a, s)).map(serviceInput));
    expect(rebuilt.result('ns1/a')?.message).toContain('not shared with 198.18.0.5');
    expect(a.result('ns1/a')?.message).toBe(rebuilt.result('ns1/a')?.message);
  });
});
