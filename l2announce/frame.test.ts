import { describe, expect, it } from 'vitest';
import { parseIP, type IP } from '../api/index.js';
import { buildGratuitousARP } from './arp.js';
import { describeDrop, DropCounter, dropKind, dropReasons, isDropReason, type DropReason } from './drop.js';
import { encodeEthernet, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from './ethernet.js';
import { decodeFrame } from './frame.js';
import { encodeIPv6, icmpv6Checksum } from './ipv6.js';
import { parseMAC } from './mac.js';
import { buildUnsolicitedNA } from './ndp.js';

const hex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
const ip = (text: string): IP => parseIP(text)!;
const mac1 = parseMAC('02:00:00:00:00:01')!;
const A10 = '20010db8000000000000000000000010';

const ETH = 'ffffffffffff 020000000001';
const ARP_OK = '0001 0800 06 04 0001 020000000001 c6120001 000000000000 c612000a';
const IPV6_SRC = '20010db8000000000000000000000001';
const IPV6_DST = 'ff0200000000000000000001ff000010';

/** An Ethernet + IPv6 frame around hand-written ICMPv6 hex, checksum filled in unless given. */
function icmp(message: string, options: { src?: string; dst?: string; hopLimit?: number; checksum?: number } = {}): Uint8Array {
  const src = ip(options.src ?? '2001:db8::1');
  const dst = ip(options.dst ?? 'ff02::1:ff00:10');
  const bytes = hex(message);
  if (bytes.length >= 4) {
    const sum = options.checksum ?? icmpv6Checksum(src, dst, bytes);
    bytes.set([sum >>> 8, sum & 0xff], 2);
  }
  const packet = encodeIPv6({ nextHeader: 58, hopLimit: options.hopLimit ?? 255, src, dst }, bytes);
  return encodeEthernet({ src: mac1, dst: parseMAC('33:33:ff:00:00:10')!, ethertype: ETHERTYPE_IPV6 }, packet);
}
const NS = (rest = '', code = '00', target = A10) => `87 ${code} 0000 00000000 ${target} ${rest}`;

/** One crafted frame per reason; the Record type makes a new reason without a frame a compile error. */
const craftedFrames: Record<DropReason, Uint8Array> = {
  truncated_ethernet: hex('ffffffffffff 0200000000'),
  truncated_vlan: hex(`${ETH} 8100 0064`),
  vlan_reserved_vid: hex(`${ETH} 8100 0fff 0806 ${ARP_OK}`),
  unsupported_ethertype: encodeEthernet({ src: mac1, dst: mac1, ethertype: ETHERTYPE_IPV4 }, new Uint8Array(20)),
  truncated_arp: hex(`${ETH} 0806 ${ARP_OK.replace(/\s+/g, '').slice(0, 40)}`),
  arp_bad_hardware_type: hex(`${ETH} 0806 0006 ${ARP_OK.slice(5)}`),
  arp_bad_protocol_type: hex(`${ETH} 0806 0001 86dd ${ARP_OK.slice(10)}`),
  arp_bad_lengths: hex(`${ETH} 0806 0001 0800 06 10 0001`),
  arp_bad_opcode: hex(`${ETH} 0806 0001 0800 06 04 0003 ${ARP_OK.slice(20)}`),
  truncated_ipv6: hex(`${ETH} 86dd 60000000 0000 3a ff`),
  ipv6_bad_version: hex(`${ETH} 86dd 40000000 0000 3a ff ${IPV6_SRC} ${IPV6_DST}`),
  ipv6_bad_payload_length: hex(`${ETH} 86dd 60000000 0100 3a ff ${IPV6_SRC} ${IPV6_DST} 87000000`),
  ipv6_multicast_source: hex(`${ETH} 86dd 60000000 0000 3a ff ${IPV6_DST} ${IPV6_DST}`),
  ipv6_bad_extension_header: hex(`${ETH} 86dd 60000000 0008 00 ff ${IPV6_SRC} ${IPV6_DST} 3a05000000000000`),
  ipv6_fragment: hex(`${ETH} 86dd 60000000 0008 2c ff ${IPV6_SRC} ${IPV6_DST} 3a00000100000001`),
  ipv6_not_icmpv6: hex(`${ETH} 86dd 60000000 0008 11 40 ${IPV6_SRC} ${IPV6_DST} 0000000000080000`),
  truncated_icmpv6: hex(`${ETH} 86dd 60000000 0002 3a ff ${IPV6_SRC} ${IPV6_DST} 8700`),
  icmpv6_other_type: icmp('80 00 0000 00010001', { dst: '2001:db8::2' }), // echo request
  icmpv6_bad_checksum: icmp(NS(), { checksum: 0xbeef }),
  ndp_hop_limit_not_255: icmp(NS(), { hopLimit: 1 }),
  ndp_too_short: icmp('87 00 0000 00000000 20010db8'),
  ndp_bad_code: icmp(NS('', '07')),
  ndp_target_multicast: icmp(NS('', '00', IPV6_DST)),
  ndp_bad_option_length: icmp(NS('0100 020000000001')),
  ndp_truncated_option: icmp(NS('0101 0200000000')),
  ndp_bad_link_layer_option: icmp(NS('0102 020000000001 0000000000000000')),
  ndp_dad_not_to_solicited_node: icmp(NS(), { src: '::', dst: 'ff02::2' }),
  ndp_dad_with_source_link_layer: icmp(NS('0101 020000000001'), { src: '::' }),
  ndp_solicited_to_multicast: icmp(`88 00 0000 40000000 ${A10}`, { src: '2001:db8::10', dst: 'ff02::1' }),
};

describe('decodeFrame', () => {
  it('classifies ARP, NS and NA', () => {
    const arp = decodeFrame(buildGratuitousARP(mac1, ip('198.18.0.20'), 'request'));
    expect(arp.ok && arp.frame.kind).toBe('arp');
    const ns = decodeFrame(icmp(NS('0101 020000000001')));
    expect(ns.ok && ns.frame.kind).toBe('ns');
    const na = decodeFrame(buildUnsolicitedNA(mac1, ip('2001:db8::10')));
    expect(na.ok && na.frame.kind).toBe('na');
  });

  it.each(dropReasons.map((reason) => [reason, dropKind(reason)] as const))('%s (%s) from a crafted frame', (reason, kind) => {
    const result = decodeFrame(craftedFrames[reason]);
    if (kind === 'not_ours') {
      expect(result.ok).toBe(true);
      if (result.ok) expect(result.frame).toMatchObject({ kind: 'other', reason });
    } else {
      expect(result).toEqual({ ok: false, reason });
    }
  });

  it('reports the same reasons for tagged frames', () => {
    for (const reason of dropReasons) {
      const frame = craftedFrames[reason];
      if (frame.length < 14 || reason === 'truncated_vlan' || reason === 'vlan_reserved_vid') continue;
      const tagged = new Uint8Array(frame.length + 4);
      tagged.set(frame.subarray(0, 12));
      tagged.set([0x81, 0x00, 0x20, 0x0a], 12); // PCP 1, VID 10
      tagged.set(frame.subarray(12), 16);
      const result = decodeFrame(tagged);
      const got = result.ok ? (result.frame.kind === 'other' ? result.frame.reason : result.frame.kind) : result.reason;
      expect(got, reason).toBe(reason);
      if (result.ok) expect(result.frame.ethernet.vlan).toEqual({ pcp: 1, dei: false, vid: 10 });
    }
  });

  it('treats 802.3 length frames and stacked tags as other EtherTypes', () => {
    for (const ethertype of [0x002e, 0x88a8]) {
      const result = decodeFrame(encodeEthernet({ src: mac1, dst: mac1, ethertype }, new Uint8Array(46)));
      expect(result.ok && result.frame.kind === 'other' && result.frame.reason).toBe('unsupported_ethertype');
    }
    const stacked = decodeFrame(encodeEthernet({ src: mac1, dst: mac1, vlan: { pcp: 0, dei: false, vid: 1 }, ethertype: 0x8100 }, hex('0002 0806')));
    expect(stacked.ok && stacked.frame.kind === 'other' && stacked.frame.reason).toBe('unsupported_ethertype');
  });

  it('an ARP frame with a bad payload is a drop, not "other"', () => {
    expect(decodeFrame(hex(`${ETH} 0806 0001`))).toEqual({ ok: false, reason: 'truncated_arp' });
    // Padded to 60 octets, the same stub reads as protocol type 0.
    expect(decodeFrame(encodeEthernet({ src: mac1, dst: mac1, ethertype: ETHERTYPE_ARP }, hex('0001')))).toEqual({ ok: false, reason: 'arp_bad_protocol_type' });
  });
});

describe('drop reasons and DropCounter', () => {
  it('describes and classifies every reason', () => {
    for (const reason of dropReasons) {
      expect(describeDrop(reason).length, reason).toBeGreaterThan(10);
      expect(['malformed', 'not_ours']).toContain(dropKind(reason));
      expect(isDropReason(reason)).toBe(true);
    }
    expect(isDropReason('toString')).toBe(false);
    expect(isDropReason(undefined)).toBe(false);
  });

  it('counts drops and ignored frames, and passes on the frames to answer', () => {
    const counter = new DropCounter();
    expect(counter.observe(decodeFrame(craftedFrames.icmpv6_bad_checksum))).toBeUndefined();
    expect(counter.observe(decodeFrame(craftedFrames.icmpv6_bad_checksum))).toBeUndefined();
    expect(counter.observe(decodeFrame(craftedFrames.unsupported_ethertype))).toBeUndefined();
    expect(counter.observe(decodeFrame(buildUnsolicitedNA(mac1, ip('2001:db8::10'))))?.kind).toBe('na');
    counter.count('truncated_arp', 3);
    expect(counter.get('icmpv6_bad_checksum')).toBe(2);
    expect(counter.total()).toBe(6);
    expect(counter.total('malformed')).toBe(5);
    expect(counter.total('not_ours')).toBe(1);
    const snapshot = counter.snapshot();
    expect(Object.keys(snapshot)).toEqual([...dropReasons]);
    expect(snapshot.ndp_bad_code).toBe(0);
    snapshot.ndp_bad_code = 9; // a copy
    expect(counter.get('ndp_bad_code')).toBe(0);
    counter.reset();
    expect(counter.total()).toBe(0);
  });
});
