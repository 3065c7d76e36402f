// The datapath benchmark's peers as text: the rules kube-proxy's iptables, nftables and IPVS modes
// would give the kernel for a set of services, one change of a service, and the parsing of what
// the load generator prints. Pure: bench/kpr.ts and bench/kpr-control.ts feed these texts to
// iptables-restore, nft -f and ipvsadm-restore inside namespaces they create.
import { createHash } from 'node:crypto';
import type { CommandResult } from '../lab/index.js';

/** One TCP service port with its ready endpoints, as the peers see it. */
export interface BenchService {
  readonly namespace: string;
  readonly name: string;
  readonly portName: string;
  /** The frontend (ClusterIP or LoadBalancer IP) and its port. */
  readonly address: string;
  readonly port: number;
  readonly targetPort: number;
  readonly backends: readonly string[];
}

/** The node under test: its namespace, its interfaces (where a tc datapath attaches), and commands run inside it. */
export interface NodeShell {
  readonly namespace: string;
  /** The interface facing the client first, then those facing the backends. */
  readonly devices: readonly string[];
  run(command: string, args: readonly string[], opts?: { input?: string; timeoutMs?: number }): Promise<CommandResult>;
}

/**
 * A datapath beside which Beacon is measured. Each step starts from what the previous one left:
 * program from an empty node, change one service, tear everything down (the node is empty again).
 * Steps throw on failure; the harness bounds each with `timeoutMs`.
 */
export interface Peer {
  readonly name: string;
  /** Why this peer cannot run on this node (reported, not fatal), or undefined when it can. */
  unavailable(node: NodeShell): Promise<string | undefined>;
  program(node: NodeShell, services: readonly BenchService[], timeoutMs: number): Promise<void>;
  /** `from` is programmed; afterwards `to` is (same name, frontend and port). `all` is the current set. */
  change(node: NodeShell, from: BenchService, to: BenchService, all: readonly BenchService[], timeoutMs: number): Promise<void>;
  teardown(node: NodeShell, timeoutMs: number): Promise<void>;
  /** Per-packet cost of the datapath's lookup, where it can be run on its own (BPF_PROG_TEST_RUN). */
  perPacket?(): PerPacket;
  /** Releases what `unavailable` set up; the harness calls it once at the end. */
  close?(): Promise<void>;
}

/** Average ns per run of the datapath on a packet of a tracked flow to a frontend, and on one for no frontend. */
export interface PerPacket {
  readonly translatedNs: number;
  readonly passNs: number;
}

/** Dotted IPv4 text of a 32-bit number. */
export const ipv4 = (n: number): string => [24, 16, 8, 0].map((s) => ((n >>> s) & 255).toString()).join('.');

// kube-proxy names chains by a hash of what they serve: the first characters of the base32
// (RFC 4648 alphabet) SHA-256 of a stable text, so names survive restarts and fit the limits.
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
export function chainHash(text: string, length: number): string {
  const digest = createHash('sha256').update(text).digest();
  let out = '';
  for (let bit = 0; out.length < length; bit += 5) {
    const byte = bit >> 3;
    const word = (digest[byte]! << 8) | (digest[byte + 1] ?? 0);
    out += BASE32[(word >> (11 - (bit & 7))) & 31];
  }
  return out;
}

const servicePortName = (s: BenchService): string => `${s.namespace}/${s.name}:${s.portName}`;

// ---- iptables (kube-proxy's iptables mode) ---------------------------------------------------------
// KUBE-SERVICES holds one rule per service port, matched in order (a linear scan per new
// connection); each jumps to KUBE-SVC-*, which picks a KUBE-SEP-* endpoint chain with the statistic
// match (rule k of n matches with probability 1/(n-k), so every endpoint gets 1/n), which DNATs.
// Large-cluster form: no comments on endpoint rules.

export const iptablesServiceChain = (s: BenchService): string => `KUBE-SVC-${chainHash(`${servicePortName(s)}/tcp`, 16)}`;
export const iptablesEndpointChain = (s: BenchService, backend: string): string => `KUBE-SEP-${chainHash(`${servicePortName(s)}/tcp/${backend}:${s.targetPort}`, 16)}`;

