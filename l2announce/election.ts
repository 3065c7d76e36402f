// Who announces which IP, decided from data every node sees alike: the policies, the services,
// the ready endpoints and the set of live nodes with what each published in its liveness lease.
// No lease per IP: each node renews one lease, and every node computes the same choice from the
// live set with rendezvous hashing (each IP goes to the eligible node with the highest score for
// it), so load spreads evenly and a node that joins or leaves moves only its own share.
import { compareIP, formatIP, parseIP, selectorMatches, serviceClasses, type IP, type L2Policy, type Labels } from '../api/index.js';

export interface InterfaceAddress {
  readonly ip: string;
  readonly prefixLength: number;
}

export interface NodeInterface {
  readonly name: string;
  /** Operationally up with carrier: a link that is down cannot answer. */
  readonly up: boolean;
  readonly addresses: readonly InterfaceAddress[];
}

/** What a node publishes with its liveness lease, so that every node can judge its eligibility. */
export interface NodeCandidacy {
  readonly labels: Labels;
  /** Synced and able to answer. */
  readonly ready: boolean;
  /** Shutting down: hand its IPs over now. */
  readonly draining: boolean;
  readonly interfaces: readonly NodeInterface[];
  /** Interfaces that carry the default route, per family. */
  readonly defaultRoute: { readonly ipv4: readonly string[]; readonly ipv6: readonly string[] };
}

export interface LiveNode {
  readonly name: string;
  readonly candidacy: NodeCandidacy;
}

export interface L2Service {
  /** namespace/name */
  readonly key: string;
  /** Labels plus the namespace and name virtual labels. */
  readonly labels: Labels;
  readonly loadBalancerClass: string | undefined;
  readonly loadBalancerIPs: readonly string[];
  readonly externalIPs: readonly string[];
  /** externalTrafficPolicy: Local. */
  readonly localTraffic: boolean;
}

export interface ElectionInput {
  readonly policies: readonly L2Policy[];
  readonly services: readonly L2Service[];
  /** Per service key, the nodes with a ready endpoint of it. */
  readonly readyEndpointNodes: ReadonlyMap<string, ReadonlySet<string>>;
  /** The live nodes (lease not expired), this one included when it is live. */
  readonly nodes: readonly LiveNode[];
}

/** Why this node does or does not announce an IP (one name in status, CLI, logs and metrics). */
export type L2Reason =
  | 'announcing'
  | 'not_elected'
  | 'no_policy'
  | 'node_not_selected'
  | 'node_excluded'
  | 'node_not_live'
  | 'node_not_ready'
  | 'node_draining'
  | 'interface_not_found'
  | 'no_local_endpoints';

export interface IPAnnouncement {
  readonly ip: string;
  readonly services: readonly string[];
  /** The elected node, or null when no node is eligible. */
  readonly node: string | null;
  /** The interfaces the elected node answers on. */
  readonly interfaces: readonly string[];
  /** Why the node the plan was made for does or does not announce this IP. */
  readonly reason: L2Reason;
  /** How many nodes were eligible. */
  readonly eligible: number;
}

/** Nodes carrying this label never announce (the Kubernetes convention for load balancers). */
export const excludeLabel = 'node.kubernetes.io/exclude-from-external-load-balancers';

/** 32-bit FNV-1a of a string. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** A bijective 32-bit mixer with full avalanche (the MurmurHash3 finaliser constants). */
function mix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Rendezvous score of a node for an IP; the highest eligible score wins, ties go to the lower name. */
export const rendezvousScore = (nodeHash: number, ipHash: number): number => mix(nodeHash ^ mix(ipHash));

interface PreparedAddress {
  readonly ip: IP;
  /** The IPv4 value as a number: the subnet test runs once per node per IP, BigInt shifts are slow there. */
  readonly v4: number;
  readonly prefixLength: number;
}

/**
 * A node prepared once per live set: its hash, its up interfaces with parsed addresses, whether it
 * is out whatever the policy, and per-policy answers cached (policies are compared by identity).
 */
export interface PreparedNode {
  readonly name: string;
  readonly hash: number;
  readonly candidacy: NodeCandidacy;
  readonly up: readonly { readonly name: string; readonly addresses: readonly PreparedAddress[] }[];
  /** Per up interface, the list of just its name (shared: most IPs are announced on one interface). */
  readonly single: readonly (readonly string[])[];
  /** The up interfaces of the default route, per family. */
  readonly defaults: { readonly 4: readonly string[]; readonly 6: readonly string[] };
  /** Excluded, not ready or draining (in that order of report), judged after policy selection. */
  readonly blocked: L2Reason | undefined;
  readonly selectedBy: Map<L2Policy, boolean>;
  /** Interfaces matched by a policy's patterns (independent of the IP). */
  readonly byPattern: Map<L2Policy, string[]>;
}

