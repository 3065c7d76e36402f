// One BGP peer's session at run time: the pure FSM of fsm.ts driven by real sockets and timers.
// A session owns up to two connections to its peer: the main one, which connects, retries and
// carries the established session, and, while the main one is still opening, a second one the
// peer opened towards us. RFC 4271 section 6.8 collision resolution keeps one of them. Everything
// the network does to a session arrives here as an FSM event; everything the FSM decides leaves
// as an effect executed below, so the policy stays in fsm.ts and this file stays mechanical.

import { Framer } from './framer.js';
import {
  eventFromMessage,
  inCollisionScope,
  initialState,
  resolveCollision,
  step,
  type Effect,
  type SessionConfig,
  type SessionDownReason,
  type SessionEvent,
  type SessionState,
  type SessionStateName,
  type TimerName,
} from './fsm.js';
import { decodeMessage, encodeKeepalive } from './message.js';
import { CeaseSubcode, ErrorCode, describeNotification, encodeNotification, notification, type Notification } from './notification.js';
import { encodeOpen, peerAS, type Negotiated } from './open.js';
import type { RouteRefresh } from './route-refresh.js';
import type { PeerSocketOptions } from './sockopt.js';
import type { BgpSocket, Transport } from './transport.js';
import type { SessionContext, UpdateDecision } from './update.js';

export interface SessionLog {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
  debug?(o: object, msg: string): void;
}

export interface SessionHandlers {
  /** The main connection changed state. */
  state(state: SessionStateName): void;
  established(info: EstablishedInfo): void;
  down(reason: SessionDownReason): void;
  update(decision: Exclude<UpdateDecision, { action: 'session-reset' }>): void;
  routeRefresh(rr: RouteRefresh): void;
}

export interface EstablishedInfo {
  readonly negotiated: Negotiated;
  /** Our address on the connection: the default next hop ("next-hop self"). */
  readonly localAddress: string;
  readonly remoteAddress: string;
}

export interface SessionOptions {
  readonly name: string;
  readonly peerAddress: string;
  readonly peerPort: number;
  readonly localAddress?: string;
  /** MD5 key and TTL rules; the password is never logged. */
  readonly socket: PeerSocketOptions;
  readonly fsm: SessionConfig;
  readonly transport: Transport;
  readonly log: SessionLog;
  readonly handlers: SessionHandlers;
  readonly now?: () => number;
  /** Upper bound on the KEEPALIVE interval; the FSM's is a third of the negotiated hold time. */
  readonly keepaliveMs?: number;
  /** Octets queued towards the peer beyond which the session is reset (Cease, Out of Resources). */
  readonly maxBufferedBytes?: number;
}

const DEFAULT_MAX_BUFFERED = 64 * 1024 * 1024;
const KEEPALIVE = encodeKeepalive();
const timerEvents: Record<TimerName, SessionEvent> = {
  connectRetry: { type: 'ConnectRetryTimerExpires' },
  hold: { type: 'HoldTimerExpires' },
  keepalive: { type: 'KeepaliveTimerExpires' },
};

/** One TCP connection (or attempt) and the FSM that follows it. */
class Connection {
  socket: BgpSocket | undefined;
  cancelConnect: (() => void) | undefined;
  readonly timers = new Map<TimerName, NodeJS.Timeout>();
  framer = new Framer();
  /** Dropped by collision resolution or replaced: its effects no longer matter. */
  retired = false;
  constructor(public state: SessionState) {}

  clearTimers(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}

const connected = (s: SessionState): boolean => s.name === 'OpenSent' || s.name === 'OpenConfirm' || s.name === 'Established';

export class Session {
  private main: Connection;
  private second: Connection | undefined;
  private readonly now: () => number;
  private stopped = true;
  /** Human-readable: the last reason the session went down or failed to come up. */
  lastError: string | undefined;
  /** Why the transport just failed, added to the FSM's log line about it. */
  private transportCause: string | undefined;

  constructor(private readonly o: SessionOptions) {
    this.now = o.now ?? Date.now;
    this.main = new Connection(initialState(o.fsm, this.now()));
  }

