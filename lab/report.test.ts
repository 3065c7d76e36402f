import { describe, expect, it } from 'vitest';
import { failoverSeconds, renderReport, tally, type LabReport } from './report.js';
import type { ProbeOutcome } from './site-child.js';

const ok = (at: number, backend = 'pod-1'): ProbeOutcome => ({ url: 'http://198.18.0.200:80/', at, backend });
const fail = (at: number, error = 'timeout'): ProbeOutcome => ({ url: 'http://198.18.0.200:80/', at, error });

describe('tally', () => {
  it('counts answers per backend and failures per error', () => {
    expect(tally([ok(1, 'pod-2'), ok(2), fail(3), fail(4, 'ECONNRESET'), fail(5), ok(6, 'pod-2')])).toEqual({
      requests: 6,
      failed: 3,
      backendsHit: { 'pod-1': 1, 'pod-2': 2 },
      errors: { ECONNRESET: 1, timeout: 2 },
    });
    expect(tally([])).toEqual({ requests: 0, failed: 0, backendsHit: {}, errors: {} });
  });
});

describe('failoverSeconds', () => {
  it('is the time from the fault to the first answered request sent after the first failure', () => {
    // Sent out of order (probe rounds run in parallel): sorted by send time first.
    const outcomes = [ok(900), ok(1_020), fail(1_100), fail(1_300), ok(2_240), fail(1_700), ok(2_260)];
    expect(failoverSeconds(outcomes, 1_000)).toBe(1.24);
  });

  it('is 0 when nothing failed after the fault, null when nothing was answered again', () => {
    expect(failoverSeconds([ok(900), ok(1_100), ok(1_200)], 1_000)).toBe(0);
    expect(failoverSeconds([ok(900), fail(1_100), fail(1_200)], 1_000)).toBeNull();
    expect(failoverSeconds([ok(900)], 1_000)).toBeNull();
  });

  it('ignores failures before the fault', () => {
    expect(failoverSeconds([fail(500), ok(600), ok(1_100)], 1_000)).toBe(0);
  });
});

describe('renderReport', () => {
  const report: LabReport = {
    runId: 'bl-00aa11',
    services: [
      {
        namespace: 'shop', name: 'api', ips: ['198.18.50.1'], reason: 'satisfied', message: 'assigned 198.18.50.1 from pool routed',
        announcer: null, announcers: {}, routes: [{ prefix: '198.18.50.1/32', nextHops: ['node-1', 'node-2'] }],
        client: 'wan-client', requests: 30, failed: 0, backendsHit: { 'pod-1': 14, 'pod-2': 16 },
      },
      {
        namespace: 'shop', name: 'web', ips: ['198.18.0.200'], reason: 'satisfied', message: '',
        announcer: 'node-3', announcers: { '198.18.0.200': 'node-3' }, routes: [],
        client: 'lan-client', requests: 30, failed: 1, backendsHit: { 'pod-3': 29 },
      },
    ],
    failover: { ip: '198.18.0.200', from: 'node-3', to: 'node-1', seconds: 0.95, requests: 100, failed: 20 },
    restart: { node: 'node-1', requests: 400, failed: 2, errors: { ECONNRESET: 2 } },
  };

  it('tells the story in six numbered parts', () => {
    const text = renderReport(report);
    expect(text).toContain('shop/api: 198.18.50.1 — satisfied: assigned 198.18.50.1 from pool routed');
    expect(text).toContain('198.18.0.200 (web): node-3');
    expect(text).toContain('198.18.50.1/32 (api): via node-1, node-2');
    expect(text).toContain('web from lan-client: 30 requests, 1 failed; answered by pod-3 29');
    expect(text).toContain('node-1 answers; the client was served again after 0.95 s (20 of 100 requests failed)');
    expect(text).toContain('400 requests, 2 failed (ECONNRESET 2)');
    expect(text.match(/^\d\. /gm)).toEqual(['1. ', '2. ', '3. ', '4. ', '5. ', '6. ']);
  });

  it('says so when a failover never recovered', () => {
    expect(renderReport({ ...report, failover: { ...report.failover, seconds: null, failed: 100 } })).toContain('no request was answered after the fault (100 of 100 failed)');
  });
});
