// Real BGP daemons as test partners: BIRD 2, FRR 8 bgpd, GoBGP 3 and ExaBGP 4, each in a lab host,
// configured from one description, read back through its own CLI into one route shape. And Beacon's
// speaker in a lab host of its own (a child process driven over a Unix socket), because a socket
// of this process cannot live in a lab namespace.
//
// Nothing touches the machine: configs, sockets and pid files live in the lab's run folder, no
// daemon talks to a kernel routing table (BIRD has no kernel protocol, bgpd runs with --no_zebra,
// gobgpd without zebra, ExaBGP never installs), and every daemon listens only on its lab addresses.
import { once } from 'node:events';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { formatIP, parseIP } from '../api/ip.js';
import type { AdvertisedRoute, PeerConfig, PeerStatus, Route, Speaker, SpeakerOptions } from '../bgp/index.js';
import type { LabHost, LabProcess } from '../lab/index.js';
import { eventually, root } from './process.js';

export type PeerKind = 'bird' | 'frr' | 'gobgp' | 'exabgp';
export type Family = 'ipv4-unicast' | 'ipv6-unicast';
export const PEER_KINDS: readonly PeerKind[] = ['bird', 'frr', 'gobgp', 'exabgp'];

export interface Neighbour {
  address: string;
  asn: number;
  /** TCP MD5 (RFC 2385). */
  password?: string;
  /** Only accept the session, never connect. */
  passive?: boolean;
  /** eBGP TTL; direct when unset. */
  multihop?: number;
  gracefulRestart?: boolean;
  /** false: no 4-octet AS capability (RFC 6793); only ExaBGP and BIRD can turn it off. */
  asn4?: boolean;
  holdTimeSeconds?: number;
  /** Default: the address family of `address`. */
  families?: Family[];
  /** Default: the daemon's first local address of the neighbour's family. */
  localAddress?: string;
  /** Configured but shut until `enable(address)` (BIRD and GoBGP): the benchmark fills the RIB first. */
  idle?: boolean;
}

/** A route a daemon originates (always with itself as next hop). Communities: `65000:100` or a well-known name. */
export interface PeerRoute {
  prefix: string;
  communities?: string[];
  largeCommunities?: string[];
  localPreference?: number;
  med?: number;
}

export interface PeerDaemonConfig {
  localASN: number;
  routerId: string;
  /** The daemon's addresses in its host (no prefix length): it listens and sources sessions only there. */
  localAddresses: string[];
  neighbours: Neighbour[];
  /** Routes announced from the start (and again after a restart). */
  originate?: PeerRoute[];
}

/** A route as the daemon holds it, in one shape for all four. Communities are always numeric `a:b`. */
export interface ReceivedRoute {
  prefix: string;
  family: Family;
  /** The neighbour it came from. */
  from: string;
  nextHop: string;
  asPath: number[];
  communities: string[];
  largeCommunities: string[];
  localPreference?: number;
  med?: number;
}

export interface SessionInfo {
  established: boolean;
  /** The daemon's own word for the state. */
  state: string;
  lastError?: string;
  /** UPDATE messages received on this session (BIRD: route updates received). */
  updatesReceived: number;
  /** ROUTE-REFRESH messages received, where the daemon counts them (not BIRD). */
  refreshesReceived?: number;
}

/** RFC 1997, 7999, 8326, 3765 well-known communities by the names Beacon's API uses. */
export const WELL_KNOWN_COMMUNITIES: Readonly<Record<string, string>> = {
  'graceful-shutdown': '65535:0',
  blackhole: '65535:666',
  'no-export': '65535:65281',
  'no-advertise': '65535:65282',
  'no-export-subconfed': '65535:65283',
  'local-as': '65535:65283',
  'no-peer': '65535:65284',
};
export const numericCommunity = (c: string): string => WELL_KNOWN_COMMUNITIES[c] ?? c;

// FRR's JSON names well-known communities in camel case.
const FRR_COMMUNITY_NAMES: Readonly<Record<string, string>> = {
  gshut: '65535:0', blackhole: '65535:666', noExport: '65535:65281', noAdvertise: '65535:65282', localAs: '65535:65283', noPeer: '65535:65284', llgrStale: '65535:6', noLlgr: '65535:7', acceptown: '65535:1',
};

export const familyOf = (address: string): Family => (address.includes(':') ? 'ipv6-unicast' : 'ipv4-unicast');
const afi = (f: Family): 'ipv4' | 'ipv6' => (f === 'ipv4-unicast' ? 'ipv4' : 'ipv6');

/** RFC 5952 text for an address or a prefix, so the four daemons' spellings compare equal. */
export function canonical(text: string): string {
  const [addr, len] = text.split('/');
  const ip = parseIP(addr!);
  if (!ip) return text;
  return len === undefined ? formatIP(ip) : `${formatIP(ip)}/${len}`;
}

/**
 * `count` host routes for benchmarks and bulk tests: /32s from 198.18.128.0 up (room for 196,608)
 * or /128s under 2001:db8:ff00::/40, far from the lab's link addresses.
 */
export function hostPrefixes(family: Family, count: number, first = 0): string[] {
  if (family === 'ipv4-unicast' && first + count > HOST_PREFIXES_V4) throw new RangeError(`at most ${HOST_PREFIXES_V4} IPv4 host routes`);
  const out = new Array<string>(count);
  for (let i = 0; i < count; i++) {
    const n = first + i;
    const v = (0xc6128000 + n) >>> 0;
    out[i] = family === 'ipv4-unicast' ? `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}/32` : canonical(`2001:db8:ff00::${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}/128`);
  }
  return out;
}
const HOST_PREFIXES_V4 = 196_608;

const neighbourFamilies = (n: Neighbour): Family[] => n.families ?? [familyOf(n.address)];

function localAddressFor(config: PeerDaemonConfig, n: Neighbour): string {
  const local = n.localAddress ?? config.localAddresses.find((a) => familyOf(a) === familyOf(n.address));
  if (local === undefined) throw new Error(`no local address of the family of neighbour ${n.address}`);
  return local;
}

/** A BGP daemon running in a lab host. */
export abstract class PeerDaemon {
  readonly dir: string;
  protected process: LabProcess | undefined;
  private generation = 0;

  protected constructor(
    readonly kind: PeerKind,
    readonly host: LabHost,
    readonly name: string,
    readonly config: PeerDaemonConfig,
  ) {
    this.dir = join(host.lab.logDir, name);
  }

  /** Writes the daemon's configuration into the run folder, starts it and waits until its CLI answers. */
  static async start<K extends PeerKind>(kind: K, host: LabHost, config: PeerDaemonConfig, name: string = kind): Promise<DaemonOf[K]> {
    const make = { bird: BirdDaemon, frr: FrrDaemon, gobgp: GobgpDaemon, exabgp: ExabgpDaemon }[kind];
    const daemon = new make(host, name, config) as DaemonOf[K];
    mkdirSync(daemon.dir, { recursive: true });
    await daemon.launch();
    return daemon;
  }

