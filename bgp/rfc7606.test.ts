// Every RFC 7606 decision the UPDATE decoder can take, each from a crafted message.
import { describe, expect, it } from 'vitest';
import { parseIP } from '../api/index.js';
import {
  AttrType,
  decodeUpdate,
  encodeUpdate,
  fromHex,
  parsePrefix,
  toHex,
  type AttributeIssue,
  type Prefix,
  type SessionContext,
  type UpdateDecision,
  type UpdateErrorReason,
} from './index.js';

const pfx = (t: string): Prefix => parsePrefix(t)!;
const clean = (s: string): string => s.replace(/#[^\n]*/g, '').replace(/\s+/g, '');

/** One attribute: flags, type, 1-octet length (2 with the Extended Length bit), value. */
function attr(flags: number, type: number, valueHex: string): string {
  const value = clean(valueHex);
  const length = value.length / 2;
  const h = (n: number, w: number): string => n.toString(16).padStart(w, '0');
  return h(flags, 2) + h(type, 2) + ((flags & 0x10) !== 0 ? h(length, 4) : h(length, 2)) + value;
}

/** An UPDATE body from hex pieces; lengths are computed unless given. */
function body(parts: { withdrawn?: string; attrs?: string[]; nlri?: string; withdrawnLength?: number; attrLength?: number }): Uint8Array {
  const w = clean(parts.withdrawn ?? '');
  const a = (parts.attrs ?? []).map(clean).join('');
  const h4 = (n: number): string => n.toString(16).padStart(4, '0');
  return fromHex(h4(parts.withdrawnLength ?? w.length / 2) + w + h4(parts.attrLength ?? a.length / 2) + a + clean(parts.nlri ?? ''));
}

const ORIGIN = attr(0x40, 1, '00');
const AS_PATH = attr(0x40, 2, '02 01 0000fc00'); // AS_SEQUENCE [64512], 4-octet
const AS_PATH2 = attr(0x40, 2, '02 01 fc00'); // the same, 2-octet
const NEXT_HOP = attr(0x40, 3, 'c6120001');
const NLRI = '20 c6120a01'; // 198.18.10.1/32
const MP_REACH_V6 = attr(0x80, 14, '0002 01 10 20010db8000000000000000000000001 00 80 20010db8001000000000000000000001');
const MP_UNREACH_V6 = attr(0x80, 15, '0002 01 80 20010db8002000000000000000000001');

const NEW: SessionContext = { fourOctetAS: true };
const OLD: SessionContext = { fourOctetAS: false };
const IBGP: SessionContext = { fourOctetAS: true, external: false };
const EBGP: SessionContext = { fourOctetAS: true, external: true };

function expectWithdraw(d: UpdateDecision, reason: UpdateErrorReason, type?: number): Extract<UpdateDecision, { action: 'treat-as-withdraw' }> {
  expect(d.action, JSON.stringify(d, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))).toBe('treat-as-withdraw');
  if (d.action !== 'treat-as-withdraw') throw new Error('unreachable');
  expect(d.reason).toBe(reason);
  if (type !== undefined) expect(d.errors[0]!.type).toBe(type);
  return d;
}

function expectReset(d: UpdateDecision, reason: UpdateErrorReason, subcode: number): Extract<UpdateDecision, { action: 'session-reset' }> {
  expect(d.action).toBe('session-reset');
  if (d.action !== 'session-reset') throw new Error('unreachable');
  expect(d.reason).toBe(reason);
  expect(d.notification.code).toBe(3);
  expect(d.notification.subcode).toBe(subcode);
  return d;
}

function expectDiscard(d: UpdateDecision, discarded: AttributeIssue[]): Extract<UpdateDecision, { action: 'attribute-discard' }> {
  expect(d.action).toBe('attribute-discard');
  if (d.action !== 'attribute-discard') throw new Error('unreachable');
  expect(d.discarded).toEqual(discarded);
  return d;
}

