import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatIP, parseIP, type IP } from '../api/index.js';
import { encodeEthernet, ETHERTYPE_IPV6 } from './ethernet.js';
import { decodeFrame, type Frame } from './frame.js';
import { decodeIPv6, encodeIPv6, icmpv6Checksum, solicitedNodeMulticast, UNSPECIFIED_IPV6 } from './ipv6.js';
import { formatMAC, parseMAC } from './mac.js';
import {
  buildNAReply,
  buildUnsolicitedNA,
  decodeNeighborAdvertisement,
  decodeNeighborSolicitation,
  encodeNDPFrame,
  encodeNeighborAdvertisement,
  encodeNeighborSolicitation,
  type NAFrame,
  type NeighborAdvertisement,
  type NeighborSolicitation,
  type NSFrame,
} from './ndp.js';

const hex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const ip = (text: string): IP => parseIP(text)!;
const mac1 = parseMAC('02:00:00:00:00:01')!;

const A1 = '20010db8000000000000000000000001';
const A2 = '20010db8000000000000000000000002';
const A10 = '20010db8000000000000000000000010';
const ALL_NODES = 'ff020000000000000000000000000001';
const SOLICITED_10 = 'ff0200000000000000000001ff000010';

// Captured from Linux 6.x on a veth (02:00:00:00:00:02, 2001:db8::2/64): `ping -6 2001:db8::10`, then
// `ip addr add 2001:db8::10/64` (DAD, with the RFC 7527 nonce option, type 14). Checksums are the kernel's.
const kernelNS = `3333ff000010 020000000002 86dd 60000000 0020 3a ff ${A2} ${SOLICITED_10} 87 00 1c09 00000000 ${A10} 0101 020000000002`;
const kernelDAD = `3333ff000010 020000000002 86dd 60000000 0020 3a ff ${'00'.repeat(16)} ${SOLICITED_10} 87 00 1e3e 00000000 ${A10} 0e01 51ca06e8c7d5`;

function decoded(bytes: Uint8Array): Frame {
  const result = decodeFrame(bytes);
  if (!result.ok) throw new Error(`dropped: ${result.reason}`);
  return result.frame;
}
function nsFrame(bytes: Uint8Array): NSFrame {
  const frame = decoded(bytes);
  if (frame.kind !== 'ns') throw new Error(`not NS: ${frame.kind}`);
  return frame;
}
function naFrame(bytes: Uint8Array): NAFrame {
  const frame = decoded(bytes);
  if (frame.kind !== 'na') throw new Error(`not NA: ${frame.kind}`);
  return frame;
}

describe('Neighbor Solicitation golden bytes (RFC 4861 §4.3)', () => {
  // Hand-written; the checksum 0x1c0b comes from a separate Python implementation of RFC 4443 §2.3.
  const golden = `3333ff000010 020000000001 86dd 60000000 0020 3a ff ${A1} ${SOLICITED_10} 87 00 1c0b 00000000 ${A10} 01 01 020000000001`;

  it('encodes a solicitation for 2001:db8::10 from 2001:db8::1 with our source link-layer option', () => {
    const src = ip('2001:db8::1');
    const dst = solicitedNodeMulticast(ip('2001:db8::10'));
    const message = encodeNeighborSolicitation({ target: ip('2001:db8::10'), sourceLinkLayer: mac1 }, src, dst);
    const frame = encodeNDPFrame({ src: mac1, dst: parseMAC('33:33:ff:00:00:10')! }, src, dst, message);
    expect(toHex(frame)).toBe(golden.replace(/\s+/g, ''));
  });

  it('decodes it', () => {
    const { ns, ipv6, ethernet } = nsFrame(hex(golden));
    expect(formatIP(ns.target)).toBe('2001:db8::10');
    expect(formatMAC(ns.sourceLinkLayer!)).toBe('02:00:00:00:00:01');
    expect(formatIP(ipv6.src)).toBe('2001:db8::1');
    expect(ipv6.hopLimit).toBe(255);
    expect(formatMAC(ethernet.dst)).toBe('33:33:ff:00:00:10');
  });

  it('decodes a kernel-sent solicitation and re-encodes it to the same octets', () => {
    const frame = nsFrame(hex(kernelNS));
    expect(formatIP(frame.ns.target)).toBe('2001:db8::10');
    expect(formatMAC(frame.ns.sourceLinkLayer!)).toBe('02:00:00:00:00:02');
    const again = encodeNeighborSolicitation(frame.ns, frame.ipv6.src, frame.ipv6.dst);
    expect(toHex(again)).toBe(toHex(hex(kernelNS).subarray(54)));
  });

  it('decodes a kernel DAD probe: unspecified source, no link-layer option, unknown nonce option skipped', () => {
    const { ns, ipv6 } = nsFrame(hex(kernelDAD));
    expect(ipv6.src).toEqual(UNSPECIFIED_IPV6);
    expect(ns).toEqual({ target: ip('2001:db8::10') });
  });
});

