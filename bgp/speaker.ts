// The BGP speaker: many peers, one listener, and per peer the Adj-RIB-Out the caller wants
// (setRoutes) diffed against what the peer holds from this session. UPDATEs carry many NLRI
// each (routes sharing attributes are packed together by packUpdates), are written in large
// batches, and End-of-RIB follows the initial sync (RFC 4724 section 2). While a peer is not up
// its full table waits in NLRI form, so the initial sync right after Established copies bytes
// instead of working per route, which cold (not yet optimized) code pays for dearly. Routes the
// peer sends are counted, never installed. Level-triggered like the rest of Beacon: setPeers and
// setRoutes take the whole desired state, the speaker does only the difference.

import { EventEmitter } from 'node:events';
import { formatIP, parseIP, type Family as IPFamily, type IP } from '../api/index.js';
import { asSequence, parseCommunity, parseLargeCommunity, WellKnownCommunity, type LargeCommunity, type PathAttributes } from './attributes.js';
import { AFI, Origin, SAFI, familyOfAfi } from './constants.js';
import { DEFAULT_CONNECT_RETRY, sessionConfig, type SessionDownReason, type SessionStateName } from './fsm.js';
import { buildOpen, type Negotiated } from './open.js';
import { encodeNlri, packEncoded, packUpdates, type EncodedGroup, type NextHops, type RouteGroup } from './pack.js';
import { formatPrefix, parsePrefix, prefixKey, type Prefix } from './prefix.js';
import { encodeRouteRefresh, RouteRefreshSubtype, type RouteRefresh } from './route-refresh.js';
import { Session, type EstablishedInfo } from './session.js';
import { TCP_MD5SIG_MAXKEYLEN, type PeerSocketOptions } from './sockopt.js';
import { TcpTransport, type Listener, type Transport } from './transport.js';
import { encodeEndOfRib, type UpdateDecision } from './update.js';
import { concatBytes } from './wire.js';

export type Family = 'ipv4-unicast' | 'ipv6-unicast';

export interface PeerConfig {
  /** Unique per speaker, e.g. "instance/peer". */
  name: string;
  peerAddress: string;
  peerASN: number;
  /** Default 179. */
  peerPort?: number;
  localASN: number;
  /** Source address of the TCP connection (and the default next hop). */
  localAddress?: string;
  /** Dotted IPv4. */
  routerId: string;
  /** Default 90; 0 or >= 3. */
  holdTimeSeconds?: number;
  /** Default: a third of the negotiated hold time (30 s for 90 s); a smaller value here wins. */
  keepAliveTimeSeconds?: number;
  /** Default 120: the ceiling of the jittered connect-retry backoff. */
  connectRetryTimeSeconds?: number;
  /** TCP MD5 (RFC 2385); never logged. */
  password?: string;
  /** TTL towards an eBGP peer (default 1: directly connected). */
  ebgpMultihop?: number;
  /** RFC 5082: send with TTL 255, accept only TTL >= 256 - hops. */
  gtsm?: boolean;
  /** Only accept, never connect. */
  passive?: boolean;
  gracefulRestart?: { enabled: boolean; restartTimeSeconds?: number };
  /** Default both. */
  families?: Family[];
  /** Next-hop self; default: our address on the TCP session. */
  nextHop?: { ipv4?: string; ipv6?: string };
}

export interface Route {
  prefix: string;
  /** "65000:100" or a well-known name (no-export, no-advertise, graceful-shutdown, blackhole, …). */
  communities?: string[];
  /** "1:2:3" */
  largeCommunities?: string[];
  /** Sent to iBGP peers only (RFC 4271 section 5.1.5); default 100 there. */
  localPreference?: number;
  med?: number;
}

export type PeerStateName = 'idle' | 'connect' | 'active' | 'opensent' | 'openconfirm' | 'established';

export interface PeerStatus {
  name: string;
  peerAddress: string;
  peerPort: number;
  peerASN: number;
  localASN: number;
  state: PeerStateName;
  /** Since established; 0 otherwise. */
  uptimeSeconds: number;
  /** Negotiated, or configured when not established. */
  families: Family[];
  /** Prefixes currently received from the peer (counted, never installed), stale ones of a restarting peer included. */
  received: number;
  /** Prefixes currently advertised to the peer. */
  advertised: number;
  lastError?: string;
}

export interface AdvertisedRoute extends Route {
  nextHop: string;
  asPath: number[];
  family: Family;
}

export interface SpeakerLog {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
  debug?(o: object, msg: string): void;
}

export interface SpeakerOptions {
  /** Default port 179 on every address; false: never listen. */
  listen?: { port: number; addresses?: string[] } | false;
  log?: SpeakerLog;
  now?: () => number;
  /** Default: TCP through the kernel. Tests pass the in-memory transport. */
  transport?: Transport;
}

