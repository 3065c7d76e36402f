// The pool table: pools in preference order, overlap conflicts decided by age, and a sorted
// index of usable ranges for finding the range an address lies in.
import { formatRange, rangeSize, rangesOverlap, selectorMatches, type IP, type IPRange } from '../api/index.js';
import type { PoolInput, ServiceInput } from './inputs.js';
import { RunSet } from './runset.js';

export interface PoolState {
  readonly input: PoolInput;
  /** Why this pool's blocks are not used: it overlaps an older pool or itself. */
  readonly conflict: string | undefined;
  /** Ranges addresses may be held in: empty for conflicting and invalid pools. */
  readonly ranges: readonly RangeState[];
  /** Usable addresses in all valid blocks (also counted for a conflicting pool). */
  readonly total: bigint;
}

export interface RangeState {
  readonly pool: PoolState;
  readonly block: string;
  readonly range: IPRange;
  /** Addresses currently held by some service. */
  readonly allocated: RunSet;
}

export const poolValid = (p: PoolState): boolean => p.input.errors.length === 0;
/** Addresses may stay in this pool's ranges. */
export const poolUsable = (p: PoolState): boolean => poolValid(p) && p.conflict === undefined;
/** New addresses may be handed out from it. */
export const poolAllocatable = (p: PoolState): boolean => poolUsable(p) && !p.input.disabled;

/** Does the pool serve this service: its selector matches and the service names no other pool. */
export const poolSelects = (p: PoolState, s: ServiceInput): boolean =>
  (s.pool === undefined || s.pool === p.input.name) && selectorMatches(p.input.selector, s.labels);

const byAge = (a: PoolInput, b: PoolInput): number =>
  a.created < b.created ? -1 : a.created > b.created ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;

/** Lower priority first, pools without a priority last, then by name: a total, stable order. */
const byPreference = (a: PoolInput, b: PoolInput): number => {
  const pa = a.priority ?? Infinity;
  const pb = b.priority ?? Infinity;
  return pa !== pb ? pa - pb : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
};

/** Finds, for each pool, the first overlap with itself or with any older pool (RFC: none; Cilium's rule). */
function findConflicts(inputs: readonly PoolInput[]): Map<string, string> {
  const conflicts = new Map<string, string>();
  const older: { pool: string; block: string; range: IPRange }[] = [];
  for (const pool of [...inputs].sort(byAge)) {
    let conflict: string | undefined;
    pool.ranges.forEach((r, i) => {
      if (conflict) return;
      const inside = pool.ranges.slice(0, i).find((o) => rangesOverlap(o.whole, r.whole));
      if (inside) conflict = `blocks ${inside.block} and ${r.block} of this pool overlap`;
      const other = older.find((o) => rangesOverlap(o.range, r.whole));
      if (!conflict && other) conflict = `block ${r.block} overlaps block ${other.block} of older pool ${other.pool}`;
    });
    if (conflict) conflicts.set(pool.name, conflict);
    for (const r of pool.ranges) older.push({ pool: pool.name, block: r.block, range: r.whole });
  }
  return conflicts;
}

export class PoolTable {
  /** Pools in preference order. */
  readonly pools: readonly PoolState[];
  readonly byName: ReadonlyMap<string, PoolState>;
  /** While some pool is invalid its ranges are unknown: addresses outside every known range are kept. */
  readonly anyInvalid: boolean;
  private readonly index: RangeState[];

  constructor(inputs: readonly PoolInput[]) {
    const conflicts = findConflicts(inputs);
    const pools: PoolState[] = [];
    for (const input of [...inputs].sort(byPreference)) {
      const ranges: RangeState[] = [];
      const pool: PoolState = {
        input,
        conflict: conflicts.get(input.name),
        ranges,
        total: input.errors.length > 0 ? 0n : input.ranges.reduce((n, r) => n + rangeSize(r.usable), 0n),
      };
      if (poolUsable(pool)) {
        for (const r of input.ranges) ranges.push({ pool, block: r.block, range: r.usable, allocated: new RunSet(r.usable.first, r.usable.last) });
      }
      pools.push(pool);
    }
    this.pools = pools;
    this.byName = new Map(pools.map((p) => [p.input.name, p]));
    this.anyInvalid = pools.some((p) => !poolValid(p));
    // Usable ranges never overlap (a newer overlapping pool is conflicting), so one sorted list works.
    this.index = pools
      .flatMap((p) => p.ranges)
      .sort((a, b) => a.range.family - b.range.family || (a.range.first < b.range.first ? -1 : 1));
  }

  /** The usable range holding this address, if any (binary search, no allocation: hot in rebuilds). */
  lookup(ip: IP): RangeState | undefined {
    let lo = 0;
    let hi = this.index.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.index[mid]!.range;
      if (ip.family < r.family || (ip.family === r.family && ip.value < r.first)) hi = mid - 1;
      else if (ip.family > r.family || ip.value > r.last) lo = mid + 1;
      else return this.index[mid];
    }
    return undefined;
  }
}

export const describeRange = (r: RangeState): string => `${formatRange(r.range)} (pool ${r.pool.input.name})`;
