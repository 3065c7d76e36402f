// Wire constants of BGP-4 and the extensions this codec speaks. Values come from the RFCs named
// beside them (and the IANA registries those RFCs created).

import type { Family } from '../api/index.js';

/** RFC 4271 section 4.1: 16-octet marker, 2-octet length, 1-octet type. */
export const MARKER_LENGTH = 16;
export const HEADER_LENGTH = 19;
/** RFC 4271 section 4.1: no message is longer than 4096 octets unless RFC 8654 is negotiated. */
export const MAX_MESSAGE_LENGTH = 4096;
/** RFC 8654 section 3: the extended maximum, for every message but OPEN and KEEPALIVE. */
export const EXTENDED_MAX_MESSAGE_LENGTH = 65535;
export const BGP_VERSION = 4;
/** RFC 6793 section 9: the 2-octet stand-in for an AS number that does not fit in two octets. */
export const AS_TRANS = 23456;

export const MessageType = {
  OPEN: 1,
  UPDATE: 2,
  NOTIFICATION: 3,
  KEEPALIVE: 4,
  /** RFC 2918 */
  ROUTE_REFRESH: 5,
} as const;
export type MessageTypeCode = (typeof MessageType)[keyof typeof MessageType];

/** RFC 4271 section 6.1: the smallest length each message type may carry (KEEPALIVE: exactly). */
export const MIN_MESSAGE_LENGTH: Readonly<Record<MessageTypeCode, number>> = {
  [MessageType.OPEN]: 29,
  [MessageType.UPDATE]: 23,
  [MessageType.NOTIFICATION]: 21,
  [MessageType.KEEPALIVE]: 19,
  // RFC 2918 section 3: AFI (2), reserved/subtype (1), SAFI (1).
  [MessageType.ROUTE_REFRESH]: 23,
};

export const AttrType = {
  ORIGIN: 1,
  AS_PATH: 2,
  NEXT_HOP: 3,
  MULTI_EXIT_DISC: 4,
  LOCAL_PREF: 5,
  ATOMIC_AGGREGATE: 6,
  AGGREGATOR: 7,
  /** RFC 1997 */
  COMMUNITIES: 8,
  /** RFC 4456 */
  ORIGINATOR_ID: 9,
  CLUSTER_LIST: 10,
  /** RFC 4760 */
  MP_REACH_NLRI: 14,
  MP_UNREACH_NLRI: 15,
  /** RFC 4360 */
  EXTENDED_COMMUNITIES: 16,
  /** RFC 6793 */
  AS4_PATH: 17,
  AS4_AGGREGATOR: 18,
  /** RFC 8092 */
  LARGE_COMMUNITIES: 32,
} as const;

/** RFC 4271 section 4.3, Path Attributes: the high-order bits of the Attribute Flags octet. */
export const AttrFlag = {
  OPTIONAL: 0x80,
  TRANSITIVE: 0x40,
  PARTIAL: 0x20,
  EXTENDED_LENGTH: 0x10,
} as const;

export const CapabilityCode = {
  /** RFC 4760 section 8 */
  MULTIPROTOCOL: 1,
  /** RFC 2918 section 2 */
  ROUTE_REFRESH: 2,
  /** RFC 8654 section 3 */
  EXTENDED_MESSAGE: 6,
  /** RFC 4724 section 3 */
  GRACEFUL_RESTART: 64,
  /** RFC 6793 section 3 */
  FOUR_OCTET_AS: 65,
  /** RFC 7313 section 3 */
  ENHANCED_ROUTE_REFRESH: 70,
} as const;

/** RFC 4271 section 4.2 / RFC 5492 section 4: Optional Parameter type 2 carries capabilities. */
export const OPT_PARAM_CAPABILITIES = 2;
/** RFC 9072 section 2: a Non-Ext OP Type of 255 announces the extended parameter encoding. */
export const OPT_PARAM_EXTENDED = 255;

/** Address Family Numbers (IANA) as used by RFC 4760. */
export const AFI = { IPV4: 1, IPV6: 2 } as const;
export const SAFI = { UNICAST: 1, MULTICAST: 2 } as const;

export const afiOf = (family: Family): number => (family === 4 ? AFI.IPV4 : AFI.IPV6);
export const familyOfAfi = (afi: number): Family | undefined =>
  afi === AFI.IPV4 ? 4 : afi === AFI.IPV6 ? 6 : undefined;

/** RFC 4271 section 4.3 ORIGIN values. */
export const Origin = { IGP: 0, EGP: 1, INCOMPLETE: 2 } as const;
export type Origin = (typeof Origin)[keyof typeof Origin];

/** AS_PATH segment types: RFC 4271 section 4.3 (1, 2) and RFC 5065 section 3 (3, 4). */
export const SegmentType = {
  AS_SET: 1,
  AS_SEQUENCE: 2,
  AS_CONFED_SEQUENCE: 3,
  AS_CONFED_SET: 4,
} as const;
export type SegmentType = (typeof SegmentType)[keyof typeof SegmentType];