  get state(): SessionState {
    return this.main.state;
  }

  get established(): boolean {
    return this.main.state.name === 'Established';
  }

  get negotiated(): Negotiated | undefined {
    return this.established ? this.main.state.negotiated : undefined;
  }

  get bufferedBytes(): number {
    return this.main.socket?.bufferedBytes ?? 0;
  }

  start(): void {
    this.stopped = false;
    this.run(this.main, { type: 'ManualStart' });
  }

  /** Administrative stop: Cease (with the RFC 9003 communication, if any) and no restart. */
  stop(communication?: string): void {
    this.stopped = true;
    if (this.second !== undefined) this.retire(this.second, { type: 'ManualStop' });
    this.run(this.main, { type: 'ManualStop', ...(communication === undefined ? {} : { communication }) });
  }

  /** Drops the connections without a NOTIFICATION, as a restarting speaker does (RFC 4724 section 4). */
  abandon(): void {
    this.stopped = true;
    for (const c of [this.main, this.second]) {
      if (c === undefined) continue;
      c.clearTimers();
      c.cancelConnect?.();
      c.socket?.destroy();
      c.socket = undefined;
      c.retired = true;
    }
    this.second = undefined;
    this.main = new Connection(initialState(this.o.fsm, this.now()));
    this.o.handlers.state('Idle');
  }

  /** Writes messages on the established connection; resets the session when the peer stops reading for too long. */
  send(data: Uint8Array): void {
    const c = this.main;
    if (c.state.name !== 'Established' || c.socket === undefined) return;
    c.socket.write(data);
    const max = this.o.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED;
    if (c.socket.bufferedBytes > max) {
      this.reset(c, notification(ErrorCode.CEASE, CeaseSubcode.OUT_OF_RESOURCES), `the peer left more than ${max} octets unread`);
    }
  }

  /** An incoming connection from this peer (the listener matched its address). */
  accept(socket: BgpSocket): void {
    const m = this.main;
    if (this.stopped || m.state.name === 'Idle') {
      // RFC 4271 section 8.2.2: Idle refuses connections.
      this.log('debug', { reason: 'connection_refused' }, `incoming connection refused in ${m.state.name}`);
      socket.destroy();
      return;
    }
    // Active has no attempt of its own in flight: the incoming connection is the session's. In
    // Connect our SYN may already have reached the peer, so both connections are followed and
    // collision resolution keeps one, the same one on both sides.
    if (m.state.name === 'Active') {
      this.attach(m, socket, { type: 'TcpConnectionConfirmed' });
      return;
    }
    if (m.state.name === 'Established' || this.second !== undefined) {
      // RFC 4271 section 6.8: a connection colliding with an established session is closed.
      this.log('info', { reason: 'connection_collision' }, `incoming connection closed: session is ${m.state.name}`);
      socket.write(encodeNotification(notification(ErrorCode.CEASE, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION)));
      socket.end();
      return;
    }
    // Connect, OpenSent or OpenConfirm: follow the new connection too until the peer's OPEN settles which stays.
    // Passive and without restarts: it never connects by itself and ends with its connection.
    const idle = initialState({ ...this.o.fsm, passive: true, autoRestart: false }, this.now());
    const second = new Connection(step(idle, { type: 'ManualStart' }, this.now()).state);
    this.second = second;
    this.attach(second, socket, { type: 'TcpConnectionConfirmed' });
  }

  // ---- the FSM loop ------------------------------------------------------------------------------

  private run(c: Connection, event: SessionEvent): void {
    if (c.retired) return;
    const before = this.main.state.name;
    const result = step(c.state, event, this.now());
    c.state = result.state;
    for (const e of result.effects) this.execute(c, e);
    if (event.type === 'BGPOpen' && c.state.name === 'OpenConfirm') this.resolveCollision(c);
    this.tidy(c);
    if (this.main.state.name !== before) this.o.handlers.state(this.main.state.name);
  }

