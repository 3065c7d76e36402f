// The session FSM (RFC 4271 section 8), scripted transition by transition with exact effects.
import { seededRandom } from '../api/random.js';
import { describe, expect, it } from 'vitest';
import { parseIP, type IP } from '../api/index.js';
import {
  buildOpen,
  connectRetryDelay,
  eventFromMessage,
  initialState,
  negotiate,
  resolveCollision,
  sessionConfig,
  step,
  type Effect,
  type Open,
  type SessionConfigInput,
  type SessionEvent,
  type SessionState,
  type StepResult,
} from './index.js';

const ip = (t: string): IP => parseIP(t)!;
const localOpen = buildOpen({ asn: 64512, holdTime: 90, bgpId: ip('198.18.0.1') });
const peerOpen = buildOpen({ asn: 64513, holdTime: 30, bgpId: ip('198.18.0.2') });

/** Jitter factor 0.75 exactly: delays are 3/4 of the backoff base. */
const cfg = (over: Partial<SessionConfigInput> = {}) => sessionConfig({ localOpen, peerAS: 64513, random: () => 0, ...over });


/** Runs events from a state, one millisecond apart, returning every step. */
function run(state: SessionState, events: SessionEvent[], t0 = 0): StepResult[] {
  const out: StepResult[] = [];
  let s = state;
  events.forEach((e, i) => {
    const r = step(s, e, t0 + i);
    out.push(r);
    s = r.state;
  });
  return out;
}

const last = (rs: StepResult[]): StepResult => rs[rs.length - 1]!;
const drive = (state: SessionState, events: SessionEvent[]): SessionState => last(run(state, events)).state;
const types = (effects: Effect[]): string[] => effects.map((e) => e.type);
const sent = (effects: Effect[]) => effects.filter((e) => e.type === 'SendNotification').map((e) => `${e.code}/${e.subcode}`);
const logReason = (effects: Effect[]) => effects.find((e) => e.type === 'Log')?.reason;

const toOpenSent: SessionEvent[] = [{ type: 'ManualStart' }, { type: 'TcpConnectionAcknowledged' }];
const toOpenConfirm: SessionEvent[] = [...toOpenSent, { type: 'BGPOpen', open: peerOpen }];
const toEstablished: SessionEvent[] = [...toOpenConfirm, { type: 'KeepAliveMsg' }];
const at = (name: 'OpenSent' | 'OpenConfirm' | 'Established', over: Partial<SessionConfigInput> = {}): SessionState =>
  drive(initialState(cfg(over), 0), name === 'OpenSent' ? toOpenSent : name === 'OpenConfirm' ? toOpenConfirm : toEstablished);

