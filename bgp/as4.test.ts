// RFC 6793: AS_PATH / AS4_PATH merge from 2-octet peers, and AS_TRANS toward them.
import { describe, expect, it } from 'vitest';
import { parseIP, type IP } from '../api/index.js';
import {
  AS_TRANS,
  SegmentType,
  asPathLength,
  asSequence,
  asSet,
  decodeUpdate,
  encodeUpdate,
  formatAsPath,
  fromHex,
  mergeAs4Path,
  parsePrefix,
  toHex,
  type AsPathSegment,
  type Update,
} from './index.js';

const ip = (t: string): IP => parseIP(t)!;
const confedSeq = (...asns: number[]): AsPathSegment => ({ type: SegmentType.AS_CONFED_SEQUENCE, asns });
const BIG1 = 4200000001;
const BIG2 = 4200000002;
const OLD = { fourOctetAS: false };

describe('asPathLength (RFC 4271 section 9.1.2.2, RFC 5065 section 5.3)', () => {
  it('counts a set as one and confederation segments as nothing', () => {
    expect(asPathLength([asSequence(1, 2, 3), asSet(4, 5, 6), confedSeq(7, 8)])).toBe(4);
    expect(asPathLength([])).toBe(0);
  });
});

describe('mergeAs4Path (RFC 6793 section 4.2.3)', () => {
  it('prepends the ASes that OLD speakers added in front of the AS4_PATH', () => {
    // 65001 is an OLD speaker that prepended itself after the last NEW speaker.
    expect(mergeAs4Path([asSequence(65001, AS_TRANS, AS_TRANS)], [asSequence(BIG1, BIG2)])).toEqual([asSequence(65001, BIG1, BIG2)]);
  });

  it('splits a sequence when only part of it is missing from AS4_PATH', () => {
    expect(mergeAs4Path([asSequence(65001, 65002, AS_TRANS)], [asSequence(BIG1)])).toEqual([asSequence(65001, 65002, BIG1)]);
  });

  it('uses the AS4_PATH alone when both count the same', () => {
    expect(mergeAs4Path([asSequence(AS_TRANS, 64512)], [asSequence(BIG1, 64512)])).toEqual([asSequence(BIG1, 64512)]);
  });

  it('ignores an AS4_PATH longer than the AS_PATH', () => {
    const asPath = [asSequence(AS_TRANS)];
    expect(mergeAs4Path(asPath, [asSequence(BIG1, BIG2)])).toBe(asPath);
  });

  it('counts an AS_SET as one AS when taking the leading part', () => {
    expect(mergeAs4Path([asSequence(65001), asSet(AS_TRANS, 65002)], [asSet(BIG1, 65002)])).toEqual([asSequence(65001), asSet(BIG1, 65002)]);
    expect(mergeAs4Path([asSet(65003, 65004), asSequence(AS_TRANS)], [asSequence(BIG1)])).toEqual([asSet(65003, 65004), asSequence(BIG1)]);
  });

  it('keeps leading confederation segments, which AS4_PATH never carries', () => {
    expect(mergeAs4Path([confedSeq(64600, 64601), asSequence(AS_TRANS, 65001)], [asSequence(BIG1, 65001)])).toEqual([
      confedSeq(64600, 64601),
      asSequence(BIG1, 65001),
    ]);
    expect(mergeAs4Path([confedSeq(64600), asSequence(65002, AS_TRANS)], [asSequence(BIG1)])).toEqual([
      confedSeq(64600),
      asSequence(65002, BIG1),
    ]);
  });
});