  get pid(): number {
    return this.requireProcess().pid;
  }

  /** The daemon's log so far (its stdout and stderr). */
  logs(): string {
    return this.process?.logs() ?? '';
  }

  /** Every route the daemon holds from its neighbours (optionally one family). */
  abstract routes(family?: Family): Promise<ReceivedRoute[]>;
  abstract session(neighbour: string): Promise<SessionInfo>;
  /** How many routes of `family` the daemon accepted from `neighbour` (cheap: no route dump). */
  abstract routeCount(neighbour: string, family: Family): Promise<number>;
  /** Asks the neighbour to send its routes again (ROUTE-REFRESH, RFC 2918); GoBGP cannot. */
  abstract requestRefresh(neighbour: string, family: Family): Promise<void>;

  /** Waits for the session to `neighbour` to be Established. */
  waitEstablished(neighbour: string, timeoutMs = 20_000): Promise<SessionInfo> {
    return eventually(async () => {
      const s = await this.session(neighbour);
      if (!s.established) throw new Error(`${this.name} → ${neighbour}: ${s.state}${s.lastError ? ` (${s.lastError})` : ''}`);
      return s;
    }, timeoutMs, `${this.name} session with ${neighbour} established`);
  }

  /** SIGSTOP: the daemon stops answering (its peer's hold timer runs out), its sockets stay open. */
  freeze(): void {
    this.requireProcess().kill('SIGSTOP');
  }

  thaw(): void {
    this.requireProcess().kill('SIGCONT');
  }

  /** Stops the daemon (SIGTERM, or `signal`) and starts it again with the same configuration. */
  async restart(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.stop(signal);
    await this.launch();
  }

  /** Stops the daemon; SIGKILL after 3 s. Its files stay until the lab is destroyed. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.process;
    if (!p) return;
    this.process = undefined;
    p.kill('SIGCONT');
    if (signal !== 'SIGTERM') p.kill(signal);
    await p.stop(3_000);
  }

  /** Peak resident set size (VmHWM) in KiB, from /proc. */
  peakRssKiB(): number {
    return peakRssKiB(this.pid);
  }

  protected abstract argv(): { command: string; args: string[]; env?: Record<string, string> };
  protected abstract ready(): Promise<void>;

  private async launch(): Promise<void> {
    const { command, args, env } = this.argv();
    const label = this.generation++ === 0 ? this.name : `${this.name}.${this.generation - 1}`;
    this.process = await this.host.spawn(label, command, args, env ? { env } : {});
    const p = this.process;
    await eventually(async () => {
      if (!p.running) throw new Error(`${this.name} exited: ${p.logs().slice(-1500)}`);
      await this.ready();
    }, 15_000, `${this.name} ready`).catch((e: unknown) => {
      // A daemon that died at start must not hide the reason behind a timeout.
      throw new Error(`${(e as Error).message}\n${p.logs().slice(-1500)}`);
    });
  }

  protected requireProcess(): LabProcess {
    if (!this.process) throw new Error(`${this.name} is not running`);
    return this.process;
  }

  protected async run(command: string, args: string[], timeoutMs = 30_000): Promise<string> {
    const r = await this.host.exec(command, args, { timeoutMs });
    if (r.code !== 0) throw new Error(`${this.name}: \`${command} ${args.join(' ')}\` exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 500)}`);
    return r.stdout;
  }
}

export interface DaemonOf {
  bird: BirdDaemon;
  frr: FrrDaemon;
  gobgp: GobgpDaemon;
  exabgp: ExabgpDaemon;
}

