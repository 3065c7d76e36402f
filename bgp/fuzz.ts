// Fuzzing support shared by the short test run (fuzz.test.ts) and the long runner
// (bench/fuzz-bgp.ts): a seeded generator of valid messages, mutators (truncation, bit flips,
// length corruption, attribute shuffles, splices), and a checker that pushes each result through
// the framer and decoders and verifies the decision it gets back. Not part of the public surface.

import type { Family, IP } from '../api/index.js';
import { seededRandom, type Random } from '../api/random.js';
import { AS_TRANS, SegmentType } from './constants.js';
import type { AsPathSegment, PathAttributes, RawAttribute } from './attributes.js';
import { Framer } from './framer.js';
import { decodeMessage, encodeKeepalive } from './message.js';
import { encodeNotification, shutdownNotification } from './notification.js';
import { buildOpen, decodeOpen, encodeOpen, type GracefulRestart } from './open.js';
import type { Prefix } from './prefix.js';
import { encodeRouteRefresh } from './route-refresh.js';
import { decodeUpdate, encodeEndOfRib, encodeUpdate, type SessionContext, type Update, type UpdateDecision } from './update.js';

/** A source of numbers in [0, 1). */

const int = (r: Random, n: number): number => Math.floor(r() * n);
const chance = (r: Random, p: number): boolean => r() < p;
const pick = <T>(r: Random, items: readonly T[]): T => items[int(r, items.length)]!;
const u32 = (r: Random): number => int(r, 0x100000000);

// ---- valid messages ----------------------------------------------------------------------------

function randomPrefix(r: Random, family: Family): Prefix {
  const bits = family === 4 ? 32 : 128;
  const length = chance(r, 0.5) ? bits : int(r, bits + 1);
  let value = family === 4 ? 0xc6120000n | BigInt(int(r, 0x20000)) : (0x20010db8n << 96n) | (BigInt(u32(r)) << 32n) | BigInt(u32(r));
  if (length < bits) value &= ~((1n << BigInt(bits - length)) - 1n);
  return { family, value, length };
}

const v4Host = (r: Random): IP => ({ family: 4, value: 0xc6120001n + BigInt(int(r, 0x1fffe)) });
const v6Host = (r: Random): IP => ({ family: 6, value: (0x20010db8n << 96n) | BigInt(1 + u32(r)) });
const privateAS = (r: Random): number => (chance(r, 0.5) ? 64512 + int(r, 1023) : 4200000000 + int(r, 94967295));

function randomAttributes(r: Random): PathAttributes {
  const asPath: AsPathSegment[] = [];
  if (chance(r, 0.2)) asPath.push({ type: SegmentType.AS_CONFED_SEQUENCE, asns: [64512 + int(r, 1023)] });
  for (let s = int(r, 3) + 1; s > 0; s--) {
    const type = chance(r, 0.85) ? SegmentType.AS_SEQUENCE : SegmentType.AS_SET;
    asPath.push({ type, asns: Array.from({ length: 1 + int(r, 6) }, () => (chance(r, 0.05) ? AS_TRANS : privateAS(r))) });
  }
  const other: RawAttribute[] = [];
  if (chance(r, 0.2)) other.push({ flags: 0xe0, type: 100 + int(r, 100), value: Uint8Array.from({ length: int(r, 40) }, () => int(r, 256)) });
  const a: { -readonly [K in keyof PathAttributes]: PathAttributes[K] } = { origin: int(r, 3), asPath, nextHop: v4Host(r) };
  if (chance(r, 0.3)) a.med = u32(r);
  if (chance(r, 0.3)) a.localPref = u32(r);
  if (chance(r, 0.1)) a.atomicAggregate = true;
  if (chance(r, 0.1)) a.aggregator = { asn: privateAS(r), address: v4Host(r) };
  if (chance(r, 0.5)) a.communities = Array.from({ length: 1 + int(r, 6) }, () => u32(r));
  if (chance(r, 0.05)) a.originatorId = v4Host(r);
  if (chance(r, 0.05)) a.clusterList = [v4Host(r)];
  if (chance(r, 0.1)) a.extendedCommunities = [(BigInt(u32(r)) << 32n) | BigInt(u32(r))];
  if (chance(r, 0.3)) a.largeCommunities = [{ global: privateAS(r), local1: u32(r), local2: u32(r) }];
  if (other.length > 0) a.other = other;
  return a;
}