describe('Neighbor Advertisement golden bytes (RFC 4861 §4.4)', () => {
  // Checksums 0xf90c and 0x8a55 come from a separate Python implementation of RFC 4443 §2.3.
  const unsolicited = `333300000001 020000000001 86dd 60000000 0020 3a ff ${A10} ${ALL_NODES} 88 00 f90c 20000000 ${A10} 02 01 020000000001`;

  it('builds an unsolicited advertisement: all-nodes, Override only, target link-layer option (§7.2.6)', () => {
    expect(toHex(buildUnsolicitedNA(mac1, ip('2001:db8::10')))).toBe(unsolicited.replace(/\s+/g, ''));
    const { na } = naFrame(hex(unsolicited));
    expect(na).toEqual({ router: false, solicited: false, override: true, target: ip('2001:db8::10'), targetLinkLayer: mac1 });
  });

  it('answers a solicitation unicast to the solicitor with Solicited and Override set (§7.2.4)', () => {
    const reply = buildNAReply(nsFrame(hex(kernelNS)), mac1);
    const expected = `020000000002 020000000001 86dd 60000000 0020 3a ff ${A10} ${A2} 88 00 8a55 60000000 ${A10} 02 01 020000000001`;
    expect(toHex(reply)).toBe(expected.replace(/\s+/g, ''));
  });

  it('answers a DAD probe to all-nodes with Solicited clear (§7.2.4)', () => {
    expect(toHex(buildNAReply(nsFrame(hex(kernelDAD)), mac1))).toBe(unsolicited.replace(/\s+/g, ''));
  });

  it('without a source link-layer option, answers to the frame\'s source MAC', () => {
    const src = ip('2001:db8::2');
    const dst = ip('2001:db8::10');
    const message = encodeNeighborSolicitation({ target: dst }, src, dst); // unicast NUD probe
    const frame = nsFrame(encodeNDPFrame({ src: parseMAC('02:00:00:00:00:02')!, dst: mac1 }, src, dst, message));
    const reply = naFrame(buildNAReply(frame, mac1));
    expect(formatMAC(reply.ethernet.dst)).toBe('02:00:00:00:00:02');
    expect(formatIP(reply.ipv6.dst)).toBe('2001:db8::2');
    expect(reply.na.solicited).toBe(true);
  });

  it('keeps the VLAN tag of the solicitation, and tags unsolicited advertisements on request', () => {
    const raw = hex(kernelNS);
    const tagged = new Uint8Array(raw.length + 4);
    tagged.set(raw.subarray(0, 12));
    tagged.set([0x81, 0x00, 0x00, 0x64], 12); // VID 100
    tagged.set(raw.subarray(12), 16);
    const reply = buildNAReply(nsFrame(tagged), mac1);
    expect(toHex(reply.subarray(12, 18))).toBe('8100006486dd');
    expect(naFrame(reply).ethernet.vlan).toEqual({ pcp: 0, dei: false, vid: 100 });
    const unsolicitedTagged = naFrame(buildUnsolicitedNA(mac1, ip('2001:db8::10'), { pcp: 6, dei: false, vid: 4094 }));
    expect(unsolicitedTagged.ethernet.vlan).toEqual({ pcp: 6, dei: false, vid: 4094 });
  });
});

