// ROUTE-REFRESH (RFC 2918 section 3) with the Message Subtype of Enhanced Route Refresh
// (RFC 7313 section 3.2): 0 asks for a refresh, 1 and 2 mark its beginning and end.

import { MessageType } from './constants.js';
import { ErrorCode, RouteRefreshSubcode, notification, type Notification } from './notification.js';
import { encodeMessage } from './wire.js';

export const RouteRefreshSubtype = {
  REQUEST: 0,
  /** Beginning of Route Refresh */
  BORR: 1,
  /** End of Route Refresh */
  EORR: 2,
} as const;
export type RouteRefreshSubtype = (typeof RouteRefreshSubtype)[keyof typeof RouteRefreshSubtype];

export interface RouteRefresh {
  readonly afi: number;
  readonly safi: number;
  readonly subtype: RouteRefreshSubtype;
}

export type RouteRefreshResult =
  | { readonly action: 'ok'; readonly routeRefresh: RouteRefresh }
  | { readonly action: 'ignore'; readonly reason: 'unknown_subtype' }
  | { readonly action: 'session-reset'; readonly reason: 'invalid_length'; readonly notification: Notification };

/** Reads a ROUTE-REFRESH body (the message minus its header; the framer ensures four octets). */
export function decodeRouteRefresh(body: Uint8Array, message?: Uint8Array): RouteRefreshResult {
  const subtype = body[2] ?? 0;
  // RFC 7313 section 5: BoRR/EoRR of any other length is an error quoting the whole message.
  if (body.length < 4 || ((subtype === RouteRefreshSubtype.BORR || subtype === RouteRefreshSubtype.EORR) && body.length !== 4)) {
    return {
      action: 'session-reset',
      reason: 'invalid_length',
      notification: notification(ErrorCode.ROUTE_REFRESH_MESSAGE, RouteRefreshSubcode.INVALID_MESSAGE_LENGTH, (message ?? body).slice()),
    };
  }
  // RFC 7313 section 3.2: other subtypes are ignored. A request longer than four octets carries
  // ORF entries (RFC 5291), which we do not support and skip.
  if (subtype > RouteRefreshSubtype.EORR) return { action: 'ignore', reason: 'unknown_subtype' };
  return {
    action: 'ok',
    routeRefresh: { afi: (body[0]! << 8) | body[1]!, safi: body[3]!, subtype: subtype as RouteRefreshSubtype },
  };
}

export function encodeRouteRefresh(rr: RouteRefresh): Uint8Array {
  return encodeMessage(MessageType.ROUTE_REFRESH, Uint8Array.of(rr.afi >> 8, rr.afi & 0xff, rr.subtype, rr.safi));
}
