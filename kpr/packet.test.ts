// The packet builder against checksums computed by hand (an independent implementation, not this
// file's), and the decoder finding every checksum that does not verify.
import { describe, expect, it } from 'vitest';
import { TCP_FLAGS, buildFrame, buildIPPacket, decodeFrame, decodeIPPacket, internetChecksum, type PacketSpec } from './packet.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/[\s|]/g, ''), 'hex');
const syn4: PacketSpec = { src: '198.18.0.1', dst: '198.18.0.2', l4: { protocol: 'TCP', srcPort: 40000, dstPort: 80, flags: TCP_FLAGS.SYN, seq: 1000 } };

describe('buildIPPacket', () => {
  it('IPv4 TCP SYN: header fields and both checksums', () => {
    expect(buildIPPacket(syn4)).toEqual(
      hex(`45 00 0028 0000 4000 40 06 aea8 c6120001 c6120002 | 9c40 0050 000003e8 00000000 50 02 ffff 8342 0000`),
    );
  });

  it('IPv6 UDP with a payload: pseudo header over 128-bit addresses', () => {
    const p = buildIPPacket({ src: '2001:db8::1', dst: '2001:db8::2', ttl: 7, l4: { protocol: 'UDP', srcPort: 5353, dstPort: 53 }, payload: Buffer.from('hi') });
    expect(p.subarray(0, 8)).toEqual(hex('60000000 000a 11 07'));
    expect(p.subarray(40)).toEqual(hex('14e9 0035 000a 26de 6869'));
  });

  it('IPv4 UDP without checksum keeps 0; IPv6 refuses it', () => {
    const p = buildIPPacket({ src: '198.18.0.1', dst: '198.18.0.2', l4: { protocol: 'UDP', srcPort: 1, dstPort: 2, noChecksum: true } });
    expect(p.readUInt16BE(26)).toBe(0);
    expect(decodeIPPacket(p)).toMatchObject({ l4: { checksum: 0 } });
    expect(() => buildIPPacket({ src: '2001:db8::1', dst: '2001:db8::2', l4: { protocol: 'UDP', srcPort: 1, dstPort: 2, noChecksum: true } })).toThrow('IPv6 UDP');
  });

  it('refuses mixed families and bad addresses', () => {
    expect(() => buildIPPacket({ ...syn4, dst: '2001:db8::2' })).toThrow('not of one family');
    expect(() => buildIPPacket({ ...syn4, src: 'nope' })).toThrow('not an IP address');
  });

  it('internetChecksum: RFC 1071 folding of carries and an odd trailing byte', () => {
    expect(internetChecksum(hex('ffff ffff'))).toBe(0);
    expect(internetChecksum(hex('0001 f203 f4f5 f6f7'))).toBe(~0xddf2 & 0xffff); // RFC 1071 section 3 example sum
    expect(internetChecksum(hex('01'))).toBe(~0x0100 & 0xffff);
  });
});

