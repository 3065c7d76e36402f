// IP addresses as (family, bigint) pairs: one representation for IPv4 and IPv6, so ranges,
// counts and arithmetic never depend on the address family or on the size of a block.

export type Family = 4 | 6;

export interface IP {
  readonly family: Family;
  readonly value: bigint;
}

export const familyBits = (family: Family): number => (family === 4 ? 32 : 128);
export const familyMax = (family: Family): bigint => (1n << BigInt(familyBits(family))) - 1n;
export const familyName = (family: Family): 'IPv4' | 'IPv6' => (family === 4 ? 'IPv4' : 'IPv6');

/** Parses a dotted-quad IPv4 address; leading zeros are refused (they read as octal elsewhere). */
function parseIPv4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0; // a Number until the end: one BigInt per address instead of four
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return BigInt(value);
}

/** Parses RFC 4291 section 2.2 text: hex groups, one `::`, optional trailing dotted quad. No zones. */
function parseIPv6(text: string): bigint | undefined {
  if (text.length === 0 || text.length > 45) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groupsOf = (half: string): number[] | undefined => {
    if (half === '') return [];
    const out: number[] = [];
    const parts = half.split(':');
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (i === parts.length - 1 && part.includes('.')) {
        const v4 = parseIPv4(part);
        if (v4 === undefined) return undefined;
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(part)) return undefined;
      out.push(parseInt(part, 16));
    }
    return out;
  };
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  // An embedded IPv4 address may only end the address.
  if (halves.length === 2 && halves[0]!.includes('.')) return undefined;
  const present = head.length + tail.length;
  if (halves.length === 1 ? present !== 8 : present > 7) return undefined;
  const groups = [...head, ...new Array<number>(8 - present).fill(0), ...tail];
  let value = 0n;
  for (const group of groups) value = (value << 16n) | BigInt(group);
  return value;
}

export function parseIP(text: string): IP | undefined {
  if (typeof text !== 'string') return undefined;
  if (text.includes(':')) {
    const value = parseIPv6(text);
    return value === undefined ? undefined : { family: 6, value };
  }
  const value = parseIPv4(text);
  return value === undefined ? undefined : { family: 4, value };
}

/**
 * The number of an IPv4 address in canonical dotted-quad text (no leading zeros), else
 * undefined: the hot paths' way to skip bigints and garbage for the common case.
 */
export function canonicalIPv4(text: string): number | undefined {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || ++dots > 3) return undefined;
      value = value * 256 + octet;
      octet = digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return undefined; // a leading zero
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return undefined;
    } else return undefined;
  }
  return dots === 3 && digits > 0 ? value * 256 + octet : undefined;
}

/** Canonical text: dotted quad, or RFC 5952 (lower case, longest zero run of two or more as `::`). */
export function formatIP(ip: IP): string {
  if (ip.family === 4) {
    const v = Number(ip.value); // exact: below 2^32
    return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** A stable map key for an address: family plus value, cheaper than formatting. */
export const ipKey = (ip: IP): string => `${ip.family}/${ip.value.toString(16)}`;

export const compareIP = (a: IP, b: IP): number =>
  a.family !== b.family ? a.family - b.family : a.value < b.value ? -1 : a.value > b.value ? 1 : 0;

/** An inclusive range of addresses of one family. */
export interface IPRange {
  readonly family: Family;
  readonly first: bigint;
  readonly last: bigint;
}

export const rangeSize = (r: IPRange): bigint => r.last - r.first + 1n;
export const rangeContains = (r: IPRange, ip: IP): boolean =>
  r.family === ip.family && ip.value >= r.first && ip.value <= r.last;
export const rangesOverlap = (a: IPRange, b: IPRange): boolean =>
  a.family === b.family && a.first <= b.last && b.first <= a.last;
export const formatRange = (r: IPRange): string =>
  r.first === r.last
    ? formatIP({ family: r.family, value: r.first })
    : `${formatIP({ family: r.family, value: r.first })}-${formatIP({ family: r.family, value: r.last })}`;

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** Parses `addr/len`; host bits must be zero, as Kubernetes and Cilium require of pool CIDRs. */
export function parseCIDR(text: string): Parsed<{ range: IPRange; prefix: number }> {
  const slash = typeof text === 'string' ? text.indexOf('/') : -1;
  if (slash < 0) return { ok: false, error: `invalid CIDR "${String(text)}": expected ADDRESS/PREFIX` };
  const ip = parseIP(text.slice(0, slash));
  if (ip === undefined) return { ok: false, error: `invalid CIDR "${text}": bad address` };
  const prefixText = text.slice(slash + 1);
  const bits = familyBits(ip.family);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > bits) {
    return { ok: false, error: `invalid CIDR "${text}": prefix must be 0..${bits}` };
  }
  const prefix = Number(prefixText);
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  if ((ip.value & hostMask) !== 0n) {
    const network = formatIP({ family: ip.family, value: ip.value & ~hostMask });
    return { ok: false, error: `invalid CIDR "${text}": host bits set (did you mean ${network}/${prefix}?)` };
  }
  return { ok: true, value: { range: { family: ip.family, first: ip.value, last: ip.value | hostMask }, prefix } };
}
