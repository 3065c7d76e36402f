// Packs routes into as few UPDATEs as fit: one attribute set per message, as many NLRI as the
// maximum message length allows (RFC 4271 section 4.3; 4096 octets unless RFC 8654 is
// negotiated). IPv4 goes in the NLRI and Withdrawn Routes fields with NEXT_HOP; IPv6 in
// MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760, next hop per RFC 2545).

import type { Family, IP } from '../api/index.js';
import { AttrFlag, AttrType, EXTENDED_MAX_MESSAGE_LENGTH, HEADER_LENGTH, MARKER_LENGTH, MAX_MESSAGE_LENGTH, MessageType, SAFI, afiOf } from './constants.js';
import type { PathAttributes } from './attributes.js';
import { prefixWireLength, type Prefix } from './prefix.js';
import { encodePathAttributes, ipBytes, type SessionContext } from './update.js';
import { concatBytes } from './wire.js';

/** Next hops to put on routes: usually our own addresses on the session ("next-hop self"). */
export interface NextHops {
  /** Goes in NEXT_HOP for IPv4 routes. */
  readonly ipv4?: IP;
  /** Goes in MP_REACH_NLRI for IPv6 routes. */
  readonly ipv6?: IP;
  /** Optional; makes the 32-octet global + link-local form (RFC 2545 section 3). */
  readonly ipv6LinkLocal?: IP;
}

/** Routes that share one attribute set. */
export interface RouteGroup {
  /** NEXT_HOP here is ignored: next hops come from `nextHop`. */
  readonly attributes: PathAttributes;
  readonly nextHop: NextHops;
  readonly prefixes: readonly Prefix[];
}

export interface PackInput {
  readonly withdraw?: readonly Prefix[];
  readonly announce?: readonly RouteGroup[];
}

const UPDATE_FIXED = HEADER_LENGTH + 4; // header + Withdrawn Routes Length + Total Path Attribute Length
const attrHeader = (valueLength: number): number => (valueLength > 255 ? 4 : 3);
const sum = (parts: readonly Uint8Array[]): number => parts.reduce((n, p) => n + p.length, 0);
const IPV6_WORD_SHIFTS = [96n, 64n, 32n, 0n] as const;

/** Prefixes of one family already in NLRI form (RFC 4271 section 4.3), ready to be cut into UPDATEs. */
export interface EncodedPrefixes {
  readonly family: Family;
  readonly nlri: Uint8Array;
}

/** Encoded prefixes that share one attribute set. */
export interface EncodedGroup extends EncodedPrefixes {
  /** NEXT_HOP here is ignored: next hops come from `nextHop`. */
  readonly attributes: PathAttributes;
  readonly nextHop: NextHops;
}

export interface EncodedPackInput {
  readonly withdraw?: readonly EncodedPrefixes[];
  readonly announce?: readonly EncodedGroup[];
}

/**
 * The NLRI form of `prefixes`, back to back. IPv4 is read as one number and IPv6 a 32-bit word at
 * a time: no BigInt per octet, which cold code pays dearly for on a full table.
 */
export function encodeNlri(prefixes: readonly Prefix[]): Uint8Array {
  let size = 0;
  for (const p of prefixes) size += prefixWireLength(p);
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of prefixes) {
    const octets = (p.length + 7) >> 3;
    out[at++] = p.length;
    if (p.family === 4) {
      const v = Number(p.value);
      for (let i = 0; i < octets; i++) out[at++] = (v >>> (24 - 8 * i)) & 0xff;
      continue;
    }
    for (let w = 0; w * 4 < octets; w++) {
      const word = Number(BigInt.asUintN(32, p.value >> IPV6_WORD_SHIFTS[w]!));
      for (let i = 0; i < 4 && w * 4 + i < octets; i++) out[at++] = (word >>> (24 - 8 * i)) & 0xff;
    }
  }
  return out;
}

