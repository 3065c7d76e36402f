import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseIP } from '../api/index.js';
import { ipv6MulticastMAC, solicitedNodeMulticast } from './ipv6.js';
import { broadcastMAC, formatMAC, isBroadcastMAC, isMAC, isMulticastMAC, macEqual, parseMAC } from './mac.js';

describe('parseMAC / formatMAC', () => {
  it('parses colon and dash forms in any case and prints lower-case colons', () => {
    expect(Array.from(parseMAC('02:00:00:00:00:01')!)).toEqual([2, 0, 0, 0, 0, 1]);
    expect(formatMAC(parseMAC('02-AB-cd-00-10-FF')!)).toBe('02:ab:cd:00:10:ff');
  });

  it('refuses anything else without throwing', () => {
    for (const bad of ['', '02:00:00:00:00', '02:00:00:00:00:01:02', '02:00-00:00:00:01', '0g:00:00:00:00:01', '2:0:0:0:0:1', '0200.0000.0001', ' 02:00:00:00:00:01']) {
      expect(parseMAC(bad), bad).toBeUndefined();
    }
    expect(parseMAC(42 as unknown as string)).toBeUndefined();
  });

  it('round-trips every address (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 6, maxLength: 6 }), (bytes) => {
        expect(macEqual(parseMAC(formatMAC(bytes))!, bytes)).toBe(true);
      }),
    );
  });
});

describe('MAC classes', () => {
  it('tells group from individual addresses by the I/G bit', () => {
    expect(isMulticastMAC(parseMAC('01:00:5e:00:00:01')!)).toBe(true);
    expect(isMulticastMAC(parseMAC('33:33:00:00:00:01')!)).toBe(true);
    expect(isMulticastMAC(parseMAC('02:00:00:00:00:01')!)).toBe(false);
    expect(isBroadcastMAC(broadcastMAC())).toBe(true);
    expect(isMAC(new Uint8Array(6))).toBe(true);
    expect(isMAC(new Uint8Array(5))).toBe(false);
  });

  it('hands out a fresh broadcast array each time', () => {
    const a = broadcastMAC();
    a[0] = 0;
    expect(isBroadcastMAC(broadcastMAC())).toBe(true);
  });

  it('maps IPv6 multicast to 33:33 plus the low 32 bits (RFC 2464 §7)', () => {
    expect(formatMAC(ipv6MulticastMAC(parseIP('ff02::1')!))).toBe('33:33:00:00:00:01');
    const solicited = solicitedNodeMulticast(parseIP('2001:db8::1:2345:6789')!);
    expect(formatMAC(ipv6MulticastMAC(solicited))).toBe('33:33:ff:45:67:89');
  });
});