const FAMILIES: readonly Family[] = ['ipv4-unicast', 'ipv6-unicast'];
const familyName = (f: IPFamily): Family => (f === 4 ? 'ipv4-unicast' : 'ipv6-unicast');
const ipFamily = (f: Family): IPFamily => (f === 'ipv4-unicast' ? 4 : 6);
const stateNames: Record<SessionStateName, PeerStateName> = {
  Idle: 'idle',
  Connect: 'connect',
  Active: 'active',
  OpenSent: 'opensent',
  OpenConfirm: 'openconfirm',
  Established: 'established',
};
/** Octets per socket write: large enough to amortize the syscall, small enough to interleave KEEPALIVEs. */
const WRITE_BATCH = 256 * 1024;
const noLog: SpeakerLog = { info: () => undefined, warn: () => undefined };

/** The attributes of a route apart from its prefix, parsed once per distinct combination. */
interface AttrSet {
  readonly key: string;
  readonly route: Omit<Route, 'prefix'>;
  readonly communities: readonly number[];
  readonly largeCommunities: readonly LargeCommunity[];
}

interface OutRoute {
  readonly prefix: Prefix;
  readonly attrs: AttrSet;
}

/** The desired routes grouped by attribute set and family, in NLRI form: an initial sync prepared ahead. */
interface WireRib {
  /** The desired map this was made from; stale once the speaker holds another. */
  readonly desired: ReadonlyMap<string, OutRoute>;
  readonly groups: readonly { readonly attrs: AttrSet; readonly family: IPFamily; readonly nlri: Uint8Array }[];
}

function prepareWire(desired: ReadonlyMap<string, OutRoute>): WireRib {
  const byFamily = { 4: new Map<AttrSet, Prefix[]>(), 6: new Map<AttrSet, Prefix[]>() };
  for (const { prefix, attrs } of desired.values()) {
    const groups = byFamily[prefix.family];
    const prefixes = groups.get(attrs);
    if (prefixes === undefined) groups.set(attrs, [prefix]);
    else prefixes.push(prefix);
  }
  const groups = ([4, 6] as const).flatMap((family) => [...byFamily[family]].map(([attrs, prefixes]) => ({ attrs, family, nlri: encodeNlri(prefixes) })));
  return { desired, groups };
}

interface ParsedPrefix {
  readonly prefix: Prefix;
  readonly key: string;
}

/**
 * Reads "a.b.c.d/len" or "a.b.c.d" when written canonically (no leading zeros, host bits zero)
 * into `out` without allocating; false sends the text to the general parser.
 */
export function parseCanonicalIPv4Prefix(text: string, out: { value: number; length: number }): boolean {
  let value = 0;
  let i = 0;
  const n = text.length;
  for (let octet = 0; octet < 4; octet++) {
    if (octet > 0) {
      if (text.charCodeAt(i) !== 46 /* . */) return false;
      i++;
    }
    const start = i;
    let v = 0;
    for (; i < n && i - start < 4; i++) {
      const c = text.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      v = v * 10 + c;
    }
    const digits = i - start;
    if (digits === 0 || digits > 3 || v > 255 || (digits > 1 && text.charCodeAt(start) === 48)) return false;
    value = value * 256 + v;
  }
  let length = 32;
  if (i < n) {
    if (text.charCodeAt(i) !== 47 /* / */ || n - i < 2 || n - i > 3) return false;
    length = 0;
    for (let k = i + 1; k < n; k++) {
      const c = text.charCodeAt(k) - 48;
      if (c < 0 || c > 9) return false;
      length = length * 10 + c;
    }
    if (length > 32 || (n - i === 3 && text.charCodeAt(i + 1) === 48)) return false;
  }
  // Host bits must be zero (as parsePrefix requires).
  if (length < 32 && value % 2 ** (32 - length) !== 0) return false;
  out.value = value;
  out.length = length;
  return true;
}

/** The Adj-RIB-Out key of a prefix: canonical text for IPv4 (what the fast path reads), the codec's key for IPv6. */
const ribKey = (p: Prefix): string => (p.family === 4 ? formatPrefix(p) : prefixKey(p));

function parseOtherPrefix(text: string): ParsedPrefix | undefined {
  const prefix = parsePrefix(text);
  if (prefix === undefined) return undefined;
  return { prefix, key: ribKey(prefix) };
}

const attrKeyOf = (r: Route): string =>
  r.communities === undefined && r.largeCommunities === undefined && r.localPreference === undefined && r.med === undefined
    ? ''
    : `${r.med ?? ''}|${r.localPreference ?? ''}|${r.communities?.join(',') ?? ''}|${r.largeCommunities?.join(',') ?? ''}`;