const bitsOf = (family: 4 | 6): number => (family === 4 ? 32 : 128);

function prepareNode(name: string, candidacy: NodeCandidacy): PreparedNode {
  const c = candidacy;
  const up = c.interfaces
    .filter((i) => i.up)
    .map((i) => ({
      name: i.name,
      addresses: i.addresses.flatMap((a) => {
        const ip = parseIP(a.ip);
        // A prefix that is no integer in range matches nothing (a peer's bad candidacy must not throw here).
        const valid = ip && Number.isInteger(a.prefixLength) && a.prefixLength >= 0 && a.prefixLength <= bitsOf(ip.family);
        return valid ? [{ ip, v4: ip.family === 4 ? Number(ip.value) : 0, prefixLength: a.prefixLength }] : [];
      }),
    }));
  const onRoute = (names: readonly string[]) => up.filter((i) => names.includes(i.name)).map((i) => i.name);
  return {
    name,
    hash: fnv1a(name),
    candidacy,
    up,
    single: up.map((i) => [i.name]),
    defaults: { 4: onRoute(c.defaultRoute.ipv4), 6: onRoute(c.defaultRoute.ipv6) },
    blocked: c.labels[excludeLabel] !== undefined ? 'node_excluded' : !c.ready ? 'node_not_ready' : c.draining ? 'node_draining' : undefined,
    selectedBy: new Map(),
    byPattern: new Map(),
  };
}

/** The live nodes prepared for `electIP`; prepare again when the live set or the policies change. */
export const prepareNodes = (nodes: readonly LiveNode[]): PreparedNode[] => nodes.map((n) => prepareNode(n.name, n.candidacy));

/** One announced IP with everything its election reads. */
export interface IPEntry {
  readonly ip: IP;
  /** Canonical text. */
  readonly text: string;
  readonly v4: number;
  readonly services: readonly L2Service[];
  /** Their keys, sorted. */
  readonly serviceKeys: readonly string[];
  /** Distinct policies that select at least one of the services for this kind of address. */
  readonly policies: readonly L2Policy[];
}

export function ipEntry(ip: IP, services: readonly L2Service[], policies: readonly L2Policy[], text = formatIP(ip)): IPEntry {
  return { ip, text, v4: ip.family === 4 ? Number(ip.value) : 0, services, serviceKeys: services.map((s) => s.key).sort(), policies };
}

function inSubnet(entry: IPEntry, a: PreparedAddress): boolean {
  if (a.ip.family !== entry.ip.family) return false;
  // `>>> 32` shifts by 0 in JavaScript, so a /0 is decided apart.
  if (entry.ip.family === 4) return a.prefixLength === 0 || ((entry.v4 ^ a.v4) >>> (32 - a.prefixLength)) === 0;
  const shift = BigInt(128 - a.prefixLength);
  return entry.ip.value >> shift === a.ip.value >> shift;
}

function hasAddressIn(addresses: readonly PreparedAddress[], entry: IPEntry): boolean {
  for (const a of addresses) if (inSubnet(entry, a)) return true;
  return false;
}

// Runs once per node per IP in a full election: it allocates only when several interfaces match.
function interfacesFor(policy: L2Policy, node: PreparedNode, entry: IPEntry): readonly string[] {
  if (policy.interfaces.length > 0) {
    let names = node.byPattern.get(policy);
    if (!names) node.byPattern.set(policy, (names = node.up.filter((i) => policy.interfaces.some((p) => p.test(i.name))).map((i) => i.name)));
    return names;
  }
  let first = -1;
  let several: string[] | undefined;
  for (let k = 0; k < node.up.length; k++) {
    if (!hasAddressIn(node.up[k]!.addresses, entry)) continue;
    if (first < 0) first = k;
    else (several ??= [node.up[first]!.name]).push(node.up[k]!.name);
  }
  return several ?? (first >= 0 ? node.single[first]! : node.defaults[entry.ip.family]);
}

/**
 * The interfaces of a node that a policy announces an IP on: those whose names match the
 * policy's patterns; without patterns, those with an address in the IP's subnet, else the
 * interfaces of the default route of the IP's family. Only interfaces that are up count.
 */
export const selectInterfaces = (policy: L2Policy, node: NodeCandidacy, ip: IP): string[] => [...interfacesFor(policy, prepareNode('', node), ipEntry(ip, [], []))];

function selects(node: PreparedNode, policy: L2Policy): boolean {
  let selected = node.selectedBy.get(policy);
  if (selected === undefined) node.selectedBy.set(policy, (selected = selectorMatches(policy.nodeSelector, node.candidacy.labels)));
  return selected;
}