describe('happy paths', () => {
  it('active: Idle -> Connect -> OpenSent -> OpenConfirm -> Established with the exact effects', () => {
    const [start, acked, open, keepalive] = run(initialState(cfg(), 0), toEstablished);
    expect(start!.state.name).toBe('Connect');
    expect(start!.effects).toEqual([{ type: 'StartTimer', timer: 'connectRetry', ms: 750 }, { type: 'Connect' }]);

    expect(acked!.state.name).toBe('OpenSent');
    expect(acked!.state.connection).toBe('outgoing');
    expect(acked!.effects).toEqual([
      { type: 'StopTimer', timer: 'connectRetry' },
      { type: 'SendOpen', open: localOpen },
      { type: 'StartTimer', timer: 'hold', ms: 240_000 },
    ]);

    expect(open!.state.name).toBe('OpenConfirm');
    expect(open!.effects).toEqual([
      { type: 'SendKeepalive' },
      { type: 'StartTimer', timer: 'keepalive', ms: 10_000 },
      { type: 'StartTimer', timer: 'hold', ms: 30_000 },
    ]);

    const negotiated = negotiate(localOpen, peerOpen);
    expect(negotiated.holdTime).toBe(30);
    expect(keepalive!.state.name).toBe('Established');
    expect(keepalive!.state.negotiated).toEqual(negotiated);
    expect(keepalive!.effects).toEqual([
      { type: 'StartTimer', timer: 'hold', ms: 30_000 },
      { type: 'SessionEstablished', negotiated },
      { type: 'Log', level: 'info', reason: 'established', message: 'session established with AS 64513 (hold 30 s)' },
    ]);
    expect(keepalive!.state.timers).toEqual({ hold: 3 + 30_000, keepalive: 2 + 10_000 });
  });

  it('passive: waits in Active, never connects, answers an incoming connection', () => {
    const [start, stale, incoming] = run(initialState(cfg({ passive: true }), 0), [
      { type: 'ManualStart' },
      { type: 'ConnectRetryTimerExpires' },
      { type: 'TcpConnectionConfirmed' },
    ]);
    expect(start!.state.name).toBe('Active');
    expect(types(start!.effects)).toEqual(['Log']);
    expect(stale!.effects).toEqual([]);
    expect(stale!.state.name).toBe('Active');
    expect(incoming!.state.name).toBe('OpenSent');
    expect(incoming!.state.connection).toBe('incoming');
    expect(incoming!.effects).toEqual([{ type: 'SendOpen', open: localOpen }, { type: 'StartTimer', timer: 'hold', ms: 240_000 }]);
    // Our own connect never happens: an acknowledgement of one is ignored.
    const ack = step(start!.state, { type: 'TcpConnectionAcknowledged' }, 5);
    expect(ack.state.name).toBe('Active');
    expect(types(ack.effects)).not.toContain('SendOpen');
  });

  it('an incoming connection while connecting cancels our attempt', () => {
    const s = drive(initialState(cfg(), 0), [{ type: 'ManualStart' }]);
    const r = step(s, { type: 'TcpConnectionConfirmed' }, 1);
    expect(r.state.name).toBe('OpenSent');
    expect(r.state.connection).toBe('incoming');
    expect(types(r.effects)).toEqual(['CancelConnect', 'StopTimer', 'SendOpen', 'StartTimer']);
  });
});

