import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatIP, parseIP, type Endpoint, type EndpointSlice, type Family, type Service, type ServicePort, type ServiceSpec } from '../api/index.js';
import { endpoint as ep, endpointSlice as slice } from '../test/fixtures.js';
import { backendKey, buildFrontends, endpointSortKey, frontendKey, portEndpoints, type Backend, type FrontendInput, type PortEndpoints, type Protocol } from './model.js';

const service = (name: string, spec: ServiceSpec, extra: Partial<Pick<Service, 'status'>> & { annotations?: Record<string, string> } = {}): Service => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'ns', ...(extra.annotations ? { annotations: extra.annotations } : {}) },
  spec,
  ...(extra.status ? { status: extra.status } : {}),
});

const httpPort = [{ name: 'http', port: 80, protocol: 'TCP' as const }];

const build = (input: Partial<FrontendInput>) =>
  buildFrontends({ services: [], slices: [], nodeName: 'node-a', nodeAddresses: [], defaultAlgorithm: 'random', ...input });

const summary = (input: Partial<FrontendInput>) =>
  build(input).frontends.map((f) => `${f.type} ${frontendKey(f)} -> ${f.selected.map((b) => `${b.address}:${b.port}`).join(',')}`);

describe('frontendKey', () => {
  it('brackets IPv6', () => {
    expect(frontendKey({ address: '2001:db8::1', port: 80, protocol: 'TCP' })).toBe('[2001:db8::1]:80/TCP');
    expect(frontendKey({ address: '198.18.0.1', port: 53, protocol: 'UDP' })).toBe('198.18.0.1:53/UDP');
  });
});

