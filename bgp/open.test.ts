// OPEN decoding rules (RFC 4271 section 6.2, RFC 5492, RFC 6793, RFC 7607, RFC 9072) and negotiation.
import { describe, expect, it } from 'vitest';
import { parseIP, type IP } from '../api/index.js';
import { buildOpen, decodeOpen, encodeOpen, fromHex, negotiate, toHex, type Open, type OpenErrorReason } from './index.js';

const ip = (t: string): IP => parseIP(t)!;
const clean = (s: string): string => s.replace(/\s+/g, '');
/** An OPEN body: version, My AS, hold time, identifier, then optional parameters as given. */
const openBody = (params: string, opts: { version?: string; as?: string; hold?: string; id?: string; optLength?: number } = {}): Uint8Array => {
  const p = clean(params);
  const optLength = opts.optLength ?? p.length / 2;
  return fromHex(clean(`${opts.version ?? '04'} ${opts.as ?? 'fc00'} ${opts.hold ?? '005a'} ${opts.id ?? 'c6120001'}`) + optLength.toString(16).padStart(2, '0') + p);
};

function expectError(body: Uint8Array, reason: OpenErrorReason, subcode: number, data = ''): void {
  const r = decodeOpen(body);
  expect(r.ok).toBe(false);
  if (r.ok) return;
  expect(r.reason).toBe(reason);
  expect(r.notification.code).toBe(2);
  expect(r.notification.subcode).toBe(subcode);
  expect(toHex(r.notification.data)).toBe(data);
}

describe('decodeOpen', () => {
  it('an OPEN without optional parameters', () => {
    const r = decodeOpen(openBody(''));
    expect(r).toEqual({
      ok: true,
      open: {
        version: 4,
        myAS: 64512,
        holdTime: 90,
        bgpId: ip('198.18.0.1'),
        capabilities: { multiprotocol: [], routeRefresh: false, enhancedRouteRefresh: false, extendedMessage: false, unknown: [] },
      },
    });
  });

  it('version other than 4: 2/1 with 4 as data', () => {
    expectError(openBody('', { version: '03' }), 'unsupported_version', 1, '0004');
    expectError(openBody('', { version: '05' }), 'unsupported_version', 1, '0004');
  });

  it('hold time 1 or 2: 2/6; 0 and 3 are fine', () => {
    expectError(openBody('', { hold: '0001' }), 'unacceptable_hold_time', 6);
    expectError(openBody('', { hold: '0002' }), 'unacceptable_hold_time', 6);
    expect(decodeOpen(openBody('', { hold: '0000' })).ok).toBe(true);
    expect(decodeOpen(openBody('', { hold: '0003' })).ok).toBe(true);
  });

  it('BGP identifier 0: 2/3 (RFC 6286)', () => {
    expectError(openBody('', { id: '00000000' }), 'bad_bgp_identifier', 3);
  });

  it('AS 0 in My AS or in the 4-octet capability: 2/2 (RFC 7607)', () => {
    expectError(openBody('', { as: '0000' }), 'bad_peer_as', 2);
    expectError(openBody('0206 4104 00000000', { as: '5ba0' }), 'bad_peer_as', 2);
  });

  it('an optional parameter other than capabilities: 2/4', () => {
    expectError(openBody('0102 abcd'), 'unsupported_optional_parameter', 4);
  });

  it('malformed parameters or capabilities: 2/0 Unspecific', () => {
    expectError(openBody('0205 0103 000100'), 'capability_malformed', 0); // MP of length 3
    expectError(openBody('0203 0105 00'), 'capability_malformed', 0); // capability past its parameter
    expectError(openBody('0201 02'), 'capability_malformed', 0); // half a capability header
    expectError(openBody('0205 4003 007800'), 'capability_malformed', 0); // graceful restart of length 3
    expectError(openBody('0208 4106 0000fc000000'), 'capability_malformed', 0); // 4-octet AS of length 6
  });

  it('optional parameters length that disagrees with the message: 2/0', () => {
    expectError(openBody('0202 0200', { optLength: 3 }), 'optional_parameters_malformed', 0);
    expectError(openBody('0202 0200', { optLength: 2 }).subarray(0, 12), 'optional_parameters_malformed', 0);
    expectError(new Uint8Array([...openBody('0202 0200'), 0]), 'optional_parameters_malformed', 0);
  });

  it('keeps unknown capabilities for the log and never re-advertises them', () => {
    const r = decodeOpen(openBody('0209 4500 4b03 010203 0200'));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.open.capabilities.unknown).toEqual([
      { code: 0x45, value: new Uint8Array(0) },
      { code: 0x4b, value: fromHex('010203') },
    ]);
    expect(r.open.capabilities.routeRefresh).toBe(true);
    expect(toHex(encodeOpen(r.open))).toBe(clean(`${'ff'.repeat(16)} 0021 01 04 fc00 005a c6120001 04 0202 0200`));
  });

  it('merges capabilities spread over several parameters (RFC 5492 section 4)', () => {
    const r = decodeOpen(openBody('0206 0104 00010001  0206 0104 00020001  0202 4600'));
    expect(r.ok && r.open.capabilities).toMatchObject({
      multiprotocol: [
        { afi: 1, safi: 1 },
        { afi: 2, safi: 1 },
      ],
      enhancedRouteRefresh: true,
    });
  });

  it('reads graceful restart flags: R, N and per-family F (RFC 4724, RFC 8538)', () => {
    const r = decodeOpen(openBody('020c 400a c0b4 0001 01 80 0002 01 00'));
    expect(r.ok && r.open.capabilities.gracefulRestart).toEqual({
      restartState: true,
      notification: true,
      restartTime: 180,
      families: [
        { afi: 1, safi: 1, forwardingState: true },
        { afi: 2, safi: 1, forwardingState: false },
      ],
    });
  });

  it('RFC 9072 extended optional parameters, read and written', () => {
    // Non-Ext OP Len 255, Non-Ext OP Type 255, Extended Opt. Parm. Length 7, then type 2 with a 2-octet length 4.
    const r = decodeOpen(fromHex(clean('04 fc00 005a c6120001 ff ff 0007 02 0004 0200 0600')));
    expect(r.ok && r.open.capabilities).toMatchObject({ routeRefresh: true, extendedMessage: true });

    // Enough capabilities to pass 255 octets force the extended form on the way out.
    const base = buildOpen({ asn: 64512, holdTime: 90, bgpId: ip('198.18.0.1') });
    const multiprotocol = Array.from({ length: 45 }, (_, k) => ({ afi: 1 + (k % 2), safi: k + 1 }));
    const open: Open = { ...base, capabilities: { ...base.capabilities, multiprotocol } };
    const bytes = encodeOpen(open);
    expect(bytes.length).toBeGreaterThan(19 + 13 + 255);
    expect(bytes[28]).toBe(255);
    expect(bytes[29]).toBe(255);
    const back = decodeOpen(bytes.subarray(19));
    expect(back).toEqual({ ok: true, open });
  });
});

