import { describe, expect, it } from 'vitest';
import { parseL2Policy, type L2Policy, type L2PolicySpec } from '../api/index.js';
import { electAnnouncers, excludeLabel, selectInterfaces, type ElectionInput, type L2Service, type LiveNode, type NodeCandidacy } from './election.js';

const policy = (spec: L2PolicySpec = {}, name = 'p'): L2Policy => {
  const parsed = parseL2Policy({ metadata: { name }, spec });
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.value;
};

const candidacy = (over: Partial<NodeCandidacy> = {}): NodeCandidacy => ({
  labels: {},
  ready: true,
  draining: false,
  interfaces: [
    { name: 'eth0', up: true, addresses: [{ ip: '198.18.0.10', prefixLength: 24 }, { ip: '2001:db8::10', prefixLength: 64 }] },
    { name: 'eth1', up: true, addresses: [{ ip: '198.19.0.10', prefixLength: 24 }] },
  ],
  defaultRoute: { ipv4: ['eth1'], ipv6: [] },
  ...over,
});

const node = (name: string, over: Partial<NodeCandidacy> = {}): LiveNode => ({ name, candidacy: candidacy(over) });

const service = (key: string, ips: string[], over: Partial<L2Service> = {}): L2Service => ({
  key,
  labels: { 'io.kubernetes.service.namespace': key.split('/')[0]!, 'io.kubernetes.service.name': key.split('/')[1]! },
  loadBalancerClass: undefined,
  loadBalancerIPs: ips,
  externalIPs: [],
  localTraffic: false,
  ...over,
});

const input = (over: Partial<ElectionInput>): ElectionInput => ({
  policies: [policy()],
  services: [],
  readyEndpointNodes: new Map(),
  nodes: [node('a'), node('b')],
  ...over,
});

