// Properties of the session FSM over random event sequences (RFC 4271 section 8).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseIP, type IP } from '../api/index.js';
import { SESSION_STATE_NAMES, buildOpen, initialState, sessionConfig, step, type SessionEvent, type SessionState, type TimerName } from './index.js';

const ip = (t: string): IP => parseIP(t)!;
const localOpen = buildOpen({ asn: 64512, holdTime: 90, bgpId: ip('198.18.0.1') });
const opens = [
  buildOpen({ asn: 64513, holdTime: 30, bgpId: ip('198.18.0.2') }),
  buildOpen({ asn: 64513, holdTime: 0, bgpId: ip('198.18.0.2') }),
  buildOpen({ asn: 64513, holdTime: 3, bgpId: ip('198.18.0.1') }),
  // Wrong AS for the configured peer: 2/2.
  buildOpen({ asn: 65001, holdTime: 90, bgpId: ip('198.18.0.3') }),
];
const empty = new Uint8Array(0);

const eventArb: fc.Arbitrary<SessionEvent> = fc.oneof(
  fc.constantFrom<SessionEvent>(
    { type: 'ManualStart' },
    { type: 'ManualStop' },
    { type: 'ManualStop', communication: 'maintenance' },
    { type: 'AutomaticStart' },
    { type: 'TcpConnectionAcknowledged' },
    { type: 'TcpConnectionConfirmed' },
    { type: 'TcpConnectionFails' },
    { type: 'ConnectRetryTimerExpires' },
    { type: 'HoldTimerExpires' },
    { type: 'KeepaliveTimerExpires' },
    { type: 'BGPHeaderErr', notification: { code: 1, subcode: 2, data: empty } },
    { type: 'BGPOpenMsgErr', notification: { code: 2, subcode: 6, data: empty }, reason: 'unacceptable_hold_time' },
    { type: 'NotifMsg', notification: { code: 6, subcode: 2, data: empty } },
    { type: 'KeepAliveMsg' },
    { type: 'UpdateMsg', decision: { action: 'treat-as-withdraw', withdrawn: [], reason: 'attribute_flags', errors: [] } },
    { type: 'UpdateMsgErr', notification: { code: 3, subcode: 1, data: empty }, reason: 'attribute_list_overrun' },
    { type: 'RouteRefreshMsg' },
    { type: 'RouteRefreshMsgErr', notification: { code: 7, subcode: 1, data: empty }, reason: 'invalid_length' },
    { type: 'OpenCollisionDump' },
  ),
  fc.constantFrom(...opens).map((open): SessionEvent => ({ type: 'BGPOpen', open })),
);

/** Runs of the happy path, so random walks often get as far as Established. */
const happy: SessionEvent[] = [
  { type: 'ManualStart' },
  { type: 'TcpConnectionAcknowledged' },
  { type: 'TcpConnectionConfirmed' },
  { type: 'BGPOpen', open: opens[0]! },
  { type: 'KeepAliveMsg' },
  { type: 'KeepaliveTimerExpires' },
  { type: 'UpdateMsg', decision: { action: 'treat-as-withdraw', withdrawn: [], reason: 'attribute_flags', errors: [] } },
];
const chunkArb: fc.Arbitrary<SessionEvent[]> = fc.oneof(
  { arbitrary: eventArb.map((e) => [e]), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: happy.length - 1 }).map((i) => happy.slice(i)), weight: 2 },
);

const connected = new Set(['OpenSent', 'OpenConfirm', 'Established']);

function checkInvariants(s: SessionState): void {
  expect(SESSION_STATE_NAMES).toContain(s.name);
  if (s.name === 'Idle' || s.name === 'Active') expect(s.connection).toBe('none');
  if (s.name === 'Connect') expect(s.connection).toBe('connecting');
  if (connected.has(s.name)) expect(['outgoing', 'incoming']).toContain(s.connection);
  if (s.name === 'OpenConfirm' || s.name === 'Established') expect(s.negotiated).toBeDefined();
  expect(s.failures).toBeGreaterThanOrEqual(0);
}