describe('validity checks (RFC 4861 §7.1.1, §7.1.2)', () => {
  /** An ND frame from hand-written ICMPv6 hex; the checksum is filled in unless `checksum` is given. */
  function nd(src: string, dst: string, message: string, options: { hopLimit?: number; checksum?: number } = {}): Uint8Array {
    const bytes = hex(message);
    if (bytes.length >= 4) {
      bytes[2] = 0;
      bytes[3] = 0;
      const sum = options.checksum ?? icmpv6Checksum(ip(src), ip(dst), bytes);
      bytes.set([sum >>> 8, sum & 0xff], 2);
    }
    const packet = encodeIPv6({ nextHeader: 58, hopLimit: options.hopLimit ?? 255, src: ip(src), dst: ip(dst) }, bytes);
    return encodeEthernet({ src: mac1, dst: parseMAC('33:33:00:00:00:01')!, ethertype: ETHERTYPE_IPV6 }, packet);
  }
  const NS = (rest = '', code = '00') => `87 ${code} 0000 00000000 ${A10} ${rest}`;
  const NA = (flags: string, rest = '', target = A10) => `88 00 0000 ${flags}000000 ${target} ${rest}`;
  const dropOf = (bytes: Uint8Array) => {
    const result = decodeFrame(bytes);
    return result.ok ? `accepted as ${result.frame.kind}` : result.reason;
  };

  it.each([
    ['truncated_icmpv6', nd('2001:db8::1', 'ff02::1:ff00:10', '8700')],
    ['ndp_hop_limit_not_255', nd('2001:db8::1', 'ff02::1:ff00:10', NS(), { hopLimit: 64 })],
    ['ndp_too_short', nd('2001:db8::1', 'ff02::1:ff00:10', `87 00 0000 00000000 ${A10.slice(0, 24)}`)],
    ['icmpv6_bad_checksum', nd('2001:db8::1', 'ff02::1:ff00:10', NS(), { checksum: 0x1234 })],
    ['ndp_bad_code', nd('2001:db8::1', 'ff02::1:ff00:10', NS('', '01'))],
    ['ndp_target_multicast', nd('2001:db8::1', 'ff02::1:ff00:10', `87 00 0000 00000000 ${ALL_NODES}`)],
    ['ndp_bad_option_length', nd('2001:db8::1', 'ff02::1:ff00:10', NS('0e00 000000000000'))],
    ['ndp_truncated_option', nd('2001:db8::1', 'ff02::1:ff00:10', NS('0102 020000000001'))],
    ['ndp_truncated_option', nd('2001:db8::1', 'ff02::1:ff00:10', NS('0101 020000000001 01'))],
    ['ndp_bad_link_layer_option', nd('2001:db8::1', 'ff02::1:ff00:10', NS('0102 020000000001 0000000000000000'))],
    ['ndp_dad_not_to_solicited_node', nd('::', 'ff02::1', NS())],
    ['ndp_dad_not_to_solicited_node', nd('::', '2001:db8::10', NS())],
    ['ndp_dad_with_source_link_layer', nd('::', 'ff02::1:ff00:10', NS('0101 020000000001'))],
    ['ndp_solicited_to_multicast', nd('2001:db8::10', 'ff02::1', NA('60', '0201 020000000001'))],
    ['ndp_hop_limit_not_255', nd('2001:db8::10', 'ff02::1', NA('20'), { hopLimit: 254 })],
    ['ndp_target_multicast', nd('2001:db8::10', 'ff02::1', NA('20', '', SOLICITED_10))],
    ['ndp_bad_link_layer_option', nd('2001:db8::10', 'ff02::1', NA('20', '0202 020000000001 0000000000000000'))],
    ['icmpv6_bad_checksum', nd('2001:db8::10', 'ff02::1', NA('20'), { checksum: 0 })],
  ])('%s', (reason, bytes) => {
    expect(dropOf(bytes)).toBe(reason);
  });

  it('skips unknown options and the other link-layer option, and keeps the first of a repeated one', () => {
    const ns = nsFrame(nd('2001:db8::1', 'ff02::1:ff00:10', NS('0201 0a0000000000 0e01 112233445566 0101 020000000001 0101 020000000099')));
    expect(formatMAC(ns.ns.sourceLinkLayer!)).toBe('02:00:00:00:00:01');
    const na = naFrame(nd('2001:db8::10', '2001:db8::1', NA('e0', '0101 0a0000000000 0201 020000000001')));
    expect(na.na).toEqual({ router: true, solicited: true, override: true, target: ip('2001:db8::10'), targetLinkLayer: mac1 });
  });

  it('ignores the reserved bits of an advertisement (§4.4)', () => {
    const na = naFrame(nd('2001:db8::10', 'ff02::1', '88 00 0000 3fffffff ' + A10));
    expect(na.na).toEqual({ router: false, solicited: false, override: true, target: ip('2001:db8::10') });
  });

  it('accepts a solicited advertisement to a unicast address and an unsolicited one to multicast', () => {
    expect(naFrame(nd('2001:db8::10', '2001:db8::1', NA('40'))).na.solicited).toBe(true);
    expect(naFrame(nd('2001:db8::10', 'ff02::1', NA('00'))).na.solicited).toBe(false);
  });

  it('the message decoders refuse the wrong message type and protocol', () => {
    const packetOf = (bytes: Uint8Array) => {
      const result = decodeIPv6(bytes.subarray(14));
      if (!result.ok) throw new Error(result.reason);
      return result.frame;
    };
    const na = packetOf(nd('2001:db8::10', 'ff02::1', NA('20')));
    expect(decodeNeighborSolicitation(na)).toEqual({ ok: false, reason: 'icmpv6_other_type' });
    expect(decodeNeighborAdvertisement(packetOf(hex(kernelNS)))).toEqual({ ok: false, reason: 'icmpv6_other_type' });
    const udp = packetOf(encodeEthernet({ src: mac1, dst: mac1, ethertype: ETHERTYPE_IPV6 }, encodeIPv6({ nextHeader: 17, hopLimit: 255, src: ip('2001:db8::1'), dst: ip('2001:db8::2') }, new Uint8Array(8))));
    expect(decodeNeighborSolicitation(udp)).toEqual({ ok: false, reason: 'ipv6_not_icmpv6' });
  });
});

