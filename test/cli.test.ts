// `beacon ipam plan` end to end: the built executable, real files, exit codes and output.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const beacon = (...args: string[]) => {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'beacon.js'), ...args], { cwd: root, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
};
const dir = mkdtempSync(join(tmpdir(), 'beacon-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

describe('beacon ipam plan', () => {
  it('plans the examples: JSON in the documented shape, sorted, counts as strings', () => {
    const r = beacon('ipam', 'plan', '-f', 'examples/pools.yaml', '-f', 'examples/services.yaml', '-o', 'json');
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.out) as { services: Record<string, unknown>[]; pools: Record<string, unknown>[]; errors: unknown[] };
    expect(plan.services.map((s) => [`${String(s.namespace)}/${String(s.name)}`, s.ips, s.satisfied, s.reason])).toEqual([
      ['infra/dns-tcp', ['198.18.10.1'], true, 'satisfied'],
      ['infra/dns-udp', ['198.18.10.1'], true, 'satisfied'],
      ['ingress/ingress-nginx', ['198.18.20.10'], true, 'satisfied'],
      ['iot/legacy', [], false, 'no_pool'],
      ['iot/mqtt', ['198.18.10.14'], true, 'satisfied'],
      ['shop/api', ['198.18.10.2', '2001:db8:10::1'], true, 'satisfied'],
      ['shop/web', ['198.18.10.3'], true, 'satisfied'],
    ]);
    for (const s of plan.services) expect(Object.keys(s)).toEqual(['namespace', 'name', 'ips', 'satisfied', 'reason', 'message']);
    expect(plan.pools).toEqual([
      { name: 'ingress', total: '3', used: '1', available: '2', conflicting: false, message: 'ok' },
      { name: 'lab-overlap', total: '6', used: '0', available: '6', conflicting: true, message: 'conflicting: block 198.18.10.0/29 overlaps block 198.18.10.0/28 of older pool lan; its blocks are not used' },
      { name: 'lan', total: '268', used: '5', available: '263', conflicting: false, message: 'ok' },
    ]);
    expect(plan.errors).toEqual([]);
  });

  it('prints aligned tables by default', () => {
    const r = beacon('ipam', 'plan', '-f', 'examples/pools.yaml', '-f', 'examples/services.yaml');
    expect(r.code).toBe(0);
    const lines = r.out.split('\n');
    expect(lines[0]).toMatch(/^NAMESPACE\s+NAME\s+IPS\s+SATISFIED\s+REASON\s+MESSAGE$/);
    const col = lines[0]!.indexOf('REASON');
    expect(lines.slice(1, 8).every((l) => /^\S/.test(l.slice(col)))).toBe(true);
    expect(r.out).toMatch(/^POOL\s+TOTAL\s+USED\s+AVAILABLE\s+CONFLICTING\s+MESSAGE$/m);
  });

  it('reads statuses as existing assignments: a restart keeps them', () => {
    const pools = file('p.yaml', 'apiVersion: beacon.io/v1alpha1\nkind: LoadBalancerIPPool\nmetadata: {name: p}\nspec:\n  blocks: [{cidr: 198.18.0.0/28}]\n');
    const svcs = file('s.yaml', 'apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: n}\nspec: {type: LoadBalancer}\nstatus: {loadBalancer: {ingress: [{ip: 198.18.0.9}]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: n}\nspec: {type: LoadBalancer}\n');
    const plan = JSON.parse(beacon('ipam', 'plan', '-f', pools, '-f', svcs, '-o', 'json').out) as { services: { ips: string[] }[] };
    expect(plan.services.map((s) => s.ips)).toEqual([['198.18.0.9'], ['198.18.0.1']]);
  });

  it('exits 2 with file:line: reason on YAML syntax errors and unreadable paths', () => {
    const broken = file('broken.yaml', 'apiVersion: v1\nkind: Service\nmetadata:\n  name: [oops\n');
    const r = beacon('ipam', 'plan', '-f', broken);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(new RegExp(`^${broken.replace(/[.]/g, '\\.')}:\\d+: `));
    const missing = beacon('ipam', 'plan', '-f', join(dir, 'nope.yaml'));
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('nope.yaml:0: no such file or folder');
  });

  it('reports a schema-invalid object by name, skips it and plans the rest', () => {
    const mixed = file(
      'mixed.yaml',
      'apiVersion: beacon.io/v1alpha1\nkind: LoadBalancerIPPool\nmetadata: {name: typo}\nspec:\n  blocks: [{cidr: 198.18.1.0/28}]\n  disable: true\n---\napiVersion: beacon.io/v1alpha1\nkind: LoadBalancerIPPool\nmetadata: {name: good}\nspec:\n  blocks: [{cidr: 198.18.0.0/28}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: LoadBalancer}\n',
    );
    const r = beacon('ipam', 'plan', '-f', mixed, '-o', 'json');
    expect(r.code).toBe(0);
    expect(r.err).toContain('mixed.yaml:1: LoadBalancerIPPool typo: spec.disable: unknown field');
    const plan = JSON.parse(r.out) as { pools: { name: string }[]; services: { ips: string[] }[]; errors: unknown[] };
    expect(plan.pools.map((p) => p.name)).toEqual(['good']);
    expect(plan.services[0]!.ips).toEqual(['198.18.0.1']);
    expect(plan.errors).toEqual([{ file: mixed, line: 1, kind: 'LoadBalancerIPPool', name: 'typo', reason: 'spec.disable: unknown field' }]);
  });

  it('explains usage mistakes with exit 2', () => {
    expect(beacon('ipam', 'plan').code).toBe(2);
    expect(beacon('ipam', 'plan', '-f', 'examples', '-o', 'xml').err).toContain('unknown output format "xml"');
    expect(beacon('ipam', 'plan', '--frobnicate').code).toBe(2);
    expect(beacon('nope').err).toContain('unknown command "nope"');
    expect(beacon('--help').code).toBe(0);
  });

  it('checks the node agent and Kubernetes client flags before starting anything', () => {
    for (const [flags, message] of [
      [['--kube-proxy-replacement', 'maybe'], '--kube-proxy-replacement "maybe": true or false'],
      [['--bpf-lb-algorithm', 'hash'], '--bpf-lb-algorithm "hash": random or maglev'],
      [['--bpf-lb-maglev-table-size', '1000'], '--bpf-lb-maglev-table-size "1000": one of the primes'],
      [['--bpf-lb-map-max', '8'], '--bpf-lb-map-max "8": an integer from 16'],
      [['--kube-api-qps', '0'], '--kube-api-qps "0": a number above 0'],
    ] as const) {
      const r = beacon('agent', '--node-name', 'n1', ...flags);
      expect(r.code).toBe(2);
      expect(r.err).toContain(message);
    }
  });
});