describe('buildFrontends', () => {
  it('makes a frontend per port and address: cluster IPs, LB ingress, external IPs, node ports on each node address', () => {
    const svc = service(
      'web',
      {
        type: 'LoadBalancer',
        clusterIPs: ['198.18.100.1', '2001:db8:100::1'],
        externalIPs: ['198.18.50.5'],
        ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080, targetPort: 'http' }],
      },
      { status: { loadBalancer: { ingress: [{ ip: '198.18.10.1' }, { hostname: 'lb.example' }] } } },
    );
    const slices = [
      slice('web-v4', 'web', [ep('198.18.1.2', 'node-b'), ep('198.18.1.1', 'node-a')]),
      slice('web-v6', 'web', [ep('2001:db8:1::1', 'node-a')], { addressType: 'IPv6' }),
    ];
    expect(summary({ services: [svc], slices, nodeAddresses: ['198.18.0.10', '2001:db8::a'] })).toEqual([
      'NodePort 198.18.0.10:30080/TCP -> 198.18.1.1:8080,198.18.1.2:8080',
      'LoadBalancer 198.18.10.1:80/TCP -> 198.18.1.1:8080,198.18.1.2:8080',
      'ExternalIP 198.18.50.5:80/TCP -> 198.18.1.1:8080,198.18.1.2:8080',
      'ClusterIP 198.18.100.1:80/TCP -> 198.18.1.1:8080,198.18.1.2:8080',
      'NodePort [2001:db8::a]:30080/TCP -> 2001:db8:1::1:8080',
      'ClusterIP [2001:db8:100::1]:80/TCP -> 2001:db8:1::1:8080',
    ]);
  });

  it('skips headless and ExternalName services, LB ingress of other types, node ports of ClusterIP services', () => {
    const services = [
      service('headless', { clusterIP: 'None', ports: httpPort }),
      service('empty', { clusterIP: '', ports: httpPort }),
      service('ext', { type: 'ExternalName', clusterIP: '198.18.100.9', ports: httpPort }),
      service('cip', { clusterIP: '198.18.100.2', ports: [{ ...httpPort[0]!, nodePort: 30001 }] }, { status: { loadBalancer: { ingress: [{ ip: '198.18.10.2' }] } } }),
    ];
    expect(summary({ services, nodeAddresses: ['198.18.0.10'] })).toEqual(['ClusterIP 198.18.100.2:80/TCP -> ']);
  });

  it('matches endpoint ports by name, unnamed to unnamed, and takes the slice port number', () => {
    const services = [
      service('multi', { clusterIP: '198.18.100.3', ports: [{ name: 'http', port: 80 }, { name: 'metrics', port: 9090 }] }),
      service('single', { clusterIP: '198.18.100.4', ports: [{ port: 53, protocol: 'UDP' }] }),
    ];
    const slices = [
      slice('multi-1', 'multi', [ep('198.18.1.1', 'node-a')], { ports: [{ name: 'http', port: 8080 }, { name: 'metrics', port: 9100 }] }),
      slice('single-1', 'single', [ep('198.18.2.1', 'node-a')], { ports: [{ name: '', port: 5353, protocol: 'UDP' }] }),
      slice('single-2', 'single', [ep('198.18.2.2', 'node-a')], { ports: [{ port: 5354, protocol: 'UDP' }] }),
    ];
    expect(summary({ services, slices })).toEqual([
      'ClusterIP 198.18.100.3:80/TCP -> 198.18.1.1:8080',
      'ClusterIP 198.18.100.3:9090/TCP -> 198.18.1.1:9100',
      'ClusterIP 198.18.100.4:53/UDP -> 198.18.2.1:5353,198.18.2.2:5354',
    ]);
  });

  it('ignores FQDN and unlabelled slices, other services’ slices, and mismatched families; merges duplicates across slices', () => {
    const services = [service('web', { clusterIP: '198.18.100.5', ports: httpPort })];
    const slices = [
      slice('a', 'web', [ep('198.18.1.1', 'node-a', { ready: false, serving: false, terminating: true })]),
      slice('b', 'web', [ep('198.18.1.1', 'node-a'), ep('2001:db8::5', 'node-a')]),
      slice('c', 'web', [ep('db.example', 'node-a')], { addressType: 'FQDN' }),
      slice('d', 'other', [ep('198.18.9.9', 'node-a')]),
      { ...slice('e', 'web', [ep('198.18.8.8', 'node-a')]), metadata: { name: 'e', namespace: 'ns' } },
    ];
    const [frontend] = build({ services, slices }).frontends;
    expect(frontend?.backends).toEqual([{ address: '198.18.1.1', port: 8080, protocol: 'TCP', state: 'active', nodeName: 'node-a' }]);
    expect(frontend?.selected).toHaveLength(1);
  });

  describe('selection (KEP-1669)', () => {
    const svc = (spec: Partial<ServiceSpec> = {}) =>
      service('web', { type: 'NodePort', clusterIP: '198.18.100.6', ports: [{ ...httpPort[0]!, nodePort: 30080 }], ...spec });
    const endpoints = [
      ep('198.18.1.1', 'node-a', { ready: true }),
      ep('198.18.1.2', 'node-b'),
      ep('198.18.1.3', 'node-a', { ready: false, serving: true, terminating: true }),
      ep('198.18.1.4', 'node-b', { ready: false, serving: true, terminating: true }),
      ep('198.18.1.5', 'node-a', { ready: false, serving: false, terminating: true }),
      ep('198.18.1.6', 'node-b', { ready: false }),
    ];
    const selected = (spec: Partial<ServiceSpec>, eps: Endpoint[]) =>
      build({ services: [svc(spec)], slices: [slice('s', 'web', eps)], nodeAddresses: ['198.18.0.10'] }).frontends.map(
        (f) => `${f.type}: ${f.selected.map((b) => `${b.address.slice(-1)}${b.state === 'terminating' ? 't' : ''}`).join(' ')}`,
      );

    it('takes ready endpoints (absent ready = ready), shows all with their state', () => {
      expect(selected({}, endpoints)).toEqual(['NodePort: 1 2', 'ClusterIP: 1 2']);
      const [frontend] = build({ services: [svc()], slices: [slice('s', 'web', endpoints)] }).frontends;
      expect(frontend?.backends.map((b) => b.state)).toEqual(['active', 'active', 'terminating', 'terminating', 'terminating', 'active']);
    });

    it('falls back to serving terminating endpoints, then to none', () => {
      const notReady = endpoints.slice(2);
      expect(selected({}, notReady)).toEqual(['NodePort: 3t 4t', 'ClusterIP: 3t 4t']);
      expect(selected({}, notReady.slice(2))).toEqual(['NodePort: ', 'ClusterIP: ']);
    });

    it('applies internalTrafficPolicy to cluster IPs and externalTrafficPolicy to the rest, each with its own fallback', () => {
      expect(selected({ internalTrafficPolicy: 'Local' }, endpoints)).toEqual(['NodePort: 1 2', 'ClusterIP: 1']);
      expect(selected({ externalTrafficPolicy: 'Local' }, endpoints)).toEqual(['NodePort: 1', 'ClusterIP: 1 2']);
      // node-a has no ready endpoint left: its serving terminating one is used, node-b's never.
      expect(selected({ externalTrafficPolicy: 'Local' }, endpoints.slice(1))).toEqual(['NodePort: 3t', 'ClusterIP: 2']);
      expect(selected({ externalTrafficPolicy: 'Local' }, [endpoints[1]!])).toEqual(['NodePort: ', 'ClusterIP: 2']);
    });
  });

  it('reads the algorithm from annotations, Beacon’s before Cilium’s, and reports unknown values', () => {
    const spec = { clusterIP: '198.18.100.7', ports: httpPort };
    const { frontends, problems } = build({
      services: [
        service('a', spec, { annotations: { 'service.cilium.io/lb-algorithm': 'maglev' } }),
        service('b', { ...spec, clusterIP: '198.18.100.8' }, { annotations: { 'beacon.io/lb-algorithm': 'random', 'service.cilium.io/lb-algorithm': 'maglev' } }),
        service('c', { ...spec, clusterIP: '198.18.100.9' }, { annotations: { 'beacon.io/lb-algorithm': 'round-robin' } }),
        service('d', { ...spec, clusterIP: '198.18.100.10' }),
      ],
      defaultAlgorithm: 'maglev',
    });
    expect(frontends.map((f) => `${f.service}=${f.algorithm}`)).toEqual(['ns/a=maglev', 'ns/b=random', 'ns/c=maglev', 'ns/d=maglev']);
    expect(problems).toEqual([{ service: 'ns/c', reason: 'invalid_lb_algorithm', message: 'beacon.io/lb-algorithm: "round-robin" is not random or maglev; using maglev' }]);
  });

  it('sets ClientIP affinity with Kubernetes’ default timeout', () => {
    const spec = { clusterIP: '198.18.100.11', ports: httpPort };
    const { frontends } = build({
      services: [
        service('a', { ...spec, sessionAffinity: 'ClientIP' }),
        service('b', { ...spec, clusterIP: '198.18.100.12', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }),
        service('c', { ...spec, clusterIP: '198.18.100.13', sessionAffinity: 'None' }),
      ],
    });
    expect(frontends.map((f) => f.affinityTimeoutSeconds)).toEqual([10800, 60, undefined]);
  });

  it('reports SCTP ports, bad addresses and frontends two services claim, and keeps serving the rest', () => {
    const { frontends, problems } = build({
      services: [
        service('b', { clusterIP: '198.18.100.14', externalIPs: ['198.18.50.1', 'not-an-ip'], ports: [...httpPort, { name: 'sig', port: 2905, protocol: 'SCTP' }] }),
        service('a', { clusterIP: '198.18.100.15', externalIPs: ['198.18.50.1'], ports: httpPort }),
      ],
      nodeAddresses: ['bogus'],
    });
    expect(frontends.map((f) => `${f.service} ${frontendKey(f)}`)).toEqual(['ns/a 198.18.50.1:80/TCP', 'ns/b 198.18.100.14:80/TCP', 'ns/a 198.18.100.15:80/TCP']);
    expect(problems.map((p) => `${p.service}: ${p.reason}`)).toEqual([': invalid_address', 'ns/b: invalid_address', 'ns/b: sctp_unsupported', 'ns/b: frontend_conflict']);
    expect(problems[3]?.message).toBe('198.18.50.1:80/TCP is already served for ns/a');
  });

  it('writes addresses canonically and is independent of input order', () => {
    const services = [
      service('v6', { clusterIP: '2001:DB8:0:0::1', ports: httpPort }),
      service('v4', { clusterIP: '198.18.100.16', ports: httpPort }),
    ];
    const slices = [slice('x', 'v6', [ep('2001:db8:0::0:2', 'node-a'), ep('2001:db8::10', 'node-a')], { addressType: 'IPv6' }), slice('y', 'v6', [ep('2001:db8::3', 'node-a')], { addressType: 'IPv6' })];
    const one = build({ services, slices });
    const two = build({ services: [...services].reverse(), slices: [...slices].reverse() });
    expect(two).toEqual(one);
    expect(one.frontends.map(frontendKey)).toEqual(['198.18.100.16:80/TCP', '[2001:db8::1]:80/TCP']);
    expect(one.frontends[1]?.selected.map((b) => b.address)).toEqual(['2001:db8::2', '2001:db8::3', '2001:db8::10']);
  });
});