describe('NDP properties', () => {
  const host = fc.bigInt({ min: 1n, max: (1n << 96n) - 1n }).map((v): IP => ({ family: 6, value: (0x20010db8n << 96n) | v }));
  const mac = fc.uint8Array({ minLength: 6, maxLength: 6 });

  it('solicitations round-trip, DAD probes included', () => {
    fc.assert(
      fc.property(host, host, fc.option(mac, { nil: undefined }), fc.constantFrom('unicast', 'solicited', 'dad'), (target, from, sll, mode) => {
        const src = mode === 'dad' ? UNSPECIFIED_IPV6 : from;
        const dst = mode === 'unicast' ? target : solicitedNodeMulticast(target);
        const ns: NeighborSolicitation = mode === 'dad' || sll === undefined ? { target } : { target, sourceLinkLayer: sll };
        const frame = nsFrame(encodeNDPFrame({ src: mac1, dst: mac1 }, src, dst, encodeNeighborSolicitation(ns, src, dst)));
        expect(frame.ns).toEqual(ns);
        expect(frame.ipv6.src).toEqual(src);
      }),
    );
  });

  it('advertisements round-trip', () => {
    fc.assert(
      fc.property(host, host, fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean(), fc.option(mac, { nil: undefined }), (target, to, multicast, router, solicited, override, tll) => {
        const dst = multicast ? ip('ff02::1') : to;
        const base = { router, solicited: solicited && !multicast, override, target };
        const na: NeighborAdvertisement = tll === undefined ? base : { ...base, targetLinkLayer: tll };
        const frame = naFrame(encodeNDPFrame({ src: mac1, dst: mac1 }, target, dst, encodeNeighborAdvertisement(na, target, dst)));
        expect(frame.na).toEqual(na);
      }),
    );
  });

  it('builders refuse IPv4 addresses', () => {
    expect(() => buildUnsolicitedNA(mac1, ip('198.18.0.1'))).toThrow(RangeError);
  });
});
