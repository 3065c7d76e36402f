// The BGP policy: from the BGP resources, Services and EndpointSlices to this node's sessions and
// the routes each peer gets. Pure: no I/O besides the injected `readSecret`, no clock. Bad config
// never throws; it becomes a problem on the object (a status condition) and only the broken part
// is left out. Every (peer, service address) pair gets a reason, so "why is this IP not advertised
// to that router?" has an answer.
import {
  bgpAdvertisementKind,
  bgpClusterConfigKind,
  bgpConditionType,
  bgpNodeConfigOverrideKind,
  bgpPeerConfigKind,
  checkLargeCommunity,
  checkStandardCommunity,
  checkWellKnownCommunity,
  compareIP,
  endpointReady,
  formatIP,
  parseIP,
  parseSelector,
  selectorMatches,
  serviceClasses,
  serviceNameLabel,
  serviceNamespaceLabel,
  sliceService,
  type BGPAdvertisement,
  type BGPClusterConfig,
  type BGPNodeConfigOverride,
  type BGPPeerConfig,
  type Condition,
  type EndpointSlice,
  type IP,
  type Labels,
  type RawLabelSelector,
  type Selector,
  type Service,
  type ServiceAddressType,
} from '../api/index.js';
import type { Family, PeerConfig, Route } from './speaker.js';

// --- Input ------------------------------------------------------------------------------------

/** A Service with the fields Beacon's Service schema leaves to Kubernetes but BGP reads. */
export type BGPService = Service & {
  spec: { clusterIP?: string | undefined; clusterIPs?: string[] | undefined; internalTrafficPolicy?: 'Cluster' | 'Local' | undefined };
};

export interface BGPPolicyInput {
  readonly node: { readonly name: string; readonly labels: Labels; readonly addresses: readonly string[] };
  readonly clusterConfigs: readonly BGPClusterConfig[];
  readonly peerConfigs: readonly BGPPeerConfig[];
  readonly advertisements: readonly BGPAdvertisement[];
  readonly nodeOverrides: readonly BGPNodeConfigOverride[];
  readonly services: readonly BGPService[];
  readonly endpointSlices: readonly Pick<EndpointSlice, 'metadata' | 'endpoints'>[];
  /** The password an authSecretRef names (a Secret's `password` key, or a file), or why it cannot be read. */
  readonly readSecret: (ref: string) => string | Error;
}

// --- Decisions as data ------------------------------------------------------------------------

export const problemReasons = [
  'InvalidSelector',
  'InvalidAddress',
  'AddressFamilyMismatch',
  'DuplicateInstanceName',
  'DuplicatePeerName',
  'DuplicatePeerAddress',
  'DuplicateFamily',
  'MissingPeerConfig',
  'InvalidPeerConfigRef',
  'PeerConfigInvalid',
  'InvalidTimers',
  'MissingAuthSecret',
  'InvalidAuthSecret',
  'InvalidCommunity',
  'MissingServiceAddresses',
  'ConflictingClusterConfigs',
  'NoRouterID',
  'InvalidRouterID',
  'UnknownInstance',
  'UnknownPeer',
  'NoNextHop',
] as const;
export type ProblemReason = (typeof problemReasons)[number];

export interface ConfigProblem {
  readonly kind: string;
  readonly name: string;
  readonly reason: ProblemReason;
  readonly message: string;
  /** True when the problem comes from this node (its addresses, its override, its selection), not from the object alone. */
  readonly nodeSpecific: boolean;
}

export const routeReasons = [
  'advertised',
  'other_class',
  'no_address',
  'invalid_address',
  'family_not_enabled',
  'not_selected',
  'address_type_not_selected',
  'no_local_endpoint',
] as const;
export type RouteReason = (typeof routeReasons)[number];

/** Why one service address is or is not advertised to one peer. */
export interface RouteExplanation {
  readonly peer: string;
  /** `namespace/name`. */
  readonly service: string;
  /** Undefined when the decision covers the whole service (other_class, no_address). */
  readonly addressType?: ServiceAddressType | undefined;
  readonly address?: string | undefined;
  readonly advertised: boolean;
  readonly reason: RouteReason;
  readonly message: string;
}

