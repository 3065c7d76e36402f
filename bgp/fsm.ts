// The BGP session FSM of RFC 4271 section 8 as a pure transition function. Events and effects are
// data; the caller owns the socket and the timers and executes the effects in order. One FSM
// instance follows one TCP connection; a second connection to the same peer is the speaker's
// business, settled with `resolveCollision` (RFC 4271 section 6.8) and fed back as
// OpenCollisionDump. Left out: DelayOpen, peer oscillation damping, AutomaticStop.

import { formatIP, type IP } from '../api/index.js';
import { CapabilityCode } from './constants.js';
import {
  CeaseSubcode,
  ErrorCode,
  FsmSubcode,
  OpenSubcode,
  describeNotification,
  notification,
  shutdownNotification,
  type DecodedNotification,
  type Notification,
} from './notification.js';
import type { DecodedMessage } from './message.js';
import { negotiate, peerAS, type Negotiated, type Open } from './open.js';
import type { RouteRefresh } from './route-refresh.js';
import type { UpdateDecision } from './update.js';

// ---- states, events, effects -------------------------------------------------------------------

/** RFC 4271 section 8.2.2 */
export type SessionStateName = 'Idle' | 'Connect' | 'Active' | 'OpenSent' | 'OpenConfirm' | 'Established';
export const SESSION_STATE_NAMES: readonly SessionStateName[] = ['Idle', 'Connect', 'Active', 'OpenSent', 'OpenConfirm', 'Established'];

export type TimerName = 'connectRetry' | 'hold' | 'keepalive';

/** Capabilities a peer must advertise, else 2/7 Unsupported Capability (RFC 5492 section 5). */
export type RequiredCapability = 'fourOctetAS' | 'routeRefresh' | 'enhancedRouteRefresh' | 'extendedMessage';

export interface SessionConfig {
  /** Our OPEN, from buildOpen. */
  readonly localOpen: Open;
  /** The AS the peer must announce (RFC 4271 section 6.2, Bad Peer AS). */
  readonly peerAS: number;
  /** RFC 4271 section 8.1.1 PassiveTcpEstablishment: never connect, wait in Active. */
  readonly passive: boolean;
  /** Connect-retry backoff before jitter: minMs doubled per consecutive failure, capped at maxMs. */
  readonly connectRetry: { readonly minMs: number; readonly maxMs: number };
  /** Restart by itself after an error (RFC 4271 section 8.1.1 AllowAutomaticStart); ManualStop never restarts. */
  readonly autoRestart: boolean;
  /** Uniform in [0, 1): the jitter source (RFC 4271 section 10). */
  readonly random: () => number;
  /** Checked on the peer's OPEN; 4-octet AS is required anyway when the peer AS exceeds 65535. */
  readonly requiredCapabilities?: readonly RequiredCapability[];
}

export type SessionConfigInput = Pick<SessionConfig, 'localOpen' | 'peerAS'> & Partial<Omit<SessionConfig, 'localOpen' | 'peerAS'>>;

/** Which side opened the TCP connection the FSM is following. */
export type ConnectionKind = 'none' | 'connecting' | 'outgoing' | 'incoming';

export type SessionDownReason =
  | 'manual_stop'
  | 'hold_timer_expired'
  | 'bad_peer_as'
  | 'bad_bgp_identifier'
  | 'unsupported_capability'
  | 'open_message_error'
  | 'header_error'
  | 'notification_received'
  | 'tcp_connection_fails'
  | 'fsm_error'
  | 'update_error'
  | 'route_refresh_error'
  | 'connection_collision'
  | 'unexpected_event';

