// The IPv6 header (RFC 8200 §3), the few addresses Neighbor Discovery needs, and the ICMPv6
// checksum over the pseudo-header (RFC 4443 §2.3, RFC 8200 §8.1).
import type { IP } from '../api/index.js';
import { readU128, readU16, readU32, writeU128, writeU16, writeU32 } from './bytes.js';
import { accept, drop, type Decoded } from './drop.js';
import type { MAC } from './mac.js';

export const IPV6_HEADER_LENGTH = 40;
export const NEXT_HEADER_HOP_BY_HOP = 0;
export const NEXT_HEADER_FRAGMENT = 44;
export const NEXT_HEADER_ICMPV6 = 58;
export const NEXT_HEADER_DESTINATION_OPTIONS = 60;

export interface IPv6Header {
  readonly trafficClass: number;
  readonly flowLabel: number;
  readonly payloadLength: number;
  /** The header's own Next Header field; see IPv6Packet.protocol for the upper layer. */
  readonly nextHeader: number;
  readonly hopLimit: number;
  readonly src: IP;
  readonly dst: IP;
}

export interface IPv6Packet {
  readonly header: IPv6Header;
  /** The upper-layer protocol, after any Hop-by-Hop and Destination Options headers. */
  readonly protocol: number;
  /** The upper-layer message: a view, trimmed to the payload length (Ethernet padding dropped). */
  readonly upperLayer: Uint8Array;
  /** The whole packet as received (a view), for the checksum's pseudo-header addresses. */
  readonly bytes: Uint8Array;
}

// ---- addresses ---------------------------------------------------------------------------------

const ipv6 = (value: bigint): IP => ({ family: 6, value });
// Shared constants are frozen: an IP is a value, and a caller writing to one would change it for all.
export const UNSPECIFIED_IPV6: IP = Object.freeze(ipv6(0n));
/** ff02::1, link-local all-nodes (RFC 4291 §2.7.1). */
export const ALL_NODES_IPV6: IP = Object.freeze(ipv6((0xff02n << 112n) | 1n));
/** ff02::1:ff00:0/104, the solicited-node prefix (RFC 4291 §2.7.1). */
const SOLICITED_NODE_PREFIX = 0xff02_0000_0000_0000_0000_0001_ff00_0000n;
const LOW_24 = 0xff_ffffn;

const IPV6_LIMIT = 1n << 128n;

export const isIPv6 = (ip: IP): boolean => ip.family === 6 && ip.value >= 0n && ip.value < IPV6_LIMIT;
/** Throws on a non-IPv6 value: a caller bug, not bad input from the wire. */
function ipv6Value(ip: IP): bigint {
  if (!isIPv6(ip)) throw new RangeError('expected an IPv6 address');
  return ip.value;
}

export const isUnspecifiedIPv6 = (ip: IP): boolean => ip.family === 6 && ip.value === 0n;
/** ff00::/8 (RFC 4291 §2.7). */
export const isMulticastIPv6 = (ip: IP): boolean => ip.family === 6 && ip.value >> 120n === 0xffn;

/** ff02::1:ffXX:XXXX from the low 24 bits of `ip`: where its Neighbor Solicitations go. */
export const solicitedNodeMulticast = (ip: IP): IP => ipv6(SOLICITED_NODE_PREFIX | (ipv6Value(ip) & LOW_24));
export const isSolicitedNodeMulticast = (ip: IP): boolean => ip.family === 6 && ip.value >> 24n === SOLICITED_NODE_PREFIX >> 24n;

/** 33:33 followed by the low 32 bits of an IPv6 multicast address (RFC 2464 §7). */
export function ipv6MulticastMAC(ip: IP): MAC {
  const low = Number(ip.value & 0xffff_ffffn);
  return Uint8Array.of(0x33, 0x33, low >>> 24, (low >>> 16) & 0xff, (low >>> 8) & 0xff, low & 0xff);
}

export function ipv6ToBytes(ip: IP): Uint8Array {
  const out = new Uint8Array(16);
  writeU128(out, 0, ipv6Value(ip));
  return out;
}

export function ipv6FromBytes(bytes: Uint8Array, offset = 0): IP {
  if (offset < 0 || offset + 16 > bytes.length) throw new RangeError('an IPv6 address needs 16 octets');
  return ipv6(readU128(bytes, offset));
}

// ---- header ------------------------------------------------------------------------------------

/**
 * Decodes the fixed header and walks Hop-by-Hop and Destination Options headers to the upper
 * layer. Other extension headers end the walk: the upper layer is then "not ICMPv6". Fragments
 * are reported, never reassembled.
 */