describe('RFC 7606: session reset', () => {
  it('Withdrawn Routes Length past the message end: 3/1 Malformed Attribute List', () => {
    expectReset(decodeUpdate(body({ withdrawnLength: 16 }), NEW), 'withdrawn_length_overrun', 1);
  });

  it('Total Path Attribute Length past the message end: 3/1', () => {
    expectReset(decodeUpdate(body({ attrs: [ORIGIN], attrLength: 40 }), NEW), 'attribute_length_overrun_message', 1);
  });

  it('withdrawn prefix longer than 32 bits: 3/10 Invalid Network Field (section 5.3)', () => {
    expectReset(decodeUpdate(body({ withdrawn: '21 c6120a0100' }), NEW), 'withdrawn_invalid', 10);
  });

  it('withdrawn prefix overrunning its field: 3/10', () => {
    expectReset(decodeUpdate(body({ withdrawn: '20 c612' }), NEW), 'withdrawn_invalid', 10);
  });

  it('NLRI prefix longer than 32 bits or overrunning: 3/10', () => {
    expectReset(decodeUpdate(body({ attrs: [ORIGIN, AS_PATH, NEXT_HOP], nlri: '21 c6120a0100' }), NEW), 'nlri_invalid', 10);
    expectReset(decodeUpdate(body({ attrs: [ORIGIN, AS_PATH, NEXT_HOP], nlri: '18 c612' }), NEW), 'nlri_invalid', 10);
  });

  it('MP_REACH_NLRI prefix longer than 128 bits: 3/9 Optional Attribute Error', () => {
    const mp = attr(0x80, 14, '0002 01 10 20010db8000000000000000000000001 00 81 20010db800100000000000000000000100');
    expectReset(decodeUpdate(body({ attrs: [mp, ORIGIN, AS_PATH] }), NEW), 'mp_reach_nlri_invalid', 9);
  });

  it('MP_REACH_NLRI next hop length we cannot read: 3/9 (section 7.11)', () => {
    const mp = attr(0x80, 14, '0002 01 05 20010db800 00 40 20010db800100000');
    const d = expectReset(decodeUpdate(body({ attrs: [mp, ORIGIN, AS_PATH] }), NEW), 'mp_reach_next_hop_length', 9);
    // RFC 4271 section 6.3: Optional Attribute Error carries the attribute.
    expect(toHex(d.notification.data)).toBe(clean(mp));
  });

  it('MP_REACH_NLRI too short, or its next hop past its end: 3/9', () => {
    expectReset(decodeUpdate(body({ attrs: [attr(0x80, 14, '0002 01 00')] }), NEW), 'mp_reach_malformed', 9);
    expectReset(decodeUpdate(body({ attrs: [attr(0x80, 14, '0002 01 10 2001 00')] }), NEW), 'mp_reach_malformed', 9);
  });

  it('MP_UNREACH_NLRI too short or with a bad prefix: 3/9', () => {
    expectReset(decodeUpdate(body({ attrs: [attr(0x80, 15, '0002')] }), NEW), 'mp_unreach_malformed', 9);
    expectReset(decodeUpdate(body({ attrs: [attr(0x80, 15, '0002 01 90 20010db8')] }), NEW), 'mp_unreach_nlri_invalid', 9);
  });

  it('MP_REACH_NLRI twice: 3/1 (section 3.g)', () => {
    expectReset(decodeUpdate(body({ attrs: [MP_REACH_V6, ORIGIN, AS_PATH, MP_REACH_V6] }), NEW), 'mp_duplicate', 1);
    expectReset(decodeUpdate(body({ attrs: [MP_UNREACH_V6, MP_UNREACH_V6] }), NEW), 'mp_duplicate', 1);
  });

  it('an MP attribute whose length overruns the attributes: its routes cannot be found, so reset', () => {
    const mp = clean(MP_REACH_V6);
    const cut = mp.slice(0, mp.length - 4); // two octets short of its stated length
    expectReset(decodeUpdate(body({ attrs: [ORIGIN, AS_PATH, cut] }), NEW), 'mp_attribute_overrun', 9);
  });

  it('unrecognized well-known attribute: 3/2 with the attribute as data (RFC 4271 section 6.3)', () => {
    const unknown = attr(0x40, 99, 'abcd');
    const d = expectReset(decodeUpdate(body({ attrs: [ORIGIN, AS_PATH, NEXT_HOP, unknown], nlri: NLRI }), NEW), 'unrecognized_well_known', 2);
    expect(toHex(d.notification.data)).toBe(clean(unknown));
  });
});

