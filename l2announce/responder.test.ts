import { describe, expect, it } from 'vitest';
import { formatIP, parseIP, type IP } from '../api/index.js';
import { encodeARP, type ARPPacket } from './arp.js';
import { encodeEthernet, ETHERTYPE_ARP, type VLANTag } from './ethernet.js';
import { decodeFrame, type Frame } from './frame.js';
import { fuzzCorpus } from './fuzz.js';
import { ALL_NODES_IPV6, ipv6MulticastMAC, solicitedNodeMulticast, UNSPECIFIED_IPV6 } from './ipv6.js';
import { broadcastMAC, formatMAC, parseMAC, zeroMAC, type MAC } from './mac.js';
import { encodeNDPFrame, encodeNeighborAdvertisement, encodeNeighborSolicitation } from './ndp.js';
import {
  buildAnnouncementTable,
  describeResponderDrop,
  GRATUITOUS_SCHEDULE_MS,
  gratuitousFrames,
  macsByInterface,
  respond,
  responderDropReasons,
  ResponderTable,
  type ResponderDecision,
} from './responder.js';

const ip = (text: string): IP => parseIP(text)!;
const mac = (text: string): MAC => parseMAC(text)!;
const ours0 = mac('02:00:00:00:00:a0');
const ours1 = mac('02:00:00:00:00:a1');
const client = mac('02:00:00:00:00:c1');
const VIP4 = ip('198.18.0.100');
const LAN2_VIP4 = ip('198.18.1.100');
const VIP6 = ip('2001:db8::100');
const CLIENT4 = ip('198.18.0.2');
const CLIENT6 = ip('2001:db8::2');

// eth0 answers VIP4 and VIP6; eth1 answers LAN2_VIP4 only.
const table = new ResponderTable(
  new Map([
    ['eth0', { mac: ours0, ips: [VIP4, VIP6] }],
    ['eth1', { mac: ours1, ips: [LAN2_VIP4] }],
  ]),
);

function arp(fields: Partial<ARPPacket> & { dst?: MAC; src?: MAC; vlan?: VLANTag } = {}): Uint8Array {
  const packet: ARPPacket = { op: 'request', senderMAC: fields.src ?? client, senderIP: CLIENT4, targetMAC: zeroMAC(), targetIP: VIP4, ...fields };
  return encodeEthernet({ dst: fields.dst ?? broadcastMAC(), src: fields.src ?? client, vlan: fields.vlan, ethertype: ETHERTYPE_ARP }, encodeARP(packet));
}

function ns(target: IP, opts: { src?: IP; srcMac?: MAC; withOption?: boolean } = {}): Uint8Array {
  const src = opts.src ?? CLIENT6;
  const dst = solicitedNodeMulticast(target);
  const srcMac = opts.srcMac ?? client;
  const message = encodeNeighborSolicitation(opts.withOption === false ? { target } : { target, sourceLinkLayer: srcMac }, src, dst);
  return encodeNDPFrame({ src: srcMac, dst: ipv6MulticastMAC(dst) }, src, dst, message);
}

function na(target: IP, from: MAC): Uint8Array {
  const message = encodeNeighborAdvertisement({ router: false, solicited: false, override: true, target, targetLinkLayer: from }, target, ALL_NODES_IPV6);
  return encodeNDPFrame({ src: from, dst: ipv6MulticastMAC(ALL_NODES_IPV6) }, target, ALL_NODES_IPV6, message);
}

/** The reply's decoded frame; fails the test when there is no reply. */
function reply(decision: ResponderDecision): Frame {
  if (!decision.answer) throw new Error(`no reply: ${decision.reason}`);
  const decoded = decodeFrame(decision.frame);
  if (!decoded.ok) throw new Error(`reply does not decode: ${decoded.reason}`);
  return decoded.frame;
}
const reason = (decision: ResponderDecision) => (decision.answer ? 'answered' : decision.reason);

