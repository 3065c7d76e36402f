// Several `beacon standalone` processes on one real etcd: one operator at a time, takeover after
// kill -9 without any assignment changing, an etcd restart mid-run, and the apply/get/delete CLI.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdServer } from './etcd-server.js';
import { beacon, BeaconProcess, eventually, stopAll } from './process.js';

let etcd: EtcdServer;
const dir = mkdtempSync(join(tmpdir(), 'beacon-etcd-e2e-'));
let prefixSeq = 0;

beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  await stopAll();
  await etcd.close();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await stopAll();
});

const manifest = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const pools = manifest('pools.yaml', 'apiVersion: beacon.io/v1alpha1\nkind: LoadBalancerIPPool\nmetadata: {name: lan}\nspec:\n  blocks: [{cidr: 198.18.0.0/27}]\n');
const servicesFile = (names: string[], file: string) =>
  manifest(file, names.map((n) => `apiVersion: v1\nkind: Service\nmetadata: {name: ${n}, namespace: shop}\nspec:\n  type: LoadBalancer\n  ports: [{port: 80}]\n`).join('---\n'));

interface Status {
  node: string;
  roles: { operator: boolean; operatorHolder: string | null };
  store: { ok: boolean };
}

describe('beacon standalone on etcd', { timeout: 120_000 }, () => {
  const nodes = ['n1', 'n2', 'n3'];
  let prefix = '';
  const sock = (n: string) => join(dir, `${prefix.replace(/\//g, '_')}-${n}.sock`);
  const start = (n: string) =>
    new BeaconProcess(n, ['standalone', '--kube-proxy-replacement', 'false', '--node-name', n, '--store', 'etcd', '--etcd-endpoints', etcd.endpoint, '--etcd-prefix', prefix, '--socket', sock(n), '--lease-duration', '3s', '--l2-announcements', 'false']);
  const cli = (...args: string[]) => beacon(...args, '--etcd-endpoints', etcd.endpoint, '--etcd-prefix', prefix);
  const status = (n: string) => JSON.parse(beacon('status', '-o', 'json', '--socket', sock(n)).out) as Status;
  const ips = (n: string) => Object.fromEntries((JSON.parse(beacon('services', '-o', 'json', '--socket', sock(n)).out) as { name: string; ips: string[] }[]).map((s) => [s.name, s.ips.join(',')]));

  it('elects one operator, takes over after kill -9 and keeps every assignment; survives an etcd restart', async () => {
    prefix = `/e2e${++prefixSeq}`;
    expect(cli('apply', '-f', pools).code).toBe(0);
    expect(cli('apply', '-f', servicesFile(['a', 'b', 'c'], 'abc.yaml')).out).toContain('Service shop/a applied');
    const procs = new Map(nodes.map((n) => [n, start(n)]));
    await eventually(() => expect(nodes.filter((n) => status(n).roles.operator)).toHaveLength(1), 15_000);
    await eventually(() => expect(Object.values(ips('n1')).filter(Boolean)).toHaveLength(3), 15_000);
    const before = ips('n1');
    const leader = nodes.find((n) => status(n).roles.operator)!;
    const rest = nodes.filter((n) => n !== leader);
    expect(status(rest[0]!).roles.operatorHolder).toBe(leader);

    await procs.get(leader)!.kill('SIGKILL');
    await eventually(() => expect(rest.filter((n) => status(n).roles.operator)).toHaveLength(1), 15_000);
    expect(ips(rest[0]!)).toEqual(before);

    // etcd goes away and comes back: the processes reconnect and work goes on.
    await etcd.stop();
    await etcd.restart();
    cli('apply', '-f', servicesFile(['d'], 'd.yaml'));
    await eventually(() => expect(ips(rest[1]!)).toEqual({ ...before, d: '198.18.0.4' }), 20_000);
    expect(rest.filter((n) => status(n).roles.operator)).toHaveLength(1);
  });

  it('applies, gets and deletes objects with the CLI', () => {
    prefix = `/e2e${++prefixSeq}`;
    expect(cli('apply', '-f', pools).code).toBe(0);
    const got = cli('get', 'pools', 'lan', '-o', 'json');
    expect(got.code).toBe(0);
    expect(JSON.parse(got.out)).toMatchObject({ kind: 'LoadBalancerIPPool', metadata: { name: 'lan' }, spec: { blocks: [{ cidr: '198.18.0.0/27' }] } });
    expect(cli('get', 'lbippool').out).toMatch(/kind: List[\s\S]*name: lan/);
    expect(cli('get', 'pools', 'nope').code).toBe(1);
    const bad = manifest('bad.yaml', 'apiVersion: beacon.io/v1alpha1\nkind: LoadBalancerIPPool\nmetadata: {name: bad}\nspec: {blockz: []}\n');
    const refused = cli('apply', '-f', bad);
    expect(refused.code).toBe(2);
    expect(refused.err).toContain('spec.blockz: unknown field');
    expect(cli('delete', '-f', pools).out).toContain('LoadBalancerIPPool lan deleted');
    expect(cli('delete', '-f', pools).out).toContain('LoadBalancerIPPool lan not found');
  });
});
