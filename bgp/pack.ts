// Packs routes into as few UPDATEs as fit: one attribute set per message, as many NLRI as the
// maximum message length allows (RFC 4271 section 4.3; 4096 octets unless RFC 8654 is
// negotiated). IPv4 goes in the NLRI and Withdrawn Routes fields with NEXT_HOP; IPv6 in
// MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760, next hop per RFC 2545).

import type { IP } from '../api/index.js';
import { HEADER_LENGTH, MAX_MESSAGE_LENGTH } from './constants.js';
import type { PathAttributes } from './attributes.js';
import { encodePrefixes, prefixWireLength, type Prefix } from './prefix.js';
import { assembleUpdate, encodeMpReach, encodeMpUnreach, encodePathAttributes, type SessionContext } from './update.js';

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

/** Splits prefixes into runs whose NLRI octets pass `fits`; a prefix that fits nowhere throws. */
function chunk(prefixes: readonly Prefix[], fits: (nlriOctets: number) => boolean): Prefix[][] {
  const out: Prefix[][] = [];
  let run: Prefix[] = [];
  let size = 0;
  for (const p of prefixes) {
    const n = prefixWireLength(p);
    if (!fits(size + n)) {
      if (run.length === 0) throw new RangeError('path attributes leave no room for a single prefix');
      out.push(run);
      run = [];
      size = 0;
      if (!fits(n)) throw new RangeError('path attributes leave no room for a single prefix');
    }
    run.push(p);
    size += n;
  }
  if (run.length > 0) out.push(run);
  return out;
}

/**
 * Turns withdrawals and announcements into UPDATE messages, withdrawals first. Each message is at
 * most `maxLength` octets; a group too large for one message is split over several.
 */
export function packUpdates(input: PackInput, ctx: SessionContext, maxLength = MAX_MESSAGE_LENGTH): Uint8Array[] {
  const messages: Uint8Array[] = [];
  const empty = new Uint8Array(0);
  const withdraw = input.withdraw ?? [];

  const v4Withdraw = withdraw.filter((p) => p.family === 4);
  for (const run of chunk(v4Withdraw, (n) => UPDATE_FIXED + n <= maxLength)) {
    messages.push(assembleUpdate(encodePrefixes(run), [], empty, maxLength));
  }
  const v6Withdraw = withdraw.filter((p) => p.family === 6);
  // MP_UNREACH_NLRI value: AFI (2) + SAFI (1) + withdrawn routes.
  for (const run of chunk(v6Withdraw, (n) => UPDATE_FIXED + attrHeader(3 + n) + 3 + n <= maxLength)) {
    messages.push(assembleUpdate(empty, [encodeMpUnreach({ family: 6, withdrawn: run })], empty, maxLength));
  }

  for (const group of input.announce ?? []) {
    const { nextHop: _ignored, ...shared } = group.attributes;
    const v4 = group.prefixes.filter((p) => p.family === 4);
    if (v4.length > 0) {
      if (group.nextHop.ipv4 === undefined) throw new RangeError('IPv4 routes need an IPv4 next hop');
      const attrs = encodePathAttributes({ ...shared, nextHop: group.nextHop.ipv4 }, ctx);
      const base = UPDATE_FIXED + sum(attrs);
      for (const run of chunk(v4, (n) => base + n <= maxLength)) {
        messages.push(assembleUpdate(empty, attrs, encodePrefixes(run), maxLength));
      }
    }
    const v6 = group.prefixes.filter((p) => p.family === 6);
    if (v6.length > 0) {
      const nh = group.nextHop.ipv6;
      if (nh === undefined) throw new RangeError('IPv6 routes need an IPv6 next hop');
      const ll = group.nextHop.ipv6LinkLocal;
      const attrs = encodePathAttributes(shared, ctx);
      const base = UPDATE_FIXED + sum(attrs);
      // MP_REACH_NLRI value: AFI (2) + SAFI (1) + length (1) + next hop + reserved (1) + NLRI.
      const mpFixed = 5 + (ll === undefined ? 16 : 32);
      for (const run of chunk(v6, (n) => base + attrHeader(mpFixed + n) + mpFixed + n <= maxLength)) {
        const mp = encodeMpReach({ family: 6, nextHop: nh, ...(ll === undefined ? {} : { linkLocal: ll }), nlri: run });
        messages.push(assembleUpdate(empty, [mp, ...attrs], empty, maxLength));
      }
    }
  }
  return messages;
}