function randomUpdate(r: Random): Update {
  const prefixes = (family: Family, max: number): Prefix[] => Array.from({ length: int(r, max + 1) }, () => randomPrefix(r, family));
  const announce = chance(r, 0.8);
  return {
    withdrawn: chance(r, 0.3) ? prefixes(4, 20) : [],
    nlri: announce ? prefixes(4, 30) : [],
    attributes: announce ? randomAttributes(r) : {},
    ...(announce && chance(r, 0.4)
      ? { mpReach: { family: 6 as const, nextHop: v6Host(r), ...(chance(r, 0.3) ? { linkLocal: { family: 6 as const, value: (0xfe80n << 112n) | 1n } } : {}), nlri: prefixes(6, 20) } }
      : {}),
    ...(chance(r, 0.2) ? { mpUnreach: { family: 6 as const, withdrawn: prefixes(6, 20) } } : {}),
  };
}

/** One valid message of a random type, as some BGP speaker would send it. */
export function randomMessage(r: Random): Uint8Array {
  const kind = r();
  if (kind < 0.55) return encodeUpdate(randomUpdate(r), { fourOctetAS: chance(r, 0.5) });
  if (kind < 0.7) {
    const gr: GracefulRestart = {
      restartState: chance(r, 0.5),
      notification: chance(r, 0.5),
      restartTime: int(r, 4096),
      families: [{ afi: 1 + int(r, 2), safi: 1, forwardingState: chance(r, 0.5) }],
    };
    return encodeOpen(
      buildOpen({
        asn: privateAS(r),
        holdTime: pick(r, [0, 3, 90, 180, 65535]),
        bgpId: v4Host(r),
        families: pick(r, [[4], [6], [4, 6], []] as Family[][]),
        routeRefresh: chance(r, 0.8),
        enhancedRouteRefresh: chance(r, 0.3),
        extendedMessage: chance(r, 0.3),
        ...(chance(r, 0.5) ? { gracefulRestart: gr } : {}),
      }),
    );
  }
  if (kind < 0.8) {
    if (chance(r, 0.5)) return encodeNotification(shutdownNotification('maintenance window ' + String(int(r, 1000)), pick(r, [2, 4] as const)));
    return encodeNotification({ code: 1 + int(r, 7), subcode: int(r, 12), data: Uint8Array.from({ length: int(r, 12) }, () => int(r, 256)) });
  }
  if (kind < 0.88) return encodeKeepalive();
  if (kind < 0.95) return encodeRouteRefresh({ afi: 1 + int(r, 2), safi: 1, subtype: pick(r, [0, 1, 2] as const) });
  return encodeEndOfRib(chance(r, 0.5) ? 4 : 6);
}

// ---- mutators ----------------------------------------------------------------------------------

const INTERESTING = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x0f, 0x10, 0x1f, 0x20, 0x21, 0x40, 0x7f, 0x80, 0x81, 0xc0, 0xd0, 0xe0, 0xfe, 0xff];

function setHeaderLength(m: Uint8Array): void {
  if (m.length >= 19 && m.length <= 0xffff) {
    m[16] = m.length >> 8;
    m[17] = m.length & 0xff;
  }
}

/** Offsets of the path attributes of an UPDATE, read leniently; empty when it does not parse. */
function attributeSpans(m: Uint8Array): { start: number; end: number; spans: [number, number][] } | undefined {
  if (m.length < 23 || m[18] !== 2) return undefined;
  const wl = (m[19]! << 8) | m[20]!;
  const start = 23 + wl;
  if (start > m.length) return undefined;
  const end = Math.min(m.length, start + ((m[21 + wl]! << 8) | m[22 + wl]!));
  const spans: [number, number][] = [];
  for (let i = start; i + 3 <= end; ) {
    const ext = (m[i]! & 0x10) !== 0;
    if (ext && i + 4 > end) break;
    const len = ext ? (m[i + 2]! << 8) | m[i + 3]! : m[i + 2]!;
    const next = i + (ext ? 4 : 3) + len;
    if (next > end) break;
    spans.push([i, next]);
    i = next;
  }
  return { start, end, spans };
}