/** The most NLRI octets that pass `fits` (which only ever turns false as they grow), found once per message kind. */
function room(fits: (nlriOctets: number) => boolean): number {
  let [low, high] = [-1, EXTENDED_MAX_MESSAGE_LENGTH];
  while (low < high) {
    const mid = (low + high + 1) >> 1;
    if (fits(mid)) low = mid;
    else high = mid - 1;
  }
  return low;
}

/** Byte ranges [from, to) of `nlri` of at most `maxOctets`, cut at prefix boundaries; a prefix that fits nowhere throws. */
function chunk(nlri: Uint8Array, maxOctets: number): [number, number][] {
  const out: [number, number][] = [];
  let from = 0;
  for (let at = 0; at < nlri.length; ) {
    const next = at + 1 + ((nlri[at]! + 7) >> 3);
    if (next - from > maxOctets) {
      if (next - at > maxOctets) throw new RangeError('path attributes leave no room for a single prefix');
      out.push([from, at]);
      from = at;
    }
    at = next;
  }
  if (nlri.length > from) out.push([from, nlri.length]);
  return out;
}

/**
 * One UPDATE written in place: `head` (attributes before the prefixes), the prefixes, then `tail`.
 * `where` puts the prefixes in Withdrawn Routes, inside the attributes right after `head` (the MP
 * attribute whose header ends `head`), or in the NLRI field.
 */
function writeUpdate(prefixes: Uint8Array, head: readonly Uint8Array[], tail: readonly Uint8Array[], where: 'withdrawn' | 'mp' | 'nlri'): Uint8Array {
  const attrOctets = sum(head) + sum(tail) + (where === 'mp' ? prefixes.length : 0);
  const out = new Uint8Array(UPDATE_FIXED + attrOctets + (where === 'mp' ? 0 : prefixes.length));
  out.fill(0xff, 0, MARKER_LENGTH);
  out[16] = out.length >> 8;
  out[17] = out.length & 0xff;
  out[18] = MessageType.UPDATE;
  let at = HEADER_LENGTH;
  const put = (part: Uint8Array): void => {
    out.set(part, at);
    at += part.length;
  };
  const withdrawnOctets = where === 'withdrawn' ? prefixes.length : 0;
  out[at++] = withdrawnOctets >> 8;
  out[at++] = withdrawnOctets & 0xff;
  if (where === 'withdrawn') put(prefixes);
  out[at++] = attrOctets >> 8;
  out[at++] = attrOctets & 0xff;
  head.forEach(put);
  if (where === 'mp') put(prefixes);
  tail.forEach(put);
  if (where === 'nlri') put(prefixes);
  return out;
}

/** MP_REACH_NLRI / MP_UNREACH_NLRI up to its prefixes: flags, type, length, then `fixed` (RFC 4760 sections 3 and 4). */
function mpHead(type: number, fixed: Uint8Array, nlriOctets: number): Uint8Array {
  const valueLength = fixed.length + nlriOctets;
  const extended = valueLength > 255;
  const out = new Uint8Array(attrHeader(valueLength) + fixed.length);
  out[0] = AttrFlag.OPTIONAL | (extended ? AttrFlag.EXTENDED_LENGTH : 0);
  out[1] = type;
  if (extended) {
    out[2] = valueLength >> 8;
    out[3] = valueLength & 0xff;
  } else out[2] = valueLength;
  out.set(fixed, out.length - fixed.length);
  return out;
}

/** AFI and SAFI, and for MP_REACH_NLRI the next hop length, next hop(s) and the reserved octet (RFC 2545 section 3). */
function mpFixed(family: Family, nextHops?: readonly IP[]): Uint8Array {
  const nh = (nextHops ?? []).map(ipBytes);
  const out = new Uint8Array(3 + (nextHops === undefined ? 0 : 2 + sum(nh)));
  out[0] = afiOf(family) >> 8;
  out[1] = afiOf(family) & 0xff;
  out[2] = SAFI.UNICAST;
  if (nextHops !== undefined) {
    out[3] = sum(nh);
    out.set(concatBytes(nh), 4);
  }
  return out;
}