export interface InstancePlan {
  readonly clusterConfig: string;
  readonly name: string;
  readonly localASN: number;
  readonly routerId: string;
  /** Port to accept sessions on; absent: connect out only. */
  readonly localPort?: number;
}

export interface BGPPolicyResult {
  /** The BGP instances this node runs (of the one BGPClusterConfig that selects it). */
  readonly instances: InstancePlan[];
  /** One session per instance × peer, named "instance/peer". */
  readonly peers: PeerConfig[];
  /** Desired Adj-RIB-Out of every peer in `peers` (possibly empty), sorted by prefix. */
  readonly routes: Map<string, Route[]>;
  /** `Kind/name` of every input BGP object to its conditions (one beacon.io/ConfigValid). */
  readonly conditions: Map<string, Condition[]>;
  readonly problems: ConfigProblem[];
  readonly explanations: RouteExplanation[];
}

// --- Parsing (node-independent) ---------------------------------------------------------------

type AddProblem = (reason: ProblemReason, message: string, nodeSpecific?: boolean) => void;

const familyName = { 4: 'ipv4-unicast', 6: 'ipv6-unicast' } as const satisfies Record<4 | 6, Family>;
const afiFamily = { ipv4: 4, ipv6: 6 } as const;

/** An absent selector selects nothing (as in Cilium); `{}` selects everything. */
function optionalSelector(raw: RawLabelSelector | undefined, where: string, problem: AddProblem): Selector | undefined {
  if (raw === undefined) return undefined;
  const parsed = parseSelector(raw);
  if (parsed.ok) return parsed.value;
  problem('InvalidSelector', `${where}: ${parsed.error}; it selects nothing until fixed`);
  return undefined;
}

interface SessionSettings {
  readonly peerPort: number;
  readonly sourceAddress: IP | undefined;
  readonly holdTimeSeconds?: number;
  readonly keepAliveTimeSeconds?: number;
  readonly connectRetryTimeSeconds?: number;
  readonly password?: string;
  readonly ebgpMultihop?: number;
  readonly gracefulRestart?: { enabled: boolean; restartTimeSeconds?: number };
  /** Families with the advertisements selector of each (undefined: none selected). */
  readonly families: ReadonlyMap<4 | 6, Selector | undefined>;
}

const defaultSettings: SessionSettings = { peerPort: 179, sourceAddress: undefined, families: new Map([[4, undefined], [6, undefined]]) };

// Linux TCP_MD5SIG_MAXKEYLEN (include/uapi/linux/tcp.h).
const md5MaxKeyBytes = 80;