type Mutator = (m: Uint8Array, r: Random, corpus: readonly Uint8Array[]) => Uint8Array;

const MUTATORS: Record<string, Mutator> = {
  truncate: (m, r) => m.slice(0, int(r, m.length + 1)),
  flipBits: (m, r) => {
    const out = m.slice();
    for (let n = 1 + int(r, 4); n > 0 && out.length > 0; n--) {
      // Mostly past the marker, where the decoders live.
      const at = chance(r, 0.95) && out.length > 19 ? 16 + int(r, out.length - 16) : int(r, out.length);
      out[at]! ^= 1 << int(r, 8);
    }
    return out;
  },
  setByte: (m, r) => {
    const out = m.slice();
    if (out.length > 18) out[18 + int(r, out.length - 18)] = pick(r, INTERESTING);
    return out;
  },
  corruptLength: (m, r) => {
    const out = m.slice();
    const targets: [number, number][] = []; // [offset, width]
    if (out.length >= 19) targets.push([16, 2]);
    if (out[18] === 2 && out.length >= 23) {
      targets.push([19, 2]);
      const wl = (out[19]! << 8) | out[20]!;
      if (21 + wl + 1 < out.length) targets.push([21 + wl, 2]);
      for (const [s] of attributeSpans(out)?.spans ?? []) targets.push((out[s]! & 0x10) !== 0 ? [s + 2, 2] : [s + 2, 1]);
    }
    if (out[18] === 1 && out.length >= 29) {
      targets.push([28, 1]);
      if (out.length > 31) targets.push([30, 1], [32, 1]);
    }
    if (targets.length === 0) return out;
    const [at, width] = pick(r, targets);
    const old = width === 2 ? (out[at]! << 8) | out[at + 1]! : out[at]!;
    const max = width === 2 ? 0xffff : 0xff;
    const value = pick(r, [0, 1, old - 1, old + 1, old + 2, old - 2, max, int(r, max + 1), old * 2]) & max;
    if (width === 2) {
      out[at] = value >> 8;
      out[at + 1] = value & 0xff;
    } else out[at] = value;
    return out;
  },
  shuffleAttributes: (m, r) => {
    const layout = attributeSpans(m);
    if (layout === undefined || layout.spans.length === 0) return m.slice();
    let attrs = layout.spans.map(([s, e]) => m.subarray(s, e));
    const op = int(r, 4);
    if (op === 0) attrs = attrs.map((a) => ({ a, k: r() })).sort((x, y) => x.k - y.k).map((x) => x.a);
    else if (op === 1) attrs.splice(int(r, attrs.length + 1), 0, pick(r, attrs));
    else if (op === 2) attrs.splice(int(r, attrs.length), 1);
    else {
      const len = int(r, 20);
      const flags = pick(r, [0x40, 0x80, 0xc0, 0xe0, 0x50, 0x90, 0xd0]);
      const head = (flags & 0x10) !== 0 ? [flags, int(r, 40), 0, len] : [flags, int(r, 40), len];
      attrs.splice(int(r, attrs.length + 1), 0, Uint8Array.from([...head, ...Array.from({ length: len }, () => int(r, 256))]));
    }
    const total = attrs.reduce((n, a) => n + a.length, 0);
    const out = new Uint8Array(layout.start + total + (m.length - layout.end));
    out.set(m.subarray(0, layout.start));
    out[layout.start - 2] = total >> 8;
    out[layout.start - 1] = total & 0xff;
    let p = layout.start;
    for (const a of attrs) {
      out.set(a, p);
      p += a.length;
    }
    out.set(m.subarray(layout.end), p);
    return out;
  },
  insertBytes: (m, r) => {
    const at = 19 + int(r, Math.max(1, m.length - 18));
    const extra = Uint8Array.from({ length: 1 + int(r, 8) }, () => (chance(r, 0.5) ? pick(r, INTERESTING) : int(r, 256)));
    return Uint8Array.from([...m.subarray(0, at), ...extra, ...m.subarray(at)]);
  },
  deleteBytes: (m, r) => {
    if (m.length <= 19) return m.slice();
    const at = 19 + int(r, m.length - 19);
    return Uint8Array.from([...m.subarray(0, at), ...m.subarray(Math.min(m.length, at + 1 + int(r, 8)))]);
  },
  randomBody: (m, r) => {
    const out = new Uint8Array(19 + int(r, 200));
    out.set(m.subarray(0, 19));
    for (let i = 19; i < out.length; i++) out[i] = int(r, 256);
    return out;
  },
  splice: (m, r, corpus) => {
    const other = pick(r, corpus);
    return Uint8Array.from([...m.subarray(0, int(r, m.length + 1)), ...other.subarray(int(r, other.length + 1))]);
  },
  randomType: (m, r) => {
    const out = m.slice();
    if (out.length > 18) out[18] = chance(r, 0.5) ? int(r, 8) : int(r, 256);
    return out;
  },
};
export const MUTATOR_NAMES = Object.keys(MUTATORS);

