// Round trips with fast-check: whatever we encode decodes to the same data.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Family, IP } from '../api/index.js';
import {
  AttrType,
  SegmentType,
  decodeNotification,
  decodeOpen,
  decodePrefixes,
  decodeRouteRefresh,
  decodeUpdate,
  encodeNotification,
  encodeOpen,
  encodePrefixes,
  encodeRouteRefresh,
  encodeUpdate,
  formatPrefix,
  parsePrefix,
  type AsPathSegment,
  type Capabilities,
  type Open,
  type PathAttributes,
  type Prefix,
  type SessionContext,
  type Update,
} from './index.js';

const bits = (f: Family): number => (f === 4 ? 32 : 128);

/** Prefixes of every length cut from 198.18.0.0/15 and 2001:db8::/32 addresses. */
const prefixArb = (family: Family): fc.Arbitrary<Prefix> =>
  fc
    .record({
      value: family === 4 ? fc.integer({ min: 0, max: 0x1ffff }).map((n) => 0xc6120000n | BigInt(n)) : fc.bigInt({ min: 0n, max: (1n << 96n) - 1n }).map((n) => (0x20010db8n << 96n) | n),
      length: fc.integer({ min: 0, max: bits(family) }),
    })
    .map(({ value, length }) => ({ family, length, value: value & ~((1n << BigInt(bits(family) - length)) - 1n) }));

/** Router addresses from the benchmarking and documentation ranges. */
const v4Host: fc.Arbitrary<IP> = fc.integer({ min: 1, max: 0x1fffe }).map((n) => ({ family: 4, value: 0xc6120000n + BigInt(n) }));
const v6Host: fc.Arbitrary<IP> = fc.bigInt({ min: 1n, max: (1n << 96n) - 1n }).map((n) => ({ family: 6, value: 0x20010db8n << 96n | n }));
const u32 = fc.integer({ min: 0, max: 0xffffffff });
/** Private AS numbers (RFC 6996), 2- and 4-octet. */
const asn = fc.oneof(fc.integer({ min: 64512, max: 65534 }), fc.integer({ min: 4200000000, max: 4294967294 }));

const segmentArb = (types: readonly SegmentType[], asnArb = asn): fc.Arbitrary<AsPathSegment> =>
  fc.record({ type: fc.constantFrom(...types), asns: fc.array(asnArb, { minLength: 1, maxLength: 12 }) });

const otherArb = fc
  .uniqueArray(
    fc.record({
      // Types this codec does not interpret.
      type: fc.integer({ min: 19, max: 255 }).filter((t) => t !== AttrType.LARGE_COMMUNITIES),
      value: fc.uint8Array({ maxLength: 300 }),
    }),
    { selector: (a) => a.type, minLength: 1, maxLength: 3 },
  )
  .map((list) => list.sort((a, b) => a.type - b.type).map((a) => ({ flags: 0xe0, ...a })));

function attributesArb(ctx: SessionContext): fc.Arbitrary<PathAttributes> {
  // AS4_PATH never carries confederation segments (RFC 6793 section 6), so toward a 2-octet peer
  // member ASes must fit in two octets to survive.
  const leadingConfed = fc.array(segmentArb([SegmentType.AS_CONFED_SEQUENCE, SegmentType.AS_CONFED_SET], fc.integer({ min: 1, max: 0xffff })), { maxLength: 2 });
  const rest = fc.array(segmentArb([SegmentType.AS_SEQUENCE, SegmentType.AS_SET]), { maxLength: 4 });
  // Toward a 2-octet peer confederation segments can only lead the path (AS4_PATH drops them).
  const asPath = ctx.fourOctetAS
    ? fc.array(segmentArb([1, 2, 3, 4]), { maxLength: 5 })
    : fc.tuple(leadingConfed, rest).map(([a, b]) => [...a, ...b]);
  return fc
    .record(
      {
        origin: fc.integer({ min: 0, max: 2 }),
        asPath,
        nextHop: v4Host,
        med: u32,
        localPref: u32,
        atomicAggregate: fc.constant(true),
        aggregator: fc.record({ asn, address: v4Host }),
        communities: fc.array(u32, { minLength: 1, maxLength: 8 }),
        originatorId: v4Host,
        clusterList: fc.array(v4Host, { minLength: 1, maxLength: 4 }),
        extendedCommunities: fc.array(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { minLength: 1, maxLength: 4 }),
        largeCommunities: fc.uniqueArray(fc.record({ global: u32, local1: u32, local2: u32 }), {
          minLength: 1,
          maxLength: 5,
          selector: (c) => `${c.global}:${c.local1}:${c.local2}`,
        }),
        other: otherArb,
      },
      { requiredKeys: ['origin', 'asPath', 'nextHop'] },
    )
    .filter((a) => {
      if (ctx.fourOctetAS || a.aggregator === undefined) return true;
      // RFC 6793 section 4.2.3: a 2-octet AGGREGATOR other than AS_TRANS means AS4_PATH is stale,
      // so a path needing AS4_PATH only survives with a 4-octet aggregator.
      const needsAs4 = a.asPath.some((s) => s.asns.some((x) => x > 0xffff));
      return !needsAs4 || a.aggregator.asn > 0xffff;
    });
}