function parsePeerConfig(pc: BGPPeerConfig, readSecret: BGPPolicyInput['readSecret'], problem: AddProblem): SessionSettings | undefined {
  const { spec } = pc;
  let usable = true;
  const source = spec.transport?.sourceAddress;
  const sourceAddress = source === undefined ? undefined : parseIP(source);
  if (source !== undefined && !sourceAddress) {
    problem('InvalidAddress', `transport.sourceAddress "${source}" is not an IP address`);
    usable = false;
  }

  // RFC 4271 4.2: a hold time is zero or at least three seconds; keepalives come well inside it
  // (section 10 suggests a third), so an explicit hold time without keepalive gets a third of it.
  const t = spec.timers ?? {};
  const keepAlive = t.keepAliveTimeSeconds ?? (t.holdTimeSeconds !== undefined ? Math.max(1, Math.floor(t.holdTimeSeconds / 3)) : undefined);
  const hold = t.holdTimeSeconds ?? 90;
  if (hold === 1 || hold === 2) {
    problem('InvalidTimers', `timers.holdTimeSeconds ${hold} must be 0 or at least 3 (RFC 4271 4.2)`);
    usable = false;
  } else if (hold !== 0 && keepAlive !== undefined && keepAlive > hold) {
    problem('InvalidTimers', `timers.keepAliveTimeSeconds ${keepAlive} exceeds holdTimeSeconds ${hold}`);
    usable = false;
  }

  let password: string | undefined;
  if (spec.authSecretRef !== undefined) {
    const secret = readSecret(spec.authSecretRef);
    // A file written with `echo` ends in a newline that is never meant as part of the key.
    const text = secret instanceof Error ? secret : secret.replace(/\r?\n$/, '');
    if (text instanceof Error) {
      problem('MissingAuthSecret', `authSecretRef "${spec.authSecretRef}": ${text.message}; sessions using this config are not started without their password`);
      usable = false;
    } else if (text === '' || Buffer.byteLength(text) > md5MaxKeyBytes) {
      problem('InvalidAuthSecret', `authSecretRef "${spec.authSecretRef}": the password must be 1-${md5MaxKeyBytes} bytes (TCP MD5 key limit)`);
      usable = false;
    } else password = text;
  }

  const families = new Map<4 | 6, Selector | undefined>();
  for (const [i, f] of (spec.families ?? []).entries()) {
    const family = afiFamily[f.afi];
    if (families.has(family)) {
      problem('DuplicateFamily', `families[${i}]: ${f.afi}/${f.safi} is listed twice; the first entry is used`);
      continue;
    }
    families.set(family, optionalSelector(f.advertisements, `families[${i}].advertisements`, problem));
  }
  if (!usable) return undefined;
  return {
    peerPort: spec.transport?.peerPort ?? 179,
    sourceAddress,
    ...(t.holdTimeSeconds === undefined ? {} : { holdTimeSeconds: t.holdTimeSeconds }),
    ...(keepAlive === undefined ? {} : { keepAliveTimeSeconds: keepAlive }),
    ...(t.connectRetryTimeSeconds === undefined ? {} : { connectRetryTimeSeconds: t.connectRetryTimeSeconds }),
    ...(password === undefined ? {} : { password }),
    ...(spec.ebgpMultihop === undefined ? {} : { ebgpMultihop: spec.ebgpMultihop }),
    ...(spec.gracefulRestart ? { gracefulRestart: { ...spec.gracefulRestart } } : {}),
    families: families.size > 0 ? families : defaultSettings.families,
  };
}

/** One usable entry of a BGPAdvertisement, with its attributes already validated. */
interface AdvertisementEntry {
  /** `name[i]`, for explanations. */
  readonly source: string;
  readonly selector: Selector | undefined;
  readonly addresses: ReadonlySet<ServiceAddressType>;
  readonly communities: readonly string[];
  readonly largeCommunities: readonly string[];
  readonly localPreference: number | undefined;
  /** Which services (by index) the selector matches; filled on first use. */
  matches?: boolean[];
}

function parseAdvertisement(ad: BGPAdvertisement, problem: AddProblem): AdvertisementEntry[] {
  const entries: AdvertisementEntry[] = [];
  for (const [i, a] of ad.spec.advertisements.entries()) {
    const where = `advertisements[${i}]`;
    let usable = true;
    // An entry whose attributes are wrong is left out whole: advertising a route without its
    // intended no-export community could leak it further than meant.
    const check = (list: readonly string[] | undefined, parse: (s: string) => { ok: true; value: string } | { ok: false; error: string }, field: string) =>
      (list ?? []).flatMap((text, j) => {
        const r = parse(text);
        if (r.ok) return [r.value];
        problem('InvalidCommunity', `${where}.attributes.communities.${field}[${j}]: ${r.error}`);
        usable = false;
        return [];
      });
    const c = a.attributes?.communities;
    const communities = [...check(c?.standard, checkStandardCommunity, 'standard'), ...check(c?.wellKnown, checkWellKnownCommunity, 'wellKnown')];
    const largeCommunities = check(c?.large, checkLargeCommunity, 'large');
    if (!a.service) {
      problem('MissingServiceAddresses', `${where}: advertisementType Service needs service.addresses (LoadBalancerIP, ExternalIP, ClusterIP)`);
      usable = false;
    }
    let selector: Selector | undefined;
    if (a.selector !== undefined) {
      const parsed = parseSelector(a.selector);
      if (parsed.ok) selector = parsed.value;
      else {
        problem('InvalidSelector', `${where}.selector: ${parsed.error}`);
        usable = false;
      }
    }
    if (!usable) continue;
    entries.push({
      source: `${ad.metadata.name}[${i}]`,
      selector,
      addresses: new Set(a.service?.addresses),
      communities,
      largeCommunities,
      localPreference: a.attributes?.localPreference,
    });
  }
  return entries;
}

