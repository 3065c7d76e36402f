// The suite's pure parts, without a lab: the soak setting, the churn schedule and readiness
// edits, reading ARP replies off tcpdump and judging double answers, spotting a NOTIFICATION.
import { describe, expect, it } from 'vitest';
import { encodeKeepalive, encodeNotification, ErrorCode } from '../../bgp/index.js';
import type { StoredObject } from '../../store/index.js';
import { churnStep, withNodeReady } from './churn-child.js';
import { firstNotification } from './flood-child.js';
import { arpReplies, doubleAnswerMs, soakRounds } from './invariants.js';

describe('soakRounds (BEACON_CHAOS_SOAK)', () => {
  it('defaults to one round and takes a whole number of rounds', () => {
    expect(soakRounds(undefined)).toBe(1);
    expect(soakRounds('')).toBe(1);
    expect(soakRounds('25')).toBe(25);
  });

  it('refuses values that are not a round count', () => {
    for (const bad of ['0', '-1', '2.5', 'ten', '1001']) expect(() => soakRounds(bad)).toThrow(/BEACON_CHAOS_SOAK/);
  });
});

describe('churnStep', () => {
  const slice = (name: string): StoredObject & { endpoints: { addresses: string[]; conditions?: { ready?: boolean } }[] } => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' }, resourceVersion: '7', generation: 1, creationTimestamp: '2026-01-01T00:00:00Z' },
    endpoints: ['a', 'b', 'c'].map((x, i) => ({ addresses: [x], conditions: { ready: true }, nodeName: `node-${i + 1}` })),
  });
  const slices = [slice('s1'), slice('s2')];
  const notReady = (change: number) => {
    const s = churnStep(slices, change);
    return `${s.metadata.name}:${s.endpoints.filter((e) => e.conditions?.ready === false).map((e) => e.addresses[0]).join('')}`;
  };

  it('walks the slices in turn, one endpoint not ready at a time, every endpoint in turn', () => {
    expect([0, 1, 2, 3, 4, 5, 6].map(notReady)).toEqual(['s1:a', 's2:a', 's1:b', 's2:b', 's1:c', 's2:c', 's1:a']);
  });

  it('writes the desired state only (labels kept, no store-assigned fields) and leaves its input alone', () => {
    expect(churnStep(slices, 0).metadata).toEqual({ name: 's1', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } });
    expect(slices[0]!.endpoints.every((e) => e.conditions?.ready === true)).toBe(true);
  });
});

describe('withNodeReady', () => {
  const slice = {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'web-v4', namespace: 'shop', resourceVersion: '3' },
    endpoints: [
      { addresses: ['198.19.1.10'], conditions: { ready: true }, nodeName: 'node-1' },
      { addresses: ['198.19.2.10'], conditions: { ready: true }, nodeName: 'node-2' },
    ],
  };

  it("changes only the node's endpoints, and nothing for a slice without any there", () => {
    expect(withNodeReady(slice, 'node-2', false)?.endpoints.map((e) => e.conditions?.ready)).toEqual([true, false]);
    expect(withNodeReady(slice, 'node-9', false)).toBeUndefined();
  });
});

describe('arpReplies and doubleAnswerMs', () => {
  const capture = [
    'listening on eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes',
    '1795712879.369391 76:86:c0:cc:2e:af > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 60: Reply 198.18.0.200 is-at 76:86:c0:cc:2e:af, length 46',
    '1795712879.404087 6a:f7:79:a0:be:c7 > 76:86:c0:cc:2e:af, ethertype ARP (0x0806), length 42: Reply 198.18.0.100 is-at 6a:f7:79:a0:be:c7, length 28',
    '1795712879.553759 e2:d5:19:0f:ef:d1 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 60: Reply 198.18.0.200 is-at e2:d5:19:0f:ef:d1, length 46',
    '1795712879.604009 76:86:c0:cc:2e:af > 6a:f7:79:a0:be:c7, ethertype ARP (0x0806), length 60: Reply 198.18.0.200 is-at 76:86:c0:cc:2e:af, length 46',
    '1795712880.552345 e2:d5:19:0f:ef:d1 > 6a:f7:79:a0:be:c7, ethertype ARP (0x0806), length 60: Reply 198.18.0.200 is-at e2:d5:19:0f:ef:d1, length 46',
  ].join('\n');

  it('reads the replies for one IP, in time order, in milliseconds', () => {
    expect(arpReplies(capture, '198.18.0.200').map((r) => [r.at - 1795712879000, r.mac.slice(0, 5)])).toEqual([
      [369, '76:86'],
      [554, 'e2:d5'],
      [604, '76:86'],
      [1552, 'e2:d5'],
    ]);
  });

  it('measures how long two MACs answered at once', () => {
    expect(doubleAnswerMs(arpReplies(capture, '198.18.0.200'))).toBe(50);
    const at = (ms: number, mac: string) => ({ at: ms, mac });
    expect(doubleAnswerMs([])).toBe(0);
    // A clean takeover: a stops, b starts.
    expect(doubleAnswerMs([at(0, 'a'), at(50, 'a'), at(100, 'b'), at(150, 'b')])).toBe(0);
    // A quiet outage, then b and a both answer for a while (b's last reply stands for 50 ms more).
    const flap = [at(0, 'a'), at(50, 'a'), at(5_000, 'b'), at(5_010, 'a'), at(5_060, 'b'), at(5_110, 'a'), at(5_160, 'b'), at(5_210, 'a'), at(5_260, 'a')];
    expect(doubleAnswerMs(flap)).toBe(200);
    // Both answering throughout.
    expect(doubleAnswerMs([0, 50, 100, 150, 200, 250].flatMap((t) => [at(t, 'a'), at(t + 1, 'b')]))).toBe(299);
  });
});

describe('firstNotification', () => {
  it('skips KEEPALIVEs and reads the code and subcode of the first NOTIFICATION', () => {
    const bytes = new Uint8Array([...encodeKeepalive(), ...encodeNotification({ code: ErrorCode.UPDATE_MESSAGE, subcode: 1, data: new Uint8Array(0) })]);
    expect(firstNotification(bytes)).toBe('notification:3/1');
    expect(firstNotification(encodeKeepalive())).toBeUndefined();
    expect(firstNotification(bytes.subarray(0, 25))).toBeUndefined();
  });
});
