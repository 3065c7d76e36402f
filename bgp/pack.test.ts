// packUpdates: many NLRI per UPDATE, split at the message limit, next-hop self per family.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseIP, type IP } from '../api/index.js';
import {
  asSequence,
  decodeUpdate,
  encodeNlri,
  encodePrefixes,
  packEncoded,
  packUpdates,
  prefixKey,
  prefixWireLength,
  toHex,
  type PathAttributes,
  type Prefix,
  type RouteGroup,
  type SessionContext,
  type Update,
} from './index.js';

const ip = (t: string): IP => parseIP(t)!;
const NEW: SessionContext = { fourOctetAS: true };
const attrs: PathAttributes = { origin: 0, asPath: [asSequence(64512)], communities: [0xfc000064] };
const self = { ipv4: ip('198.18.0.1'), ipv6: ip('2001:db8::1') };

/** Host routes counting up from a base address. */
const v4Hosts = (n: number): Prefix[] => Array.from({ length: n }, (_, k) => ({ family: 4 as const, value: 0xc6120000n + BigInt(k), length: 32 }));
const v6Hosts = (n: number): Prefix[] => Array.from({ length: n }, (_, k) => ({ family: 6 as const, value: 0x20010db8000000000000000000000000n + BigInt(k), length: 128 }));

function decodeAll(messages: Uint8Array[], ctx: SessionContext = NEW): Update[] {
  return messages.map((m) => {
    const d = decodeUpdate(m.subarray(19), ctx);
    if (d.action !== 'ok') throw new Error(`packed message did not decode: ${d.action}`);
    return d.update;
  });
}

/** Prefixes of every length cut from 198.18.0.0/15 and 2001:db8::/32 addresses. */
const prefixArb = fc
  .oneof(
    fc.record({ family: fc.constant(4 as const), value: fc.bigInt({ min: 0n, max: 0x1ffffn }).map((n) => 0xc6120000n | n), length: fc.integer({ min: 0, max: 32 }) }),
    fc.record({ family: fc.constant(6 as const), value: fc.bigInt({ min: 0n, max: (1n << 96n) - 1n }).map((n) => (0x20010db8n << 96n) | n), length: fc.integer({ min: 0, max: 128 }) }),
  )
  .map((p): Prefix => ({ ...p, value: p.value & ~((1n << BigInt((p.family === 4 ? 32 : 128) - p.length)) - 1n) }));

describe('encodeNlri and packEncoded', () => {
  it('encodeNlri writes what encodePrefixes writes (property)', () => {
    fc.assert(
      fc.property(fc.array(prefixArb, { maxLength: 200 }), (prefixes) => {
        expect(toHex(encodeNlri(prefixes))).toBe(toHex(encodePrefixes(prefixes)));
      }),
    );
  });

  it('packEncoded cuts prepared NLRI into the same messages packUpdates makes from the prefixes', () => {
    const v4 = v4Hosts(1200);
    const v6 = v6Hosts(400);
    const encoded = packEncoded(
      {
        withdraw: [{ family: 6, nlri: encodeNlri(v6Hosts(300)) }],
        announce: [
          { attributes: attrs, nextHop: self, family: 4, nlri: encodeNlri(v4) },
          { attributes: attrs, nextHop: self, family: 6, nlri: encodeNlri(v6) },
        ],
      },
      NEW,
    );
    const packed = packUpdates({ withdraw: v6Hosts(300), announce: [{ attributes: attrs, nextHop: self, prefixes: [...v6, ...v4] }] }, NEW);
    expect(encoded.map(toHex)).toEqual(packed.map(toHex));
  });
});