describe('RFC 7606: treat-as-withdraw', () => {
  const withAll = (bad: string, ctx: SessionContext = NEW): UpdateDecision =>
    decodeUpdate(body({ attrs: [ORIGIN, AS_PATH, NEXT_HOP, bad].filter((a) => a !== ''), nlri: NLRI }), ctx);

  it('withdraws every route in the UPDATE: withdrawn field, MP_UNREACH, NLRI and MP_REACH', () => {
    const d = decodeUpdate(
      body({ withdrawn: '18 c61214', attrs: [MP_REACH_V6, MP_UNREACH_V6, attr(0x40, 1, '07'), AS_PATH, NEXT_HOP], nlri: NLRI }),
      NEW,
    );
    const w = expectWithdraw(d, 'origin_value', AttrType.ORIGIN);
    expect(w.withdrawn).toEqual([pfx('198.18.20.0/24'), pfx('2001:db8:20::1/128'), pfx('198.18.10.1/32'), pfx('2001:db8:10::1/128')]);
  });

  it('ORIGIN of the wrong length or an undefined value (section 7.1)', () => {
    expectWithdraw(decodeUpdate(body({ attrs: [attr(0x40, 1, '0000'), AS_PATH, NEXT_HOP], nlri: NLRI }), NEW), 'origin_length', 1);
    expectWithdraw(decodeUpdate(body({ attrs: [attr(0x40, 1, '03'), AS_PATH, NEXT_HOP], nlri: NLRI }), NEW), 'origin_value', 1);
  });

  it('malformed AS_PATH (section 7.2): unknown segment type, empty segment, overrun, lone octet', () => {
    for (const value of ['05 01 0000fc00', '02 00', '02 02 0000fc00', '02 01 0000fc00 02', '02 01 fc00']) {
      const d = decodeUpdate(body({ attrs: [ORIGIN, attr(0x40, 2, value), NEXT_HOP], nlri: NLRI }), NEW);
      expectWithdraw(d, 'as_path_malformed', 2);
    }
  });

  it('AS 0 in AS_PATH (RFC 7607 section 2)', () => {
    expectWithdraw(decodeUpdate(body({ attrs: [ORIGIN, attr(0x40, 2, '02 02 0000fc00 00000000'), NEXT_HOP], nlri: NLRI }), NEW), 'as_path_as_zero', 2);
  });

  it('NEXT_HOP of the wrong length, or not a host address (section 7.3)', () => {
    expectWithdraw(decodeUpdate(body({ attrs: [ORIGIN, AS_PATH, attr(0x40, 3, 'c612000101')], nlri: NLRI }), NEW), 'next_hop_length', 3);
    for (const nh of ['00000000', '7f000001', 'e0000001', 'ffffffff']) {
      expectWithdraw(decodeUpdate(body({ attrs: [ORIGIN, AS_PATH, attr(0x40, 3, nh)], nlri: NLRI }), NEW), 'next_hop_invalid', 3);
    }
  });

  it('MULTI_EXIT_DISC and LOCAL_PREF of the wrong length (sections 7.4, 7.5)', () => {
    expectWithdraw(withAll(attr(0x80, 4, '000001')), 'med_length', 4);
    expectWithdraw(withAll(attr(0x40, 5, '000064', ), IBGP), 'local_pref_length', 5);
  });

  it('COMMUNITIES not a non-zero multiple of 4 (section 7.8)', () => {
    expectWithdraw(withAll(attr(0xc0, 8, 'fc000064 ffff')), 'communities_length', 8);
    expectWithdraw(withAll(attr(0xc0, 8, '')), 'communities_length', 8);
  });

  it('LARGE_COMMUNITIES not a non-zero multiple of 12 (RFC 8092 section 5)', () => {
    expectWithdraw(withAll(attr(0xc0, 32, '0000fc00 00000001')), 'large_communities_length', 32);
    expectWithdraw(withAll(attr(0xc0, 32, '')), 'large_communities_length', 32);
  });

  it('EXTENDED_COMMUNITIES, ORIGINATOR_ID, CLUSTER_LIST of bad length (sections 7.14, 7.9, 7.10)', () => {
    expectWithdraw(withAll(attr(0xc0, 16, '00020000fc00')), 'extended_communities_length', 16);
    expectWithdraw(withAll(attr(0x80, 9, 'c61200'), IBGP), 'originator_id_length', 9);
    expectWithdraw(withAll(attr(0x80, 10, 'c6120001 c612'), IBGP), 'cluster_list_length', 10);
  });

  it('Optional/Transitive flags that contradict the attribute (section 3.c)', () => {
    expectWithdraw(decodeUpdate(body({ attrs: [attr(0xc0, 1, '00'), AS_PATH, NEXT_HOP], nlri: NLRI }), NEW), 'attribute_flags', 1);
    expectWithdraw(withAll(attr(0xc0, 4, '00000001')), 'attribute_flags', 4); // MED is non-transitive
    expectWithdraw(withAll(attr(0x80, 8, 'fc000064')), 'attribute_flags', 8); // COMMUNITIES is transitive
    expectWithdraw(withAll(attr(0xc0, 6, '')), 'attribute_flags', 6); // ATOMIC_AGGREGATE is well-known
  });

  it('MP_REACH_NLRI with wrong flags still yields its routes to withdraw', () => {
    const mp = MP_REACH_V6.replace(/^80/, 'c0');
    const w = expectWithdraw(decodeUpdate(body({ attrs: [mp, ORIGIN, AS_PATH] }), NEW), 'attribute_flags', 14);
    expect(w.withdrawn).toEqual([pfx('2001:db8:10::1/128')]);
  });

  it('missing ORIGIN / AS_PATH / NEXT_HOP when NLRI is present (section 3.d)', () => {
    expectWithdraw(decodeUpdate(body({ attrs: [AS_PATH, NEXT_HOP], nlri: NLRI }), NEW), 'missing_origin', 1);
    expectWithdraw(decodeUpdate(body({ attrs: [ORIGIN, NEXT_HOP], nlri: NLRI }), NEW), 'missing_as_path', 2);
    expectWithdraw(decodeUpdate(body({ attrs: [ORIGIN, AS_PATH], nlri: NLRI }), NEW), 'missing_next_hop', 3);
    expectWithdraw(decodeUpdate(body({ nlri: NLRI }), NEW), 'missing_origin', 1);
  });

  it('NEXT_HOP is not needed for MP_REACH_NLRI alone (RFC 4760 section 3), ORIGIN still is', () => {
    expect(decodeUpdate(body({ attrs: [MP_REACH_V6, ORIGIN, AS_PATH] }), NEW).action).toBe('ok');
    const w = expectWithdraw(decodeUpdate(body({ attrs: [MP_REACH_V6, AS_PATH] }), NEW), 'missing_origin', 1);
    expect(w.withdrawn).toEqual([pfx('2001:db8:10::1/128')]);
  });

  it('an unusable MP next hop (unspecified, multicast) is treat-as-withdraw (section 7.11)', () => {
    const mp = attr(0x80, 14, '0002 01 10 ff020000000000000000000000000001 00 80 20010db8001000000000000000000001');
    expectWithdraw(decodeUpdate(body({ attrs: [mp, ORIGIN, AS_PATH] }), NEW), 'mp_next_hop_invalid', 14);
  });

  it('fewer than 3 octets left for an attribute header (section 4)', () => {
    const d = decodeUpdate(body({ attrs: [ORIGIN, AS_PATH, NEXT_HOP, '4001'], nlri: NLRI }), NEW);
    const w = expectWithdraw(d, 'attribute_truncated');
    // The Total Path Attribute Length still locates the NLRI.
    expect(w.withdrawn).toEqual([pfx('198.18.10.1/32')]);
  });

  it('Extended Length bit set with only 3 octets left (section 4)', () => {
    expectWithdraw(decodeUpdate(body({ attrs: [ORIGIN, AS_PATH, NEXT_HOP, '500800'], nlri: NLRI }), NEW), 'attribute_truncated');
  });

  it('an attribute length past the path attributes (section 4)', () => {
    const d = decodeUpdate(body({ attrs: [ORIGIN, AS_PATH, NEXT_HOP, 'c0080a fc000064'], nlri: NLRI }), NEW);
    const w = expectWithdraw(d, 'attribute_length_overrun', 8);
    expect(w.withdrawn).toEqual([pfx('198.18.10.1/32')]);
  });

  it('the strongest approach wins when errors differ (section 3.h)', () => {
    const d = decodeUpdate(body({ attrs: [ORIGIN, AS_PATH, NEXT_HOP, attr(0x40, 6, '01'), attr(0x80, 4, '01')], nlri: NLRI }), NEW);
    const w = expectWithdraw(d, 'med_length', 4);
    expect(w.errors).toEqual([
      { type: 4, reason: 'med_length' },
      { type: 6, reason: 'atomic_aggregate_length' },
    ]);
  });
});