interface ParsedPeer {
  readonly name: string;
  readonly address: IP;
  readonly peerASN: number;
  readonly settings: SessionSettings;
}

interface ParsedInstance {
  readonly name: string;
  readonly localASN: number;
  readonly localPort: number | undefined;
  readonly peers: readonly ParsedPeer[];
}

const acceptedRefKinds = new Set(['BGPPeerConfig', 'CiliumBGPPeerConfig']);
const acceptedRefGroups = new Set(['beacon.io', 'cilium.io']);

function parseClusterConfig(
  cc: BGPClusterConfig,
  peerConfigs: ReadonlyMap<string, SessionSettings | undefined>,
  problem: AddProblem,
): { nodeSelector: Selector | undefined; instances: ParsedInstance[] } {
  // An absent nodeSelector selects every node; a broken one selects none.
  const sel = parseSelector(cc.spec.nodeSelector);
  if (!sel.ok) problem('InvalidSelector', `nodeSelector: ${sel.error}; the config applies to no node until fixed`);
  const instances: ParsedInstance[] = [];
  const sessions = new Map<string, string>(); // address:port -> instance/peer
  for (const [i, inst] of cc.spec.bgpInstances.entries()) {
    if (instances.some((x) => x.name === inst.name)) {
      problem('DuplicateInstanceName', `bgpInstances[${i}]: instance name "${inst.name}" is used twice; the first is used`);
      continue;
    }
    const peers: ParsedPeer[] = [];
    for (const [j, p] of (inst.peers ?? []).entries()) {
      const where = `bgpInstances[${i}].peers[${j}] "${p.name}"`;
      if ((inst.peers ?? []).slice(0, j).some((x) => x.name === p.name)) {
        problem('DuplicatePeerName', `${where}: peer name is used twice in instance "${inst.name}"; the first is used`);
        continue;
      }
      const address = parseIP(p.peerAddress);
      if (!address) {
        problem('InvalidAddress', `${where}: peerAddress "${p.peerAddress}" is not an IP address`);
        continue;
      }
      let settings: SessionSettings | undefined = defaultSettings;
      const ref = p.peerConfigRef;
      if (ref) {
        if ((ref.kind !== undefined && !acceptedRefKinds.has(ref.kind)) || (ref.group !== undefined && !acceptedRefGroups.has(ref.group))) {
          problem('InvalidPeerConfigRef', `${where}: peerConfigRef must name a beacon.io BGPPeerConfig, not ${ref.group ?? 'beacon.io'}/${ref.kind ?? 'BGPPeerConfig'}`);
          continue;
        }
        if (!peerConfigs.has(ref.name)) {
          problem('MissingPeerConfig', `${where}: BGPPeerConfig "${ref.name}" does not exist; the session is not started`);
          continue;
        }
        settings = peerConfigs.get(ref.name);
        if (!settings) {
          problem('PeerConfigInvalid', `${where}: BGPPeerConfig "${ref.name}" is invalid (see its status); the session is not started`);
          continue;
        }
      }
      const sessionKey = `${formatIP(address)}:${settings.peerPort}`;
      const other = sessions.get(sessionKey);
      if (other !== undefined) {
        problem('DuplicatePeerAddress', `${where}: ${sessionKey} is already peer ${other}; one node cannot hold two sessions to the same address and port`);
        continue;
      }
      sessions.set(sessionKey, `${inst.name}/${p.name}`);
      peers.push({ name: p.name, address, peerASN: p.peerASN, settings });
    }
    instances.push({ name: inst.name, localASN: inst.localASN, localPort: inst.localPort, peers });
  }
  return { nodeSelector: sel.ok ? sel.value : undefined, instances };
}

// --- Services ---------------------------------------------------------------------------------

interface ServiceAddress {
  readonly type: ServiceAddressType;
  readonly text: string;
  readonly ip: IP | undefined;
  /** The host route of `ip`: /32 or /128. */
  readonly prefix: string;
}

