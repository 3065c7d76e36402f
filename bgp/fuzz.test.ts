// A short fuzz run: random and mutated messages through the framer and every decoder. No
// exception may escape, and each message must end in a decision (see fuzz.ts for the checks).
// The long run is bench/fuzz-bgp.ts.
import { describe, expect, it } from 'vitest';
import { runFuzz } from './fuzz.js';

describe('fuzz (short run)', () => {
  it('20,000 random and mutated messages: no crash, every result a decision', () => {
    const report = runFuzz(20_000, 0xbea0c0de);
    expect(report.messages).toBe(20_000);
    const c = report.counts;
    // Every kind of outcome is reached, so the mutators get past the framer into each decoder.
    for (const outcome of [
      'frame:bad_marker',
      'frame:bad_length',
      'frame:bad_type',
      'frame:incomplete',
      'open:ok',
      'update:ok',
      'update:attribute-discard',
      'update:treat-as-withdraw',
      'update:session-reset',
      'notification',
      'keepalive',
      'route-refresh:ok',
    ]) {
      expect(c[outcome] ?? 0, outcome).toBeGreaterThan(0);
    }
    expect(c['open:error'] ?? 0).toBeGreaterThan(0);
    // Many distinct RFC 7606 / OPEN checks fire, not just one shallow error.
    expect(Object.keys(report.reasons).length).toBeGreaterThan(25);
  });
});
