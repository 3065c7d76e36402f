// Maglev consistent hashing (Eisenbud et al., NSDI 2016, section 3.4): a lookup table of M
// entries (M prime) in which every backend owns ⌊M/N⌋ or ⌈M/N⌉ entries, and removing one backend
// moves little more than that backend's own entries. The table is a function of the backends'
// identities only, so every node that sees the same backends picks the same one for a flow.

/** Cilium's table sizes (primes near powers of two); any prime above the backend count works. */
export const MAGLEV_TABLE_SIZES = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071] as const;
export const DEFAULT_MAGLEV_TABLE_SIZE = 16381;

export function isPrime(n: number): boolean {
  if (!Number.isSafeInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/**
 * A 32-bit hash of a string in the style of MurmurHash3 (one mixed block per UTF-16 code unit,
 * then the fmix32 finalizer so every input bit reaches every output bit). Two seeds give the two
 * independent hashes Maglev needs. Not byte-compatible with murmur3; only this file relies on it.
 */
export function hashString(text: string, seed: number): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    let k = Math.imul(text.charCodeAt(i), 0xcc9e2d51);
    k = Math.imul((k << 15) | (k >>> 17), 0x1b873593);
    h ^= k;
    h = (Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64) | 0;
  }
  h ^= text.length;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

const offsetSeed = 0x9e3779b9;
const skipSeed = 0x85ebca77;
const empty = 0xffffffff;

/**
 * The lookup table: entry j holds the index (into `backendIds`) of the backend that owns it.
 * Backends take turns, in identity order, claiming the next free entry of their own permutation
 * offset, offset+skip, offset+2·skip, ... (mod M); M prime makes every permutation visit every
 * entry. The hash of a 32-bit value modulo M ≤ 2^17 has a bias below M/2^32, i.e. none to speak of.
 */
export function maglevTable(backendIds: readonly string[], size: number): Uint32Array {
  const n = backendIds.length;
  if (!isPrime(size) || size <= n) throw new RangeError(`Maglev table size ${size} must be a prime larger than the ${n} backends`);
  if (n === 0) return new Uint32Array(0);
  // Turns follow identity order, so the caller's order of ids cannot change who owns an entry.
  const order = Uint32Array.from(backendIds.keys()).sort((a, b) => (backendIds[a]! < backendIds[b]! ? -1 : backendIds[a]! > backendIds[b]! ? 1 : 0));
  const next = new Uint32Array(n);
  const skip = new Uint32Array(n);
  for (let k = 0; k < n; k++) {
    const id = backendIds[order[k]!]!;
    if (k > 0 && id === backendIds[order[k - 1]!]) throw new RangeError(`duplicate Maglev backend "${id}"`);
    next[k] = hashString(id, offsetSeed) % size;
    skip[k] = (hashString(id, skipSeed) % (size - 1)) + 1;
  }
  const table = new Uint32Array(size).fill(empty);
  let filled = 0;
  for (;;) {
    for (let k = 0; k < n; k++) {
      const step = skip[k]!;
      let c = next[k]!;
      while (table[c] !== empty) if ((c += step) >= size) c -= size;
      table[c] = order[k]!;
      if ((c += step) >= size) c -= size;
      next[k] = c;
      if (++filled === size) return table;
    }
  }
}