export interface SessionState {
  readonly config: SessionConfig;
  readonly name: SessionStateName;
  /** When this state was entered (the injected clock). */
  readonly since: number;
  readonly connection: ConnectionKind;
  /** Consecutive failures without reaching Established: the backoff exponent. */
  readonly failures: number;
  /** Deadlines of the armed timers; an expiry event for a timer not armed here is stale and ignored. */
  readonly timers: Readonly<Partial<Record<TimerName, number>>>;
  readonly remoteOpen?: Open;
  readonly negotiated?: Negotiated;
  /** Why the session last went down, for status and the CLI. */
  readonly lastError?: { readonly reason: SessionDownReason; readonly detail: string; readonly at: number };
}

export type SessionEvent =
  | { readonly type: 'ManualStart' }
  | { readonly type: 'ManualStop'; readonly communication?: string }
  | { readonly type: 'AutomaticStart' }
  /** RFC 4271 Event 16 (Tcp_CR_Acked): our outgoing connection completed. */
  | { readonly type: 'TcpConnectionAcknowledged' }
  /** RFC 4271 Event 17: an incoming connection from the peer was accepted. */
  | { readonly type: 'TcpConnectionConfirmed' }
  | { readonly type: 'TcpConnectionFails' }
  | { readonly type: 'ConnectRetryTimerExpires' }
  | { readonly type: 'HoldTimerExpires' }
  | { readonly type: 'KeepaliveTimerExpires' }
  | { readonly type: 'BGPOpen'; readonly open: Open }
  | { readonly type: 'BGPHeaderErr'; readonly notification: Notification; readonly reason?: string }
  | { readonly type: 'BGPOpenMsgErr'; readonly notification: Notification; readonly reason?: string }
  | { readonly type: 'NotifMsg'; readonly notification: Notification | DecodedNotification }
  | { readonly type: 'KeepAliveMsg' }
  | { readonly type: 'UpdateMsg'; readonly decision: Exclude<UpdateDecision, { action: 'session-reset' }> }
  | { readonly type: 'UpdateMsgErr'; readonly notification: Notification; readonly reason: string }
  | { readonly type: 'RouteRefreshMsg'; readonly routeRefresh?: RouteRefresh }
  | { readonly type: 'RouteRefreshMsgErr'; readonly notification: Notification; readonly reason: string }
  /** RFC 4271 Event 23: collision detection chose to close this connection. */
  | { readonly type: 'OpenCollisionDump' };

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type Effect =
  /** Open an outgoing TCP connection to the peer. */
  | { readonly type: 'Connect' }
  /** Abort the outgoing attempt still in progress (Connect state). */
  | { readonly type: 'CancelConnect' }
  /** Close the session's TCP connection (after sending any NOTIFICATION before it). */
  | { readonly type: 'CloseConnection' }
  | { readonly type: 'SendOpen'; readonly open: Open }
  | { readonly type: 'SendKeepalive' }
  | { readonly type: 'SendNotification'; readonly code: number; readonly subcode: number; readonly data: Uint8Array }
  /** Start, or restart when already running. */
  | { readonly type: 'StartTimer'; readonly timer: TimerName; readonly ms: number }
  | { readonly type: 'StopTimer'; readonly timer: TimerName }
  | { readonly type: 'SessionEstablished'; readonly negotiated: Negotiated }
  | { readonly type: 'SessionDown'; readonly reason: SessionDownReason }
  | { readonly type: 'Log'; readonly level: LogLevel; readonly message: string; readonly reason: string }
  | { readonly type: 'DeliverUpdate'; readonly decision: Exclude<UpdateDecision, { action: 'session-reset' }> }
  | { readonly type: 'DeliverRouteRefresh'; readonly routeRefresh: RouteRefresh };

export interface StepResult {
  readonly state: SessionState;
  readonly effects: Effect[];
}

// ---- timers ------------------------------------------------------------------------------------

/** RFC 4271 section 8.2.2: a large hold time while waiting for the peer's OPEN; 4 minutes is suggested. */
export const OPEN_HOLD_TIME_MS = 240_000;
export const DEFAULT_CONNECT_RETRY = { minMs: 1_000, maxMs: 60_000 } as const;