describe('buildOpen / negotiate', () => {
  const local = buildOpen({ asn: 4200000001, holdTime: 90, bgpId: ip('198.18.0.1'), families: [4, 6] });

  it('refuses local values the protocol cannot carry', () => {
    const families = Array.from({ length: 64 }, (_, k) => ({ afi: 1, safi: k + 1, forwardingState: false }));
    const gr = { restartState: false, notification: false, restartTime: 90, families };
    expect(() => encodeOpen(buildOpen({ asn: 64512, holdTime: 90, bgpId: ip('198.18.0.1'), gracefulRestart: gr }))).toThrow(RangeError);
    expect(() => buildOpen({ asn: 0, holdTime: 90, bgpId: ip('198.18.0.1') })).toThrow(RangeError);
    expect(() => buildOpen({ asn: 64512, holdTime: 2, bgpId: ip('198.18.0.1') })).toThrow(RangeError);
    expect(() => buildOpen({ asn: 64512, holdTime: 90, bgpId: ip('0.0.0.0') })).toThrow(RangeError);
  });

  it('takes the smaller hold time, the common families and 4-octet AS only when both have it', () => {
    const remote: Open = {
      version: 4,
      myAS: 65001,
      holdTime: 30,
      bgpId: ip('198.18.0.2'),
      capabilities: { multiprotocol: [{ afi: 2, safi: 1 }], routeRefresh: true, enhancedRouteRefresh: false, extendedMessage: false, unknown: [] },
    };
    expect(negotiate(local, remote)).toEqual({
      holdTime: 30,
      keepaliveTime: 10,
      peerAS: 65001,
      fourOctetAS: false,
      families: [{ afi: 2, safi: 1 }],
      routeRefresh: true,
      enhancedRouteRefresh: false,
      extendedMessage: false,
    });
  });

  it('a peer without multiprotocol capabilities speaks IPv4 unicast (RFC 4760 section 8)', () => {
    const remote = buildOpen({ asn: 65001, holdTime: 0, bgpId: ip('198.18.0.2'), families: [] });
    const n = negotiate(local, remote);
    expect(n.families).toEqual([{ afi: 1, safi: 1 }]);
    expect(n.holdTime).toBe(0);
    expect(n.fourOctetAS).toBe(true);
  });
});
