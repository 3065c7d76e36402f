import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeEthernet, encodeEthernet, ETHERTYPE_ARP, ETHERTYPE_IPV6, type EthernetFrame, type VLANTag } from './ethernet.js';
import { formatMAC, parseMAC } from './mac.js';

const hex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const mac1 = parseMAC('02:00:00:00:00:01')!;
const mac2 = parseMAC('02:00:00:00:00:02')!;

function decoded(bytes: Uint8Array): EthernetFrame {
  const result = decodeEthernet(bytes);
  if (!result.ok) throw new Error(`dropped: ${result.reason}`);
  return result.frame;
}

describe('encodeEthernet', () => {
  it('writes dst, src, EtherType and pads to 60 octets', () => {
    const frame = encodeEthernet({ dst: mac2, src: mac1, ethertype: ETHERTYPE_ARP }, hex('aabb'));
    expect(toHex(frame)).toBe(`020000000002 020000000001 0806 aabb${'00'.repeat(44)}`.replace(/\s+/g, ''));
  });

  it('inserts an 802.1Q tag: TPID 0x8100, then PCP(3) DEI(1) VID(12)', () => {
    const frame = encodeEthernet({ dst: mac2, src: mac1, vlan: { pcp: 5, dei: true, vid: 0x123 }, ethertype: ETHERTYPE_IPV6 }, hex('aa'));
    // 5 << 13 | 1 << 12 | 0x123 = 0xb123
    expect(toHex(frame.subarray(0, 19))).toBe('020000000002020000000001 8100 b123 86dd aa'.replace(/\s+/g, ''));
    expect(frame.length).toBe(60);
  });

  it('does not pad frames already at or over the minimum', () => {
    expect(encodeEthernet({ dst: mac2, src: mac1, ethertype: 0x0800 }, new Uint8Array(46)).length).toBe(60);
    expect(encodeEthernet({ dst: mac2, src: mac1, ethertype: 0x0800 }, new Uint8Array(100)).length).toBe(114);
  });

  it('throws RangeError on caller bugs (out-of-range fields)', () => {
    const base = { dst: mac2, src: mac1, ethertype: ETHERTYPE_ARP };
    expect(() => encodeEthernet({ ...base, vlan: { pcp: 0, dei: false, vid: 4095 } }, hex(''))).toThrow(RangeError);
    expect(() => encodeEthernet({ ...base, vlan: { pcp: 8, dei: false, vid: 1 } }, hex(''))).toThrow(RangeError);
    expect(() => encodeEthernet({ ...base, ethertype: 0x10000 }, hex(''))).toThrow(RangeError);
    expect(() => encodeEthernet({ ...base, src: new Uint8Array(5) }, hex(''))).toThrow(RangeError);
  });
});

describe('decodeEthernet', () => {
  it('reads an untagged frame and leaves the payload as a view', () => {
    const bytes = hex('ffffffffffff 020000000001 0806 0001 0800');
    const frame = decoded(bytes);
    expect(formatMAC(frame.dst)).toBe('ff:ff:ff:ff:ff:ff');
    expect(formatMAC(frame.src)).toBe('02:00:00:00:00:01');
    expect(frame.vlan).toBeUndefined();
    expect(frame.ethertype).toBe(ETHERTYPE_ARP);
    expect(toHex(frame.payload)).toBe('00010800');
    expect(frame.payload.buffer).toBe(bytes.buffer);
  });

  it('copies the MACs, so a reused receive buffer cannot change them', () => {
    const bytes = hex('ffffffffffff 020000000001 0806');
    const frame = decoded(bytes);
    bytes.fill(0);
    expect(formatMAC(frame.src)).toBe('02:00:00:00:00:01');
  });

  it('reads the 802.1Q tag', () => {
    const frame = decoded(hex('ffffffffffff 020000000001 8100 b123 86dd 60'));
    expect(frame.vlan).toEqual({ pcp: 5, dei: true, vid: 0x123 });
    expect(frame.ethertype).toBe(ETHERTYPE_IPV6);
    expect(toHex(frame.payload)).toBe('60');
    expect(decoded(hex('ffffffffffff 020000000001 8100 0000 0806')).vlan).toEqual({ pcp: 0, dei: false, vid: 0 });
  });

  it('drops truncated headers and the reserved VLAN ID', () => {
    expect(decodeEthernet(hex(''))).toEqual({ ok: false, reason: 'truncated_ethernet' });
    expect(decodeEthernet(hex('ffffffffffff 020000000001 08'))).toEqual({ ok: false, reason: 'truncated_ethernet' });
    expect(decodeEthernet(hex('ffffffffffff 020000000001 8100 0064 08'))).toEqual({ ok: false, reason: 'truncated_vlan' });
    expect(decodeEthernet(hex('ffffffffffff 020000000001 8100 0fff 0806'))).toEqual({ ok: false, reason: 'vlan_reserved_vid' });
  });

  it('accepts any EtherType: classifying them is decodeFrame\'s job', () => {
    expect(decoded(hex('ffffffffffff 020000000001 002e')).ethertype).toBe(0x2e);
  });

  it('round-trips random headers, tagged or not (property)', () => {
    const mac = fc.uint8Array({ minLength: 6, maxLength: 6 });
    const vlan: fc.Arbitrary<VLANTag> = fc.record({ pcp: fc.integer({ min: 0, max: 7 }), dei: fc.boolean(), vid: fc.integer({ min: 0, max: 4094 }) });
    fc.assert(
      fc.property(mac, mac, fc.option(vlan, { nil: undefined }), fc.integer({ min: 0x0600, max: 0xffff }).filter((t) => t !== 0x8100), fc.uint8Array({ maxLength: 80 }), (dst, src, tag, ethertype, payload) => {
        const frame = decoded(encodeEthernet({ dst, src, vlan: tag, ethertype }, payload));
        expect(frame.dst).toEqual(dst);
        expect(frame.src).toEqual(src);
        expect(frame.vlan).toEqual(tag);
        expect(frame.ethertype).toBe(ethertype);
        expect(frame.payload.subarray(0, payload.length)).toEqual(payload);
        expect(frame.payload.subarray(payload.length).every((b) => b === 0)).toBe(true);
      }),
    );
  });
});