function parseAttrs(r: Route, key: string): AttrSet | string {
  const communities: number[] = [];
  for (const c of r.communities ?? []) {
    // The API's alias for NO_EXPORT_SUBCONFED (RFC 1997 calls it that; some daemons say local-as).
    const v = c === 'local-as' ? WellKnownCommunity.NO_EXPORT_SUBCONFED : parseCommunity(c);
    if (v === undefined) return `bad community ${JSON.stringify(c)}`;
    communities.push(v);
  }
  const largeCommunities: LargeCommunity[] = [];
  for (const c of r.largeCommunities ?? []) {
    const v = parseLargeCommunity(c);
    if (v === undefined) return `bad large community ${JSON.stringify(c)}`;
    largeCommunities.push(v);
  }
  const u32 = (n: number | undefined): boolean => n === undefined || (Number.isInteger(n) && n >= 0 && n <= 0xffffffff);
  if (!u32(r.med)) return `bad MED ${r.med}`;
  if (!u32(r.localPreference)) return `bad local preference ${r.localPreference}`;
  const route: Omit<Route, 'prefix'> = {
    ...(r.communities?.length ? { communities: [...r.communities] } : {}),
    ...(r.largeCommunities?.length ? { largeCommunities: [...r.largeCommunities] } : {}),
    ...(r.localPreference === undefined ? {} : { localPreference: r.localPreference }),
    ...(r.med === undefined ? {} : { med: r.med }),
  };
  return { key, route, communities, largeCommunities };
}

// ---- configuration ---------------------------------------------------------------------------------

interface ResolvedPeer {
  readonly config: PeerConfig;
  readonly peerIP: IP;
  readonly port: number;
  readonly external: boolean;
  readonly families: readonly Family[];
  readonly socket: PeerSocketOptions;
  readonly nextHop: { ipv4?: IP; ipv6?: IP };
  readonly gracefulRestart: boolean;
  /** The configuration without the password, for comparing and logging. */
  readonly fingerprint: string;
}

const asnOk = (n: unknown): boolean => typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 0xffffffff;

/** Checks a peer's configuration; a string says what is wrong. */
export function resolvePeer(c: PeerConfig): ResolvedPeer | string {
  if (typeof c.name !== 'string' || c.name === '') return 'a peer needs a name';
  const peerIP = parseIP(c.peerAddress);
  if (peerIP === undefined) return `bad peer address ${JSON.stringify(c.peerAddress)}`;
  if (!asnOk(c.peerASN)) return `bad peer AS ${c.peerASN}`;
  if (!asnOk(c.localASN)) return `bad local AS ${c.localASN}`;
  const routerId = parseIP(c.routerId);
  if (routerId?.family !== 4 || routerId.value === 0n) return `bad router id ${JSON.stringify(c.routerId)}`;
  const hold = c.holdTimeSeconds ?? 90;
  if (!Number.isInteger(hold) || hold < 0 || hold > 0xffff || hold === 1 || hold === 2) return `hold time ${hold} must be 0 or 3..65535`;
  const port = c.peerPort ?? 179;
  if (!Number.isInteger(port) || port < 1 || port > 0xffff) return `bad peer port ${port}`;
  if (c.localAddress !== undefined && parseIP(c.localAddress)?.family !== peerIP.family) return `local address ${JSON.stringify(c.localAddress)} is not an IPv${peerIP.family} address`;
  if (c.password !== undefined && new TextEncoder().encode(c.password).length > TCP_MD5SIG_MAXKEYLEN) return `the TCP MD5 password is longer than ${TCP_MD5SIG_MAXKEYLEN} octets`;
  const hops = c.ebgpMultihop ?? 1;
  if (!Number.isInteger(hops) || hops < 1 || hops > 255) return `ebgpMultihop ${hops} must be 1..255`;
  const families = c.families ?? [...FAMILIES];
  if (families.length === 0 || families.some((f) => !FAMILIES.includes(f))) return `bad families ${JSON.stringify(c.families)}`;
  const nextHop: { ipv4?: IP; ipv6?: IP } = {};
  for (const f of [4, 6] as const) {
    const text = f === 4 ? c.nextHop?.ipv4 : c.nextHop?.ipv6;
    if (text === undefined) continue;
    const ip = parseIP(text);
    if (ip?.family !== f) return `bad IPv${f} next hop ${JSON.stringify(text)}`;
    nextHop[f === 4 ? 'ipv4' : 'ipv6'] = ip;
  }
  const external = c.peerASN !== c.localASN;
  const gtsm = c.gtsm === true;
  const { password: _secret, ...visible } = c;
  return {
    config: c,
    peerIP,
    port,
    external,
    families,
    // RFC 5082 section 3: TTL 255 out, and at most `hops - 1` routers in between on the way in.
    socket: {
      ...(c.password ? { password: c.password } : {}),
      ...(gtsm ? { ttl: 255, minTtl: 256 - hops } : external ? { ttl: hops } : {}),
    },
    nextHop,
    gracefulRestart: c.gracefulRestart?.enabled === true,
    fingerprint: JSON.stringify({ ...visible, password: c.password === undefined ? undefined : hashOf(c.password) }),
  };
}

