// MetalLB (metallb.io) resources into Beacon's. MetalLB's objects refer to each other (an
// advertisement names pools and peers, communities are aliases), so the whole set converts at once.
// Whatever Beacon cannot say exactly is reported with the field and why: nothing changes meaning
// silently.
import {
  apiVersion,
  bgpAdvertisementKind,
  bgpClusterConfigKind,
  bgpPeerConfigKind,
  checkLargeCommunity,
  checkStandardCommunity,
  formatIP,
  l2PolicyKind,
  labelValueError,
  parseCIDR,
  parseIP,
  parseSelector,
  poolKind,
  selectorMatches,
  serviceClasses,
  serviceNamespaceLabel,
  type Advertisement,
  type BGPPeerConfigSpec,
  type ClusterConfigPeer,
  type IPRange,
  type L2PolicySpec,
  type LabelSelector,
  type ObjectMeta,
  type Parsed,
  type PoolBlock,
  type PoolSpec,
} from '../api/index.js';
import { beaconMeta, isRecord, list, noteUnknownFields, originOf, record, type MigrationBuilder, type Obj, type Origin, type Source } from './model.js';

/** Kinds converted, with the apiVersions read. */
export const metallbKinds: Readonly<Record<string, readonly string[]>> = {
  IPAddressPool: ['metallb.io/v1beta1'],
  L2Advertisement: ['metallb.io/v1beta1'],
  BGPAdvertisement: ['metallb.io/v1beta1'],
  BGPPeer: ['metallb.io/v1beta1', 'metallb.io/v1beta2'],
  Community: ['metallb.io/v1beta1'],
};

/** Label put on converted BGPAdvertisements; the peer configs select them by it. */
export const advertisementLabel = 'migrate.beacon.io/metallb-advertisement';

interface Item {
  readonly from: Origin;
  readonly value: Obj;
  readonly spec: Obj;
}

const item = (src: Source): Item => ({ from: originOf(src), value: record(src.value), spec: record(record(src.value).spec) });
const strings = (v: unknown): string[] => list(v).filter((x): x is string => typeof x === 'string');
// Shapes inside a selector are checked by the schema of the object it ends up in.
const selectors = (v: unknown): LabelSelector[] => list(v).filter(isRecord);

export function convertMetalLB(sources: readonly Source[], out: MigrationBuilder): void {
  const of = (kind: string) => sources.map(item).filter((i) => i.from.kind === kind);
  const pools = of('IPAddressPool');
  const pinnedPriority = defaultPinnedPriority(pools);
  for (const pool of pools) convertPool(pool, pinnedPriority, out);
  for (const adv of of('L2Advertisement')) convertL2Advertisement(adv, pools, out);
  const communities = communityAliases(of('Community'), out);
  convertBGP(of('BGPPeer'), of('BGPAdvertisement'), pools, communities, out);
}

// --- IPAddressPool ----------------------------------------------------------------------------

/**
 * MetalLB tries pools with a serviceAllocation first (by priority, lower first, then those without
 * one) and pools without serviceAllocation last. Beacon orders pools with a priority before pools
 * without, so a serviceAllocation without priority gets one just after every explicit priority.
 */
function defaultPinnedPriority(pools: readonly Item[]): number {
  const explicit = pools.map((p) => record(p.spec.serviceAllocation).priority).filter((p): p is number => Number.isInteger(p));
  return explicit.length === 0 ? 0 : Math.max(...explicit) + 1;
}

/** `CIDR` (host bits allowed: MetalLB masks them) or `FIRST-LAST`, as a range. */
export function parseAddresses(text: string): Parsed<{ range: IPRange; cidr?: string }> {
  const dash = text.indexOf('-');
  if (dash >= 0) {
    const [first, last] = [parseIP(text.slice(0, dash).trim()), parseIP(text.slice(dash + 1).trim())];
    if (!first || !last) return { ok: false, error: `"${text}" is not a range FIRST-LAST of two addresses` };
    if (first.family !== last.family) return { ok: false, error: `range "${text}" mixes IPv4 and IPv6` };
    if (first.value > last.value) return { ok: false, error: `range "${text}" ends before it starts` };
    return { ok: true, value: { range: { family: first.family, first: first.value, last: last.value } } };
  }
  const slash = text.indexOf('/');
  const ip = slash < 0 ? undefined : parseIP(text.slice(0, slash).trim());
  if (!ip) return { ok: false, error: `"${text}" is neither a CIDR nor a range FIRST-LAST` };
  const prefixText = text.slice(slash + 1).trim();
  const bits = ip.family === 4 ? 32 : 128;
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix <= bits)) return { ok: false, error: `"${text}": prefix must be 0..${bits}` };
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  const cidr = `${formatIP({ family: ip.family, value: ip.value & ~hostMask })}/${prefix}`;
  const parsed = parseCIDR(cidr);
  return parsed.ok ? { ok: true, value: { range: parsed.value.range, cidr } } : parsed;
}

