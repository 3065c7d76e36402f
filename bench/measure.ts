// Small measuring helpers shared by the benchmarks.

/** Runs a full collection when node runs with --expose-gc (between phases, so one phase's garbage is not billed to the next). */
export const gc = (): void => globalThis.gc?.();

/** The result of f and the milliseconds it took. */
export function time<T>(f: () => T): [T, number] {
  const t0 = performance.now();
  const out = f();
  return [out, performance.now() - t0];
}

/** The nearest-rank percentile (p in 0..1); NaN for no values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

export const median = (values: readonly number[]): number => percentile(values, 0.5);
