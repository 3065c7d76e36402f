import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { Reflector, type Lease, type LeaseStore, type ObjectRef, type RecordedEvent, type StoredObject } from '../store/index.js';
import { MemoryStore } from '../test/memory-store.js';
import { eventually, sleep } from '../test/process.js';
import { L2Announcer, parseCandidacy, type AnswerEntry, type InterfaceSnapshot, type Responder } from './l2.js';
import { createLogger } from './log.js';
import { createMetrics } from './metrics.js';

/** Records what the announcer asks of the wire, and answers "would I answer now?" as the worker does. */
class FakeResponder implements Responder {
  table: readonly AnswerEntry[] = [];
  fenceNs = 0n;
  closed = false;
  onSetTable: (() => void) | undefined;
  setTable(entries: readonly AnswerEntry[]): void {
    this.table = entries;
    this.onSetTable?.();
  }
  setFence(untilNs: bigint): void {
    this.fenceNs = untilNs;
  }
  stats() {
    return { answered: { arp: 0, ndp: 0 }, dropped: {}, gratuitous: 0 };
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
  /** The IPs this node would answer for at this moment. */
  answering(): string[] {
    return process.hrtime.bigint() < this.fenceNs ? this.table.map((e) => e.ip) : [];
  }
}

class FakeInterfaces {
  private listeners: (() => void)[] = [];
  snap: InterfaceSnapshot = {
    interfaces: [{ name: 'eth0', up: true, addresses: [{ ip: '198.18.0.10', prefixLength: 24 }] }],
    defaultRoute: { ipv4: ['eth0'], ipv6: [] },
  };
  snapshot = () => this.snap;
  onChange(l: () => void) {
    this.listeners.push(l);
  }
  close() {}
  set(up: boolean) {
    this.snap = { ...this.snap, interfaces: this.snap.interfaces.map((i) => ({ ...i, up })) };
    for (const l of this.listeners) l();
  }
}

/**
 * The memory store's leases behind a switch that makes one node's store calls fail (and its lease
 * watch, when it has one, go silent), and one that stalls only the watch.
 */
class Flaky implements LeaseStore {
  down = false;
  watchStalled = false;
  writes = 0;
  lists = 0;
  readonly watch?: LeaseStore['watch'];
  constructor(private readonly inner: LeaseStore, watching: boolean) {
    if (watching) this.watch = (prefix, onChange) => inner.watch!(prefix, (set) => this.down || this.watchStalled || onChange(set));
  }
  private call<T>(f: () => Promise<T>): Promise<T> {
    return this.down ? Promise.reject(new Error('store unreachable')) : f();
  }
  acquireOrRenew(name: string, holder: string, d: number, data?: string) {
    this.writes++;
    return this.call(() => this.inner.acquireOrRenew(name, holder, d, data));
  }
  release(name: string, holder: string) {
    return this.call(() => this.inner.release(name, holder));
  }
  get(name: string): Promise<Lease | undefined> {
    return this.call(() => this.inner.get(name));
  }
  list(prefix: string) {
    this.lists++;
    return this.call(() => this.inner.list(prefix));
  }
}

const timing = { leaseDurationMs: 400, renewMs: 80, scanMs: 40, marginMs: 100, handoverMs: 150 };

const svc = (name: string, ip: string, extra: Record<string, unknown> = {}): StoredObject => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'ns', uid: `uid-${name}` },
  spec: { type: 'LoadBalancer', ...extra },
  status: { loadBalancer: { ingress: [{ ip }] } },
});