describe('decoding from a 2-octet peer', () => {
  const body = (attrsHex: string): Uint8Array => {
    const a = attrsHex.replace(/\s+/g, '');
    const len = (a.length / 2).toString(16).padStart(4, '0');
    return fromHex(`0000 ${len} ${a} 18c6120a`.replace(/\s+/g, ''));
  };
  const base = '40010100 400304c6120001';

  it('merges AS4_PATH into AS_PATH', () => {
    // AS_PATH [65001 AS_TRANS AS_TRANS], AS4_PATH [4200000001 4200000002]
    const d = decodeUpdate(body(`${base} 40020802 03 fde9 5ba0 5ba0  c0110a02 02 fa56ea01 fa56ea02`), OLD);
    expect(d.action).toBe('ok');
    if (d.action === 'ok') expect(d.update.attributes.asPath).toEqual([asSequence(65001, BIG1, BIG2)]);
  });

  it('takes AS4_AGGREGATOR when AGGREGATOR carries AS_TRANS', () => {
    const d = decodeUpdate(body(`${base} 40020402 01 5ba0  c00706 5ba0 c6120001  c0110602 01 fa56ea01  c01208 fa56ea01 c6120002`), OLD);
    expect(d.action).toBe('ok');
    if (d.action !== 'ok') return;
    expect(d.update.attributes.aggregator).toEqual({ asn: BIG1, address: ip('198.18.0.2') });
    expect(d.update.attributes.asPath).toEqual([asSequence(BIG1)]);
  });

  it('ignores AS4_PATH and AS4_AGGREGATOR when AGGREGATOR names a 2-octet AS (an OLD speaker aggregated)', () => {
    const d = decodeUpdate(body(`${base} 40020402 01 5ba0  c00706 fde9 c6120001  c0110602 01 fa56ea01  c01208 fa56ea01 c6120002`), OLD);
    expect(d.action).toBe('ok');
    if (d.action !== 'ok') return;
    expect(d.update.attributes.aggregator).toEqual({ asn: 65001, address: ip('198.18.0.1') });
    expect(d.update.attributes.asPath).toEqual([asSequence(AS_TRANS)]);
  });

  it('drops confederation segments from AS4_PATH and uses the rest (RFC 6793 section 6)', () => {
    // AS_PATH [AS_TRANS 65001]; AS4_PATH [(64600) 4200000001 65001] from a broken NEW speaker.
    const d = decodeUpdate(body(`${base} 40020602 02 5ba0 fde9  c01110 03 01 0000fc58 02 02 fa56ea01 0000fde9`), OLD);
    expect(d.action).toBe('attribute-discard');
    if (d.action !== 'attribute-discard') return;
    expect(d.discarded).toEqual([{ type: 17, reason: 'as4_path_confed_segments' }]);
    expect(d.update.attributes.asPath).toEqual([asSequence(BIG1, 65001)]);
  });
});

describe('encoding toward a 2-octet peer (RFC 6793 section 4.2.2)', () => {
  it('AS_TRANS in AGGREGATOR and the real AS in AS4_AGGREGATOR', () => {
    const update: Update = {
      withdrawn: [],
      nlri: [parsePrefix('198.18.10.0/24')!],
      attributes: { origin: 0, asPath: [asSequence(BIG1)], nextHop: ip('198.18.0.1'), aggregator: { asn: BIG1, address: ip('198.18.0.1') } },
    };
    const bytes = encodeUpdate(update, OLD);
    const hexed = toHex(bytes);
    expect(hexed).toContain('c007065ba0c6120001'); // AGGREGATOR: AS_TRANS, 198.18.0.1
    expect(hexed).toContain('c0110602 01 fa56ea01'.replace(/\s+/g, '')); // AS4_PATH: [4200000001]
    expect(hexed).toContain('c01208fa56ea01c6120001'); // AS4_AGGREGATOR
    expect(decodeUpdate(bytes.subarray(19), OLD)).toEqual({ action: 'ok', update });
  });

  it('no AS4_PATH when every AS fits in two octets', () => {
    const update: Update = { withdrawn: [], nlri: [parsePrefix('198.18.10.0/24')!], attributes: { origin: 0, asPath: [asSequence(64512, 65001)], nextHop: ip('198.18.0.1') } };
    expect(toHex(encodeUpdate(update, OLD))).not.toContain('c011');
  });

  it('AS4_PATH leaves out confederation segments', () => {
    const update: Update = {
      withdrawn: [],
      nlri: [parsePrefix('198.18.10.0/24')!],
      attributes: { origin: 0, asPath: [confedSeq(64600), asSequence(BIG1)], nextHop: ip('198.18.0.1') },
    };
    const hexed = toHex(encodeUpdate(update, OLD));
    expect(hexed).toContain('40020803 01 fc58 02 01 5ba0'.replace(/\s+/g, ''));
    expect(hexed).toContain('c0110602 01 fa56ea01'.replace(/\s+/g, ''));
  });
});

describe('formatAsPath', () => {
  it('shows sets and confederation segments', () => {
    expect(formatAsPath([confedSeq(64600), asSequence(64512, BIG1), asSet(65001, 65002), { type: SegmentType.AS_CONFED_SET, asns: [64601] }])).toBe(
      '(64600) 64512 4200000001 {65001,65002} [64601]',
    );
  });
});