interface ServiceView {
  readonly key: string;
  readonly labels: Labels;
  /** Set when another controller's load balancer class owns the service. */
  readonly otherClass: string | undefined;
  readonly addresses: readonly ServiceAddress[];
  /** Whether the traffic policy for external (LoadBalancerIP, ExternalIP) / ClusterIP addresses is Local. */
  readonly externalLocal: boolean;
  readonly internalLocal: boolean;
  readonly hasLocalEndpoint: boolean;
}

function serviceViews(services: readonly BGPService[], slices: BGPPolicyInput['endpointSlices'], nodeName: string): ServiceView[] {
  const local = new Set<string>();
  for (const slice of slices) {
    const key = sliceService(slice);
    if (key !== undefined && (slice.endpoints ?? []).some((e) => e.nodeName === nodeName && endpointReady(e))) local.add(key);
  }
  return services.map((svc) => {
    const namespace = svc.metadata.namespace ?? 'default';
    const key = `${namespace}/${svc.metadata.name}`;
    const cls = svc.spec.loadBalancerClass;
    const addresses: ServiceAddress[] = [];
    const add = (type: ServiceAddressType, text: string | undefined) => {
      if (text === undefined || text === '' || text === 'None') return; // headless services have no cluster IP
      if (addresses.some((a) => a.type === type && a.text === text)) return;
      const ip = parseIP(text);
      addresses.push({ type, text, ip, prefix: ip ? `${formatIP(ip)}/${ip.family === 4 ? 32 : 128}` : '' });
    };
    for (const ingress of svc.status?.loadBalancer?.ingress ?? []) add('LoadBalancerIP', ingress.ip);
    for (const ip of svc.spec.externalIPs ?? []) add('ExternalIP', ip);
    for (const ip of [svc.spec.clusterIP, ...(svc.spec.clusterIPs ?? [])]) add('ClusterIP', ip);
    return {
      key,
      labels: { ...svc.metadata.labels, [serviceNamespaceLabel]: namespace, [serviceNameLabel]: svc.metadata.name },
      otherClass: cls !== undefined && cls !== serviceClasses.bgp ? cls : undefined,
      addresses,
      externalLocal: svc.spec.externalTrafficPolicy === 'Local',
      internalLocal: svc.spec.internalTrafficPolicy === 'Local',
      hasLocalEndpoint: local.has(key),
    };
  });
}

// --- The policy -------------------------------------------------------------------------------

const byAgeThenName = (a: { metadata: { name: string; creationTimestamp?: string | undefined } }, b: typeof a): number => {
  const ta = a.metadata.creationTimestamp ?? '\uffff';
  const tb = b.metadata.creationTimestamp ?? '\uffff';
  return ta !== tb ? (ta < tb ? -1 : 1) : a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
};

const communityOrder = (a: string, b: string): number => {
  const x = a.split(':').map(Number);
  const y = b.split(':').map(Number);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return 0;
};

type ProblemsOf = (kind: string, name: string) => AddProblem;
type ParsedClusterConfig = ReturnType<typeof parseClusterConfig> & { name: string };
type Node = BGPPolicyInput['node'];

/** This node's BGP sessions, the routes each peer gets, and why, from the cluster's BGP objects. */
export function planBGP(input: BGPPolicyInput): BGPPolicyResult {
  const problems: ConfigProblem[] = [];
  const problemsOf: ProblemsOf = (kind, name) => (reason, message, nodeSpecific = false) => problems.push({ kind, name, reason, message, nodeSpecific });

  const peerConfigs = new Map(
    input.peerConfigs.map((pc) => [pc.metadata.name, parsePeerConfig(pc, input.readSecret, problemsOf(bgpPeerConfigKind, pc.metadata.name))]),
  );
  const advertisements = input.advertisements.map((ad) => ({
    labels: ad.metadata.labels ?? {},
    entries: parseAdvertisement(ad, problemsOf(bgpAdvertisementKind, ad.metadata.name)),
  }));
  const clusterConfigs = [...input.clusterConfigs].sort(byAgeThenName).map((cc) => ({
    name: cc.metadata.name,
    ...parseClusterConfig(cc, peerConfigs, problemsOf(bgpClusterConfigKind, cc.metadata.name)),
  }));

  const chosen = chooseClusterConfig(clusterConfigs, input.node, problemsOf);
  const override = input.nodeOverrides.find((o) => o.metadata.name === input.node.name);
  const { instances, peers, sessions } = chosen ? planSessions(chosen, override, input.node, problemsOf) : { instances: [], peers: [], sessions: [] };

  const services = serviceViews(input.services, input.endpointSlices, input.node.name);
  const routes = new Map<string, Route[]>();
  const explanations: RouteExplanation[] = [];
  for (const session of sessions) {
    // The advertisement entries each family of this session selects.
    const entriesOf = new Map<4 | 6, AdvertisementEntry[]>();
    for (const [family, selector] of session.families) {
      entriesOf.set(family, selector === undefined ? [] : advertisements.filter((ad) => selectorMatches(selector, ad.labels)).flatMap((ad) => ad.entries));
    }
    routes.set(session.peer, planRoutes(session.peer, entriesOf, services, input.node.name, explanations));
  }
  return { instances, peers, routes, conditions: conditionsOf(input, problems), problems, explanations };
}

