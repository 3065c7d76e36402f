// UPDATE (RFC 4271 section 4.3) with multiprotocol NLRI (RFC 4760), 4-octet AS numbers (RFC 6793)
// and the revised error handling of RFC 7606: decoding returns a decision as data (ok, attribute
// discard, treat-as-withdraw, session reset) instead of throwing.

import type { Family, IP } from '../api/index.js';
import {
  AS_TRANS,
  AttrFlag,
  AttrType,
  MAX_MESSAGE_LENGTH,
  MessageType,
  SAFI,
  SegmentType,
  afiOf,
  familyOfAfi,
} from './constants.js';
import { mergeAs4Path, type Aggregator, type AsPath, type AsPathSegment, type LargeCommunity, type PathAttributes, type RawAttribute } from './attributes.js';
import { ErrorCode, UpdateSubcode, notification, type Notification } from './notification.js';
import { decodePrefixes, encodePrefixes, type Prefix } from './prefix.js';
import { encodeMessage, viewOf } from './wire.js';

/** What the codec needs to know about the session to read and write UPDATEs. */
export interface SessionContext {
  /** Both sides advertised RFC 6793 support: AS numbers are four octets in AS_PATH and AGGREGATOR. */
  readonly fourOctetAS: boolean;
  /** ADD-PATH (RFC 7911) is not supported: NLRI never carry path identifiers. */
  readonly addPath?: false;
  /** An eBGP session: LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST are discarded (RFC 7606 7.5, 7.9, 7.10). */
  readonly external?: boolean;
}

export interface MpReach {
  readonly family: Family;
  /** IPv4 or IPv6 (RFC 2545); an IPv6 next hop for IPv4 NLRI is the RFC 8950 form. */
  readonly nextHop: IP;
  /** RFC 2545 section 3: the link-local address of the 32-octet next hop form. */
  readonly linkLocal?: IP;
  readonly nlri: readonly Prefix[];
}

export interface MpUnreach {
  readonly family: Family;
  readonly withdrawn: readonly Prefix[];
}

export interface Update {
  /** The IPv4 Withdrawn Routes field. */
  readonly withdrawn: readonly Prefix[];
  readonly attributes: PathAttributes;
  /** The IPv4 NLRI field. */
  readonly nlri: readonly Prefix[];
  /** Unicast only: SAFI 1. */
  readonly mpReach?: MpReach;
  readonly mpUnreach?: MpUnreach;
}

/** Why an UPDATE was not accepted as sent; one name per check, for logs, metrics and tests. */
export type UpdateErrorReason =
  // session reset
  | 'withdrawn_length_overrun'
  | 'attribute_length_overrun_message'
  | 'withdrawn_invalid'
  | 'nlri_invalid'
  | 'mp_duplicate'
  | 'mp_reach_malformed'
  | 'mp_reach_next_hop_length'
  | 'mp_reach_nlri_invalid'
  | 'mp_unreach_malformed'
  | 'mp_unreach_nlri_invalid'
  | 'mp_attribute_overrun'
  | 'unrecognized_well_known'
  // treat-as-withdraw
  | 'attribute_truncated'
  | 'attribute_length_overrun'
  | 'attribute_flags'
  | 'origin_length'
  | 'origin_value'
  | 'as_path_malformed'
  | 'as_path_as_zero'
  | 'next_hop_length'
  | 'next_hop_invalid'
  | 'med_length'
  | 'local_pref_length'
  | 'communities_length'
  | 'originator_id_length'
  | 'cluster_list_length'
  | 'extended_communities_length'
  | 'large_communities_length'
  | 'mp_next_hop_invalid'
  | 'missing_origin'
  | 'missing_as_path'
  | 'missing_next_hop'
  // attribute discard
  | 'duplicate_attribute'
  | 'atomic_aggregate_length'
  | 'aggregator_length'
  | 'aggregator_as_zero'
  | 'local_pref_from_external'
  | 'originator_id_from_external'
  | 'cluster_list_from_external'
  | 'as4_path_unexpected'
  | 'as4_path_malformed'
  | 'as4_path_confed_segments'
  | 'as4_aggregator_unexpected'
  | 'as4_aggregator_length'
  | 'as4_aggregator_as_zero'
  | 'mp_afi_safi_unsupported';

export interface AttributeIssue {
  /** The attribute type code, when the problem belongs to one attribute. */
  readonly type?: number;
  readonly reason: UpdateErrorReason;
}