/** One to three mutations; the header length is usually fixed afterwards so the body decoders run. */
export function mutate(message: Uint8Array, r: Random, corpus: readonly Uint8Array[]): Uint8Array {
  let m = message;
  for (let n = 1 + int(r, 3); n > 0; n--) m = MUTATORS[pick(r, MUTATOR_NAMES)]!(m, r, corpus);
  if (chance(r, 0.85)) setHeaderLength(m);
  return m;
}

// ---- checking ----------------------------------------------------------------------------------

const NEW: SessionContext = { fourOctetAS: true };
const CONTEXTS: readonly SessionContext[] = [NEW, { fourOctetAS: false }, { fourOctetAS: true, external: true }, { fourOctetAS: false, external: false }];

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

function checkPrefixes(ps: readonly Prefix[]): void {
  for (const p of ps) {
    const bits = p.family === 4 ? 32 : 128;
    if (p.length < 0 || p.length > bits || p.value < 0n || p.value >> BigInt(bits) !== 0n) throw new Error('decoder produced an impossible prefix');
    if (p.length < bits && (p.value & ((1n << BigInt(bits - p.length)) - 1n)) !== 0n) throw new Error('decoder left host bits set');
  }
}

/** Checks a decision's shape, and that accepted UPDATEs re-encode to something that decodes again. */
function checkUpdate(d: UpdateDecision, ctx: SessionContext, reasons: Record<string, number>): string {
  const tally = (reason: string): void => void (reasons[reason] = (reasons[reason] ?? 0) + 1);
  if (d.action === 'attribute-discard') d.discarded.forEach((x) => tally(x.reason));
  else if (d.action !== 'ok') tally(d.reason);
  switch (d.action) {
    case 'ok':
    case 'attribute-discard': {
      const u = d.update;
      checkPrefixes([...u.withdrawn, ...u.nlri, ...(u.mpReach?.nlri ?? []), ...(u.mpUnreach?.withdrawn ?? [])]);
      const again = encodeUpdate(u, ctx, 65535);
      const d2 = decodeUpdate(again.subarray(19), ctx);
      if (d2.action !== 'ok') throw new Error(`re-encoded UPDATE decodes as ${d2.action}`);
      // Over 4-octet sessions decoding loses nothing, so a second trip is byte-identical.
      if (ctx.fourOctetAS && !sameBytes(encodeUpdate(d2.update, ctx, 65535), again)) throw new Error('UPDATE encoding is not stable');
      return `update:${d.action}`;
    }
    case 'treat-as-withdraw':
      checkPrefixes(d.withdrawn);
      if (d.errors.length === 0 || d.errors[0]!.reason !== d.reason) throw new Error('treat-as-withdraw without its errors');
      return 'update:treat-as-withdraw';
    case 'session-reset':
      if (d.notification.code !== 3 || d.notification.subcode < 1 || d.notification.subcode > 11) throw new Error('session reset with a bad NOTIFICATION');
      return 'update:session-reset';
  }
}

