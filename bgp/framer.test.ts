// Header checks (RFC 4271 section 6.1) and stream splitting.
import { describe, expect, it } from 'vitest';
import { Framer, encodeKeepalive, encodeMessage, fromHex, readFrame, toHex, type FrameErrorReason } from './index.js';

const MARKER = 'ff'.repeat(16);
const header = (length: number, type: number): Uint8Array =>
  fromHex(MARKER + length.toString(16).padStart(4, '0') + type.toString(16).padStart(2, '0'));
const withBody = (length: number, type: number): Uint8Array => {
  const out = new Uint8Array(Math.max(length, 19));
  out.set(header(length, type));
  return out;
};

function expectError(bytes: Uint8Array, reason: FrameErrorReason, subcode: number, data: string, maxLength?: number): void {
  const r = readFrame(bytes, 0, maxLength === undefined ? {} : { maxLength });
  expect(r.kind).toBe('error');
  if (r.kind !== 'error') return;
  expect(r.reason).toBe(reason);
  expect(r.notification.code).toBe(1);
  expect(r.notification.subcode).toBe(subcode);
  expect(toHex(r.notification.data)).toBe(data);
}

describe('readFrame', () => {
  it('a marker that is not all ones: 1/1 Connection Not Synchronized, found before the header is complete', () => {
    const bad = encodeKeepalive();
    bad[3] = 0xfe;
    expectError(bad, 'bad_marker', 1, '');
    expectError(bad.subarray(0, 5), 'bad_marker', 1, '');
  });

  it('a length below 19 or above the maximum: 1/2 with the Length field as data', () => {
    expectError(header(18, 4), 'bad_length', 2, '0012');
    expectError(withBody(4097, 2), 'bad_length', 2, '1001');
  });

  it('a length below the minimum for the type: 1/2 (OPEN 29, UPDATE 23, NOTIFICATION 21, ROUTE-REFRESH 23, KEEPALIVE exactly 19)', () => {
    expectError(withBody(28, 1), 'bad_length', 2, '001c');
    expectError(withBody(22, 2), 'bad_length', 2, '0016');
    expectError(withBody(20, 3), 'bad_length', 2, '0014');
    expectError(withBody(20, 4), 'bad_length', 2, '0014');
    expectError(withBody(22, 5), 'bad_length', 2, '0016');
  });

  it('an unknown type: 1/3 Bad Message Type with the type as data', () => {
    expectError(withBody(19, 6), 'bad_type', 3, '06');
    expectError(withBody(30, 0), 'bad_type', 3, '00');
  });

  it('RFC 8654: longer UPDATEs once extended messages are negotiated, never a longer OPEN or KEEPALIVE', () => {
    const update = withBody(5000, 2);
    expect(readFrame(update, 0, { maxLength: 65535 }).kind).toBe('frame');
    expectError(withBody(5000, 1), 'bad_length', 2, '1388', 65535);
  });

  it('waits for the rest of a message', () => {
    expect(readFrame(withBody(40, 2).subarray(0, 30)).kind).toBe('incomplete');
    expect(readFrame(new Uint8Array(0)).kind).toBe('incomplete');
  });
});

describe('Framer', () => {
  it('returns frames across chunk boundaries and keeps the remainder', () => {
    const a = encodeMessage(2, fromHex('00000000'));
    const b = encodeKeepalive();
    const stream = new Uint8Array([...a, ...b, ...a]);
    const framer = new Framer();
    const r1 = framer.push(stream.subarray(0, 30));
    expect(r1.frames.map((f) => f.type)).toEqual([2]);
    expect(framer.buffered).toBe(7);
    const r2 = framer.push(stream.subarray(30));
    expect(r2.frames.map((f) => f.type)).toEqual([4, 2]);
    expect(r2.frames[1]!.body).toEqual(fromHex('00000000'));
    expect(framer.buffered).toBe(0);
  });

  it('stops at the first header error and keeps reporting it', () => {
    const framer = new Framer();
    const bad = withBody(19, 9);
    const r = framer.push(new Uint8Array([...encodeKeepalive(), ...bad, ...encodeKeepalive()]));
    expect(r.frames).toHaveLength(1);
    expect(r.error?.reason).toBe('bad_type');
    expect(framer.push(encodeKeepalive())).toEqual({ frames: [], error: r.error });
  });

  it('setMaxLength raises the limit for later messages', () => {
    const framer = new Framer();
    framer.setMaxLength(65535);
    expect(framer.push(withBody(5000, 2)).frames).toHaveLength(1);
  });
});
