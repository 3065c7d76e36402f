// `beacon standalone` on the embedded store, end to end: the built executable, a manifests
// folder, a state folder, the local API through the CLI, metrics, restarts and kill -9.
import { mkdirSync, mkdtempSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ServiceView } from '../agent/local-api.js';
import { beacon, BeaconProcess, eventually, freePort, sleep, stopAll } from './process.js';

let dir = '';
let manifests = '';
let state = '';
let failed = false;

beforeEach((ctx) => {
  dir = mkdtempSync(join(tmpdir(), 'beacon-e2e-'));
  manifests = join(dir, 'manifests');
  state = join(dir, 'state');
  mkdirSync(manifests);
  ctx.onTestFailed(() => {
    failed = true;
  });
});

afterEach(async () => {
  await stopAll();
  if (failed) console.error(`kept ${dir} for inspection`);
  else rmSync(dir, { recursive: true, force: true });
  failed = false;
});

const poolYaml = (name: string, cidr: string) => `apiVersion: beacon.io/v1alpha1
kind: LoadBalancerIPPool
metadata: {name: ${name}}
spec:
  blocks: [{cidr: ${cidr}}]
`;
const serviceYaml = (ns: string, name: string, extra = '') => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${ns}}
spec:
  type: LoadBalancer${extra}
  ports: [{port: 80, protocol: TCP}]
