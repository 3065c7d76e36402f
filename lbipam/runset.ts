// A set of addresses inside one range, kept as sorted, merged runs [start, end]. Finding the
// lowest free address costs O(1), adding or removing one O(log runs): never O(range size).

export class RunSet {
  private starts: bigint[] = [];
  private ends: bigint[] = [];
  private count = 0n;

  constructor(
    readonly first: bigint,
    readonly last: bigint,
  ) {}

  get size(): bigint {
    return this.count;
  }

  get runs(): number {
    return this.starts.length;
  }

  /** Index of the last run starting at or before v, or -1. */
  private find(v: bigint): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.starts[mid]! <= v) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  has(v: bigint): boolean {
    const i = this.find(v);
    return i >= 0 && v <= this.ends[i]!;
  }

  /** The lowest address in [first, last] not in the set. */
  lowestFree(): bigint | undefined {
    if (this.starts.length === 0 || this.starts[0]! > this.first) return this.first;
    const next = this.ends[0]! + 1n;
    return next <= this.last ? next : undefined;
  }

  /** Adds v; returns false when v is outside the range or already present. */
  add(v: bigint): boolean {
    if (v < this.first || v > this.last) return false;
    const i = this.find(v);
    if (i >= 0 && v <= this.ends[i]!) return false;
    const joinsLeft = i >= 0 && this.ends[i]! + 1n === v;
    const joinsRight = i + 1 < this.starts.length && this.starts[i + 1]! === v + 1n;
    if (joinsLeft && joinsRight) {
      this.ends[i] = this.ends[i + 1]!;
      this.starts.splice(i + 1, 1);
      this.ends.splice(i + 1, 1);
    } else if (joinsLeft) {
      this.ends[i] = v;
    } else if (joinsRight) {
      this.starts[i + 1] = v;
    } else {
      this.starts.splice(i + 1, 0, v);
      this.ends.splice(i + 1, 0, v);
    }
    this.count++;
    return true;
  }

  /** Removes v; returns false when it was not present. */
  delete(v: bigint): boolean {
    const i = this.find(v);
    if (i < 0 || v > this.ends[i]!) return false;
    const start = this.starts[i]!;
    const end = this.ends[i]!;
    if (start === end) {
      this.starts.splice(i, 1);
      this.ends.splice(i, 1);
    } else if (v === start) {
      this.starts[i] = v + 1n;
    } else if (v === end) {
      this.ends[i] = v - 1n;
    } else {
      this.ends[i] = v - 1n;
      this.starts.splice(i + 1, 0, v + 1n);
      this.ends.splice(i + 1, 0, end);
    }
    this.count--;
    return true;
  }
}