export const iptablesServiceRule = (s: BenchService): string =>
  `-A KUBE-SERVICES -m comment --comment "${servicePortName(s)} cluster IP" -m tcp -p tcp -d ${s.address}/32 --dport ${s.port} -j ${iptablesServiceChain(s)}`;

/** Chain declarations and rules of iptables-restore's nat table. */
export interface RestoreParts {
  chains: string[];
  rules: string[];
}

/** The service chain and its endpoint chains, appended to `out`. */
export function iptablesServiceChains(s: BenchService, out: RestoreParts = { chains: [], rules: [] }): RestoreParts {
  const svc = iptablesServiceChain(s);
  out.chains.push(`:${svc} - [0:0]`);
  s.backends.forEach((backend, k) => {
    const left = s.backends.length - k;
    out.rules.push(`-A ${svc} ${left > 1 ? `-m statistic --mode random --probability ${(1 / left).toFixed(10)} ` : ''}-j ${iptablesEndpointChain(s, backend)}`);
  });
  for (const backend of s.backends) {
    const sep = iptablesEndpointChain(s, backend);
    out.chains.push(`:${sep} - [0:0]`);
    out.rules.push(`-A ${sep} -s ${backend}/32 -j KUBE-MARK-MASQ`, `-A ${sep} -m tcp -p tcp -j DNAT --to-destination ${backend}:${s.targetPort}`);
  }
  return out;
}

/** The nat table for iptables-restore; `deleted` chains are declared (flushed) and then removed with -X. */
export const iptablesRestoreText = ({ chains, rules }: RestoreParts, deleted: readonly string[] = []): string =>
  `*nat\n${[...chains, ...deleted.map((c) => `:${c} - [0:0]`), ...rules, ...deleted.map((c) => `-X ${c}`)].join('\n')}\nCOMMIT\n`;

/** Every service from an empty nat table (iptables-restore without --noflush); `rules` counts the -A lines. */
export function iptablesRuleset(services: readonly BenchService[]): { text: string; rules: number } {
  const out: RestoreParts = {
    chains: [':KUBE-SERVICES - [0:0]', ':KUBE-MARK-MASQ - [0:0]'],
    rules: ['-A PREROUTING -j KUBE-SERVICES', '-A OUTPUT -j KUBE-SERVICES', '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000'],
  };
  for (const s of services) out.rules.push(iptablesServiceRule(s));
  for (const s of services) iptablesServiceChains(s, out);
  return { text: iptablesRestoreText(out), rules: out.rules.length };
}

/**
 * One service's endpoints change, for iptables-restore --noflush: its chains rewritten and the
 * endpoint chains that went away deleted. kube-proxy's partial sync also rewrites KUBE-SERVICES in
 * full: pass `servicesRules` (iptablesServiceRule of every service) for that form.
 */
export function iptablesChange(from: BenchService, to: BenchService, servicesRules?: readonly string[]): string {
  const out = iptablesServiceChains(to);
  if (servicesRules) {
    out.chains.unshift(':KUBE-SERVICES - [0:0]');
    out.rules.unshift(...servicesRules);
  }
  const gone = from.backends.filter((b) => !to.backends.includes(b)).map((b) => iptablesEndpointChain(from, b));
  return iptablesRestoreText(out, gone);
}

/** Empties the nat table (iptables-restore without --noflush flushes built-in chains and deletes user chains). */
export const IPTABLES_EMPTY = '*nat\nCOMMIT\n';

// ---- nftables (kube-proxy's nftables mode) ---------------------------------------------------------
// One lookup per new connection whatever the number of services: the verdict map service-ips goes
// from (address . protocol . port) to the service's chain, which picks an endpoint chain with
// numgen random. Chain names as kube-proxy forms them: kind-HASH-namespace/name/protocol/port.