/** RFC 4271 section 10: jitter multiplies a timer by a random factor in [0.75, 1.0]. */
export function jitter(ms: number, random: () => number): number {
  const r = random();
  const unit = Number.isFinite(r) ? Math.min(1, Math.max(0, r)) : 1;
  return Math.round(ms * (0.75 + 0.25 * unit));
}

/** The connect-retry (and restart) delay after `failures` consecutive failures: min, min, 2·min, 4·min … max. */
export function connectRetryDelay(failures: number, config: Pick<SessionConfig, 'connectRetry' | 'random'>): number {
  const { minMs, maxMs } = config.connectRetry;
  const base = Math.min(maxMs, minMs * 2 ** Math.min(Math.max(0, failures - 1), 30));
  return jitter(base, config.random);
}

// ---- construction ------------------------------------------------------------------------------

export function sessionConfig(input: SessionConfigInput): SessionConfig {
  return {
    passive: false,
    connectRetry: DEFAULT_CONNECT_RETRY,
    autoRestart: true,
    random: Math.random,
    ...input,
  };
}

export function initialState(config: SessionConfig, now: number): SessionState {
  return { config, name: 'Idle', since: now, connection: 'none', failures: 0, timers: {} };
}

// ---- the transition function -------------------------------------------------------------------

/** Accumulates effects and keeps the armed-timer table in step with them. */
class Transition {
  readonly effects: Effect[] = [];
  timers: Partial<Record<TimerName, number>>;
  constructor(
    readonly from: SessionState,
    readonly now: number,
  ) {
    this.timers = { ...from.timers };
  }
  emit(effect: Effect): this {
    this.effects.push(effect);
    return this;
  }
  start(timer: TimerName, ms: number): this {
    this.timers[timer] = this.now + ms;
    return this.emit({ type: 'StartTimer', timer, ms });
  }
  stop(timer: TimerName): this {
    if (this.timers[timer] === undefined) return this;
    delete this.timers[timer];
    return this.emit({ type: 'StopTimer', timer });
  }
  stopAll(): this {
    return this.stop('connectRetry').stop('hold').stop('keepalive');
  }
  notify(n: Notification): this {
    return this.emit({ type: 'SendNotification', code: n.code, subcode: n.subcode, data: n.data });
  }
  log(level: LogLevel, reason: string, message: string): this {
    return this.emit({ type: 'Log', level, message, reason });
  }
  to(name: SessionStateName, patch: Partial<SessionState> = {}): StepResult {
    const since = name === this.from.name ? this.from.since : this.now;
    const state: SessionState = { ...this.from, ...patch, name, since, timers: this.timers };
    return { state, effects: this.effects };
  }
}

const same = (state: SessionState): StepResult => ({ state, effects: [] });

interface DownOptions {
  readonly reason: SessionDownReason;
  readonly detail: string;
  readonly notify?: Notification;
  readonly level?: LogLevel;
  /** ManualStop: no failure counted and no automatic restart. */
  readonly manual?: boolean;
}

/**
 * Every way into Idle from a started session: NOTIFICATION (if any) before the close, the
 * connection closed once, timers stopped, the reason logged, and a backed-off restart armed.
 */
function down(t: Transition, o: DownOptions): StepResult {
  const s = t.from;
  if (o.notify !== undefined) t.notify(o.notify);
  closeConnection(t);
  t.stopAll();
  if (s.name === 'Established') t.emit({ type: 'SessionDown', reason: o.reason });
  const failures = o.manual === true ? 0 : s.failures + 1;
  t.log(o.level ?? (o.manual === true ? 'info' : 'warn'), o.reason, `session ${s.name} -> Idle: ${o.detail}`);
  // The connect-retry timer doubles as the IdleHoldTimer (RFC 4271 section 8.1.1), so restarts back off too.
  if (o.manual !== true && s.config.autoRestart) t.start('connectRetry', connectRetryDelay(failures, s.config));
  return t.to('Idle', {
    connection: 'none',
    failures,
    remoteOpen: undefined,
    negotiated: undefined,
    lastError: { reason: o.reason, detail: o.detail, at: t.now },
  });
}