describe('session FSM properties', () => {
  it('random event sequences keep the FSM consistent', () => {
    fc.assert(
      fc.property(
        fc.record({ passive: fc.boolean(), autoRestart: fc.boolean(), seed: fc.integer() }),
        fc.array(fc.tuple(chunkArb, fc.nat(5_000)), { maxLength: 30 }),
        ({ passive, autoRestart, seed }, chunks) => {
          const events = chunks.flatMap(([es, dt]) => es.map((e, i): [SessionEvent, number] => [e, i === 0 ? dt : 1]));
          let x = seed;
          const random = (): number => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) % 1000) / 1000;
          let s = initialState(sessionConfig({ localOpen, peerAS: 64513, passive, autoRestart, random }), 0);
          let now = 0;
          // The caller's view of the timers, from the effects alone.
          const armed = new Set<TimerName>();
          // What happened on the current connection.
          let sentOpen = false;
          let gotOpen = false;
          for (const [event, dt] of events) {
            now += dt;
            const timer = ({ ConnectRetryTimerExpires: 'connectRetry', HoldTimerExpires: 'hold', KeepaliveTimerExpires: 'keepalive' } as const)[
              event.type as 'ConnectRetryTimerExpires'
            ] as TimerName | undefined;
            if (timer !== undefined) armed.delete(timer);
            const { state: next, effects } = step(s, event, now);
            checkInvariants(next);

            for (const e of effects) {
              if (e.type === 'StartTimer') {
                expect(e.ms).toBeGreaterThan(0);
                armed.add(e.timer);
              }
              if (e.type === 'StopTimer') armed.delete(e.timer);
            }
            expect([...armed].sort()).toEqual(Object.keys(next.timers).sort());

            const closes = effects.filter((e) => e.type === 'CloseConnection').length;
            if (next.name === 'Idle' && connected.has(s.name)) expect(closes).toBe(1);
            expect(closes).toBeLessThanOrEqual(1);
            if (s.connection === 'none') expect(closes).toBe(0);
            // A NOTIFICATION goes out before its connection closes, and only on an open connection.
            const ni = effects.findIndex((e) => e.type === 'SendNotification');
            if (ni >= 0) {
              expect(connected.has(s.name)).toBe(true);
              expect(effects.findIndex((e) => e.type === 'CloseConnection')).toBeGreaterThan(ni);
            }
            // Every way into Idle says why.
            if (next.name === 'Idle' && s.name !== 'Idle') expect(effects.some((e) => e.type === 'Log' && e.reason.length > 0)).toBe(true);
            // The routes go away exactly when an established session ends.
            expect(effects.some((e) => e.type === 'SessionDown')).toBe(s.name === 'Established' && next.name !== 'Established');

            if (next.name === 'OpenSent' && s.name !== 'OpenSent') {
              sentOpen = effects.some((e) => e.type === 'SendOpen');
              gotOpen = false;
            }
            if (event.type === 'BGPOpen' && s.name === 'OpenSent' && next.name === 'OpenConfirm') gotOpen = true;
            if (next.name === 'Established' && s.name !== 'Established') {
              expect(s.name).toBe('OpenConfirm');
              expect(event.type).toBe('KeepAliveMsg');
              expect(sentOpen && gotOpen).toBe(true);
              expect(effects.filter((e) => e.type === 'SessionEstablished')).toHaveLength(1);
            }
            s = next;
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('a scripted walk to Established then back, repeated, never leaks timers', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), (rounds) => {
        let s = initialState(sessionConfig({ localOpen, peerAS: 64513, random: () => 0.5 }), 0);
        let now = 0;
        for (let i = 0; i < rounds; i++) {
          for (const e of [
            { type: 'ManualStart' },
            { type: 'TcpConnectionAcknowledged' },
            { type: 'BGPOpen', open: opens[0]! },
            { type: 'KeepAliveMsg' },
            { type: 'ManualStop' },
          ] as SessionEvent[]) {
            s = step(s, e, (now += 10)).state;
          }
          expect(s.name).toBe('Idle');
          expect(s.timers).toEqual({});
        }
      }),
    );
  });
});
