// The responder's decision, pure: given what this node announces on which interface and one frame
// received on one interface, the reply frame or the counted reason there is none. The packet link
// runs it in its worker thread; nothing here touches a socket or a clock.
import { formatIP, ipKey, parseIP, type Family, type IP } from '../api/index.js';
import { buildARPReply, buildGratuitousARP } from './arp.js';
import { dropReasons, describeDrop, type DropReason } from './drop.js';
import { decodeFrame } from './frame.js';
import { formatMAC, isMulticastMAC, macEqual, parseMAC, type MAC } from './mac.js';
import { buildNAReply, buildUnsolicitedNA } from './ndp.js';

/** What one interface answers for: its MAC (the address every reply carries) and the announced IPs. */
export interface InterfaceAnnouncements {
  readonly mac: MAC;
  readonly ips: readonly IP[];
}

const responderCatalog = {
  interface_not_announced: 'nothing is announced on the interface the frame came in on',
  vlan_tagged: 'carries an 802.1Q tag: a VLAN is answered on its own sub-interface, where the kernel delivers it untagged',
  own_frame: 'sent by one of our own interfaces (a gratuitous frame or reply seen on another port of the same LAN)',
  other_host: "Ethernet destination is another host's unicast MAC (seen because of flooding or promiscuous mode)",
  not_a_request: 'an ARP reply or a Neighbor Advertisement about an address not announced here',
  address_conflict: 'another MAC claims an address announced here (ARP from it, or an advertisement of it)',
  target_not_announced: 'the address asked for is not announced on this interface',
  fenced: 'a reply was due but the answer-until deadline had passed (the lease was not renewed in time)',
} as const;

/** Why the responder sent nothing: a decoder's reason, or one of the responder's own. */
export type ResponderDropReason = DropReason | keyof typeof responderCatalog;

/** Every reason, decoder reasons first, in a stable order for metrics and CLI tables. */
export const responderDropReasons: readonly ResponderDropReason[] = [...dropReasons, ...(Object.keys(responderCatalog) as (keyof typeof responderCatalog)[])];

export const describeResponderDrop = (reason: ResponderDropReason): string =>
  reason in responderCatalog ? responderCatalog[reason as keyof typeof responderCatalog] : describeDrop(reason as DropReason);

export type ResponderDecision =
  | { readonly answer: true; readonly protocol: 'arp' | 'ndp'; readonly ip: IP; readonly frame: Uint8Array }
  | { readonly answer: false; readonly reason: ResponderDropReason };

const macNumber = (mac: MAC): number => mac.reduce((n, b) => n * 256 + b, 0);

interface CompiledInterface {
  readonly mac: MAC;
  readonly v4: ReadonlySet<bigint>;
  readonly v6: ReadonlySet<bigint>;
}

/** The announcement table in the form the per-frame decision reads: one set lookup per frame. */
export class ResponderTable {
  private readonly byInterface = new Map<string, CompiledInterface>();
  private readonly ownMACs = new Set<number>();

  constructor(table: ReadonlyMap<string, InterfaceAnnouncements>) {
    for (const [name, { mac, ips }] of table) {
      const set = (family: Family) => new Set(ips.filter((ip) => ip.family === family).map((ip) => ip.value));
      this.byInterface.set(name, { mac, v4: set(4), v6: set(6) });
      this.ownMACs.add(macNumber(mac));
    }
  }

  get(ifname: string): CompiledInterface | undefined {
    return this.byInterface.get(ifname);
  }

  isOwnMAC(mac: MAC): boolean {
    return this.ownMACs.has(macNumber(mac));
  }
}

const no = (reason: ResponderDropReason): ResponderDecision => ({ answer: false, reason });

/**
 * What to send for `bytes`, received on `ifname`. Answers only an ARP request or a Neighbor
 * Solicitation whose target is announced on that very interface, addressed to us (broadcast,
 * multicast or our MAC), untagged, and from someone else. A DAD probe for an announced address
 * (ARP from 0.0.0.0, RFC 5227 §2.1.1; NS from ::, RFC 4862 §5.4.3) is answered too: that defends
 * the address, as Linux does for its own. Never throws.
 */
export function respond(table: ResponderTable, ifname: string, bytes: Uint8Array): ResponderDecision {
  const here = table.get(ifname);
  if (here === undefined) return no('interface_not_announced');
  const decoded = decodeFrame(bytes);
  if (!decoded.ok) return no(decoded.reason);
  const frame = decoded.frame;
  if (frame.kind === 'other') return no(frame.reason);
  const { ethernet } = frame;
  if (ethernet.vlan !== undefined) return no('vlan_tagged');
  if (table.isOwnMAC(ethernet.src)) return no('own_frame');
  if (!isMulticastMAC(ethernet.dst) && !macEqual(ethernet.dst, here.mac)) return no('other_host');
  switch (frame.kind) {
    case 'arp': {
      const { arp } = frame;
      if (arp.senderIP.value !== 0n && here.v4.has(arp.senderIP.value)) return no('address_conflict');
      if (arp.op !== 'request') return no('not_a_request');
      if (!here.v4.has(arp.targetIP.value)) return no('target_not_announced');
      return { answer: true, protocol: 'arp', ip: arp.targetIP, frame: buildARPReply(frame, here.mac) };
    }
    case 'na':
      return no(here.v6.has(frame.na.target.value) ? 'address_conflict' : 'not_a_request');
    case 'ns':
      if (!here.v6.has(frame.ns.target.value)) return no('target_not_announced');
      return { answer: true, protocol: 'ndp', ip: frame.ns.target, frame: buildNAReply(frame, here.mac) };
  }
}