function closeConnection(t: Transition): void {
  if (t.from.connection === 'connecting') t.emit({ type: 'CancelConnect' });
  else if (t.from.connection !== 'none') t.emit({ type: 'CloseConnection' });
}

/** Sends our OPEN with the large initial hold time (RFC 4271 section 8.2.2, Connect and Active). */
function openSent(t: Transition, connection: ConnectionKind): StepResult {
  t.stop('connectRetry');
  t.emit({ type: 'SendOpen', open: t.from.config.localOpen });
  t.start('hold', OPEN_HOLD_TIME_MS);
  return t.to('OpenSent', { connection });
}

/** Where a lost connection leaves a session before OpenConfirm: listening in Active. */
function backToActive(t: Transition, detail: string): StepResult {
  const s = t.from;
  const failures = s.failures + 1;
  closeConnection(t);
  t.stopAll();
  t.log('warn', 'tcp_connection_fails', `session ${s.name} -> Active: ${detail}`);
  // A passive peer never initiates, so it has no retry to arm.
  if (!s.config.passive) t.start('connectRetry', connectRetryDelay(failures, s.config));
  return t.to('Active', {
    connection: 'none',
    failures,
    remoteOpen: undefined,
    lastError: { reason: 'tcp_connection_fails', detail, at: t.now },
  });
}

function start(t: Transition, manual: boolean): StepResult {
  const s = t.from;
  t.stop('connectRetry');
  const failures = manual ? 0 : s.failures;
  if (s.config.passive) {
    t.log('info', 'start_passive', 'session Idle -> Active: waiting for the peer to connect');
    return t.to('Active', { failures });
  }
  t.start('connectRetry', connectRetryDelay(failures, s.config));
  t.emit({ type: 'Connect' });
  return t.to('Connect', { failures, connection: 'connecting' });
}

const fsmSubcode: Partial<Record<SessionStateName, number>> = {
  OpenSent: FsmSubcode.UNEXPECTED_IN_OPENSENT,
  OpenConfirm: FsmSubcode.UNEXPECTED_IN_OPENCONFIRM,
  Established: FsmSubcode.UNEXPECTED_IN_ESTABLISHED,
};

/** RFC 6608 section 3: an unexpected message gets FSM Error with a per-state subcode. */
function unexpectedMessage(t: Transition, what: string): StepResult {
  const subcode = fsmSubcode[t.from.name] ?? FsmSubcode.UNSPECIFIED;
  return down(t, {
    reason: 'fsm_error',
    detail: `unexpected ${what} in ${t.from.name}`,
    notify: notification(ErrorCode.FSM, subcode),
  });
}

/** Events that stand for a message received from the peer. */
export const isMessageEvent = (e: SessionEvent): boolean =>
  e.type === 'BGPOpen' || e.type === 'KeepAliveMsg' || e.type === 'UpdateMsg' || e.type === 'RouteRefreshMsg';

/** The one pure step of the session: state × event × clock → next state and effects. */
export function step(state: SessionState, event: SessionEvent, now: number): StepResult {
  const t = new Transition(state, now);
  // A timer that is not armed has been stopped or restarted since it fired: a stale expiry.
  const timerOf: Partial<Record<SessionEvent['type'], TimerName>> = {
    ConnectRetryTimerExpires: 'connectRetry',
    HoldTimerExpires: 'hold',
    KeepaliveTimerExpires: 'keepalive',
  };
  const timer = timerOf[event.type];
  if (timer !== undefined) {
    if (state.timers[timer] === undefined) return same(state);
    delete t.timers[timer];
  }
  switch (state.name) {
    case 'Idle':
      return idle(t, event);
    case 'Connect':
    case 'Active':
      return connecting(t, event);
    case 'OpenSent':
    case 'OpenConfirm':
    case 'Established':
      return connected(t, event);
  }
}

