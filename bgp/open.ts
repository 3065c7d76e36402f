// OPEN (RFC 4271 section 4.2) with Capabilities (RFC 5492) and the RFC 9072 extended optional
// parameters length. Capabilities understood: multiprotocol (RFC 4760), route refresh (RFC 2918),
// enhanced route refresh (RFC 7313), extended messages (RFC 8654), graceful restart (RFC 4724,
// with the N bit of RFC 8538) and 4-octet AS numbers (RFC 6793). Others are kept for the log and
// never advertised back.

import type { Family, IP } from '../api/index.js';
import {
  AFI,
  AS_TRANS,
  BGP_VERSION,
  CapabilityCode,
  MessageType,
  OPT_PARAM_CAPABILITIES,
  OPT_PARAM_EXTENDED,
  SAFI,
  afiOf,
} from './constants.js';
import { ErrorCode, HeaderSubcode, OpenSubcode, notification, type Notification } from './notification.js';
import { encodeMessage, viewOf } from './wire.js';

export interface AfiSafi {
  readonly afi: number;
  readonly safi: number;
}

export interface GracefulRestartFamily extends AfiSafi {
  /** RFC 4724 section 3, F bit: forwarding state was preserved across the restart. */
  readonly forwardingState: boolean;
}

export interface GracefulRestart {
  /** RFC 4724 section 3, R bit: the sender has restarted. */
  readonly restartState: boolean;
  /** RFC 8538 section 2, N bit: graceful restart also covers NOTIFICATION and hold-timer expiry. */
  readonly notification: boolean;
  /** Seconds, 12 bits. */
  readonly restartTime: number;
  readonly families: readonly GracefulRestartFamily[];
}

export interface UnknownCapability {
  readonly code: number;
  readonly value: Uint8Array;
}

export interface Capabilities {
  readonly multiprotocol: readonly AfiSafi[];
  readonly routeRefresh: boolean;
  readonly enhancedRouteRefresh: boolean;
  readonly extendedMessage: boolean;
  /** RFC 6793 section 3: the sender's real AS number. */
  readonly fourOctetAS?: number;
  readonly gracefulRestart?: GracefulRestart;
  /** Capabilities we do not understand: kept for logs, never advertised (RFC 5492 section 3). */
  readonly unknown: readonly UnknownCapability[];
}

export interface Open {
  readonly version: number;
  /** The 2-octet My Autonomous System field: AS_TRANS when the real AS does not fit. */
  readonly myAS: number;
  readonly holdTime: number;
  /** RFC 6286: any non-zero 4-octet value; shown as a dotted quad. */
  readonly bgpId: IP;
  readonly capabilities: Capabilities;
}

export type OpenErrorReason =
  | 'message_too_short'
  | 'unsupported_version'
  | 'bad_peer_as'
  | 'bad_bgp_identifier'
  | 'unacceptable_hold_time'
  | 'unsupported_optional_parameter'
  | 'optional_parameters_malformed'
  | 'capability_malformed';

export type OpenResult =
  | { readonly ok: true; readonly open: Open }
  | { readonly ok: false; readonly notification: Notification; readonly reason: OpenErrorReason };

const emptyCapabilities: Capabilities = {
  multiprotocol: [],
  routeRefresh: false,
  enhancedRouteRefresh: false,
  extendedMessage: false,
  unknown: [],
};

const fail = (reason: OpenErrorReason, subcode: number, data?: Uint8Array): OpenResult => ({
  ok: false,
  reason,
  notification: notification(ErrorCode.OPEN_MESSAGE, subcode, data),
});

/** The peer's real AS: the 4-octet capability when present, else the My AS field. */
export const peerAS = (open: Open): number => open.capabilities.fourOctetAS ?? open.myAS;

