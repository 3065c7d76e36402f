// The LB-IPAM allocator: plain maps, no API client. It takes pools and services as plain data
// (inputs.ts) and keeps, for every managed service, the addresses it holds and why.
//
// Rules that keep addresses stable:
// - A held address stays while it lies in a usable range of a pool that selects the service and
//   still fits the request; it never moves because of an unrelated change.
// - A rebuild (restart) first lets every service, oldest first, claim what its status says, then
//   serves the services still wanting an address, oldest first. Live updates keep the same
//   invariant (no waiting service could be served), so a rebuild reproduces the live state.
import { familyName, formatIP, type Family, type IP } from '../api/index.js';
import type { ServiceInput, Slot } from './inputs.js';
import { PoolTable, poolAllocatable, poolSelects, poolUsable, poolValid, type PoolState, type RangeState } from './pools.js';
import type { PoolInput } from './inputs.js';
import { sharingConflictWithAll } from './sharing.js';

export const reasons = [
  'satisfied',
  'no_pool',
  'pool_selector_mismatch',
  'out_of_ips',
  'already_allocated',
  'already_allocated_incompatible_service',
  'invalid_request',
] as const;
export type Reason = (typeof reasons)[number];

export interface ServiceResult {
  readonly ips: readonly string[];
  readonly satisfied: boolean;
  readonly reason: Reason;
  readonly message: string;
}

export interface PoolResult {
  readonly name: string;
  readonly total: bigint;
  readonly used: bigint;
  readonly available: bigint;
  readonly conflicting: boolean;
  /** Set when the pool's spec is invalid: its errors. */
  readonly invalid: string | undefined;
  readonly message: string;
}

/** Map key of an address: a number for IPv4, a bigint for IPv6 (the two never compare equal). */
type HoldingKey = number | bigint;
const holdingKey = (ip: IP): HoldingKey => (ip.family === 4 ? Number(ip.value) : ip.value);

interface Holding {
  readonly ip: IP;
  readonly key: HoldingKey;
  /** The address as text, formatted once. */
  readonly text: string;
  /** Undefined for an address kept outside every known range while some pool is invalid. */
  readonly range: RangeState | undefined;
  /** Usually one; several when the address is shared. An array: far lighter than a Set. */
  readonly holders: ServiceState[];
}

interface ServiceState {
  readonly input: ServiceInput;
  /** The holding filling each slot of the request. */
  readonly slots: (Holding | undefined)[];
  /** What an invalid request keeps holding: it cannot be matched to slots, and is never dropped for that. */
  kept: readonly Holding[];
  result: ServiceResult;
}

interface Failure {
  readonly reason: Reason;
  readonly message: string;
  /** No usable pool has this family at all: the least telling reason when another family was tried. */
  readonly familyAbsent?: boolean;
}

type Pick = { ok: true; ip: IP; range: RangeState | undefined } | ({ ok: false } & Failure);

const byAge = (a: ServiceState, b: ServiceState): number =>
  a.input.created < b.input.created ? -1 : a.input.created > b.input.created ? 1 : a.input.key < b.input.key ? -1 : a.input.key > b.input.key ? 1 : 0;

const slotAccepts = (slot: Slot, ip: IP): boolean =>
  'ip' in slot ? slot.ip.family === ip.family && slot.ip.value === ip.value : slot.families.includes(ip.family);

/** Holders oldest first: messages that name one of them name the same one after a rebuild. */
const holdersByAge = (h: Holding): ServiceInput[] => [...h.holders].sort(byAge).map((o) => o.input);

const noHoldings: readonly Holding[] = [];

const sameResult = (a: ServiceResult | undefined, b: ServiceResult | undefined): boolean =>
  a === b ||
  (a !== undefined &&
    b !== undefined &&
    a.satisfied === b.satisfied &&
    a.reason === b.reason &&
    a.message === b.message &&
    a.ips.length === b.ips.length &&
    a.ips.every((ip, i) => ip === b.ips[i]));

const pending: ServiceResult = { ips: [], satisfied: false, reason: 'out_of_ips', message: 'not yet processed' };

export class Allocator {
  private table: PoolTable;
  private readonly services = new Map<string, ServiceState>();
  private readonly holdings = new Map<HoldingKey, Holding>();
  /** Sharing key to the holdings whose holders use it. */
  private readonly shared = new Map<string, Set<Holding>>();
  /** Sharing key to the services that carry it: their messages mention each other. */
  private readonly groups = new Map<string, Set<ServiceState>>();
  /** Services with an unfilled slot and a valid request. */
  private readonly waiting = new Set<ServiceState>();
  private changed = new Set<string>();