const rangeBlock = (family: 4 | 6, first: bigint, last: bigint): PoolBlock => ({
  start: formatIP({ family, value: first }),
  stop: formatIP({ family, value: last }),
});

/** Most ranges one block may become under avoidBuggyIPs (a /16 is 256). */
const maxBuggySplit = 256;

/**
 * avoidBuggyIPs: MetalLB never hands out IPv4 addresses ending in .0 or .255. Start/stop blocks
 * are used whole by Beacon, so the block becomes the ranges between those addresses; undefined
 * when that would take more than maxBuggySplit ranges.
 */
export function withoutBuggyIPs(range: IPRange): PoolBlock[] | undefined {
  if (range.family === 6) return undefined;
  const firstChunk = range.first >> 8n;
  const lastChunk = range.last >> 8n;
  if (lastChunk - firstChunk + 1n > BigInt(maxBuggySplit)) return undefined;
  const blocks: PoolBlock[] = [];
  for (let chunk = firstChunk; chunk <= lastChunk; chunk++) {
    const lo = range.first > chunk * 256n + 1n ? range.first : chunk * 256n + 1n;
    const hi = range.last < chunk * 256n + 254n ? range.last : chunk * 256n + 254n;
    if (lo <= hi) blocks.push(rangeBlock(4, lo, hi));
  }
  return blocks;
}

function convertPool(pool: Item, pinnedPriority: number, out: MigrationBuilder): void {
  const { spec, from } = pool;
  const note = (field: string, reason: string) => out.note(from, field, reason);
  noteUnknownFields(spec, ['addresses', 'autoAssign', 'avoidBuggyIPs', 'serviceAllocation'], 'spec', from, out);
  const blocks: PoolBlock[] = [];
  for (const [i, text] of list(spec.addresses).entries()) {
    const parsed = typeof text === 'string' ? parseAddresses(text) : { ok: false as const, error: 'not a string' };
    if (!parsed.ok) {
      note(`spec.addresses[${i}]`, `${parsed.error}; left out`);
      continue;
    }
    const { range, cidr } = parsed.value;
    const split = spec.avoidBuggyIPs === true && range.family === 4 ? withoutBuggyIPs(range) : undefined;
    if (spec.avoidBuggyIPs === true && range.family === 4 && split === undefined) {
      note(`spec.addresses[${i}]`, `avoidBuggyIPs: "${String(text)}" spans more than ${maxBuggySplit} /24s; kept whole, so its addresses ending in .0 and .255 may be assigned`);
    }
    blocks.push(...(split ?? [cidr !== undefined ? { cidr } : rangeBlock(range.family, range.first, range.last)]));
  }
  const newSpec: PoolSpec = { blocks, allowFirstLastIPs: 'Yes' }; // MetalLB uses every address of a CIDR
  const disable = (field: string, reason: string) => {
    newSpec.disabled = true;
    note(field, `${reason}; the pool is written with disabled: true (services keep the addresses they hold, none are handed out) until you express it and remove disabled`);
  };
  if (spec.autoAssign === false) {
    disable('spec.autoAssign', 'Beacon has no pool that serves only services asking for it by name or address');
  }
  if (spec.serviceAllocation !== undefined) {
    const alloc = record(spec.serviceAllocation);
    noteUnknownFields(alloc, ['priority', 'namespaces', 'namespaceSelectors', 'serviceSelectors'], 'spec.serviceAllocation', from, out);
    newSpec.priority = Number.isInteger(alloc.priority) ? (alloc.priority as number) : pinnedPriority;
    const selector: LabelSelector = {};
    const namespaces = strings(alloc.namespaces);
    if (namespaces.length > 0) selector.matchExpressions = [{ key: serviceNamespaceLabel, operator: 'In', values: namespaces }];
    const serviceSelectors = selectors(alloc.serviceSelectors);
    if (serviceSelectors.length === 1) {
      const [only] = serviceSelectors as [LabelSelector];
      if (only.matchLabels) selector.matchLabels = only.matchLabels;
      if (only.matchExpressions) selector.matchExpressions = [...(selector.matchExpressions ?? []), ...only.matchExpressions];
    } else if (serviceSelectors.length > 1) {
      disable('spec.serviceAllocation.serviceSelectors', 'a pool has one serviceSelector; several (any of which may match) cannot be written as one');
    }
    if (selectors(alloc.namespaceSelectors).length > 0) {
      disable('spec.serviceAllocation.namespaceSelectors', 'Beacon does not read Namespace labels; list the namespaces instead');
    }
    if (selector.matchLabels || selector.matchExpressions) newSpec.serviceSelector = selector;
  }
  out.emit(from, { apiVersion, kind: poolKind, metadata: beaconMeta(pool.value), spec: newSpec });
}