/** RFC 4271 section 8.2.2, Idle: only a start (or the restart timer) does anything. */
function idle(t: Transition, e: SessionEvent): StepResult {
  if (e.type === 'ManualStart') return start(t, true);
  if (e.type === 'AutomaticStart' || e.type === 'ConnectRetryTimerExpires') return start(t, false);
  // ManualStop cancels a pending automatic restart.
  if (e.type === 'ManualStop') return t.stopAll().to('Idle', { failures: 0 });
  // An incoming connection here is refused by the caller; RFC 4271: "any other event is ignored".
  return t.to('Idle');
}

/** RFC 4271 section 8.2.2, Connect and Active: no TCP connection yet, no NOTIFICATION to send. */
function connecting(t: Transition, e: SessionEvent): StepResult {
  const s = t.from;
  switch (e.type) {
    case 'ManualStart':
    case 'AutomaticStart':
      return t.to(s.name);
    case 'ManualStop':
      return down(t, { reason: 'manual_stop', detail: 'stopped by the operator', manual: true });
    case 'ConnectRetryTimerExpires': {
      // Connect: the attempt took too long, try again. Active: time to connect ourselves.
      if (s.config.passive) return t.to(s.name);
      closeConnection(t);
      const failures = s.name === 'Connect' ? s.failures + 1 : s.failures;
      t.start('connectRetry', connectRetryDelay(failures, s.config));
      t.emit({ type: 'Connect' });
      return t.to('Connect', { failures, connection: 'connecting' });
    }
    case 'TcpConnectionAcknowledged':
      if (s.config.passive || s.connection !== 'connecting') return t.log('debug', 'unexpected_event', `${e.type} ignored in ${s.name}`).to(s.name);
      return openSent(t, 'outgoing');
    case 'TcpConnectionConfirmed':
      // The incoming connection replaces our own attempt, if any (one connection per FSM).
      closeConnection(t);
      return openSent(t, 'incoming');
    case 'TcpConnectionFails':
      if (s.name === 'Connect') return backToActive(t, 'TCP connection failed');
      return down(t, { reason: 'tcp_connection_fails', detail: 'TCP connection failed' });
    case 'BGPHeaderErr':
    case 'BGPOpenMsgErr':
    case 'UpdateMsgErr':
    case 'RouteRefreshMsgErr':
    case 'NotifMsg':
    case 'OpenCollisionDump':
    case 'HoldTimerExpires':
    case 'KeepaliveTimerExpires':
    case 'BGPOpen':
    case 'KeepAliveMsg':
    case 'UpdateMsg':
    case 'RouteRefreshMsg':
      // RFC 4271 section 8.2.2: any other event in Connect or Active drops to Idle.
      return down(t, { reason: 'unexpected_event', detail: `unexpected ${e.type} in ${s.name}` });
  }
}