describe('errors end the session with a NOTIFICATION and a reason', () => {
  it.each(['OpenSent', 'OpenConfirm', 'Established'] as const)('hold timer expiry in %s sends 4/0', (name) => {
    const r = step(at(name), { type: 'HoldTimerExpires' }, 100);
    expect(r.state.name).toBe('Idle');
    expect(sent(r.effects)).toEqual(['4/0']);
    expect(types(r.effects).filter((t) => t === 'CloseConnection')).toHaveLength(1);
    expect(logReason(r.effects)).toBe('hold_timer_expired');
    expect(types(r.effects).includes('SessionDown')).toBe(name === 'Established');
    expect(r.state.lastError).toMatchObject({ reason: 'hold_timer_expired', at: 100 });
  });

  it('bad peer AS: 2/2, and the log says which AS came', () => {
    const r = step(at('OpenSent', { peerAS: 64999 }), { type: 'BGPOpen', open: peerOpen }, 5);
    expect(r.state.name).toBe('Idle');
    expect(sent(r.effects)).toEqual(['2/2']);
    expect(types(r.effects).slice(0, 2)).toEqual(['SendNotification', 'CloseConnection']);
    const log = r.effects.find((e) => e.type === 'Log');
    expect(log).toMatchObject({ level: 'warn', reason: 'bad_peer_as' });
    expect(log?.type === 'Log' && log.message).toContain('AS 64513, expected AS 64999');
  });

  it('an internal peer with our BGP identifier: 2/3; an external one is fine (RFC 6286)', () => {
    const sameId = buildOpen({ asn: 64512, holdTime: 90, bgpId: ip('198.18.0.1') });
    const ibgp = step(at('OpenSent', { peerAS: 64512 }), { type: 'BGPOpen', open: sameId }, 5);
    expect(sent(ibgp.effects)).toEqual(['2/3']);
    expect(logReason(ibgp.effects)).toBe('bad_bgp_identifier');
    const ebgpOpen = buildOpen({ asn: 64513, holdTime: 90, bgpId: ip('198.18.0.1') });
    expect(step(at('OpenSent'), { type: 'BGPOpen', open: ebgpOpen }, 5).state.name).toBe('OpenConfirm');
  });

  it('a 4-octet peer AS without the RFC 6793 capability: 2/7 listing the capability', () => {
    const old: Open = { ...buildOpen({ asn: 23456, holdTime: 90, bgpId: ip('198.18.0.2') }) };
    const noCap: Open = { ...old, capabilities: { ...old.capabilities, fourOctetAS: undefined } };
    const r = step(at('OpenSent', { peerAS: 4_200_000_000 }), { type: 'BGPOpen', open: noCap }, 5);
    expect(sent(r.effects)).toEqual(['2/7']);
    const n = r.effects.find((e) => e.type === 'SendNotification');
    // Capability 65, length 4, our AS 64512.
    expect(n?.type === 'SendNotification' && [...n.data]).toEqual([65, 4, 0, 0, 0xfc, 0x00]);
    expect(logReason(r.effects)).toBe('unsupported_capability');
  });

  it('a configured required capability the peer lacks: 2/7', () => {
    const bare = buildOpen({ asn: 64513, holdTime: 90, bgpId: ip('198.18.0.2'), routeRefresh: false });
    const r = step(at('OpenSent', { requiredCapabilities: ['routeRefresh'] }), { type: 'BGPOpen', open: bare }, 5);
    expect(sent(r.effects)).toEqual(['2/7']);
  });

  it.each([
    ['OpenSent', { type: 'KeepAliveMsg' }, '5/1'],
    ['OpenSent', { type: 'RouteRefreshMsg' }, '5/1'],
    ['OpenConfirm', { type: 'BGPOpen', open: peerOpen }, '5/2'],
    ['OpenConfirm', { type: 'UpdateMsg', decision: { action: 'treat-as-withdraw', withdrawn: [], reason: 'attribute_flags', errors: [] } }, '5/2'],
    ['Established', { type: 'BGPOpen', open: peerOpen }, '5/3'],
  ] as const)('unexpected message in %s: FSM error %#', (name, event, code) => {
    const r = step(at(name), event, 9);
    expect(r.state.name).toBe('Idle');
    expect(sent(r.effects)).toEqual([code]);
    expect(logReason(r.effects)).toBe('fsm_error');
  });

  it('a NOTIFICATION received closes without answering and logs the shutdown communication', () => {
    const r = step(
      at('Established'),
      { type: 'NotifMsg', notification: { code: 6, subcode: 2, data: new Uint8Array(0), codeName: 'Cease', subcodeName: 'Administrative Shutdown', shutdownCommunication: 'maintenance' } },
      9,
    );
    expect(r.state.name).toBe('Idle');
    expect(sent(r.effects)).toEqual([]);
    expect(types(r.effects)).toEqual(['CloseConnection', 'StopTimer', 'StopTimer', 'SessionDown', 'Log', 'StartTimer']);
    const log = r.effects.find((e) => e.type === 'Log');
    expect(log?.type === 'Log' && log.message).toContain('Cease / Administrative Shutdown (6/2): "maintenance"');
  });

  it('an UPDATE that needs a session reset sends its own NOTIFICATION', () => {
    const r = step(at('Established'), { type: 'UpdateMsgErr', notification: { code: 3, subcode: 1, data: new Uint8Array(0) }, reason: 'attribute_list_overrun' }, 9);
    expect(sent(r.effects)).toEqual(['3/1']);
    expect(r.effects).toContainEqual({ type: 'SessionDown', reason: 'update_error' });
  });

  it('collision dump: Cease 6/7 on the connection being closed', () => {
    const r = step(at('OpenConfirm'), { type: 'OpenCollisionDump' }, 9);
    expect(sent(r.effects)).toEqual(['6/7']);
    expect(logReason(r.effects)).toBe('connection_collision');
  });

  it('ManualStop: Cease 6/2 (with the RFC 9003 communication), no restart', () => {
    const plain = step(at('Established'), { type: 'ManualStop' }, 9);
    expect(sent(plain.effects)).toEqual(['6/2']);
    expect(plain.state.name).toBe('Idle');
    expect(plain.state.timers).toEqual({});
    expect(types(plain.effects)).not.toContain('StartTimer');
    const withText = step(at('OpenSent'), { type: 'ManualStop', communication: 'bye' }, 9);
    const n = withText.effects.find((e) => e.type === 'SendNotification');
    expect(n?.type === 'SendNotification' && new TextDecoder().decode(n.data.subarray(1))).toBe('bye');
    // Before a connection exists there is nobody to notify.
    const connecting = step(drive(initialState(cfg(), 0), [{ type: 'ManualStart' }]), { type: 'ManualStop' }, 3);
    expect(types(connecting.effects)).toEqual(['CancelConnect', 'StopTimer', 'Log']);
  });
});