/** A node takes its instances from one config only (as Cilium does): the oldest that selects it. */
function chooseClusterConfig(configs: readonly ParsedClusterConfig[], node: Node, problemsOf: ProblemsOf): ParsedClusterConfig | undefined {
  const selecting = configs.filter((cc) => cc.nodeSelector !== undefined && selectorMatches(cc.nodeSelector, node.labels));
  const [chosen, ...others] = selecting;
  for (const cc of others) {
    problemsOf(bgpClusterConfigKind, cc.name)(
      'ConflictingClusterConfigs',
      `node ${node.name} is also selected by the older BGPClusterConfig "${chosen!.name}", which it uses; this config is ignored there`,
      true,
    );
  }
  return chosen;
}

/** The instances and sessions of the chosen config on this node, with its override applied. */
function planSessions(chosen: ParsedClusterConfig, override: BGPNodeConfigOverride | undefined, node: Node, problemsOf: ProblemsOf) {
  const ccProblem = problemsOf(bgpClusterConfigKind, chosen.name);
  const overrideProblem = problemsOf(bgpNodeConfigOverrideKind, node.name);
  for (const o of override?.spec.bgpInstances ?? []) {
    const inst = chosen.instances.find((i) => i.name === o.name);
    if (!inst) {
      overrideProblem('UnknownInstance', `instance "${o.name}" is not in BGPClusterConfig "${chosen.name}"`, true);
      continue;
    }
    for (const p of o.peers ?? []) {
      if (!inst.peers.some((x) => x.name === p.name)) {
        overrideProblem('UnknownPeer', `peer "${p.name}" is not a usable peer of instance "${o.name}" in BGPClusterConfig "${chosen.name}"`, true);
      }
    }
  }

  const nodeIPs = node.addresses.map(parseIP).filter((ip): ip is IP => ip !== undefined);
  const instances: InstancePlan[] = [];
  const peers: PeerConfig[] = [];
  const sessions: { peer: string; families: ReadonlyMap<4 | 6, Selector | undefined> }[] = [];
  for (const inst of chosen.instances) {
    const o = override?.spec.bgpInstances.find((x) => x.name === inst.name);
    let routerId: string;
    if (o?.routerID !== undefined) {
      // RFC 6286 section 2.1: a non-zero 32-bit value, written as an IPv4 address.
      const id = parseIP(o.routerID);
      if (!id || id.family !== 4 || id.value === 0n) {
        overrideProblem('InvalidRouterID', `instance "${inst.name}": routerID "${o.routerID}" must be a non-zero dotted IPv4 address; the instance does not run`, true);
        continue;
      }
      routerId = formatIP(id);
    } else {
      const v4 = nodeIPs.find((ip) => ip.family === 4);
      if (!v4) {
        ccProblem('NoRouterID', `instance "${inst.name}": node ${node.name} has no IPv4 address for the router ID; set routerID in a BGPNodeConfigOverride named ${node.name}`, true);
        continue;
      }
      routerId = formatIP(v4);
    }
    const localASN = o?.localASN ?? inst.localASN;
    const localPort = o?.localPort ?? inst.localPort;
    instances.push({ clusterConfig: chosen.name, name: inst.name, localASN, routerId, ...(localPort === undefined ? {} : { localPort }) });

    for (const p of inst.peers) {
      const name = `${inst.name}/${p.name}`;
      const s = p.settings;
      const localText = o?.peers?.find((x) => x.name === p.name)?.localAddress;
      const local = localText === undefined ? s.sourceAddress : parseIP(localText);
      if (localText !== undefined && !local) {
        overrideProblem('InvalidAddress', `instance "${inst.name}" peer "${p.name}": localAddress "${localText}" is not an IP address; the session is not started`, true);
        continue;
      }
      if (local && local.family !== p.address.family) {
        (localText === undefined ? ccProblem : overrideProblem)(
          'AddressFamilyMismatch',
          `peer ${name}: local address ${formatIP(local)} and peer address ${formatIP(p.address)} are of different families; the session is not started`,
          true,
        );
        continue;
      }
      // Routes of the session's own family take the session's local address as next hop; the
      // other family needs an address of its own (RFC 4760 section 3: next hop of the NLRI's family).
      const families = new Map(s.families);
      const nextHop: { ipv4?: string; ipv6?: string } = {};
      for (const family of s.families.keys()) {
        if (family === p.address.family) continue;
        const ip = nodeIPs.find((x) => x.family === family);
        if (ip) nextHop[family === 4 ? 'ipv4' : 'ipv6'] = formatIP(ip);
        else {
          families.delete(family);
          // Families left at their default are quietly narrowed to what the node can serve.
          if (s.families !== defaultSettings.families) {
            ccProblem('NoNextHop', `peer ${name}: node ${node.name} has no IPv${family} address to use as next hop over an IPv${p.address.family} session; ${familyName[family]} is not negotiated`, true);
          }
        }
      }
      peers.push({
        name,
        peerAddress: formatIP(p.address),
        peerASN: p.peerASN,
        ...(s.peerPort === 179 ? {} : { peerPort: s.peerPort }),
        localASN,
        ...(local ? { localAddress: formatIP(local) } : {}),
        routerId,
        ...(s.holdTimeSeconds === undefined ? {} : { holdTimeSeconds: s.holdTimeSeconds }),
        ...(s.keepAliveTimeSeconds === undefined ? {} : { keepAliveTimeSeconds: s.keepAliveTimeSeconds }),
        ...(s.connectRetryTimeSeconds === undefined ? {} : { connectRetryTimeSeconds: s.connectRetryTimeSeconds }),
        ...(s.password === undefined ? {} : { password: s.password }),
        ...(s.ebgpMultihop === undefined ? {} : { ebgpMultihop: s.ebgpMultihop }),
        ...(s.gracefulRestart ? { gracefulRestart: { ...s.gracefulRestart } } : {}),
        families: [...families.keys()].sort().map((f) => familyName[f]),
        ...(Object.keys(nextHop).length > 0 ? { nextHop } : {}),
      });
      sessions.push({ peer: name, families });
    }
  }
  return { instances, peers, sessions };
}