describe('L2Announcer', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function cluster(names: string[], { watch = false, services = 20, electionSliceMs = undefined as number | undefined } = {}) {
    const store = new MemoryStore();
    await store.apply({ apiVersion: 'beacon.io/v1alpha1', kind: 'L2AnnouncementPolicy', metadata: { name: 'all' }, spec: {} });
    for (let i = 0; i < services; i++) await store.apply(svc(`s${i}`, `198.18.${i >> 7}.${100 + (i & 127)}`));
    const told: { node: string; ref: ObjectRef; e: RecordedEvent }[] = [];
    const logged: { node: string; line: Record<string, unknown> }[] = [];
    const nodes = await Promise.all(names.map(async (name) => {
      const log = createLogger({ level: 'info', destination: new Writable({ write: (c: Buffer, _e, done) => done(void logged.push({ node: name, line: JSON.parse(c.toString()) as Record<string, unknown> })) }) });
      const reflectors = ['L2AnnouncementPolicy', 'Service', 'EndpointSlice'].map((k) => new Reflector(store, k));
      await Promise.all(reflectors.map((r) => r.start()));
      const [policies, services, slices] = reflectors as [Reflector, Reflector, Reflector];
      const responder = new FakeResponder();
      const interfaces = new FakeInterfaces();
      const leases = new Flaky(store.leases, watch);
      const announcer = new L2Announcer({ nodeName: name, nodeLabels: () => ({}), leases, policies, services, slices, responder, interfaces, log, metrics: createMetrics(), timing, electionSliceMs, events: { record: (ref, e) => void told.push({ node: name, ref, e }) } });
      announcer.start();
      cleanup.push(async () => {
        await announcer.stop();
        for (const r of reflectors) r.stop();
      });
      return { name, announcer, responder, interfaces, leases };
    }));
    return { store, nodes, told, logged };
  }

  /** Every IP answered by exactly one node, and who. */
  const owners = (nodes: { name: string; responder: FakeResponder }[]) => {
    const seen = new Map<string, string[]>();
    for (const n of nodes) for (const ip of n.responder.answering()) seen.set(ip, [...(seen.get(ip) ?? []), n.name]);
    return seen;
  };

  /** Every IP answered by exactly one node: the nodes agree (one that joined has taken its share from the others). */
  const settled = (nodes: { name: string; responder: FakeResponder }[]) =>
    eventually(() => {
      const seen = owners(nodes);
      expect(seen.size).toBe(20);
      for (const who of seen.values()) expect(who).toHaveLength(1);
    });

  it('splits the IPs between nodes, one announcer each, and all nodes agree on the plan', async () => {
    const { nodes } = await cluster(['a', 'b', 'c']);
    await settled(nodes);
    for (const n of nodes) expect(n.responder.table.length).toBeGreaterThan(0); // spread, not all on one
    const views = nodes.map((n) => n.announcer.announcements().map((a) => `${a.ip}=${a.node}`).join(' '));
    expect(views[1]).toBe(views[0]);
    expect(views[2]).toBe(views[0]);
    const a = nodes[0]!.announcer.announcements();
    expect(a.every((x) => x.reason === (x.node === 'a' ? 'announcing' : 'not_elected'))).toBe(true);
    expect(a[0]).toMatchObject({ services: ['ns/s0'], interfaces: ['eth0'] });
  });

  it('hands over on stop: successors answer before the leaving node goes quiet', async () => {
    const { nodes } = await cluster(['a', 'b']);
    await settled(nodes);
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    const mine = a.responder.answering();
    expect(mine.length).toBeGreaterThan(0);
    const stopping = a.announcer.stop();
    // During the handover window b takes a's IPs while a still answers: never a gap.
    await eventually(() => expect(b.responder.answering()).toEqual(expect.arrayContaining(mine)), 1000);
    await stopping;
    expect(a.responder.answering()).toEqual([]);
    expect(b.responder.answering()).toHaveLength(20);
  });

  it('tells each service when a node starts announcing its IP, and from which node it moved', async () => {
    const { nodes, told } = await cluster(['a', 'b']);
    const ipOf = (ref: ObjectRef) => `198.18.0.${100 + Number(ref.name.slice(1))}`;
    // The last word on each service names the node that answers for its IP now.
    const lastTold = () => new Map(told.map((t) => [ipOf(t.ref), t]));
    const sorted = (m: Map<string, string[]>) => [...m].sort(([x], [y]) => x.localeCompare(y));
    await eventually(() => {
      expect(owners(nodes).size).toBe(20);
      expect(sorted(new Map([...lastTold()].map(([ip, t]) => [ip, [t.node]])))).toEqual(sorted(owners(nodes)));
    });
    for (const { node, ref, e } of told) {
      expect(ref).toEqual({ kind: 'Service', namespace: 'ns', name: ref.name, uid: `uid-${ref.name}` });
      expect(e).toEqual({ type: 'Normal', reason: 'Announcing', action: 'Announce', note: expect.stringMatching(new RegExp(`^node ${node} answers ARP for ${ipOf(ref).replace(/\./g, '\\.')} on eth0( \\(moved from [ab]\\))?$`)) as string });
    }
    const fromA = nodes[0]!.responder.table.length;
    const before = told.length;
    await nodes[0]!.announcer.stop();
    const moved = told.slice(before);
    expect(moved).toHaveLength(fromA); // the leaving node tells nothing; its successor tells each move
    for (const { node, e } of moved) expect([node, e.note]).toEqual(['b', expect.stringMatching(/ \(moved from a\)$/)]);
  });

  for (const watch of [false, true]) it(`fences: a node that cannot renew stops answering before another node starts (${watch ? 'lease watch' : 'polling'})`, async () => {
    const { nodes, logged } = await cluster(['a', 'b'], { watch });
    await settled(nodes);
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    const mine = a.responder.answering();
    const before = logged.length;
    a.leases.down = true;
    const deadline = Date.now() + 3000;
    let quietAt: number | undefined;
    let takenAt: number | undefined;
    while (Date.now() < deadline && takenAt === undefined) {
      const t = Date.now();
      if (quietAt === undefined && a.responder.answering().length === 0) quietAt = t;
      if (b.responder.answering().length === 20) takenAt = t;
      expect(owners(nodes).size === 0 || [...owners(nodes).values()].every((w) => w.length === 1)).toBe(true);
      await sleep(5);
    }
    expect(quietAt).toBeDefined();
    expect(takenAt).toBeDefined();
    expect(quietAt!).toBeLessThanOrEqual(takenAt!);
    // a says why it went quiet: the fence, not the election (which still named it when it stopped).
    const stops = logged.slice(before).filter((l) => l.node === 'a' && l.line.msg === 'stopped announcing');
    expect(stops.map((l) => l.line.ip).sort()).toEqual([...mine].sort());
    expect(new Set(stops.map((l) => l.line.reason))).toEqual(new Set(['fenced']));
    a.leases.down = false; // a comes back and takes its share again
    await eventually(() => expect(a.responder.answering().length).toBeGreaterThan(0));
    // With the watch, a's silent lease ran out on b's clock: no list was ever needed.
    if (watch) expect(nodes.map((n) => n.leases.lists)).toEqual([0, 0]);
    else expect(b.leases.lists).toBeGreaterThan(0);
  });

  for (const watch of [false, true]) it(`after a store outage every node had, its IPs stay where they were: no move, never two answering (${watch ? 'lease watch' : 'polling'})`, async () => {
    const { nodes, logged } = await cluster(['a', 'b', 'c'], { watch });
    await settled(nodes);
    const before = owners(nodes);
    for (const n of nodes) n.leases.down = true;
    await eventually(() => expect(owners(nodes).size).toBe(0));
    await sleep(2 * timing.leaseDurationMs); // every lease has run out in the store
    const backAt = logged.length;
    // The nodes reach the store again one after another, as they do after an etcd restart.
    for (const n of nodes) {
      n.leases.down = false;
      await sleep(timing.renewMs);
    }
    const deadline = Date.now() + 4 * timing.leaseDurationMs;
    while (Date.now() < deadline) {
      const seen = owners(nodes);
      expect([...seen].filter(([, w]) => w.length > 1)).toEqual([]);
      await sleep(5);
    }
    expect(owners(nodes)).toEqual(before);
    const moves = logged.slice(backAt).filter((l) => l.line.msg === 'announcing' && l.line.cause !== 'new');
    expect(moves.map((l) => `${l.node} took ${String(l.line.ip)} from ${String(l.line.previous)}`)).toEqual([]);
  });

  it('after a store outage, the IPs of a node that did not come back move once the grace of one lease duration ends', async () => {
    const { nodes } = await cluster(['a', 'b', 'c'], { watch: true });
    await settled(nodes);
    const [a, b, c] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
    const ofC = c.responder.answering();
    for (const n of nodes) n.leases.down = true;
    await sleep(2 * timing.leaseDurationMs);
    const backAt = Date.now();
    a.leases.down = false;
    b.leases.down = false; // c stays cut off: for the others it died in the outage
    await eventually(() => expect(new Set([...a.responder.answering(), ...b.responder.answering()]).size).toBe(20), 4 * timing.leaseDurationMs);
    const tookMs = Date.now() - backAt;
    expect(tookMs).toBeGreaterThanOrEqual(timing.leaseDurationMs - timing.scanMs);
    expect(ofC.length).toBeGreaterThan(0);
    expect(c.responder.answering()).toEqual([]);
  });

  it('with a stalled lease watch never takes over from a live node, and catches up when it resumes', async () => {
    const { nodes } = await cluster(['a', 'b'], { watch: true });
    await settled(nodes);
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    const mine = a.responder.answering();
    a.leases.watchStalled = true; // a still renews; it just hears nothing
    await sleep(3 * timing.leaseDurationMs);
    expect(a.responder.answering()).toEqual(mine);
    expect([...owners(nodes).values()].every((w) => w.length === 1)).toBe(true);
    expect(owners(nodes).size).toBe(20);
    // b dies while a hears nothing: a cannot know, so b's IPs go unanswered (b fenced itself) ...
    b.leases.down = true;
    await eventually(() => expect(b.responder.answering()).toEqual([]));
    await sleep(2 * timing.leaseDurationMs);
    expect(a.responder.answering()).toEqual(mine);
    // ... until the watch delivers again.
    a.leases.watchStalled = false;
    await eventually(() => expect(a.responder.answering()).toHaveLength(20));
    expect(a.leases.lists).toBe(0);
  });

  it('moves IPs off a node whose link goes down', async () => {
    const { nodes } = await cluster(['a', 'b']);
    await settled(nodes);
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    a.interfaces.set(false);
    await eventually(() => expect(b.responder.answering()).toHaveLength(20));
    expect(a.announcer.announcements().every((x) => x.reason === 'interface_not_found')).toBe(true);
  });

  it('writes the store a constant number of times whatever the number of services', async () => {
    const { nodes, store } = await cluster(['a']);
    const n = nodes[0]!;
    await eventually(() => expect(n.responder.answering()).toHaveLength(20));
    const before = n.leases.writes;
    for (let i = 20; i < 220; i++) await store.apply(svc(`s${i}`, `198.18.1.${i - 20}`));
    await eventually(() => expect(n.responder.answering()).toHaveLength(220));
    await sleep(400);
    // Renewals only: one per renew interval (plus a link-change one at most), not one per service.
    expect(n.leases.writes - before).toBeLessThan(20);
  });

  it('elects in slices that yield to the event loop: a timer due during a long pass runs before the pass ends', async () => {
    // One step per slice (a zero budget): 1,000 services take about 2,000 turns of the event loop.
    const { nodes } = await cluster(['a'], { services: 1000, electionSliceMs: 0 });
    const n = nodes[0]!;
    let seenByTimer: number | undefined;
    n.responder.onSetTable = () => {
      n.responder.onSetTable = undefined;
      setTimeout(() => (seenByTimer = n.responder.table.length), 0);
    };
    await eventually(() => expect(n.responder.answering()).toHaveLength(1000));
    expect(seenByTimer).toBeGreaterThan(0);
    expect(seenByTimer).toBeLessThan(1000);
  });

  it('ignores unreadable candidacies', () => {
    expect(parseCandidacy('{')).toBeUndefined();
    expect(parseCandidacy('{"labels":{}}')).toBeUndefined();
    expect(parseCandidacy('{"labels":{},"interfaces":[],"defaultRoute":{"ipv4":[]},"ready":true}')).toMatchObject({ ready: true, draining: false, defaultRoute: { ipv6: [] } });
  });
});