describe('respond: ARP (RFC 826)', () => {
  it('answers a request for an address announced on that interface, unicast to the requester, with the interface MAC', () => {
    const decision = respond(table, 'eth0', arp());
    expect(decision).toMatchObject({ answer: true, protocol: 'arp', ip: VIP4 });
    const frame = reply(decision);
    if (frame.kind !== 'arp') throw new Error('not ARP');
    expect(formatMAC(frame.ethernet.dst)).toBe(formatMAC(client));
    expect(formatMAC(frame.ethernet.src)).toBe(formatMAC(ours0));
    expect(frame.arp).toMatchObject({ op: 'reply', senderIP: VIP4, targetIP: CLIENT4 });
    expect(formatMAC(frame.arp.senderMAC)).toBe(formatMAC(ours0));
    // The other interface answers its own address with its own MAC.
    const lan2 = reply(respond(table, 'eth1', arp({ targetIP: LAN2_VIP4 })));
    expect(formatMAC(lan2.ethernet.src)).toBe(formatMAC(ours1));
  });

  it('answers only on the interfaces the table lists for the address', () => {
    expect(reason(respond(table, 'eth1', arp()))).toBe('target_not_announced');
    expect(reason(respond(table, 'eth0', arp({ targetIP: LAN2_VIP4 })))).toBe('target_not_announced');
    expect(reason(respond(table, 'eth2', arp()))).toBe('interface_not_announced');
    expect(reason(respond(table, 'eth0', arp({ targetIP: ip('198.18.0.101') })))).toBe('target_not_announced');
  });

  it('answers a request unicast to its MAC (a neighbour re-checking its cache) but not one for another host', () => {
    expect(reason(respond(table, 'eth0', arp({ dst: ours0 })))).toBe('answered');
    expect(reason(respond(table, 'eth0', arp({ dst: mac('02:00:00:00:00:99') })))).toBe('other_host');
  });

  it('defends an announced address against an RFC 5227 probe: the reply goes to the prober, target IP 0.0.0.0', () => {
    const frame = reply(respond(table, 'eth0', arp({ senderIP: ip('0.0.0.0') })));
    if (frame.kind !== 'arp') throw new Error('not ARP');
    expect(formatIP(frame.arp.targetIP)).toBe('0.0.0.0');
    expect(formatMAC(frame.ethernet.dst)).toBe(formatMAC(client));
  });

  it('reports another MAC claiming an announced address as a conflict, and ignores replies', () => {
    // A gratuitous ARP from another host for our address.
    expect(reason(respond(table, 'eth0', arp({ senderIP: VIP4 })))).toBe('address_conflict');
    expect(reason(respond(table, 'eth0', arp({ op: 'reply', senderIP: VIP4 })))).toBe('address_conflict');
    expect(reason(respond(table, 'eth0', arp({ op: 'reply', targetMAC: ours0 })))).toBe('not_a_request');
  });

  it('ignores its own frames, also those of its other interfaces on the same LAN', () => {
    expect(reason(respond(table, 'eth0', arp({ src: ours0 })))).toBe('own_frame');
    expect(reason(respond(table, 'eth0', arp({ src: ours1, senderIP: VIP4 })))).toBe('own_frame');
  });

  it('leaves 802.1Q-tagged frames to the VLAN sub-interface', () => {
    expect(reason(respond(table, 'eth0', arp({ vlan: { pcp: 0, dei: false, vid: 100 } })))).toBe('vlan_tagged');
  });

  it('passes on the decoder reason for a malformed frame', () => {
    const bad = arp();
    bad[14 + 1] = 6; // hardware type 6
    expect(reason(respond(table, 'eth0', bad))).toBe('arp_bad_hardware_type');
    expect(reason(respond(table, 'eth0', bad.subarray(0, 10)))).toBe('truncated_ethernet');
  });
});

