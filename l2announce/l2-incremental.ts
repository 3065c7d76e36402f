// The election kept up to date change by change. The unit of work is the IP (services share an IP
// through a sharing key, so one service's change re-elects every IP it had or has, with all the
// services on it). Services are parsed and matched against the policies once, when they change;
// only a new live set or new policies re-elect every IP, and that pass can be taken in slices so the
// caller can yield to the event loop between them. `electAnnouncers` stays the reference: after
// any sequence of changes, a drained `IncrementalElection` returns exactly what it returns.
import { compareIP, formatIP, parseIP, type IP, type L2Policy } from '../api/index.js';
import { announcedClass, electIP, ipEntry, matchingPolicies, prepareNodes, type IPAnnouncement, type IPEntry, type L2Service, type LiveNode, type PreparedNode } from './election.js';

/** One IP whose announcement changed: before (undefined: new IP) and after (undefined: gone). */
export interface AnnouncementChange {
  readonly ip: string;
  readonly before: IPAnnouncement | undefined;
  readonly after: IPAnnouncement | undefined;
}

interface IndexedService {
  readonly service: L2Service;
  /** Canonical texts of its load balancer IPs and external IPs that parse. */
  readonly loadBalancerIPs: ReadonlySet<string>;
  readonly externalIPs: ReadonlySet<string>;
  /** The policies that announce each kind of its addresses (matched again when policies change). */
  matching: { loadBalancerIPs: L2Policy[]; externalIPs: L2Policy[] };
}

interface IndexedIP {
  readonly ip: IP;
  readonly services: Set<string>;
  /** Built when first elected; dropped when its services or the policies change. */
  entry?: IPEntry | undefined;
}

const sameSet = (a: ReadonlySet<string> | undefined, b: ReadonlySet<string> | undefined): boolean =>
  a === b || (a !== undefined && b !== undefined && a.size === b.size && [...a].every((x) => b.has(x)));

const sameList = (a: readonly string[], b: readonly string[]): boolean => a === b || (a.length === b.length && a.every((x, i) => x === b[i]));

const sameAnnouncement = (a: IPAnnouncement, b: IPAnnouncement): boolean =>
  a.node === b.node && a.reason === b.reason && a.eligible === b.eligible && sameList(a.services, b.services) && sameList(a.interfaces, b.interfaces);

/** Each IP of a service once (an address may be both a load balancer IP and an external IP). */
const addressesOf = (s: IndexedService): Set<string> => new Set([...s.loadBalancerIPs, ...s.externalIPs]);

function canonicalIPs(texts: readonly string[]): Map<string, IP> {
  const out = new Map<string, IP>();
  for (const text of texts) {
    const ip = parseIP(text);
    if (ip) out.set(formatIP(ip), ip); // an unparsable externalIP is left out, as the reference does
  }
  return out;
}

/**
 * The election as seen from one node, told changes one at a time (`setService`,
 * `setReadyEndpointNodes`, `setPolicies`, `setNodes`) and elected with `elect`, which returns
 * what changed. Pure: no clock, no I/O.
 */
export class IncrementalElection {
  private policies: readonly L2Policy[] = [];
  private nodes: PreparedNode[] = [];
  private readonly services = new Map<string, IndexedService>();
  private readonly ips = new Map<string, IndexedIP>();
  private readonly readyEndpointNodes = new Map<string, ReadonlySet<string>>();
  private readonly result = new Map<string, IPAnnouncement>();
  /** IPs to elect again (insertion ordered: a slice takes the oldest first). */
  private readonly pending = new Set<string>();
  private sorted: IPAnnouncement[] | undefined;

  /** `self`: the node the reasons are given for. */
  constructor(private readonly self: string) {}

  /** How many IPs wait to be elected again. */
  get pendingIPs(): number {
    return this.pending.size;
  }

  /** A new live set: every IP is elected again (nodes join and leave rarely). */
  setNodes(nodes: readonly LiveNode[]): void {
    this.nodes = prepareNodes(nodes);
    this.electAllAgain();
  }

