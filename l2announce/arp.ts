// ARP for IPv4 over Ethernet (RFC 826): the only combination a load balancer announces on.
import type { IP } from '../api/index.js';
import { readU16, readU32, writeU16, writeU32 } from './bytes.js';
import { accept, drop, type Decoded } from './drop.js';
import { encodeEthernet, ETHERTYPE_ARP, type EthernetFrame, type VLANTag } from './ethernet.js';
import { assertMAC, broadcastMAC, MAC_LENGTH, zeroMAC, type MAC } from './mac.js';

export const ARP_LENGTH = 28;
export const ARP_HTYPE_ETHERNET = 1;
export const ARP_PTYPE_IPV4 = 0x0800;
export const ARP_OP_REQUEST = 1;
export const ARP_OP_REPLY = 2;

export type ARPOp = 'request' | 'reply';

export interface ARPPacket {
  readonly op: ARPOp;
  readonly senderMAC: MAC;
  readonly senderIP: IP;
  readonly targetMAC: MAC;
  readonly targetIP: IP;
}

/** A decoded ARP frame: the Ethernet header (VLAN tag included) and the packet it carries. */
export interface ARPFrame {
  readonly kind: 'arp';
  readonly ethernet: EthernetFrame;
  readonly arp: ARPPacket;
}

const ipv4At = (bytes: Uint8Array, offset: number): IP => ({ family: 4, value: BigInt(readU32(bytes, offset)) });

function assertIPv4(ip: IP, what: string): void {
  if (ip.family !== 4 || ip.value < 0n || ip.value > 0xffffffffn) throw new RangeError(`${what} must be an IPv4 address`);
}

/** Decodes the ARP payload of an Ethernet frame; octets after the 28 are Ethernet padding. */
export function decodeARP(bytes: Uint8Array): Decoded<ARPPacket> {
  // The fixed part first: with other address lengths the packet has another size, and
  // "bad lengths" says more than "truncated".
  if (bytes.length < 8) return drop('truncated_arp');
  if (readU16(bytes, 0) !== ARP_HTYPE_ETHERNET) return drop('arp_bad_hardware_type');
  if (readU16(bytes, 2) !== ARP_PTYPE_IPV4) return drop('arp_bad_protocol_type');
  if (bytes[4] !== MAC_LENGTH || bytes[5] !== 4) return drop('arp_bad_lengths');
  const opcode = readU16(bytes, 6);
  if (opcode !== ARP_OP_REQUEST && opcode !== ARP_OP_REPLY) return drop('arp_bad_opcode');
  if (bytes.length < ARP_LENGTH) return drop('truncated_arp');
  return accept({
    op: opcode === ARP_OP_REQUEST ? 'request' : 'reply',
    senderMAC: bytes.slice(8, 14),
    senderIP: ipv4At(bytes, 14),
    targetMAC: bytes.slice(18, 24),
    targetIP: ipv4At(bytes, 24),
  });
}

/** The 28-octet ARP packet. Throws RangeError on a wrong-sized MAC or a non-IPv4 address. */
export function encodeARP(packet: ARPPacket): Uint8Array {
  assertMAC(packet.senderMAC, 'sender MAC');
  assertMAC(packet.targetMAC, 'target MAC');
  assertIPv4(packet.senderIP, 'sender IP');
  assertIPv4(packet.targetIP, 'target IP');
  const out = new Uint8Array(ARP_LENGTH);
  writeU16(out, 0, ARP_HTYPE_ETHERNET);
  writeU16(out, 2, ARP_PTYPE_IPV4);
  out[4] = MAC_LENGTH;
  out[5] = 4;
  writeU16(out, 6, packet.op === 'request' ? ARP_OP_REQUEST : ARP_OP_REPLY);
  out.set(packet.senderMAC, 8);
  writeU32(out, 14, Number(packet.senderIP.value));
  out.set(packet.targetMAC, 18);
  writeU32(out, 24, Number(packet.targetIP.value));
  return out;
}

/**
 * A gratuitous ARP, broadcast, that moves `ip` to `mac` in every neighbour's cache: sender and
 * target IP are both `ip` (RFC 5944 §4.6). The request form is RFC 5227 §3's ARP Announcement with
 * the target MAC zero (§2.1.1: "SHOULD be set to all zeroes"); the reply form carries `mac` there
 * too (RFC 5944 §4.6). Some stacks heed only one of the two, so announcers commonly send both.
 */
export function buildGratuitousARP(mac: MAC, ip: IP, op: ARPOp, vlan?: VLANTag): Uint8Array {
  const packet: ARPPacket = { op, senderMAC: mac, senderIP: ip, targetMAC: op === 'reply' ? mac : zeroMAC(), targetIP: ip };
  return encodeEthernet({ dst: broadcastMAC(), src: mac, vlan, ethertype: ETHERTYPE_ARP }, encodeARP(packet));
}

/**
 * The reply to `request` claiming its target IP for `ourMac` (RFC 826, "Packet Reception"): the
 * sender fields become the target fields, and the frame goes unicast to the requester's hardware
 * address on the VLAN it came from. Whether to answer at all is the responder's decision.
 */
export function buildARPReply(request: ARPFrame, ourMac: MAC): Uint8Array {
  const { arp, ethernet } = request;
  const reply: ARPPacket = {
    op: 'reply',
    senderMAC: ourMac,
    senderIP: arp.targetIP,
    targetMAC: arp.senderMAC,
    targetIP: arp.senderIP,
  };
  return encodeEthernet({ dst: arp.senderMAC, src: ourMac, vlan: ethernet.vlan, ethertype: ETHERTYPE_ARP }, encodeARP(reply));
}
