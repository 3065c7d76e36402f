import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatIP, parseIP, type IP } from '../api/index.js';
import {
  decodeIPv6,
  encodeIPv6,
  icmpv6Checksum,
  ipv6FromBytes,
  ipv6ToBytes,
  isMulticastIPv6,
  isSolicitedNodeMulticast,
  solicitedNodeMulticast,
  verifyICMPv6Checksum,
  type IPv6Packet,
} from './ipv6.js';

const hex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const ip = (text: string): IP => parseIP(text)!;

/**
 * Reference checksum, written the long way round from RFC 8200 §8.1 and RFC 1071: build the
 * pseudo-header as bytes, append the message with its checksum zeroed and an odd octet padded,
 * add 16-bit words with end-around carry after each addition, complement.
 */
function referenceChecksum(src: string, dst: string, message: Uint8Array): number {
  const pseudo: number[] = [...ipv6ToBytes(ip(src)), ...ipv6ToBytes(ip(dst))];
  const length = message.length;
  pseudo.push((length >>> 24) & 0xff, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff, 0, 0, 0, 58);
  const body = Array.from(message);
  body[2] = 0;
  body[3] = 0;
  if (body.length % 2 === 1) body.push(0);
  const all = [...pseudo, ...body];
  let sum = 0;
  for (let i = 0; i < all.length; i += 2) {
    sum += all[i]! * 256 + all[i + 1]!;
    if (sum > 0xffff) sum -= 0xffff; // end-around carry
  }
  return 0xffff - sum;
}

function packet(bytes: Uint8Array): IPv6Packet {
  const result = decodeIPv6(bytes);
  if (!result.ok) throw new Error(`dropped: ${result.reason}`);
  return result.frame;
}

const SRC = '20010db8000000000000000000000001';
const DST = '20010db8000000000000000000000002';

describe('IPv6 header (RFC 8200 §3)', () => {
  it('encodes version, traffic class, flow label, payload length, next header, hop limit, addresses', () => {
    const bytes = encodeIPv6({ trafficClass: 0xb8, flowLabel: 0x12345, nextHeader: 58, hopLimit: 255, src: ip('2001:db8::1'), dst: ip('2001:db8::2') }, hex('80000000'));
    expect(toHex(bytes)).toBe(`6b812345 0004 3a ff ${SRC} ${DST} 80000000`.replace(/\s+/g, ''));
  });

  it('decodes the same header and trims Ethernet padding off the payload', () => {
    const p = packet(hex(`6b812345 0004 3a ff ${SRC} ${DST} 80000000 0000`));
    expect(p.header).toEqual({ trafficClass: 0xb8, flowLabel: 0x12345, payloadLength: 4, nextHeader: 58, hopLimit: 255, src: ip('2001:db8::1'), dst: ip('2001:db8::2') });
    expect(p.protocol).toBe(58);
    expect(toHex(p.upperLayer)).toBe('80000000');
  });

  it('skips Hop-by-Hop and Destination Options headers to the upper layer', () => {
    // Hop-by-Hop (next: Destination Options, 8 octets, PadN) then Destination Options (next: ICMPv6, 16 octets).
    const hbh = '3c 00 0104 00000000';
    const dest = '3a 01 010c 000000000000000000000000';
    const p = packet(hex(`60000000 001c 00 ff ${SRC} ${DST} ${hbh} ${dest} 80000000`));
    expect(p.header.nextHeader).toBe(0);
    expect(p.protocol).toBe(58);
    expect(toHex(p.upperLayer)).toBe('80000000');
  });

  it('reports other upper layers and stops at headers it does not walk', () => {
    expect(packet(hex(`60000000 0000 11 40 ${SRC} ${DST}`)).protocol).toBe(17);
    expect(packet(hex(`60000000 0008 2b 40 ${SRC} ${DST} 3a00000000000000`)).protocol).toBe(43); // Routing
  });

  it.each([
    ['truncated_ipv6', `60000000 0000 3a ff ${SRC} 20010db8`],
    ['ipv6_bad_version', `40000000 0000 3a ff ${SRC} ${DST}`],
    ['ipv6_bad_payload_length', `60000000 0005 3a ff ${SRC} ${DST} 80000000`],
    ['ipv6_multicast_source', `60000000 0000 3a ff ff020000000000000000000000000001 ${DST}`],
    ['ipv6_bad_extension_header', `60000000 0001 00 ff ${SRC} ${DST} 3a`],
    ['ipv6_bad_extension_header', `60000000 0008 00 ff ${SRC} ${DST} 3a01000000000000`],
    ['ipv6_fragment', `60000000 0008 2c ff ${SRC} ${DST} 3a00000100000001`],
  ])('drops %s', (reason, text) => {
    expect(decodeIPv6(hex(text))).toEqual({ ok: false, reason });
  });

  it('round-trips random headers (property)', () => {
    const addr = fc.bigInt({ min: 0n, max: (1n << 96n) - 1n }).map((v): IP => ({ family: 6, value: (0x20010db8n << 96n) | v }));
    fc.assert(
      fc.property(fc.nat(0xff), fc.nat(0xfffff), fc.nat(0xff).filter((n) => n !== 0 && n !== 60 && n !== 44), fc.nat(0xff), addr, addr, fc.uint8Array({ maxLength: 64 }), (trafficClass, flowLabel, nextHeader, hopLimit, src, dst, payload) => {
        const p = packet(encodeIPv6({ trafficClass, flowLabel, nextHeader, hopLimit, src, dst }, payload));
        expect(p.header).toEqual({ trafficClass, flowLabel, payloadLength: payload.length, nextHeader, hopLimit, src, dst });
        expect(p.upperLayer).toEqual(payload);
      }),
    );
  });
});