// --- Advertisements select pools; Beacon selects services -------------------------------------

/**
 * Pools an advertisement covers (by name or by label). Beacon's policies and advertisements select
 * services, so the restriction carries over exactly only when it covers every pool of the input.
 */
function poolsNotCovered(adv: Item, pools: readonly Item[], out: MigrationBuilder): string[] | undefined {
  const names = strings(adv.spec.ipAddressPools);
  const poolSelectors = selectors(adv.spec.ipAddressPoolSelectors);
  if (names.length === 0 && poolSelectors.length === 0) return [];
  const compiled = poolSelectors.flatMap((s, i) => {
    const parsed = parseSelector(s);
    if (!parsed.ok) out.note(adv.from, `spec.ipAddressPoolSelectors[${i}]`, parsed.error);
    return parsed.ok ? [parsed.value] : [];
  });
  const covered = (p: Item) => names.includes(p.from.name) || compiled.some((s) => selectorMatches(s, record(record(p.value.metadata).labels) as Record<string, string>));
  const missing = pools.filter((p) => !covered(p)).map((p) => p.from.name);
  return pools.length === 0 ? undefined : missing;
}

function notePoolRestriction(adv: Item, pools: readonly Item[], otherClass: string, out: MigrationBuilder): void {
  const missing = poolsNotCovered(adv, pools, out);
  if (missing?.length === 0) return;
  const field = strings(adv.spec.ipAddressPools).length > 0 ? 'spec.ipAddressPools' : 'spec.ipAddressPoolSelectors';
  const which = missing === undefined ? 'no IPAddressPool was given to compare with, so services of any pool' : `services with addresses from ${missing.join(', ')}`;
  out.note(
    adv.from,
    field,
    `Beacon selects services, not pools: it selects every service, so ${which} are included; narrow it with a service selector, or give the others loadBalancerClass ${otherClass}`,
  );
}

// --- L2Advertisement --------------------------------------------------------------------------

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function convertL2Advertisement(adv: Item, pools: readonly Item[], out: MigrationBuilder): void {
  const { spec, from } = adv;
  noteUnknownFields(spec, ['ipAddressPools', 'ipAddressPoolSelectors', 'nodeSelectors', 'interfaces'], 'spec', from, out);
  notePoolRestriction(adv, pools, serviceClasses.bgp, out);
  // MetalLB names interfaces exactly; Beacon matches regular expressions anywhere in the name.
  const interfaces = strings(spec.interfaces).map((name) => `^${escapeRegExp(name)}$`);
  const base: L2PolicySpec = interfaces.length > 0 ? { interfaces } : {};
  const nodeSelectors = selectors(spec.nodeSelectors);
  // A node is eligible when any policy selecting the service selects it: one policy per selector
  // says exactly what MetalLB's list (any of which may match) says.
  const specs = nodeSelectors.length === 0 ? [base] : nodeSelectors.map((nodeSelector) => ({ ...base, nodeSelector }));
  for (const [i, s] of specs.entries()) {
    const name = specs.length === 1 ? from.name : `${from.name}-${i + 1}`;
    out.emit(from, { apiVersion, kind: l2PolicyKind, metadata: beaconMeta(adv.value, name), spec: s });
  }
}

