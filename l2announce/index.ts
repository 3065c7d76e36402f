export {
  describeDrop,
  DropCounter,
  dropKind,
  dropReasons,
  isDropReason,
  type Decoded,
  type DropKind,
  type DropReason,
  type NotOursReason,
} from './drop.js';
export { broadcastMAC, formatMAC, isBroadcastMAC, isMAC, isMulticastMAC, macEqual, parseMAC, zeroMAC, type MAC } from './mac.js';
export {
  decodeEthernet,
  encodeEthernet,
  ETHERNET_MIN_FRAME_LENGTH,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ETHERTYPE_VLAN,
  type EthernetFrame,
  type EthernetHeader,
  type VLANTag,
} from './ethernet.js';
export { buildARPReply, buildGratuitousARP, decodeARP, encodeARP, type ARPFrame, type ARPOp, type ARPPacket } from './arp.js';
export {
  ALL_NODES_IPV6,
  decodeIPv6,
  encodeIPv6,
  icmpv6Checksum,
  ipv6FromBytes,
  ipv6MulticastMAC,
  ipv6ToBytes,
  isMulticastIPv6,
  isSolicitedNodeMulticast,
  isUnspecifiedIPv6,
  NEXT_HEADER_ICMPV6,
  solicitedNodeMulticast,
  UNSPECIFIED_IPV6,
  verifyICMPv6Checksum,
  type IPv6Fields,
  type IPv6Header,
  type IPv6Packet,
} from './ipv6.js';
export {
  buildNAReply,
  buildUnsolicitedNA,
  decodeNeighborAdvertisement,
  decodeNeighborSolicitation,
  encodeNDPFrame,
  encodeNeighborAdvertisement,
  encodeNeighborSolicitation,
  NDP_HOP_LIMIT,
  type NAFrame,
  type NeighborAdvertisement,
  type NeighborSolicitation,
  type NSFrame,
} from './ndp.js';
export { decodeFrame, type Frame, type OtherFrame, type ResponderFrame } from './frame.js';
export { fuzzCorpus, fuzzFrames, type FuzzCase, type FuzzFailure, type FuzzOptions, type FuzzReport } from './fuzz.js';
export { respond, ResponderTable, buildAnnouncementTable, macsByInterface, gratuitousFrames, GRATUITOUS_SCHEDULE_MS, responderDropReasons, describeResponderDrop, describePair, type AnswerEntry, type AnnouncedPair, type ResponderDecision, type ResponderDropReason, type InterfaceAnnouncements } from './responder.js';
export { InterfaceWatcher, readInventory, parseAddrJson, parseDefaultRouteJson, isOperationallyUp, type NetInterface, type InterfaceInventory, type InterfaceAddress, type WatchOptions } from './netif.js';
export { PacketLink, type PacketLinkOptions, type LinkStats, type InterfaceStats, type LinkLog, type InterfaceInventorySource } from './packet-link.js';
export { electAnnouncers, excludeLabel, rendezvousScore, selectInterfaces, type ElectionInput, type IPAnnouncement, type L2Reason, type L2Service, type LiveNode, type NodeCandidacy, type NodeInterface } from './election.js';
export { IncrementalElection, type AnnouncementChange } from './l2-incremental.js';
