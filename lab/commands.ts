// The commands a lab runs, built as plain argv lists. Every one of them acts inside a namespace of
// the run (`ip -n NS ...` or `ip netns exec NS ...`): the root namespace's interfaces and routes
// are never named, and `assertInRun` refuses any command that would reach them.
import type { LabCidr, LabFamily } from './addresses.js';

export type Argv = readonly string[];

export const addNamespace = (ns: string): Argv => ['ip', 'netns', 'add', ns];
export const deleteNamespace = (ns: string): Argv => ['ip', 'netns', 'del', ns];
export const namespacePids = (ns: string): Argv => ['ip', 'netns', 'pids', ns];
export const execIn = (ns: string, cmd: string, args: readonly string[]): Argv => ['ip', 'netns', 'exec', ns, cmd, ...args];

export interface NamespaceOptions {
  /** Route between interfaces (a router host). */
  readonly forwarding?: boolean;
  /** The switch namespace: bridges only, no IPv6 on its ports, so it stays silent on the wire. */
  readonly isSwitch?: boolean;
}

/** Settings applied to a fresh namespace, before it gets any interface. */
export function setUpNamespace(ns: string, opts: NamespaceOptions = {}): Argv[] {
  const sysctls = [
    // Without DAD a new IPv6 address is usable at once instead of "tentative" for ~1 s (RFC 4862 §5.4).
    // `default` covers interfaces created later; the kernel skips DAD only when `all` is 0 too.
    'net.ipv6.conf.all.accept_dad=0',
    'net.ipv6.conf.default.accept_dad=0',
    ...(opts.forwarding ? ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'] : []),
    ...(opts.isSwitch ? ['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'] : []),
  ];
  return [execIn(ns, 'sysctl', ['-q', '-w', ...sysctls]), ['ip', '-n', ns, 'link', 'set', 'lo', 'up']];
}

/**
 * A bridge that forwards from the first frame: STP off and forward delay 0 (ports skip the
 * listening/learning states), multicast snooping off so NDP's solicited-node multicast is flooded.
 */
export function addBridge(switchNs: string, bridge: string): Argv[] {
  return [
    ['ip', '-n', switchNs, 'link', 'add', bridge, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0'],
    ['ip', '-n', switchNs, 'link', 'set', bridge, 'up'],
  ];
}

/** A veth pair created inside `nsA` with its peer moved straight into `nsB`: it never exists in the root namespace. */
export const addVeth = (nsA: string, ifA: string, nsB: string, ifB: string): Argv => ['ip', '-n', nsA, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB];

export const setLink = (ns: string, ifname: string, state: 'up' | 'down'): Argv => ['ip', '-n', ns, 'link', 'set', ifname, state];

/** Details of one link as JSON: operstate, flags and, for a bridge port, its STP state. */
export const showLink = (ns: string, ifname: string): Argv => ['ip', '-n', ns, '-d', '-j', 'link', 'show', 'dev', ifname];

export const setMaster = (switchNs: string, port: string, bridge: string): Argv => ['ip', '-n', switchNs, 'link', 'set', port, 'master', bridge, 'up'];

export function addAddress(ns: string, ifname: string, cidr: LabCidr): Argv {
  // `nodad` as well as the sysctl: the address is usable even if the sysctl was changed since.
  return cidr.family === 6 ? ['ip', '-n', ns, '-6', 'addr', 'add', cidr.text, 'dev', ifname, 'nodad'] : ['ip', '-n', ns, '-4', 'addr', 'add', cidr.text, 'dev', ifname];
}

export interface RouteSpec {
  readonly family: LabFamily;
  /** `default` or a CIDR. */
  readonly destination: string;
  readonly via?: string;
  readonly dev?: string;
}

export function addRoute(ns: string, route: RouteSpec): Argv {
  return [
    'ip', '-n', ns, `-${route.family}`, 'route', 'add', route.destination,
    ...(route.via !== undefined ? ['via', route.via] : []),
    ...(route.dev !== undefined ? ['dev', route.dev] : []),
  ];
}

export interface LinkState {
  readonly operstate: string;
  /** The veth peer is up (IFF_LOWER_UP). */
  readonly carrier: boolean;
  /** STP state when the link is a bridge port (`forwarding` once frames pass). */
  readonly bridgePortState?: string;
}

/** Reads `ip -d -j link show` output. */
export function parseLinkState(json: string): LinkState | undefined {
  try {
    const [link] = JSON.parse(json) as { operstate?: unknown; flags?: unknown; linkinfo?: { info_slave_data?: { state?: unknown } } }[];
    if (!link || typeof link.operstate !== 'string' || !Array.isArray(link.flags)) return undefined;
    const port = link.linkinfo?.info_slave_data?.state;
    return { operstate: link.operstate, carrier: link.flags.includes('LOWER_UP'), ...(typeof port === 'string' ? { bridgePortState: port } : {}) };
  } catch {
    return undefined;
  }
}

/**
 * Whether a link that was just set up can pass packets. The carrier of a veth follows its peer at
 * once, but the kernel's linkwatch work sets operstate, activates the qdisc (until then every
 * packet is dropped) and tells the bridge a moment later; a first NDP or ARP packet sent in that
 * gap is lost and only resent after a second.
 */
export const linkSettled = (s: LinkState): boolean => !s.carrier || (s.operstate === 'UP' && (s.bridgePortState === undefined || s.bridgePortState === 'forwarding'));

/** The namespaces a command acts in (both ends for a veth), or [] when it would act in the root namespace. */
export function namespacesOf(argv: Argv): string[] {
  if (argv[0] !== 'ip') return [];
  if (argv[1] === 'netns' && ['add', 'del', 'exec', 'pids'].includes(argv[2] ?? '') && argv[3] !== undefined) return [argv[3]];
  if (argv[1] === '-n' && argv[2] !== undefined) {
    const peer = argv.indexOf('netns', 3);
    return peer > 0 && argv[peer + 1] !== undefined ? [argv[2], argv[peer + 1]!] : [argv[2]];
  }
  return [];
}

/** Throws unless every namespace the command touches belongs to the run. */
export function assertInRun(argv: Argv, runId: string): void {
  const nss = namespacesOf(argv);
  if (nss.length === 0 || nss.some((ns) => !ns.startsWith(`${runId}-`))) {
    throw new Error(`refusing command outside run ${runId}'s namespaces: ${argv.join(' ')}`);
  }
}
