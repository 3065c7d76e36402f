// Path attribute values as plain data, with the helpers that give them meaning: AS path length
// and the RFC 6793 AS4_PATH merge, community names (RFC 1997 and later) and text forms.

import type { IP } from '../api/index.js';
import { SegmentType } from './constants.js';

export interface AsPathSegment {
  readonly type: SegmentType;
  readonly asns: readonly number[];
}
export type AsPath = readonly AsPathSegment[];

export interface Aggregator {
  readonly asn: number;
  readonly address: IP;
}

/** RFC 8092 section 3: three 4-octet fields. */
export interface LargeCommunity {
  readonly global: number;
  readonly local1: number;
  readonly local2: number;
}

/** An attribute carried as received: optional transitive ones we pass along but do not interpret. */
export interface RawAttribute {
  /** Optional, Transitive and Partial bits; the Extended Length bit is chosen when encoding. */
  readonly flags: number;
  readonly type: number;
  readonly value: Uint8Array;
}

/** The path attributes of an UPDATE, minus MP_REACH_NLRI / MP_UNREACH_NLRI (see Update). */
export interface PathAttributes {
  readonly origin?: number;
  /** With 4-octet AS numbers, AS4_PATH already merged in (RFC 6793 section 4.2.3). */
  readonly asPath?: AsPath;
  /** The IPv4 NEXT_HOP attribute. */
  readonly nextHop?: IP;
  readonly med?: number;
  readonly localPref?: number;
  readonly atomicAggregate?: boolean;
  readonly aggregator?: Aggregator;
  readonly communities?: readonly number[];
  readonly originatorId?: IP;
  readonly clusterList?: readonly IP[];
  /** RFC 4360: each community as a 64-bit value. */
  readonly extendedCommunities?: readonly bigint[];
  readonly largeCommunities?: readonly LargeCommunity[];
  /** Unrecognized optional transitive attributes, Partial bit set (RFC 4271 section 9). */
  readonly other?: readonly RawAttribute[];
}

export const asSequence = (...asns: number[]): AsPathSegment => ({ type: SegmentType.AS_SEQUENCE, asns });
export const asSet = (...asns: number[]): AsPathSegment => ({ type: SegmentType.AS_SET, asns });

const isConfed = (s: AsPathSegment): boolean =>
  s.type === SegmentType.AS_CONFED_SEQUENCE || s.type === SegmentType.AS_CONFED_SET;

/**
 * The path length used in route selection: an AS_SET counts one (RFC 4271 section 9.1.2.2) and
 * confederation segments count nothing (RFC 5065 section 5.3).
 */
export function asPathLength(path: AsPath): number {
  let n = 0;
  for (const s of path) n += s.type === SegmentType.AS_SEQUENCE ? s.asns.length : s.type === SegmentType.AS_SET ? 1 : 0;
  return n;
}

/**
 * RFC 6793 section 4.2.3: rebuilds the real path from a 2-octet AS_PATH and the AS4_PATH a NEW
 * speaker added. An AS4_PATH longer than the AS_PATH is ignored; otherwise the leading part of
 * the AS_PATH that the AS4_PATH lacks (ASes prepended by OLD speakers, and adjacent
 * confederation segments) goes in front of it.
 */
export function mergeAs4Path(asPath: AsPath, as4Path: AsPath): AsPath {
  let need = asPathLength(asPath) - asPathLength(as4Path);
  if (need < 0) return asPath;
  const lead: AsPathSegment[] = [];
  for (const s of asPath) {
    if (isConfed(s)) {
      lead.push(s);
      continue;
    }
    if (need === 0) break;
    if (s.type === SegmentType.AS_SET) {
      lead.push(s);
      need -= 1;
    } else if (s.asns.length <= need) {
      lead.push(s);
      need -= s.asns.length;
    } else {
      lead.push({ type: SegmentType.AS_SEQUENCE, asns: s.asns.slice(0, need) });
      need = 0;
    }
  }
  const last = lead[lead.length - 1];
  const first = as4Path[0];
  // Join the seam when both sides are sequences, so the result reads as one path.
  if (
    last !== undefined &&
    first !== undefined &&
    last.type === SegmentType.AS_SEQUENCE &&
    first.type === SegmentType.AS_SEQUENCE &&
    last.asns.length + first.asns.length <= 255
  ) {
    return [...lead.slice(0, -1), { type: SegmentType.AS_SEQUENCE, asns: [...last.asns, ...first.asns] }, ...as4Path.slice(1)];
  }
  return [...lead, ...as4Path];
}