  /** Builds the state from pools and services, honouring each service's status as its claim. */
  constructor(pools: readonly PoolInput[] = [], services: readonly ServiceInput[] = []) {
    this.table = new PoolTable(pools);
    const states = services.filter((s) => s.managed).map((input) => this.newState(input));
    this.rebuild(states.map((s) => [s, s.input.held] as const));
  }

  // ---- reading -------------------------------------------------------------------------------

  result(key: string): ServiceResult | undefined {
    return this.services.get(key)?.result;
  }

  /** Every managed service's result, by namespace/name, in key order. */
  results(): Map<string, ServiceResult> {
    return new Map([...this.services.keys()].sort().map((k) => [k, this.services.get(k)!.result]));
  }

  /** How many services are managed and how many of them are satisfied (for metrics; no copies). */
  counts(): { managed: number; satisfied: number } {
    let satisfied = 0;
    for (const s of this.services.values()) if (s.result.satisfied) satisfied++;
    return { managed: this.services.size, satisfied };
  }

  /** Keys whose result changed (or that were removed) since the last call. */
  drainChanged(): string[] {
    const out = [...this.changed].sort();
    this.changed = new Set();
    return out;
  }

  pools(): PoolResult[] {
    return this.table.pools.map((p) => {
      const used = p.ranges.reduce((n, r) => n + r.allocated.size, 0n);
      const invalid = poolValid(p) ? undefined : p.input.errors.join('; ');
      const state = invalid
        ? `invalid: ${invalid}; no new allocations, existing ones kept`
        : p.conflict
          ? `conflicting: ${p.conflict}; its blocks are not used`
          : p.input.disabled
            ? 'disabled: no new allocations'
            : 'ok';
      return {
        name: p.input.name,
        total: p.total,
        used,
        available: p.total - used,
        conflicting: p.conflict !== undefined,
        invalid,
        message: state,
      };
    });
  }

  // ---- changes -------------------------------------------------------------------------------

  /** Replaces the set of pools. Rare, so it rebuilds: every holder re-claims what it holds. */
  setPools(pools: readonly PoolInput[]): void {
    this.table = new PoolTable(pools);
    const states = [...this.services.values()];
    const claims = states.map((s) => [this.newState(s.input), this.heldIPs(s)] as const);
    for (const m of [this.holdings, this.shared, this.groups, this.services]) m.clear();
    this.waiting.clear();
    const before = new Map(states.map((s) => [s.input.key, s.result]));
    this.rebuild(claims, before);
  }

  /** Adds, changes or (when it is no longer managed) removes a service. */
  upsertService(input: ServiceInput): void {
    const prev = this.services.get(input.key);
    const claims = prev ? this.heldIPs(prev) : input.held;
    const released = prev ? this.remove(prev) : [];
    let taken = false;
    if (input.managed) {
      const s = this.newState(input);
      this.add(s);
      this.claim(s, claims);
      this.acquire(s);
      taken = [...s.slots, ...s.kept].some((h) => h !== undefined && !released.includes(h.key));
    } else if (prev) {
      this.changed.add(input.key);
    }
    this.settle(released, taken, [prev?.input.sharing?.key, input.sharing?.key], new Map([[input.key, prev?.result ?? pending]]));
  }

  deleteService(key: string): void {
    const prev = this.services.get(key);
    if (!prev) return;
    const released = this.remove(prev);
    this.changed.add(key);
    this.settle(released, false, [prev.input.sharing?.key], new Map());
  }

  // ---- internals -----------------------------------------------------------------------------

  private newState(input: ServiceInput): ServiceState {
    return { input, slots: input.slots.map(() => undefined), kept: noHoldings, result: pending };
  }

  private heldIPs(s: ServiceState): IP[] {
    return [...s.slots, ...s.kept].filter((h) => h !== undefined).map((h) => h.ip);
  }

  private rebuild(claims: readonly (readonly [ServiceState, readonly IP[]])[], before?: Map<string, ServiceResult>): void {
    const ordered = [...claims].sort((a, b) => byAge(a[0], b[0]));
    for (const [s] of ordered) this.add(s);
    for (const [s, ips] of ordered) this.claim(s, ips);
    for (const [s] of ordered) this.acquire(s);
    for (const [s] of ordered) this.refresh(s, before?.get(s.input.key));
    for (const key of before?.keys() ?? []) if (!this.services.has(key)) this.changed.add(key);
  }

