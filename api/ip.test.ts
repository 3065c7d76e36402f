import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { canonicalIPv4, formatIP, parseCIDR, parseIP, rangeSize } from './ip.js';

describe('canonicalIPv4', () => {
  it('reads canonical dotted quads and nothing else', () => {
    expect(canonicalIPv4('198.18.0.1')).toBe(0xc6120001);
    expect(canonicalIPv4('0.0.0.0')).toBe(0);
    expect(canonicalIPv4('255.255.255.255')).toBe(0xffffffff);
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.256', '1..2.3', '1.2.3.', '.1.2.3', '1.2.3.4 ', '::1', '1.2.3.1000']) {
      expect(canonicalIPv4(bad), bad).toBeUndefined();
    }
  });

  it('agrees with parseIP on canonical text', () => {
    fc.assert(
      fc.property(fc.ipV4(), (text) => {
        const ip = parseIP(text);
        expect(canonicalIPv4(text)).toBe(ip && formatIP(ip) === text ? Number(ip.value) : undefined);
      }),
    );
  });
});

describe('parseIP / formatIP', () => {
  it('parses and canonicalises IPv4 and IPv6', () => {
    const cases: [string, string][] = [
      ['198.18.0.1', '198.18.0.1'],
      ['0.0.0.0', '0.0.0.0'],
      ['255.255.255.255', '255.255.255.255'],
      ['2001:DB8::1', '2001:db8::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
      ['2001:db8::0:1', '2001:db8::1'],
      ['::', '::'],
      ['::1', '::1'],
      ['::ffff:198.18.0.1', '::ffff:c612:1'],
      ['2001:db8:1:1:1:1:1:0', '2001:db8:1:1:1:1:1:0'],
      ['2001:0:0:1::1', '2001:0:0:1::1'],
    ];
    for (const [input, canonical] of cases) {
      const ip = parseIP(input);
      expect(ip, input).toBeDefined();
      expect(formatIP(ip!)).toBe(canonical);
    }
  });

  it('refuses malformed addresses without throwing', () => {
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1.2.3.-4', ' 1.2.3.4', '1::2::3', ':::', '12345::', 'g::1', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '::1.2.3', 'fe80::1%eth0', '1.2.3.4::', 'x']) {
      expect(parseIP(bad), bad).toBeUndefined();
    }
  });

  it('round-trips every address (property)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (text) => {
        const ip = parseIP(text);
        expect(ip).toBeDefined();
        const again = parseIP(formatIP(ip!));
        expect(again).toEqual(ip);
      }),
    );
  });

  it('never throws on arbitrary strings (property)', () => {
    fc.assert(fc.property(fc.string({ unit: fc.constantFrom(...'0123456789abcdef:.%/ x'.split('')), maxLength: 50 }), (s) => void parseIP(s)));
  });
});

describe('parseCIDR', () => {
  it('gives the whole range of a prefix, with large IPv6 sizes exact', () => {
    const v4 = parseCIDR('198.18.0.0/15');
    expect(v4.ok && rangeSize(v4.value.range)).toBe(131072n);
    const v6 = parseCIDR('2001:db8::/64');
    expect(v6.ok && rangeSize(v6.value.range)).toBe(1n << 64n);
    const host = parseCIDR('198.18.0.7/32');
    expect(host.ok && rangeSize(host.value.range)).toBe(1n);
  });

  it('explains what is wrong', () => {
    const cases: [string, RegExp][] = [
      ['198.18.0.0', /expected ADDRESS\/PREFIX/],
      ['198.18.0.1/24', /host bits set \(did you mean 198\.18\.0\.0\/24\?\)/],
      ['198.18.0.0/33', /prefix must be 0\.\.32/],
      ['2001:db8::/129', /prefix must be 0\.\.128/],
      ['198.18.0.0/024', /prefix/],
      ['198.18.0/24', /bad address/],
    ];
    for (const [text, why] of cases) {
      const r = parseCIDR(text);
      expect(r.ok, text).toBe(false);
      if (!r.ok) expect(r.error).toMatch(why);
    }
  });
});