const ofFamily = (prefixes: readonly Prefix[], family: Family): Prefix[] => prefixes.filter((p) => p.family === family);

/**
 * Turns withdrawals and announcements into UPDATE messages, withdrawals first. Each message is at
 * most `maxLength` octets; a group too large for one message is split over several.
 */
export function packUpdates(input: PackInput, ctx: SessionContext, maxLength = MAX_MESSAGE_LENGTH): Uint8Array[] {
  const withdraw = input.withdraw ?? [];
  const families = [4, 6] as const;
  return packEncoded(
    {
      withdraw: families.map((family) => ({ family, nlri: encodeNlri(ofFamily(withdraw, family)) })),
      announce: (input.announce ?? []).flatMap((g) => families.map((family) => ({ attributes: g.attributes, nextHop: g.nextHop, family, nlri: encodeNlri(ofFamily(g.prefixes, family)) }))),
    },
    ctx,
    maxLength,
  );
}

/**
 * packUpdates for prefixes encoded beforehand (encodeNlri): the messages are cut from the NLRI
 * octets with no work per prefix beyond reading its length, so an initial sync prepared before the
 * session comes up costs little once it does. Withdrawals first; empty inputs make no message.
 */
export function packEncoded(input: EncodedPackInput, ctx: SessionContext, maxLength = MAX_MESSAGE_LENGTH): Uint8Array[] {
  const messages: Uint8Array[] = [];
  for (const { family, nlri } of input.withdraw ?? []) {
    if (family === 4) {
      for (const [from, to] of chunk(nlri, room((n) => UPDATE_FIXED + n <= maxLength))) messages.push(writeUpdate(nlri.subarray(from, to), [], [], 'withdrawn'));
      continue;
    }
    const fixed = mpFixed(family);
    for (const [from, to] of chunk(nlri, room((n) => UPDATE_FIXED + attrHeader(fixed.length + n) + fixed.length + n <= maxLength))) {
      messages.push(writeUpdate(nlri.subarray(from, to), [mpHead(AttrType.MP_UNREACH_NLRI, fixed, to - from)], [], 'mp'));
    }
  }
  for (const group of input.announce ?? []) {
    const { family, nlri } = group;
    if (nlri.length === 0) continue;
    const { nextHop: _ignored, ...shared } = group.attributes;
    if (family === 4) {
      if (group.nextHop.ipv4 === undefined) throw new RangeError('IPv4 routes need an IPv4 next hop');
      const attrs = encodePathAttributes({ ...shared, nextHop: group.nextHop.ipv4 }, ctx);
      const base = UPDATE_FIXED + sum(attrs);
      for (const [from, to] of chunk(nlri, room((n) => base + n <= maxLength))) messages.push(writeUpdate(nlri.subarray(from, to), attrs, [], 'nlri'));
      continue;
    }
    const nh = group.nextHop.ipv6;
    if (nh === undefined) throw new RangeError('IPv6 routes need an IPv6 next hop');
    const ll = group.nextHop.ipv6LinkLocal;
    const attrs = encodePathAttributes(shared, ctx);
    const base = UPDATE_FIXED + sum(attrs);
    const fixed = mpFixed(family, ll === undefined ? [nh] : [nh, ll]);
    // MP_REACH_NLRI comes first (RFC 7606 section 5.1), its prefixes at its end.
    for (const [from, to] of chunk(nlri, room((n) => base + attrHeader(fixed.length + n) + fixed.length + n <= maxLength))) {
      messages.push(writeUpdate(nlri.subarray(from, to), [mpHead(AttrType.MP_REACH_NLRI, fixed, to - from)], attrs, 'mp'));
    }
  }
  return messages;
}
