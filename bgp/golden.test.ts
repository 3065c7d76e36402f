// Golden bytes: every expected hex string below was written by hand from the RFC layouts (the
// comments show the fields), not captured from this codec.
import { describe, expect, it } from 'vitest';
import { parseIP, type IP } from '../api/index.js';
import {
  AS_TRANS,
  Framer,
  SegmentType,
  WellKnownCommunity,
  asSequence,
  buildOpen,
  decodeMessage,
  decodeNotification,
  decodeOpen,
  decodeRouteRefresh,
  decodeUpdate,
  encodeEndOfRib,
  encodeKeepalive,
  encodeNotification,
  encodeOpen,
  encodeRouteRefresh,
  encodeUpdate,
  fromHex,
  parsePrefix,
  peerAS,
  shutdownNotification,
  toHex,
  type Prefix,
  type Update,
} from './index.js';

const ip = (t: string): IP => parseIP(t)!;
const pfx = (t: string): Prefix => parsePrefix(t)!;
const MARKER = 'ffffffffffffffffffffffffffffffff';
const hex = (s: string): string => s.replace(/#[^\n]*/g, '').replace(/\s+/g, '');
const body = (msg: Uint8Array): Uint8Array => msg.subarray(19);

const gr = {
  restartState: false,
  notification: false,
  restartTime: 120,
  families: [
    { afi: 1, safi: 1, forwardingState: false },
    { afi: 2, safi: 1, forwardingState: false },
  ],
};

// Capabilities parameter shared by both OPENs (RFC 5492 section 4: code, length, value):
const CAPS = (as4: string): string => `
  02 20                      # optional parameter 2 (Capabilities), 32 octets
  01 04 0001 00 01           # multiprotocol: AFI 1 (IPv4), reserved, SAFI 1 (unicast)
  01 04 0002 00 01           # multiprotocol: AFI 2 (IPv6), reserved, SAFI 1
  02 00                      # route refresh (RFC 2918)
  40 0a 0078 0001 01 00 0002 01 00  # graceful restart: flags 0, time 120; IPv4/IPv6 unicast, F=0
  41 04 ${as4}               # 4-octet AS (RFC 6793)
`;

describe('golden: KEEPALIVE', () => {
  it('is a bare 19-octet header of type 4', () => {
    expect(toHex(encodeKeepalive())).toBe(hex(`${MARKER} 0013 04`));
  });
});

describe('golden: OPEN', () => {
  it('AS 64512, hold 90, id 198.18.0.1, MP IPv4/IPv6, RR, GR, 4-octet AS', () => {
    const open = buildOpen({ asn: 64512, holdTime: 90, bgpId: ip('198.18.0.1'), families: [4, 6], gracefulRestart: gr });
    const expected = hex(`${MARKER} 003f 01
      04          # version
      fc00        # My AS 64512
      005a        # hold time 90
      c6120001    # BGP identifier 198.18.0.1
      22          # optional parameters length 34
      ${CAPS('0000fc00')}`);
    expect(toHex(encodeOpen(open))).toBe(expected);
  });

  it('AS 4200000001 puts AS_TRANS in My AS and the real AS in capability 65', () => {
    const open = buildOpen({ asn: 4200000001, holdTime: 90, bgpId: ip('198.18.0.1'), families: [4, 6], gracefulRestart: gr });
    const expected = `${MARKER} 003f 01 04 5ba0 005a c6120001 22 ${CAPS('fa56ea01')}`;
    const bytes = encodeOpen(open);
    expect(toHex(bytes)).toBe(hex(expected));

    const decoded = decodeOpen(body(bytes));
    expect(decoded.ok).toBe(true);
    if (!decoded.ok) return;
    expect(decoded.open.myAS).toBe(AS_TRANS);
    expect(peerAS(decoded.open)).toBe(4200000001);
    expect(decoded.open.holdTime).toBe(90);
    expect(decoded.open.bgpId).toEqual(ip('198.18.0.1'));
    expect(decoded.open.capabilities).toEqual({
      multiprotocol: [
        { afi: 1, safi: 1 },
        { afi: 2, safi: 1 },
      ],
      routeRefresh: true,
      enhancedRouteRefresh: false,
      extendedMessage: false,
      fourOctetAS: 4200000001,
      gracefulRestart: gr,
      unknown: [],
    });
  });
});

describe('golden: UPDATE', () => {
  const announce: Update = {
    withdrawn: [],
    nlri: [pfx('198.18.10.1/32')],
    attributes: {
      origin: 0,
      asPath: [asSequence(64512)],
      nextHop: ip('198.18.0.1'),
      communities: [64512 * 65536 + 100, WellKnownCommunity.NO_EXPORT],
      largeCommunities: [{ global: 64512, local1: 1, local2: 2 }],
    },
  };

  it('IPv4 announcement with ORIGIN, AS_PATH, NEXT_HOP, COMMUNITIES, LARGE_COMMUNITY (4-octet session)', () => {
    const expected = hex(`${MARKER} 004a 02
      0000                         # withdrawn routes length
      002e                         # total path attribute length 46
      40 01 01 00                  # ORIGIN IGP (well-known transitive)
      40 02 06 02 01 0000fc00      # AS_PATH: AS_SEQUENCE of 1, AS 64512 (4 octets)
      40 03 04 c6120001            # NEXT_HOP 198.18.0.1
      c0 08 08 fc000064 ffffff01   # COMMUNITIES 64512:100, NO_EXPORT (optional transitive)
      c0 20 0c 0000fc00 00000001 00000002  # LARGE_COMMUNITY 64512:1:2
      20 c6120a01                  # NLRI 198.18.10.1/32
    `);
    const bytes = encodeUpdate(announce, { fourOctetAS: true });
    expect(toHex(bytes)).toBe(expected);
    expect(decodeUpdate(body(bytes), { fourOctetAS: true })).toEqual({ action: 'ok', update: announce });
  });

  it('the same toward a 2-octet peer: 2-octet AS_PATH', () => {
    const expected = hex(`${MARKER} 0048 02 0000 002c
      40 01 01 00
      40 02 04 02 01 fc00
      40 03 04 c6120001
      c0 08 08 fc000064 ffffff01
      c0 20 0c 0000fc00 00000001 00000002
      20 c6120a01`);
    const bytes = encodeUpdate(announce, { fourOctetAS: false });
    expect(toHex(bytes)).toBe(expected);
    expect(decodeUpdate(body(bytes), { fourOctetAS: false })).toEqual({ action: 'ok', update: announce });
  });

  it('toward a 2-octet peer a 4-octet AS becomes AS_TRANS and AS4_PATH carries the real path', () => {
    const update: Update = {
      withdrawn: [],
      nlri: [pfx('198.18.10.0/24')],
      attributes: { origin: 0, asPath: [asSequence(4200000001, 64512)], nextHop: ip('198.18.0.1') },
    };
    const expected = hex(`${MARKER} 003c 02 0000 0021  # 33 octets of attributes
      40 01 01 00
      40 02 06 02 02 5ba0 fc00            # AS_PATH: AS_TRANS 64512
      40 03 04 c6120001
      c0 11 0a 02 02 fa56ea01 0000fc00    # AS4_PATH (optional transitive): 4200000001 64512
      18 c6120a                           # 198.18.10.0/24
    `);
    const bytes = encodeUpdate(update, { fourOctetAS: false });
    expect(toHex(bytes)).toBe(expected);
    expect(decodeUpdate(body(bytes), { fourOctetAS: false })).toEqual({ action: 'ok', update });
  });

  it('IPv6 MP_REACH_NLRI for 2001:db8:10::1/128 with a global next hop', () => {
    const update: Update = {
      withdrawn: [],
      nlri: [],
      attributes: { origin: 0, asPath: [asSequence(64512)] },
      mpReach: { family: 6, nextHop: ip('2001:db8::1'), nlri: [pfx('2001:db8:10::1/128')] },
    };
    const expected = hex(`${MARKER} 004d 02 0000 0036
      80 0e 26                              # MP_REACH_NLRI (optional non-transitive), 38 octets
      0002 01                               # AFI 2 (IPv6), SAFI 1
      10 20010db8000000000000000000000001   # next hop length 16, 2001:db8::1
      00                                    # reserved
      80 20010db8001000000000000000000001   # 2001:db8:10::1/128
      40 01 01 00
      40 02 06 02 01 0000fc00
    `);
    const bytes = encodeUpdate(update, { fourOctetAS: true });
    expect(toHex(bytes)).toBe(expected);
    expect(decodeUpdate(body(bytes), { fourOctetAS: true })).toEqual({ action: 'ok', update });
  });

  it('IPv6 MP_REACH_NLRI with the 32-octet global + link-local next hop (RFC 2545 section 3)', () => {
    const update: Update = {
      withdrawn: [],
      nlri: [],
      attributes: { origin: 0, asPath: [asSequence(64512)] },
      mpReach: { family: 6, nextHop: ip('2001:db8::1'), linkLocal: ip('fe80::1'), nlri: [pfx('2001:db8:10::1/128')] },
    };
    const expected = hex(`${MARKER} 005d 02 0000 0046
      80 0e 36 0002 01
      20 20010db8000000000000000000000001 fe800000000000000000000000000001
      00
      80 20010db8001000000000000000000001
      40 01 01 00
      40 02 06 02 01 0000fc00`);
    const bytes = encodeUpdate(update, { fourOctetAS: true });
    expect(toHex(bytes)).toBe(expected);
    expect(decodeUpdate(body(bytes), { fourOctetAS: true })).toEqual({ action: 'ok', update });
  });

  it('IPv4 withdrawal', () => {
    const bytes = encodeUpdate({ withdrawn: [pfx('198.18.10.1/32')], nlri: [], attributes: {} }, { fourOctetAS: true });
    expect(toHex(bytes)).toBe(hex(`${MARKER} 001c 02 0005 20c6120a01 0000`));
  });

  it('End-of-RIB markers (RFC 4724 section 2)', () => {
    const v4 = encodeEndOfRib(4);
    const v6 = encodeEndOfRib(6);
    expect(toHex(v4)).toBe(hex(`${MARKER} 0017 02 0000 0000`));
    // MP_UNREACH_NLRI for AFI 2 / SAFI 1 with no withdrawn routes.
    expect(toHex(v6)).toBe(hex(`${MARKER} 001d 02 0000 0006 80 0f 03 0002 01`));
    for (const [msg, family] of [
      [v4, 4],
      [v6, 6],
    ] as const) {
      expect(decodeUpdate(body(msg), { fourOctetAS: true })).toMatchObject({ action: 'ok', endOfRib: family });
    }
    // Not markers: an UPDATE with routes, or an empty MP_UNREACH_NLRI beside another attribute.
    expect(decodeUpdate(fromHex('0000 0000 20c6120a01'.replace(/\s+/g, '')), { fourOctetAS: true })).not.toHaveProperty('endOfRib');
    expect(decodeUpdate(fromHex('0000 000a 800f03000201 c0630100'.replace(/\s+/g, '')), { fourOctetAS: true })).not.toHaveProperty('endOfRib');
    // An End-of-RIB for a family we do not speak is discarded, never mistaken for IPv4's.
    expect(decodeUpdate(fromHex('0000 0006 800f03001946'.replace(/\s+/g, '')), { fourOctetAS: true })).not.toHaveProperty('endOfRib');
  });
});

describe('golden: NOTIFICATION', () => {
  it('Cease / Administrative Shutdown with a shutdown communication (RFC 9003)', () => {
    const msg = encodeNotification(shutdownNotification('maintenance'));
    // code 6, subcode 2, length 11, "maintenance" in UTF-8
    expect(toHex(msg)).toBe(hex(`${MARKER} 0021 03 06 02 0b 6d61696e74656e616e6365`));
    const d = decodeNotification(body(msg));
    expect(d.code).toBe(6);
    expect(d.subcode).toBe(2);
    expect(d.codeName).toBe('Cease');
    expect(d.subcodeName).toBe('Administrative Shutdown');
    expect(d.shutdownCommunication).toBe('maintenance');
  });
});

describe('golden: ROUTE-REFRESH', () => {
  it('IPv6 unicast request (RFC 2918 section 3)', () => {
    const msg = encodeRouteRefresh({ afi: 2, safi: 1, subtype: 0 });
    expect(toHex(msg)).toBe(hex(`${MARKER} 0017 05 0002 00 01`));
    expect(decodeRouteRefresh(body(msg))).toEqual({ action: 'ok', routeRefresh: { afi: 2, safi: 1, subtype: 0 } });
  });

  it('Enhanced Route Refresh BoRR / EoRR subtypes (RFC 7313)', () => {
    expect(toHex(encodeRouteRefresh({ afi: 1, safi: 1, subtype: 1 }))).toBe(hex(`${MARKER} 0017 05 0001 01 01`));
    expect(toHex(encodeRouteRefresh({ afi: 1, safi: 1, subtype: 2 }))).toBe(hex(`${MARKER} 0017 05 0001 02 01`));
  });
});

describe('golden: a byte stream through the framer', () => {
  it('splits concatenated messages fed one octet at a time', () => {
    const open = encodeOpen(buildOpen({ asn: 64512, holdTime: 90, bgpId: ip('198.18.0.1') }));
    const stream = fromHex(toHex(open) + toHex(encodeKeepalive()) + toHex(encodeEndOfRib(4)));
    const framer = new Framer();
    const types: string[] = [];
    for (const byte of stream) {
      const r = framer.push(Uint8Array.of(byte));
      expect(r.error).toBeUndefined();
      for (const f of r.frames) types.push(decodeMessage(f, { fourOctetAS: true }).type);
    }
    expect(types).toEqual(['open', 'keepalive', 'update']);
    expect(framer.buffered).toBe(0);
  });

  it('AS_CONFED segments survive a 4-octet round trip', () => {
    const update: Update = {
      withdrawn: [],
      nlri: [pfx('198.18.0.0/15')],
      attributes: {
        origin: 2,
        asPath: [{ type: SegmentType.AS_CONFED_SEQUENCE, asns: [64600] }, asSequence(64512)],
        nextHop: ip('198.18.0.1'),
      },
    };
    expect(decodeUpdate(body(encodeUpdate(update, { fourOctetAS: true })), { fourOctetAS: true })).toEqual({ action: 'ok', update });
  });
});