/** OpenSent, OpenConfirm and Established: a TCP connection is up. */
function connected(t: Transition, e: SessionEvent): StepResult {
  const s = t.from;
  switch (e.type) {
    case 'ManualStart':
    case 'AutomaticStart':
      return t.to(s.name);
    case 'TcpConnectionAcknowledged':
    case 'TcpConnectionConfirmed':
      // A second connection is tracked by the speaker for collision detection (RFC 4271 section 6.8).
      return t.log('debug', 'unexpected_event', `${e.type} ignored in ${s.name}: one connection per session`).to(s.name);
    case 'ManualStop':
      return down(t, {
        reason: 'manual_stop',
        detail: 'stopped by the operator',
        manual: true,
        // RFC 4486 section 4 and RFC 9003: Administrative Shutdown with the operator's words.
        notify: e.communication === undefined ? notification(ErrorCode.CEASE, CeaseSubcode.ADMINISTRATIVE_SHUTDOWN) : shutdownNotification(e.communication),
      });
    case 'HoldTimerExpires':
      return down(t, { reason: 'hold_timer_expired', detail: 'hold timer expired', notify: notification(ErrorCode.HOLD_TIMER_EXPIRED, 0) });
    case 'KeepaliveTimerExpires':
      // Armed only in OpenConfirm and Established with a non-zero hold time.
      t.emit({ type: 'SendKeepalive' });
      t.start('keepalive', (s.negotiated?.keepaliveTime ?? 0) * 1000);
      return t.to(s.name);
    case 'ConnectRetryTimerExpires':
      // Never armed once a connection is up; treated like any other out-of-place event.
      return down(t, { reason: 'fsm_error', detail: `unexpected ${e.type} in ${s.name}`, notify: notification(ErrorCode.FSM, FsmSubcode.UNSPECIFIED) });
    case 'TcpConnectionFails':
      if (s.name === 'OpenSent') return backToActive(t, 'TCP connection failed');
      return down(t, { reason: 'tcp_connection_fails', detail: 'TCP connection failed' });
    case 'BGPHeaderErr':
      return down(t, { reason: 'header_error', detail: e.reason ?? describeNotification(e.notification), notify: e.notification });
    case 'BGPOpenMsgErr':
      return down(t, { reason: 'open_message_error', detail: e.reason ?? describeNotification(e.notification), notify: e.notification });
    case 'NotifMsg':
      return down(t, { reason: 'notification_received', detail: `peer sent ${notificationText(e.notification)}` });
    case 'OpenCollisionDump':
      return down(t, {
        reason: 'connection_collision',
        detail: 'closed by collision resolution',
        level: 'info',
        notify: notification(ErrorCode.CEASE, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION),
      });
    case 'BGPOpen':
      if (s.name !== 'OpenSent') return unexpectedMessage(t, 'OPEN');
      return receiveOpen(t, e.open);
    case 'KeepAliveMsg':
      if (s.name === 'OpenSent') return unexpectedMessage(t, 'KEEPALIVE');
      restartHold(t);
      if (s.name === 'OpenConfirm') {
        const negotiated = s.negotiated!;
        t.emit({ type: 'SessionEstablished', negotiated });
        t.log('info', 'established', `session established with AS ${negotiated.peerAS} (hold ${negotiated.holdTime} s)`);
        // The backoff starts over once the peer has proved reachable.
        return t.to('Established', { failures: 0 });
      }
      return t.to(s.name);
    case 'UpdateMsg':
      if (s.name !== 'Established') return unexpectedMessage(t, 'UPDATE');
      restartHold(t);
      t.emit({ type: 'DeliverUpdate', decision: e.decision });
      return t.to(s.name);
    case 'RouteRefreshMsg':
      if (s.name !== 'Established') return unexpectedMessage(t, 'ROUTE-REFRESH');
      restartHold(t);
      if (e.routeRefresh !== undefined) t.emit({ type: 'DeliverRouteRefresh', routeRefresh: e.routeRefresh });
      return t.to(s.name);
    case 'UpdateMsgErr':
      if (s.name !== 'Established') return unexpectedMessage(t, 'UPDATE');
      return down(t, { reason: 'update_error', detail: e.reason, notify: e.notification });
    case 'RouteRefreshMsgErr':
      if (s.name !== 'Established') return unexpectedMessage(t, 'ROUTE-REFRESH');
      return down(t, { reason: 'route_refresh_error', detail: e.reason, notify: e.notification });
  }
}

/** RFC 4271 section 8.2.2, Established: every message received restarts the hold timer (unless 0). */
function restartHold(t: Transition): void {
  const hold = t.from.negotiated?.holdTime ?? 0;
  if (hold > 0) t.start('hold', hold * 1000);
}