describe('packUpdates', () => {
  it('puts as many IPv4 routes in each UPDATE as fit in 4096 octets, with NEXT_HOP self', () => {
    const prefixes = v4Hosts(2000);
    const messages = packUpdates({ announce: [{ attributes: attrs, nextHop: self, prefixes }] }, NEW);
    // Each /32 takes 5 octets; the first messages are as full as whole prefixes allow.
    const attrOctets = 4 + 9 + 7 + 7; // ORIGIN, AS_PATH, NEXT_HOP, COMMUNITIES
    const perMessage = Math.floor((4096 - 23 - attrOctets) / 5);
    expect(messages).toHaveLength(Math.ceil(2000 / perMessage));
    expect(messages[0]!.length).toBe(23 + attrOctets + perMessage * 5);
    for (const m of messages) expect(m.length).toBeLessThanOrEqual(4096);
    const updates = decodeAll(messages);
    expect(updates.flatMap((u) => u.nlri)).toEqual(prefixes);
    for (const u of updates) expect(u.attributes).toEqual({ ...attrs, nextHop: self.ipv4 });
  });

  it('puts IPv6 routes in MP_REACH_NLRI (extended length) with the global, and optionally link-local, next hop', () => {
    const prefixes = v6Hosts(700);
    for (const linkLocal of [undefined, ip('fe80::1')]) {
      const nextHop = linkLocal === undefined ? self : { ...self, ipv6LinkLocal: linkLocal };
      const messages = packUpdates({ announce: [{ attributes: attrs, nextHop, prefixes }] }, NEW);
      expect(messages.length).toBeGreaterThan(1);
      for (const m of messages) expect(m.length).toBeLessThanOrEqual(4096);
      const updates = decodeAll(messages);
      expect(updates.flatMap((u) => u.mpReach?.nlri ?? [])).toEqual(prefixes);
      for (const u of updates) {
        expect(u.nlri).toEqual([]);
        expect(u.attributes).toEqual(attrs); // no NEXT_HOP attribute for IPv6 routes
        expect(u.mpReach?.nextHop).toEqual(self.ipv6);
        expect(u.mpReach?.linkLocal).toEqual(linkLocal);
      }
    }
  });

  it('withdraws IPv4 in the Withdrawn Routes field and IPv6 in MP_UNREACH_NLRI, split as needed', () => {
    const messages = packUpdates({ withdraw: [...v4Hosts(1500), ...v6Hosts(500)] }, NEW);
    for (const m of messages) expect(m.length).toBeLessThanOrEqual(4096);
    const updates = decodeAll(messages);
    expect(updates.flatMap((u) => u.withdrawn)).toEqual(v4Hosts(1500));
    expect(updates.flatMap((u) => u.mpUnreach?.withdrawn ?? [])).toEqual(v6Hosts(500));
    expect(messages.length).toBe(Math.ceil(1500 / Math.floor(4073 / 5)) + Math.ceil(500 / Math.floor((4096 - 23 - 4 - 3) / 17)));
  });

  it('one message for everything once RFC 8654 extended messages allow it', () => {
    expect(packUpdates({ announce: [{ attributes: attrs, nextHop: self, prefixes: v4Hosts(5000) }] }, NEW, 65535)).toHaveLength(1);
  });

  it('withdrawals come first, then each group per family, IPv4 before IPv6', () => {
    const groups: RouteGroup[] = [
      { attributes: attrs, nextHop: self, prefixes: [...v6Hosts(1), ...v4Hosts(1)] },
      { attributes: { ...attrs, med: 10 }, nextHop: self, prefixes: v4Hosts(2) },
    ];
    const updates = decodeAll(packUpdates({ withdraw: v6Hosts(1), announce: groups }, NEW));
    expect(updates.map((u) => [u.mpUnreach !== undefined, u.nlri.length, u.mpReach?.nlri.length ?? 0, u.attributes.med])).toEqual([
      [true, 0, 0, undefined],
      [false, 1, 0, undefined],
      [false, 0, 1, undefined],
      [false, 2, 0, 10],
    ]);
  });

  it('toward a 2-octet peer the attributes carry AS_TRANS and AS4_PATH', () => {
    const big: PathAttributes = { origin: 0, asPath: [asSequence(4200000001)] };
    const [m] = packUpdates({ announce: [{ attributes: big, nextHop: self, prefixes: v4Hosts(1) }] }, { fourOctetAS: false });
    expect(toHex(m!)).toContain('40020402015ba0'); // AS_PATH [AS_TRANS]
    expect(decodeAll([m!], { fourOctetAS: false })[0]!.attributes.asPath).toEqual([asSequence(4200000001)]);
  });

  it('refuses routes without a next hop of their family, or attributes too big for any message', () => {
    expect(() => packUpdates({ announce: [{ attributes: attrs, nextHop: { ipv6: self.ipv6 }, prefixes: v4Hosts(1) }] }, NEW)).toThrow(RangeError);
    expect(() => packUpdates({ announce: [{ attributes: attrs, nextHop: { ipv4: self.ipv4 }, prefixes: v6Hosts(1) }] }, NEW)).toThrow(RangeError);
    const huge: PathAttributes = { ...attrs, communities: Array.from({ length: 1100 }, (_, k) => k) };
    expect(() => packUpdates({ announce: [{ attributes: huge, nextHop: self, prefixes: v4Hosts(1) }] }, NEW)).toThrow(RangeError);
  });

  it('every message is full: the next prefix would not have fitted (property)', () => {
    fc.assert(
      fc.property(fc.array(prefixArb, { maxLength: 1500 }), fc.array(prefixArb, { maxLength: 600 }), fc.integer({ min: 200, max: 4096 }), (announce, withdraw, maxLength) => {
        const messages = packUpdates({ withdraw, announce: [{ attributes: attrs, nextHop: self, prefixes: announce }] }, NEW, maxLength);
        const updates = decodeAll(messages);
        for (const m of messages) expect(m.length).toBeLessThanOrEqual(maxLength);
        const keys = (ps: readonly Prefix[]): string[] => ps.map(prefixKey);
        expect(keys(updates.flatMap((u) => [...u.withdrawn, ...(u.mpUnreach?.withdrawn ?? [])]))).toEqual(
          keys([...withdraw.filter((p) => p.family === 4), ...withdraw.filter((p) => p.family === 6)]),
        );
        expect(keys(updates.flatMap((u) => [...u.nlri, ...(u.mpReach?.nlri ?? [])]))).toEqual(
          keys([...announce.filter((p) => p.family === 4), ...announce.filter((p) => p.family === 6)]),
        );
        // Greedy packing: a message followed by one of the same kind could not take its first prefix.
        for (let k = 0; k + 1 < updates.length; k++) {
          const a = updates[k]!;
          const b = updates[k + 1]!;
          const kind = (u: Update): string => `${u.withdrawn.length > 0}${u.mpUnreach !== undefined}${u.nlri.length > 0}${u.mpReach !== undefined}`;
          if (kind(a) !== kind(b)) continue;
          const first = b.withdrawn[0] ?? b.mpUnreach?.withdrawn[0] ?? b.nlri[0] ?? b.mpReach?.nlri[0];
          if (first === undefined) continue;
          // One more prefix may also tip the MP attribute into the 2-octet length form.
          expect(messages[k]!.length + prefixWireLength(first)).toBeGreaterThan(maxLength - 1);
        }
      }),
      { numRuns: 60 },
    );
  });
});
