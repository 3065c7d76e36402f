import { describe, expect, it } from 'vitest';
import { parseL2Policy, seededRandom, serviceClasses, type L2Policy, type L2PolicySpec, type Random } from '../api/index.js';
import { electAnnouncers, excludeLabel, type IPAnnouncement, type L2Service, type LiveNode } from './election.js';
import { IncrementalElection, type AnnouncementChange } from './l2-incremental.js';

const policy = (spec: L2PolicySpec, name: string): L2Policy => {
  const parsed = parseL2Policy({ metadata: { name }, spec });
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.value;
};

const policySpecs: L2PolicySpec[] = [
  {},
  { serviceSelector: { matchLabels: { app: 'web' } } },
  { nodeSelector: { matchLabels: { role: 'edge' } }, interfaces: ['^eth1$'] },
  { loadBalancerIPs: false, externalIPs: true },
  { serviceSelector: { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['web'] }] }, interfaces: ['^eth'], externalIPs: true },
];

// Few names and addresses, so that services share IPs and changes collide. Two spellings of one
// IPv6 address and an unparsable one test the canonical keys.
const ipPool = ['198.18.0.5', '198.18.0.6', '198.18.1.7', '198.19.0.8', '2001:db8::5', '2001:DB8:0::5', '2001:db8:1::9', 'not-an-ip'];
const nodeNames = ['n0', 'n1', 'n2', 'n3', 'n4'];
const serviceKeys = Array.from({ length: 8 }, (_, i) => `ns/s${i}`);

