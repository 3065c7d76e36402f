import { describe, expect, it } from 'vitest';
import type { Lease, LeaseStore } from '../store/index.js';
import { MemoryStore } from '../test/memory-store.js';
import { LeaderElector, type LeaderChange } from './election.js';

/** The memory store's leases with a controllable clock and an outage switch. */
class FakeLeases implements LeaseStore {
  now = 0;
  down = false;
  private readonly store = new MemoryStore();
  constructor() {
    this.store.now = () => this.now;
  }
  private reach<T>(call: (l: LeaseStore) => Promise<T>): Promise<T> {
    return this.down ? Promise.reject(new Error('store unreachable')) : call(this.store.leases);
  }
  acquireOrRenew(name: string, holder: string, durationMs: number): Promise<{ held: boolean; lease: Lease }> {
    return this.reach((l) => l.acquireOrRenew(name, holder, durationMs));
  }
  release(name: string, holder: string): Promise<void> {
    return this.reach((l) => l.release(name, holder));
  }
  get(name: string): Promise<Lease | undefined> {
    return this.reach((l) => l.get(name));
  }
  list(prefix: string): Promise<Lease[]> {
    return this.reach((l) => l.list(prefix));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('LeaderElector', () => {
  it('elects one of two candidates; the other takes over after release', async () => {
    const leases = new FakeLeases();
    const seen: string[] = [];
    const a = new LeaderElector(leases, 'op', 'a', { durationMs: 300, now: () => leases.now }, (c) => seen.push(`a:${c.leader}`));
    const b = new LeaderElector(leases, 'op', 'b', { durationMs: 300, retryMs: 20, now: () => leases.now }, (c) => seen.push(`b:${c.leader}`));
    a.start();
    await sleep(20);
    b.start();
    await sleep(50);
    expect([a.isLeader, b.isLeader]).toEqual([true, false]);
    expect(b.holder).toBe('a');
    await a.stop();
    await sleep(80);
    expect(b.isLeader).toBe(true);
    expect(seen).toEqual(['a:true', 'a:false', 'b:true']);
    await b.stop();
  });

  it('stops leading before the lease can expire when renewals fail', async () => {
    const leases = new FakeLeases();
    const changes: LeaderChange[] = [];
    const started = Date.now();
    const e = new LeaderElector(leases, 'op', 'a', { durationMs: 300 }, (c) => changes.push(c));
    leases.now = Date.now();
    e.start();
    await sleep(20);
    expect(e.isLeader).toBe(true);
    leases.down = true;
    await sleep(400);
    expect(e.isLeader).toBe(false);
    expect(changes.at(-1)?.reason).toMatch(/not renewed in time/);
    expect(Date.now() - started).toBeLessThan(2000);
    await e.stop();
  });
});