  private add(s: ServiceState): void {
    this.services.set(s.input.key, s);
    const key = s.input.sharing?.key;
    if (key === undefined) return;
    let group = this.groups.get(key);
    if (!group) this.groups.set(key, (group = new Set()));
    group.add(s);
  }

  /** Forgets a service and drops its holdings; returns the address keys it held. */
  private remove(s: ServiceState): HoldingKey[] {
    this.services.delete(s.input.key);
    const key = s.input.sharing?.key;
    if (key !== undefined) {
      const group = this.groups.get(key);
      group?.delete(s);
      if (group?.size === 0) this.groups.delete(key);
    }
    return this.releaseAll(s);
  }

  /**
   * After one service changed: if an address became free, or sharing options changed, the
   * waiting services get their turn, oldest first; then the results that may read differently
   * (the changed service, its sharing groups, the retried) are recomputed.
   */
  private settle(released: readonly HoldingKey[], taken: boolean, sharingKeys: readonly (string | undefined)[], before: Map<string, ServiceResult>): void {
    const keys: string[] = sharingKeys.filter((k) => k !== undefined);
    const freed = released.some((k) => !this.holdings.has(k));
    // Waiting services' reasons read who holds what: re-read them only when that changed.
    const touched = new Set<ServiceState>(freed || taken || keys.length > 0 ? this.waiting : []);
    if ((freed || keys.length > 0) && this.waiting.size > 0) {
      for (const s of [...this.waiting].sort(byAge)) {
        const had = s.slots.filter((h) => h !== undefined).length;
        this.acquire(s);
        if (s.slots.filter((h) => h !== undefined).length !== had && s.input.sharing) keys.push(s.input.sharing.key);
      }
    }
    for (const key of keys) for (const s of this.groups.get(key) ?? []) touched.add(s);
    for (const key of before.keys()) {
      const s = this.services.get(key);
      if (s) touched.add(s);
    }
    for (const s of touched) this.refresh(s, before.get(s.input.key) ?? s.result);
  }

  /** Why `s` may not keep `ip`, or undefined when it may. */
  private holdProblem(s: ServiceState, ip: IP, range: RangeState | undefined): string | undefined {
    if (range) {
      if (!poolSelects(range.pool, s.input)) return `pool ${range.pool.input.name} does not select it`;
    } else if (!this.table.anyInvalid) {
      return 'not in a usable pool range';
    }
    const holding = this.holdings.get(holdingKey(ip));
    if (holding && holding.holders.length > 0) {
      return sharingConflictWithAll(s.input, holding.holders.map((h) => h.input));
    }
    return undefined;
  }

  /** Keeps each claimed address that is still valid for the service, slot by slot. */
  private claim(s: ServiceState, ips: readonly IP[]): void {
    for (const ip of ips) {
      const range = this.table.lookup(ip);
      if (this.holdProblem(s, ip, range) !== undefined) continue;
      if (s.input.error !== undefined) {
        if (!s.kept.some((h) => h.ip.value === ip.value && h.ip.family === ip.family)) s.kept = [...s.kept, this.hold(s, ip, range)];
        continue;
      }
      const slots = s.input.slots;
      for (let i = 0; i < slots.length; i++) {
        if (s.slots[i] === undefined && slotAccepts(slots[i]!, ip)) {
          s.slots[i] = this.hold(s, ip, range);
          break;
        }
      }
    }
  }

  private hold(s: ServiceState, ip: IP, range: RangeState | undefined): Holding {
    const key = holdingKey(ip);
    let h = this.holdings.get(key);
    if (!h) {
      h = { ip, key, text: formatIP(ip), range, holders: [] };
      this.holdings.set(key, h);
      range?.allocated.add(ip.value);
    }
    h.holders.push(s);
    const sharingKey = s.input.sharing?.key;
    if (sharingKey !== undefined) {
      let set = this.shared.get(sharingKey);
      if (!set) this.shared.set(sharingKey, (set = new Set()));
      set.add(h);
    }
    return h;
  }

  /** Drops every holding of `s`; returns the keys whose last holder it was. */
  private releaseAll(s: ServiceState): HoldingKey[] {
    const released: HoldingKey[] = [];
    for (const h of [...s.slots, ...s.kept]) {
      if (!h) continue;
      const at = h.holders.indexOf(s);
      if (at >= 0) h.holders.splice(at, 1);
      if (h.holders.length > 0) continue;
      this.holdings.delete(h.key);
      h.range?.allocated.delete(h.ip.value);
      const sharingKey = s.input.sharing?.key;
      if (sharingKey !== undefined) {
        const set = this.shared.get(sharingKey);
        set?.delete(h);
        if (set?.size === 0) this.shared.delete(sharingKey);
      }
      released.push(h.key);
    }
    this.waiting.delete(s);
    return released;
  }