/** Feeds one message (in one to three chunks) to a fresh framer and decodes what comes out. */
export function checkMessage(bytes: Uint8Array, r: Random, reasons: Record<string, number> = {}): string[] {
  const ctx = pick(r, CONTEXTS);
  const framer = new Framer({ maxLength: chance(r, 0.1) ? 65535 : 4096 });
  const outcomes: string[] = [];
  const cuts = [0, ...Array.from({ length: int(r, 3) }, () => int(r, bytes.length + 1)).sort((a, b) => a - b), bytes.length];
  for (let c = 0; c + 1 < cuts.length; c++) {
    const pushed = framer.push(bytes.subarray(cuts[c], cuts[c + 1]));
    for (const frame of pushed.frames) {
      const m = decodeMessage(frame, ctx);
      switch (m.type) {
        case 'open': {
          if (m.result.ok) {
            const again = encodeOpen(m.result.open);
            const d2 = decodeOpen(again.subarray(19));
            if (!d2.ok || !sameBytes(encodeOpen(d2.open), again)) throw new Error('OPEN encoding is not stable');
            outcomes.push('open:ok');
          } else {
            outcomes.push('open:error');
            reasons[m.result.reason] = (reasons[m.result.reason] ?? 0) + 1;
          }
          break;
        }
        case 'update':
          outcomes.push(checkUpdate(m.decision, ctx, reasons));
          break;
        case 'notification':
          if (typeof m.notification.codeName !== 'string' || typeof m.notification.subcodeName !== 'string') throw new Error('unnamed NOTIFICATION');
          outcomes.push('notification');
          break;
        case 'keepalive':
          outcomes.push('keepalive');
          break;
        case 'route-refresh':
          outcomes.push(`route-refresh:${m.result.action}`);
          break;
      }
    }
    if (pushed.error !== undefined) {
      if (pushed.error.notification.code !== 1) throw new Error('header error with a code other than 1');
      outcomes.push(`frame:${pushed.error.reason}`);
      return outcomes;
    }
  }
  if (framer.buffered > 0) outcomes.push('frame:incomplete');
  return outcomes;
}

export interface FuzzReport {
  readonly messages: number;
  readonly decisions: number;
  /** Decisions by outcome: frame errors, then one entry per message type and action. */
  readonly counts: Readonly<Record<string, number>>;
  /** Why UPDATEs and OPENs were refused, by reason code. */
  readonly reasons: Readonly<Record<string, number>>;
}

/**
 * Runs `count` messages: a tenth are valid seeds, the rest mutated seeds or random bytes. Any
 * exception escaping the framer or a decoder, or a failed check, propagates with the offending
 * message attached.
 */
export function runFuzz(count: number, seed: number, onProgress?: (done: number) => void): FuzzReport {
  const r = seededRandom(seed);
  const corpus = Array.from({ length: 512 }, () => randomMessage(r));
  const counts: Record<string, number> = {};
  const reasons: Record<string, number> = {};
  let decisions = 0;
  for (let i = 0; i < count; i++) {
    if (i % 4096 === 0 && i > 0) {
      // Refresh part of the corpus so long runs keep seeing new shapes.
      corpus[int(r, corpus.length)] = randomMessage(r);
      onProgress?.(i);
    }
    const base = pick(r, corpus);
    const roll = r();
    const message =
      roll < 0.1 ? base : roll < 0.13 ? Uint8Array.from({ length: int(r, 64) }, () => (chance(r, 0.5) ? 0xff : int(r, 256))) : mutate(base, r, corpus);
    let outcomes: string[];
    try {
      outcomes = checkMessage(message, r, reasons);
    } catch (error) {
      const hex = Array.from(message, (b) => b.toString(16).padStart(2, '0')).join('');
      throw new Error(`fuzz case ${i} (seed ${seed}) failed: ${String(error)}\nmessage: ${hex}`, { cause: error });
    }
    // Nothing to frame: an empty input.
    if (outcomes.length === 0) outcomes = ['frame:empty'];
    for (const o of outcomes) counts[o] = (counts[o] ?? 0) + 1;
    decisions += outcomes.length;
  }
  return { messages: count, decisions, counts, reasons };
}