describe('RFC 7606: attribute discard', () => {
  const announce = (extra: string[], ctx: SessionContext = NEW): UpdateDecision =>
    decodeUpdate(body({ attrs: [ORIGIN, ctx.fourOctetAS ? AS_PATH : AS_PATH2, NEXT_HOP, ...extra], nlri: NLRI }), ctx);

  it('duplicate attributes: all but the first are discarded (section 3.g)', () => {
    const d = expectDiscard(announce([attr(0xc0, 8, 'fc000064'), attr(0xc0, 8, 'fc0000c8')]), [{ type: 8, reason: 'duplicate_attribute' }]);
    expect(d.update.attributes.communities).toEqual([0xfc000064]);
    expect(d.update.nlri).toEqual([pfx('198.18.10.1/32')]);
  });

  it('ATOMIC_AGGREGATE with a non-zero length (section 7.6)', () => {
    const d = expectDiscard(announce([attr(0x40, 6, '00')]), [{ type: 6, reason: 'atomic_aggregate_length' }]);
    expect(d.update.attributes.atomicAggregate).toBeUndefined();
  });

  it('AGGREGATOR of the wrong length for the session, or with AS 0 (section 7.7, RFC 7607)', () => {
    expectDiscard(announce([attr(0xc0, 7, 'fc00 c6120001')]), [{ type: 7, reason: 'aggregator_length' }]);
    expectDiscard(announce([attr(0xc0, 7, '0000fc00 c6120001')], OLD), [{ type: 7, reason: 'aggregator_length' }]);
    expectDiscard(announce([attr(0xc0, 7, '00000000 c6120001')]), [{ type: 7, reason: 'aggregator_as_zero' }]);
    const ok = announce([attr(0xc0, 7, '0000fc00 c6120001')]);
    expect(ok.action).toBe('ok');
    if (ok.action === 'ok') expect(ok.update.attributes.aggregator).toEqual({ asn: 64512, address: parseIP('198.18.0.1') });
  });

  it('LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST from an external peer, whatever their length (sections 7.5, 7.9, 7.10)', () => {
    expectDiscard(announce([attr(0x40, 5, '00000064')], EBGP), [{ type: 5, reason: 'local_pref_from_external' }]);
    expectDiscard(announce([attr(0x40, 5, '0064')], EBGP), [{ type: 5, reason: 'local_pref_from_external' }]);
    expectDiscard(announce([attr(0x80, 9, 'c6120001'), attr(0x80, 10, 'c6120002')], EBGP), [
      { type: 9, reason: 'originator_id_from_external' },
      { type: 10, reason: 'cluster_list_from_external' },
    ]);
    const ibgp = announce([attr(0x40, 5, '00000064'), attr(0x80, 9, 'c6120001'), attr(0x80, 10, 'c6120002')], IBGP);
    expect(ibgp.action).toBe('ok');
    if (ibgp.action === 'ok') {
      expect(ibgp.update.attributes.localPref).toBe(100);
      expect(ibgp.update.attributes.originatorId).toEqual(parseIP('198.18.0.1'));
      expect(ibgp.update.attributes.clusterList).toEqual([parseIP('198.18.0.2')]);
    }
  });

  it('AS4_PATH / AS4_AGGREGATOR between two 4-octet speakers (RFC 6793 section 6)', () => {
    expectDiscard(announce([attr(0xc0, 17, '02 01 fa56ea01'), attr(0xc0, 18, 'fa56ea01 c6120001')]), [
      { type: 17, reason: 'as4_path_unexpected' },
      { type: 18, reason: 'as4_aggregator_unexpected' },
    ]);
  });

  it('malformed AS4_PATH / AS4_AGGREGATOR from a 2-octet speaker (RFC 6793 section 6)', () => {
    for (const value of ['02 01 fa56', '02 02 fa56ea01', '07 01 fa56ea01', '02 01 00000000']) {
      const d = expectDiscard(announce([attr(0xc0, 17, value)], OLD), [{ type: 17, reason: 'as4_path_malformed' }]);
      expect(d.update.attributes.asPath).toEqual([{ type: 2, asns: [64512] }]);
    }
    expectDiscard(announce([attr(0xc0, 18, 'fa56 c6120001')], OLD), [{ type: 18, reason: 'as4_aggregator_length' }]);
    expectDiscard(announce([attr(0xc0, 18, '00000000 c6120001')], OLD), [{ type: 18, reason: 'as4_aggregator_as_zero' }]);
  });

  it('MP attributes of a family we do not speak are ignored, not fatal', () => {
    const l2vpn = attr(0x80, 14, '0019 46 04 c6120001 00 0011');
    const d = expectDiscard(announce([l2vpn]), [{ type: 14, reason: 'mp_afi_safi_unsupported' }]);
    expect(d.update.mpReach).toBeUndefined();
    expectDiscard(decodeUpdate(body({ attrs: [attr(0x80, 15, '0001 02 18c61200')] }), NEW), [{ type: 15, reason: 'mp_afi_safi_unsupported' }]);
  });
});