  /** New policies: every service is matched again (no re-parsing) and every IP elected again. */
  setPolicies(policies: readonly L2Policy[]): void {
    this.policies = policies;
    this.nodes = prepareNodes(this.nodes.map((n) => ({ name: n.name, candidacy: n.candidacy }))); // drop the per-policy caches
    for (const s of this.services.values()) s.matching = matchingPolicies(s.service, policies);
    for (const indexed of this.ips.values()) indexed.entry = undefined;
    this.electAllAgain();
  }

  /** A service added, changed or (undefined) deleted: the IPs it had and has are elected again. */
  setService(key: string, service: L2Service | undefined): void {
    const old = this.services.get(key);
    if (old) {
      for (const text of addressesOf(old)) {
        const indexed = this.ips.get(text)!;
        indexed.services.delete(key);
        indexed.entry = undefined;
        if (indexed.services.size === 0) this.ips.delete(text);
        this.pending.add(text);
      }
      this.services.delete(key);
    }
    if (!service || !announcedClass(service.loadBalancerClass)) return;
    const lb = canonicalIPs(service.loadBalancerIPs);
    const ext = canonicalIPs(service.externalIPs);
    this.services.set(key, { service, loadBalancerIPs: new Set(lb.keys()), externalIPs: new Set(ext.keys()), matching: matchingPolicies(service, this.policies) });
    for (const [text, ip] of [...lb, ...ext]) {
      let indexed = this.ips.get(text);
      if (!indexed) this.ips.set(text, (indexed = { ip, services: new Set() }));
      indexed.services.add(key);
      indexed.entry = undefined;
      this.pending.add(text);
    }
  }

  /** The nodes with a ready endpoint of a service (undefined: none); only Local services' IPs depend on it. */
  setReadyEndpointNodes(key: string, nodes: ReadonlySet<string> | undefined): void {
    if (sameSet(this.readyEndpointNodes.get(key), nodes)) return;
    if (nodes && nodes.size > 0) this.readyEndpointNodes.set(key, nodes);
    else this.readyEndpointNodes.delete(key);
    const s = this.services.get(key);
    if (s?.service.localTraffic) for (const text of addressesOf(s)) this.pending.add(text);
  }

  /**
   * Elects the pending IPs, oldest first, while `more()` says to go on (asked before each IP, so a
   * caller can bound a slice by count or time), and returns the announcements that changed.
   */
  elect(more: () => boolean = () => true): AnnouncementChange[] {
    const changes: AnnouncementChange[] = [];
    for (const text of this.pending) {
      if (!more()) break;
      this.pending.delete(text);
      const before = this.result.get(text);
      const indexed = this.ips.get(text);
      const after = indexed && electIP((indexed.entry ??= this.entry(text, indexed)), this.nodes, this.readyEndpointNodes, this.self);
      if (before && after && sameAnnouncement(before, after)) continue;
      if (after) this.result.set(text, after);
      else this.result.delete(text);
      changes.push({ ip: text, before, after });
      this.sorted = undefined;
    }
    return changes;
  }

  /** The announcement of one IP (canonical text) as last elected. */
  get(ip: string): IPAnnouncement | undefined {
    return this.result.get(ip);
  }

  /** Every announcement as last elected, in address order (what `electAnnouncers` returns once drained). */
  announcements(): readonly IPAnnouncement[] {
    this.sorted ??= [...this.result.values()]
      .map((a) => ({ a, ip: this.ips.get(a.ip)?.ip ?? parseIP(a.ip)! }))
      .sort((x, y) => compareIP(x.ip, y.ip))
      .map((x) => x.a);
    return this.sorted;
  }

  private electAllAgain(): void {
    for (const text of this.ips.keys()) this.pending.add(text);
  }

  /** The services on an IP and the distinct policies that announce it through any of them. */
  private entry(text: string, indexed: IndexedIP): IPEntry {
    const services: L2Service[] = [];
    const policies = new Set<L2Policy>();
    for (const key of indexed.services) {
      const s = this.services.get(key)!;
      services.push(s.service);
      if (s.loadBalancerIPs.has(text)) for (const p of s.matching.loadBalancerIPs) policies.add(p);
      if (s.externalIPs.has(text)) for (const p of s.matching.externalIPs) policies.add(p);
    }
    return ipEntry(indexed.ip, services, [...policies], text);
  }
}