describe('addresses', () => {
  it('derives solicited-node multicast addresses (RFC 4291 §2.7.1)', () => {
    expect(formatIP(solicitedNodeMulticast(ip('2001:db8::1:2345:6789')))).toBe('ff02::1:ff45:6789');
    expect(formatIP(solicitedNodeMulticast(ip('2001:db8::10')))).toBe('ff02::1:ff00:10');
    expect(isSolicitedNodeMulticast(ip('ff02::1:ff00:10'))).toBe(true);
    expect(isSolicitedNodeMulticast(ip('ff02::1:fe00:10'))).toBe(false);
    expect(isSolicitedNodeMulticast(ip('ff02::1'))).toBe(false);
    expect(isMulticastIPv6(ip('ff02::1'))).toBe(true);
    expect(isMulticastIPv6(ip('2001:db8::1'))).toBe(false);
  });

  it('converts to and from 16 octets', () => {
    expect(toHex(ipv6ToBytes(ip('2001:db8::1')))).toBe(SRC);
    expect(ipv6FromBytes(hex(`00 ${DST}`), 1)).toEqual(ip('2001:db8::2'));
    expect(() => ipv6ToBytes(ip('198.18.0.1'))).toThrow(RangeError);
  });
});

describe('ICMPv6 checksum (RFC 4443 §2.3)', () => {
  it('matches the checksum Linux wrote on a captured Neighbor Solicitation', () => {
    const message = hex('87001c09 00000000 20010db8000000000000000000000010 0101 020000000002');
    expect(icmpv6Checksum(ip('2001:db8::2'), ip('ff02::1:ff00:10'), message)).toBe(0x1c09);
    expect(referenceChecksum('2001:db8::2', 'ff02::1:ff00:10', message)).toBe(0x1c09);
  });

  it('agrees with the reference for random messages, odd lengths included (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4, maxLength: 300 }), (message) => {
        expect(icmpv6Checksum(ip('2001:db8::1'), ip('2001:db8::2'), message)).toBe(referenceChecksum('2001:db8::1', '2001:db8::2', message));
      }),
    );
  });

  it('verifies a received message, and accepts either one\'s complement zero', () => {
    const src = ip('2001:db8::1');
    const dst = ip('2001:db8::2');
    const message = hex('80000000 0000 0001');
    // Choose the last word so the checksum comes out zero; then 0xffff is the same value.
    message[4] = 0;
    const c = icmpv6Checksum(src, dst, message);
    message.set([c >>> 8, c & 0xff], 4);
    expect(icmpv6Checksum(src, dst, message)).toBe(0);
    const wrap = (checksum: number): IPv6Packet => {
      message.set([checksum >>> 8, checksum & 0xff], 2);
      return packet(encodeIPv6({ nextHeader: 58, hopLimit: 255, src, dst }, message));
    };
    expect(verifyICMPv6Checksum(wrap(0x0000))).toBe(true);
    expect(verifyICMPv6Checksum(wrap(0xffff))).toBe(true);
    expect(verifyICMPv6Checksum(wrap(0x0001))).toBe(false);
  });
});