  /** Fills the service's empty slots: all at once (need `all`) or each on its own (need `any`). */
  private acquire(s: ServiceState): void {
    const { input } = s;
    if (input.error !== undefined) return;
    // Plain loops: this runs once per service on every rebuild, so garbage matters.
    const picks: [number, Pick][] = [];
    let allOk = true;
    for (let i = 0; i < input.slots.length; i++) {
      if (s.slots[i] !== undefined) continue;
      const p = this.pick(s, input.slots[i]!);
      if (!p.ok) allOk = false;
      picks.push([i, p]);
    }
    if (input.need === 'any' || allOk) {
      for (const [i, p] of picks) if (p.ok) s.slots[i] = this.hold(s, p.ip, p.range);
    }
    if (s.slots.includes(undefined)) this.waiting.add(s);
    else this.waiting.delete(s);
  }


  /** Recomputes the service's result from the current state; records a change. */
  private refresh(s: ServiceState, before: ServiceResult | undefined): void {
    s.result = this.resultOf(s);
    if (!sameResult(before, s.result)) this.changed.add(s.input.key);
  }

  /** The result is a function of the current state only, so a rebuild reads the same. */
  private resultOf(s: ServiceState): ServiceResult {
    const { input } = s;
    if (input.error !== undefined) {
      return {
        ips: s.kept.map((h) => h.text),
        satisfied: false,
        reason: 'invalid_request',
        message: input.error + (s.kept.length > 0 ? '; keeping the addresses it holds' : ''),
      };
    }
    const filled = s.slots.filter((h) => h !== undefined);
    const ips = filled.map((h) => h.text);
    // Why each empty slot is empty, asked of the current state (not remembered from an attempt).
    const failed: Failure[] = [];
    if (filled.length < s.slots.length) {
      input.slots.forEach((slot, i) => {
        if (s.slots[i] !== undefined) return;
        const p = this.pick(s, slot);
        if (!p.ok) failed.push(p);
      });
    }
    const failures = failed.map((f) => f.message);
    const satisfied = input.need === 'any' ? filled.length > 0 : filled.length === s.slots.length;
    if (!satisfied) {
      const reason = failed[0]?.reason ?? 'out_of_ips';
      return { ips, satisfied, reason, message: failures.join('; ') || 'waiting for an address' };
    }
    const describe = (h: Holding) => `${h.text} ${h.range ? `from pool ${h.range.pool.input.name}` : '(kept while a pool is invalid)'}`;
    const assigned = filled.length === 1 ? describe(filled[0]!) : filled.map(describe).join(', ');
    const sharing = input.sharing ? ` (sharing key ${input.sharing.key})${this.notSharedWith(s)}` : '';
    const missing = failures.length > 0 ? `; not dual-stack: ${failures.join('; ')}` : '';
    return { ips, satisfied, reason: 'satisfied', message: `assigned ${assigned}${sharing}${missing}` };
  }

  /** Why a service with a sharing key does not share the other addresses used under its key. */
  private notSharedWith(s: ServiceState): string {
    const key = s.input.sharing!.key;
    const mine = new Set(s.slots);
    const reasons: string[] = [];
    for (const h of this.shared.get(key) ?? []) {
      if (mine.has(h) || !s.input.slots.some((slot) => !('ip' in slot) && slot.families.includes(h.ip.family))) continue;
      const conflict = sharingConflictWithAll(s.input, holdersByAge(h));
      if (conflict !== undefined) reasons.push(`${formatIP(h.ip)}: ${conflict}`);
    }
    if (reasons.length === 0) return '';
    reasons.sort();
    const more = reasons.length > 3 ? ` and ${reasons.length - 3} more` : '';
    return `; not shared with ${reasons.slice(0, 3).join('; ')}${more}`;
  }

  private pick(s: ServiceState, slot: Slot): Pick {
    return 'ip' in slot ? this.pickRequested(s, slot.ip) : this.pickAny(s, slot.families);
  }