export function decodeIPv6(bytes: Uint8Array): Decoded<IPv6Packet> {
  if (bytes.length < IPV6_HEADER_LENGTH) return drop('truncated_ipv6');
  const first = readU32(bytes, 0);
  if (first >>> 28 !== 6) return drop('ipv6_bad_version');
  const payloadLength = readU16(bytes, 4);
  // Shorter is fine (Ethernet padding follows); longer means the frame was cut.
  if (IPV6_HEADER_LENGTH + payloadLength > bytes.length) return drop('ipv6_bad_payload_length');
  if (bytes[8] === 0xff) return drop('ipv6_multicast_source'); // ff00::/8
  const end = IPV6_HEADER_LENGTH + payloadLength;
  const nextHeader = bytes[6]!;
  let protocol = nextHeader;
  let offset = IPV6_HEADER_LENGTH;
  while (protocol === NEXT_HEADER_HOP_BY_HOP || protocol === NEXT_HEADER_DESTINATION_OPTIONS) {
    // Both carry (Hdr Ext Len + 1) * 8 octets (RFC 8200 §4.3, §4.6).
    if (offset + 2 > end) return drop('ipv6_bad_extension_header');
    const length = (bytes[offset + 1]! + 1) * 8;
    if (offset + length > end) return drop('ipv6_bad_extension_header');
    protocol = bytes[offset]!;
    offset += length;
  }
  if (protocol === NEXT_HEADER_FRAGMENT) return drop('ipv6_fragment');
  const header: IPv6Header = {
    trafficClass: (first >>> 20) & 0xff,
    flowLabel: first & 0xfffff,
    payloadLength,
    nextHeader,
    hopLimit: bytes[7]!,
    src: ipv6FromBytes(bytes, 8),
    dst: ipv6FromBytes(bytes, 24),
  };
  return accept({ header, protocol, upperLayer: bytes.subarray(offset, end), bytes: bytes.subarray(0, end) });
}

/** Fields of an IPv6 header to send; the payload length comes from the payload. */
export interface IPv6Fields {
  readonly trafficClass?: number;
  readonly flowLabel?: number;
  readonly nextHeader: number;
  readonly hopLimit: number;
  readonly src: IP;
  readonly dst: IP;
}

/** Header plus payload. Throws RangeError on out-of-range fields or a payload over 65535 octets. */
export function encodeIPv6(fields: IPv6Fields, payload: Uint8Array): Uint8Array {
  const { trafficClass = 0, flowLabel = 0, nextHeader, hopLimit } = fields;
  const inRange = (v: number, max: number): boolean => Number.isInteger(v) && v >= 0 && v <= max;
  if (!inRange(trafficClass, 0xff) || !inRange(flowLabel, 0xfffff) || !inRange(nextHeader, 0xff) || !inRange(hopLimit, 0xff)) {
    throw new RangeError('IPv6 header field out of range');
  }
  if (payload.length > 0xffff) throw new RangeError('IPv6 payload over 65535 octets needs a jumbogram');
  const out = new Uint8Array(IPV6_HEADER_LENGTH + payload.length);
  writeU32(out, 0, (6 << 28) | (trafficClass << 20) | flowLabel);
  writeU16(out, 4, payload.length);
  out[6] = nextHeader;
  out[7] = hopLimit;
  writeU128(out, 8, ipv6Value(fields.src));
  writeU128(out, 24, ipv6Value(fields.dst));
  out.set(payload, IPV6_HEADER_LENGTH);
  return out;
}

// ---- ICMPv6 checksum ---------------------------------------------------------------------------

/** Adds big-endian 16-bit words of `bytes` (odd length padded with a zero octet, RFC 1071). */
function sumWords(bytes: Uint8Array, start: number, end: number, skipChecksumAt = -1): number {
  let sum = 0;
  let i = start;
  for (; i + 1 < end; i += 2) if (i !== skipChecksumAt) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (i < end) sum += bytes[i]! << 8;
  return sum;
}

function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/**
 * The one's complement sum of the pseudo-header (source, destination, upper-layer length, next
 * header 58) and the message, with the message's own checksum field (octets 2-3) taken as zero.
 */
function pseudoHeaderSum(addresses: Uint8Array, message: Uint8Array, skipChecksum: boolean): number {
  const length = message.length;
  return (
    sumWords(addresses, 0, 32) +
    Math.floor(length / 0x10000) +
    (length & 0xffff) +
    NEXT_HEADER_ICMPV6 +
    sumWords(message, 0, length, skipChecksum ? 2 : -1)
  );
}

function addressBytes(src: IP, dst: IP): Uint8Array {
  const out = new Uint8Array(32);
  writeU128(out, 0, ipv6Value(src));
  writeU128(out, 16, ipv6Value(dst));
  return out;
}

/** The checksum to place in octets 2-3 of `message` sent from `src` to `dst` (RFC 4443 §2.3). */
export function icmpv6Checksum(src: IP, dst: IP, message: Uint8Array): number {
  return ~fold(pseudoHeaderSum(addressBytes(src, dst), message, true)) & 0xffff;
}

/**
 * True when the received message's checksum verifies: the sum over everything, checksum
 * included, is all ones. This accepts both one's complement zeros (0x0000 and 0xffff) as senders
 * may write either.
 */
export function verifyICMPv6Checksum(packet: IPv6Packet): boolean {
  return fold(pseudoHeaderSum(packet.bytes.subarray(8, 40), packet.upperLayer, false)) === 0xffff;
}
