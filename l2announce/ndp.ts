// Neighbor Solicitation and Advertisement (RFC 4861 §4.3, §4.4) over Ethernet, with the
// receive-side validity checks of §7.1.1 and §7.1.2 and the send rules of §7.2.4 and §7.2.6.
import type { IP } from '../api/index.js';
import { writeU16 } from './bytes.js';
import { accept, drop, type Decoded, type DropReason } from './drop.js';
import { encodeEthernet, ETHERTYPE_IPV6, type EthernetFrame, type VLANTag } from './ethernet.js';
import {
  ALL_NODES_IPV6,
  encodeIPv6,
  icmpv6Checksum,
  ipv6FromBytes,
  ipv6MulticastMAC,
  ipv6ToBytes,
  isMulticastIPv6,
  isSolicitedNodeMulticast,
  isUnspecifiedIPv6,
  NEXT_HEADER_ICMPV6,
  verifyICMPv6Checksum,
  type IPv6Header,
  type IPv6Packet,
} from './ipv6.js';
import { assertMAC, MAC_LENGTH, type MAC } from './mac.js';

export const ICMPV6_NEIGHBOR_SOLICITATION = 135;
export const ICMPV6_NEIGHBOR_ADVERTISEMENT = 136;
export const NDP_OPTION_SOURCE_LINK_LAYER = 1;
export const NDP_OPTION_TARGET_LINK_LAYER = 2;
/** Sent and required on receipt: a message with 255 cannot have crossed a router (RFC 4861 §3.1). */
export const NDP_HOP_LIMIT = 255;
/** Type, code, checksum, 4 octets of flags/reserved, 16 octets of target (RFC 4861 §4.3, §4.4). */
export const NDP_MESSAGE_LENGTH = 24;
/** A link-layer address option on Ethernet: type, length 1 (8 octets), 6-octet MAC (RFC 2464 §6). */
const LINK_LAYER_OPTION_LENGTH = 8;

const FLAG_ROUTER = 0x80;
const FLAG_SOLICITED = 0x40;
const FLAG_OVERRIDE = 0x20;

export interface NeighborSolicitation {
  readonly target: IP;
  readonly sourceLinkLayer?: MAC;
}

export interface NeighborAdvertisement {
  readonly router: boolean;
  readonly solicited: boolean;
  readonly override: boolean;
  readonly target: IP;
  readonly targetLinkLayer?: MAC;
}

export interface NSFrame {
  readonly kind: 'ns';
  readonly ethernet: EthernetFrame;
  readonly ipv6: IPv6Header;
  readonly ns: NeighborSolicitation;
}

export interface NAFrame {
  readonly kind: 'na';
  readonly ethernet: EthernetFrame;
  readonly ipv6: IPv6Header;
  readonly na: NeighborAdvertisement;
}

// ---- decode ------------------------------------------------------------------------------------

/** The checks §7.1.1 and §7.1.2 share, in an order that names the most specific fault. */
function checkMessage(packet: IPv6Packet, type: number): DropReason | undefined {
  const message = packet.upperLayer;
  if (packet.protocol !== NEXT_HEADER_ICMPV6) return 'ipv6_not_icmpv6';
  if (message.length < 4) return 'truncated_icmpv6';
  if (message[0] !== type) return 'icmpv6_other_type';
  if (packet.header.hopLimit !== NDP_HOP_LIMIT) return 'ndp_hop_limit_not_255';
  if (message.length < NDP_MESSAGE_LENGTH) return 'ndp_too_short';
  if (!verifyICMPv6Checksum(packet)) return 'icmpv6_bad_checksum';
  if (message[1] !== 0) return 'ndp_bad_code';
  if (message[8] === 0xff) return 'ndp_target_multicast'; // ff00::/8
  return undefined;
}

/**
 * Walks the options after the fixed part and returns the first link-layer address option of
 * `wanted` type. Unknown options (a DAD nonce, say) are skipped, as §4.3/§4.4 require; a
 * repeated one is ignored, as Linux does.
 */
