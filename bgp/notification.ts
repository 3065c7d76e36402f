// NOTIFICATION (RFC 4271 section 4.5): error codes and subcodes as data, the Cease subcodes of
// RFC 4486 (and later), the Shutdown Communication of RFC 9003 and the Hard Reset of RFC 8538.

import { HEADER_LENGTH, MessageType } from './constants.js';
import { encodeMessage } from './wire.js';

export interface Notification {
  readonly code: number;
  readonly subcode: number;
  readonly data: Uint8Array;
}

export const ErrorCode = {
  MESSAGE_HEADER: 1,
  OPEN_MESSAGE: 2,
  UPDATE_MESSAGE: 3,
  HOLD_TIMER_EXPIRED: 4,
  /** RFC 6608 gives this code subcodes. */
  FSM: 5,
  CEASE: 6,
  /** RFC 7313 section 5 */
  ROUTE_REFRESH_MESSAGE: 7,
} as const;

export const HeaderSubcode = {
  CONNECTION_NOT_SYNCHRONIZED: 1,
  BAD_MESSAGE_LENGTH: 2,
  BAD_MESSAGE_TYPE: 3,
} as const;

export const OpenSubcode = {
  /** RFC 4271 section 6.2: a recognized but malformed optional parameter. */
  UNSPECIFIC: 0,
  UNSUPPORTED_VERSION_NUMBER: 1,
  BAD_PEER_AS: 2,
  BAD_BGP_IDENTIFIER: 3,
  UNSUPPORTED_OPTIONAL_PARAMETER: 4,
  UNACCEPTABLE_HOLD_TIME: 6,
  /** RFC 5492 section 5 */
  UNSUPPORTED_CAPABILITY: 7,
  /** RFC 9234 section 4.2 */
  ROLE_MISMATCH: 11,
} as const;

export const UpdateSubcode = {
  MALFORMED_ATTRIBUTE_LIST: 1,
  UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: 2,
  MISSING_WELL_KNOWN_ATTRIBUTE: 3,
  ATTRIBUTE_FLAGS_ERROR: 4,
  ATTRIBUTE_LENGTH_ERROR: 5,
  INVALID_ORIGIN_ATTRIBUTE: 6,
  INVALID_NEXT_HOP_ATTRIBUTE: 8,
  OPTIONAL_ATTRIBUTE_ERROR: 9,
  INVALID_NETWORK_FIELD: 10,
  MALFORMED_AS_PATH: 11,
} as const;

/** RFC 4486 section 4, with RFC 8538 (Hard Reset) and RFC 9384 (BFD Down). */
export const CeaseSubcode = {
  MAXIMUM_PREFIXES_REACHED: 1,
  ADMINISTRATIVE_SHUTDOWN: 2,
  PEER_DECONFIGURED: 3,
  ADMINISTRATIVE_RESET: 4,
  CONNECTION_REJECTED: 5,
  OTHER_CONFIGURATION_CHANGE: 6,
  CONNECTION_COLLISION_RESOLUTION: 7,
  OUT_OF_RESOURCES: 8,
  HARD_RESET: 9,
  BFD_DOWN: 10,
} as const;

/** RFC 6608 section 4 */
export const FsmSubcode = {
  UNSPECIFIED: 0,
  UNEXPECTED_IN_OPENSENT: 1,
  UNEXPECTED_IN_OPENCONFIRM: 2,
  UNEXPECTED_IN_ESTABLISHED: 3,
} as const;

export const RouteRefreshSubcode = { INVALID_MESSAGE_LENGTH: 1 } as const;

interface CodeNames {
  readonly name: string;
  readonly subcodes: Readonly<Record<number, string>>;
}

/** Names as the RFCs spell them, for logs, status conditions and the CLI. */
export const NOTIFICATION_NAMES: Readonly<Record<number, CodeNames>> = {
  1: {
    name: 'Message Header Error',
    subcodes: { 1: 'Connection Not Synchronized', 2: 'Bad Message Length', 3: 'Bad Message Type' },
  },
  2: {
    name: 'OPEN Message Error',
    subcodes: {
      0: 'Unspecific',
      1: 'Unsupported Version Number',
      2: 'Bad Peer AS',
      3: 'Bad BGP Identifier',
      4: 'Unsupported Optional Parameter',
      5: 'Authentication Failure (deprecated)',
      6: 'Unacceptable Hold Time',
      7: 'Unsupported Capability',
      11: 'Role Mismatch',
    },
  },
  3: {
    name: 'UPDATE Message Error',
    subcodes: {
      1: 'Malformed Attribute List',
      2: 'Unrecognized Well-known Attribute',
      3: 'Missing Well-known Attribute',
      4: 'Attribute Flags Error',
      5: 'Attribute Length Error',
      6: 'Invalid ORIGIN Attribute',
      7: 'AS Routing Loop (deprecated)',
      8: 'Invalid NEXT_HOP Attribute',
      9: 'Optional Attribute Error',
      10: 'Invalid Network Field',
      11: 'Malformed AS_PATH',
    },
  },
  4: { name: 'Hold Timer Expired', subcodes: {} },
  5: {
    name: 'Finite State Machine Error',
    subcodes: {
      0: 'Unspecified Error',
      1: 'Receive Unexpected Message in OpenSent State',
      2: 'Receive Unexpected Message in OpenConfirm State',
      3: 'Receive Unexpected Message in Established State',
    },
  },
  6: {
    name: 'Cease',
    subcodes: {
      1: 'Maximum Number of Prefixes Reached',
      2: 'Administrative Shutdown',
      3: 'Peer De-configured',
      4: 'Administrative Reset',
      5: 'Connection Rejected',
      6: 'Other Configuration Change',
      7: 'Connection Collision Resolution',
      8: 'Out of Resources',
      9: 'Hard Reset',
      10: 'BFD Down',
    },
  },
  7: { name: 'ROUTE-REFRESH Message Error', subcodes: { 1: 'Invalid Message Length' } },
};