describe('respond: Neighbor Discovery (RFC 4861)', () => {
  it('answers a solicitation for an announced address with a solicited NA to the solicitor', () => {
    const decision = respond(table, 'eth0', ns(VIP6));
    expect(decision).toMatchObject({ answer: true, protocol: 'ndp', ip: VIP6 });
    const frame = reply(decision);
    if (frame.kind !== 'na') throw new Error('not NA');
    expect(frame.na).toMatchObject({ solicited: true, override: true, router: false, target: VIP6 });
    expect(formatMAC(frame.na.targetLinkLayer!)).toBe(formatMAC(ours0));
    expect(formatIP(frame.ipv6.dst)).toBe(formatIP(CLIENT6));
    expect(formatMAC(frame.ethernet.dst)).toBe(formatMAC(client));
  });

  it('answers a duplicate address detection probe for an announced address to all-nodes (RFC 4862 §5.4.3)', () => {
    const frame = reply(respond(table, 'eth0', ns(VIP6, { src: UNSPECIFIED_IPV6, withOption: false })));
    if (frame.kind !== 'na') throw new Error('not NA');
    expect(frame.na.solicited).toBe(false);
    expect(formatIP(frame.ipv6.dst)).toBe('ff02::1');
  });

  it('does not answer for other targets, on other interfaces, or advertisements', () => {
    expect(reason(respond(table, 'eth0', ns(ip('2001:db8::101'))))).toBe('target_not_announced');
    expect(reason(respond(table, 'eth1', ns(VIP6)))).toBe('target_not_announced');
    expect(reason(respond(table, 'eth0', na(VIP6, client)))).toBe('address_conflict');
    expect(reason(respond(table, 'eth0', na(ip('2001:db8::7'), client)))).toBe('not_a_request');
  });

  it('passes on the decoder reason for a bad checksum or hop limit', () => {
    const bad = ns(VIP6);
    bad[14 + 40 + 2]! ^= 0xff;
    expect(reason(respond(table, 'eth0', bad))).toBe('icmpv6_bad_checksum');
    const forwarded = ns(VIP6);
    forwarded[14 + 7] = 64;
    expect(reason(respond(table, 'eth0', forwarded))).toBe('ndp_hop_limit_not_255');
  });
});

describe('respond on any input', () => {
  it('never throws, gives a catalogued reason or a reply from the interface MAC to an announced address', () => {
    // The fuzzer's corpus, plus our own requests with one to three octets changed (seeded).
    let seed = 7;
    const next = (n: number) => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31), seed % n);
    const mutated = Array.from({ length: 4_000 }, (_, i) => {
      const bytes = (i % 2 === 0 ? arp() : ns(VIP6)).slice();
      for (let k = 1 + next(3); k > 0; k--) bytes[next(bytes.length)] = next(256);
      return bytes;
    });
    const corpus = [...fuzzCorpus(5_000, 42).map((c) => c.bytes), ...mutated];
    const announced = new Set([VIP4, VIP6].map(formatIP));
    const wrong: string[] = [];
    let answered = 0;
    for (const bytes of corpus) {
      const decision = respond(table, 'eth0', bytes);
      if (!decision.answer) {
        if (!responderDropReasons.includes(decision.reason)) wrong.push(`unknown reason ${decision.reason}`);
        continue;
      }
      answered++;
      const frame = reply(decision);
      if (!announced.has(formatIP(decision.ip)) || formatMAC(frame.ethernet.src) !== formatMAC(ours0)) wrong.push(Buffer.from(bytes).toString('hex'));
    }
    expect(wrong).toEqual([]);
    expect(answered).toBeGreaterThan(0);
  });

  it('describes every reason', () => {
    for (const r of responderDropReasons) expect(describeResponderDrop(r)).not.toBe('');
    expect(new Set(responderDropReasons).size).toBe(responderDropReasons.length);
  });
});