const pick = <T,>(r: Random, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const subset = <T,>(r: Random, xs: readonly T[], p = 0.5): T[] => xs.filter(() => r() < p);

function randomNode(r: Random, name: string): LiveNode {
  return {
    name,
    candidacy: {
      labels: { ...(r() < 0.5 ? { role: 'edge' } : {}), ...(r() < 0.1 ? { [excludeLabel]: '' } : {}) },
      ready: r() < 0.9,
      draining: r() < 0.1,
      interfaces: [
        { name: 'eth0', up: r() < 0.9, addresses: [{ ip: `198.18.0.${10 + nodeNames.indexOf(name)}`, prefixLength: 24 }, { ip: '2001:db8::10', prefixLength: 64 }] },
        { name: 'eth1', up: r() < 0.8, addresses: [{ ip: '198.19.0.10', prefixLength: 24 }] },
      ],
      defaultRoute: { ipv4: [pick(r, ['eth0', 'eth1'])], ipv6: r() < 0.5 ? ['eth0'] : [] },
    },
  };
}

function randomService(r: Random, key: string): L2Service {
  return {
    key,
    labels: { ...(r() < 0.5 ? { app: 'web' } : { app: 'db' }) },
    loadBalancerClass: pick(r, [undefined, undefined, undefined, serviceClasses.l2, serviceClasses.bgp]),
    loadBalancerIPs: subset(r, ipPool, 0.2),
    externalIPs: subset(r, ipPool, 0.1),
    localTraffic: r() < 0.3,
  };
}

/** The world as the reference sees it, changed at random, with the same change told to the incremental election. */
class World {
  policies: L2Policy[] = [policy({}, 'p0')];
  services = new Map<string, L2Service>();
  ready = new Map<string, ReadonlySet<string>>();
  nodes: LiveNode[] = nodeNames.slice(0, 3).map((n) => randomNode(seededRandom(1), n));
  constructor(private readonly r: Random, readonly election: IncrementalElection) {
    election.setPolicies(this.policies);
    election.setNodes(this.nodes);
  }

  change(): void {
    const { r, election } = this;
    const roll = r();
    const key = pick(r, serviceKeys);
    if (roll < 0.45) {
      const s = randomService(r, key);
      this.services.set(key, s);
      election.setService(key, s);
    } else if (roll < 0.6) {
      this.services.delete(key);
      election.setService(key, undefined);
    } else if (roll < 0.8) {
      const nodes = r() < 0.2 ? undefined : new Set(subset(r, nodeNames));
      if (nodes) this.ready.set(key, nodes);
      else this.ready.delete(key);
      election.setReadyEndpointNodes(key, nodes);
    } else if (roll < 0.9) {
      this.policies = subset(r, policySpecs).map((spec, i) => policy(spec, `p${i}`)); // parsed afresh, as the agent does
      election.setPolicies(this.policies);
    } else {
      this.nodes = subset(r, nodeNames, 0.7).map((n) => randomNode(r, n));
      election.setNodes(this.nodes);
    }
  }

  reference(self: string): IPAnnouncement[] {
    return electAnnouncers({ policies: this.policies, services: [...this.services.values()], readyEndpointNodes: this.ready, nodes: this.nodes }, self);
  }
}

/** Applies a change stream to a copy, checking that each change starts from what the copy holds. */
function follow(copy: Map<string, IPAnnouncement>, changes: readonly AnnouncementChange[]): void {
  for (const c of changes) {
    expect(copy.get(c.ip)).toEqual(c.before);
    if (c.after) copy.set(c.ip, c.after);
    else copy.delete(c.ip);
  }
}

describe('IncrementalElection', () => {
  it('equals the full election after any sequence of random changes, elected in slices of any size', () => {
    for (let seed = 1; seed <= 150; seed++) {
      const r = seededRandom(seed);
      const self = pick(r, nodeNames);
      const election = new IncrementalElection(self);
      const world = new World(r, election);
      const copy = new Map<string, IPAnnouncement>();
      for (let step = 0; step < 40; step++) {
        world.change();
        if (r() < 0.4) {
          // A slice of random size, with more changes to come before the rest is elected.
          let budget = Math.floor(r() * 4);
          follow(copy, election.elect(() => budget-- > 0));
          continue;
        }
        follow(copy, election.elect());
        expect(election.pendingIPs).toBe(0);
        const expected = world.reference(self);
        expect(election.announcements(), `seed ${seed} step ${step}`).toEqual(expected);
        expect([...copy.values()].sort((a, b) => a.ip.localeCompare(b.ip))).toEqual([...expected].sort((a, b) => a.ip.localeCompare(b.ip)));
      }
    }
  });

  it('re-elects only the IPs of a changed service, and every IP after a new live set', () => {
    const svc = (key: string, ips: string[]): L2Service => ({ key, labels: {}, loadBalancerClass: undefined, loadBalancerIPs: ips, externalIPs: [], localTraffic: false });
    const election = new IncrementalElection('n0');
    election.setPolicies([policy({}, 'all')]);
    election.setNodes(nodeNames.slice(0, 2).map((n) => randomNode(seededRandom(7), n)));
    for (let i = 0; i < 100; i++) election.setService(`ns/s${i}`, svc(`ns/s${i}`, [`198.18.0.${i}`]));
    expect(election.elect()).toHaveLength(100);
    // Moving s1 onto s2's IP (a sharing key): s1's old IP goes, s2's IP gets both services.
    election.setService('ns/s1', svc('ns/s1', ['198.18.0.2']));
    expect(election.pendingIPs).toBe(2);
    const changes = election.elect();
    expect(changes.map((c) => [c.ip, c.after?.services])).toEqual([
      ['198.18.0.1', undefined],
      ['198.18.0.2', ['ns/s1', 'ns/s2']],
    ]);
    // Endpoints matter only to Local services: nothing to elect again.
    election.setReadyEndpointNodes('ns/s3', new Set(['n1']));
    expect(election.pendingIPs).toBe(0);
    election.setNodes(nodeNames.slice(0, 3).map((n) => randomNode(seededRandom(7), n)));
    expect(election.pendingIPs).toBe(99);
    let slice = 10;
    expect(election.elect(() => slice-- > 0).length).toBeLessThanOrEqual(10);
    expect(election.pendingIPs).toBe(89);
  });
});
