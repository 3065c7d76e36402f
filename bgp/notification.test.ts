// NOTIFICATION names and data (RFC 4271 section 4.5, RFC 4486, RFC 8538, RFC 9003) and ROUTE-REFRESH errors (RFC 7313).
import { describe, expect, it } from 'vitest';
import {
  NOTIFICATION_NAMES,
  decodeNotification,
  decodeRouteRefresh,
  describeNotification,
  encodeNotification,
  fromHex,
  notification,
  notificationNames,
  shutdownCommunicationData,
  toHex,
} from './index.js';

describe('notification names', () => {
  it('names every code and subcode the RFCs define', () => {
    expect(describeNotification({ code: 3, subcode: 1 })).toBe('UPDATE Message Error / Malformed Attribute List (3/1)');
    expect(notificationNames(1, 1)).toEqual({ code: 'Message Header Error', subcode: 'Connection Not Synchronized' });
    expect(notificationNames(2, 7).subcode).toBe('Unsupported Capability');
    expect(notificationNames(4, 0)).toEqual({ code: 'Hold Timer Expired', subcode: 'Unspecific' });
    expect(notificationNames(5, 3).subcode).toBe('Receive Unexpected Message in Established State');
    expect(notificationNames(6, 9).subcode).toBe('Hard Reset');
    expect(notificationNames(7, 1)).toEqual({ code: 'ROUTE-REFRESH Message Error', subcode: 'Invalid Message Length' });
    expect(notificationNames(9, 9)).toEqual({ code: 'Unknown (9)', subcode: 'Unknown (9)' });
    expect(Object.keys(NOTIFICATION_NAMES).map(Number)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(Object.keys(NOTIFICATION_NAMES[6]!.subcodes).map(Number)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });
});

describe('decodeNotification', () => {
  const decode = (hex: string) => decodeNotification(fromHex(hex.replace(/\s+/g, '')));

  it('keeps the data of any code', () => {
    const d = decode('0302 406302abcd');
    expect(d).toMatchObject({ code: 3, subcode: 2, codeName: 'UPDATE Message Error', subcodeName: 'Unrecognized Well-known Attribute' });
    expect(toHex(d.data)).toBe('406302abcd');
  });

  it('RFC 9003 shutdown communication: text, empty, absent, overrun, invalid UTF-8', () => {
    expect(decode('0604 05 68c3a96c6c').shutdownCommunication).toBe('héll');
    expect(decode('0602 00').shutdownCommunication).toBe('');
    expect(decode('0602').shutdownCommunication).toBeUndefined();
    expect(decode('0602 05 6869').shutdownCommunicationError).toBe('length_overrun');
    expect(decode('0602 02 c328').shutdownCommunicationError).toBe('invalid_utf8');
  });

  it('shutdown text past 255 octets is cut on a character boundary', () => {
    const data = shutdownCommunicationData('é'.repeat(200)); // 400 octets of UTF-8
    expect(data[0]).toBe(254);
    expect(decodeNotification(new Uint8Array([6, 2, ...data])).shutdownCommunication).toBe('é'.repeat(127));
  });

  it('RFC 4486 maximum prefixes data', () => {
    expect(decode('0601 0002 01 00001388').maxPrefixes).toEqual({ afi: 2, safi: 1, limit: 5000 });
  });

  it('RFC 8538 hard reset carries the original NOTIFICATION', () => {
    const d = decode('0609 0602 03 6279 65');
    expect(d.hardReset).toMatchObject({ code: 6, subcode: 2, shutdownCommunication: 'bye' });
  });

  it('round-trips through the encoder', () => {
    const msg = encodeNotification(notification(2, 6));
    expect(toHex(msg)).toBe(`${'ff'.repeat(16)}0015030206`);
    expect(decodeNotification(msg.subarray(19))).toMatchObject({ code: 2, subcode: 6, subcodeName: 'Unacceptable Hold Time' });
  });
});

describe('decodeRouteRefresh (RFC 7313)', () => {
  it('BoRR / EoRR of the wrong length: 7/1 quoting the whole message', () => {
    const message = fromHex(`${'ff'.repeat(16)}0018050001010100`);
    const r = decodeRouteRefresh(message.subarray(19), message);
    expect(r.action).toBe('session-reset');
    if (r.action !== 'session-reset') return;
    expect(r.notification).toEqual({ code: 7, subcode: 1, data: message });
  });

  it('an unknown subtype is ignored', () => {
    expect(decodeRouteRefresh(fromHex('00010301'))).toEqual({ action: 'ignore', reason: 'unknown_subtype' });
  });

  it('a request carrying ORF entries is read, the entries skipped', () => {
    expect(decodeRouteRefresh(fromHex('00010001 01 0203'))).toEqual({ action: 'ok', routeRefresh: { afi: 1, safi: 1, subtype: 0 } });
  });
});