/** The interfaces a node may announce an IP on, or the reason it may not (the entry has a policy). */
function judge(node: PreparedNode, entry: IPEntry, readyEndpointNodes: ElectionInput['readyEndpointNodes']): readonly string[] | L2Reason {
  const selecting = entry.policies.length === 1 ? (selects(node, entry.policies[0]!) ? entry.policies : []) : entry.policies.filter((p) => selects(node, p));
  if (selecting.length === 0) return 'node_not_selected';
  if (node.blocked) return node.blocked;
  const interfaces = selecting.length === 1 ? interfacesFor(selecting[0]!, node, entry) : [...new Set(selecting.flatMap((p) => interfacesFor(p, node, entry)))].sort();
  if (interfaces.length === 0) return 'interface_not_found';
  // Traffic for a Local service must land on a node that has one of its endpoints.
  for (const svc of entry.services) {
    if (svc.localTraffic && !readyEndpointNodes.get(svc.key)?.has(node.name)) return 'no_local_endpoints';
  }
  return interfaces;
}

/** The election of one IP among the prepared live nodes, as seen from node `self`. */
export function electIP(entry: IPEntry, nodes: readonly PreparedNode[], readyEndpointNodes: ElectionInput['readyEndpointNodes'], self: string): IPAnnouncement {
  const ipHash = fnv1a(entry.text);
  let best: string | null = null;
  let bestScore = 0;
  let bestInterfaces: readonly string[] = [];
  let selfReason: L2Reason = 'node_not_live';
  let eligible = 0;
  if (entry.policies.length > 0) {
    for (const node of nodes) {
      const verdict = judge(node, entry, readyEndpointNodes);
      if (typeof verdict === 'string') {
        if (node.name === self) selfReason = verdict;
        continue;
      }
      eligible++;
      if (node.name === self) selfReason = 'not_elected';
      const score = rendezvousScore(node.hash, ipHash);
      if (best === null || score > bestScore || (score === bestScore && node.name < best)) {
        best = node.name;
        bestScore = score;
        bestInterfaces = verdict;
      }
    }
  } else selfReason = 'no_policy';
  if (best === self) selfReason = 'announcing';
  // The arrays are shared with the entry and the node (read only): a full election copies nothing.
  return { ip: entry.text, services: entry.serviceKeys, node: best, interfaces: bestInterfaces, reason: selfReason, eligible };
}

/** The load balancer IPs and external IPs of a service that the given policies announce. */
export function matchingPolicies(svc: L2Service, policies: readonly L2Policy[]): { loadBalancerIPs: L2Policy[]; externalIPs: L2Policy[] } {
  const matching = policies.filter((p) => selectorMatches(p.serviceSelector, svc.labels));
  return { loadBalancerIPs: matching.filter((p) => p.loadBalancerIPs), externalIPs: matching.filter((p) => p.externalIPs) };
}

/** Whether a service of this class is Beacon's to announce with L2 at all. */
export const announcedClass = (cls: string | undefined): boolean => cls === undefined || cls === serviceClasses.l2;

/** Every announced IP with its services and the policies that announce it. */
function collectIPs(input: ElectionInput): IPEntry[] {
  const byIP = new Map<string, { ip: IP; services: L2Service[]; policies: Set<L2Policy> }>();
  const add = (text: string, svc: L2Service, policies: readonly L2Policy[]) => {
    const ip = parseIP(text);
    if (!ip) return; // an unparsable externalIP: LB-IPAM and the API server report those
    const key = formatIP(ip);
    let entry = byIP.get(key);
    if (!entry) byIP.set(key, (entry = { ip, services: [], policies: new Set() }));
    if (!entry.services.includes(svc)) entry.services.push(svc);
    for (const p of policies) entry.policies.add(p);
  };
  for (const svc of input.services) {
    if (!announcedClass(svc.loadBalancerClass)) continue;
    const matching = matchingPolicies(svc, input.policies);
    for (const ip of svc.loadBalancerIPs) add(ip, svc, matching.loadBalancerIPs);
    for (const ip of svc.externalIPs) add(ip, svc, matching.externalIPs);
  }
  return [...byIP.values()].map((e) => ipEntry(e.ip, e.services, [...e.policies]));
}

/**
 * The announcement of every IP, as seen from node `self`: who announces it, on which interfaces,
 * and why `self` does or does not. Pure: every node given the same input elects the same nodes.
 */
export function electAnnouncers(input: ElectionInput, self: string): IPAnnouncement[] {
  const nodes = prepareNodes(input.nodes);
  return collectIPs(input)
    .sort((a, b) => compareIP(a.ip, b.ip))
    .map((entry) => electIP(entry, nodes, input.readyEndpointNodes, self));
}