/** "64512 64513 {64514,64515} (64600 64601) [64602]": sets in braces, confederation segments in brackets. */
export function formatAsPath(path: AsPath): string {
  return path
    .map((s) => {
      switch (s.type) {
        case SegmentType.AS_SEQUENCE:
          return s.asns.join(' ');
        case SegmentType.AS_SET:
          return `{${s.asns.join(',')}}`;
        case SegmentType.AS_CONFED_SEQUENCE:
          return `(${s.asns.join(' ')})`;
        case SegmentType.AS_CONFED_SET:
          return `[${s.asns.join(',')}]`;
      }
    })
    .filter((t) => t !== '')
    .join(' ');
}

/** Well-known communities: RFC 1997, RFC 3765, RFC 7611, RFC 7999, RFC 8326, RFC 9494. */
export const WellKnownCommunity = {
  GRACEFUL_SHUTDOWN: 0xffff0000,
  ACCEPT_OWN: 0xffff0001,
  LLGR_STALE: 0xffff0006,
  NO_LLGR: 0xffff0007,
  BLACKHOLE: 0xffff029a,
  NO_EXPORT: 0xffffff01,
  NO_ADVERTISE: 0xffffff02,
  NO_EXPORT_SUBCONFED: 0xffffff03,
  NOPEER: 0xffffff04,
} as const;

const communityNames: ReadonlyMap<number, string> = new Map([
  [WellKnownCommunity.GRACEFUL_SHUTDOWN, 'graceful-shutdown'],
  [WellKnownCommunity.ACCEPT_OWN, 'accept-own'],
  [WellKnownCommunity.LLGR_STALE, 'llgr-stale'],
  [WellKnownCommunity.NO_LLGR, 'no-llgr'],
  [WellKnownCommunity.BLACKHOLE, 'blackhole'],
  [WellKnownCommunity.NO_EXPORT, 'no-export'],
  [WellKnownCommunity.NO_ADVERTISE, 'no-advertise'],
  [WellKnownCommunity.NO_EXPORT_SUBCONFED, 'no-export-subconfed'],
  [WellKnownCommunity.NOPEER, 'no-peer'],
]);
const communityByName: ReadonlyMap<string, number> = new Map([...communityNames].map(([v, n]) => [n, v]));

const u16Text = /^(0|[1-9][0-9]{0,4})$/;
const u32Text = /^(0|[1-9][0-9]{0,9})$/;

/** "64512:100" or a well-known name such as "no-export". */
export function parseCommunity(text: string): number | undefined {
  const named = communityByName.get(text.toLowerCase());
  if (named !== undefined) return named;
  const parts = text.split(':');
  if (parts.length !== 2 || !u16Text.test(parts[0]!) || !u16Text.test(parts[1]!)) return undefined;
  const high = Number(parts[0]);
  const low = Number(parts[1]);
  if (high > 0xffff || low > 0xffff) return undefined;
  return high * 0x10000 + low;
}

export const formatCommunity = (c: number): string => communityNames.get(c) ?? `${Math.floor(c / 0x10000)}:${c & 0xffff}`;

/** "64512:1:2" (RFC 8092 section 3 suggests this form). */
export function parseLargeCommunity(text: string): LargeCommunity | undefined {
  const parts = text.split(':');
  if (parts.length !== 3 || !parts.every((p) => u32Text.test(p))) return undefined;
  const [global, local1, local2] = parts.map(Number) as [number, number, number];
  if (global > 0xffffffff || local1 > 0xffffffff || local2 > 0xffffffff) return undefined;
  return { global, local1, local2 };
}

export const formatLargeCommunity = (c: LargeCommunity): string => `${c.global}:${c.local1}:${c.local2}`;
