import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { RunSet } from './runset.js';

describe('RunSet', () => {
  it('finds the lowest free address and merges runs', () => {
    const s = new RunSet(10n, 20n);
    expect(s.lowestFree()).toBe(10n);
    for (const v of [10n, 11n, 13n]) expect(s.add(v)).toBe(true);
    expect(s.runs).toBe(2);
    expect(s.lowestFree()).toBe(12n);
    expect(s.add(12n)).toBe(true);
    expect(s.runs).toBe(1);
    expect(s.lowestFree()).toBe(14n);
    expect(s.add(12n)).toBe(false);
    expect(s.add(21n)).toBe(false);
    expect(s.delete(11n)).toBe(true);
    expect(s.runs).toBe(2);
    expect(s.lowestFree()).toBe(11n);
    expect(s.size).toBe(3n);
  });

  it('reports a full range', () => {
    const s = new RunSet(0n, 1n);
    s.add(1n);
    s.add(0n);
    expect(s.lowestFree()).toBeUndefined();
  });

  it('agrees with a plain set on any sequence of adds and deletes (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 40 })), { maxLength: 200 }), (ops) => {
        const s = new RunSet(5n, 35n);
        const model = new Set<number>();
        for (const [add, n] of ops) {
          const inRange = n >= 5 && n <= 35;
          if (add) {
            expect(s.add(BigInt(n))).toBe(inRange && !model.has(n));
            if (inRange) model.add(n);
          } else {
            expect(s.delete(BigInt(n))).toBe(model.delete(n));
          }
          let lowest: number | undefined;
          for (let v = 5; v <= 35; v++) if (!model.has(v)) { lowest = v; break; }
          expect(s.lowestFree()).toBe(lowest === undefined ? undefined : BigInt(lowest));
          expect(s.size).toBe(BigInt(model.size));
          for (let v = 0; v <= 40; v += 7) expect(s.has(BigInt(v))).toBe(model.has(v));
        }
      }),
    );
  });
});