/** Reads an OPEN body (the message minus its header). */
export function decodeOpen(body: Uint8Array): OpenResult {
  if (body.length < 10) {
    const length = body.length + 19;
    return {
      ok: false,
      reason: 'message_too_short',
      notification: notification(ErrorCode.MESSAGE_HEADER, HeaderSubcode.BAD_MESSAGE_LENGTH, Uint8Array.of(length >> 8, length & 0xff)),
    };
  }
  const view = viewOf(body);
  const version = body[0]!;
  // RFC 4271 section 6.2: the data is the version we do support, 4, whatever the peer bid.
  if (version !== BGP_VERSION) return fail('unsupported_version', OpenSubcode.UNSUPPORTED_VERSION_NUMBER, Uint8Array.of(0, BGP_VERSION));
  const myAS = view.getUint16(1);
  const holdTime = view.getUint16(3);
  const id = view.getUint32(5);
  const optLength = body[9]!;

  // RFC 9072 section 2: a non-zero length followed by type 255 switches to 2-octet lengths.
  let start = 10;
  let end = 10 + optLength;
  let lengthSize = 1;
  if (optLength !== 0 && body[10] === OPT_PARAM_EXTENDED) {
    if (body.length < 13) return fail('optional_parameters_malformed', OpenSubcode.UNSPECIFIC);
    start = 13;
    end = 13 + view.getUint16(11);
    lengthSize = 2;
  }
  if (end !== body.length) return fail('optional_parameters_malformed', OpenSubcode.UNSPECIFIC);

  let capabilities = emptyCapabilities;
  for (let i = start; i < end; ) {
    if (i + 1 + lengthSize > end) return fail('optional_parameters_malformed', OpenSubcode.UNSPECIFIC);
    const type = body[i]!;
    const length = lengthSize === 1 ? body[i + 1]! : view.getUint16(i + 1);
    const valueStart = i + 1 + lengthSize;
    if (valueStart + length > end) return fail('optional_parameters_malformed', OpenSubcode.UNSPECIFIC);
    // Type 1 (authentication) is deprecated; nothing else but capabilities is defined.
    if (type !== OPT_PARAM_CAPABILITIES) return fail('unsupported_optional_parameter', OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER);
    const parsed = decodeCapabilities(body.subarray(valueStart, valueStart + length), capabilities);
    if (parsed === undefined) return fail('capability_malformed', OpenSubcode.UNSPECIFIC);
    capabilities = parsed;
    i = valueStart + length;
  }

  // RFC 7607 section 2: AS 0 is never a valid peer AS.
  if (myAS === 0 || capabilities.fourOctetAS === 0) return fail('bad_peer_as', OpenSubcode.BAD_PEER_AS);
  // RFC 6286 section 2.1: the identifier only has to be non-zero.
  if (id === 0) return fail('bad_bgp_identifier', OpenSubcode.BAD_BGP_IDENTIFIER);
  // RFC 4271 section 4.2: zero, or at least three seconds.
  if (holdTime === 1 || holdTime === 2) return fail('unacceptable_hold_time', OpenSubcode.UNACCEPTABLE_HOLD_TIME);

  return { ok: true, open: { version, myAS, holdTime, bgpId: { family: 4, value: BigInt(id) }, capabilities } };
}

/**
 * Adds the capabilities in one Capabilities parameter to `into`. Returns undefined when a
 * capability overruns its parameter or a known one has the wrong length (RFC 4271 section 6.2:
 * a recognized but malformed parameter gets subcode 0).
 */