/** One session's routes, sorted by prefix, explaining every service address on the way. */
function planRoutes(
  peer: string,
  entriesOf: ReadonlyMap<4 | 6, readonly AdvertisementEntry[]>,
  services: readonly ServiceView[],
  nodeName: string,
  explanations: RouteExplanation[],
): Route[] {
  const matches = (entry: AdvertisementEntry, i: number): boolean => {
    entry.matches ??= services.map((svc) => entry.selector !== undefined && selectorMatches(entry.selector, svc.labels));
    return entry.matches[i]!;
  };
  const merged = new Map<string, { ip: IP; communities: Set<string>; large: Set<string>; localPreference: number | undefined }>();
  const explain = (svc: ServiceView, reason: RouteReason, message: string, address?: ServiceAddress) =>
    explanations.push({ peer, service: svc.key, addressType: address?.type, address: address?.text, advertised: reason === 'advertised', reason, message });
  for (const [i, svc] of services.entries()) {
    if (svc.otherClass !== undefined) {
      explain(svc, 'other_class', `loadBalancerClass ${svc.otherClass} belongs to another controller`);
      continue;
    }
    if (svc.addresses.length === 0) explain(svc, 'no_address', 'the service has no load balancer, external or cluster IP yet');
    // The entries selecting this service, per family: computed once for all its addresses.
    const selectedOf = new Map<4 | 6, AdvertisementEntry[]>();
    for (const a of svc.addresses) {
      if (!a.ip) {
        explain(svc, 'invalid_address', `"${a.text}" is not an IP address`, a);
        continue;
      }
      const family = a.ip.family;
      const entries = entriesOf.get(family);
      if (!entries) {
        explain(svc, 'family_not_enabled', `the session does not carry ${familyName[family]}`, a);
        continue;
      }
      let selected = selectedOf.get(family);
      if (!selected) selectedOf.set(family, (selected = entries.filter((e) => matches(e, i))));
      if (selected.length === 0) {
        explain(svc, 'not_selected', `no BGPAdvertisement selected for ${familyName[family]} by this peer's BGPPeerConfig selects the service`, a);
        continue;
      }
      const typed = selected.filter((e) => e.addresses.has(a.type));
      if (typed.length === 0) {
        explain(svc, 'address_type_not_selected', `${selected.map((e) => e.source).join(', ')} select the service but not its ${a.type} addresses`, a);
        continue;
      }
      if ((a.type === 'ClusterIP' ? svc.internalLocal : svc.externalLocal) && !svc.hasLocalEndpoint) {
        const policy = a.type === 'ClusterIP' ? 'internalTrafficPolicy' : 'externalTrafficPolicy';
        explain(svc, 'no_local_endpoint', `${policy} is Local and node ${nodeName} has no ready endpoint of the service`, a);
        continue;
      }
      let route = merged.get(a.prefix);
      if (!route) merged.set(a.prefix, (route = { ip: a.ip, communities: new Set(), large: new Set(), localPreference: undefined }));
      // Several advertisements selecting one address: the union of their communities and the
      // highest local preference (RFC 4271 9.1.1: higher is preferred), as Cilium does.
      for (const e of typed) {
        for (const c of e.communities) route.communities.add(c);
        for (const c of e.largeCommunities) route.large.add(c);
        if (e.localPreference !== undefined) route.localPreference = Math.max(route.localPreference ?? 0, e.localPreference);
      }
      explain(svc, 'advertised', `advertised as ${a.prefix} by ${typed.length === 1 ? typed[0]!.source : typed.map((e) => e.source).join(', ')}`, a);
    }
  }
  return [...merged.entries()]
    .sort(([, a], [, b]) => compareIP(a.ip, b.ip))
    .map(([prefix, r]) => {
      const route: Route = { prefix };
      if (r.communities.size > 0) route.communities = [...r.communities].sort(communityOrder);
      if (r.large.size > 0) route.largeCommunities = [...r.large].sort(communityOrder);
      if (r.localPreference !== undefined) route.localPreference = r.localPreference;
      return route;
    });
}

