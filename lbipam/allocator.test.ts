import { describe, expect, it } from 'vitest';
import type { LoadBalancerIPPool, Service } from '../api/index.js';
import { cidrPool, pool, service } from '../test/fixtures.js';
import { Allocator } from './allocator.js';
import { poolInput, serviceInput } from './inputs.js';

const build = (pools: LoadBalancerIPPool[], services: Service[]) => new Allocator(pools.map(poolInput), services.map(serviceInput));
const ipsOf = (a: Allocator) => Object.fromEntries([...a.results()].map(([k, r]) => [k, r.ips.join(',')]));
const pi = (pools: LoadBalancerIPPool[]) => pools.map(poolInput);
const res = (a: Allocator, key: string) => a.result(key.includes('/') ? key : `default/${key}`);
/** The services with the statuses the allocator gave them, as the store would return them after a restart. */
const withStatus = (a: Allocator, services: Service[]): Service[] =>
  services.map((s) => ({ ...s, status: { loadBalancer: { ingress: (a.result(`${s.metadata.namespace}/${s.metadata.name}`)?.ips ?? []).map((ip) => ({ ip })) } } }));

describe('which services LB-IPAM serves', () => {
  it('serves LoadBalancer services with no class or a Beacon class, and leaves the rest alone', () => {
    const a = build([cidrPool('p', '198.18.0.0/29')], [
      service('plain'),
      service('l2', { loadBalancerClass: 'beacon.io/l2-announcer' }),
      service('bgp', { loadBalancerClass: 'beacon.io/bgp-control-plane' }),
      service('other', { loadBalancerClass: 'example.com/lb' }),
      service('cluster', { type: 'ClusterIP' }),
    ]);
    expect(ipsOf(a)).toEqual({ 'default/bgp': '198.18.0.1', 'default/l2': '198.18.0.2', 'default/plain': '198.18.0.3' });
  });

  it('releases the IPs of a service that stops qualifying, and gives them to the oldest waiting service', () => {
    const a = build([pool('p', { blocks: [{ start: '198.18.0.10' }] })], [
      service('first', { created: '2026-01-01T00:00:00Z' }),
      service('second', { created: '2026-01-03T00:00:00Z' }),
      service('third', { created: '2026-01-02T00:00:00Z' }),
    ]);
    expect(res(a, 'first')?.ips).toEqual(['198.18.0.10']);
    expect(res(a, 'third')).toMatchObject({ satisfied: false, reason: 'out_of_ips' });
    a.drainChanged();
    a.upsertService(serviceInput(service('first', { type: 'NodePort' })));
    expect(res(a, 'first')).toBeUndefined();
    expect(res(a, 'third')?.ips).toEqual(['198.18.0.10']);
    expect(res(a, 'second')?.reason).toBe('out_of_ips');
    expect(a.drainChanged()).toEqual(['default/first', 'default/third']);
  });
});

describe('pool blocks', () => {
  it('skips the first and last address of CIDR blocks unless allowed, never for /31, /32 and ranges', () => {
    const counts = (p: LoadBalancerIPPool) => build([p], []).pools()[0]!.total;
    expect(counts(cidrPool('a', '198.18.0.0/30'))).toBe(2n);
    expect(counts(pool('a', { blocks: [{ cidr: '198.18.0.0/30' }], allowFirstLastIPs: 'Yes' }))).toBe(4n);
    expect(counts(cidrPool('a', '198.18.0.0/31'))).toBe(2n);
    expect(counts(cidrPool('a', '198.18.0.0/32'))).toBe(1n);
    expect(counts(cidrPool('a', '2001:db8::/127', '2001:db8::10/128'))).toBe(3n);
    expect(counts(cidrPool('a', '2001:db8::/64'))).toBe((1n << 64n) - 2n);
    expect(counts(pool('a', { blocks: [{ start: '198.18.0.0', stop: '198.18.0.255' }] }))).toBe(256n);
    const a = build([cidrPool('a', '198.18.0.0/30')], [service('x'), service('y'), service('z')]);
    expect(ipsOf(a)).toEqual({ 'default/x': '198.18.0.1', 'default/y': '198.18.0.2', 'default/z': '' });
  });

  it('costs the same for a /8 and a /64 as for a /28: counts are exact and allocation is immediate', () => {
    const a = build([cidrPool('huge', '240.0.0.0/8', '2001:db8::/64')], [service('v4'), service('v6', { ipFamilies: ['IPv6'] })]);
    expect(a.pools()[0]).toMatchObject({ total: (1n << 24n) - 2n + (1n << 64n) - 2n, used: 2n });
    expect(ipsOf(a)).toEqual({ 'default/v4': '240.0.0.1', 'default/v6': '2001:db8::1' });
  });

  it('reports invalid blocks on the pool and keeps the IPs its services hold', () => {
    const bad = pool('p', { blocks: [{ cidr: '198.18.0.0/24' }, { start: '198.18.1.9', stop: '198.18.1.1' }, { start: '198.18.2.1', stop: '2001:db8::1' }, { cidr: '198.18.3.1/24' }] });
    const a = build([bad], [service('held', { ips: ['198.18.0.7'] }), service('new')]);
    const p = a.pools()[0]!;
    expect(p.invalid).toMatch(/start 198\.18\.1\.9 is after stop 198\.18\.1\.1/);
    expect(p.invalid).toMatch(/different families/);
    expect(p.invalid).toMatch(/host bits set/);
    expect(res(a, 'held')).toMatchObject({ ips: ['198.18.0.7'], satisfied: true });
    expect(res(a, 'new')).toMatchObject({ ips: [], satisfied: false, reason: 'no_pool' });
  });
});