function notificationText(n: Notification | DecodedNotification): string {
  const text = describeNotification(n);
  const comm = 'shutdownCommunication' in n ? n.shutdownCommunication : undefined;
  return comm === undefined || comm === '' ? text : `${text}: "${comm}"`;
}

// ---- OPEN checks -------------------------------------------------------------------------------

export type OpenCheck =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: SessionDownReason; readonly detail: string; readonly notification: Notification };

const localASOf = (open: Open): number => open.capabilities.fourOctetAS ?? open.myAS;

const capabilityBytes = (cap: RequiredCapability, localAS: number): number[] => {
  switch (cap) {
    case 'fourOctetAS':
      return [CapabilityCode.FOUR_OCTET_AS, 4, (localAS >>> 24) & 0xff, (localAS >>> 16) & 0xff, (localAS >>> 8) & 0xff, localAS & 0xff];
    case 'routeRefresh':
      return [CapabilityCode.ROUTE_REFRESH, 0];
    case 'enhancedRouteRefresh':
      return [CapabilityCode.ENHANCED_ROUTE_REFRESH, 0];
    case 'extendedMessage':
      return [CapabilityCode.EXTENDED_MESSAGE, 0];
  }
};

const hasCapability = (open: Open, cap: RequiredCapability): boolean => {
  switch (cap) {
    case 'fourOctetAS':
      return open.capabilities.fourOctetAS !== undefined;
    case 'routeRefresh':
      return open.capabilities.routeRefresh;
    case 'enhancedRouteRefresh':
      return open.capabilities.enhancedRouteRefresh;
    case 'extendedMessage':
      return open.capabilities.extendedMessage;
  }
};

/** The session-level checks on a decoded OPEN; the codec has checked the rest (version, hold time, zero id). */
export function checkOpen(config: SessionConfig, remote: Open): OpenCheck {
  const localAS = localASOf(config.localOpen);
  const required = new Set(config.requiredCapabilities ?? []);
  // A peer AS above 65535 can only be told apart from AS_TRANS with RFC 6793.
  if (config.peerAS > 0xffff) required.add('fourOctetAS');
  const missing = [...required].filter((c) => !hasCapability(remote, c));
  if (missing.length > 0) {
    // RFC 5492 section 5: the data lists the capabilities we require.
    return {
      ok: false,
      reason: 'unsupported_capability',
      detail: `peer lacks required capabilities: ${missing.join(', ')}`,
      notification: notification(ErrorCode.OPEN_MESSAGE, OpenSubcode.UNSUPPORTED_CAPABILITY, Uint8Array.from(missing.flatMap((c) => capabilityBytes(c, localAS)))),
    };
  }
  const remoteAS = peerAS(remote);
  if (remoteAS !== config.peerAS) {
    return {
      ok: false,
      reason: 'bad_peer_as',
      detail: `peer announced AS ${remoteAS}, expected AS ${config.peerAS}`,
      notification: notification(ErrorCode.OPEN_MESSAGE, OpenSubcode.BAD_PEER_AS),
    };
  }
  // RFC 6286 section 2.2: an internal peer must not share our identifier.
  if (remoteAS === localAS && remote.bgpId.value === config.localOpen.bgpId.value) {
    return {
      ok: false,
      reason: 'bad_bgp_identifier',
      detail: `internal peer uses our BGP identifier ${formatIP(remote.bgpId)}`,
      notification: notification(ErrorCode.OPEN_MESSAGE, OpenSubcode.BAD_BGP_IDENTIFIER),
    };
  }
  return { ok: true };
}