function linkLayerOption(message: Uint8Array, wanted: number): MAC | undefined | DropReason {
  let found: MAC | undefined;
  for (let offset = NDP_MESSAGE_LENGTH; offset < message.length; ) {
    if (offset + 2 > message.length) return 'ndp_truncated_option';
    const units = message[offset + 1]!;
    if (units === 0) return 'ndp_bad_option_length';
    const length = units * 8;
    if (offset + length > message.length) return 'ndp_truncated_option';
    if (message[offset] === wanted && found === undefined) {
      if (length !== LINK_LAYER_OPTION_LENGTH) return 'ndp_bad_link_layer_option';
      found = message.slice(offset + 2, offset + 2 + MAC_LENGTH);
    }
    offset += length;
  }
  return found;
}

/** Validates a Neighbor Solicitation per RFC 4861 §7.1.1. */
export function decodeNeighborSolicitation(packet: IPv6Packet): Decoded<NeighborSolicitation> {
  const fault = checkMessage(packet, ICMPV6_NEIGHBOR_SOLICITATION);
  if (fault !== undefined) return drop(fault);
  const message = packet.upperLayer;
  const sourceLinkLayer = linkLayerOption(message, NDP_OPTION_SOURCE_LINK_LAYER);
  if (typeof sourceLinkLayer === 'string') return drop(sourceLinkLayer);
  // Duplicate Address Detection: the solicitor has no address yet (RFC 4862 §5.4.2).
  if (isUnspecifiedIPv6(packet.header.src)) {
    if (!isSolicitedNodeMulticast(packet.header.dst)) return drop('ndp_dad_not_to_solicited_node');
    if (sourceLinkLayer !== undefined) return drop('ndp_dad_with_source_link_layer');
  }
  const target = ipv6FromBytes(message, 8);
  return accept(sourceLinkLayer === undefined ? { target } : { target, sourceLinkLayer });
}

/** Validates a Neighbor Advertisement per RFC 4861 §7.1.2. Reserved bits are ignored (§4.4). */
export function decodeNeighborAdvertisement(packet: IPv6Packet): Decoded<NeighborAdvertisement> {
  const fault = checkMessage(packet, ICMPV6_NEIGHBOR_ADVERTISEMENT);
  if (fault !== undefined) return drop(fault);
  const message = packet.upperLayer;
  const flags = message[4]!;
  const solicited = (flags & FLAG_SOLICITED) !== 0;
  if (solicited && isMulticastIPv6(packet.header.dst)) return drop('ndp_solicited_to_multicast');
  const targetLinkLayer = linkLayerOption(message, NDP_OPTION_TARGET_LINK_LAYER);
  if (typeof targetLinkLayer === 'string') return drop(targetLinkLayer);
  const na = {
    router: (flags & FLAG_ROUTER) !== 0,
    solicited,
    override: (flags & FLAG_OVERRIDE) !== 0,
    target: ipv6FromBytes(message, 8),
  };
  return accept(targetLinkLayer === undefined ? na : { ...na, targetLinkLayer });
}

// ---- encode ------------------------------------------------------------------------------------

function encodeMessage(type: number, flags: number, target: IP, option: number, mac: MAC | undefined, src: IP, dst: IP): Uint8Array {
  if (mac !== undefined) assertMAC(mac, 'link-layer address');
  const out = new Uint8Array(NDP_MESSAGE_LENGTH + (mac === undefined ? 0 : LINK_LAYER_OPTION_LENGTH));
  out[0] = type;
  out[4] = flags;
  out.set(ipv6ToBytes(target), 8);
  if (mac !== undefined) {
    out[24] = option;
    out[25] = LINK_LAYER_OPTION_LENGTH / 8;
    out.set(mac, 26);
  }
  writeU16(out, 2, icmpv6Checksum(src, dst, out));
  return out;
}

