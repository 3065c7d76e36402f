// MetalLB's address and duration syntax, and the avoidBuggyIPs split, checked on their own.
import { describe, expect, it } from 'vitest';
import { formatRange, parseBlock } from '../api/index.js';
import { goDurationSeconds, parseAddresses, withoutBuggyIPs } from './metallb.js';

const range = (text: string) => {
  const parsed = parseAddresses(text);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
};

describe('parseAddresses', () => {
  it('reads CIDRs (masking host bits, as MetalLB does) and ranges, with or without spaces', () => {
    expect(range('198.18.0.7/24').cidr).toBe('198.18.0.0/24');
    expect(range('2001:db8::1/64').cidr).toBe('2001:db8::/64');
    expect(formatRange(range('198.18.0.10 - 198.18.0.20').range)).toBe('198.18.0.10-198.18.0.20');
    expect(range('198.18.0.10-198.18.0.20').cidr).toBeUndefined();
    expect(formatRange(range('2001:db8::1-2001:db8::ff').range)).toBe('2001:db8::1-2001:db8::ff');
  });

  it('refuses what is neither, with the reason', () => {
    expect(parseAddresses('198.18.0.0/33')).toEqual({ ok: false, error: '"198.18.0.0/33": prefix must be 0..32' });
    expect(parseAddresses('198.18.0.20-198.18.0.10')).toEqual({ ok: false, error: 'range "198.18.0.20-198.18.0.10" ends before it starts' });
    expect(parseAddresses('198.18.0.1-2001:db8::1')).toEqual({ ok: false, error: 'range "198.18.0.1-2001:db8::1" mixes IPv4 and IPv6' });
    expect(parseAddresses('198.18.0.1')).toEqual({ ok: false, error: '"198.18.0.1" is neither a CIDR nor a range FIRST-LAST' });
  });
});

describe('withoutBuggyIPs', () => {
  /** Every address the blocks hand out, as text. */
  const addresses = (text: string) =>
    withoutBuggyIPs(range(text).range)!.flatMap((b) => {
      const r = parseBlock(b, false);
      if (!r.ok) throw new Error(r.error);
      const out: string[] = [];
      for (let v = r.value.usable.first; v <= r.value.usable.last; v++) out.push(formatRange({ family: 4, first: v, last: v }));
      return out;
    });

  it('hands out exactly the addresses not ending in .0 or .255', () => {
    for (const text of ['198.18.0.0/24', '198.18.0.128/25', '198.18.0.250-198.18.2.5', '198.18.3.255/32', '198.18.4.0/22']) {
      const all = range(text).range;
      const expected: string[] = [];
      for (let v = all.first; v <= all.last; v++) if (v % 256n !== 0n && v % 256n !== 255n) expected.push(formatRange({ family: 4, first: v, last: v }));
      expect(addresses(text), text).toEqual(expected);
    }
  });

  it('does not split IPv6 (MetalLB leaves it alone) or blocks of more than 256 /24s', () => {
    expect(withoutBuggyIPs(range('2001:db8::/120').range)).toBeUndefined();
    expect(withoutBuggyIPs(range('198.18.0.0/16').range)).toHaveLength(256);
    expect(withoutBuggyIPs(range('198.18.0.0/15').range)).toBeUndefined();
  });
});

describe('goDurationSeconds', () => {
  it('reads whole seconds in metav1.Duration syntax, nothing else', () => {
    expect(['90s', '1m30s', '3m', '1h', '1h0m5s', '0s'].map(goDurationSeconds)).toEqual([90, 90, 180, 3600, 3605, 0]);
    expect(['', '1500ms', '90', '1.5s', 'm'].map(goDurationSeconds)).toEqual([undefined, undefined, undefined, undefined, undefined]);
  });
});