describe('pool choice', () => {
  it('uses the preferred pool with room: lower priority first, no priority last, ties by name', () => {
    const pools = [
      pool('z-none', { blocks: [{ start: '198.18.0.1' }] }),
      pool('b-two', { blocks: [{ start: '198.18.0.2' }], priority: 2 }),
      pool('a-two', { blocks: [{ start: '198.18.0.3' }], priority: 2 }),
      pool('c-one', { blocks: [{ start: '198.18.0.4' }], priority: 1 }),
    ];
    const created = (d: number) => `2026-01-0${d}T00:00:00Z`;
    const a = build(pools, [1, 2, 3, 4, 5].map((d) => service(`s${d}`, { created: created(d) })));
    expect(ipsOf(a)).toEqual({ 'default/s1': '198.18.0.4', 'default/s2': '198.18.0.3', 'default/s3': '198.18.0.2', 'default/s4': '198.18.0.1', 'default/s5': '' });
  });

  it('selects by labels and by the virtual namespace and name labels', () => {
    const pools = [
      pool('tenant-a', { blocks: [{ cidr: '198.18.1.0/30' }], serviceSelector: { matchLabels: { 'io.kubernetes.service.namespace': 'tenant-a' } } }),
      pool('web', { blocks: [{ cidr: '198.18.2.0/30' }], serviceSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['web'] }] } }),
    ];
    const a = build(pools, [service('tenant-a/x'), service('other/y', { labels: { tier: 'web' } }), service('other/z')]);
    expect(res(a, 'tenant-a/x')?.ips).toEqual(['198.18.1.1']);
    expect(res(a, 'other/y')?.ips).toEqual(['198.18.2.1']);
    expect(res(a, 'other/z')).toMatchObject({ satisfied: false, reason: 'pool_selector_mismatch', message: 'no IPv4 pool selects this service' });
  });

  it('honours a named pool (Beacon and MetalLB annotations)', () => {
    const pools = [cidrPool('a', '198.18.1.0/30'), cidrPool('b', '198.18.2.0/30')];
    const a = build(pools, [
      service('x', { annotations: { 'beacon.io/pool': 'b' } }),
      service('y', { annotations: { 'metallb.io/address-pool': 'b' } }),
      service('z', { annotations: { 'beacon.io/pool': 'nope' } }),
    ]);
    expect(ipsOf(a)).toEqual({ 'default/x': '198.18.2.1', 'default/y': '198.18.2.2', 'default/z': '' });
    expect(res(a, 'z')).toMatchObject({ reason: 'no_pool', message: 'pool nope (annotation) does not exist' });
  });

  it('makes no new allocations from a disabled pool, and keeps existing ones there', () => {
    const disabled = pool('p', { blocks: [{ cidr: '198.18.0.0/29' }], disabled: true });
    const a = build([disabled], [service('old', { ips: ['198.18.0.5'] }), service('new')]);
    expect(res(a, 'old')).toMatchObject({ ips: ['198.18.0.5'], satisfied: true });
    expect(res(a, 'new')).toMatchObject({ satisfied: false, reason: 'no_pool', message: 'every IPv4 pool selecting this service is disabled: p' });
    expect(a.pools()[0]).toMatchObject({ used: 1n, available: 5n });
  });
});