export const NFT_TABLE = 'ip kube-proxy';
const nftServiceId = (s: BenchService): string => `${s.namespace}/${s.name}/tcp/${s.portName}`;
export const nftServiceChain = (s: BenchService): string => `service-${chainHash(nftServiceId(s), 8)}-${nftServiceId(s)}`;
export const nftEndpointChain = (s: BenchService, backend: string): string => {
  const id = `${nftServiceId(s)}__${backend}/${s.targetPort}`;
  return `endpoint-${chainHash(id, 8)}-${id}`;
};

const NFT_BASE = [
  `add table ${NFT_TABLE}`,
  `add chain ${NFT_TABLE} mark-for-masquerade`,
  `add rule ${NFT_TABLE} mark-for-masquerade mark set mark or 0x4000`,
  `add chain ${NFT_TABLE} services`,
  `add chain ${NFT_TABLE} nat-prerouting { type nat hook prerouting priority dstnat ; }`,
  `add rule ${NFT_TABLE} nat-prerouting jump services`,
  `add chain ${NFT_TABLE} nat-output { type nat hook output priority -100 ; }`,
  `add rule ${NFT_TABLE} nat-output jump services`,
  `add map ${NFT_TABLE} service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }`,
  `add rule ${NFT_TABLE} services ip daddr . meta l4proto . th dport vmap @service-ips`,
];

function nftEndpointLines(s: BenchService, backend: string): string[] {
  const chain = nftEndpointChain(s, backend);
  return [
    `add chain ${NFT_TABLE} ${chain}`,
    `add rule ${NFT_TABLE} ${chain} ip saddr ${backend} jump mark-for-masquerade`,
    `add rule ${NFT_TABLE} ${chain} meta l4proto tcp dnat to ${backend}:${s.targetPort}`,
  ];
}

const nftPickRule = (s: BenchService): string =>
  `add rule ${NFT_TABLE} ${nftServiceChain(s)} numgen random mod ${s.backends.length} vmap { ${s.backends.map((b, k) => `${k} : goto ${nftEndpointChain(s, b)}`).join(', ')} }`;

const nftServiceLines = (s: BenchService): string[] => [...s.backends.flatMap((b) => nftEndpointLines(s, b)), `add chain ${NFT_TABLE} ${nftServiceChain(s)}`, nftPickRule(s)];

/** Map elements per `add element` line: one line per service would make nft's parser the cost. */
const NFT_ELEMENTS_PER_LINE = 1000;

/** Every service from an empty ruleset, for `nft -f` (one transaction). */
export function nftRuleset(services: readonly BenchService[]): string {
  const lines = [...NFT_BASE, ...services.flatMap(nftServiceLines)];
  for (let i = 0; i < services.length; i += NFT_ELEMENTS_PER_LINE) {
    const elements = services.slice(i, i + NFT_ELEMENTS_PER_LINE).map((s) => `${s.address} . tcp . ${s.port} : goto ${nftServiceChain(s)}`);
    lines.push(`add element ${NFT_TABLE} service-ips { ${elements.join(', ')} }`);
  }
  return `${lines.join('\n')}\n`;
}

/** One service's endpoints change: new endpoint chains, the pick rule rewritten, the chains that went away deleted (one transaction). */
export function nftChange(from: BenchService, to: BenchService): string {
  const added = to.backends.filter((b) => !from.backends.includes(b));
  const gone = from.backends.filter((b) => !to.backends.includes(b)).map((b) => nftEndpointChain(from, b));
  return `${[
    ...added.flatMap((b) => nftEndpointLines(to, b)),
    `flush chain ${NFT_TABLE} ${nftServiceChain(to)}`,
    nftPickRule(to),
    // A chain must be empty and unreferenced to go; the flush above dropped the reference.
    ...gone.flatMap((c) => [`flush chain ${NFT_TABLE} ${c}`, `delete chain ${NFT_TABLE} ${c}`]),
  ].join('\n')}\n`;
}

/** Removes the table whether or not it exists (an add first makes the delete always valid), after a failed program too. */
export const NFT_EMPTY = `add table ${NFT_TABLE}\ndelete table ${NFT_TABLE}\n`;

