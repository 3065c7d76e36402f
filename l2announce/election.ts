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

const announcedClass = (cls: string | undefined): boolean => cls === undefined || cls === serviceClasses.l2;

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

/** A node's candidacy with its addresses parsed once per election, and per-policy answers cached. */
interface PreparedNode {
  readonly name: string;
  readonly hash: number;
  readonly candidacy: NodeCandidacy;
  readonly up: readonly { readonly name: string; readonly addresses: readonly { readonly ip: IP; readonly prefixLength: number }[] }[];
  readonly selectedBy: Map<L2Policy, boolean>;
  /** Interfaces matched by a policy's patterns (independent of the IP). */
  readonly byPattern: Map<L2Policy, string[]>;
}

function prepare(node: LiveNode | NodeCandidacy, name = ''): PreparedNode {
  const candidacy = 'candidacy' in node ? node.candidacy : node;
  const nodeName = 'candidacy' in node ? node.name : name;
  return {
    name: nodeName,
    hash: fnv1a(nodeName),
    candidacy,
    up: candidacy.interfaces
      .filter((i) => i.up)
      .map((i) => ({ name: i.name, addresses: i.addresses.flatMap((a) => { const ip = parseIP(a.ip); return ip ? [{ ip, prefixLength: a.prefixLength }] : []; }) })),
    selectedBy: new Map(),
    byPattern: new Map(),
  };
}

function inSubnet(ip: IP, a: { ip: IP; prefixLength: number }): boolean {
  if (a.ip.family !== ip.family) return false;
  const bits = ip.family === 4 ? 32 : 128;
  if (!(a.prefixLength >= 0 && a.prefixLength <= bits)) return false;
  const shift = BigInt(bits - a.prefixLength);
  return ip.value >> shift === a.ip.value >> shift;
}

function interfacesFor(policy: L2Policy, node: PreparedNode, ip: IP): string[] {
  if (policy.interfaces.length > 0) {
    let names = node.byPattern.get(policy);
    if (!names) node.byPattern.set(policy, (names = node.up.filter((i) => policy.interfaces.some((p) => p.test(i.name))).map((i) => i.name)));
    return names;
  }
  const local = node.up.filter((i) => i.addresses.some((a) => inSubnet(ip, a))).map((i) => i.name);
  if (local.length > 0) return local;
  const defaults = ip.family === 4 ? node.candidacy.defaultRoute.ipv4 : node.candidacy.defaultRoute.ipv6;
  return node.up.filter((i) => defaults.includes(i.name)).map((i) => i.name);
}

/**
 * The interfaces of a node that a policy announces an IP on: those whose names match the
 * policy's patterns; without patterns, those with an address in the IP's subnet, else the
 * interfaces of the default route of the IP's family. Only interfaces that are up count.
 */
export const selectInterfaces = (policy: L2Policy, node: NodeCandidacy, ip: IP): string[] => interfacesFor(policy, prepare(node), ip);

interface IPEntry {
  readonly ip: IP;
  readonly services: L2Service[];
  /** Policies that select at least one of the services for this kind of address. */
  readonly policies: Set<L2Policy>;
}

/** Every announced IP with its services and the policies that announce it. */
function collectIPs(input: ElectionInput): Map<string, IPEntry> {
  const byIP = new Map<string, IPEntry>();
  const add = (text: string, svc: L2Service, policies: L2Policy[]) => {
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
    const matching = input.policies.filter((p) => selectorMatches(p.serviceSelector, svc.labels));
    const lb = matching.filter((p) => p.loadBalancerIPs);
    const ext = matching.filter((p) => p.externalIPs);
    for (const ip of svc.loadBalancerIPs) add(ip, svc, lb);
    for (const ip of svc.externalIPs) add(ip, svc, ext);
  }
  return byIP;
}

/** Whether a node may announce an IP, and on which interfaces; else the reason it may not. */
function judge(node: PreparedNode, entry: IPEntry, input: ElectionInput): { interfaces: string[] } | { reason: L2Reason } {
  const c = node.candidacy;
  if (entry.policies.size === 0) return { reason: 'no_policy' };
  const selecting = [...entry.policies].filter((p) => {
    let selected = node.selectedBy.get(p);
    if (selected === undefined) node.selectedBy.set(p, (selected = selectorMatches(p.nodeSelector, c.labels)));
    return selected;
  });
  if (selecting.length === 0) return { reason: 'node_not_selected' };
  if (c.labels[excludeLabel] !== undefined) return { reason: 'node_excluded' };
  if (!c.ready) return { reason: 'node_not_ready' };
  if (c.draining) return { reason: 'node_draining' };
  const interfaces = selecting.length === 1 ? interfacesFor(selecting[0]!, node, entry.ip) : [...new Set(selecting.flatMap((p) => interfacesFor(p, node, entry.ip)))].sort();
  if (interfaces.length === 0) return { reason: 'interface_not_found' };
  // Traffic for a Local service must land on a node that has one of its endpoints.
  for (const svc of entry.services) {
    if (svc.localTraffic && !input.readyEndpointNodes.get(svc.key)?.has(node.name)) return { reason: 'no_local_endpoints' };
  }
  return { interfaces };
}

/**
 * The announcement of every IP, as seen from node `self`: who announces it, on which interfaces,
 * and why `self` does or does not. Pure: every node given the same input elects the same nodes.
 */
export function electAnnouncers(input: ElectionInput, self: string): IPAnnouncement[] {
  const nodes = input.nodes.map((n) => prepare(n));
  const out: { ip: IP; announcement: IPAnnouncement }[] = [];
  for (const [text, entry] of collectIPs(input)) {
    const ipHash = fnv1a(text);
    let best: { node: string; score: number; interfaces: string[] } | undefined;
    let selfReason: L2Reason = 'node_not_live';
    let eligible = 0;
    for (const node of nodes) {
      const verdict = judge(node, entry, input);
      if ('reason' in verdict) {
        if (node.name === self) selfReason = verdict.reason;
        continue;
      }
      eligible++;
      if (node.name === self) selfReason = 'not_elected';
      const score = rendezvousScore(node.hash, ipHash);
      if (!best || score > best.score || (score === best.score && node.name < best.node)) best = { node: node.name, score, interfaces: verdict.interfaces };
    }
    if (entry.policies.size === 0) selfReason = 'no_policy';
    if (best?.node === self) selfReason = 'announcing';
    out.push({
      ip: entry.ip,
      announcement: {
        ip: text,
        services: entry.services.map((s) => s.key).sort(),
        node: best?.node ?? null,
        interfaces: best?.interfaces ?? [],
        reason: selfReason,
        eligible,
      },
    });
  }
  return out.sort((a, b) => compareIP(a.ip, b.ip)).map((e) => e.announcement);
}

