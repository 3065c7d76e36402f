// IP prefixes and their NLRI wire form (RFC 4271 section 4.3: a length octet, then the fewest
// octets that hold that many bits). One representation for both families, as in api/ip.ts.

import { familyBits, formatIP, parseIP, type Family, type IP } from '../api/index.js';

export interface Prefix {
  readonly family: Family;
  /** The address with every host bit zero. */
  readonly value: bigint;
  readonly length: number;
}

const hostMask = (family: Family, length: number): bigint => (1n << BigInt(familyBits(family) - length)) - 1n;

/** Builds a prefix, clearing host bits; throws on a length the family cannot hold (local input). */
export function prefixOf(ip: IP, length: number): Prefix {
  if (!Number.isInteger(length) || length < 0 || length > familyBits(ip.family)) {
    throw new RangeError(`prefix length ${length} is out of range for IPv${ip.family}`);
  }
  return { family: ip.family, value: ip.value & ~hostMask(ip.family, length), length };
}

/** Parses `address/length` (host bits must be zero) or a bare address as a host prefix. */
export function parsePrefix(text: string): Prefix | undefined {
  if (typeof text !== 'string') return undefined;
  const slash = text.indexOf('/');
  const ip = parseIP(slash < 0 ? text : text.slice(0, slash));
  if (ip === undefined) return undefined;
  const bits = familyBits(ip.family);
  if (slash < 0) return { family: ip.family, value: ip.value, length: bits };
  const lengthText = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lengthText)) return undefined;
  const length = Number(lengthText);
  if (length > bits || (ip.value & hostMask(ip.family, length)) !== 0n) return undefined;
  return { family: ip.family, value: ip.value, length };
}

export const formatPrefix = (p: Prefix): string => `${formatIP({ family: p.family, value: p.value })}/${p.length}`;

/** A stable map key, cheaper than formatting. */
export const prefixKey = (p: Prefix): string => `${p.family}/${p.value.toString(16)}/${p.length}`;

export const comparePrefix = (a: Prefix, b: Prefix): number =>
  a.family !== b.family
    ? a.family - b.family
    : a.value < b.value
      ? -1
      : a.value > b.value
        ? 1
        : a.length - b.length;

/** Octets one prefix takes on the wire: the length octet plus ceil(length / 8). */
export const prefixWireLength = (p: Prefix): number => 1 + ((p.length + 7) >> 3);

/** Writes one prefix at `offset`; returns the offset after it. */
export function writePrefix(out: Uint8Array, offset: number, p: Prefix): number {
  const octets = (p.length + 7) >> 3;
  const total = familyBits(p.family) >> 3;
  out[offset++] = p.length;
  for (let i = 0; i < octets; i++) {
    out[offset++] = Number((p.value >> BigInt((total - 1 - i) * 8)) & 0xffn);
  }
  return offset;
}

export function encodePrefixes(prefixes: readonly Prefix[]): Uint8Array {
  let size = 0;
  for (const p of prefixes) size += prefixWireLength(p);
  const out = new Uint8Array(size);
  let offset = 0;
  for (const p of prefixes) offset = writePrefix(out, offset, p);
  return out;
}

/** Why an NLRI field could not be parsed (RFC 7606 section 5.3). */
export type PrefixError = 'prefix_length_invalid' | 'prefix_overrun';

export type PrefixesResult = { readonly ok: true; readonly prefixes: Prefix[] } | { readonly ok: false; readonly error: PrefixError };

/**
 * Reads the prefixes in `bytes[start, end)`. Trailing bits past the prefix length are ignored,
 * as RFC 4271 section 4.3 says their value is irrelevant; they are cleared in the result.
 */
export function decodePrefixes(bytes: Uint8Array, start: number, end: number, family: Family): PrefixesResult {
  const maxBits = familyBits(family);
  const prefixes: Prefix[] = [];
  let i = start;
  while (i < end) {
    const length = bytes[i]!;
    if (length > maxBits) return { ok: false, error: 'prefix_length_invalid' };
    const octets = (length + 7) >> 3;
    if (i + 1 + octets > end) return { ok: false, error: 'prefix_overrun' };
    let value: bigint;
    if (family === 4) {
      let v = 0;
      for (let k = 0; k < 4; k++) v = v * 256 + (k < octets ? bytes[i + 1 + k]! : 0);
      value = BigInt(v);
    } else {
      // Four 32-bit words keep the bigint work to a handful of operations per prefix.
      value = 0n;
      for (let w = 0; w < 4; w++) {
        let v = 0;
        for (let k = 0; k < 4; k++) {
          const idx = w * 4 + k;
          v = v * 256 + (idx < octets ? bytes[i + 1 + idx]! : 0);
        }
        value = (value << 32n) | BigInt(v);
      }
    }
    if (length < maxBits) value &= ~((1n << BigInt(maxBits - length)) - 1n);
    prefixes.push({ family, value, length });
    i += 1 + octets;
  }
  return { ok: true, prefixes };
}