// ---- IPVS (kube-proxy's ipvs mode) ------------------------------------------------------------------
// A virtual server per service port with real servers in NAT (masquerading) mode. IPVS sits on
// LOCAL_IN, so kube-proxy also puts every service address on a dummy interface (kube-ipvs0).

export const IPVS_DUMMY = 'kube-ipvs0';

const ipvsServer = (s: BenchService): string => `-t ${s.address}:${s.port}`;
const ipvsRealServer = (s: BenchService, backend: string): string => `-a ${ipvsServer(s)} -r ${backend}:${s.targetPort} -m -w 1`;

/** Every service for ipvsadm-restore. */
export const ipvsRestoreText = (services: readonly BenchService[]): string =>
  `${services.flatMap((s) => [`-A ${ipvsServer(s)} -s rr`, ...s.backends.map((b) => ipvsRealServer(s, b))]).join('\n')}\n`;

/** One service's real servers change, for ipvsadm-restore. */
export function ipvsChange(from: BenchService, to: BenchService): string {
  const removed = from.backends.filter((b) => !to.backends.includes(b)).map((b) => `-d ${ipvsServer(from)} -r ${b}:${from.targetPort}`);
  const added = to.backends.filter((b) => !from.backends.includes(b)).map((b) => ipvsRealServer(to, b));
  return `${[...added, ...removed].join('\n')}\n`;
}

/** `ip -batch` lines that put every service address on the dummy interface. */
export const ipvsDummyAddresses = (services: readonly BenchService[]): string =>
  `${[...new Set(services.map((s) => s.address))].map((a) => `address add ${a}/32 dev ${IPVS_DUMMY}`).join('\n')}\n`;

// ---- the load generator ------------------------------------------------------------------------------

export interface WrkResult {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  /** From wrk's latency distribution (needs --latency); microseconds. */
  latencyUs: { p50: number; p99: number };
  /** Socket errors (connect, read, write, timeout) and responses that were not 2xx/3xx. */
  errors: number;
}

const UNIT_US: Record<string, number> = { us: 1, ms: 1_000, s: 1_000_000, m: 60_000_000 };
const durationUs = (value: string, unit: string): number => Number(value) * UNIT_US[unit]!;

/** What `wrk --latency` prints; throws when a figure is missing (wrk failed). */
export function parseWrk(text: string): WrkResult {
  const must = (re: RegExp, what: string): RegExpExecArray => {
    const m = re.exec(text);
    if (!m) throw new Error(`wrk output has no ${what}: ${text.trim().slice(0, 300)}`);
    return m;
  };
  const latency = (p: string): number => {
    const m = must(new RegExp(`^\\s*${p}%\\s+([0-9.]+)(us|ms|s|m)\\s*$`, 'm'), `${p}% latency`);
    return durationUs(m[1]!, m[2]!);
  };
  const done = must(/^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m),/m, 'request count');
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  return {
    requests: Number(done[1]),
    seconds: durationUs(done[2]!, done[3]!) / 1e6,
    requestsPerSecond: Number(must(/^Requests\/sec:\s+([0-9.]+)/m, 'Requests/sec')[1]),
    latencyUs: { p50: latency('50'), p99: latency('99') },
    errors: (socket ? socket.slice(1, 5).reduce((sum, n) => sum + Number(n), 0) : 0) + Number(non2xx?.[1] ?? 0),
  };
}

/** Seconds of CPU of a shell's children from the POSIX `times` builtin (second line: user, then system). */
export function parseChildrenCpuSeconds(timesOutput: string): number {
  const lines = timesOutput.trim().split('\n');
  const children = lines[lines.length - 1] ?? '';
  const parts = [...children.matchAll(/(\d+)m([0-9.]+)s/g)];
  if (parts.length !== 2) throw new Error(`not the output of bash times: ${timesOutput}`);
  return parts.reduce((sum, m) => sum + Number(m[1]) * 60 + Number(m[2]), 0);
}