/** The ICMPv6 message (checksum filled in for `src` to `dst`); the IPv6 header is encodeIPv6's. */
export function encodeNeighborSolicitation(ns: NeighborSolicitation, src: IP, dst: IP): Uint8Array {
  return encodeMessage(ICMPV6_NEIGHBOR_SOLICITATION, 0, ns.target, NDP_OPTION_SOURCE_LINK_LAYER, ns.sourceLinkLayer, src, dst);
}

/** The ICMPv6 message (checksum filled in for `src` to `dst`); the IPv6 header is encodeIPv6's. */
export function encodeNeighborAdvertisement(na: NeighborAdvertisement, src: IP, dst: IP): Uint8Array {
  const flags = (na.router ? FLAG_ROUTER : 0) | (na.solicited ? FLAG_SOLICITED : 0) | (na.override ? FLAG_OVERRIDE : 0);
  return encodeMessage(ICMPV6_NEIGHBOR_ADVERTISEMENT, flags, na.target, NDP_OPTION_TARGET_LINK_LAYER, na.targetLinkLayer, src, dst);
}

/** Wraps an ND message in IPv6 (hop limit 255, RFC 4861 §7.1) and Ethernet. */
export function encodeNDPFrame(
  link: { readonly src: MAC; readonly dst: MAC; readonly vlan?: VLANTag | undefined },
  src: IP,
  dst: IP,
  message: Uint8Array,
): Uint8Array {
  const packet = encodeIPv6({ nextHeader: NEXT_HEADER_ICMPV6, hopLimit: NDP_HOP_LIMIT, src, dst }, message);
  return encodeEthernet({ dst: link.dst, src: link.src, vlan: link.vlan, ethertype: ETHERTYPE_IPV6 }, packet);
}

/**
 * An unsolicited Neighbor Advertisement moving `ip` to `mac` (RFC 4861 §7.2.6): to all-nodes,
 * Solicited clear, Override set so caches replace the old address, target link-layer option
 * present. The source is `ip` itself, as Linux does for addresses it owns.
 */
export function buildUnsolicitedNA(mac: MAC, ip: IP, vlan?: VLANTag): Uint8Array {
  const na: NeighborAdvertisement = { router: false, solicited: false, override: true, target: ip, targetLinkLayer: mac };
  const message = encodeNeighborAdvertisement(na, ip, ALL_NODES_IPV6);
  return encodeNDPFrame({ src: mac, dst: ipv6MulticastMAC(ALL_NODES_IPV6), vlan }, ip, ALL_NODES_IPV6, message);
}

/**
 * The advertisement answering `solicitation` for its target with `ourMac` (RFC 4861 §7.2.4).
 * From an unspecified source (DAD) it goes to all-nodes with Solicited clear; otherwise to the
 * solicitor with Solicited set, at its source link-layer option's MAC or, when the option is
 * absent (allowed for unicast solicitations, §4.3), the frame's source MAC. Override is set: the
 * targets we answer for are unicast VIPs, not anycast. The target link-layer option is always
 * included (optional only for unicast solicitations). Whether to answer is the responder's call.
 */
export function buildNAReply(solicitation: NSFrame, ourMac: MAC): Uint8Array {
  const { ns, ipv6, ethernet } = solicitation;
  const dad = isUnspecifiedIPv6(ipv6.src);
  const dst = dad ? ALL_NODES_IPV6 : ipv6.src;
  const dstMac = dad ? ipv6MulticastMAC(ALL_NODES_IPV6) : (ns.sourceLinkLayer ?? ethernet.src);
  const na: NeighborAdvertisement = { router: false, solicited: !dad, override: true, target: ns.target, targetLinkLayer: ourMac };
  const message = encodeNeighborAdvertisement(na, ns.target, dst);
  return encodeNDPFrame({ src: ourMac, dst: dstMac, vlan: ethernet.vlan }, ns.target, dst, message);
}