`;
const put = (file: string, text: string) => writeFileSync(join(manifests, file), text);

function start(node: string, socket = join(dir, `${node}.sock`), extra: string[] = []): BeaconProcess {
  return new BeaconProcess(node, ['standalone', '--kube-proxy-replacement', 'false', '--node-name', node, '--manifests', manifests, '--state-dir', state, '--socket', socket, '--lease-duration', '2s', '--l2-announcements', 'false', ...extra]);
}

const services = (socket: string): ServiceView[] => {
  const r = beacon('services', '-o', 'json', '--socket', socket);
  if (r.code !== 0) throw new Error(r.err);
  return JSON.parse(r.out) as ServiceView[];
};
const ipsBy = (socket: string) => Object.fromEntries(services(socket).map((s) => [`${s.namespace}/${s.name}`, s.ips.join(',')]));

describe('beacon standalone (embedded store)', { timeout: 90_000 }, () => {
  it('assigns IPs from the manifests folder and follows edits, additions and removals', async () => {
    put('pools.yaml', poolYaml('lan', '198.18.0.0/28'));
    put('web.yaml', serviceYaml('shop', 'web'));
    const p = start('n1');
    const sock = join(dir, 'n1.sock');
    await eventually(() => expect(ipsBy(sock)).toEqual({ 'shop/web': '198.18.0.1' }));
    put('api.yaml', serviceYaml('shop', 'api'));
    await eventually(() => expect(ipsBy(sock)).toEqual({ 'shop/api': '198.18.0.2', 'shop/web': '198.18.0.1' }));
    put('api.yaml', serviceYaml('shop', 'api', '\n  loadBalancerIP: 198.18.0.9'));
    await eventually(() => expect(ipsBy(sock)['shop/api']).toBe('198.18.0.9'));
    unlinkSync(join(manifests, 'web.yaml'));
    await eventually(() => expect(ipsBy(sock)).toEqual({ 'shop/api': '198.18.0.9' }));
    expect(p.running).toBe(true);
  });

  it('keeps serving the good files when one has bad YAML, and says so', async () => {
    put('pools.yaml', poolYaml('lan', '198.18.0.0/28'));
    put('web.yaml', serviceYaml('shop', 'web'));
    start('n1');
    const sock = join(dir, 'n1.sock');
    await eventually(() => expect(ipsBy(sock)).toEqual({ 'shop/web': '198.18.0.1' }));
    put('web.yaml', 'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop\n'); // half-saved edit
    put('db.yaml', serviceYaml('shop', 'db'));
    await eventually(() => expect(ipsBy(sock)).toEqual({ 'shop/db': '198.18.0.2', 'shop/web': '198.18.0.1' }));
    const status = JSON.parse(beacon('status', '-o', 'json', '--socket', sock).out) as { store: { ok: boolean; message: string } };
    expect(status.store.ok).toBe(false);
    expect(status.store.message).toContain('web.yaml');
  });

  it('keeps every assignment across SIGTERM and restart, and stops within 5 s', async () => {
    put('pools.yaml', poolYaml('lan', '198.18.0.0/28'));
    for (const n of ['a', 'b', 'c']) put(`${n}.yaml`, serviceYaml('ns', n));
    const first = start('n1');
    const sock = join(dir, 'n1.sock');
    await eventually(() => expect(Object.values(ipsBy(sock)).filter(Boolean)).toHaveLength(3));
    const before = ipsBy(sock);
    const t0 = Date.now();
    // A supervisor may signal twice: the second SIGTERM must not cut the shutdown short.
    process.kill(first.pid, 'SIGTERM');
    await sleep(50);
    expect(await first.stop()).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(first.logs()).toContain('stopped');
    // A service added while Beacon was down must not take anyone's address.
    put('d.yaml', serviceYaml('ns', 'd'));
    start('n1');
    await eventually(() => expect(ipsBy(sock)).toEqual({ ...before, 'ns/d': '198.18.0.4' }));
  });

  it('loses no assignment when killed with -9 during a burst of edits', async () => {
    put('pools.yaml', poolYaml('lan', '198.18.0.0/26'));
    const first = start('n1');
    const sock = join(dir, 'n1.sock');
    await eventually(() => expect(beacon('status', '--socket', sock).code).toBe(0));
    for (let i = 0; i < 40; i++) put(`s${i}.yaml`, serviceYaml('burst', `s${i}`));
    const seen = await eventually(() => {
      const got = ipsBy(sock);
      if (Object.values(got).filter(Boolean).length < 5) throw new Error('fewer than 5 assigned yet');
      return got;
    });
    await first.kill('SIGKILL');
    start('n1');
    const after = await eventually(() => {
      const got = ipsBy(sock);
      expect(Object.values(got).filter(Boolean)).toHaveLength(40);
      return got;
    }, 20_000);
    for (const [k, ip] of Object.entries(seen)) if (ip) expect(after[k], k).toBe(ip);
    expect(new Set(Object.values(after)).size).toBe(40);
  });

  it('runs one operator among processes sharing the store', async () => {
    put('pools.yaml', poolYaml('lan', '198.18.0.0/28'));
    put('web.yaml', serviceYaml('shop', 'web'));
    const procs = ['n1', 'n2'].map((n) => start(n));
    const roles = () => ['n1', 'n2'].map((n) => (JSON.parse(beacon('status', '-o', 'json', '--socket', join(dir, `${n}.sock`)).out) as { roles: { operator: boolean } }).roles.operator);
    await eventually(() => expect(roles().filter(Boolean)).toHaveLength(1));
    await eventually(() => expect(ipsBy(join(dir, 'n2.sock'))).toEqual({ 'shop/web': '198.18.0.1' }));
    const leader = roles()[0] ? 0 : 1;
    await procs[leader]!.kill('SIGKILL');
    const other = join(dir, `n${2 - leader}.sock`);
    await eventually(() => expect((JSON.parse(beacon('status', '-o', 'json', '--socket', other).out) as { roles: { operator: boolean } }).roles.operator).toBe(true));
    put('api.yaml', serviceYaml('shop', 'api'));
    await eventually(() => expect(ipsBy(other)).toEqual({ 'shop/api': '198.18.0.2', 'shop/web': '198.18.0.1' }));
  });

  it('serves the CLI, metrics and health, with the socket for root only', async () => {
    put('pools.yaml', poolYaml('lan', '198.18.0.0/28'));
    put('web.yaml', serviceYaml('shop', 'web'));
    const port = await freePort();
    start('n1', join(dir, 'n1.sock'), ['--metrics-addr', `127.0.0.1:${port}`]);
    const sock = join(dir, 'n1.sock');
    await eventually(() => expect(ipsBy(sock)).toEqual({ 'shop/web': '198.18.0.1' }));
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    const table = beacon('services', '--socket', sock).out;
    expect(table).toMatch(/^NAMESPACE\s+NAME\s+IPS\s+SATISFIED\s+ANNOUNCER\s+REASON\s+MESSAGE\n/);
    expect(table).toMatch(/shop\s+web\s+198\.18\.0\.1\s+yes\s+n\/a\s+satisfied/);
    await eventually(() => expect(beacon('pools', '--socket', sock).out).toMatch(/lan\s+14\s+1\s+13\s+no\s+no\s+ok/));
    const status = beacon('status', '--socket', sock).out;
    expect(status).toMatch(/Node:\s+n1/);
    expect(status).toMatch(/Operator:\s+this node/);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^beacon_ipam_services 1$/m);
    expect(metrics).toMatch(/^beacon_ipam_pool_ips\{pool="lan",state="used"\} 1$/m);
    expect(metrics).toMatch(/^beacon_lease_held\{lease="beacon-operator"\} 1$/m);
    expect(metrics).toMatch(/^beacon_process_resident_memory_bytes /m);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
    const missing = beacon('status', '--socket', join(dir, 'nobody.sock'));
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('no Beacon process at');
  });
});