/** A change of password must reset the session without the password showing up anywhere. */
function hashOf(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

// ---- one peer --------------------------------------------------------------------------------------

class Peer {
  session: Session;
  /** The Adj-RIB-Out the caller wants. A map set here is never changed afterwards: `sent` may share it. */
  desired: ReadonlyMap<string, OutRoute> = new Map();
  /** `desired` in NLRI form, prepared while the session is not up (see syncAll). */
  wire: WireRib | undefined;
  private ownSent = new Map<string, OutRoute>();
  /** A desired map the peer holds in full (after syncAll), shared until the first change. */
  private sharedSent: ReadonlyMap<string, OutRoute> | undefined;
  /** Non-IPv4 prefix texts from the last setRoutes, so an unchanged list is not parsed again. */
  parsed = new Map<string, ParsedPrefix>();
  readonly received = new Map<string, IPFamily>();
  /** Routes of a restarting peer kept until its End-of-RIB (RFC 4724 section 4.2). */
  readonly stale = new Map<string, IPFamily>();
  staleTimer: NodeJS.Timeout | undefined;
  negotiated: Negotiated | undefined;
  families = new Set<IPFamily>();
  nextHops: NextHops = {};
  initialSyncDone = false;
  syncPending = false;
  /** Routes without a next hop of their family, as last logged (logged again only when it changes). */
  unreachableReported = 0;
  /** RFC 8326: routes carry GRACEFUL_SHUTDOWN while the speaker drains. */
  gracefulShutdown = false;

  constructor(
    readonly r: ResolvedPeer,
    build: (p: Peer) => Session,
  ) {
    this.session = build(this);
  }

  get name(): string {
    return this.r.config.name;
  }

  /** What the peer holds from this session (the Adj-RIB-Out as sent). */
  get sent(): ReadonlyMap<string, OutRoute> {
    return this.sharedSent ?? this.ownSent;
  }

  /** `sent` for changing: copied first if it is shared with a desired map. */
  sentForUpdate(): Map<string, OutRoute> {
    if (this.sharedSent !== undefined) {
      this.ownSent = new Map(this.sharedSent);
      this.sharedSent = undefined;
    }
    return this.ownSent;
  }

  /** The peer now holds exactly `desired`. */
  sentAllDesired(): void {
    this.sharedSent = this.desired;
    this.ownSent = new Map();
  }

  forgetSent(): void {
    this.sharedSent = undefined;
    this.ownSent = new Map();
  }

  clearStale(family?: IPFamily): void {
    if (family === undefined) this.stale.clear();
    else for (const [k, f] of this.stale) if (f === family) this.stale.delete(k);
    if (this.stale.size === 0 && this.staleTimer !== undefined) {
      clearTimeout(this.staleTimer);
      this.staleTimer = undefined;
    }
  }
}

export class Speaker {
  readonly events = new EventEmitter();
  private readonly peersByName = new Map<string, Peer>();
  private readonly log: SpeakerLog;
  private readonly now: () => number;
  private closed = false;

  private constructor(
    private readonly transport: Transport,
    private readonly listener: Listener | undefined,
    opts: SpeakerOptions,
  ) {
    this.log = opts.log ?? noLog;
    this.now = opts.now ?? Date.now;
  }

  static async start(opts: SpeakerOptions = {}): Promise<Speaker> {
    const transport = opts.transport ?? new TcpTransport();
    const listen = opts.listen ?? { port: 179 };
    const listener = listen === false ? undefined : await transport.listen(listen, opts.log);
    return new Speaker(transport, listener, opts);
  }

  // ---- configuration -------------------------------------------------------------------------------

  setPeers(peers: PeerConfig[]): void {
    if (this.closed) throw new Error('the speaker is closed');
    const wanted = new Map<string, ResolvedPeer>();
    const addresses = new Set<string>();
    for (const c of peers) {
      const r = resolvePeer(c);
      const problem = typeof r === 'string' ? r : wanted.has(c.name) ? 'duplicate peer name' : addresses.has(formatIP(r.peerIP)) ? `another peer has address ${formatIP(r.peerIP)}` : undefined;
      if (problem !== undefined || typeof r === 'string') {
        this.log.warn({ peer: c.name, reason: 'invalid_peer' }, `BGP peer ignored: ${problem}`);
        this.emitError(c.name, problem!);
        continue;
      }
      wanted.set(c.name, r);
      addresses.add(formatIP(r.peerIP));
    }
    for (const [name, peer] of this.peersByName) {
      const r = wanted.get(name);
      if (r !== undefined && r.fingerprint === peer.r.fingerprint) continue;
      this.removePeer(peer, r === undefined ? 'peer de-configured' : 'peer configuration changed');
      if (r !== undefined) this.addPeer(r, peer.desired, peer.parsed);
    }
    for (const [name, r] of wanted) if (!this.peersByName.has(name)) this.addPeer(r, new Map(), new Map());
  }

  private addPeer(r: ResolvedPeer, desired: ReadonlyMap<string, OutRoute>, parsed: Peer['parsed']): void {
    const peer = new Peer(r, (p) => this.sessionFor(p));
    peer.desired = desired;
    peer.parsed = parsed;
    this.peersByName.set(r.config.name, peer);
    this.listener?.addPeer(formatIP(r.peerIP), r.socket, (socket) => peer.session.accept(socket));
    this.log.info({ peer: peer.name, address: formatIP(r.peerIP), asn: r.config.peerASN }, 'BGP peer configured');
    peer.session.start();
  }

  private removePeer(peer: Peer, why: string): void {
    this.peersByName.delete(peer.name);
    this.listener?.removePeer(formatIP(peer.r.peerIP));
    peer.session.stop(why);
    peer.clearStale();
    this.log.info({ peer: peer.name, reason: why }, `BGP peer removed: ${why}`);
  }

  private sessionFor(peer: Peer): Session {
    const r = peer.r;
    const c = r.config;
    const families = r.families.map(ipFamily);
    const restartTime = Math.min(4095, c.gracefulRestart?.restartTimeSeconds ?? 120);
    const localOpen = buildOpen({
      asn: c.localASN,
      holdTime: c.holdTimeSeconds ?? 90,
      bgpId: parseIP(c.routerId)!,
      families,
      routeRefresh: true,
      // RFC 4724 section 3: our routes stay with the peer while we restart; forwarding (the datapath) survives us.
      ...(r.gracefulRestart
        ? { gracefulRestart: { restartState: false, notification: false, restartTime, families: families.map((f) => ({ afi: f === 4 ? AFI.IPV4 : AFI.IPV6, safi: SAFI.UNICAST, forwardingState: true })) } }
        : {}),
    });
    const maxMs = Math.max(1, c.connectRetryTimeSeconds ?? 120) * 1000;
    return new Session({
      name: c.name,
      peerAddress: formatIP(r.peerIP),
      peerPort: r.port,
      ...(c.localAddress === undefined ? {} : { localAddress: c.localAddress }),
      socket: r.socket,
      ...(c.keepAliveTimeSeconds === undefined ? {} : { keepaliveMs: Math.max(1, c.keepAliveTimeSeconds) * 1000 }),
      fsm: sessionConfig({ localOpen, peerAS: c.peerASN, passive: c.passive === true, connectRetry: { minMs: Math.min(DEFAULT_CONNECT_RETRY.minMs * 2, maxMs), maxMs } }),
      transport: this.transport,
      log: this.log,
      now: this.now,
      handlers: {
        state: (s) => this.events.emit('state', c.name, stateNames[s]),
        established: (info) => this.established(peer, info),
        down: (reason) => this.down(peer, reason),
        update: (d) => this.received(peer, d),
        routeRefresh: (rr) => this.refreshRequested(peer, rr),
      },
    });
  }

  /** 'error' is reported to listeners only: an EventEmitter throws an 'error' nobody listens to. */
  private emitError(peer: string, reason: string): void {
    if (this.events.listenerCount('error') > 0) this.events.emit('error', peer, reason);
  }

  // ---- routes --------------------------------------------------------------------------------------

  setRoutes(peerName: string, routes: Route[]): void {
    const peer = this.peersByName.get(peerName);
    if (peer === undefined) throw new Error(`no BGP peer named ${peerName}`);
    const previous = peer.desired;
    const desired = new Map<string, OutRoute>();
    const parsed = new Map<string, ParsedPrefix>();
    const attrSets = new Map<string, AttrSet | string>();
    const problems: string[] = [];
    const v4 = { value: 0, length: 0 };
    for (const route of routes) {
      const text = route.prefix;
      // The hot path: canonical IPv4 text is its own key, parsed without bigint; an unchanged
      // route keeps its entry from the last call, so a repeated desired state allocates nothing.
      let key: string;
      let prefix: Prefix | undefined;
      if (parseCanonicalIPv4Prefix(text, v4)) key = v4.length === 32 && !text.includes('/') ? `${text}/32` : text;
      else {
        const p = peer.parsed.get(text) ?? parsed.get(text) ?? parseOtherPrefix(text);
        if (p === undefined) {
          problems.push(`bad prefix ${JSON.stringify(text)}`);
          continue;
        }
        parsed.set(text, p);
        ({ key, prefix } = p);
      }
      const attrKey = attrKeyOf(route);
      const old = previous.get(key);
      if (old !== undefined && old.attrs.key === attrKey) {
        desired.set(key, old);
        continue;
      }
      let attrs = attrSets.get(attrKey);
      if (attrs === undefined) attrSets.set(attrKey, (attrs = parseAttrs(route, attrKey)));
      if (typeof attrs === 'string') {
        problems.push(`${text}: ${attrs}`);
        continue;
      }
      desired.set(key, { prefix: old?.prefix ?? prefix ?? { family: 4, value: BigInt(v4.value), length: v4.length }, attrs });
    }
    if (problems.length > 0) {
      const reason = `${problems.length} route(s) ignored, first: ${problems[0]}`;
      this.log.warn({ peer: peerName, reason: 'invalid_route' }, reason);
      this.emitError(peerName, reason);
    }
    peer.desired = desired;
    peer.wire = undefined;
    peer.parsed = parsed;
    this.scheduleSync(peer);
  }

  private scheduleSync(peer: Peer): void {
    if (peer.syncPending) return;
    peer.syncPending = true;
    // Several setRoutes in one tick become one diff.
    setImmediate(() => {
      peer.syncPending = false;
      if (this.peersByName.get(peer.name) !== peer) return;
      try {
        // A peer not up yet gets its initial sync ready now, so that it costs little when the session comes up.
        if (peer.session.established) this.sync(peer);
        else peer.wire = prepareWire(peer.desired);
      } catch (e) {
        // A bug in one peer's sync must not take the process (and every other session) down.
        this.log.warn({ peer: peer.name, reason: 'sync_failed', err: (e as Error).message }, 'BGP route sync failed');
        this.emitError(peer.name, `route sync failed: ${(e as Error).message}`);
      }
    });
  }

  /** Sends the difference between the desired Adj-RIB-Out and what the peer holds. */
  private sync(peer: Peer): void {
    const n = peer.negotiated;
    if (n === undefined || !peer.session.established) return;
    if (peer.sent.size === 0 && this.syncAll(peer, n)) return;
    const sent = peer.sentForUpdate();
    const withdraw: Prefix[] = [];
    for (const [k, s] of sent) {
      if (peer.desired.has(k)) continue;
      withdraw.push(s.prefix);
      sent.delete(k);
    }
    const groups = new Map<string, { attrs: AttrSet; prefixes: Prefix[] }>();
    let unreachable = 0;
    for (const [k, d] of peer.desired) {
      const family = d.prefix.family;
      if (!peer.families.has(family)) continue;
      if ((family === 4 ? peer.nextHops.ipv4 : peer.nextHops.ipv6) === undefined) {
        unreachable++;
        continue;
      }
      const s = sent.get(k);
      if (s !== undefined && s.attrs.key === d.attrs.key) continue;
      let g = groups.get(d.attrs.key);
      if (g === undefined) groups.set(d.attrs.key, (g = { attrs: d.attrs, prefixes: [] }));
      g.prefixes.push(d.prefix);
      sent.set(k, d);
    }
    if (unreachable !== peer.unreachableReported) {
      peer.unreachableReported = unreachable;
      if (unreachable > 0) this.log.warn({ peer: peer.name, reason: 'no_next_hop' }, `${unreachable} route(s) not advertised: no next hop of their family (set nextHop in the peer configuration)`);
    }
    const ctx = { fourOctetAS: n.fourOctetAS, external: peer.r.external };
    const messages = withdraw.length === 0 ? [] : packUpdates({ withdraw }, ctx);
    for (const g of groups.values()) {
      const group: RouteGroup = { attributes: this.attributesFor(peer, g.attrs), nextHop: peer.nextHops, prefixes: g.prefixes };
      try {
        for (const m of packUpdates({ announce: [group] }, ctx)) messages.push(m);
      } catch (e) {
        // Only local input can do this (attributes too large for one message): those routes stay out.
        for (const p of g.prefixes) sent.delete(ribKey(p));
        const reason = `${g.prefixes.length} route(s) not advertised: ${(e as Error).message}`;
        this.log.warn({ peer: peer.name, reason: 'unencodable_route' }, reason);
        this.emitError(peer.name, reason);
      }
    }
    this.send(peer, messages, withdraw.length, groups.size);
  }

  /**
   * The whole desired Adj-RIB-Out to a peer that holds nothing from us (the initial sync, a route
   * refresh of everything), cut from the NLRI prepared while the session was down; the peer then
   * holds the desired map itself. So a session's first moments cost no work per route. False
   * (nothing sent) when some routes cannot go as they are: the diff in sync handles and reports them.
   */
  private syncAll(peer: Peer, n: Negotiated): boolean {
    const wire = peer.wire?.desired === peer.desired ? peer.wire : (peer.wire = prepareWire(peer.desired));
    const groups: EncodedGroup[] = [];
    for (const g of wire.groups) {
      if (!peer.families.has(g.family) || (g.family === 4 ? peer.nextHops.ipv4 : peer.nextHops.ipv6) === undefined) return false;
      groups.push({ attributes: this.attributesFor(peer, g.attrs), nextHop: peer.nextHops, family: g.family, nlri: g.nlri });
    }
    let messages: Uint8Array[];
    try {
      messages = packEncoded({ announce: groups }, { fourOctetAS: n.fourOctetAS, external: peer.r.external });
    } catch {
      return false;
    }
    peer.sentAllDesired();
    peer.unreachableReported = 0;
    this.send(peer, messages, 0, groups.length);
    return true;
  }

  /** Writes UPDATEs, then End-of-RIB per family after the initial sync (RFC 4724 section 2). */
  private send(peer: Peer, messages: Uint8Array[], withdrawn: number, groups: number): void {
    if (!peer.initialSyncDone) {
      for (const f of peer.families) messages.push(encodeEndOfRib(f));
      peer.initialSyncDone = true;
    }
    this.write(peer, messages);
    if (messages.length > 0) this.log.debug?.({ peer: peer.name, messages: messages.length, withdrawn, groups }, 'BGP UPDATEs sent');
  }

  private write(peer: Peer, messages: Uint8Array[]): void {
    let batch: Uint8Array[] = [];
    let size = 0;
    for (const m of messages) {
      if (size + m.length > WRITE_BATCH && batch.length > 0) {
        peer.session.send(concatBytes(batch));
        batch = [];
        size = 0;
      }
      batch.push(m);
      size += m.length;
    }
    if (batch.length > 0) peer.session.send(batch.length === 1 ? batch[0]! : concatBytes(batch));
  }

  private attributesFor(peer: Peer, a: AttrSet): PathAttributes {
    const communities = peer.gracefulShutdown && !a.communities.includes(WellKnownCommunity.GRACEFUL_SHUTDOWN) ? [...a.communities, WellKnownCommunity.GRACEFUL_SHUTDOWN] : a.communities;
    return {
      origin: Origin.IGP,
      // RFC 4271 section 5.1.2: our AS in front towards external peers, an empty path towards internal ones.
      asPath: peer.r.external ? [asSequence(peer.r.config.localASN)] : [],
      ...(a.route.med === undefined ? {} : { med: a.route.med }),
      ...(peer.r.external ? {} : { localPref: a.route.localPreference ?? 100 }),
      ...(communities.length > 0 ? { communities } : {}),
      ...(a.largeCommunities.length > 0 ? { largeCommunities: a.largeCommunities } : {}),
    };
  }

  // ---- session events ------------------------------------------------------------------------------

  private established(peer: Peer, info: EstablishedInfo): void {
    const n = info.negotiated;
    peer.negotiated = n;
    peer.families = new Set(n.families.filter((f) => f.safi === SAFI.UNICAST).flatMap((f) => familyOfAfi(f.afi) ?? []));
    const local = parseIP(info.localAddress);
    peer.nextHops = {
      ...(peer.r.nextHop.ipv4 !== undefined ? { ipv4: peer.r.nextHop.ipv4 } : local?.family === 4 ? { ipv4: local } : {}),
      ...(peer.r.nextHop.ipv6 !== undefined ? { ipv6: peer.r.nextHop.ipv6 } : local?.family === 6 ? { ipv6: local } : {}),
    };
    peer.forgetSent();
    peer.initialSyncDone = false;
    // A peer that no longer promises graceful restart gets no grace for its old routes.
    if (n.peerGracefulRestart === undefined) peer.clearStale();
    this.log.info({ peer: peer.name, asn: n.peerAS, holdTime: n.holdTime, families: [...peer.families].map(familyName) }, 'BGP session established');
    this.sync(peer);
  }

  private down(peer: Peer, reason: SessionDownReason): void {
    const gr = peer.negotiated?.peerGracefulRestart;
    peer.forgetSent();
    peer.initialSyncDone = false;
    peer.negotiated = undefined;
    // RFC 4724 section 4.2: when the connection just drops, a restarting peer's routes are kept as stale.
    if (gr !== undefined && peer.r.gracefulRestart && reason === 'tcp_connection_fails' && gr.restartTime > 0) {
      for (const [k, f] of peer.received) peer.stale.set(k, f);
      if (peer.staleTimer !== undefined) clearTimeout(peer.staleTimer);
      peer.staleTimer = setTimeout(() => {
        peer.staleTimer = undefined;
        peer.clearStale();
      }, gr.restartTime * 1000);
    }
    peer.received.clear();
    const detail = peer.session.lastError ?? reason;
    this.log.warn({ peer: peer.name, reason }, `BGP session down: ${detail}`);
    this.emitError(peer.name, detail);
  }

  private received(peer: Peer, d: Exclude<UpdateDecision, { action: 'session-reset' }>): void {
    const forget = (p: Prefix): void => {
      const k = prefixKey(p);
      peer.received.delete(k);
      peer.stale.delete(k);
    };
    if (d.action === 'treat-as-withdraw') {
      // RFC 7606 section 2: the routes go, the session stays.
      this.log.warn({ peer: peer.name, reason: d.reason }, `UPDATE treated as withdraw: ${d.reason}`);
      d.withdrawn.forEach(forget);
      return;
    }
    const u = d.update;
    u.withdrawn.forEach(forget);
    u.mpUnreach?.withdrawn.forEach(forget);
    const learn = (p: Prefix): void => {
      const k = prefixKey(p);
      peer.received.set(k, p.family);
      peer.stale.delete(k);
    };
    u.nlri.forEach(learn);
    u.mpReach?.nlri.forEach(learn);
    if (d.action === 'ok' && d.endOfRib !== undefined) peer.clearStale(d.endOfRib);
  }

  private refreshRequested(peer: Peer, rr: RouteRefresh): void {
    if (rr.subtype !== RouteRefreshSubtype.REQUEST || rr.safi !== SAFI.UNICAST) return;
    const family = familyOfAfi(rr.afi);
    if (family === undefined) return;
    // RFC 2918 section 4: send the Adj-RIB-Out of that family again.
    const sent = peer.sentForUpdate();
    for (const [k, s] of sent) if (s.prefix.family === family) sent.delete(k);
    this.log.info({ peer: peer.name, family: familyName(family) }, 'BGP route refresh requested by the peer');
    this.sync(peer);
  }

  // ---- reading -------------------------------------------------------------------------------------

  peers(): PeerStatus[] {
    return [...this.peersByName.values()].map((peer) => {
      const c = peer.r.config;
      const s = peer.session.state;
      const established = s.name === 'Established';
      return {
        name: c.name,
        peerAddress: formatIP(peer.r.peerIP),
        peerPort: peer.r.port,
        peerASN: c.peerASN,
        localASN: c.localASN,
        state: stateNames[s.name],
        uptimeSeconds: established ? Math.max(0, Math.floor((this.now() - s.since) / 1000)) : 0,
        families: established ? FAMILIES.filter((f) => peer.families.has(ipFamily(f))) : [...peer.r.families],
        received: peer.received.size + peer.stale.size,
        advertised: peer.sent.size,
        ...(peer.session.lastError === undefined ? {} : { lastError: peer.session.lastError }),
      };
    });
  }

  advertised(peerName: string): AdvertisedRoute[] {
    const peer = this.peersByName.get(peerName);
    if (peer === undefined) throw new Error(`no BGP peer named ${peerName}`);
    const asPath = peer.r.external ? [peer.r.config.localASN] : [];
    return [...peer.sent.values()].map(({ prefix, attrs }) => {
      const nh = prefix.family === 4 ? peer.nextHops.ipv4 : peer.nextHops.ipv6;
      const communities = peer.gracefulShutdown ? [...(attrs.route.communities ?? []), 'graceful-shutdown'] : attrs.route.communities;
      const { localPreference, ...rest } = attrs.route;
      return {
        prefix: formatPrefix(prefix),
        ...rest,
        ...(communities === undefined ? {} : { communities }),
        ...(peer.r.external ? {} : { localPreference: localPreference ?? 100 }),
        nextHop: nh === undefined ? '' : formatIP(nh),
        asPath,
        family: familyName(prefix.family),
      };
    });
  }

  /** Prefixes received from the peer (text, sorted): for tests and the CLI; not installed anywhere. */
  receivedPrefixes(peerName: string): string[] {
    const peer = this.peersByName.get(peerName);
    if (peer === undefined) throw new Error(`no BGP peer named ${peerName}`);
    const keys = new Set([...peer.received.keys(), ...peer.stale.keys()]);
    return [...keys].map(keyToPrefixText).sort();
  }

  refresh(peerName: string): void {
    const peer = this.peersByName.get(peerName);
    if (peer === undefined) throw new Error(`no BGP peer named ${peerName}`);
    if (peer.negotiated?.routeRefresh !== true) {
      this.log.info({ peer: peerName, reason: 'route_refresh_not_negotiated' }, 'route refresh not sent: the peer does not support it');
      return;
    }
    for (const f of peer.families) peer.session.send(encodeRouteRefresh({ afi: f === 4 ? AFI.IPV4 : AFI.IPV6, safi: SAFI.UNICAST, subtype: RouteRefreshSubtype.REQUEST }));
  }

  // ---- shutdown ------------------------------------------------------------------------------------

  async close(mode: 'graceful' | 'restart' | 'immediate', drainMs = 0): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const peers = [...this.peersByName.values()];
    if (mode === 'restart') {
      // RFC 4724 section 4.1: no NOTIFICATION, no withdrawals; the peers keep our routes until we are back.
      for (const p of peers) p.session.abandon();
    } else {
      if (mode === 'graceful') {
        // RFC 8326 section 4: first mark every route GRACEFUL_SHUTDOWN so the peers move traffic away…
        for (const p of peers) {
          p.gracefulShutdown = true;
          p.forgetSent();
          this.sync(p);
        }
        if (drainMs > 0 && peers.some((p) => p.session.established)) await delay(drainMs);
        // …then withdraw everything.
        for (const p of peers) {
          p.desired = new Map();
          this.sync(p);
        }
      }
      await this.flush(peers, 2_000);
      for (const p of peers) p.session.stop(mode === 'graceful' ? 'graceful shutdown' : 'shutting down');
      await this.flush(peers, 1_000);
    }
    for (const p of peers) {
      p.clearStale();
      this.peersByName.delete(p.name);
    }
    await this.listener?.close();
  }

  /** Waits (bounded) until what was written has left user space. */
  private async flush(peers: readonly Peer[], maxMs: number): Promise<void> {
    const end = Date.now() + maxMs;
    await delay(0);
    while (Date.now() < end && peers.some((p) => p.session.bufferedBytes > 0)) await delay(10);
  }
}

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function keyToPrefixText(key: string): string {
  const [family, hex, length] = key.split('/') as [string, string, string];
  return formatPrefix({ family: family === '4' ? 4 : 6, value: BigInt(`0x${hex}`), length: Number(length) });
}
