// mulberry32: a small, fast seeded generator in [0, 1), for reproducible fuzz runs, property-test
// shuffles, FSM jitter in tests and benchmark workloads. Not for anything that must be unguessable.
export type Random = () => number;

export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
