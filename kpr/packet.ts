// Ethernet frames carrying IPv4/IPv6 with TCP, UDP or ICMP(v6): a builder with correct checksums
// (fixtures for the tc datapath's test runs) and a decoder that recomputes every checksum, so a
// test sees a wrong one as data. Pure; the layouts are RFC 791, 8200, 9293, 768, 792 and 4443.
import { formatIP, parseIP, type Family } from '../api/index.js';

export const TCP_FLAGS = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;
const ETHERTYPE = { 4: 0x0800, 6: 0x86dd } as const;
const PROTO = { TCP: 6, UDP: 17, ICMP: 1, ICMPV6: 58 } as const;
const ETH_LEN = 14;

export interface PacketSpec {
  src: string;
  dst: string;
  srcMac?: string;
  dstMac?: string;
  /** IPv4 TTL / IPv6 hop limit; default 64. */
  ttl?: number;
  l4:
    | { protocol: 'TCP'; srcPort: number; dstPort: number; flags: number; seq?: number; ack?: number; window?: number }
    /** `noChecksum`: IPv4 only, the checksum field stays 0 ("none", RFC 768). */
    | { protocol: 'UDP'; srcPort: number; dstPort: number; noChecksum?: boolean }
    /** ICMP for IPv4, ICMPv6 for IPv6; `rest` is the 4 bytes after the checksum. */
    | { protocol: 'ICMP'; type: number; code: number; rest?: number };
  payload?: Buffer;
}

export interface DecodedL4 {
  protocol: 'TCP' | 'UDP' | 'ICMP';
  srcPort?: number;
  dstPort?: number;
  /** TCP */
  flags?: number;
  seq?: number;
  ack?: number;
  /** The checksum field as sent (0 on IPv4 UDP means none). */
  checksum: number;
  /** ICMP / ICMPv6 */
  type?: number;
  code?: number;
}

export interface DecodedIP {
  family: Family;
  src: string;
  dst: string;
  ttl: number;
  l4: DecodedL4;
  payload: Buffer;
  /** ICMP errors: the quoted packet (its IP header and the first bytes of its L4 header). */
  quoted?: { src: string; dst: string; protocol: number; srcPort: number; dstPort: number };
}

export interface DecodedFrame extends DecodedIP {
  srcMac: string;
  dstMac: string;
  /** Every checksum that does not verify, e.g. 'ipv4 header', 'tcp'; empty when all do. */
  checksumErrors: string[];
}

function addressBytes(text: string): { family: Family; bytes: Buffer } {
  const ip = parseIP(text);
  if (ip === undefined) throw new Error(`not an IP address: ${text}`);
  const bytes = Buffer.alloc(ip.family === 4 ? 4 : 16);
  let v = ip.value;
  for (let i = bytes.length - 1; i >= 0; i--, v >>= 8n) bytes[i] = Number(v & 0xffn);
  return { family: ip.family, bytes };
}

function formatAddress(b: Buffer): string {
  let value = 0n;
  for (const byte of b) value = (value << 8n) | BigInt(byte);
  return formatIP({ family: b.length === 4 ? 4 : 6, value });
}

const macBytes = (mac: string): Buffer => Buffer.from(mac.replace(/:/g, ''), 'hex');
const formatMac = (b: Buffer): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');