  private pickRequested(s: ServiceState, ip: IP): Pick {
    const text = formatIP(ip);
    const range = this.table.lookup(ip);
    if (!range) return { ok: false, reason: 'no_pool', message: `requested IP ${text} is not in any usable pool` };
    const pool = range.pool;
    if (!poolSelects(pool, s.input)) {
      const why = s.input.pool !== undefined && s.input.pool !== pool.input.name ? `not the named pool ${s.input.pool}` : 'its selector does not match';
      return { ok: false, reason: 'pool_selector_mismatch', message: `requested IP ${text} is in pool ${pool.input.name}, ${why}` };
    }
    if (pool.input.disabled) return { ok: false, reason: 'no_pool', message: `requested IP ${text} is in disabled pool ${pool.input.name}` };
    const holding = this.holdings.get(holdingKey(ip));
    if (holding && holding.holders.length > 0) {
      const holders = holdersByAge(holding);
      const conflict = sharingConflictWithAll(s.input, holders);
      if (conflict === undefined) return { ok: true, ip, range };
      const sameKey = s.input.sharing !== undefined && holders.every((h) => h.sharing?.key === s.input.sharing?.key);
      return {
        ok: false,
        reason: sameKey ? 'already_allocated_incompatible_service' : 'already_allocated',
        message: `requested IP ${text} is held by ${holders.map((h) => h.key).sort().join(', ')}: ${conflict}`,
      };
    }
    return { ok: true, ip, range };
  }

  private pickAny(s: ServiceState, families: readonly Family[]): Pick {
    const failures: Failure[] = [];
    for (const family of families) {
      const shared = this.pickShared(s, family);
      if (shared) return { ok: true, ip: shared.ip, range: shared.range };
      for (const pool of this.table.pools) {
        if (!poolAllocatable(pool) || !poolSelects(pool, s.input)) continue;
        for (const r of pool.ranges) {
          if (r.range.family !== family) continue;
          const free = r.allocated.lowestFree();
          if (free !== undefined) return { ok: true, ip: { family, value: free }, range: r };
        }
      }
      failures.push(this.whyNoAddress(s, family));
    }
    // For "either family", explain the families that have pools; one without any says little.
    const telling = failures.filter((f) => !f.familyAbsent);
    const shown = telling.length > 0 ? telling : failures;
    return { ok: false, reason: shown[0]!.reason, message: [...new Set(shown.map((f) => f.message))].join('; ') };
  }

  /** The best address already used by compatible services with the same sharing key. */
  private pickShared(s: ServiceState, family: Family): Holding | undefined {
    const key = s.input.sharing?.key;
    if (key === undefined) return undefined;
    let best: Holding | undefined;
    for (const h of this.shared.get(key) ?? []) {
      if (h.ip.family !== family || !h.range) continue;
      const pool = h.range.pool;
      if (!poolAllocatable(pool) || !poolSelects(pool, s.input)) continue;
      const conflict = sharingConflictWithAll(s.input, h.holders.map((o) => o.input));
      if (conflict !== undefined) continue;
      const order = (p: PoolState) => this.table.pools.indexOf(p);
      if (!best || order(pool) < order(best.range!.pool) || (pool === best.range!.pool && h.ip.value < best.ip.value)) best = h;
    }
    return best;
  }

  /** The most useful explanation of why no pool gave an address of this family. */
  private whyNoAddress(s: ServiceState, family: Family): Failure {
    const fam = familyName(family);
    const named = s.input.pool;
    if (named !== undefined) {
      const pool = this.table.byName.get(named);
      if (!pool) return { reason: 'no_pool', message: `pool ${named} (annotation) does not exist` };
      if (!poolUsable(pool)) return { reason: 'no_pool', message: `pool ${named} is ${pool.conflict ? 'conflicting' : 'invalid'}` };
    }
    const ofFamily = this.table.pools.filter((p) => poolUsable(p) && p.ranges.some((r) => r.range.family === family));
    if (ofFamily.length === 0) return { reason: 'no_pool', message: `no usable pool has ${fam} addresses`, familyAbsent: true };
    const selecting = ofFamily.filter((p) => poolSelects(p, s.input));
    if (selecting.length === 0) {
      const which = named !== undefined ? `pool ${named} has no ${fam} addresses or its selector does not match` : `no ${fam} pool selects this service`;
      return { reason: 'pool_selector_mismatch', message: which };
    }
    const enabled = selecting.filter((p) => !p.input.disabled);
    const names = (ps: PoolState[]) => ps.map((p) => p.input.name).join(', ');
    if (enabled.length === 0) return { reason: 'no_pool', message: `every ${fam} pool selecting this service is disabled: ${names(selecting)}` };
    return { reason: 'out_of_ips', message: `no free ${fam} address in pool ${names(enabled)}` };
  }
}
