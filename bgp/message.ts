// One entry point from a framed message to what it means, so the session FSM switches on data.

import { MessageType } from './constants.js';
import type { Frame } from './framer.js';
import { decodeNotification, type DecodedNotification } from './notification.js';
import { decodeOpen, type OpenResult } from './open.js';
import { decodeRouteRefresh, type RouteRefreshResult } from './route-refresh.js';
import { decodeUpdate, type SessionContext, type UpdateDecision } from './update.js';
import { encodeMessage } from './wire.js';

export type DecodedMessage =
  | { readonly type: 'open'; readonly result: OpenResult }
  | { readonly type: 'update'; readonly decision: UpdateDecision }
  | { readonly type: 'notification'; readonly notification: DecodedNotification }
  | { readonly type: 'keepalive' }
  | { readonly type: 'route-refresh'; readonly result: RouteRefreshResult };

/** Decodes a frame from the framer. UPDATEs need the session context; other types ignore it. */
export function decodeMessage(frame: Frame, ctx: SessionContext): DecodedMessage {
  switch (frame.type) {
    case MessageType.OPEN:
      return { type: 'open', result: decodeOpen(frame.body) };
    case MessageType.UPDATE:
      return { type: 'update', decision: decodeUpdate(frame.body, ctx) };
    case MessageType.NOTIFICATION:
      return { type: 'notification', notification: decodeNotification(frame.body) };
    case MessageType.KEEPALIVE:
      return { type: 'keepalive' };
    case MessageType.ROUTE_REFRESH:
      return { type: 'route-refresh', result: decodeRouteRefresh(frame.body, frame.bytes) };
  }
}

/** RFC 4271 section 4.4: a KEEPALIVE is a bare header. */
export const encodeKeepalive = (): Uint8Array => encodeMessage(MessageType.KEEPALIVE, new Uint8Array(0));