describe('requested IPs', () => {
  const pools = [cidrPool('p', '198.18.0.0/28', '2001:db8::/120')];

  it('takes them from beacon.io/ips, Cilium and MetalLB annotations, and spec.loadBalancerIP', () => {
    const a = build(pools, [
      service('a', { annotations: { 'beacon.io/ips': '198.18.0.9' } }),
      service('b', { annotations: { 'lbipam.cilium.io/ips': '198.18.0.10' } }),
      service('c', { annotations: { 'metallb.io/loadBalancerIPs': '198.18.0.11,2001:db8::11' }, ipFamilyPolicy: 'RequireDualStack' }),
      service('d', { loadBalancerIP: '198.18.0.12' }),
      service('e'),
    ]);
    expect(ipsOf(a)).toEqual({
      'default/a': '198.18.0.9',
      'default/b': '198.18.0.10',
      'default/c': '198.18.0.11,2001:db8::11',
      'default/d': '198.18.0.12',
      'default/e': '198.18.0.1',
    });
  });

  it('refuses a request outside every pool, or held by another service, with a reason', () => {
    const a = build(pools, [
      service('holder', { annotations: { 'beacon.io/ips': '198.18.0.9' }, created: '2026-01-01T00:00:00Z' }),
      service('late', { annotations: { 'beacon.io/ips': '198.18.0.9' }, created: '2026-01-02T00:00:00Z' }),
      service('outside', { annotations: { 'beacon.io/ips': '198.19.0.1' } }),
      service('edge', { annotations: { 'beacon.io/ips': '198.18.0.15' } }),
    ]);
    expect(res(a, 'late')).toMatchObject({ satisfied: false, reason: 'already_allocated', message: 'requested IP 198.18.0.9 is held by default/holder: default/holder holds it without a sharing key' });
    expect(res(a, 'outside')).toMatchObject({ satisfied: false, reason: 'no_pool' });
    expect(res(a, 'edge')).toMatchObject({ satisfied: false, reason: 'no_pool', message: 'requested IP 198.18.0.15 is not in any usable pool' });
  });

  it('answers malformed requests with invalid_request and keeps what the service holds', () => {
    const a = build(pools, [
      service('typo', { annotations: { 'beacon.io/ips': '198.18.0.300' }, ips: ['198.18.0.4'] }),
      service('family', { annotations: { 'beacon.io/ips': '2001:db8::5' }, ipFamilies: ['IPv4'] }),
      service('two', { annotations: { 'beacon.io/ips': '198.18.0.5,198.18.0.6' } }),
      service('dual', { annotations: { 'beacon.io/ips': '198.18.0.7' }, ipFamilyPolicy: 'RequireDualStack' }),
      service('next'),
    ]);
    expect(res(a, 'typo')).toMatchObject({ ips: ['198.18.0.4'], satisfied: false, reason: 'invalid_request', message: 'requested IP "198.18.0.300" is not a valid address; keeping the addresses it holds' });
    expect(res(a, 'family')?.message).toBe('requested IP 2001:db8::5 is IPv6, not in spec.ipFamilies');
    expect(res(a, 'two')?.message).toMatch(/at most one requested IP per family/);
    expect(res(a, 'dual')?.message).toBe('RequireDualStack needs one requested IP of each family');
    expect(res(a, 'next')?.ips).toEqual(['198.18.0.1']);
  });

  it('moves a service to its new request and frees the old address', () => {
    const a = build(pools, [service('s', { annotations: { 'beacon.io/ips': '198.18.0.9' } })]);
    a.upsertService(serviceInput(service('s', { annotations: { 'beacon.io/ips': '198.18.0.10' } })));
    expect(res(a, 's')?.ips).toEqual(['198.18.0.10']);
    expect(a.pools()[0]!.used).toBe(1n);
  });
});