export function notificationNames(code: number, subcode: number): { code: string; subcode: string } {
  const entry = NOTIFICATION_NAMES[code];
  if (entry === undefined) return { code: `Unknown (${code})`, subcode: `Unknown (${subcode})` };
  // Codes without subcodes (Hold Timer Expired) send 0: RFC 4271 section 4.5.
  const sub = entry.subcodes[subcode] ?? (subcode === 0 ? 'Unspecific' : `Unknown (${subcode})`);
  return { code: entry.name, subcode: sub };
}

export const notification = (code: number, subcode: number, data: Uint8Array = new Uint8Array(0)): Notification => ({
  code,
  subcode,
  data,
});

/** "UPDATE Message Error / Malformed Attribute List (3/1)", for logs. */
export function describeNotification(n: Pick<Notification, 'code' | 'subcode'>): string {
  const names = notificationNames(n.code, n.subcode);
  return `${names.code} / ${names.subcode} (${n.code}/${n.subcode})`;
}

export function encodeNotification(n: Notification): Uint8Array {
  const body = new Uint8Array(2 + n.data.length);
  body[0] = n.code;
  body[1] = n.subcode;
  body.set(n.data, 2);
  return encodeMessage(MessageType.NOTIFICATION, body);
}

/** RFC 9003 section 2: at most 255 octets of UTF-8 after a length octet. */
export const MAX_SHUTDOWN_COMMUNICATION = 255;

/**
 * The data of a Cease / Administrative Shutdown or Reset carrying `text` (RFC 9003 section 2).
 * Text longer than 255 octets is cut at a character boundary, so the peer always sees valid UTF-8.
 */
export function shutdownCommunicationData(text: string): Uint8Array {
  let bytes = new TextEncoder().encode(text);
  if (bytes.length > MAX_SHUTDOWN_COMMUNICATION) {
    let end = MAX_SHUTDOWN_COMMUNICATION;
    // Back off continuation octets (10xxxxxx) so no character is split.
    while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
    bytes = bytes.subarray(0, end);
  }
  const data = new Uint8Array(1 + bytes.length);
  data[0] = bytes.length;
  data.set(bytes, 1);
  return data;
}

export const shutdownNotification = (text: string, subcode: 2 | 4 = CeaseSubcode.ADMINISTRATIVE_SHUTDOWN): Notification =>
  notification(ErrorCode.CEASE, subcode, shutdownCommunicationData(text));

/** Why a Shutdown Communication could not be read; RFC 9003 section 3 asks only that it be logged. */
export type ShutdownCommunicationError = 'length_overrun' | 'invalid_utf8';

export interface DecodedNotification extends Notification {
  readonly codeName: string;
  readonly subcodeName: string;
  /** RFC 9003: the operator's message on Administrative Shutdown / Reset. */
  readonly shutdownCommunication?: string;
  readonly shutdownCommunicationError?: ShutdownCommunicationError;
  /** RFC 4486 section 4: the family and limit behind Maximum Number of Prefixes Reached. */
  readonly maxPrefixes?: { readonly afi: number; readonly safi: number; readonly limit: number };
  /** RFC 8538 section 3: the NOTIFICATION a Hard Reset encapsulates. */
  readonly hardReset?: DecodedNotification;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads a NOTIFICATION body (the message minus its header). Never fails: a NOTIFICATION is the
 * last word of a session, and whatever it says is worth logging (RFC 4271 section 6.4).
 */
export function decodeNotification(body: Uint8Array): DecodedNotification {
  return decodeNotificationDepth(body, 0);
}

function decodeNotificationDepth(body: Uint8Array, depth: number): DecodedNotification {
  const code = body[0] ?? 0;
  const subcode = body[1] ?? 0;
  const data = body.subarray(Math.min(2, body.length));
  const names = notificationNames(code, subcode);
  const base = { code, subcode, data, codeName: names.code, subcodeName: names.subcode };
  if (code !== ErrorCode.CEASE) return base;
  if (subcode === CeaseSubcode.ADMINISTRATIVE_SHUTDOWN || subcode === CeaseSubcode.ADMINISTRATIVE_RESET) {
    // RFC 9003 section 2; an empty data field is a peer that predates RFC 8203.
    if (data.length === 0) return base;
    const length = data[0]!;
    if (length === 0) return { ...base, shutdownCommunication: '' };
    if (1 + length > data.length) return { ...base, shutdownCommunicationError: 'length_overrun' };
    try {
      return { ...base, shutdownCommunication: utf8.decode(data.subarray(1, 1 + length)) };
    } catch {
      return { ...base, shutdownCommunicationError: 'invalid_utf8' };
    }
  }
  if (subcode === CeaseSubcode.MAXIMUM_PREFIXES_REACHED && data.length >= 7) {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    return { ...base, maxPrefixes: { afi: view.getUint16(0), safi: data[2]!, limit: view.getUint32(3) } };
  }
  // One level only: a Hard Reset inside a Hard Reset means nothing (RFC 8538 section 3).
  if (subcode === CeaseSubcode.HARD_RESET && data.length >= 2 && depth === 0) {
    return { ...base, hardReset: decodeNotificationDepth(data, depth + 1) };
  }
  return base;
}

/** The smallest NOTIFICATION, for tests and callers sizing buffers. */
export const MIN_NOTIFICATION_LENGTH = HEADER_LENGTH + 2;