// --- BGP --------------------------------------------------------------------------------------

function communityAliases(communities: readonly Item[], out: MigrationBuilder): Map<string, string> {
  const aliases = new Map<string, string>();
  for (const c of communities) {
    noteUnknownFields(c.spec, ['communities'], 'spec', c.from, out);
    for (const [i, a] of list(c.spec.communities).map(record).entries()) {
      if (typeof a.name !== 'string' || typeof a.value !== 'string') out.note(c.from, `spec.communities[${i}]`, 'needs a name and a value; left out');
      else if (!aliases.has(a.name)) aliases.set(a.name, a.value);
    }
  }
  return aliases;
}

/** A MetalLB community (alias, `high:low`, or `large:a:b:c`) as Beacon's attribute. */
function beaconCommunity(text: string, aliases: ReadonlyMap<string, string>): Parsed<{ large: boolean; value: string }> {
  const value = aliases.get(text) ?? text;
  const large = value.startsWith('large:');
  const checked = large ? checkLargeCommunity(value.slice('large:'.length)) : checkStandardCommunity(value);
  if (!checked.ok) return { ok: false, error: aliases.has(text) ? `alias "${text}" = "${value}": ${checked.error}` : `${checked.error}, nor a Community alias` };
  return { ok: true, value: { large, value: checked.value } };
}

