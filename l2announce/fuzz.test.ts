import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { dropKind, dropReasons, isDropReason } from './drop.js';
import { decodeFrame } from './frame.js';
import { fuzzCorpus, fuzzFrames } from './fuzz.js';

describe('decoder fuzzing (short run; bench/fuzz-l2.ts runs 10^6)', () => {
  it('20,000 random and mutated frames: no exception, known reasons only, accepted frames re-encode', () => {
    const report = fuzzFrames({ frames: 20_000, seed: 0x5eed });
    expect(report.failures).toEqual([]);
    expect(report.failureCount).toBe(0);
    expect(Object.values(report.outcomes).reduce((a, b) => a + b, 0)).toBe(20_000);
    // The run reaches every kind and most reasons, so it tests the deep checks, not just the first.
    for (const kind of ['arp', 'ns', 'na']) expect(report.outcomes[kind], kind).toBeGreaterThan(100);
    const reached = dropReasons.filter((r) => (report.outcomes[`drop:${r}`] ?? 0) + (report.outcomes[`other:${r}`] ?? 0) > 0);
    expect(reached.length).toBeGreaterThanOrEqual(dropReasons.length - 4);
  });

  it('the corpus is deterministic for a seed', () => {
    const a = fuzzCorpus(50, 7).map((c) => Buffer.from(c.bytes).toString('hex'));
    const b = fuzzCorpus(50, 7).map((c) => Buffer.from(c.bytes).toString('hex'));
    expect(a).toEqual(b);
  });

  it('arbitrary bytes, bare or behind a plausible header, never throw (property)', () => {
    const headers = ['', 'ffffffffffff0200000000010806', 'ffffffffffff02000000000186dd', 'ffffffffffff0200000000018100006486dd', '3333ff000010 020000000001 86dd 60000000 0020 3a ff'];
    fc.assert(
      fc.property(fc.constantFrom(...headers), fc.uint8Array({ maxLength: 120 }), (header, tail) => {
        const head = Uint8Array.from(Buffer.from(header.replace(/\s+/g, ''), 'hex'));
        const bytes = new Uint8Array(head.length + tail.length);
        bytes.set(head);
        bytes.set(tail, head.length);
        const result = decodeFrame(bytes);
        if (!result.ok) expect(dropKind(result.reason)).toBe('malformed');
        else if (result.frame.kind === 'other') expect(isDropReason(result.frame.reason) && dropKind(result.frame.reason)).toBe('not_ours');
      }),
      { numRuns: 2000 },
    );
  });
});