// ---- building the table from the election's answer ---------------------------------------------

/** One (IP, interfaces) pair to answer for, as the election hands it over. */
export interface AnswerEntry {
  readonly ip: string;
  readonly interfaces: readonly string[];
}

/** One announced address on one interface: the unit of gratuitous bursts. */
export interface AnnouncedPair {
  /** `ifname ipKey mac`: stable identity for diffs (a new MAC makes a new pair, announced again). */
  readonly key: string;
  readonly ifname: string;
  readonly ip: IP;
  readonly mac: MAC;
}

export interface BuiltTable {
  readonly table: ReadonlyMap<string, InterfaceAnnouncements>;
  readonly pairs: readonly AnnouncedPair[];
  /** Entries that could not be used, with the reason (shown in logs, never thrown). */
  readonly problems: readonly string[];
}

/**
 * Groups the election's entries per interface, keeping only interfaces with a known MAC (those
 * that exist and are open); `macs` maps interface names to their MAC.
 */
export function buildAnnouncementTable(entries: readonly AnswerEntry[], macs: ReadonlyMap<string, MAC>): BuiltTable {
  const table = new Map<string, { mac: MAC; ips: IP[] }>();
  const pairs: AnnouncedPair[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const entry of entries) {
    const ip = parseIP(entry.ip);
    if (ip === undefined) {
      problems.push(`${JSON.stringify(entry.ip)} is not an IP address`);
      continue;
    }
    for (const ifname of entry.interfaces) {
      const mac = macs.get(ifname);
      if (mac === undefined) {
        problems.push(`${formatIP(ip)}: interface ${ifname} is not available`);
        continue;
      }
      const key = `${ifname} ${ipKey(ip)} ${formatMAC(mac)}`;
      if (seen.has(key)) continue;
      seen.add(key);
      let slot = table.get(ifname);
      if (slot === undefined) table.set(ifname, (slot = { mac, ips: [] }));
      slot.ips.push(ip);
      pairs.push({ key, ifname, ip, mac });
    }
  }
  return { table, pairs, problems };
}

/** Parses `aa:bb:…` MACs of an interface list into the map buildAnnouncementTable takes. */
export function macsByInterface(interfaces: readonly { readonly name: string; readonly mac: string }[]): Map<string, MAC> {
  const out = new Map<string, MAC>();
  for (const i of interfaces) {
    const mac = parseMAC(i.mac);
    if (mac !== undefined) out.set(i.name, mac);
  }
  return out;
}

// ---- gratuitous announcements -------------------------------------------------------------------

/**
 * The frames that move `ip` to `mac` in every neighbour's cache on the link. IPv4: an ARP
 * Announcement (request form, RFC 5227 §3) and a gratuitous reply (RFC 5944 §4.6), because some
 * stacks heed only one of them. IPv6: an unsolicited NA to all-nodes with Override set (RFC 4861
 * §7.2.6), which replaces an existing entry at once.
 */
export function gratuitousFrames(mac: MAC, ip: IP): Uint8Array[] {
  return ip.family === 4 ? [buildGratuitousARP(mac, ip, 'request'), buildGratuitousARP(mac, ip, 'reply')] : [buildUnsolicitedNA(mac, ip)];
}

/**
 * When to send the gratuitous frames of a newly announced pair, in milliseconds from the moment it
 * became ours.
 *
 * IPv4 — 0, 250 ms, 1 s, 2 s, 4 s. The first goes at once; 250 ms later covers a single lost frame
 * well inside the 2 s failover budget. Linux ignores an ARP that changes a neighbour's MAC within
 * `locktime` (1 s by default) of the entry's last update, so a client that refreshed the old MAC
 * just before the failover takes only the frames at 1 s and later; the one at 4 s also lands after
 * a client's NUD probes to the old MAC (3 unicast probes 1 s apart) have run out. Five pairs of
 * 60-octet frames per address are nothing on any LAN. (RFC 5227 §2.3's two announcements 2 s apart
 * are for hosts configuring an address, not for moving one quickly.)
 *
 * IPv6 — 0, 1 s, 2 s: RFC 4861 §7.2.6 allows at most MAX_NEIGHBOR_ADVERTISEMENT (3) unsolicited
 * advertisements, separated by at least RetransTimer (1 s). Linux applies Override at once, with no
 * locktime, so the first usually suffices.
 */
export const GRATUITOUS_SCHEDULE_MS: Readonly<Record<Family, readonly number[]>> = Object.freeze({
  4: Object.freeze([0, 250, 1_000, 2_000, 4_000]),
  6: Object.freeze([0, 1_000, 2_000]),
});

/** Display form of a pair, for logs. */
export const describePair = (pair: AnnouncedPair): string => `${formatIP(pair.ip)} on ${pair.ifname} (${formatMAC(pair.mac)})`;