describe('sharing', () => {
  const pools = [cidrPool('p', '198.18.0.0/28')];
  const share = (key: string, port: number, protocol: 'TCP' | 'UDP', extra: Record<string, string> = {}, opts: object = {}) =>
    service(key, { annotations: { 'beacon.io/sharing-key': 'k', ...extra }, ports: [{ port, protocol }], ...opts });

  it('shares one IP between compatible services of one namespace', () => {
    const a = build(pools, [share('ns/tcp', 53, 'TCP'), share('ns/udp', 53, 'UDP')]);
    expect(ipsOf(a)).toEqual({ 'ns/tcp': '198.18.0.1', 'ns/udp': '198.18.0.1' });
    expect(res(a, 'ns/udp')?.message).toBe('assigned 198.18.0.1 from pool p (sharing key k)');
    expect(a.pools()[0]!.used).toBe(1n);
  });

  it('gives each its own IP, with the reason, when ports overlap, policies differ or pods differ under Local', () => {
    const a = build(pools, [
      share('ns/a', 80, 'TCP', {}, { created: '2026-01-01T00:00:00Z' }),
      share('ns/b', 80, 'TCP', {}, { created: '2026-01-02T00:00:00Z' }),
      share('ns/c', 81, 'TCP', {}, { externalTrafficPolicy: 'Local', created: '2026-01-03T00:00:00Z' }),
    ]);
    expect(ipsOf(a)).toEqual({ 'ns/a': '198.18.0.1', 'ns/b': '198.18.0.2', 'ns/c': '198.18.0.3' });
    expect(res(a, 'ns/b')?.message).toContain('not shared with 198.18.0.1: ns/a also uses port 80/TCP');
    expect(res(a, 'ns/c')?.message).toContain('ns/a has externalTrafficPolicy Cluster');
    const local = build(pools, [
      share('ns/x', 80, 'TCP', {}, { externalTrafficPolicy: 'Local', selector: { app: 'x' } }),
      share('ns/y', 81, 'TCP', {}, { externalTrafficPolicy: 'Local', selector: { app: 'y' } }),
      share('ns/z', 82, 'TCP', {}, { externalTrafficPolicy: 'Local', selector: { app: 'x' } }),
    ]);
    expect(ipsOf(local)).toEqual({ 'ns/x': '198.18.0.1', 'ns/y': '198.18.0.2', 'ns/z': '198.18.0.1' });
  });

  it('shares across namespaces only when each allows the other (Beacon or Cilium annotations)', () => {
    const one = build(pools, [share('a/s', 80, 'TCP', { 'beacon.io/sharing-cross-namespace': 'b' }), share('b/s', 81, 'TCP')]);
    expect(ipsOf(one)).toEqual({ 'a/s': '198.18.0.1', 'b/s': '198.18.0.2' });
    const both = build(pools, [
      share('a/s', 80, 'TCP', { 'beacon.io/sharing-cross-namespace': 'b' }),
      share('b/s', 81, 'TCP', { 'lbipam.cilium.io/sharing-cross-namespace': '*' }),
    ]);
    expect(ipsOf(both)).toEqual({ 'a/s': '198.18.0.1', 'b/s': '198.18.0.1' });
  });

  it('shares a requested IP with compatible holders and refuses incompatible ones', () => {
    const a = build(pools, [
      share('ns/a', 80, 'TCP', { 'beacon.io/ips': '198.18.0.9' }, { created: '2026-01-01T00:00:00Z' }),
      share('ns/b', 443, 'TCP', { 'beacon.io/ips': '198.18.0.9' }, { created: '2026-01-02T00:00:00Z' }),
      share('ns/c', 80, 'TCP', { 'beacon.io/ips': '198.18.0.9' }, { created: '2026-01-03T00:00:00Z' }),
    ]);
    expect(ipsOf(a)).toEqual({ 'ns/a': '198.18.0.9', 'ns/b': '198.18.0.9', 'ns/c': '' });
    expect(res(a, 'ns/c')).toMatchObject({ reason: 'already_allocated_incompatible_service' });
  });

  it('moves the service whose change broke the share, not the others', () => {
    const a = build(pools, [share('ns/a', 80, 'TCP'), share('ns/b', 81, 'TCP')]);
    expect(ipsOf(a)).toEqual({ 'ns/a': '198.18.0.1', 'ns/b': '198.18.0.1' });
    a.upsertService(serviceInput(share('ns/a', 81, 'TCP')));
    expect(ipsOf(a)).toEqual({ 'ns/a': '198.18.0.2', 'ns/b': '198.18.0.1' });
  });
});