/** RFC 7606 section 2 approaches; "AFI/SAFI disable" is left to the session. */
export type UpdateDecision =
  | {
      readonly action: 'ok';
      readonly update: Update;
      /** RFC 4724 section 2: this UPDATE is the End-of-RIB marker of that family. */
      readonly endOfRib?: Family;
    }
  | { readonly action: 'attribute-discard'; readonly update: Update; readonly discarded: readonly AttributeIssue[] }
  | {
      readonly action: 'treat-as-withdraw';
      /** Every prefix the UPDATE withdrew or announced, in both families. */
      readonly withdrawn: readonly Prefix[];
      readonly reason: UpdateErrorReason;
      /** All problems found, including attributes that alone would only have been discarded. */
      readonly errors: readonly AttributeIssue[];
    }
  | { readonly action: 'session-reset'; readonly notification: Notification; readonly reason: UpdateErrorReason };

// ---- attribute table ---------------------------------------------------------------------------

const O = AttrFlag.OPTIONAL;
const T = AttrFlag.TRANSITIVE;
const FLAG_BITS = O | T;

/** Optional/Transitive bits each attribute we interpret must carry (RFC 4271 section 5 and the RFCs defining them). */
const EXPECTED_FLAGS = new Int16Array(256).fill(-1);
for (const [type, flags] of [
  [AttrType.ORIGIN, T],
  [AttrType.AS_PATH, T],
  [AttrType.NEXT_HOP, T],
  [AttrType.MULTI_EXIT_DISC, O],
  [AttrType.LOCAL_PREF, T],
  [AttrType.ATOMIC_AGGREGATE, T],
  [AttrType.AGGREGATOR, O | T],
  [AttrType.COMMUNITIES, O | T],
  [AttrType.ORIGINATOR_ID, O],
  [AttrType.CLUSTER_LIST, O],
  [AttrType.MP_REACH_NLRI, O],
  [AttrType.MP_UNREACH_NLRI, O],
  [AttrType.EXTENDED_COMMUNITIES, O | T],
  [AttrType.AS4_PATH, O | T],
  [AttrType.AS4_AGGREGATOR, O | T],
  [AttrType.LARGE_COMMUNITIES, O | T],
] as const) {
  EXPECTED_FLAGS[type] = flags;
}

const isInterpreted = (type: number): boolean => EXPECTED_FLAGS[type]! >= 0;
const isMp = (type: number): boolean => type === AttrType.MP_REACH_NLRI || type === AttrType.MP_UNREACH_NLRI;

// ---- decoding ----------------------------------------------------------------------------------

const SESSION_RESET_SUBCODE: Partial<Record<UpdateErrorReason, number>> = {
  withdrawn_length_overrun: UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
  attribute_length_overrun_message: UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
  mp_duplicate: UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
  withdrawn_invalid: UpdateSubcode.INVALID_NETWORK_FIELD,
  nlri_invalid: UpdateSubcode.INVALID_NETWORK_FIELD,
  unrecognized_well_known: UpdateSubcode.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
};

function reset(reason: UpdateErrorReason, data?: Uint8Array): UpdateDecision {
  // MP_REACH_NLRI / MP_UNREACH_NLRI errors use Optional Attribute Error (RFC 4760 section 7).
  const subcode = SESSION_RESET_SUBCODE[reason] ?? UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR;
  return { action: 'session-reset', reason, notification: notification(ErrorCode.UPDATE_MESSAGE, subcode, data) };
}

type AsPathResult = { ok: true; path: AsPathSegment[]; hasZero: boolean } | { ok: false };

/**
 * RFC 7606 section 7.2: malformed when a segment type is unknown, a segment is empty, a segment
 * overruns the attribute, or a lone octet is left over.
 */
function readAsPath(b: Uint8Array, start: number, end: number, asSize: 2 | 4): AsPathResult {
  const path: AsPathSegment[] = [];
  let hasZero = false;
  let i = start;
  while (i < end) {
    if (i + 2 > end) return { ok: false };
    const type = b[i]!;
    const count = b[i + 1]!;
    if (type < SegmentType.AS_SET || type > SegmentType.AS_CONFED_SET || count === 0) return { ok: false };
    const next = i + 2 + count * asSize;
    if (next > end) return { ok: false };
    const asns = new Array<number>(count);
    for (let k = 0, p = i + 2; k < count; k++, p += asSize) {
      const asn = asSize === 2 ? (b[p]! << 8) | b[p + 1]! : ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
      if (asn === 0) hasZero = true;
      asns[k] = asn;
    }
    path.push({ type: type as SegmentType, asns });
    i = next;
  }
  return { ok: true, path, hasZero };
}