describe('timers', () => {
  it('keepalives are scheduled every hold/3 once established', () => {
    const s = at('Established');
    const r = step(s, { type: 'KeepaliveTimerExpires' }, 10_002);
    expect(r.effects).toEqual([{ type: 'SendKeepalive' }, { type: 'StartTimer', timer: 'keepalive', ms: 10_000 }]);
    expect(r.state.timers.keepalive).toBe(20_002);
    // Any message from the peer restarts the hold timer.
    const u = step(r.state, { type: 'UpdateMsg', decision: { action: 'treat-as-withdraw', withdrawn: [], reason: 'attribute_flags', errors: [] } }, 10_010);
    expect(types(u.effects)).toEqual(['StartTimer', 'DeliverUpdate']);
    expect(u.state.timers.hold).toBe(40_010);
  });

  it('hold time 0 disables the hold and keepalive timers', () => {
    const zero = buildOpen({ asn: 64513, holdTime: 0, bgpId: ip('198.18.0.2') });
    const [, , open, ka] = run(initialState(cfg(), 0), [...toOpenSent, { type: 'BGPOpen', open: zero }, { type: 'KeepAliveMsg' }]);
    expect(open!.effects).toEqual([{ type: 'SendKeepalive' }, { type: 'StopTimer', timer: 'hold' }]);
    expect(ka!.state.name).toBe('Established');
    expect(ka!.state.timers).toEqual({});
    expect(types(ka!.effects)).toEqual(['SessionEstablished', 'Log']);
    // A stray expiry (the caller lost a race) does nothing.
    expect(step(ka!.state, { type: 'HoldTimerExpires' }, 99).effects).toEqual([]);
    expect(step(ka!.state, { type: 'KeepaliveTimerExpires' }, 99).effects).toEqual([]);
  });

  it('connect retries back off exponentially with jitter in [0.75, 1], bounded by 60 s', () => {
    const delays = (seed: number): number[] => {
      let s = initialState(cfg({ random: seededRandom(seed) }), 0);
      const out: number[] = [];
      s = step(s, { type: 'ManualStart' }, 0).state;
      for (let i = 0; i < 10; i++) {
        const fail = step(s, { type: 'TcpConnectionFails' }, i);
        expect(fail.state.name).toBe('Active');
        const timer = fail.effects.find((e) => e.type === 'StartTimer');
        out.push(timer?.type === 'StartTimer' ? timer.ms : -1);
        const retry = step(fail.state, { type: 'ConnectRetryTimerExpires' }, i);
        expect(retry.state.name).toBe('Connect');
        expect(types(retry.effects)).toEqual(['StartTimer', 'Connect']);
        s = retry.state;
      }
      return out;
    };
    const a = delays(42);
    expect(delays(42)).toEqual(a);
    const bases = [1, 2, 4, 8, 16, 32, 60, 60, 60, 60].map((x) => x * 1000);
    a.forEach((ms, i) => {
      expect(ms).toBeGreaterThanOrEqual(0.75 * bases[i]!);
      expect(ms).toBeLessThanOrEqual(bases[i]!);
    });
  });

  it('the backoff also spaces automatic restarts and starts over once established', () => {
    let s = at('OpenSent');
    const down1 = step(s, { type: 'HoldTimerExpires' }, 1);
    expect(down1.state.failures).toBe(1);
    expect(down1.effects.at(-1)).toEqual({ type: 'StartTimer', timer: 'connectRetry', ms: 750 });
    const restart = step(down1.state, { type: 'ConnectRetryTimerExpires' }, 2);
    expect(restart.state.name).toBe('Connect');
    const down2 = last(
      run(restart.state, [{ type: 'TcpConnectionAcknowledged' }, { type: 'BGPOpen', open: peerOpen }, { type: 'NotifMsg', notification: { code: 6, subcode: 4, data: new Uint8Array(0) } }]),
    );
    s = down2.state;
    expect(s.failures).toBe(2);
    expect(down2.effects.at(-1)).toEqual({ type: 'StartTimer', timer: 'connectRetry', ms: 1500 });
    expect([1, 2, 3, 4, 9].map((n) => connectRetryDelay(n, cfg()))).toEqual([750, 1500, 3000, 6000, 45_000]);
    const up = drive(s, [{ type: 'ConnectRetryTimerExpires' }, ...toEstablished.slice(1)]);
    expect(up.name).toBe('Established');
    expect(up.failures).toBe(0);
  });

  it('autoRestart off: an error leaves the session in Idle until started again', () => {
    const r = step(at('OpenSent', { autoRestart: false }), { type: 'HoldTimerExpires' }, 1);
    expect(r.state.timers).toEqual({});
    expect(types(r.effects)).not.toContain('StartTimer');
  });
});