describe('portEndpoints', () => {
  /** The rules said plainly: canonical addresses of the family, one copy per identity (the most usable, the first of equals), sorted by endpointSortKey. */
  function reference(slices: readonly EndpointSlice[], port: ServicePort, protocol: Protocol, family: Family): PortEndpoints {
    const canonical = (text: string): string | undefined => {
      const ip = parseIP(text);
      return ip && formatIP(ip.family === 6 && ip.value >> 32n === 0xffffn ? { family: 4, value: ip.value & 0xffffffffn } : ip);
    };
    const level = (e: Endpoint): number => (e.conditions?.ready !== false ? 2 : (e.conditions?.serving ?? false) && e.conditions?.terminating === true ? 1 : 0);
    const kept = new Map<string, { backend: Backend; level: number }>();
    for (const s of slices) {
      const number = s.ports?.find((p) => (p.name ?? '') === (port.name ?? ''))?.port;
      if (s.addressType !== (family === 4 ? 'IPv4' : 'IPv6') || number === undefined) continue;
      for (const e of s.endpoints ?? []) {
        const address = canonical(e.addresses[0]!);
        if (address === undefined || address.includes(':') !== (family === 6)) continue;
        const backend: Backend = { address, port: number, protocol, state: e.conditions?.terminating === true ? 'terminating' : 'active', ...(e.nodeName ? { nodeName: e.nodeName } : {}) };
        const seen = kept.get(backendKey(backend));
        if (seen === undefined || level(e) > seen.level) kept.set(backendKey(backend), { backend, level: level(e) });
      }
    }
    const sorted = [...kept.values()].sort((a, b) => (endpointSortKey(a.backend) < endpointSortKey(b.backend) ? -1 : 1));
    return { backends: sorted.map((k) => k.backend), usable: sorted.map((k) => k.level) };
  }

  const arbEndpoint = fc.record({
    address: fc.constantFrom('198.18.1.1', '198.18.1.2', '198.18.1.10', '198.18.01.1', '::ffff:198.18.1.2', '2001:db8::1', '2001:DB8:0::1', '2001:db8::a', 'db.example'),
    nodeName: fc.constantFrom(undefined, 'node-a', 'node-b'),
    conditions: fc.option(fc.record({ ready: fc.boolean(), serving: fc.boolean(), terminating: fc.boolean() }, { requiredKeys: [] }), { nil: undefined }),
  });
  const arbSlice = fc.record({
    addressType: fc.constantFrom('IPv4' as const, 'IPv6' as const),
    ports: fc.array(fc.record({ name: fc.constantFrom(undefined, 'http', 'dns'), port: fc.constantFrom(8080, 9090) }), { maxLength: 2 }),
    endpoints: fc.array(arbEndpoint, { maxLength: 6 }),
  });

  it('keeps the most usable copy of each endpoint, in identity order, as the plain rules say', () => {
    fc.assert(
      fc.property(fc.array(arbSlice, { maxLength: 4 }), fc.constantFrom(undefined, 'http'), fc.constantFrom<Family>(4, 6), (specs, portName, family) => {
        const slices = specs.map((spec, i) =>
          slice(`s${i}`, 'web', spec.endpoints.map((e) => ep(e.address, e.nodeName, e.conditions)), {
            addressType: spec.addressType,
            ports: spec.ports.map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, protocol: 'TCP' as const })),
          }),
        );
        const port: ServicePort = { ...(portName ? { name: portName } : {}), port: 80, protocol: 'TCP' };
        expect(portEndpoints(slices, port, 'TCP', family)).toEqual(reference(slices, port, 'TCP', family));
      }),
      { numRuns: 500 },
    );
  });
});