/** The Internet checksum (RFC 1071) of the buffers taken as one byte string. */
export function internetChecksum(...parts: Buffer[]): number {
  const all = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i + 1 < all.length; i += 2) sum += all.readUInt16BE(i);
  if (all.length % 2) sum += all[all.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** The pseudo header TCP, UDP and ICMPv6 checksums cover (RFC 9293 3.1, RFC 8200 8.1). */
function pseudoHeader(src: Buffer, dst: Buffer, protocol: number, length: number): Buffer {
  if (src.length === 4) {
    const h = Buffer.alloc(12);
    src.copy(h, 0);
    dst.copy(h, 4);
    h[9] = protocol;
    h.writeUInt16BE(length, 10);
    return h;
  }
  const h = Buffer.alloc(40);
  src.copy(h, 0);
  dst.copy(h, 16);
  h.writeUInt32BE(length, 32);
  h[39] = protocol;
  return h;
}

function buildL4(spec: PacketSpec, family: Family, src: Buffer, dst: Buffer): { protocol: number; segment: Buffer } {
  const payload = spec.payload ?? Buffer.alloc(0);
  const l4 = spec.l4;
  switch (l4.protocol) {
    case 'TCP': {
      const h = Buffer.alloc(20);
      h.writeUInt16BE(l4.srcPort, 0);
      h.writeUInt16BE(l4.dstPort, 2);
      h.writeUInt32BE((l4.seq ?? 0) >>> 0, 4);
      h.writeUInt32BE((l4.ack ?? 0) >>> 0, 8);
      h[12] = 5 << 4;
      h[13] = l4.flags;
      h.writeUInt16BE(l4.window ?? 65535, 14);
      const segment = Buffer.concat([h, payload]);
      segment.writeUInt16BE(internetChecksum(pseudoHeader(src, dst, PROTO.TCP, segment.length), segment), 16);
      return { protocol: PROTO.TCP, segment };
    }
    case 'UDP': {
      const h = Buffer.alloc(8);
      h.writeUInt16BE(l4.srcPort, 0);
      h.writeUInt16BE(l4.dstPort, 2);
      h.writeUInt16BE(8 + payload.length, 4);
      const segment = Buffer.concat([h, payload]);
      if (l4.noChecksum && family === 6) throw new Error('IPv6 UDP needs a checksum (RFC 8200 8.1)');
      // A computed 0 is sent as 0xffff: 0 means "no checksum" (RFC 768).
      if (!l4.noChecksum) segment.writeUInt16BE(internetChecksum(pseudoHeader(src, dst, PROTO.UDP, segment.length), segment) || 0xffff, 6);
      return { protocol: PROTO.UDP, segment };
    }
    case 'ICMP': {
      const h = Buffer.alloc(8);
      h[0] = l4.type;
      h[1] = l4.code;
      h.writeUInt32BE((l4.rest ?? 0) >>> 0, 4);
      const segment = Buffer.concat([h, payload]);
      const protocol = family === 4 ? PROTO.ICMP : PROTO.ICMPV6;
      const pseudo = family === 4 ? Buffer.alloc(0) : pseudoHeader(src, dst, protocol, segment.length);
      segment.writeUInt16BE(internetChecksum(pseudo, segment), 2);
      return { protocol, segment };
    }
  }
}

/** The IP packet (no Ethernet header) the spec describes, every checksum correct. */
export function buildIPPacket(spec: PacketSpec): Buffer {
  const src = addressBytes(spec.src);
  const dst = addressBytes(spec.dst);
  if (src.family !== dst.family) throw new Error(`${spec.src} and ${spec.dst} are not of one family`);
  const { protocol, segment } = buildL4(spec, src.family, src.bytes, dst.bytes);
  const ttl = spec.ttl ?? 64;
  if (src.family === 4) {
    const h = Buffer.alloc(20);
    h[0] = 0x45;
    h.writeUInt16BE(20 + segment.length, 2);
    h.writeUInt16BE(0x4000, 6); // DF
    h[8] = ttl;
    h[9] = protocol;
    src.bytes.copy(h, 12);
    dst.bytes.copy(h, 16);
    h.writeUInt16BE(internetChecksum(h), 10);
    return Buffer.concat([h, segment]);
  }
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(segment.length, 4);
  h[6] = protocol;
  h[7] = ttl;
  src.bytes.copy(h, 8);
  dst.bytes.copy(h, 24);
  return Buffer.concat([h, segment]);
}

/** An Ethernet frame around buildIPPacket(spec). */
export function buildFrame(spec: PacketSpec): Buffer {
  const family = addressBytes(spec.src).family;
  const eth = Buffer.alloc(ETH_LEN);
  macBytes(spec.dstMac ?? '02:00:00:00:00:02').copy(eth, 0);
  macBytes(spec.srcMac ?? '02:00:00:00:00:01').copy(eth, 6);
  eth.writeUInt16BE(ETHERTYPE[family], 12);
  return Buffer.concat([eth, buildIPPacket(spec)]);
}

/** Decodes an IP packet; checksum failures are appended to `errors`. Throws on truncated or unknown input. */
export function decodeIPPacket(packet: Buffer, errors: string[] = []): DecodedIP {
  const need = (n: number, what: string) => {
    if (packet.length < n) throw new Error(`truncated ${what}: ${packet.length} bytes, need ${n}`);
  };
  need(1, 'IP header');
  const version = packet[0]! >> 4;
  let family: Family;
  let headerLength: number;
  let totalLength: number;
  let protocol: number;
  let ttl: number;
  if (version === 4) {
    need(20, 'IPv4 header');
    family = 4;
    headerLength = (packet[0]! & 0xf) * 4;
    need(headerLength, 'IPv4 header');
    totalLength = packet.readUInt16BE(2);
    ttl = packet[8]!;
    protocol = packet[9]!;
    if (internetChecksum(packet.subarray(0, headerLength)) !== 0) errors.push('ipv4 header');
  } else if (version === 6) {
    need(40, 'IPv6 header');
    family = 6;
    headerLength = 40;
    totalLength = 40 + packet.readUInt16BE(4);
    protocol = packet[6]!;
    ttl = packet[7]!;
  } else throw new Error(`IP version ${version}`);
  need(totalLength, 'IP packet');
  const srcBytes = family === 4 ? packet.subarray(12, 16) : packet.subarray(8, 24);
  const dstBytes = family === 4 ? packet.subarray(16, 20) : packet.subarray(24, 40);
  const segment = packet.subarray(headerLength, totalLength);
  const verify = (name: string, withPseudo: boolean) => {
    const pseudo = withPseudo ? pseudoHeader(srcBytes, dstBytes, protocol, segment.length) : Buffer.alloc(0);
    if (internetChecksum(pseudo, segment) !== 0) errors.push(name);
  };
  const base = { family, src: formatAddress(srcBytes), dst: formatAddress(dstBytes), ttl };
  if (protocol === PROTO.TCP) {
    need(headerLength + 20, 'TCP header');
    verify('tcp', true);
    const offset = (segment[12]! >> 4) * 4;
    return {
      ...base,
      l4: { protocol: 'TCP', srcPort: segment.readUInt16BE(0), dstPort: segment.readUInt16BE(2), seq: segment.readUInt32BE(4), ack: segment.readUInt32BE(8), flags: segment[13]!, checksum: segment.readUInt16BE(16) },
      payload: segment.subarray(offset),
    };
  }
  if (protocol === PROTO.UDP) {
    need(headerLength + 8, 'UDP header');
    const checksum = segment.readUInt16BE(6);
    if (family === 6 && checksum === 0) errors.push('udp (zero on IPv6)');
    else if (checksum !== 0) verify('udp', true);
    return { ...base, l4: { protocol: 'UDP', srcPort: segment.readUInt16BE(0), dstPort: segment.readUInt16BE(2), checksum }, payload: segment.subarray(8) };
  }
  if (protocol === (family === 4 ? PROTO.ICMP : PROTO.ICMPV6)) {
    need(headerLength + 8, 'ICMP header');
    verify(family === 4 ? 'icmp' : 'icmpv6', family === 6);
    const body = segment.subarray(8);
    return { ...base, l4: { protocol: 'ICMP', type: segment[0]!, code: segment[1]!, checksum: segment.readUInt16BE(2) }, payload: body, ...quotedOf(family, segment[0]!, body, errors) };
  }
  throw new Error(`IP protocol ${protocol}`);
}

/** ICMP error types that quote the offending packet (RFC 792, RFC 4443 section 3). */
const quotingTypes = { 4: [3, 11, 12], 6: [1, 2, 3, 4] } as const;

/** The packet an ICMP error quotes; its IPv4 header checksum is verified too. */
function quotedOf(family: Family, type: number, body: Buffer, errors: string[]): Pick<DecodedIP, 'quoted'> {
  if (!(quotingTypes[family] as readonly number[]).includes(type)) return {};
  const headerLength = family === 4 ? (body[0]! & 0xf) * 4 : 40;
  if (body.length < headerLength + 4) return {};
  if (family === 4 && internetChecksum(body.subarray(0, headerLength)) !== 0) errors.push('quoted ipv4 header');
  const [src, dst] = family === 4 ? [body.subarray(12, 16), body.subarray(16, 20)] : [body.subarray(8, 24), body.subarray(24, 40)];
  const l4 = body.subarray(headerLength);
  return {
    quoted: { src: formatAddress(src), dst: formatAddress(dst), protocol: body[family === 4 ? 9 : 6]!, srcPort: l4.readUInt16BE(0), dstPort: l4.readUInt16BE(2) },
  };
}

/** Decodes an Ethernet frame with an IPv4 or IPv6 packet, recomputing every checksum. */
export function decodeFrame(frame: Buffer): DecodedFrame {
  if (frame.length < ETH_LEN) throw new Error(`truncated Ethernet header: ${frame.length} bytes`);
  const type = frame.readUInt16BE(12);
  if (type !== ETHERTYPE[4] && type !== ETHERTYPE[6]) throw new Error(`ethertype 0x${type.toString(16)}`);
  const checksumErrors: string[] = [];
  const ip = decodeIPPacket(frame.subarray(ETH_LEN), checksumErrors);
  if (ip.family !== (type === ETHERTYPE[4] ? 4 : 6)) throw new Error(`ethertype 0x${type.toString(16)} carries IPv${ip.family}`);
  return { dstMac: formatMac(frame.subarray(0, 6)), srcMac: formatMac(frame.subarray(6, 12)), ...ip, checksumErrors };
}
