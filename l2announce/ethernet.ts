// Ethernet II frames with an optional IEEE 802.1Q tag. No FCS: the NIC adds and strips it.
import { readU16, writeU16 } from './bytes.js';
import { accept, drop, type Decoded } from './drop.js';
import { assertMAC, MAC_LENGTH, type MAC } from './mac.js';

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_IPV6 = 0x86dd;

export const ETHERNET_HEADER_LENGTH = 14;
export const VLAN_TAG_LENGTH = 4;
/**
 * 64 octets minus the 4-octet FCS (IEEE 802.3 §4.4.2). Drivers usually pad short frames, but a
 * packet socket on veth or a bridge hands the frame on as written, so encoders pad themselves.
 */
export const ETHERNET_MIN_FRAME_LENGTH = 60;
/** IEEE 802.1Q Table 9-2: VID 0xFFF is reserved and shall not be transmitted. */
export const VLAN_RESERVED_VID = 0xfff;

/** The 802.1Q tag control information: priority code point, drop eligible indicator, VLAN ID. */
export interface VLANTag {
  readonly pcp: number;
  readonly dei: boolean;
  readonly vid: number;
}

export interface EthernetHeader {
  readonly dst: MAC;
  readonly src: MAC;
  readonly vlan?: VLANTag;
  /** The EtherType after the tag, if any. Values below 0x0600 are 802.3 lengths, not types. */
  readonly ethertype: number;
}

export interface EthernetFrame extends EthernetHeader {
  /** A view into the decoded buffer, padding included: the next layer knows its own length. */
  readonly payload: Uint8Array;
}

export function decodeEthernet(bytes: Uint8Array): Decoded<EthernetFrame> {
  if (bytes.length < ETHERNET_HEADER_LENGTH) return drop('truncated_ethernet');
  const dst = bytes.slice(0, MAC_LENGTH);
  const src = bytes.slice(MAC_LENGTH, 2 * MAC_LENGTH);
  const outer = readU16(bytes, 12);
  if (outer !== ETHERTYPE_VLAN) {
    return accept({ dst, src, ethertype: outer, payload: bytes.subarray(ETHERNET_HEADER_LENGTH) });
  }
  const tagged = ETHERNET_HEADER_LENGTH + VLAN_TAG_LENGTH;
  if (bytes.length < tagged) return drop('truncated_vlan');
  const tci = readU16(bytes, 14);
  const vid = tci & 0x0fff;
  if (vid === VLAN_RESERVED_VID) return drop('vlan_reserved_vid');
  const vlan: VLANTag = { pcp: tci >>> 13, dei: (tci & 0x1000) !== 0, vid };
  return accept({ dst, src, vlan, ethertype: readU16(bytes, 16), payload: bytes.subarray(tagged) });
}

export function assertVLAN(vlan: VLANTag): void {
  if (!Number.isInteger(vlan.vid) || vlan.vid < 0 || vlan.vid >= VLAN_RESERVED_VID) {
    throw new RangeError(`VLAN ID ${vlan.vid} is outside 0..4094`);
  }
  if (!Number.isInteger(vlan.pcp) || vlan.pcp < 0 || vlan.pcp > 7) throw new RangeError(`VLAN PCP ${vlan.pcp} is outside 0..7`);
}

/** Builds a frame, zero-padded to the 60-octet minimum. Throws RangeError on out-of-range fields. */
export function encodeEthernet(header: EthernetHeader, payload: Uint8Array): Uint8Array {
  assertMAC(header.dst, 'destination');
  assertMAC(header.src, 'source');
  if (!Number.isInteger(header.ethertype) || header.ethertype < 0 || header.ethertype > 0xffff) {
    throw new RangeError(`EtherType ${header.ethertype} is outside 0..0xffff`);
  }
  if (header.vlan !== undefined) assertVLAN(header.vlan);
  const headerLength = ETHERNET_HEADER_LENGTH + (header.vlan === undefined ? 0 : VLAN_TAG_LENGTH);
  const out = new Uint8Array(Math.max(ETHERNET_MIN_FRAME_LENGTH, headerLength + payload.length));
  out.set(header.dst, 0);
  out.set(header.src, MAC_LENGTH);
  let offset = 12;
  if (header.vlan !== undefined) {
    const { pcp, dei, vid } = header.vlan;
    writeU16(out, offset, ETHERTYPE_VLAN);
    writeU16(out, offset + 2, (pcp << 13) | (dei ? 0x1000 : 0) | vid);
    offset += VLAN_TAG_LENGTH;
  }
  writeU16(out, offset, header.ethertype);
  out.set(payload, headerLength);
  return out;
}