function decodeCapabilities(bytes: Uint8Array, into: Capabilities): Capabilities | undefined {
  const view = viewOf(bytes);
  const multiprotocol = [...into.multiprotocol];
  const unknown = [...into.unknown];
  let { routeRefresh, enhancedRouteRefresh, extendedMessage, fourOctetAS, gracefulRestart } = into;
  for (let i = 0; i < bytes.length; ) {
    if (i + 2 > bytes.length) return undefined;
    const code = bytes[i]!;
    const length = bytes[i + 1]!;
    const v = i + 2;
    if (v + length > bytes.length) return undefined;
    switch (code) {
      case CapabilityCode.MULTIPROTOCOL: {
        // RFC 4760 section 8: AFI (2), reserved (1), SAFI (1).
        if (length !== 4) return undefined;
        const afi = view.getUint16(v);
        const safi = bytes[v + 3]!;
        if (!multiprotocol.some((m) => m.afi === afi && m.safi === safi)) multiprotocol.push({ afi, safi });
        break;
      }
      case CapabilityCode.ROUTE_REFRESH:
        if (length !== 0) return undefined;
        routeRefresh = true;
        break;
      case CapabilityCode.ENHANCED_ROUTE_REFRESH:
        if (length !== 0) return undefined;
        enhancedRouteRefresh = true;
        break;
      case CapabilityCode.EXTENDED_MESSAGE:
        if (length !== 0) return undefined;
        extendedMessage = true;
        break;
      case CapabilityCode.FOUR_OCTET_AS:
        if (length !== 4) return undefined;
        // A repeated capability changes nothing: the first one stands.
        fourOctetAS ??= view.getUint32(v);
        break;
      case CapabilityCode.GRACEFUL_RESTART: {
        // RFC 4724 section 3: flags (4 bits) + restart time (12 bits), then 4 octets per family.
        if (length < 2 || (length - 2) % 4 !== 0) return undefined;
        if (gracefulRestart !== undefined) break;
        const word = view.getUint16(v);
        const families: GracefulRestartFamily[] = [];
        for (let f = v + 2; f < v + length; f += 4) {
          families.push({ afi: view.getUint16(f), safi: bytes[f + 2]!, forwardingState: (bytes[f + 3]! & 0x80) !== 0 });
        }
        gracefulRestart = {
          restartState: (word & 0x8000) !== 0,
          notification: (word & 0x4000) !== 0,
          restartTime: word & 0x0fff,
          families,
        };
        break;
      }
      default:
        unknown.push({ code, value: bytes.slice(v, v + length) });
    }
    i = v + length;
  }
  return {
    multiprotocol,
    routeRefresh,
    enhancedRouteRefresh,
    extendedMessage,
    unknown,
    ...(fourOctetAS === undefined ? {} : { fourOctetAS }),
    ...(gracefulRestart === undefined ? {} : { gracefulRestart }),
  };
}

