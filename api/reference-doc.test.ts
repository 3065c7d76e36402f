import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { crdSources, toStructural } from './crd.js';
import { fieldRows, referenceMarkdown, referencePath } from './reference-doc.js';

const generated = referenceMarkdown();

/** The table row of one field in the section of one kind. */
function row(kind: string, path: string): string[] {
  const section = generated.split(/^#{2,4} /m).find((s) => s.startsWith(`${kind}\n`));
  const line = section?.split('\n').find((l) => l.startsWith(`| \`${path}\` |`));
  if (!line) throw new Error(`${kind} ${path}: no row`);
  return line.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
}

describe('docs/reference.md', () => {
  it('is what the generator renders (run `npx tsx api/reference-doc.ts --write` after changing api/)', () => {
    expect(readFileSync(referencePath, 'utf8')).toBe(generated);
  });

  it('has a section for every kind the CRDs define', () => {
    expect(crdSources.length).toBe(6);
    for (const { kind } of crdSources) expect(generated).toContain(`\n## ${kind}\n`);
  });

  it('shows each field with its type, required flag, default, allowed values and description', () => {
    expect(row('LoadBalancerIPPool', 'spec.blocks[].cidr')).toEqual(['`spec.blocks[].cidr`', 'string', '', '', '', expect.stringContaining('CIDR') as string]);
    expect(row('LoadBalancerIPPool', 'spec.blocks').slice(1, 3)).toEqual(['list of objects', 'yes']);
    expect(row('LoadBalancerIPPool', 'spec.allowFirstLastIPs').slice(3, 5)).toEqual(['No', '`Yes`, `No`']);
    expect(row('L2AnnouncementPolicy', 'spec.interfaces')[1]).toBe('list of strings');
    expect(row('L2AnnouncementPolicy', 'spec.loadBalancerIPs')[3]).toBe('true');
    expect(row('BGPPeerConfig', 'spec.timers.holdTimeSeconds').slice(1, 5)).toEqual(['integer', '', '90', '0–65535']);
    expect(row('BGPClusterConfig', 'spec.bgpInstances[].peers[].peerASN').slice(2, 5)).toEqual(['yes', '', '1–4294967295']);
    expect(row('BGPClusterConfig', 'spec.bgpInstances[].name')[4]).toBe('length 1–255; pattern `^[^/]+$`');
    expect(row('BGPAdvertisement', 'spec.advertisements[].service.addresses')[4]).toBe('`LoadBalancerIP`, `ExternalIP`, `ClusterIP`; items ≥ 1');
    expect(row('BGPNodeConfigOverride', 'spec.bgpInstances[].routerID')[3]).toBe("the node's first IPv4 address");
    expect(row('Service (`v1`)', 'spec.externalTrafficPolicy')[3]).toBe('Cluster');
    expect(row('EndpointSlice (`discovery.k8s.io/v1`)', 'endpoints[].nodeName')[1]).toBe('string');
  });

  it('lists the Service annotations Beacon reads, with the migrated names', () => {
    expect(generated).toMatch(/\| `beacon\.io\/ips` \| `lbipam\.cilium\.io\/ips`, `metallb\.io\/loadBalancerIPs` \|/);
    expect(generated).toContain('`beacon.io/sharing-cross-namespace`');
  });

  it('has a description for every CRD field (matchLabels excepted: its structural form is pinned by crd.test.ts)', () => {
    for (const src of crdSources) {
      const spec = (src.schema as unknown as { properties: { spec: Parameters<typeof toStructural>[0] } }).properties.spec;
      const undescribed = fieldRows(toStructural(spec), 'spec').filter((r) => r.description === '' && r.default === undefined && !r.path.endsWith('matchLabels'));
      expect(undescribed.map((r) => `${src.kind} ${r.path}`)).toEqual([]);
    }
  });
});