describe('buildAnnouncementTable', () => {
  const macs = macsByInterface([
    { name: 'eth0', mac: '02:00:00:00:00:a0' },
    { name: 'eth1', mac: '02:00:00:00:00:a1' },
    { name: 'tun0', mac: '' },
  ]);

  it('groups addresses per interface, one pair per (interface, address), and reports what it cannot use', () => {
    const built = buildAnnouncementTable(
      [
        { ip: '198.18.0.100', interfaces: ['eth0', 'eth1'] },
        { ip: '2001:db8::100', interfaces: ['eth0', 'eth0'] },
        { ip: '198.18.0.100', interfaces: ['eth0'] },
        { ip: 'not-an-ip', interfaces: ['eth0'] },
        { ip: '198.18.0.101', interfaces: ['tun0', 'eth9'] },
      ],
      macs,
    );
    expect([...built.table.keys()]).toEqual(['eth0', 'eth1']);
    expect(built.table.get('eth0')!.ips.map(formatIP)).toEqual(['198.18.0.100', '2001:db8::100']);
    expect(built.table.get('eth1')!.ips.map(formatIP)).toEqual(['198.18.0.100']);
    expect(built.pairs.map((p) => `${p.ifname} ${formatIP(p.ip)}`)).toEqual(['eth0 198.18.0.100', 'eth1 198.18.0.100', 'eth0 2001:db8::100']);
    expect(built.problems).toEqual([
      '"not-an-ip" is not an IP address',
      '198.18.0.101: interface tun0 is not available',
      '198.18.0.101: interface eth9 is not available',
    ]);
  });

  it('gives a pair a new key when its interface MAC changes, so it is announced again', () => {
    const before = buildAnnouncementTable([{ ip: '198.18.0.100', interfaces: ['eth0'] }], macs).pairs[0]!.key;
    const after = buildAnnouncementTable([{ ip: '198.18.0.100', interfaces: ['eth0'] }], new Map([['eth0', mac('02:00:00:00:00:b0')]])).pairs[0]!.key;
    expect(after).not.toBe(before);
  });
});

describe('gratuitous announcements', () => {
  it('IPv4: an ARP Announcement and a gratuitous reply, broadcast, sender and target IP the address', () => {
    const frames = gratuitousFrames(ours0, VIP4).map((f) => decodeFrame(f));
    expect(frames.map((f) => (f.ok && f.frame.kind === 'arp' ? f.frame.arp.op : 'bad'))).toEqual(['request', 'reply']);
    for (const f of frames) {
      if (!f.ok || f.frame.kind !== 'arp') throw new Error('not ARP');
      expect(formatMAC(f.frame.ethernet.dst)).toBe('ff:ff:ff:ff:ff:ff');
      expect(formatIP(f.frame.arp.senderIP)).toBe('198.18.0.100');
      expect(formatIP(f.frame.arp.targetIP)).toBe('198.18.0.100');
      expect(formatMAC(f.frame.arp.senderMAC)).toBe(formatMAC(ours0));
    }
  });

  it('IPv6: one unsolicited NA to all-nodes with Override set and the target link-layer address', () => {
    const [frame, ...rest] = gratuitousFrames(ours0, VIP6).map((f) => decodeFrame(f));
    expect(rest).toEqual([]);
    if (!frame?.ok || frame.frame.kind !== 'na') throw new Error('not NA');
    expect(frame.frame.na).toMatchObject({ override: true, solicited: false, target: VIP6 });
    expect(formatIP(frame.frame.ipv6.dst)).toBe('ff02::1');
  });

  it('schedules: start at once; IPv6 keeps RFC 4861 §7.2.6 (at most 3, at least 1 s apart)', () => {
    for (const schedule of Object.values(GRATUITOUS_SCHEDULE_MS)) {
      expect(schedule[0]).toBe(0);
      expect([...schedule].sort((a, b) => a - b)).toEqual(schedule);
    }
    const v6 = GRATUITOUS_SCHEDULE_MS[6];
    expect(v6.length).toBeLessThanOrEqual(3);
    for (let i = 1; i < v6.length; i++) expect(v6[i]! - v6[i - 1]!).toBeGreaterThanOrEqual(1_000);
  });
});