/** The capabilities we advertise, in code order. Unknown capabilities are never sent. */
export function encodeCapabilities(caps: Capabilities): Uint8Array {
  const out: number[] = [];
  const u16 = (n: number): void => void out.push((n >> 8) & 0xff, n & 0xff);
  const u32 = (n: number): void => void out.push((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  for (const m of caps.multiprotocol) {
    out.push(CapabilityCode.MULTIPROTOCOL, 4);
    u16(m.afi);
    out.push(0, m.safi);
  }
  if (caps.routeRefresh) out.push(CapabilityCode.ROUTE_REFRESH, 0);
  if (caps.extendedMessage) out.push(CapabilityCode.EXTENDED_MESSAGE, 0);
  const gr = caps.gracefulRestart;
  if (gr !== undefined) {
    // A capability length is one octet: at most 63 families fit.
    if (gr.families.length > 63) throw new RangeError('graceful restart can list at most 63 address families');
    out.push(CapabilityCode.GRACEFUL_RESTART, 2 + 4 * gr.families.length);
    u16((gr.restartState ? 0x8000 : 0) | (gr.notification ? 0x4000 : 0) | (gr.restartTime & 0x0fff));
    for (const f of gr.families) {
      u16(f.afi);
      out.push(f.safi, f.forwardingState ? 0x80 : 0);
    }
  }
  if (caps.fourOctetAS !== undefined) {
    out.push(CapabilityCode.FOUR_OCTET_AS, 4);
    u32(caps.fourOctetAS);
  }
  if (caps.enhancedRouteRefresh) out.push(CapabilityCode.ENHANCED_ROUTE_REFRESH, 0);
  return Uint8Array.from(out);
}

/** The whole OPEN message. */
export function encodeOpen(open: Open): Uint8Array {
  const caps = encodeCapabilities(open.capabilities);
  // One Capabilities parameter; RFC 9072's extended form only when it cannot fit in 255 octets.
  const extended = caps.length + 2 > 255;
  const params = extended ? 3 + caps.length : caps.length === 0 ? 0 : 2 + caps.length;
  const head = extended ? 13 : 10;
  const body = new Uint8Array(head + params);
  const view = viewOf(body);
  body[0] = open.version;
  view.setUint16(1, open.myAS);
  view.setUint16(3, open.holdTime);
  view.setUint32(5, Number(open.bgpId.value));
  if (extended) {
    body[9] = 255;
    body[10] = OPT_PARAM_EXTENDED;
    view.setUint16(11, params);
    body[13] = OPT_PARAM_CAPABILITIES;
    view.setUint16(14, caps.length);
    body.set(caps, 16);
  } else if (caps.length > 0) {
    body[9] = params;
    body[10] = OPT_PARAM_CAPABILITIES;
    body[11] = caps.length;
    body.set(caps, 12);
  }
  return encodeMessage(MessageType.OPEN, body);
}

export interface OpenOptions {
  /** Our real AS number, 1..4294967295. */
  readonly asn: number;
  /** 0, or 3..65535 seconds. */
  readonly holdTime: number;
  readonly bgpId: IP;
  /** Unicast families to advertise (RFC 4760); default IPv4 and IPv6. */
  readonly families?: readonly Family[];
  readonly routeRefresh?: boolean;
  readonly enhancedRouteRefresh?: boolean;
  readonly extendedMessage?: boolean;
  readonly gracefulRestart?: GracefulRestart;
}

/** Our OPEN: AS_TRANS in My AS when the AS needs four octets, and always the 4-octet capability. */
export function buildOpen(options: OpenOptions): Open {
  const { asn, holdTime, bgpId } = options;
  if (!Number.isInteger(asn) || asn < 1 || asn > 0xffffffff) throw new RangeError(`AS ${asn} is out of range`);
  if (!Number.isInteger(holdTime) || holdTime < 0 || holdTime > 0xffff || holdTime === 1 || holdTime === 2) {
    throw new RangeError(`hold time ${holdTime} must be 0 or 3..65535`);
  }
  if (bgpId.family !== 4 || bgpId.value === 0n) throw new RangeError('the BGP identifier must be a non-zero IPv4-style value');
  const families = options.families ?? [4, 6];
  return {
    version: BGP_VERSION,
    myAS: asn > 0xffff ? AS_TRANS : asn,
    holdTime,
    bgpId,
    capabilities: {
      multiprotocol: families.map((f) => ({ afi: afiOf(f), safi: SAFI.UNICAST })),
      routeRefresh: options.routeRefresh ?? true,
      enhancedRouteRefresh: options.enhancedRouteRefresh ?? false,
      extendedMessage: options.extendedMessage ?? false,
      fourOctetAS: asn,
      unknown: [],
      ...(options.gracefulRestart === undefined ? {} : { gracefulRestart: options.gracefulRestart }),
    },
  };
}

export interface Negotiated {
  /** RFC 4271 section 4.2: the smaller of the two; 0 turns off KEEPALIVE and the hold timer. */
  readonly holdTime: number;
  /** A third of the hold time (RFC 4271 section 10 suggests that ratio). */
  readonly keepaliveTime: number;
  readonly peerAS: number;
  /** Both sides advertised RFC 6793 support: AS numbers are four octets on the wire. */
  readonly fourOctetAS: boolean;
  /** AFI/SAFI pairs both sides advertised (RFC 4760 section 8). */
  readonly families: readonly AfiSafi[];
  readonly routeRefresh: boolean;
  readonly enhancedRouteRefresh: boolean;
  readonly extendedMessage: boolean;
  readonly peerGracefulRestart?: GracefulRestart;
}

/** What an established session may use, from our OPEN and the peer's. */
export function negotiate(local: Open, remote: Open): Negotiated {
  // A speaker that sends no multiprotocol capability speaks IPv4 unicast only (RFC 4760 section 8).
  const familiesOf = (o: Open): readonly AfiSafi[] =>
    o.capabilities.multiprotocol.length > 0 ? o.capabilities.multiprotocol : [{ afi: AFI.IPV4, safi: SAFI.UNICAST }];
  const remoteFamilies = familiesOf(remote);
  const families = familiesOf(local).filter((l) => remoteFamilies.some((r) => r.afi === l.afi && r.safi === l.safi));
  const holdTime = Math.min(local.holdTime, remote.holdTime);
  const gr = remote.capabilities.gracefulRestart;
  return {
    holdTime,
    keepaliveTime: Math.floor(holdTime / 3),
    peerAS: peerAS(remote),
    fourOctetAS: local.capabilities.fourOctetAS !== undefined && remote.capabilities.fourOctetAS !== undefined,
    families,
    routeRefresh: local.capabilities.routeRefresh && remote.capabilities.routeRefresh,
    enhancedRouteRefresh: local.capabilities.enhancedRouteRefresh && remote.capabilities.enhancedRouteRefresh,
    extendedMessage: local.capabilities.extendedMessage && remote.capabilities.extendedMessage,
    ...(gr === undefined ? {} : { peerGracefulRestart: gr }),
  };
}