export function peakRssKiB(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM for pid ${pid}`);
  return Number(m[1]);
}

// ---------------------------------------------------------------------------------------- BIRD 2

const birdProtocol = (address: string): string => `n_${address.replace(/[.:]/g, '_')}`;

export class BirdDaemon extends PeerDaemon {
  private readonly socket = join(this.dir, 'bird.ctl');

  constructor(host: LabHost, name: string, config: PeerDaemonConfig) {
    super('bird', host, name, config);
  }

  protected argv() {
    writeFileSync(join(this.dir, 'bird.conf'), birdConfig(this.config));
    return { command: 'bird', args: ['-f', '-c', join(this.dir, 'bird.conf'), '-s', this.socket, '-P', join(this.dir, 'bird.pid')] };
  }

  protected async ready(): Promise<void> {
    await this.birdc('show status');
  }

  birdc(command: string): Promise<string> {
    return this.run('birdc', ['-s', this.socket, command]);
  }

  async routes(family?: Family): Promise<ReceivedRoute[]> {
    const out: ReceivedRoute[] = [];
    for (const n of this.config.neighbours) {
      const text = await this.birdc(`show route all protocol ${birdProtocol(n.address)}`);
      out.push(...parseBirdRoutes(text, n.address).filter((r) => family === undefined || r.family === family));
    }
    return out;
  }

  async session(neighbour: string): Promise<SessionInfo> {
    return parseBirdProtocol(await this.birdc(`show protocols all ${birdProtocol(neighbour)}`));
  }

  async routeCount(neighbour: string, family: Family): Promise<number> {
    const text = await this.birdc(`show protocols all ${birdProtocol(neighbour)}`);
    const channel = text.split(/\n\s+Channel /).find((c) => c.startsWith(afi(family)));
    return Number(/Routes:\s+(\d+) imported/.exec(channel ?? '')?.[1] ?? 0);
  }

  async requestRefresh(neighbour: string): Promise<void> {
    await this.birdc(`reload in ${birdProtocol(neighbour)}`);
  }

  /** Starts the session of an `idle` neighbour. */
  async enable(neighbour: string): Promise<void> {
    await this.birdc(`enable ${birdProtocol(neighbour)}`);
  }

  /** When the session to `neighbour` last went up or down, in epoch ms (BIRD's clock, millisecond resolution). */
  async sessionSince(neighbour: string): Promise<number> {
    const line = (await this.birdc(`show protocols ${birdProtocol(neighbour)}`)).split('\n').find((l) => l.startsWith(birdProtocol(neighbour)));
    const m = /(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3})/.exec(line ?? '');
    if (!m) throw new Error(`no time in ${line}`);
    return new Date(`${m[1]}T${m[2]}`).getTime();
  }

  /** The latest import time (epoch ms) among the routes from `neighbour`: when the last one arrived. */
  async lastImport(neighbour: string): Promise<number> {
    const text = await this.birdc(`show route protocol ${birdProtocol(neighbour)}`);
    let latest = 0;
    for (const m of text.matchAll(/\[\S+ (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3})/g)) latest = Math.max(latest, new Date(`${m[1]}T${m[2]}`).getTime());
    return latest;
  }
}

const birdCommunities = (r: PeerRoute): string[] => [
  ...(r.communities ?? []).map((c) => `bgp_community.add((${numericCommunity(c).replace(':', ',')}));`),
  ...(r.largeCommunities ?? []).map((c) => `bgp_large_community.add((${c.replaceAll(':', ',')}));`),
  ...(r.med !== undefined ? [`bgp_med = ${r.med};`] : []),
  ...(r.localPreference !== undefined ? [`bgp_local_pref = ${r.localPreference};`] : []),
];

export function birdConfig(c: PeerDaemonConfig): string {
  const lines = [
    `router id ${c.routerId};`,
    // Milliseconds in `show protocols` and `show route`: the benchmark reads its times from them.
    'timeformat protocol iso long ms;',
    'timeformat route iso long ms;',
    'log stderr all;',
    // Interfaces and connected networks, so next hops resolve; there is no kernel protocol, so nothing reaches the host's tables.
    'protocol device { scan time 10; }',
    'protocol direct { ipv4; ipv6; }',
  ];
  for (const family of ['ipv4-unicast', 'ipv6-unicast'] as const) {
    const routes = (c.originate ?? []).filter((r) => familyOf(r.prefix) === family);
    if (routes.length === 0) continue;
    lines.push(`protocol static originate_${afi(family)} {`, `  ${afi(family)};`);
    for (const r of routes) lines.push(`  route ${r.prefix} blackhole { ${birdCommunities(r).join(' ')} };`);
    lines.push('}');
  }
  for (const n of c.neighbours) {
    lines.push(
      `protocol bgp ${birdProtocol(n.address)} {`,
      `  local ${localAddressFor(c, n)} as ${c.localASN};`,
      `  neighbor ${n.address} as ${n.asn};`,
      // Listen on our own address only; retry quickly: tests wait for sessions.
      '  strict bind on;',
      '  connect delay time 1; connect retry time 2; error wait time 1, 4; error forget time 10;',
      ...(n.password !== undefined ? [`  password "${n.password}";`] : []),
      ...(n.passive ? ['  passive on;'] : []),
      ...(n.idle ? ['  disabled on;'] : []),
      ...(n.multihop !== undefined ? [`  multihop ${n.multihop};`] : []),
      ...(n.gracefulRestart ? ['  graceful restart on;', '  graceful restart time 120;'] : []),
      ...(n.asn4 === false ? ['  enable as4 off;'] : []),
      ...(n.holdTimeSeconds !== undefined ? [`  hold time ${n.holdTimeSeconds};`, `  keepalive time ${Math.max(1, Math.floor(n.holdTimeSeconds / 3))};`] : []),
      ...neighbourFamilies(n).map((f) => `  ${afi(f)} { import all; export where source = RTS_STATIC; next hop self; };`),
      '}',
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Parses `birdc show route all` output (BGP attributes on `BGP.x:` lines under each route). */
export function parseBirdRoutes(text: string, from: string): ReceivedRoute[] {
  const out: ReceivedRoute[] = [];
  let prefix = '';
  let route: ReceivedRoute | undefined;
  for (const line of text.split('\n')) {
    const head = /^(\S+)?\s+(?:unicast|blackhole|unreachable|prohibit)\s+\[/.exec(line);
    if (head && !line.startsWith('\t')) {
      if (head[1] !== undefined) prefix = canonical(head[1]);
      route = { prefix, family: familyOf(prefix), from, nextHop: '', asPath: [], communities: [], largeCommunities: [] };
      out.push(route);
      continue;
    }
    const attr = /^\s+BGP\.(\w+):\s?(.*)$/.exec(line);
    if (!attr || !route) continue;
    const [, key, value] = attr as unknown as [string, string, string];
    if (key === 'as_path') route.asPath = value.match(/\d+/g)?.map(Number) ?? [];
    else if (key === 'next_hop') route.nextHop = canonical(value.split(' ')[0]!);
    else if (key === 'med') route.med = Number(value);
    else if (key === 'local_pref') route.localPreference = Number(value);
    else if (key === 'community') route.communities = [...value.matchAll(/\((\d+),(\d+)\)/g)].map((m) => `${m[1]}:${m[2]}`);
    else if (key === 'large_community') route.largeCommunities = [...value.matchAll(/\((\d+), (\d+), (\d+)\)/g)].map((m) => `${m[1]}:${m[2]}:${m[3]}`);
  }
  return out;
}

export function parseBirdProtocol(text: string): SessionInfo {
  const state = /BGP state:\s+(\S+)/.exec(text)?.[1] ?? /^\S+\s+BGP\s+\S+\s+(\S+)/m.exec(text)?.[1] ?? 'unknown';
  const lastError = /Last error:\s+(.+)/.exec(text)?.[1]?.trim();
  let updatesReceived = 0;
  for (const m of text.matchAll(/Import updates:\s+(\d+)/g)) updatesReceived += Number(m[1]);
  return { established: state === 'Established', state, updatesReceived, ...(lastError ? { lastError } : {}) };
}

// -------------------------------------------------------------------------------------- FRR bgpd

export class FrrDaemon extends PeerDaemon {
  constructor(host: LabHost, name: string, config: PeerDaemonConfig) {
    super('frr', host, name, config);
  }

  protected argv() {
    writeFileSync(join(this.dir, 'bgpd.conf'), frrConfig(this.config, this.name));
    // -Z: no zebra, so no kernel routes and next hops count as reachable; -S: stay root (TCP MD5
    // needs it); -l: listen on the lab addresses only.
    const listen = this.config.localAddresses.flatMap((a) => ['-l', a]);
    return {
      command: '/usr/lib/frr/bgpd',
      args: ['-f', join(this.dir, 'bgpd.conf'), '-i', join(this.dir, 'bgpd.pid'), '--vty_socket', this.dir, '-Z', '-S', '-P', '0', ...listen, '--log', 'stdout', '--log-level', 'info'],
    };
  }

  protected async ready(): Promise<void> {
    await this.vtysh('show bgp summary json');
  }

  vtysh(...commands: string[]): Promise<string> {
    return this.run('vtysh', ['--vty_socket', this.dir, '-d', 'bgpd', ...commands.flatMap((c) => ['-c', c])]);
  }

  async routes(family?: Family): Promise<ReceivedRoute[]> {
    const out: ReceivedRoute[] = [];
    for (const f of family ? [family] : (['ipv4-unicast', 'ipv6-unicast'] as const)) {
      const table = JSON.parse(await this.vtysh(`show bgp ${afi(f)} unicast json detail`)) as { routes?: Record<string, FrrPath[]> };
      for (const [prefix, paths] of Object.entries(table.routes ?? {})) {
        for (const p of paths) {
          const from = p.peer?.peerId;
          if (!p.nexthops || from === undefined || p.sourced || from === '0.0.0.0') continue;
          out.push({
            prefix: canonical(prefix),
            family: f,
            from: canonical(from),
            nextHop: canonical((p.nexthops.find((h) => h.scope !== 'link-local') ?? p.nexthops[0]!).ip),
            asPath: (p.aspath?.segments ?? []).flatMap((s) => s.list),
            communities: (p.community?.list ?? []).map((c) => FRR_COMMUNITY_NAMES[c] ?? c),
            largeCommunities: p.largeCommunity?.list ?? [],
            ...(p.locPrf !== undefined ? { localPreference: p.locPrf } : {}),
            ...(p.metric !== undefined ? { med: p.metric } : {}),
          });
        }
      }
    }
    return out;
  }

  private async neighbour(address: string): Promise<FrrNeighbour> {
    const all = JSON.parse(await this.vtysh(`show bgp neighbors ${address} json`)) as Record<string, FrrNeighbour>;
    const n = all[address];
    if (!n) throw new Error(`${this.name}: no neighbour ${address}`);
    return n;
  }

  async session(neighbour: string): Promise<SessionInfo> {
    const n = await this.neighbour(neighbour);
    const lastError = n.lastNotificationReason ?? n.lastResetDueTo;
    return {
      established: n.bgpState === 'Established',
      state: n.bgpState,
      updatesReceived: n.messageStats?.updatesRecv ?? 0,
      refreshesReceived: n.messageStats?.routeRefreshRecv ?? 0,
      ...(lastError ? { lastError } : {}),
    };
  }

  async routeCount(neighbour: string, family: Family): Promise<number> {
    const n = await this.neighbour(neighbour);
    return n.addressFamilyInfo?.[family === 'ipv4-unicast' ? 'ipv4Unicast' : 'ipv6Unicast']?.acceptedPrefixCounter ?? 0;
  }

  async requestRefresh(neighbour: string, family: Family): Promise<void> {
    await this.vtysh(`clear bgp ${afi(family)} unicast ${neighbour} soft in`);
  }
}

interface FrrPath {
  sourced?: boolean;
  aspath?: { segments?: { list: number[] }[] };
  community?: { list?: string[] };
  largeCommunity?: { list?: string[] };
  locPrf?: number;
  metric?: number;
  nexthops?: { ip: string; scope?: string }[];
  peer?: { peerId?: string };
}

interface FrrNeighbour {
  bgpState: string;
  lastResetDueTo?: string;
  lastNotificationReason?: string;
  messageStats?: { updatesRecv?: number; routeRefreshRecv?: number };
  addressFamilyInfo?: Record<string, { acceptedPrefixCounter?: number }>;
}

export function frrConfig(c: PeerDaemonConfig, hostname: string): string {
  const lines = [
    'frr defaults traditional',
    `hostname ${hostname}`,
    'log stdout informational',
  ];
  // Attributes of originated routes come from one route map per route.
  const originate = c.originate ?? [];
  originate.forEach((r, i) => {
    lines.push(`route-map originate-${i} permit 10`);
    if (r.communities?.length) lines.push(` set community ${r.communities.map(numericCommunity).join(' ')}`);
    if (r.largeCommunities?.length) lines.push(` set large-community ${r.largeCommunities.join(' ')}`);
    if (r.localPreference !== undefined) lines.push(` set local-preference ${r.localPreference}`);
    if (r.med !== undefined) lines.push(` set metric ${r.med}`);
    lines.push('exit');
  });
  lines.push(
    `router bgp ${c.localASN}`,
    ` bgp router-id ${c.routerId}`,
    // RFC 8212 would otherwise drop every eBGP route without a policy.
    ' no bgp ebgp-requires-policy',
    ' no bgp default ipv4-unicast',
    // Without zebra no prefix is "in the RIB": announce `network` statements anyway.
    ' no bgp network import-check',
  );
  if (c.neighbours.some((n) => n.gracefulRestart)) lines.push(' bgp graceful-restart');
  for (const n of c.neighbours) {
    const a = n.address;
    lines.push(` neighbor ${a} remote-as ${n.asn}`, ` neighbor ${a} update-source ${localAddressFor(c, n)}`, ` neighbor ${a} timers connect 2`);
    if (n.password !== undefined) lines.push(` neighbor ${a} password ${n.password}`);
    if (n.passive) lines.push(` neighbor ${a} passive`);
    if (n.multihop !== undefined) lines.push(` neighbor ${a} ebgp-multihop ${n.multihop}`);
    if (n.holdTimeSeconds !== undefined) lines.push(` neighbor ${a} timers ${Math.max(1, Math.floor(n.holdTimeSeconds / 3))} ${n.holdTimeSeconds}`);
    if (n.gracefulRestart) lines.push(` neighbor ${a} graceful-restart`);
  }
  for (const family of ['ipv4-unicast', 'ipv6-unicast'] as const) {
    const neighbours = c.neighbours.filter((n) => neighbourFamilies(n).includes(family));
    const routes = originate.map((r, i) => ({ r, i })).filter(({ r }) => familyOf(r.prefix) === family);
    if (neighbours.length === 0 && routes.length === 0) continue;
    lines.push(` address-family ${afi(family)} unicast`);
    for (const { r, i } of routes) lines.push(`  network ${r.prefix} route-map originate-${i}`);
    for (const n of neighbours) lines.push(`  neighbor ${n.address} activate`);
    lines.push(' exit-address-family');
  }
  return `${lines.join('\n')}\n`;
}

// ------------------------------------------------------------------------------------------ GoBGP

export class GobgpDaemon extends PeerDaemon {
  constructor(host: LabHost, name: string, config: PeerDaemonConfig) {
    super('gobgp', host, name, config);
  }

  protected argv() {
    writeFileSync(join(this.dir, 'gobgpd.toml'), gobgpConfig(this.config));
    // The API listens on the host's own loopback; there is no zebra section, so no kernel routes.
    return { command: 'gobgpd', args: ['-f', join(this.dir, 'gobgpd.toml'), '-t', 'toml', '--api-hosts', '127.0.0.1:50051', '-l', 'info'] };
  }

  protected async ready(): Promise<void> {
    await this.gobgp('global');
    // Originated routes live in the RIB, not the config: add them again after every start.
    for (const r of this.config.originate ?? []) await this.announce(r);
  }

  gobgp(...args: string[]): Promise<string> {
    return this.run('gobgp', ['-u', '127.0.0.1', '-p', '50051', ...args], 120_000);
  }

  /** Adds a route to the global RIB (next hop: the local address of its family). */
  async announce(r: PeerRoute): Promise<void> {
    const family = familyOf(r.prefix);
    const nextHop = this.config.localAddresses.find((a) => familyOf(a) === family) ?? (family === 'ipv4-unicast' ? '0.0.0.0' : '::');
    await this.gobgp(
      'global', 'rib', '-a', afi(family), 'add', r.prefix, 'nexthop', nextHop,
      ...(r.communities?.length ? ['community', r.communities.map(numericCommunity).join(',')] : []),
      ...(r.largeCommunities?.length ? ['large-community', r.largeCommunities.join(',')] : []),
      ...(r.localPreference !== undefined ? ['local-pref', String(r.localPreference)] : []),
      ...(r.med !== undefined ? ['med', String(r.med)] : []),
    );
  }

  /**
   * Bulk origination: writes the prefixes as an MRT TABLE_DUMP_V2 file (RFC 6396) and injects it.
   * `gobgp mrt inject` exits without waiting for its stream to drain, which drops the tail: the
   * file ends with copies of the last record to lose instead, and what is still missing is
   * injected again until the RIB holds every prefix.
   */
  async originateMany(family: Family, prefixes: readonly string[], timeoutMs = 300_000): Promise<void> {
    const nextHop = this.config.localAddresses.find((a) => familyOf(a) === family);
    if (!nextHop) throw new Error(`${this.name}: no local ${afi(family)} address for the next hop`);
    const file = join(this.dir, `originate-${afi(family)}.mrt`);
    const padding = 4_096;
    writeFileSync(file, mrtTableDump(this.config, family, [...prefixes, ...new Array<string>(padding).fill(prefixes.at(-1)!)], nextHop));
    const before = await this.ribSize(family);
    const deadline = Date.now() + timeoutMs;
    let added = 0;
    for (let attempt = 0; added < prefixes.length; attempt++) {
      if (attempt >= 50 || Date.now() > deadline) throw new Error(`${this.name}: only ${added} of ${prefixes.length} routes injected`);
      await this.gobgp('mrt', 'inject', 'global', file, String(prefixes.length - added + padding), String(added));
      // Stable size: the server has taken everything the client got through.
      let size = -1;
      for (let i = 0; i < 600; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const now = await this.ribSize(family);
        if (now === size) break;
        size = now;
      }
      added = size - before;
    }
  }

  private async ribSize(family: Family): Promise<number> {
    const text = await this.gobgp('global', 'rib', '-a', afi(family), 'summary');
    return Number(/Destination: (\d+)/.exec(text)?.[1] ?? 0);
  }

  async routes(family?: Family): Promise<ReceivedRoute[]> {
    const out: ReceivedRoute[] = [];
    for (const f of family ? [family] : (['ipv4-unicast', 'ipv6-unicast'] as const)) {
      const rib = JSON.parse((await this.gobgp('global', 'rib', '-a', afi(f), '-j')).trim() || '{}') as Record<string, GobgpPath[]>;
      for (const [prefix, paths] of Object.entries(rib)) {
        for (const p of paths) {
          if (!p['neighbor-ip']) continue;
          const route: ReceivedRoute = { prefix: canonical(prefix), family: f, from: canonical(p['neighbor-ip']), nextHop: '', asPath: [], communities: [], largeCommunities: [] };
          for (const a of p.attrs) {
            if (a.type === 2) route.asPath = (a.as_paths ?? []).flatMap((s) => s.asns);
            else if ((a.type === 3 || a.type === 14) && a.nexthop) route.nextHop = canonical(a.nexthop);
            else if (a.type === 4) route.med = a.metric ?? 0;
            else if (a.type === 5) route.localPreference = a.value as number;
            else if (a.type === 8) route.communities = (a.communities ?? []).map((c) => `${c >>> 16}:${c & 0xffff}`);
            else if (a.type === 32) route.largeCommunities = ((a.value ?? []) as { ASN: number; LocalData1: number; LocalData2: number }[]).map((l) => `${l.ASN}:${l.LocalData1}:${l.LocalData2}`);
          }
          out.push(route);
        }
      }
    }
    return out;
  }

  private async neighbour(address: string): Promise<GobgpNeighbour> {
    return JSON.parse(await this.gobgp('neighbor', address, '-j')) as GobgpNeighbour;
  }

  async session(neighbour: string): Promise<SessionInfo> {
    const n = await this.neighbour(neighbour);
    // gobgp's enum: 1 idle, 2 connect, 3 active, 4 opensent, 5 openconfirm, 6 established.
    const code = n.state?.session_state ?? 0;
    const state = ['unknown', 'idle', 'connect', 'active', 'opensent', 'openconfirm', 'established'][code] ?? String(code);
    return { established: code === 6, state, updatesReceived: n.state?.messages?.received?.update ?? 0, refreshesReceived: n.state?.messages?.received?.refresh ?? 0 };
  }

  async routeCount(neighbour: string, family: Family): Promise<number> {
    const n = await this.neighbour(neighbour);
    const want = family === 'ipv4-unicast' ? { afi: 1 } : { afi: 2 };
    return n.afi_safis?.find((a) => a.state?.family?.afi === want.afi)?.state?.accepted ?? 0;
  }

  /** gobgp cannot send ROUTE-REFRESH: its `softresetin` replays the Adj-RIB-In it keeps. */
  requestRefresh(): Promise<void> {
    return Promise.reject(new Error('gobgp has no command that sends ROUTE-REFRESH (softresetin replays its own Adj-RIB-In)'));
  }

  /** Starts the session of an `idle` neighbour. */
  async enable(neighbour: string): Promise<void> {
    await this.gobgp('neighbor', neighbour, 'enable');
  }
}

interface GobgpPath {
  'neighbor-ip'?: string;
  attrs: { type: number; value?: unknown; nexthop?: string; metric?: number; communities?: number[]; as_paths?: { asns: number[] }[] }[];
}

interface GobgpNeighbour {
  state?: { session_state?: number; messages?: { received?: { update?: number; refresh?: number } } };
  afi_safis?: { state?: { family?: { afi?: number }; accepted?: number } }[];
}

export function gobgpConfig(c: PeerDaemonConfig): string {
  const q = (s: string) => JSON.stringify(s);
  const lines = [
    '[global.config]',
    `  as = ${c.localASN}`,
    `  router-id = ${q(c.routerId)}`,
    '  port = 179',
    `  local-address-list = [${c.localAddresses.map(q).join(', ')}]`,
  ];
  for (const n of c.neighbours) {
    lines.push('[[neighbors]]', '  [neighbors.config]', `    neighbor-address = ${q(n.address)}`, `    peer-as = ${n.asn}`);
    if (n.password !== undefined) lines.push(`    auth-password = ${q(n.password)}`);
    if (n.idle) lines.push('    admin-down = true');
    // Retry soon after a reset (gobgpd waits 30 s by default): tests wait for sessions to return.
    lines.push('  [neighbors.timers.config]', '    connect-retry = 2', '    idle-hold-time-after-reset = 1');
    if (n.holdTimeSeconds !== undefined) lines.push(`    hold-time = ${n.holdTimeSeconds}`, `    keepalive-interval = ${Math.max(1, Math.floor(n.holdTimeSeconds / 3))}`);
    lines.push('  [neighbors.transport.config]', `    local-address = ${q(localAddressFor(c, n))}`);
    if (n.passive) lines.push('    passive-mode = true');
    if (n.multihop !== undefined) lines.push('  [neighbors.ebgp-multihop.config]', '    enabled = true', `    multihop-ttl = ${n.multihop}`);
    if (n.gracefulRestart) lines.push('  [neighbors.graceful-restart.config]', '    enabled = true', '    restart-time = 120');
    for (const f of neighbourFamilies(n)) {
      lines.push('  [[neighbors.afi-safis]]', '    [neighbors.afi-safis.config]', `      afi-safi-name = ${q(f)}`);
      if (n.gracefulRestart) lines.push('    [neighbors.afi-safis.mp-graceful-restart.config]', '      enabled = true');
    }
  }
  return `${lines.join('\n')}\n`;
}

/** An MRT TABLE_DUMP_V2 file (RFC 6396 section 4.3): one peer, one RIB entry per prefix, ORIGIN IGP, empty AS_PATH. */
export function mrtTableDump(c: PeerDaemonConfig, family: Family, prefixes: readonly string[], nextHop: string): Buffer {
  const id = ipBytes(c.routerId);
  const record = (subtype: number, body: Buffer) => {
    const h = Buffer.alloc(12);
    h.writeUInt16BE(13, 4); // TABLE_DUMP_V2
    h.writeUInt16BE(subtype, 6);
    h.writeUInt32BE(body.length, 8);
    return [h, body];
  };
  // PEER_INDEX_TABLE: collector id, empty view name, one peer (type 2: IPv4 address, 4-octet AS).
  const peers = Buffer.concat([id, Buffer.from([0, 0, 0, 1, 2]), id, id, u32(c.localASN)]);
  const v4 = family === 'ipv4-unicast';
  const nh = ipBytes(nextHop);
  // ORIGIN IGP, empty AS_PATH, then NEXT_HOP (IPv4) or MP_REACH_NLRI with the next hop only (IPv6).
  const attrs = Buffer.concat([
    Buffer.from([0x40, 1, 1, 0, 0x40, 2, 0]),
    v4 ? Buffer.concat([Buffer.from([0x40, 3, 4]), nh]) : Buffer.concat([Buffer.from([0x80, 14, 21, 0, 2, 1, 16]), nh, Buffer.from([0])]),
  ]);
  const entry = Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, attrs.length >> 8, attrs.length & 255]), attrs]);
  const parts: Buffer[] = record(1, peers);
  prefixes.forEach((p, seq) => {
    const [addr, len] = p.split('/') as [string, string];
    const bits = Number(len);
    const body = Buffer.concat([u32(seq), Buffer.from([bits]), ipBytes(addr).subarray(0, (bits + 7) >> 3), Buffer.from([0, 1]), entry]);
    parts.push(...record(v4 ? 2 : 4, body));
  });
  return Buffer.concat(parts);
}

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

function ipBytes(address: string): Buffer {
  const ip = parseIP(address);
  if (!ip) throw new Error(`not an address: ${address}`);
  return Buffer.from(ip.value.toString(16).padStart(ip.family === 4 ? 8 : 32, '0'), 'hex');
}

// ----------------------------------------------------------------------------------------- ExaBGP

/**
 * ExaBGP's API process: `cat` writes every message ExaBGP reports (JSON, one per line) to a file;
 * `tail` passes commands appended to another file to ExaBGP, and ends with its parent.
 */
export class ExabgpDaemon extends PeerDaemon {
  private readonly received = join(this.dir, 'received.jsonl');
  private readonly commands = join(this.dir, 'commands.txt');

  constructor(host: LabHost, name: string, config: PeerDaemonConfig) {
    super('exabgp', host, name, config);
  }

  protected argv() {
    writeFileSync(this.commands, '');
    rmSync(this.received, { force: true });
    const api = `tail -n 0 --pid=$PPID -F ${this.commands} 2>/dev/null & exec cat > ${this.received}`;
    writeFileSync(join(this.dir, 'exabgp.conf'), exabgpConfig(this.config, api));
    const listens = this.config.neighbours.some((n) => n.passive);
    return {
      command: 'exabgp',
      args: [join(this.dir, 'exabgp.conf')],
      env: {
        'exabgp.daemon.user': 'root',
        'exabgp.log.destination': 'stdout',
        'exabgp.api.cli': 'false',
        // No "done" acknowledgements on the recorder's input: it holds JSON only.
        'exabgp.api.ack': 'false',
        // Listen (for passive neighbours) on the lab addresses only.
        'exabgp.tcp.bind': listens ? this.config.localAddresses.join(' ') : '',
        'exabgp.tcp.port': '179',
      },
    };
  }

  protected ready(): Promise<void> {
    const loaded = this.requireProcess().logs().includes('loaded new configuration successfully');
    return loaded ? Promise.resolve() : Promise.reject(new Error('configuration not loaded yet'));
  }

  /** Sends an API command, e.g. `neighbor 198.18.0.1 announce route-refresh ipv4 unicast`. */
  command(line: string): void {
    writeFileSync(this.commands, `${line}\n`, { flag: 'a' });
  }

  /** Every message ExaBGP reported, parsed. */
  messages(): ExabgpMessage[] {
    let text: string;
    try {
      text = readFileSync(this.received, 'utf8');
    } catch {
      return [];
    }
    // ExaBGP 4.2 quotes some route-refresh fields twice (`""ipv4""`): repair before parsing.
    return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l.replace(/""([\w-]+)""/g, '"$1"')) as ExabgpMessage);
  }

  routes(family?: Family): Promise<ReceivedRoute[]> {
    return Promise.resolve(exabgpTable(this.messages()).filter((r) => family === undefined || r.family === family));
  }

  session(neighbour: string): Promise<SessionInfo> {
    const mine = this.messages().filter((m) => canonical(m.neighbor?.address?.peer ?? '') === canonical(neighbour));
    const last = mine.filter((m) => m.type === 'state').at(-1);
    const state = last?.neighbor?.state ?? 'idle';
    const reason = last?.neighbor?.reason;
    return Promise.resolve({
      established: state === 'up',
      state,
      // With `packets`, ExaBGP reports each UPDATE twice: parsed, and raw (with `body`).
      updatesReceived: mine.filter((m) => m.type === 'update' && m.neighbor?.direction === 'receive' && m.neighbor.message?.body === undefined).length,
      refreshesReceived: mine.filter((m) => m.type === 'refresh' && m.neighbor?.direction === 'receive').length,
      ...(reason ? { lastError: reason } : {}),
    });
  }

  async routeCount(neighbour: string, family: Family): Promise<number> {
    return (await this.routes(family)).filter((r) => r.from === canonical(neighbour)).length;
  }

  requestRefresh(neighbour: string, family: Family): Promise<void> {
    this.command(`neighbor ${neighbour} announce route-refresh ${afi(family)} unicast`);
    return Promise.resolve();
  }

  /** The raw path attributes (type → value) of every UPDATE received from `neighbour`, as ExaBGP read them off the wire. */
  rawAttributes(neighbour: string): Map<number, Buffer>[] {
    return this.messages()
      .filter((m) => m.type === 'update' && canonical(m.neighbor?.address?.peer ?? '') === canonical(neighbour) && m.neighbor?.message?.body)
      .map((m) => updateAttributes(Buffer.from(m.neighbor!.message!.body!.replace(/^0x/i, ''), 'hex')));
  }

  /** End-of-RIB markers (RFC 4724) received from `neighbour`, as `ipv4 unicast` / `ipv6 unicast`. */
  endOfRib(neighbour: string): string[] {
    return this.messages()
      .filter((m) => m.type === 'update' && canonical(m.neighbor?.address?.peer ?? '') === canonical(neighbour) && m.neighbor?.message?.eor)
      .map((m) => `${m.neighbor!.message!.eor!.afi} ${m.neighbor!.message!.eor!.safi}`);
  }
}

export interface ExabgpMessage {
  type: string;
  neighbor?: {
    address?: { local?: string; peer?: string };
    state?: string;
    reason?: string;
    direction?: string;
    message?: {
      /** The UPDATE after its header, `0x`-prefixed hex (`receive { packets; }`, reported as a message of its own). */
      body?: string;
      eor?: { afi: string; safi: string };
      update?: {
        attribute?: { 'as-path'?: number[]; community?: [number, number][]; 'large-community'?: [number, number, number][]; 'local-preference'?: number; med?: number };
        announce?: Record<string, Record<string, { nlri: string }[]>>;
        withdraw?: Record<string, { nlri: string }[]>;
      };
    };
  };
}

/** Path attributes of an UPDATE body (RFC 4271 section 4.3), by type code; a few lines, independent of Beacon's codec. */
export function updateAttributes(body: Buffer): Map<number, Buffer> {
  const attrs = new Map<number, Buffer>();
  let at = 2 + body.readUInt16BE(0);
  const end = at + 2 + body.readUInt16BE(at);
  for (at += 2; at < end; ) {
    const flags = body[at]!;
    const type = body[at + 1]!;
    const extended = (flags & 0x10) !== 0;
    const length = extended ? body.readUInt16BE(at + 2) : body[at + 2]!;
    const start = at + (extended ? 4 : 3);
    attrs.set(type, body.subarray(start, start + length));
    at = start + length;
  }
  return attrs;
}

/** Replays ExaBGP's messages into the table it holds now: announcements, withdrawals, sessions going down. */
export function exabgpTable(messages: readonly ExabgpMessage[]): ReceivedRoute[] {
  const table = new Map<string, ReceivedRoute>();
  for (const m of messages) {
    const from = canonical(m.neighbor?.address?.peer ?? '');
    if (m.type === 'state' && m.neighbor?.state === 'down') {
      for (const [k, r] of table) if (r.from === from) table.delete(k);
    }
    const u = m.type === 'update' && m.neighbor?.direction === 'receive' ? m.neighbor.message?.update : undefined;
    if (!u) continue;
    for (const [fam, list] of Object.entries(u.withdraw ?? {})) for (const { nlri } of list) table.delete(`${from} ${fam} ${canonical(nlri)}`);
    const a = u.attribute ?? {};
    for (const [fam, byNextHop] of Object.entries(u.announce ?? {})) {
      for (const [nextHop, list] of Object.entries(byNextHop)) {
        for (const { nlri } of list) {
          const prefix = canonical(nlri);
          table.set(`${from} ${fam} ${prefix}`, {
            prefix,
            family: fam.startsWith('ipv6') ? 'ipv6-unicast' : 'ipv4-unicast',
            from,
            nextHop: canonical(nextHop),
            asPath: a['as-path'] ?? [],
            communities: (a.community ?? []).map(([x, y]) => `${x}:${y}`),
            largeCommunities: (a['large-community'] ?? []).map((l) => l.join(':')),
            ...(a['local-preference'] !== undefined ? { localPreference: a['local-preference'] } : {}),
            ...(a.med !== undefined ? { med: a.med } : {}),
          });
        }
      }
    }
  }
  return [...table.values()];
}

export function exabgpConfig(c: PeerDaemonConfig, apiCommand: string): string {
  const lines = ['process recorder {', `  run /bin/sh -c '${apiCommand}';`, '  encoder json;', '}'];
  for (const n of c.neighbours) {
    const families = neighbourFamilies(n);
    lines.push(
      `neighbor ${n.address} {`,
      `  router-id ${c.routerId};`,
      `  local-address ${localAddressFor(c, n)};`,
      `  local-as ${c.localASN};`,
      `  peer-as ${n.asn};`,
      ...(n.holdTimeSeconds !== undefined ? [`  hold-time ${n.holdTimeSeconds};`] : []),
      ...(n.password !== undefined ? [`  md5-password "${n.password}";`] : []),
      ...(n.passive ? ['  passive true;'] : []),
      ...(n.multihop !== undefined ? [`  outgoing-ttl ${n.multihop};`] : []),
      `  capability { route-refresh; ${n.asn4 === false ? 'asn4 disable; ' : ''}${n.gracefulRestart ? 'graceful-restart 120; ' : ''}}`,
      `  family { ${families.map((f) => `${afi(f)} unicast;`).join(' ')} }`,
      '  api { processes [ recorder ]; neighbor-changes; receive { parsed; packets; update; refresh; } }',
    );
    const routes = (c.originate ?? []).filter((r) => families.includes(familyOf(r.prefix)));
    if (routes.length > 0) {
      lines.push('  static {');
      for (const r of routes) {
        const attrs = [
          ...(r.communities?.length ? [`community [${r.communities.map(numericCommunity).join(' ')}]`] : []),
          ...(r.largeCommunities?.length ? [`large-community [${r.largeCommunities.join(' ')}]`] : []),
          ...(r.localPreference !== undefined ? [`local-preference ${r.localPreference}`] : []),
          ...(r.med !== undefined ? [`med ${r.med}`] : []),
        ];
        lines.push(`    route ${r.prefix} next-hop self ${attrs.join(' ')};`);
      }
      lines.push('  }');
    }
    lines.push('}');
  }
  return `${lines.join('\n')}\n`;
}

// ------------------------------------------------------------------------- Beacon's speaker, in a lab host

export interface StateChange {
  name: string;
  state: string;
  /** Epoch ms in the speaker's process. */
  at: number;
}

type DriverReply = { id: number; result?: unknown; error?: string } | ({ event: 'state' } & StateChange) | { event: 'error'; name: string; reason: string };

/**
 * Beacon's `Speaker` running in its own process inside a lab host (so its sockets are in the lab),
 * driven over a Unix socket in the run folder. Methods mirror the Speaker's and return promises.
 */
export class SpeakerProcess {
  readonly states: StateChange[] = [];
  readonly errors: { name: string; reason: string }[] = [];
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(
    readonly process: LabProcess,
    private readonly socket: Socket,
  ) {
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        this.receive(JSON.parse(buffer.slice(0, nl)) as DriverReply);
        buffer = buffer.slice(nl + 1);
      }
    });
    socket.on('close', () => {
      for (const p of this.pending.values()) p.reject(new Error(`speaker process closed the control socket; log tail:\n${this.process.logs().slice(-1500)}`));
      this.pending.clear();
    });
  }

  /** Starts the driver process in `host` and a Speaker in it with `options`. */
  static async start(host: LabHost, options: SpeakerOptions, name = 'beacon'): Promise<SpeakerProcess> {
    const socketPath = join(host.lab.logDir, `${name}.sock`);
    const p = await host.spawn(name, process.execPath, ['--import', 'tsx', import.meta.filename, 'speaker-driver', socketPath], { cwd: root });
    await p.waitForLog('speaker driver listening', 30_000);
    const socket = connect(socketPath);
    await once(socket, 'connect');
    const speaker = new SpeakerProcess(p, socket);
    await speaker.call('start', options);
    return speaker;
  }

  setPeers(peers: PeerConfig[]): Promise<void> {
    return this.call('setPeers', peers);
  }

  setRoutes(peer: string, routes: Route[]): Promise<void> {
    return this.call('setRoutes', peer, routes);
  }

  /** setRoutes with `hostPrefixes(family, count)`, generated inside the speaker's process. */
  setHostRoutes(peer: string, family: Family, count: number): Promise<void> {
    return this.call('setHostRoutes', peer, family, count);
  }

  peers(): Promise<PeerStatus[]> {
    return this.call('peers');
  }

  async peer(name: string): Promise<PeerStatus> {
    const s = (await this.peers()).find((p) => p.name === name);
    if (!s) throw new Error(`no peer ${name}`);
    return s;
  }

  advertised(peer: string): Promise<AdvertisedRoute[]> {
    return this.call('advertised', peer);
  }

  /** Prefixes Beacon holds from the peer (counted, never installed). */
  receivedPrefixes(peer: string): Promise<string[]> {
    return this.call('receivedPrefixes', peer);
  }

  refresh(peer: string): Promise<void> {
    return this.call('refresh', peer);
  }

  close(mode: 'graceful' | 'restart' | 'immediate', drainMs?: number): Promise<void> {
    return this.call('close', mode, drainMs);
  }

  /** A new Speaker in the same process (after close()): how a restarted agent comes back. */
  restart(options: SpeakerOptions): Promise<void> {
    return this.call('start', options);
  }

  /** Waits until the speaker reports `state` for `peer`. */
  waitState(peer: string, state: PeerStatus['state'], timeoutMs = 20_000): Promise<PeerStatus> {
    return eventually(async () => {
      const s = await this.peer(peer);
      if (s.state !== state) throw new Error(`${peer} is ${s.state}${s.lastError ? ` (${s.lastError})` : ''}`);
      return s;
    }, timeoutMs, `Beacon peer ${peer} ${state}`);
  }

  peakRssKiB(): number {
    return peakRssKiB(this.process.pid);
  }

  async stop(): Promise<void> {
    this.socket.destroy();
    await this.process.stop(3_000);
  }

  private call<T>(method: string, ...args: unknown[]): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`speaker call ${method} did not answer within 120 s`));
      }, 120_000);
      this.pending.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v as T)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.socket.write(`${JSON.stringify({ id, method, args })}\n`);
    });
  }

  private receive(m: DriverReply): void {
    if ('event' in m) {
      if (m.event === 'state') this.states.push({ name: m.name, state: m.state, at: m.at });
      else this.errors.push({ name: m.name, reason: m.reason });
      return;
    }
    const p = this.pending.get(m.id);
    this.pending.delete(m.id);
    if (m.error !== undefined) p?.reject(new Error(m.error));
    else p?.resolve(m.result);
  }
}

/** The child side: one Speaker at a time, its calls answered over the control socket, its log on stdout. */
async function runSpeakerDriver(socketPath: string): Promise<void> {
  const { Speaker } = await import('../bgp/index.js');
  let speaker: Speaker | undefined;
  let client: Socket | undefined;
  const emit = (o: object) => client?.write(`${JSON.stringify(o)}\n`);
  const line = (level: string) => (o: object, msg: string) => process.stdout.write(`${JSON.stringify({ level, time: Date.now(), msg, ...o })}\n`);
  const log = { info: line('info'), warn: line('warn'), debug: line('debug') };
  const need = (): Speaker => {
    if (!speaker) throw new Error('no speaker: call start first');
    return speaker;
  };
  const calls: Record<string, (...args: never[]) => unknown> = {
    start: async (options: SpeakerOptions) => {
      if (speaker) throw new Error('a speaker runs already');
      const s = await Speaker.start({ ...options, log });
      s.events.on('state', (name: string, state: string) => emit({ event: 'state', name, state, at: Date.now() }));
      s.events.on('error', (name: string, reason: unknown) => emit({ event: 'error', name, reason: String(reason) }));
      speaker = s;
    },
    setPeers: (peers: PeerConfig[]) => need().setPeers(peers),
    setRoutes: (peer: string, routes: Route[]) => need().setRoutes(peer, routes),
    setHostRoutes: (peer: string, family: Family, count: number) => need().setRoutes(peer, hostPrefixes(family, count).map((prefix) => ({ prefix }))),
    peers: () => need().peers(),
    advertised: (peer: string) => need().advertised(peer),
    receivedPrefixes: (peer: string) => need().receivedPrefixes(peer),
    refresh: (peer: string) => need().refresh(peer),
    close: async (mode: 'graceful' | 'restart' | 'immediate', drainMs?: number) => {
      const s = need();
      speaker = undefined;
      await s.close(mode, drainMs);
    },
  };
  const server = createServer((socket) => {
    client = socket;
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const { id, method, args } = JSON.parse(buffer.slice(0, nl)) as { id: number; method: string; args: never[] };
        buffer = buffer.slice(nl + 1);
        void (async () => {
          try {
            const fn = calls[method];
            if (!fn) throw new Error(`unknown call ${method}`);
            const result = await fn(...args);
            emit({ id, result: result ?? null });
          } catch (e) {
            emit({ id, error: (e as Error).stack ?? String(e) });
          }
        })();
      }
    });
    // The test went away: so does the speaker (its peers see the TCP session end).
    socket.on('close', () => process.exit(0));
  });
  server.listen(socketPath, () => process.stdout.write('speaker driver listening\n'));
}

if (process.argv[2] === 'speaker-driver' && process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  void runSpeakerDriver(process.argv[3]!);
}