describe('electAnnouncers', () => {
  it('elects exactly one node per IP, and every node computes the same choice', () => {
    const services = Array.from({ length: 50 }, (_, i) => service(`ns/s${i}`, [`198.18.0.${i + 20}`]));
    const inp = input({ services, nodes: [node('a'), node('b'), node('c')] });
    const views = ['a', 'b', 'c'].map((self) => electAnnouncers(inp, self));
    for (let i = 0; i < 50; i++) {
      const chosen = views[0]![i]!.node;
      expect(chosen).not.toBeNull();
      expect(views.map((v) => v[i]!.node)).toEqual([chosen, chosen, chosen]);
      expect(views.map((v) => v[i]!.reason).filter((r) => r === 'announcing')).toHaveLength(1);
      expect(views.map((v) => v[i]!.reason).sort()).toEqual(['announcing', 'not_elected', 'not_elected']);
    }
  });

  it('gives services that share an IP one announcer, listed once', () => {
    const out = electAnnouncers(input({ services: [service('ns/web', ['198.18.0.50']), service('ns/dns', ['198.18.0.50'])] }), 'a');
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ ip: '198.18.0.50', services: ['ns/dns', 'ns/web'], eligible: 2 });
  });

  it('answers on the interfaces in the IP subnet, else on the default route interface', () => {
    const out = electAnnouncers(input({ nodes: [node('a')], services: [service('ns/a', ['198.18.0.50', '203.0.113.5', '2001:db8::50'])] }), 'a');
    expect(out.map((o) => [o.ip, o.interfaces, o.reason])).toEqual([
      ['198.18.0.50', ['eth0'], 'announcing'],
      ['203.0.113.5', ['eth1'], 'announcing'],
      ['2001:db8::50', ['eth0'], 'announcing'],
    ]);
  });

  it('ignores an address with an impossible prefix length in a peer candidacy instead of throwing', () => {
    const odd = candidacy({
      interfaces: [{ name: 'eth0', up: true, addresses: [{ ip: '198.18.0.10', prefixLength: 24.5 }, { ip: '2001:db8::10', prefixLength: 129 }] }],
      defaultRoute: { ipv4: ['eth0'], ipv6: [] },
    });
    const out = electAnnouncers(input({ nodes: [node('a', odd)], services: [service('ns/a', ['198.18.0.50', '2001:db8::50'])] }), 'a');
    // No usable subnet: the IPv4 address goes out on the default route; IPv6 has none here.
    expect(out.map((o) => [o.ip, o.interfaces, o.reason])).toEqual([
      ['198.18.0.50', ['eth0'], 'announcing'],
      ['2001:db8::50', [], 'interface_not_found'],
    ]);
  });

  it('uses the policy patterns when given, and never an interface that is down', () => {
    const p = policy({ interfaces: ['^eth1$'] });
    const c = candidacy();
    expect(selectInterfaces(p, c, { family: 4, value: 0xc6120032n })).toEqual(['eth1']);
    const down = candidacy({ interfaces: c.interfaces.map((i) => (i.name === 'eth1' ? { ...i, up: false } : i)) });
    expect(selectInterfaces(p, down, { family: 4, value: 0xc6120032n })).toEqual([]);
    const out = electAnnouncers(input({ policies: [p], nodes: [node('a', down), node('b')], services: [service('ns/a', ['198.18.0.50'])] }), 'a');
    expect(out[0]).toMatchObject({ node: 'b', reason: 'interface_not_found', interfaces: ['eth1'] });
  });

  it('reports why this node does not announce', () => {
    const ip = ['198.18.0.50'];
    const reason = (over: Partial<ElectionInput>, self = 'a') => electAnnouncers(input(over), self)[0]!.reason;
    expect(reason({ policies: [] , services: [service('ns/a', ip)] })).toBe('no_policy');
    expect(reason({ policies: [policy({ serviceSelector: { matchLabels: { app: 'x' } } })], services: [service('ns/a', ip)] })).toBe('no_policy');
    expect(reason({ policies: [policy({ nodeSelector: { matchLabels: { role: 'edge' } } })], services: [service('ns/a', ip)], nodes: [node('a'), node('b', { labels: { role: 'edge' } })] })).toBe('node_not_selected');
    expect(reason({ services: [service('ns/a', ip)], nodes: [node('a', { labels: { [excludeLabel]: '' } }), node('b')] })).toBe('node_excluded');
    expect(reason({ services: [service('ns/a', ip)], nodes: [node('a', { ready: false }), node('b')] })).toBe('node_not_ready');
    expect(reason({ services: [service('ns/a', ip)], nodes: [node('a', { draining: true }), node('b')] })).toBe('node_draining');
    expect(reason({ services: [service('ns/a', ip)], nodes: [node('b')] })).toBe('node_not_live');
    const local = service('ns/a', ip, { localTraffic: true });
    expect(reason({ services: [local], readyEndpointNodes: new Map([['ns/a', new Set(['b'])]]) })).toBe('no_local_endpoints');
    expect(electAnnouncers(input({ services: [local], readyEndpointNodes: new Map([['ns/a', new Set(['b'])]]) }), 'a')[0]!.node).toBe('b');
    expect(electAnnouncers(input({ services: [local] }), 'a')[0]).toMatchObject({ node: null, eligible: 0 });
  });

  it('announces load balancer IPs and external IPs as the policy says, and leaves other classes alone', () => {
    const svc = service('ns/a', ['198.18.0.50'], { externalIPs: ['198.18.0.60', 'not-an-ip'] });
    const ips = (p: L2PolicySpec, s = svc) => electAnnouncers(input({ policies: [policy(p)], services: [s] }), 'a').filter((o) => o.reason !== 'no_policy').map((o) => o.ip);
    expect(ips({})).toEqual(['198.18.0.50']);
    expect(ips({ externalIPs: true })).toEqual(['198.18.0.50', '198.18.0.60']);
    expect(ips({ loadBalancerIPs: false, externalIPs: true })).toEqual(['198.18.0.60']);
    expect(ips({}, { ...svc, loadBalancerClass: 'beacon.io/l2-announcer' })).toEqual(['198.18.0.50']);
    expect(electAnnouncers(input({ services: [{ ...svc, loadBalancerClass: 'beacon.io/bgp-control-plane' }] }), 'a')).toEqual([]);
    expect(electAnnouncers(input({ services: [{ ...svc, loadBalancerClass: 'example.com/other' }] }), 'a')).toEqual([]);
  });

  it('spreads IPs evenly and moves only the share of a node that joins or leaves', () => {
    const services = Array.from({ length: 2000 }, (_, i) => service(`ns/s${i}`, [`198.18.${i >> 8}.${i & 255}`]));
    const names = ['node-1', 'node-2', 'node-3', 'node-4'];
    const owners = (nodes: string[]) => new Map(electAnnouncers(input({ services, nodes: nodes.map((n) => node(n)) }), nodes[0]!).map((o) => [o.ip, o.node]));
    const four = owners(names);
    const counts = names.map((n) => [...four.values()].filter((o) => o === n).length);
    for (const c of counts) expect(Math.abs(c - 500)).toBeLessThan(500 * 0.15);

    const five = owners([...names, 'node-5']);
    const moved = [...four].filter(([ip, owner]) => five.get(ip) !== owner);
    expect(moved.every(([ip]) => five.get(ip) === 'node-5')).toBe(true); // only to the newcomer
    expect(Math.abs(moved.length - 400)).toBeLessThan(400 * 0.2);

    const three = owners(names.slice(1));
    const movedOnLeave = [...four].filter(([ip, owner]) => three.get(ip) !== owner);
    expect(movedOnLeave.every(([, owner]) => owner === 'node-1')).toBe(true); // only the leaver's IPs
  });
});