describe('dual-stack', () => {
  const v4 = cidrPool('v4', '198.18.0.0/29');
  const v6 = cidrPool('v6', '2001:db8::/125');

  it('follows ipFamilyPolicy and ipFamilies order', () => {
    const a = build([v4, v6], [
      service('single6', { ipFamilies: ['IPv6'], created: '2026-01-01T00:00:00Z' }),
      service('require', { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv6', 'IPv4'], created: '2026-01-02T00:00:00Z' }),
      service('prefer', { ipFamilyPolicy: 'PreferDualStack', created: '2026-01-03T00:00:00Z' }),
      service('plain', { created: '2026-01-04T00:00:00Z' }),
    ]);
    expect(res(a, 'single6')?.ips).toEqual(['2001:db8::1']);
    expect(res(a, 'require')?.ips).toEqual(['2001:db8::2', '198.18.0.1']);
    expect(res(a, 'prefer')?.ips).toEqual(['198.18.0.2', '2001:db8::3']);
    expect(res(a, 'plain')?.ips).toEqual(['198.18.0.3']);
  });

  it('RequireDualStack takes nothing unless it gets both; PreferDualStack takes what there is and completes later', () => {
    const services = [service('require', { ipFamilyPolicy: 'RequireDualStack' }), service('prefer', { ipFamilyPolicy: 'PreferDualStack' })];
    const a = new Allocator([poolInput(v4)], services.map(serviceInput));
    expect(res(a, 'require')).toMatchObject({ ips: [], satisfied: false, reason: 'no_pool', message: 'no usable pool has IPv6 addresses' });
    expect(res(a, 'prefer')).toMatchObject({ ips: ['198.18.0.1'], satisfied: true });
    expect(res(a, 'prefer')?.message).toContain('not dual-stack: no usable pool has IPv6 addresses');
    a.setPools(pi([v4, v6]));
    expect(res(a, 'require')?.ips).toEqual(['198.18.0.2', '2001:db8::2']);
    expect(res(a, 'prefer')?.ips).toEqual(['198.18.0.1', '2001:db8::1']);
  });

  it('a single-stack service without ipFamilies takes IPv6 when only IPv6 pools exist', () => {
    expect(res(build([v6], [service('s')]), 's')?.ips).toEqual(['2001:db8::1']);
  });
});

describe('conflicts', () => {
  it('marks the newer of two overlapping pools as conflicting and names the older one', () => {
    const a = build([pool('new', { blocks: [{ cidr: '198.18.0.0/29' }] }, '2026-02-01T00:00:00Z'), pool('old', { blocks: [{ start: '198.18.0.4', stop: '198.18.0.20' }] }, '2026-01-01T00:00:00Z')], [service('s')]);
    const [nw, old] = a.pools();
    expect(nw).toMatchObject({ name: 'new', conflicting: true, message: 'conflicting: block 198.18.0.0/29 overlaps block 198.18.0.4-198.18.0.20 of older pool old; its blocks are not used' });
    expect(old).toMatchObject({ conflicting: false });
    expect(res(a, 's')?.ips).toEqual(['198.18.0.4']);
  });

  it('breaks creation-time ties by name and detects overlaps inside one pool', () => {
    const a = build([cidrPool('b', '198.18.0.0/28'), cidrPool('a', '198.18.0.8/29'), cidrPool('self', '198.18.1.0/24', '198.18.1.128/25')], []);
    expect(Object.fromEntries(a.pools().map((p) => [p.name, p.conflicting]))).toEqual({ a: false, b: true, self: true });
    expect(a.pools().find((p) => p.name === 'self')?.message).toMatch(/blocks 198\.18\.1\.0\/24 and 198\.18\.1\.128\/25 of this pool overlap/);
  });

  it('moves only the services whose IPs left every usable range when a pool becomes conflicting', () => {
    const older = pool('older', { blocks: [{ cidr: '198.18.0.0/28' }] }, '2026-01-01T00:00:00Z');
    const other = pool('other', { blocks: [{ cidr: '198.18.1.0/28' }] }, '2026-01-02T00:00:00Z');
    const a = build([other], [service('x', { ips: ['198.18.1.1'] }), service('y', { ips: ['198.18.1.2'] })]);
    // `other` grows into an address range an older pool already has: it conflicts from now on.
    a.setPools(pi([older, pool('other', { blocks: [{ cidr: '198.18.1.0/28' }, { cidr: '198.18.0.0/30' }] }, '2026-01-02T00:00:00Z')]));
    expect(ipsOf(a)).toEqual({ 'default/x': '198.18.0.1', 'default/y': '198.18.0.2' });
    a.setPools(pi([older, other]));
    expect(ipsOf(a)).toEqual({ 'default/x': '198.18.0.1', 'default/y': '198.18.0.2' });
  });
});

describe('stability', () => {
  const pools = [cidrPool('p', '198.18.0.0/28', '2001:db8::/120'), cidrPool('q', '198.18.1.0/28')];
  const services = [
    service('a/one', { created: '2026-01-05T00:00:00Z' }),
    service('a/two', { created: '2026-01-01T00:00:00Z', ipFamilyPolicy: 'RequireDualStack' }),
    service('b/three', { created: '2026-01-03T00:00:00Z', annotations: { 'beacon.io/sharing-key': 'k' } }),
    service('b/four', { created: '2026-01-03T00:00:00Z', annotations: { 'beacon.io/sharing-key': 'k' }, ports: [{ port: 81, protocol: 'TCP' }] }),
    service('b/five', { created: '2026-01-02T00:00:00Z', annotations: { 'beacon.io/ips': '198.18.1.5' } }),
  ];

  it('rebuilds exactly the same assignments from statuses, whatever the input order', () => {
    const live = build(pools, []);
    for (const s of [...services].reverse()) live.upsertService(serviceInput(s));
    const statuses = withStatus(live, services);
    for (const order of [statuses, [...statuses].reverse(), [statuses[2]!, statuses[0]!, statuses[4]!, statuses[1]!, statuses[3]!]]) {
      const rebuilt = build([...pools].reverse(), order);
      expect(rebuilt.results()).toEqual(live.results());
    }
  });

  it('keeps every assignment when an unrelated service or pool changes', () => {
    const a = build(pools, services);
    const before = ipsOf(a);
    a.upsertService(serviceInput(service('c/new')));
    a.deleteService('c/new');
    a.setPools(pi([...pools, cidrPool('r', '198.18.2.0/28')]));
    a.upsertService(serviceInput(service('a/one', { created: '2026-01-05T00:00:00Z', labels: { edited: 'yes' }, ports: [{ port: 8080, protocol: 'TCP' }] })));
    expect(ipsOf(a)).toEqual(before);
  });

  it('moves a service only when its IP leaves every usable range (pool shrunk or deleted)', () => {
    const a = build([cidrPool('p', '198.18.0.0/29', '198.18.0.8/29')], [service('low', { ips: ['198.18.0.2'] }), service('high', { ips: ['198.18.0.9'] })]);
    a.drainChanged();
    a.setPools(pi([cidrPool('p', '198.18.0.0/29')]));
    expect(ipsOf(a)).toEqual({ 'default/low': '198.18.0.2', 'default/high': '198.18.0.1' });
    expect(a.drainChanged()).toEqual(['default/high']);
    a.setPools(pi([]));
    expect(res(a, 'low')).toMatchObject({ ips: [], reason: 'no_pool' });
  });

  it('gives a pool selector change effect on held IPs: a service no longer selected moves', () => {
    const sel = (v: string) => pool('p', { blocks: [{ cidr: '198.18.0.0/29' }], serviceSelector: { matchLabels: { team: v } } });
    const a = build([sel('a'), cidrPool('fallback', '198.18.5.0/29')], [service('s', { labels: { team: 'a' }, ips: ['198.18.0.3'] })]);
    expect(res(a, 's')?.ips).toEqual(['198.18.0.3']);
    a.setPools(pi([sel('b'), cidrPool('fallback', '198.18.5.0/29')]));
    expect(res(a, 's')?.ips).toEqual(['198.18.5.1']);
  });

  it('serves waiting services oldest first when room appears', () => {
    const a = build([pool('p', { blocks: [{ start: '198.18.0.1' }] })], [
      service('holder', { created: '2026-01-01T00:00:00Z' }),
      service('young', { created: '2026-01-09T00:00:00Z' }),
      service('old', { created: '2026-01-02T00:00:00Z' }),
    ]);
    a.deleteService('default/holder');
    expect(res(a, 'old')?.ips).toEqual(['198.18.0.1']);
    expect(res(a, 'young')?.reason).toBe('out_of_ips');
  });

  it('resolves two statuses naming one IP in favour of the older service', () => {
    const a = build([cidrPool('p', '198.18.0.0/29')], [
      service('young', { created: '2026-01-02T00:00:00Z', ips: ['198.18.0.3'] }),
      service('old', { created: '2026-01-01T00:00:00Z', ips: ['198.18.0.3'] }),
    ]);
    expect(ipsOf(a)).toEqual({ 'default/old': '198.18.0.3', 'default/young': '198.18.0.1' });
  });
});