const readIPv4 = (b: Uint8Array, at: number): IP => ({
  family: 4,
  value: BigInt(((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0),
});

function readIPv6(b: Uint8Array, at: number): IP {
  let value = 0n;
  for (let w = 0; w < 4; w++) {
    const p = at + w * 4;
    value = (value << 32n) | BigInt(((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0);
  }
  return { family: 6, value };
}

/**
 * A next hop that can never be a router: unspecified, loopback, multicast or broadcast (RFC 4271
 * section 6.3 asks for "a valid IP host address").
 */
export function isInvalidNextHop(ip: IP): boolean {
  if (ip.family === 4) {
    const v = Number(ip.value);
    const first = v >>> 24;
    return first === 0 || first === 127 || (first >= 224 && first <= 239) || v === 0xffffffff;
  }
  return ip.value === 0n || ip.value === 1n || ip.value >> 120n === 0xffn;
}

const u32 = (b: Uint8Array, at: number): number => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;

/** Reads an UPDATE body (the message minus its header) under RFC 7606. Never throws. */
export function decodeUpdate(body: Uint8Array, ctx: SessionContext): UpdateDecision {
  const asSize = ctx.fourOctetAS ? 4 : 2;
  if (body.length < 4) return reset('withdrawn_length_overrun');
  const withdrawnLength = (body[0]! << 8) | body[1]!;
  // RFC 4271 section 6.3 (kept by RFC 7606 section 3.a): lengths past the message end mean the
  // NLRI cannot be found, so only a reset is safe.
  if (4 + withdrawnLength > body.length) return reset('withdrawn_length_overrun');
  const attrStart = 4 + withdrawnLength;
  const attrEnd = attrStart + ((body[2 + withdrawnLength]! << 8) | body[3 + withdrawnLength]!);
  if (attrEnd > body.length) return reset('attribute_length_overrun_message');

  // RFC 7606 section 5.3: an NLRI field that cannot be parsed leaves no safe alternative to a reset.
  const withdrawnResult = decodePrefixes(body, 2, 2 + withdrawnLength, 4);
  if (!withdrawnResult.ok) return reset('withdrawn_invalid');
  const nlriResult = decodePrefixes(body, attrEnd, body.length, 4);
  if (!nlriResult.ok) return reset('nlri_invalid');

  const seen = new Uint8Array(256);
  let attributeCount = 0;
  const withdrawIssues: AttributeIssue[] = [];
  const discards: AttributeIssue[] = [];
  const attrs: { -readonly [K in keyof PathAttributes]: PathAttributes[K] } = {};
  const other: RawAttribute[] = [];
  let mpReach: MpReach | undefined;
  let mpUnreach: MpUnreach | undefined;
  let as4Path: AsPath | undefined;
  let as4Aggregator: Aggregator | undefined;

  for (let i = attrStart; i < attrEnd; ) {
    // RFC 7606 section 4: too few octets for a header, or a length past the attribute field,
    // is treat-as-withdraw; the Total Path Attribute Length still locates the NLRI.
    if (attrEnd - i < 3) {
      withdrawIssues.push({ reason: 'attribute_truncated' });
      break;
    }
    const flags = body[i]!;
    const type = body[i + 1]!;
    const extended = (flags & AttrFlag.EXTENDED_LENGTH) !== 0;
    if (extended && attrEnd - i < 4) {
      withdrawIssues.push({ type, reason: 'attribute_truncated' });
      break;
    }
    const length = extended ? (body[i + 2]! << 8) | body[i + 3]! : body[i + 2]!;
    const v = i + (extended ? 4 : 3);
    const end = v + length;
    if (end > attrEnd) {
      // Without the MP attribute we cannot tell which routes to withdraw.
      if (isMp(type)) return reset('mp_attribute_overrun');
      withdrawIssues.push({ type, reason: 'attribute_length_overrun' });
      break;
    }
    const attrBytes = body.subarray(i, end);
    i = end;
    attributeCount++;

    // RFC 7606 section 3.g: repeated MP attributes reset; other repeats keep the first.
    if (seen[type] !== 0) {
      if (isMp(type)) return reset('mp_duplicate');
      discards.push({ type, reason: 'duplicate_attribute' });
      continue;
    }
    seen[type] = 1;

    if (!isInterpreted(type)) {
      // RFC 4271 section 6.3 / 9: unknown well-known resets, unknown optional transitive passes on
      // with Partial set, unknown optional non-transitive is quietly dropped.
      if ((flags & O) === 0) return reset('unrecognized_well_known', attrBytes.slice());
      if ((flags & T) !== 0) other.push({ flags: (flags & (O | T | AttrFlag.PARTIAL)) | AttrFlag.PARTIAL, type, value: body.slice(v, end) });
      continue;
    }

    // RFC 7606 section 3.c: wrong Optional/Transitive bits are treat-as-withdraw. MP attributes
    // are still read below, since their routes are the ones to withdraw.
    if ((flags & FLAG_BITS) !== EXPECTED_FLAGS[type]) {
      withdrawIssues.push({ type, reason: 'attribute_flags' });
      if (!isMp(type)) continue;
    }

    switch (type) {
      case AttrType.ORIGIN: // RFC 7606 section 7.1
        if (length !== 1) withdrawIssues.push({ type, reason: 'origin_length' });
        else if (body[v]! > 2) withdrawIssues.push({ type, reason: 'origin_value' });
        else attrs.origin = body[v]!;
        break;
      case AttrType.AS_PATH: {
        // RFC 7606 section 7.2; RFC 7607 section 2 makes AS 0 malformed too.
        const r = readAsPath(body, v, end, asSize);
        if (!r.ok) withdrawIssues.push({ type, reason: 'as_path_malformed' });
        else if (r.hasZero) withdrawIssues.push({ type, reason: 'as_path_as_zero' });
        else attrs.asPath = r.path;
        break;
      }
      case AttrType.NEXT_HOP: // RFC 7606 section 7.3
        if (length !== 4) withdrawIssues.push({ type, reason: 'next_hop_length' });
        else {
          const nh = readIPv4(body, v);
          // RFC 4760 section 3: without IPv4 NLRI the NEXT_HOP is ignored, so only check it when used.
          if (nlriResult.prefixes.length > 0 && isInvalidNextHop(nh)) withdrawIssues.push({ type, reason: 'next_hop_invalid' });
          else attrs.nextHop = nh;
        }
        break;
      case AttrType.MULTI_EXIT_DISC: // RFC 7606 section 7.4
        if (length !== 4) withdrawIssues.push({ type, reason: 'med_length' });
        else attrs.med = u32(body, v);
        break;
      case AttrType.LOCAL_PREF: // RFC 7606 section 7.5
        if (ctx.external === true) discards.push({ type, reason: 'local_pref_from_external' });
        else if (length !== 4) withdrawIssues.push({ type, reason: 'local_pref_length' });
        else attrs.localPref = u32(body, v);
        break;
      case AttrType.ATOMIC_AGGREGATE: // RFC 7606 section 7.6
        if (length !== 0) discards.push({ type, reason: 'atomic_aggregate_length' });
        else attrs.atomicAggregate = true;
        break;
      case AttrType.AGGREGATOR: {
        // RFC 7606 section 7.7; RFC 7607 section 2 for AS 0.
        if (length !== asSize + 4) {
          discards.push({ type, reason: 'aggregator_length' });
          break;
        }
        const asn = asSize === 4 ? u32(body, v) : (body[v]! << 8) | body[v + 1]!;
        if (asn === 0) discards.push({ type, reason: 'aggregator_as_zero' });
        else attrs.aggregator = { asn, address: readIPv4(body, v + asSize) };
        break;
      }
      case AttrType.COMMUNITIES: {
        // RFC 7606 section 7.8: a non-zero multiple of four.
        if (length === 0 || length % 4 !== 0) {
          withdrawIssues.push({ type, reason: 'communities_length' });
          break;
        }
        const list: number[] = [];
        for (let p = v; p < end; p += 4) list.push(u32(body, p));
        attrs.communities = list;
        break;
      }
      case AttrType.ORIGINATOR_ID: // RFC 7606 section 7.9
        if (ctx.external === true) discards.push({ type, reason: 'originator_id_from_external' });
        else if (length !== 4) withdrawIssues.push({ type, reason: 'originator_id_length' });
        else attrs.originatorId = readIPv4(body, v);
        break;
      case AttrType.CLUSTER_LIST: {
        // RFC 7606 section 7.10
        if (ctx.external === true) {
          discards.push({ type, reason: 'cluster_list_from_external' });
          break;
        }
        if (length === 0 || length % 4 !== 0) {
          withdrawIssues.push({ type, reason: 'cluster_list_length' });
          break;
        }
        const list: IP[] = [];
        for (let p = v; p < end; p += 4) list.push(readIPv4(body, p));
        attrs.clusterList = list;
        break;
      }
      case AttrType.EXTENDED_COMMUNITIES: {
        // RFC 7606 section 7.14: a non-zero multiple of eight.
        if (length === 0 || length % 8 !== 0) {
          withdrawIssues.push({ type, reason: 'extended_communities_length' });
          break;
        }
        const list: bigint[] = [];
        for (let p = v; p < end; p += 8) list.push((BigInt(u32(body, p)) << 32n) | BigInt(u32(body, p + 4)));
        attrs.extendedCommunities = list;
        break;
      }
      case AttrType.LARGE_COMMUNITIES: {
        // RFC 8092 section 5: a non-zero multiple of twelve, else treat-as-withdraw; duplicates
        // are removed silently (section 2).
        if (length === 0 || length % 12 !== 0) {
          withdrawIssues.push({ type, reason: 'large_communities_length' });
          break;
        }
        const list: LargeCommunity[] = [];
        const keys = new Set<string>();
        for (let p = v; p < end; p += 12) {
          const c = { global: u32(body, p), local1: u32(body, p + 4), local2: u32(body, p + 8) };
          const key = `${c.global}:${c.local1}:${c.local2}`;
          if (keys.has(key)) continue;
          keys.add(key);
          list.push(c);
        }
        attrs.largeCommunities = list;
        break;
      }
      case AttrType.AS4_PATH: {
        // RFC 6793 section 6: never between NEW speakers; malformed means discarded.
        if (ctx.fourOctetAS) {
          discards.push({ type, reason: 'as4_path_unexpected' });
          break;
        }
        const r = length < 6 || length % 2 !== 0 ? ({ ok: false } as const) : readAsPath(body, v, end, 4);
        if (!r.ok || r.hasZero) {
          discards.push({ type, reason: 'as4_path_malformed' });
          break;
        }
        // Confederation segments are dropped from AS4_PATH and the rest is used (RFC 6793 section 6).
        const kept = r.path.filter((s) => s.type === SegmentType.AS_SEQUENCE || s.type === SegmentType.AS_SET);
        if (kept.length !== r.path.length) discards.push({ type, reason: 'as4_path_confed_segments' });
        as4Path = kept;
        break;
      }
      case AttrType.AS4_AGGREGATOR: {
        if (ctx.fourOctetAS) discards.push({ type, reason: 'as4_aggregator_unexpected' });
        else if (length !== 8) discards.push({ type, reason: 'as4_aggregator_length' });
        else if (u32(body, v) === 0) discards.push({ type, reason: 'as4_aggregator_as_zero' });
        else as4Aggregator = { asn: u32(body, v), address: readIPv4(body, v + 4) };
        break;
      }
      case AttrType.MP_REACH_NLRI: {
        // RFC 4271 section 6.3: an Optional Attribute Error quotes the attribute.
        const r = readMpReach(body, v, end);
        if (r.kind === 'reset') return reset(r.reason, attrBytes.slice());
        if (r.kind === 'unsupported') discards.push({ type, reason: 'mp_afi_safi_unsupported' });
        else {
          mpReach = r.mpReach;
          if (r.nextHopInvalid) withdrawIssues.push({ type, reason: 'mp_next_hop_invalid' });
        }
        break;
      }
      case AttrType.MP_UNREACH_NLRI: {
        // RFC 4760 section 4: AFI (2), SAFI (1), withdrawn routes.
        if (length < 3) return reset('mp_unreach_malformed', attrBytes.slice());
        const family = familyOfAfi((body[v]! << 8) | body[v + 1]!);
        if (family === undefined || body[v + 2] !== SAFI.UNICAST) {
          discards.push({ type, reason: 'mp_afi_safi_unsupported' });
          break;
        }
        const r = decodePrefixes(body, v + 3, end, family);
        if (!r.ok) return reset('mp_unreach_nlri_invalid', attrBytes.slice());
        mpUnreach = { family, withdrawn: r.prefixes };
        break;
      }
    }
  }

  // RFC 6793 section 4.2.3: from an OLD speaker, rebuild the real path and aggregator.
  if (!ctx.fourOctetAS) {
    const aggregator = attrs.aggregator;
    if (aggregator !== undefined && aggregator.asn !== AS_TRANS) {
      // An OLD speaker aggregated after the last NEW one: AS4_PATH and AS4_AGGREGATOR are stale.
    } else {
      if (aggregator !== undefined && as4Aggregator !== undefined) attrs.aggregator = as4Aggregator;
      if (attrs.asPath !== undefined && as4Path !== undefined) attrs.asPath = mergeAs4Path(attrs.asPath, as4Path);
    }
  }

  // RFC 7606 section 3.d: a missing well-known mandatory attribute is treat-as-withdraw. NEXT_HOP
  // is only needed for the IPv4 NLRI field (RFC 4760 section 3).
  const nlri = nlriResult.prefixes;
  if (nlri.length > 0 || (mpReach !== undefined && mpReach.nlri.length > 0)) {
    if (seen[AttrType.ORIGIN] === 0) withdrawIssues.push({ type: AttrType.ORIGIN, reason: 'missing_origin' });
    if (seen[AttrType.AS_PATH] === 0) withdrawIssues.push({ type: AttrType.AS_PATH, reason: 'missing_as_path' });
    if (nlri.length > 0 && seen[AttrType.NEXT_HOP] === 0) withdrawIssues.push({ type: AttrType.NEXT_HOP, reason: 'missing_next_hop' });
  }

  const withdrawn = withdrawnResult.prefixes;
  if (withdrawIssues.length > 0) {
    // RFC 7606 section 2: every route the UPDATE carries is handled as withdrawn.
    return {
      action: 'treat-as-withdraw',
      withdrawn: [...withdrawn, ...(mpUnreach?.withdrawn ?? []), ...nlri, ...(mpReach?.nlri ?? [])],
      reason: withdrawIssues[0]!.reason,
      errors: [...withdrawIssues, ...discards],
    };
  }
  if (other.length > 0) attrs.other = other;
  const update: Update = {
    withdrawn,
    attributes: attrs,
    nlri,
    ...(mpReach === undefined ? {} : { mpReach }),
    ...(mpUnreach === undefined ? {} : { mpUnreach }),
  };
  if (discards.length > 0) return { action: 'attribute-discard', update, discarded: discards };
  // RFC 4724 section 2, judged on the message as sent: an empty UPDATE (IPv4), or one holding
  // nothing but an MP_UNREACH_NLRI without routes.
  const endOfRib =
    body.length === 4
      ? 4
      : attributeCount === 1 && mpUnreach !== undefined && mpUnreach.withdrawn.length === 0 && withdrawn.length === 0 && nlri.length === 0
        ? mpUnreach.family
        : undefined;
  return endOfRib === undefined ? { action: 'ok', update } : { action: 'ok', update, endOfRib };
}

type MpReachResult =
  | { kind: 'ok'; mpReach: MpReach; nextHopInvalid: boolean }
  | { kind: 'unsupported' }
  | { kind: 'reset'; reason: UpdateErrorReason };

/** RFC 4760 section 3: AFI (2), SAFI (1), next hop length (1), next hop, reserved (1), NLRI. */
function readMpReach(b: Uint8Array, v: number, end: number): MpReachResult {
  if (end - v < 5) return { kind: 'reset', reason: 'mp_reach_malformed' };
  const nhLength = b[v + 3]!;
  const nlriStart = v + 4 + nhLength + 1;
  if (nlriStart > end) return { kind: 'reset', reason: 'mp_reach_malformed' };
  const family = familyOfAfi((b[v]! << 8) | b[v + 1]!);
  if (family === undefined || b[v + 2] !== SAFI.UNICAST) return { kind: 'unsupported' };
  // RFC 7606 section 7.11: a next hop length we cannot interpret means the NLRI cannot be
  // trusted either; reset. IPv6: 16 or 32 (RFC 2545); IPv4: 4, or 16/32 per RFC 8950.
  const nh = v + 4;
  let nextHop: IP;
  let linkLocal: IP | undefined;
  if (nhLength === 4 && family === 4) nextHop = readIPv4(b, nh);
  else if (nhLength === 16 || nhLength === 32) {
    nextHop = readIPv6(b, nh);
    if (nhLength === 32) linkLocal = readIPv6(b, nh + 16);
  } else return { kind: 'reset', reason: 'mp_reach_next_hop_length' };
  const r = decodePrefixes(b, nlriStart, end, family);
  if (!r.ok) return { kind: 'reset', reason: 'mp_reach_nlri_invalid' };
  return {
    kind: 'ok',
    // RFC 7606 section 7.11: a well-formed but unusable next hop is treat-as-withdraw.
    nextHopInvalid: isInvalidNextHop(nextHop),
    mpReach: { family, nextHop, ...(linkLocal === undefined ? {} : { linkLocal }), nlri: r.prefixes },
  };
}

// ---- encoding ----------------------------------------------------------------------------------

/** Bytes of an address: 4 for IPv4, 16 for IPv6. */
export function ipBytes(ip: IP): Uint8Array {
  const n = ip.family === 4 ? 4 : 16;
  const out = new Uint8Array(n);
  let v = ip.value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** One attribute: flags, type, a 1- or 2-octet length (Extended Length only when needed), value. */
export function encodeAttribute(flags: number, type: number, value: Uint8Array): Uint8Array {
  const extended = value.length > 255;
  const head = extended ? 4 : 3;
  const out = new Uint8Array(head + value.length);
  out[0] = (flags & (O | T | AttrFlag.PARTIAL)) | (extended ? AttrFlag.EXTENDED_LENGTH : 0);
  out[1] = type;
  if (extended) {
    out[2] = value.length >> 8;
    out[3] = value.length & 0xff;
  } else out[2] = value.length;
  out.set(value, head);
  return out;
}

function u32Bytes(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = viewOf(out);
  values.forEach((x, k) => view.setUint32(k * 4, x));
  return out;
}

/** AS_PATH / AS4_PATH value; segments longer than 255 ASes are split (RFC 4271 section 4.3). */
function asPathBytes(path: AsPath, asSize: 2 | 4): Uint8Array {
  const out: number[] = [];
  for (const s of path) {
    for (let k = 0; k < s.asns.length; k += 255) {
      const chunk = s.asns.slice(k, k + 255);
      out.push(s.type, chunk.length);
      for (const asn of chunk) {
        if (asSize === 4) out.push((asn >>> 24) & 0xff, (asn >>> 16) & 0xff, (asn >>> 8) & 0xff, asn & 0xff);
        else {
          // RFC 6793 section 4.2.2: a non-mappable AS becomes AS_TRANS toward an OLD speaker.
          const mapped = asn > 0xffff ? AS_TRANS : asn;
          out.push(mapped >> 8, mapped & 0xff);
        }
      }
    }
  }
  return Uint8Array.from(out);
}

function aggregatorBytes(a: Aggregator, asSize: 2 | 4): Uint8Array {
  const out = new Uint8Array(asSize + 4);
  const view = viewOf(out);
  if (asSize === 4) view.setUint32(0, a.asn);
  else view.setUint16(0, a.asn > 0xffff ? AS_TRANS : a.asn);
  out.set(ipBytes(a.address), asSize);
  return out;
}

export function encodeMpReach(mp: MpReach): Uint8Array {
  const nh = ipBytes(mp.nextHop);
  const ll = mp.linkLocal === undefined ? new Uint8Array(0) : ipBytes(mp.linkLocal);
  const nlri = encodePrefixes(mp.nlri);
  const value = new Uint8Array(5 + nh.length + ll.length + nlri.length);
  const view = viewOf(value);
  view.setUint16(0, afiOf(mp.family));
  value[2] = SAFI.UNICAST;
  value[3] = nh.length + ll.length;
  value.set(nh, 4);
  value.set(ll, 4 + nh.length);
  // value[4 + nh + ll] is the reserved octet, zero (RFC 4760 section 3).
  value.set(nlri, 5 + nh.length + ll.length);
  return encodeAttribute(O, AttrType.MP_REACH_NLRI, value);
}

export function encodeMpUnreach(mp: MpUnreach): Uint8Array {
  const prefixes = encodePrefixes(mp.withdrawn);
  const value = new Uint8Array(3 + prefixes.length);
  viewOf(value).setUint16(0, afiOf(mp.family));
  value[2] = SAFI.UNICAST;
  value.set(prefixes, 3);
  return encodeAttribute(O, AttrType.MP_UNREACH_NLRI, value);
}

/**
 * The path attributes, MP attributes first (RFC 7606 section 5.1) and the rest in type order
 * (RFC 4271 section 5). Toward a 2-octet peer the AS numbers that do not fit become AS_TRANS and
 * AS4_PATH / AS4_AGGREGATOR carry the real ones (RFC 6793 section 4.2.2).
 */
export function encodePathAttributes(attrs: PathAttributes, ctx: SessionContext, mpReach?: MpReach, mpUnreach?: MpUnreach): Uint8Array[] {
  const asSize = ctx.fourOctetAS ? 4 : 2;
  const parts: { type: number; bytes: Uint8Array }[] = [];
  const add = (flags: number, type: number, value: Uint8Array): void => void parts.push({ type, bytes: encodeAttribute(flags, type, value) });
  if (attrs.origin !== undefined) add(T, AttrType.ORIGIN, Uint8Array.of(attrs.origin));
  if (attrs.asPath !== undefined) add(T, AttrType.AS_PATH, asPathBytes(attrs.asPath, asSize));
  if (attrs.nextHop !== undefined) {
    if (attrs.nextHop.family !== 4) throw new RangeError('NEXT_HOP must be IPv4; IPv6 next hops go in MP_REACH_NLRI');
    add(T, AttrType.NEXT_HOP, ipBytes(attrs.nextHop));
  }
  if (attrs.med !== undefined) add(O, AttrType.MULTI_EXIT_DISC, u32Bytes([attrs.med]));
  if (attrs.localPref !== undefined) add(T, AttrType.LOCAL_PREF, u32Bytes([attrs.localPref]));
  if (attrs.atomicAggregate === true) add(T, AttrType.ATOMIC_AGGREGATE, new Uint8Array(0));
  if (attrs.aggregator !== undefined) add(O | T, AttrType.AGGREGATOR, aggregatorBytes(attrs.aggregator, asSize));
  if (attrs.communities !== undefined && attrs.communities.length > 0) add(O | T, AttrType.COMMUNITIES, u32Bytes(attrs.communities));
  if (attrs.originatorId !== undefined) add(O, AttrType.ORIGINATOR_ID, ipBytes(attrs.originatorId));
  if (attrs.clusterList !== undefined && attrs.clusterList.length > 0) {
    add(O, AttrType.CLUSTER_LIST, u32Bytes(attrs.clusterList.map((ip) => Number(ip.value))));
  }
  if (attrs.extendedCommunities !== undefined && attrs.extendedCommunities.length > 0) {
    const value = new Uint8Array(attrs.extendedCommunities.length * 8);
    const view = viewOf(value);
    attrs.extendedCommunities.forEach((c, k) => view.setBigUint64(k * 8, BigInt.asUintN(64, c)));
    add(O | T, AttrType.EXTENDED_COMMUNITIES, value);
  }
  if (!ctx.fourOctetAS) {
    const path = attrs.asPath ?? [];
    const as4 = path.filter((s) => s.type === SegmentType.AS_SEQUENCE || s.type === SegmentType.AS_SET);
    if (as4.some((s) => s.asns.some((asn) => asn > 0xffff))) add(O | T, AttrType.AS4_PATH, asPathBytes(as4, 4));
    if (attrs.aggregator !== undefined && attrs.aggregator.asn > 0xffff) add(O | T, AttrType.AS4_AGGREGATOR, aggregatorBytes(attrs.aggregator, 4));
  }
  if (attrs.largeCommunities !== undefined && attrs.largeCommunities.length > 0) {
    add(O | T, AttrType.LARGE_COMMUNITIES, u32Bytes(attrs.largeCommunities.flatMap((c) => [c.global, c.local1, c.local2])));
  }
  for (const raw of attrs.other ?? []) {
    // Types this codec interprets are written from the fields above, never twice.
    if (!isInterpreted(raw.type)) parts.push({ type: raw.type, bytes: encodeAttribute(raw.flags, raw.type, raw.value) });
  }
  parts.sort((a, b) => a.type - b.type);
  const out: Uint8Array[] = [];
  if (mpReach !== undefined) out.push(encodeMpReach(mpReach));
  if (mpUnreach !== undefined) out.push(encodeMpUnreach(mpUnreach));
  for (const p of parts) out.push(p.bytes);
  return out;
}

/** Assembles an UPDATE from encoded pieces; throws if it would exceed `maxLength`. */
export function assembleUpdate(withdrawn: Uint8Array, attributes: readonly Uint8Array[], nlri: Uint8Array, maxLength = MAX_MESSAGE_LENGTH): Uint8Array {
  let attrLength = 0;
  for (const a of attributes) attrLength += a.length;
  const bodyLength = 4 + withdrawn.length + attrLength + nlri.length;
  if (19 + bodyLength > maxLength) throw new RangeError(`UPDATE of ${19 + bodyLength} octets exceeds ${maxLength}`);
  const body = new Uint8Array(bodyLength);
  body[0] = withdrawn.length >> 8;
  body[1] = withdrawn.length & 0xff;
  body.set(withdrawn, 2);
  let p = 2 + withdrawn.length;
  body[p++] = attrLength >> 8;
  body[p++] = attrLength & 0xff;
  for (const a of attributes) {
    body.set(a, p);
    p += a.length;
  }
  body.set(nlri, p);
  return encodeMessage(MessageType.UPDATE, body);
}

/** The whole UPDATE message. Throws on local mistakes (an IPv6 NEXT_HOP, a message over `maxLength`). */
export function encodeUpdate(update: Update, ctx: SessionContext, maxLength = MAX_MESSAGE_LENGTH): Uint8Array {
  return assembleUpdate(
    encodePrefixes(update.withdrawn),
    encodePathAttributes(update.attributes, ctx, update.mpReach, update.mpUnreach),
    encodePrefixes(update.nlri),
    maxLength,
  );
}

// ---- End-of-RIB --------------------------------------------------------------------------------

/** RFC 4724 section 2; decodeUpdate reports received markers as `endOfRib` on its decision. */
export function encodeEndOfRib(family: Family): Uint8Array {
  const update: Update =
    family === 4 ? { withdrawn: [], attributes: {}, nlri: [] } : { withdrawn: [], attributes: {}, nlri: [], mpUnreach: { family, withdrawn: [] } };
  return encodeUpdate(update, { fourOctetAS: true });
}

/** Every prefix an UPDATE announces, both families. */
export const announcedPrefixes = (u: Update): Prefix[] => [...u.nlri, ...(u.mpReach?.nlri ?? [])];
/** Every prefix an UPDATE withdraws, both families. */
export const withdrawnPrefixes = (u: Update): Prefix[] => [...u.withdrawn, ...(u.mpUnreach?.withdrawn ?? [])];
