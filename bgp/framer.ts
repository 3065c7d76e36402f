// Splits a TCP byte stream into BGP messages and checks each header (RFC 4271 sections 4.1 and
// 6.1). A header error leaves the stream unsynchronized, so the framer stops at the first one.

import {
  HEADER_LENGTH,
  MARKER_LENGTH,
  MAX_MESSAGE_LENGTH,
  MIN_MESSAGE_LENGTH,
  MessageType,
  type MessageTypeCode,
} from './constants.js';
import { ErrorCode, HeaderSubcode, notification, type Notification } from './notification.js';
import { concatBytes } from './wire.js';

export interface Frame {
  readonly type: MessageTypeCode;
  /** The whole message, header included (a NOTIFICATION may need to quote it). */
  readonly bytes: Uint8Array;
  /** The message without its header. */
  readonly body: Uint8Array;
}

export type FrameErrorReason = 'bad_marker' | 'bad_length' | 'bad_type';

export interface FrameError {
  readonly notification: Notification;
  readonly reason: FrameErrorReason;
}

export type FrameResult =
  | { readonly kind: 'frame'; readonly frame: Frame; readonly next: number }
  | { readonly kind: 'incomplete' }
  | ({ readonly kind: 'error' } & FrameError);

export interface FramerOptions {
  /** 4096, or 65535 once RFC 8654 Extended Messages are negotiated. */
  readonly maxLength?: number;
}

const isKnownType = (type: number): type is MessageTypeCode => type >= MessageType.OPEN && type <= MessageType.ROUTE_REFRESH;

function lengthError(field: Uint8Array): FrameError {
  // RFC 4271 section 6.1: the Data field carries the erroneous Length field.
  return { reason: 'bad_length', notification: notification(ErrorCode.MESSAGE_HEADER, HeaderSubcode.BAD_MESSAGE_LENGTH, field.slice()) };
}

/** Reads the message starting at `offset`, if all of it has arrived. */
export function readFrame(buf: Uint8Array, offset = 0, options: FramerOptions = {}): FrameResult {
  const maxLength = options.maxLength ?? MAX_MESSAGE_LENGTH;
  if (buf.length - offset < HEADER_LENGTH) {
    // Fail early on a bad marker rather than waiting for a header that will never be valid.
    for (let i = offset; i < Math.min(buf.length, offset + MARKER_LENGTH); i++) {
      if (buf[i] !== 0xff) return markerError();
    }
    return { kind: 'incomplete' };
  }
  for (let i = 0; i < MARKER_LENGTH; i++) if (buf[offset + i] !== 0xff) return markerError();
  const length = (buf[offset + 16]! << 8) | buf[offset + 17]!;
  const type = buf[offset + 18]!;
  const lengthField = buf.subarray(offset + 16, offset + 18);
  if (length < HEADER_LENGTH || length > maxLength) return { kind: 'error', ...lengthError(lengthField) };
  if (!isKnownType(type)) {
    return {
      kind: 'error',
      reason: 'bad_type',
      notification: notification(ErrorCode.MESSAGE_HEADER, HeaderSubcode.BAD_MESSAGE_TYPE, Uint8Array.of(type)),
    };
  }
  const min = MIN_MESSAGE_LENGTH[type];
  // KEEPALIVE is exactly a header; OPEN and KEEPALIVE never grow past 4096 (RFC 8654 section 3).
  const tooShort = type === MessageType.KEEPALIVE ? length !== min : length < min;
  const tooLong = (type === MessageType.OPEN || type === MessageType.KEEPALIVE) && length > MAX_MESSAGE_LENGTH;
  if (tooShort || tooLong) return { kind: 'error', ...lengthError(lengthField) };
  if (buf.length - offset < length) return { kind: 'incomplete' };
  const bytes = buf.subarray(offset, offset + length);
  return { kind: 'frame', frame: { type, bytes, body: bytes.subarray(HEADER_LENGTH) }, next: offset + length };
}

function markerError(): FrameResult {
  return {
    kind: 'error',
    reason: 'bad_marker',
    notification: notification(ErrorCode.MESSAGE_HEADER, HeaderSubcode.CONNECTION_NOT_SYNCHRONIZED),
  };
}

export interface PushResult {
  readonly frames: Frame[];
  /** Set once the stream is broken; every later push returns it again. */
  readonly error?: FrameError;
}

/**
 * Accumulates chunks and hands back whole messages. Pure apart from its buffer: the transport
 * feeds it bytes and acts on the frames and the error it returns. Frames may share memory with
 * the pushed chunk, so a caller that reuses its read buffer must copy them first.
 */
export class Framer {
  private pending: Uint8Array = new Uint8Array(0);
  private failed: FrameError | undefined;

  constructor(private options: FramerOptions = {}) {}

  /** Raise the limit once RFC 8654 Extended Messages are negotiated. */
  setMaxLength(maxLength: number): void {
    this.options = { ...this.options, maxLength };
  }

  get buffered(): number {
    return this.pending.length;
  }

  push(chunk: Uint8Array): PushResult {
    if (this.failed !== undefined) return { frames: [], error: this.failed };
    const buf = this.pending.length === 0 ? chunk : concatBytes([this.pending, chunk]);
    const frames: Frame[] = [];
    let offset = 0;
    for (;;) {
      const r = readFrame(buf, offset, this.options);
      if (r.kind === 'frame') {
        frames.push(r.frame);
        offset = r.next;
        continue;
      }
      if (r.kind === 'error') {
        this.failed = { notification: r.notification, reason: r.reason };
        this.pending = new Uint8Array(0);
        return { frames, error: this.failed };
      }
      break;
    }
    // Copy the tail so a large chunk is not kept alive by a few leftover bytes.
    this.pending = offset === buf.length ? new Uint8Array(0) : buf.slice(offset);
    return { frames };
  }
}
