// One entry point for a received frame: what it is (ARP, NS, NA or something else) or why it is
// dropped.
import { decodeARP, type ARPFrame } from './arp.js';
import { accept, drop, dropKind, type Decoded, type DropReason, type NotOursReason } from './drop.js';
import { decodeEthernet, ETHERTYPE_ARP, ETHERTYPE_IPV6, type EthernetFrame } from './ethernet.js';
import { decodeIPv6, NEXT_HEADER_ICMPV6 } from './ipv6.js';
import {
  decodeNeighborAdvertisement,
  decodeNeighborSolicitation,
  ICMPV6_NEIGHBOR_ADVERTISEMENT,
  ICMPV6_NEIGHBOR_SOLICITATION,
  type NAFrame,
  type NSFrame,
} from './ndp.js';

/** A well-formed frame the responder does not handle, and which layer said so. */
export interface OtherFrame {
  readonly kind: 'other';
  readonly ethernet: EthernetFrame;
  readonly reason: NotOursReason;
}

export type ResponderFrame = ARPFrame | NSFrame | NAFrame;
export type Frame = ResponderFrame | OtherFrame;

const other = (ethernet: EthernetFrame, reason: DropReason): Decoded<Frame> =>
  // Only a 'not_ours' reason makes an 'other' frame; every other reason is a malformed-frame drop.
  dropKind(reason) === 'not_ours' ? accept({ kind: 'other', ethernet, reason: reason as NotOursReason }) : drop(reason);

/**
 * Classifies a frame as received from a packet socket (no FCS, VLAN tag inline). Malformed
 * frames come back as `{ ok: false, reason }`; nothing here throws on any input.
 */
export function decodeFrame(bytes: Uint8Array): Decoded<Frame> {
  const eth = decodeEthernet(bytes);
  if (!eth.ok) return eth;
  const ethernet = eth.frame;
  if (ethernet.ethertype === ETHERTYPE_ARP) {
    const arp = decodeARP(ethernet.payload);
    return arp.ok ? accept({ kind: 'arp', ethernet, arp: arp.frame }) : arp;
  }
  if (ethernet.ethertype !== ETHERTYPE_IPV6) return other(ethernet, 'unsupported_ethertype');
  const ip = decodeIPv6(ethernet.payload);
  if (!ip.ok) return other(ethernet, ip.reason);
  const packet = ip.frame;
  if (packet.protocol !== NEXT_HEADER_ICMPV6) return other(ethernet, 'ipv6_not_icmpv6');
  if (packet.upperLayer.length < 4) return drop('truncated_icmpv6');
  const type = packet.upperLayer[0];
  if (type === ICMPV6_NEIGHBOR_SOLICITATION) {
    const ns = decodeNeighborSolicitation(packet);
    return ns.ok ? accept({ kind: 'ns', ethernet, ipv6: packet.header, ns: ns.frame }) : ns;
  }
  if (type === ICMPV6_NEIGHBOR_ADVERTISEMENT) {
    const na = decodeNeighborAdvertisement(packet);
    return na.ok ? accept({ kind: 'na', ethernet, ipv6: packet.header, na: na.frame }) : na;
  }
  return other(ethernet, 'icmpv6_other_type');
}