  private execute(c: Connection, e: Effect): void {
    const socket = c.socket;
    switch (e.type) {
      case 'Connect':
        this.connect(c);
        return;
      case 'CancelConnect':
        c.cancelConnect?.();
        c.cancelConnect = undefined;
        return;
      case 'CloseConnection':
        c.socket = undefined;
        socket?.end();
        return;
      case 'SendOpen':
        socket?.write(encodeOpen(e.open));
        return;
      case 'SendKeepalive':
        socket?.write(KEEPALIVE);
        return;
      case 'SendNotification': {
        const n = { code: e.code, subcode: e.subcode, data: e.data };
        socket?.write(encodeNotification(n));
        this.lastError = `sent NOTIFICATION ${describeNotification(n)}`;
        return;
      }
      case 'StartTimer': {
        const old = c.timers.get(e.timer);
        if (old !== undefined) clearTimeout(old);
        // A configured keepalive interval shorter than a third of the hold time wins (RFC 4271 section 10).
        const ms = e.timer === 'keepalive' && this.o.keepaliveMs !== undefined ? Math.min(e.ms, this.o.keepaliveMs) : e.ms;
        c.timers.set(
          e.timer,
          setTimeout(() => {
            c.timers.delete(e.timer);
            this.run(c, timerEvents[e.timer]);
          }, ms),
        );
        return;
      }
      case 'StopTimer':
        clearTimeout(c.timers.get(e.timer));
        c.timers.delete(e.timer);
        return;
      case 'SessionEstablished':
        if (c !== this.main) this.promote(c);
        this.o.handlers.established({ negotiated: e.negotiated, localAddress: socket?.localAddress ?? '', remoteAddress: socket?.remoteAddress ?? '' });
        return;
      case 'SessionDown':
        if (c === this.main) this.o.handlers.down(e.reason);
        return;
      case 'Log': {
        // The FSM knows that TCP failed; the transport knows why.
        const message = e.reason === 'tcp_connection_fails' && this.transportCause !== undefined ? `${e.message}: ${this.transportCause}` : e.message;
        this.transportCause = undefined;
        if (e.level === 'warn' || e.level === 'error') this.lastError = message;
        this.log(e.level === 'error' ? 'warn' : e.level, { reason: e.reason }, message);
        return;
      }
      case 'DeliverUpdate':
        if (c === this.main) this.o.handlers.update(e.decision);
        return;
      case 'DeliverRouteRefresh':
        if (c === this.main) this.o.handlers.routeRefresh(e.routeRefresh);
        return;
    }
  }

  private connect(c: Connection): void {
    const o = this.o;
    const target = { peerAddress: o.peerAddress, peerPort: o.peerPort, ...o.socket, ...(o.localAddress === undefined ? {} : { localAddress: o.localAddress }) };
    c.cancelConnect = o.transport.connect(target, (r) => {
      c.cancelConnect = undefined;
      if (c.retired || c.state.connection !== 'connecting') {
        if (r.ok) r.socket.destroy();
        return;
      }
      if (!r.ok) {
        this.transportCause = `connect to ${o.peerAddress} port ${o.peerPort} failed: ${r.error}`;
        this.run(c, { type: 'TcpConnectionFails' });
        return;
      }
      this.attach(c, r.socket, { type: 'TcpConnectionAcknowledged' });
    });
  }

  /** Gives the connection its socket, lets the FSM take it (sending our OPEN), then starts reading. */
  private attach(c: Connection, socket: BgpSocket, event: SessionEvent): void {
    c.socket = socket;
    c.framer = new Framer();
    this.run(c, event);
    socket.bind({
      data: (chunk) => this.receive(c, socket, chunk),
      closed: (reason) => {
        if (c.socket !== socket) return;
        c.socket = undefined;
        this.transportCause = reason;
        this.run(c, { type: 'TcpConnectionFails' });
      },
    });
  }

