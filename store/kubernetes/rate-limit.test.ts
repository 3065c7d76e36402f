import { describe, expect, it } from 'vitest';
import { TokenBucket } from './rate-limit.js';

describe('TokenBucket', () => {
  it('lets a burst through, then spaces requests at qps, and refills while idle', () => {
    let now = 0;
    const bucket = new TokenBucket(10, 3, () => now);
    expect([bucket.take(), bucket.take(), bucket.take()]).toEqual([0, 0, 0]);
    expect(bucket.take()).toBeCloseTo(100);
    expect(bucket.take()).toBeCloseTo(200);
    now = 1000; // 10 tokens refilled, capped at the burst of 3 after paying back the 2 borrowed
    expect([bucket.take(), bucket.take(), bucket.take(), bucket.take()].map((w) => Math.round(w))).toEqual([0, 0, 0, 100]);
  });

  it('tryTake drops instead of queueing: no token, no borrowing', () => {
    let now = 0;
    const bucket = new TokenBucket(2, 2, () => now);
    expect([bucket.tryTake(), bucket.tryTake(), bucket.tryTake()]).toEqual([true, true, false]);
    now = 500; // one token refilled; the refused take borrowed nothing
    expect([bucket.tryTake(), bucket.tryTake()]).toEqual([true, false]);
  });

  it('rejects settings that could never let a request through', () => {
    expect(() => new TokenBucket(0, 5)).toThrow(/qps/);
    expect(() => new TokenBucket(5, 0)).toThrow(/burst/);
  });
});