/** One beacon.io/ConfigValid condition per object: True, or False with every problem in the message. */
export function conditionsOf(input: BGPPolicyInput, problems: readonly ConfigProblem[]): Map<string, Condition[]> {
  const out = new Map<string, Condition[]>();
  const objects = [
    ...input.clusterConfigs.map((o) => ({ kind: bgpClusterConfigKind, meta: o.metadata })),
    ...input.peerConfigs.map((o) => ({ kind: bgpPeerConfigKind, meta: o.metadata })),
    ...input.advertisements.map((o) => ({ kind: bgpAdvertisementKind, meta: o.metadata })),
    ...input.nodeOverrides.map((o) => ({ kind: bgpNodeConfigOverrideKind, meta: o.metadata })),
  ];
  for (const { kind, meta } of objects) {
    const own = problems.filter((p) => p.kind === kind && p.name === meta.name);
    const generation = meta.generation === undefined ? {} : { observedGeneration: meta.generation };
    out.set(`${kind}/${meta.name}`, [
      own.length === 0
        ? { type: bgpConditionType, status: 'True', ...generation, reason: 'Valid', message: 'every field is in use' }
        : { type: bgpConditionType, status: 'False', ...generation, reason: own[0]!.reason, message: own.map((p) => `${p.reason}: ${p.message}`).join('; ') },
    ]);
  }
  return out;
}