  private receive(c: Connection, socket: BgpSocket, chunk: Uint8Array): void {
    if (c.socket !== socket) return;
    const { frames, error } = c.framer.push(chunk);
    for (const frame of frames) {
      // An earlier message in this chunk may have closed the connection.
      if (c.socket !== socket) return;
      try {
        const event = eventFromMessage(decodeMessage(frame, this.contextOf(c)));
        if (event !== undefined) this.run(c, event);
      } catch (e) {
        // The codec never throws on input; a bug must cost this session, not the process and its other peers.
        this.reset(c, notification(ErrorCode.CEASE, 0), `internal error: ${(e as Error).message}`);
        return;
      }
    }
    if (error !== undefined && c.socket === socket) this.run(c, { type: 'BGPHeaderErr', notification: error.notification, reason: error.reason });
  }

  private contextOf(c: Connection): SessionContext {
    const localAS = this.o.fsm.localOpen.capabilities.fourOctetAS ?? this.o.fsm.localOpen.myAS;
    return { fourOctetAS: c.state.negotiated?.fourOctetAS ?? true, external: this.o.fsm.peerAS !== localAS };
  }

  /** A local reason to drop the session (no FSM event exists for it): NOTIFICATION, then as if TCP failed. */
  private reset(c: Connection, n: Notification, detail: string): void {
    this.lastError = `${detail}: sent NOTIFICATION ${describeNotification(n)}`;
    this.log('warn', { reason: 'local_reset' }, this.lastError);
    const socket = c.socket;
    c.socket = undefined;
    socket?.write(encodeNotification(n));
    socket?.end();
    this.run(c, { type: 'TcpConnectionFails' });
  }

  // ---- two connections ---------------------------------------------------------------------------

  /** RFC 4271 section 6.8, on receipt of an OPEN: with the peer's identifier known, keep one connection. */
  private resolveCollision(c: Connection): void {
    const other = c === this.main ? this.second : this.main;
    if (other === undefined || other.retired || !inCollisionScope(other.state)) return;
    const local = this.o.fsm.localOpen;
    const remote = c.state.remoteOpen!;
    const decision = resolveCollision(local.bgpId, remote.bgpId, local.capabilities.fourOctetAS ?? local.myAS, peerAS(remote));
    // Two connections in the same direction (a peer that reconnected quickly): the newer one stays.
    const loser = c.state.connection === other.state.connection ? this.main : c.state.connection === decision.close ? c : other;
    this.log('info', { reason: decision.reason }, `connection collision: keeping the ${decision.keep} connection`);
    this.retire(loser, { type: 'OpenCollisionDump' });
  }

  /** Steps a connection that is going away; only what it says to the peer is carried out. */
  private retire(c: Connection, event: SessionEvent): void {
    if (c.retired) return;
    const result = step(c.state, event, this.now());
    for (const e of result.effects) {
      if (e.type === 'SendNotification' || e.type === 'CloseConnection' || e.type === 'CancelConnect' || e.type === 'Log') this.execute(c, e);
    }
    c.clearTimers();
    c.retired = true;
    if (c === this.main && this.second !== undefined) this.promote(this.second);
    if (c === this.second) this.second = undefined;
  }

  /** The second connection takes over the main role, with the peer's real configuration. */
  private promote(c: Connection): void {
    if (c === this.main) return;
    const old = this.main;
    if (!old.retired) {
      old.clearTimers();
      old.cancelConnect?.();
      old.socket?.end();
      old.socket = undefined;
      old.retired = true;
    }
    c.state = { ...c.state, config: this.o.fsm };
    this.main = c;
    this.second = undefined;
  }

  /** After every step: a second connection outlives a main one that lost its own; a failed second one goes. */
  private tidy(c: Connection): void {
    const second = this.second;
    if (second === undefined) return;
    if (c === second && !connected(second.state)) {
      second.clearTimers();
      second.retired = true;
      this.second = undefined;
    } else if (c === this.main && !connected(this.main.state) && !this.stopped) {
      this.promote(second);
    }
  }

  private log(level: 'debug' | 'info' | 'warn', o: object, msg: string): void {
    const fields = { peer: this.o.name, ...o };
    if (level === 'debug') this.o.log.debug?.(fields, msg);
    else this.o.log[level](fields, msg);
  }
}
