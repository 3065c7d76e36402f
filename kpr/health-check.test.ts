import { describe, expect, it } from 'vitest';
import type { EndpointSlice, Service, ServiceSpec } from '../api/index.js';
import { endpoint as ep, endpointSlice as slice } from '../test/fixtures.js';
import { desiredHealthChecks } from './health-check.js';

const service = (name: string, spec: Partial<ServiceSpec>, created?: string): Service => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'ns', ...(created ? { creationTimestamp: created } : {}) },
  spec: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, protocol: 'TCP' }], ...spec },
});


const desired = (services: Service[], slices: EndpointSlice[] = []) => desiredHealthChecks({ services, slices, nodeName: 'node-a' });

describe('desiredHealthChecks', () => {
  it('serves LoadBalancer services with externalTrafficPolicy Local and a healthCheckNodePort, nothing else', () => {
    const { listeners, problems } = desired([
      service('web', { healthCheckNodePort: 32001 }),
      service('cluster-policy', { externalTrafficPolicy: 'Cluster', healthCheckNodePort: 32002 }),
      service('node-port', { type: 'NodePort', healthCheckNodePort: 32003 }),
      service('no-port', {}),
    ]);
    expect(listeners).toEqual([{ port: 32001, service: { namespace: 'ns', name: 'web' }, localEndpoints: 0 }]);
    expect(problems).toEqual([]);
  });

  it("counts this node's ready endpoints by address, over all ports and both families", () => {
    const web = service('web', {
      healthCheckNodePort: 32001,
      ports: [
        { name: 'http', port: 80, protocol: 'TCP' },
        { name: 'dns', port: 53, protocol: 'UDP' },
      ],
    });
    const ports = [{ name: 'http', port: 8080 }, { name: 'dns', port: 5353 }];
    const slices = [
      slice('web-v4', 'web', [
        ep('198.18.5.1', 'node-a'),
        ep('198.18.5.2', 'node-a', { ready: true }),
        ep('198.18.5.3', 'node-b'),
        ep('198.18.5.4', undefined),
        ep('198.18.5.5', 'node-a', { ready: false }),
      ], { ports }),
      // The same endpoint seen again while it moves between slices counts once.
      slice('web-v4-b', 'web', [ep('198.18.5.1', 'node-a')], { ports }),
      slice('web-v6', 'web', [ep('2001:db8::5:1', 'node-a')], { addressType: 'IPv6', ports }),
      slice('other', 'other', [ep('198.18.6.1', 'node-a')]),
    ];
    expect(desired([web], slices).listeners).toEqual([{ port: 32001, service: { namespace: 'ns', name: 'web' }, localEndpoints: 3 }]);
  });

  it('does not count terminating endpoints, even serving ones: a draining node fails its check', () => {
    const slices = [slice('web', 'web', [ep('198.18.5.1', 'node-a', { ready: false, serving: true, terminating: true })])];
    expect(desired([service('web', { healthCheckNodePort: 32001 })], slices).listeners[0]!.localEndpoints).toBe(0);
  });

  it('only counts endpoints whose slice offers one of the service ports', () => {
    const slices = [slice('web', 'web', [ep('198.18.5.1', 'node-a')], { ports: [{ name: 'metrics', port: 9090 }] })];
    expect(desired([service('web', { healthCheckNodePort: 32001 })], slices).listeners[0]!.localEndpoints).toBe(0);
  });

  it('gives a contested port to the oldest service, whatever the input order, and says why the other has none', () => {
    const older = service('zeta', { healthCheckNodePort: 32001 }, '2026-01-01T00:00:00Z');
    const newer = service('alpha', { healthCheckNodePort: 32001 }, '2026-01-01T00:00:00.500Z');
    for (const services of [[older, newer], [newer, older]]) {
      const { listeners, problems } = desired(services);
      expect(listeners.map((l) => l.service.name)).toEqual(['zeta']);
      expect(problems).toEqual([
        { service: 'ns/alpha', port: 32001, reason: 'health_check_port_conflict', message: 'healthCheckNodePort 32001 is already served for ns/zeta' },
      ]);
    }
    // Without creation times the namespace/name order decides.
    const plain = [service('b', { healthCheckNodePort: 32001 }), service('a', { healthCheckNodePort: 32001 })];
    expect(desired(plain).listeners.map((l) => l.service.name)).toEqual(['a']);
  });

  it('refuses a port that is not a port number or that is a NodePort', () => {
    const { listeners, problems } = desired([
      service('bad', { healthCheckNodePort: 70000 }),
      service('clash', { healthCheckNodePort: 30080 }),
      service('np', { type: 'NodePort', ports: [{ port: 80, nodePort: 30080 }] }),
      service('ok', { healthCheckNodePort: 32001 }),
    ]);
    expect(listeners.map((l) => l.port)).toEqual([32001]);
    expect(problems.map((p) => [p.service, p.reason])).toEqual([
      ['ns/bad', 'invalid_health_check_port'],
      ['ns/clash', 'node_port_conflict'],
    ]);
    expect(problems[1]!.message).toBe('healthCheckNodePort 30080 is a NodePort of ns/np');
  });

  it('lists listeners by port', () => {
    const { listeners } = desired([service('b', { healthCheckNodePort: 32002 }), service('a', { healthCheckNodePort: 32009 }), service('c', { healthCheckNodePort: 32001 })]);
    expect(listeners.map((l) => l.port)).toEqual([32001, 32002, 32009]);
  });
});