describe('resolveCollision (RFC 4271 section 6.8)', () => {
  it('keeps our connection when our identifier is higher', () => {
    const d = resolveCollision(ip('198.18.0.9'), ip('198.18.0.2'));
    expect(d).toMatchObject({ keep: 'outgoing', close: 'incoming', reason: 'local_id_higher' });
    expect([d.notification.code, d.notification.subcode]).toEqual([6, 7]);
  });

  it("keeps the peer's connection when its identifier is higher (compared unsigned)", () => {
    expect(resolveCollision(ip('100.0.0.1'), ip('200.0.0.1'))).toMatchObject({ keep: 'incoming', close: 'outgoing', reason: 'remote_id_higher' });
  });

  it('equal identifiers between ASes: the larger AS wins (RFC 6286 section 2.3)', () => {
    expect(resolveCollision(ip('198.18.0.1'), ip('198.18.0.1'), 64512, 64513)).toMatchObject({ keep: 'incoming', reason: 'remote_as_higher' });
    expect(resolveCollision(ip('198.18.0.1'), ip('198.18.0.1'), 64514, 64513)).toMatchObject({ keep: 'outgoing', reason: 'local_as_higher' });
  });
});

describe('eventFromMessage', () => {
  it('maps codec results to FSM events', () => {
    expect(eventFromMessage({ type: 'keepalive' })).toEqual({ type: 'KeepAliveMsg' });
    expect(eventFromMessage({ type: 'open', result: { ok: true, open: peerOpen } })).toEqual({ type: 'BGPOpen', open: peerOpen });
    const n = { code: 2, subcode: 6, data: new Uint8Array(0) };
    expect(eventFromMessage({ type: 'open', result: { ok: false, notification: n, reason: 'unacceptable_hold_time' } })).toEqual({
      type: 'BGPOpenMsgErr',
      notification: n,
      reason: 'unacceptable_hold_time',
    });
    expect(eventFromMessage({ type: 'route-refresh', result: { action: 'ignore', reason: 'unknown_subtype' } })).toEqual({ type: 'RouteRefreshMsg' });
  });
});