function updateArb(ctx: SessionContext): fc.Arbitrary<Update> {
  return fc
    .record({
      withdrawn: fc.array(prefixArb(4), { maxLength: 20 }),
      nlri: fc.array(prefixArb(4), { maxLength: 20 }),
      attributes: attributesArb(ctx),
      mpReach: fc.option(
        fc.record({ family: fc.constant(6 as const), nextHop: v6Host, linkLocal: fc.option(v6Host, { nil: undefined }), nlri: fc.array(prefixArb(6), { minLength: 1, maxLength: 20 }) }),
        { nil: undefined },
      ),
      mpUnreach: fc.option(fc.record({ family: fc.constant(6 as const), withdrawn: fc.array(prefixArb(6), { maxLength: 20 }) }), { nil: undefined }),
    })
    .map((u) => {
      const mpReach = u.mpReach === undefined ? undefined : { ...u.mpReach, ...(u.mpReach.linkLocal === undefined ? { linkLocal: undefined } : {}) };
      return { ...u, mpReach };
    });
}

const NEW: SessionContext = { fourOctetAS: true };
const OLD: SessionContext = { fourOctetAS: false };

describe('round trips (property)', () => {
  it('prefixes: text and wire', () => {
    fc.assert(
      fc.property(fc.oneof(prefixArb(4), prefixArb(6)), (p) => {
        expect(parsePrefix(formatPrefix(p))).toEqual(p);
        expect(decodePrefixes(encodePrefixes([p]), 0, encodePrefixes([p]).length, p.family)).toEqual({ ok: true, prefixes: [p] });
      }),
    );
  });

  for (const [name, ctx] of [
    ['4-octet session', NEW],
    ['2-octet session (AS_TRANS + AS4_PATH)', OLD],
  ] as const) {
    it(`UPDATE over a ${name}`, () => {
      fc.assert(
        fc.property(updateArb(ctx), (update) => {
          const bytes = encodeUpdate(update, ctx, 65535);
          expect(decodeUpdate(bytes.subarray(19), ctx)).toEqual({ action: 'ok', update });
        }),
        { numRuns: 300 },
      );
    });
  }

  it('OPEN (unknown capabilities are never re-advertised)', () => {
    const caps: fc.Arbitrary<Capabilities> = fc.record(
      {
        multiprotocol: fc.uniqueArray(fc.record({ afi: fc.integer({ min: 0, max: 0xffff }), safi: fc.integer({ min: 0, max: 255 }) }), {
          maxLength: 6,
          selector: (m) => `${m.afi}/${m.safi}`,
        }),
        routeRefresh: fc.boolean(),
        enhancedRouteRefresh: fc.boolean(),
        extendedMessage: fc.boolean(),
        fourOctetAS: asn,
        gracefulRestart: fc.record({
          restartState: fc.boolean(),
          notification: fc.boolean(),
          restartTime: fc.integer({ min: 0, max: 4095 }),
          families: fc.array(fc.record({ afi: fc.integer({ min: 0, max: 0xffff }), safi: fc.integer({ min: 0, max: 255 }), forwardingState: fc.boolean() }), { maxLength: 4 }),
        }),
        unknown: fc.constant([]),
      },
      { requiredKeys: ['multiprotocol', 'routeRefresh', 'enhancedRouteRefresh', 'extendedMessage', 'unknown'] },
    );
    const openArb: fc.Arbitrary<Open> = fc.record({
      version: fc.constant(4),
      myAS: fc.oneof(fc.integer({ min: 64512, max: 65534 }), fc.constant(23456)),
      holdTime: fc.oneof(fc.constant(0), fc.integer({ min: 3, max: 0xffff })),
      bgpId: v4Host,
      capabilities: caps,
    });
    fc.assert(
      fc.property(openArb, (open) => {
        expect(decodeOpen(encodeOpen(open).subarray(19))).toEqual({ ok: true, open });
      }),
      { numRuns: 300 },
    );
  });

  it('NOTIFICATION and ROUTE-REFRESH', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 64 }), (code, subcode, data) => {
        const d = decodeNotification(encodeNotification({ code, subcode, data }).subarray(19));
        expect([d.code, d.subcode, d.data]).toEqual([code, subcode, data]);
      }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 255 }), fc.constantFrom(0 as const, 1 as const, 2 as const), (afi, safi, subtype) => {
        expect(decodeRouteRefresh(encodeRouteRefresh({ afi, safi, subtype }).subarray(19))).toEqual({ action: 'ok', routeRefresh: { afi, safi, subtype } });
      }),
    );
  });
});