describe('decodeFrame', () => {
  const specs: PacketSpec[] = [
    syn4,
    { ...syn4, src: '2001:db8::1', dst: '2001:db8::2' },
    { src: '198.18.0.1', dst: '198.18.0.2', l4: { protocol: 'UDP', srcPort: 1000, dstPort: 53 }, payload: Buffer.from('query') },
    { src: '2001:db8::1', dst: '2001:db8::2', l4: { protocol: 'UDP', srcPort: 1000, dstPort: 53 }, payload: Buffer.from('query') },
    { src: '198.18.0.1', dst: '198.18.0.2', l4: { protocol: 'ICMP', type: 8, code: 0, rest: 0x00010002 }, payload: Buffer.from('ping') },
    { src: '2001:db8::1', dst: '2001:db8::2', l4: { protocol: 'ICMP', type: 128, code: 0 }, payload: Buffer.from('ping') },
  ];

  it('round-trips every family and protocol with valid checksums', () => {
    for (const spec of specs) {
      const d = decodeFrame(buildFrame({ ...spec, srcMac: '02:00:00:00:00:0a', dstMac: '02:00:00:00:00:0b' }));
      expect(d).toMatchObject({ src: spec.src, dst: spec.dst, srcMac: '02:00:00:00:00:0a', dstMac: '02:00:00:00:00:0b', ttl: 64, checksumErrors: [] });
      expect(d.l4.protocol).toBe(spec.l4.protocol);
      expect(d.payload).toEqual(spec.payload ?? Buffer.alloc(0));
    }
    const tcp = decodeFrame(buildFrame({ ...syn4, l4: { ...syn4.l4, flags: TCP_FLAGS.ACK | TCP_FLAGS.PSH, ack: 0xfffffffe } as PacketSpec['l4'] }));
    expect(tcp.l4).toMatchObject({ srcPort: 40000, dstPort: 80, seq: 1000, ack: 0xfffffffe, flags: 0x18 });
  });

  it('names each checksum that does not verify', () => {
    const frame = buildFrame(syn4);
    frame[14 + 8]! ^= 1; // TTL: only the IPv4 header checksum covers it
    expect(decodeFrame(frame).checksumErrors).toEqual(['ipv4 header']);
    const moved = buildFrame(syn4);
    moved[14 + 19]! ^= 1; // destination address: header and TCP pseudo header
    expect(decodeFrame(moved).checksumErrors).toEqual(['ipv4 header', 'tcp']);
    for (const spec of specs.slice(1)) {
      const f = buildFrame(spec);
      f[f.length - 1]! ^= 0x40;
      expect(decodeFrame(f).checksumErrors).toHaveLength(1);
    }
    const zero6 = buildFrame(specs[3]!);
    zero6.writeUInt16BE(0, 14 + 40 + 6);
    expect(decodeFrame(zero6).checksumErrors).toEqual(['udp (zero on IPv6)']);
  });

  it('shows the packet an ICMP destination unreachable quotes', () => {
    const quoted = buildIPPacket({ src: '198.18.0.1', dst: '198.18.0.9', l4: { protocol: 'UDP', srcPort: 4000, dstPort: 53 } });
    const error = decodeFrame(buildFrame({ src: '198.18.0.9', dst: '198.18.0.1', l4: { protocol: 'ICMP', type: 3, code: 3 }, payload: quoted.subarray(0, 28) }));
    expect(error).toMatchObject({ l4: { type: 3, code: 3 }, quoted: { src: '198.18.0.1', dst: '198.18.0.9', protocol: 17, srcPort: 4000, dstPort: 53 }, checksumErrors: [] });
    const quoted6 = buildIPPacket({ src: '2001:db8::1', dst: '2001:db8::9', l4: { protocol: 'UDP', srcPort: 4000, dstPort: 53 } });
    const error6 = decodeFrame(buildFrame({ src: '2001:db8::9', dst: '2001:db8::1', l4: { protocol: 'ICMP', type: 1, code: 4 }, payload: quoted6.subarray(0, 48) }));
    expect(error6).toMatchObject({ l4: { type: 1, code: 4 }, quoted: { src: '2001:db8::1', dst: '2001:db8::9', protocol: 17, srcPort: 4000, dstPort: 53 }, checksumErrors: [] });
    const bad = Buffer.from(quoted.subarray(0, 28));
    bad[8]! ^= 1; // the quoted TTL, under the quoted header's checksum only
    expect(decodeFrame(buildFrame({ src: '198.18.0.9', dst: '198.18.0.1', l4: { protocol: 'ICMP', type: 11, code: 0 }, payload: bad })).checksumErrors).toEqual(['quoted ipv4 header']);
  });

  it('throws on truncated or foreign frames', () => {
    const frame = buildFrame(syn4);
    expect(() => decodeFrame(frame.subarray(0, 10))).toThrow('truncated Ethernet');
    expect(() => decodeFrame(frame.subarray(0, 40))).toThrow('truncated');
    const arp = Buffer.from(frame);
    arp.writeUInt16BE(0x0806, 12);
    expect(() => decodeFrame(arp)).toThrow('ethertype 0x806');
  });
});