describe('unknown attributes (RFC 4271 sections 5 and 9)', () => {
  it('optional transitive: carried with the Partial bit set, and re-advertised', () => {
    const unknown = attr(0xc0, 99, 'deadbeef');
    const d = decodeUpdate(body({ attrs: [ORIGIN, AS_PATH, NEXT_HOP, unknown], nlri: NLRI }), NEW);
    expect(d.action).toBe('ok');
    if (d.action !== 'ok') return;
    expect(d.update.attributes.other).toEqual([{ flags: 0xe0, type: 99, value: fromHex('deadbeef') }]);
    expect(toHex(encodeUpdate(d.update, NEW))).toContain('e06304deadbeef');
  });

  it('optional transitive with the Extended Length bit and a long value keeps its bytes', () => {
    const value = 'ab'.repeat(300);
    const d = decodeUpdate(body({ attrs: [ORIGIN, AS_PATH, NEXT_HOP, attr(0xd0, 200, value)], nlri: NLRI }), NEW);
    expect(d.action).toBe('ok');
    if (d.action !== 'ok') return;
    expect(toHex(d.update.attributes.other![0]!.value)).toBe(value);
    expect(toHex(encodeUpdate(d.update, NEW))).toContain(`f0c8012c${value}`);
  });

  it('optional non-transitive: dropped quietly', () => {
    const d = decodeUpdate(body({ attrs: [ORIGIN, AS_PATH, NEXT_HOP, attr(0x80, 99, 'deadbeef')], nlri: NLRI }), NEW);
    expect(d.action).toBe('ok');
    if (d.action === 'ok') expect(d.update.attributes.other).toBeUndefined();
  });

  it('well-known attributes with the Extended Length bit and a short value read normally', () => {
    const d = decodeUpdate(body({ attrs: [attr(0x50, 1, '02'), AS_PATH, NEXT_HOP], nlri: NLRI }), NEW);
    expect(d.action).toBe('ok');
    if (d.action === 'ok') expect(d.update.attributes.origin).toBe(2);
  });
});

describe('plain withdrawals and End-of-RIB', () => {
  it('an UPDATE with only withdrawn routes needs no attributes', () => {
    const d = decodeUpdate(body({ withdrawn: '20 c6120a01 18 c61214' }), NEW);
    expect(d).toEqual({ action: 'ok', update: { withdrawn: [pfx('198.18.10.1/32'), pfx('198.18.20.0/24')], attributes: {}, nlri: [] } });
  });

  it('host bits after the prefix length are ignored and cleared (RFC 4271 section 4.3)', () => {
    const d = decodeUpdate(body({ withdrawn: '17 c61215' }), NEW);
    expect(d.action === 'ok' && d.update.withdrawn).toEqual([pfx('198.18.20.0/23')]);
  });
});