/** RFC 4271 section 8.2.2, OpenSent, Event 19. */
function receiveOpen(t: Transition, remote: Open): StepResult {
  const s = t.from;
  const check = checkOpen(s.config, remote);
  if (!check.ok) return down(t, { reason: check.reason, detail: check.detail, notify: check.notification });
  const negotiated = negotiate(s.config.localOpen, remote);
  t.emit({ type: 'SendKeepalive' });
  if (negotiated.holdTime > 0) {
    t.start('keepalive', negotiated.keepaliveTime * 1000);
    t.start('hold', negotiated.holdTime * 1000);
  } else {
    // RFC 4271 section 4.2: a hold time of zero means no KEEPALIVE and no hold timer.
    t.stop('hold');
  }
  return t.to('OpenConfirm', { remoteOpen: remote, negotiated });
}

// ---- collision detection -----------------------------------------------------------------------

export type CollisionReason = 'local_id_higher' | 'remote_id_higher' | 'local_as_higher' | 'remote_as_higher' | 'identical';

export interface CollisionDecision {
  /** The connection to keep: the one initiated by the speaker with the higher BGP Identifier. */
  readonly keep: 'outgoing' | 'incoming';
  readonly close: 'outgoing' | 'incoming';
  /** Sent on the closed connection (RFC 4486 section 4): Cease / Connection Collision Resolution. */
  readonly notification: Notification;
  readonly reason: CollisionReason;
}

/**
 * RFC 4271 section 6.8: of two connections with the same peer, keep the one initiated by the
 * speaker with the higher BGP Identifier (compared as unsigned 32-bit integers). RFC 6286
 * section 2.3: with equal identifiers (allowed between ASes), the larger AS number wins.
 */
export function resolveCollision(localId: IP, remoteId: IP, localAS?: number, remoteAS?: number): CollisionDecision {
  let localWins: boolean;
  let reason: CollisionReason;
  if (localId.value !== remoteId.value) {
    localWins = localId.value > remoteId.value;
    reason = localWins ? 'local_id_higher' : 'remote_id_higher';
  } else if (localAS !== undefined && remoteAS !== undefined && localAS !== remoteAS) {
    localWins = localAS > remoteAS;
    reason = localWins ? 'local_as_higher' : 'remote_as_higher';
  } else {
    // Cannot happen after checkOpen (2/3); keep our own connection so the answer is defined.
    localWins = true;
    reason = 'identical';
  }
  const keep = localWins ? 'outgoing' : 'incoming';
  return {
    keep,
    close: keep === 'outgoing' ? 'incoming' : 'outgoing',
    notification: notification(ErrorCode.CEASE, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION),
    reason,
  };
}

/** RFC 4271 section 6.8: only a connection in OpenConfirm (or OpenSent, once the peer's id is known) takes part. */
export const inCollisionScope = (state: SessionState): boolean => state.name === 'OpenConfirm' || state.name === 'OpenSent';

// ---- from the codec to events --------------------------------------------------------------------

/** Maps a decoded message to the FSM event it raises. `undefined`: nothing to do (an ignored ROUTE-REFRESH). */
export function eventFromMessage(m: DecodedMessage): SessionEvent | undefined {
  switch (m.type) {
    case 'open':
      return m.result.ok ? { type: 'BGPOpen', open: m.result.open } : { type: 'BGPOpenMsgErr', notification: m.result.notification, reason: m.result.reason };
    case 'update':
      return m.decision.action === 'session-reset'
        ? { type: 'UpdateMsgErr', notification: m.decision.notification, reason: m.decision.reason }
        : { type: 'UpdateMsg', decision: m.decision };
    case 'notification':
      return { type: 'NotifMsg', notification: m.notification };
    case 'keepalive':
      return { type: 'KeepAliveMsg' };
    case 'route-refresh':
      switch (m.result.action) {
        case 'ok':
          return { type: 'RouteRefreshMsg', routeRefresh: m.result.routeRefresh };
        case 'ignore':
          // RFC 7313 section 3.2: an unknown subtype is ignored, yet it still proves the peer alive.
          return { type: 'RouteRefreshMsg' };
        case 'session-reset':
          return { type: 'RouteRefreshMsgErr', notification: m.result.notification, reason: m.result.reason };
      }
  }
}