/** Go durations as metav1.Duration writes them (`90s`, `1m30s`, `1h`), in whole seconds. */
export function goDurationSeconds(text: string): number | undefined {
  const m = /^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?$/.exec(text);
  if (!m || text === '') return undefined;
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

// RFC 7607: AS 0 is reserved.
const isASN = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 4294967295;

interface PeerPlan {
  readonly from: Origin;
  readonly name: string;
  readonly metadata: ObjectMeta;
  readonly myASN: number;
  readonly nodeSelector: LabelSelector | undefined;
  readonly peer: ClusterConfigPeer;
  readonly spec: BGPPeerConfigSpec;
  readonly afis: ('ipv4' | 'ipv6')[];
}

const peerFields = [
  'myASN', 'peerASN', 'dynamicASN', 'peerAddress', 'interface', 'sourceAddress', 'peerPort', 'holdTime', 'keepaliveTime', 'connectTime',
  'routerID', 'nodeSelectors', 'password', 'passwordSecret', 'bfdProfile', 'enableGracefulRestart', 'ebgpMultiHop', 'vrf', 'disableMP',
  'dualStackAddressFamily',
];

function planPeer(p: Item, out: MigrationBuilder): PeerPlan | undefined {
  const { spec, from } = p;
  const note = (field: string, reason: string) => out.note(from, field, reason);
  noteUnknownFields(spec, peerFields, 'spec', from, out);
  const address = typeof spec.peerAddress === 'string' ? parseIP(spec.peerAddress) : undefined;
  if (!address) {
    note(spec.interface !== undefined ? 'spec.interface' : 'spec.peerAddress', 'Beacon needs the peer\'s address (no unnumbered BGP over an interface); the peer is left out');
    return undefined;
  }
  if (!isASN(spec.myASN)) {
    note('spec.myASN', 'must be an AS number 1-4294967295; the peer is left out');
    return undefined;
  }
  const myASN = spec.myASN;
  // dynamicASN internal: the peer must have our AS.
  const peerASN = spec.peerASN === undefined && spec.dynamicASN === 'internal' ? myASN : spec.peerASN;
  if (!isASN(peerASN)) {
    const field = spec.peerASN === undefined ? 'spec.dynamicASN' : 'spec.peerASN';
    note(field, 'Beacon needs the peer\'s AS number, 1-4294967295 (no dynamic "external" AS); the peer is left out');
    return undefined;
  }
  const newSpec: BGPPeerConfigSpec = {};
  const transport: NonNullable<BGPPeerConfigSpec['transport']> = {};
  if (spec.peerPort !== undefined) transport.peerPort = spec.peerPort as number;
  if (spec.sourceAddress !== undefined) transport.sourceAddress = spec.sourceAddress as string;
  if (Object.keys(transport).length > 0) newSpec.transport = transport;
  const timers: NonNullable<BGPPeerConfigSpec['timers']> = {};
  for (const [field, to] of [['holdTime', 'holdTimeSeconds'], ['keepaliveTime', 'keepAliveTimeSeconds'], ['connectTime', 'connectRetryTimeSeconds']] as const) {
    if (spec[field] === undefined) continue;
    const seconds = typeof spec[field] === 'string' ? goDurationSeconds(spec[field]) : undefined;
    if (seconds === undefined) note(`spec.${field}`, `${JSON.stringify(spec[field])} is not a whole number of seconds (like 90s or 1m30s); the default is used`);
    else timers[to] = seconds;
  }
  if (Object.keys(timers).length > 0) newSpec.timers = timers;
  const secret = record(spec.passwordSecret).name;
  if (typeof secret === 'string' && secret !== '') {
    newSpec.authSecretRef = secret; // a Secret with the key "password", as MetalLB's
  } else if (typeof spec.password === 'string' && spec.password !== '') {
    newSpec.authSecretRef = `bgp-password-${p.from.name}`;
    note(
      'spec.password',
      `migrate never writes passwords: create ${newSpec.authSecretRef} holding it (standalone: a file beside the manifests; Kubernetes: a Secret with the key password)`,
    );
  }
  // FRR's ebgp-multihop without a count allows the maximum TTL.
  if (spec.ebgpMultiHop === true) newSpec.ebgpMultihop = 255;
  if (spec.enableGracefulRestart === true) newSpec.gracefulRestart = { enabled: true };
  if (typeof spec.routerID === 'string') note('spec.routerID', 'Beacon sets the router ID per node: write a BGPNodeConfigOverride for each node');
  if (typeof spec.bfdProfile === 'string') note('spec.bfdProfile', 'Beacon has no BFD; failures are detected by the hold timer');
  if (typeof spec.vrf === 'string') note('spec.vrf', 'Beacon has no VRF support; the session uses the main routing table');
  const nodeSelectors = selectors(spec.nodeSelectors);
  if (nodeSelectors.length > 1) note('spec.nodeSelectors', 'a BGPClusterConfig has one nodeSelector; the first is used, so nodes matched only by the others do not peer');
  const own = address.family === 4 ? 'ipv4' : 'ipv6';
  // MetalLB carries the other family over a session only with dualStackAddressFamily (disableMP,
  // deprecated, only ever turned that off).
  const afis: ('ipv4' | 'ipv6')[] = spec.dualStackAddressFamily === true ? ['ipv4', 'ipv6'] : [own];
  const peer: ClusterConfigPeer = { name: from.name, peerAddress: spec.peerAddress as string, peerASN, peerConfigRef: { name: from.name } };
  return { from, name: from.name, metadata: beaconMeta(p.value), myASN, nodeSelector: nodeSelectors[0], peer, spec: newSpec, afis };
}

interface AdvertisementPlan {
  readonly name: string;
  /** MetalLB peer names; empty means every peer. */
  readonly peers: string[];
}

const advertisementFields = ['aggregationLength', 'aggregationLengthV6', 'localPref', 'communities', 'ipAddressPools', 'ipAddressPoolSelectors', 'nodeSelectors', 'peers'];

function convertBGPAdvertisement(adv: Item, pools: readonly Item[], aliases: ReadonlyMap<string, string>, out: MigrationBuilder): AdvertisementPlan | undefined {
  const { spec, from } = adv;
  const note = (field: string, reason: string) => out.note(from, field, reason);
  noteUnknownFields(spec, advertisementFields, 'spec', from, out);
  const labelError = labelValueError(from.name);
  if (labelError) {
    note('metadata.name', `${labelError}: it cannot label the converted advertisement for its peers; the advertisement is left out`);
    return undefined;
  }
  const standard: string[] = [];
  const large: string[] = [];
  for (const [i, text] of strings(spec.communities).entries()) {
    const c = beaconCommunity(text, aliases);
    if (!c.ok) {
      // Sending the routes without an intended community (no-export) could carry them further than meant.
      note(`spec.communities[${i}]`, `${c.error}; the advertisement is left out`);
      return undefined;
    }
    (c.value.large ? large : standard).push(c.value.value);
  }
  for (const [field, exact] of [['aggregationLength', 32], ['aggregationLengthV6', 128]] as const) {
    if (spec[field] !== undefined && spec[field] !== exact) note(`spec.${field}`, `Beacon advertises exact /${exact} routes only; no aggregate is sent`);
  }
  if (selectors(spec.nodeSelectors).length > 0) note('spec.nodeSelectors', 'Beacon advertises from every node its BGPClusterConfig selects; the advertisement is sent from all of them');
  notePoolRestriction(adv, pools, serviceClasses.l2, out);
  const entry: Advertisement = { advertisementType: 'Service', service: { addresses: ['LoadBalancerIP'] }, selector: {} };
  const communities = { ...(standard.length > 0 ? { standard } : {}), ...(large.length > 0 ? { large } : {}) };
  const localPreference = typeof spec.localPref === 'number' && spec.localPref > 0 ? spec.localPref : undefined;
  if (standard.length + large.length > 0 || localPreference !== undefined) {
    entry.attributes = { ...(standard.length + large.length > 0 ? { communities } : {}), ...(localPreference === undefined ? {} : { localPreference }) };
  }
  const meta = beaconMeta(adv.value);
  meta.labels = { ...meta.labels, [advertisementLabel]: from.name };
  out.emit(from, { apiVersion, kind: bgpAdvertisementKind, metadata: meta, spec: { advertisements: [entry] } });
  return { name: from.name, peers: strings(spec.peers) };
}

/**
 * BGPPeers become peers of BGPClusterConfigs (one instance per local AS), each with its own
 * BGPPeerConfig whose families select the advertisements that name it (or name no peer).
 */
function convertBGP(peerItems: readonly Item[], advItems: readonly Item[], pools: readonly Item[], aliases: ReadonlyMap<string, string>, out: MigrationBuilder): void {
  const peers = peerItems.flatMap((p) => planPeer(p, out) ?? []);
  const advertisements = advItems.flatMap((a) => convertBGPAdvertisement(a, pools, aliases, out) ?? []);
  for (const adv of advItems) {
    for (const name of strings(adv.spec.peers).filter((n) => !peers.some((p) => p.name === n))) {
      out.note(adv.from, 'spec.peers', `no BGPPeer named ${name} was converted; the advertisement goes only to converted peers it names`);
    }
  }
  // Peers with different node selectors cannot share a config: one config per selector.
  const groups = new Map<string, PeerPlan[]>();
  for (const p of peers) {
    const key = JSON.stringify(p.nodeSelector ?? null);
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  const names = [...groups.keys()].map((_, i) => (groups.size === 1 ? 'metallb' : `metallb-${i + 1}`));
  for (const [g, group] of [...groups.values()].entries()) {
    if (groups.size > 1) {
      for (const p of group) {
        out.note(p.from, 'spec.nodeSelectors', `peers with different nodeSelectors became separate BGPClusterConfigs (${names.join(', ')}); a node uses only one (the oldest), so they must select disjoint nodes`);
      }
    }
    const asns = [...new Set(group.map((p) => p.myASN))];
    const first = group[0]!;
    out.emit(first.from, {
      apiVersion,
      kind: bgpClusterConfigKind,
      metadata: { name: names[g]! },
      spec: {
        ...(first.nodeSelector ? { nodeSelector: first.nodeSelector } : {}),
        bgpInstances: asns.map((asn) => ({ name: `as${asn}`, localASN: asn, peers: group.filter((p) => p.myASN === asn).map((p) => p.peer) })),
      },
    });
    for (const p of group) {
      const selected = advertisements.filter((a) => a.peers.length === 0 || a.peers.includes(p.name)).map((a) => a.name);
      const advertised: LabelSelector | undefined = selected.length > 0 ? { matchExpressions: [{ key: advertisementLabel, operator: 'In', values: selected }] } : undefined;
      const families = p.afis.map((afi) => ({ afi, safi: 'unicast' as const, ...(advertised ? { advertisements: advertised } : {}) }));
      out.emit(p.from, { apiVersion, kind: bgpPeerConfigKind, metadata: p.metadata, spec: { ...p.spec, families } });
    }
  }
}
