// Why a received frame is not answered, as data: every decoder returns one of these reasons
// instead of throwing, and DropCounter turns them into per-reason counts for metrics.
import type { Frame, ResponderFrame } from './frame.js';

/**
 * `malformed`: the frame breaks a rule of its protocol (a truncated header, a bad checksum, an
 * RFC 4861 §7.1 validity check). `not_ours`: a well-formed frame of a protocol or message type the
 * responder does not handle; decodeFrame reports these as `kind: 'other'`, not as a failure.
 */
export type DropKind = 'malformed' | 'not_ours';

const catalog = {
  // Ethernet and IEEE 802.1Q
  truncated_ethernet: { kind: 'malformed', description: 'shorter than the 14-octet Ethernet header' },
  truncated_vlan: { kind: 'malformed', description: '802.1Q TPID present but the tag and inner EtherType are cut off' },
  vlan_reserved_vid: { kind: 'malformed', description: 'VLAN ID 4095, reserved by IEEE 802.1Q and never transmitted' },
  unsupported_ethertype: { kind: 'not_ours', description: 'EtherType is neither ARP (0x0806) nor IPv6 (0x86dd)' },
  // ARP (RFC 826), Ethernet/IPv4 only
  truncated_arp: { kind: 'malformed', description: 'ARP packet shorter than its 28 octets' },
  arp_bad_hardware_type: { kind: 'malformed', description: 'ARP hardware type is not Ethernet (1)' },
  arp_bad_protocol_type: { kind: 'malformed', description: 'ARP protocol type is not IPv4 (0x0800)' },
  arp_bad_lengths: { kind: 'malformed', description: 'ARP address lengths are not 6 (hardware) and 4 (protocol)' },
  arp_bad_opcode: { kind: 'malformed', description: 'ARP opcode is neither request (1) nor reply (2)' },
  // IPv6 (RFC 8200)
  truncated_ipv6: { kind: 'malformed', description: 'shorter than the 40-octet IPv6 header' },
  ipv6_bad_version: { kind: 'malformed', description: 'IP version field is not 6' },
  ipv6_bad_payload_length: { kind: 'malformed', description: 'IPv6 payload length exceeds the octets received' },
  ipv6_multicast_source: { kind: 'malformed', description: 'IPv6 source is a multicast address (RFC 4291 §2.7)' },
  ipv6_bad_extension_header: { kind: 'malformed', description: 'an IPv6 extension header runs past the payload' },
  ipv6_fragment: { kind: 'not_ours', description: 'IPv6 fragment: never reassembled, fragmented ND is ignored (RFC 6980 §5)' },
  ipv6_not_icmpv6: { kind: 'not_ours', description: 'the upper-layer protocol is not ICMPv6 (58)' },
  // ICMPv6 (RFC 4443)
  truncated_icmpv6: { kind: 'malformed', description: 'shorter than the 4-octet ICMPv6 header' },
  icmpv6_other_type: { kind: 'not_ours', description: 'an ICMPv6 type other than the Neighbor Solicitation/Advertisement expected' },
  icmpv6_bad_checksum: { kind: 'malformed', description: 'ICMPv6 checksum over the pseudo-header does not verify (RFC 4443 §2.3)' },
  // Neighbor Discovery validity checks (RFC 4861 §7.1.1, §7.1.2)
  ndp_hop_limit_not_255: { kind: 'malformed', description: 'hop limit is not 255, so the message may have been forwarded' },
  ndp_too_short: { kind: 'malformed', description: 'ICMPv6 length is below the 24 octets of a solicitation/advertisement' },
  ndp_bad_code: { kind: 'malformed', description: 'ICMPv6 code is not 0' },
  ndp_target_multicast: { kind: 'malformed', description: 'target address is a multicast address' },
  ndp_bad_option_length: { kind: 'malformed', description: 'an option has length 0' },
  ndp_truncated_option: { kind: 'malformed', description: 'an option runs past the end of the message' },
  ndp_bad_link_layer_option: { kind: 'malformed', description: 'link-layer address option is not 8 octets (RFC 2464 §6)' },
  ndp_dad_not_to_solicited_node: { kind: 'malformed', description: 'solicitation from :: not sent to a solicited-node multicast address' },
  ndp_dad_with_source_link_layer: { kind: 'malformed', description: 'solicitation from :: carries a source link-layer address option' },
  ndp_solicited_to_multicast: { kind: 'malformed', description: 'advertisement to a multicast address has the Solicited flag set' },
} as const satisfies Record<string, { kind: DropKind; description: string }>;

export type DropReason = keyof typeof catalog;
/** The reasons decodeFrame reports as `kind: 'other'` rather than as a failure. */
export type NotOursReason = { [R in DropReason]: (typeof catalog)[R]['kind'] extends 'not_ours' ? R : never }[DropReason];

/** Every reason, in catalogue order (stable, so metrics and CLI tables list them the same way). */
export const dropReasons: readonly DropReason[] = Object.keys(catalog) as DropReason[];

export const isDropReason = (value: unknown): value is DropReason =>
  typeof value === 'string' && Object.prototype.hasOwnProperty.call(catalog, value);
export const dropKind = (reason: DropReason): DropKind => catalog[reason].kind;
export const describeDrop = (reason: DropReason): string => catalog[reason].description;

/** A decoder's answer: the decoded value, or the reason the input is dropped. Never an exception. */
export type Decoded<T> = { readonly ok: true; readonly frame: T } | { readonly ok: false; readonly reason: DropReason };

// One frozen failure object per reason: a flood of bad frames allocates nothing on the drop path.
const failures = Object.fromEntries(dropReasons.map((reason) => [reason, Object.freeze({ ok: false, reason })])) as Record<
  DropReason,
  { readonly ok: false; readonly reason: DropReason }
>;
export const drop = (reason: DropReason): { readonly ok: false; readonly reason: DropReason } => failures[reason];
export const accept = <T>(frame: T): { readonly ok: true; readonly frame: T } => ({ ok: true, frame });

/** Per-reason drop counts. Pure: the responder exports snapshot() as a labelled counter. */
export class DropCounter {
  private readonly counts: Record<DropReason, number> = Object.fromEntries(dropReasons.map((r) => [r, 0])) as Record<
    DropReason,
    number
  >;

  count(reason: DropReason, n = 1): void {
    this.counts[reason] += n;
  }

  /**
   * Counts the drop, if any, of a decodeFrame result and returns the frame the responder acts on
   * (ARP, NS or NA), or undefined when there is none.
   */
  observe(result: Decoded<Frame>): ResponderFrame | undefined {
    if (!result.ok) {
      this.count(result.reason);
      return undefined;
    }
    if (result.frame.kind === 'other') {
      this.count(result.frame.reason);
      return undefined;
    }
    return result.frame;
  }

  get(reason: DropReason): number {
    return this.counts[reason];
  }

  total(kind?: DropKind): number {
    let sum = 0;
    for (const reason of dropReasons) if (kind === undefined || catalog[reason].kind === kind) sum += this.counts[reason];
    return sum;
  }

  /** Every reason, zeros included, so an exported metric has all its series from the start. */
  snapshot(): Record<DropReason, number> {
    return { ...this.counts };
  }

  reset(): void {
    for (const reason of dropReasons) this.counts[reason] = 0;
  }
}
