// `beacon migrate` end to end: real files and folders, exit codes, the report on stderr, and the
// converted YAML used by the built `beacon ipam plan`. The command runs in-process with captured
// streams (its dispatch line in agent/cli.ts is the lead's); the plan runs the built executable.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { migrateCommand } from '../agent/migrate-cli.js';
import { loadManifests } from '../agent/files.js';
import { beacon, root } from './process.js';

const testdata = join(root, 'migrate', 'testdata');
const dir = mkdtempSync(join(tmpdir(), 'beacon-migrate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await migrateCommand(args, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

describe('beacon migrate', () => {
  it('converts MetalLB pools and L2 advertisements exactly: exit 0, YAML that beacon loads, nothing on stderr', async () => {
    const r = await run('-f', join(testdata, 'metallb-l2.yaml'));
    expect(r).toMatchObject({ code: 0, err: '' });
    const loaded = loadManifests([file('l2.yaml', r.out)]);
    expect(loaded.fatal).toEqual([]);
    expect(loaded.skipped).toEqual([]);
    expect(loaded.objects.map((o) => `${o.kind}/${o.object.metadata.name}`)).toEqual([
      'LoadBalancerIPPool/lan',
      'LoadBalancerIPPool/office',
      'L2AnnouncementPolicy/racks-1',
      'L2AnnouncementPolicy/racks-2',
    ]);
    // Quoted for kubectl's YAML 1.1, where a bare Yes is a boolean.
    expect(r.out).toContain('allowFirstLastIPs: "Yes"');
  });

  it('the converted pools serve services as MetalLB would: every address of a CIDR, none ending in .0/.255 with avoidBuggyIPs', async () => {
    const pools = file('pools.yaml', (await run('-f', join(testdata, 'metallb-l2.yaml'))).out);
    const services = file(
      'services.yaml',
      ['lan', 'office']
        .map((pool) => `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${pool}\n  namespace: shop\n  annotations: {metallb.io/address-pool: ${pool}}\nspec: {type: LoadBalancer}\n`)
        .join('---\n'),
    );
    const plan = beacon('ipam', 'plan', '-f', pools, '-f', services, '-o', 'json');
    expect(plan.code).toBe(0);
    const result = JSON.parse(plan.out) as { services: { name: string; ips: string[] }[]; pools: { name: string; total: string }[] };
    expect(result.services.map((s) => [s.name, s.ips])).toEqual([
      ['lan', ['198.18.10.0']],
      ['office', ['198.18.20.1']],
    ]);
    expect(result.pools.map((p) => [p.name, p.total])).toEqual([
      ['lan', String(256 + 11 + 256)],
      ['office', String(512 - 4)],
    ]);
  });

  it('reads folders, prints every object it could convert, and lists the rest as FILE:LINE: KIND NAME: FIELD: REASON with exit 1', async () => {
    const r = await run('-f', testdata);
    expect(r.code).toBe(1);
    const loaded = loadManifests([file('all.yaml', r.out)]);
    expect(loaded.skipped).toEqual([]);
    expect(loaded.objects).toHaveLength(3 + 7 + 6 + 4 + 4); // per file, in name order
    const lines = r.err.trimEnd().split('\n');
    for (const line of lines) expect(line).toMatch(/^\S+\.yaml:\d+: \S+ \S+: \S+: .+$/);
    expect(lines).toContain(`${join(testdata, 'metallb-bgp.yaml')}:41: BGPPeer tor-b: spec.bfdProfile: Beacon has no BFD; failures are detected by the hold timer`);
    // The files convert as one set: with every file's pools, the advertisements naming some pools no longer cover all.
    expect(lines.filter((l) => l.includes('spec.ipAddressPools: Beacon selects services, not pools')).map((l) => l.slice(testdata.length + 1).split(':')[0])).toEqual(['metallb-bgp.yaml', 'metallb-l2.yaml']);
    expect(lines).toHaveLength(9 + 4 + 3 + 2);
    expect(r.out).not.toContain('not-a-real-secret');
  });

  it('exit 2 on unreadable input, with nothing converted', async () => {
    const missing = await run('-f', join(dir, 'missing.yaml'));
    expect(missing).toEqual({ code: 2, out: '', err: `${join(dir, 'missing.yaml')}:0: no such file or folder\n` });
    const broken = await run('-f', join(testdata, 'cilium.yaml'), '-f', file('broken.yaml', 'kind: IPAddressPool\nspec: [\n'));
    expect(broken.code).toBe(2);
    expect(broken.out).toBe('');
    expect(broken.err).toMatch(/broken\.yaml:\d+: /);
  });

  it('usage: -h prints it, no file or an unknown flag is exit 2', async () => {
    expect((await run('-h')).out).toMatch(/^Usage: beacon migrate -f PATH/);
    expect(await run()).toMatchObject({ code: 2, out: '' });
    const flag = await run('--frobnicate');
    expect(flag.code).toBe(2);
    expect(flag.err).toContain("Unknown option '--frobnicate'");
  });
});
