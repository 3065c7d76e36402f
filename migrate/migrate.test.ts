// The conversions on realistic MetalLB and Cilium files: the exact Beacon objects, the exact list of
// what is not carried over, and that every object written passes Beacon's own manifest loader.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseBlock, parseManifests, selectorMatches, parseSelector, type BGPPeerConfig, type LoadBalancerIPPool } from '../api/index.js';
import { advertisementLabel, migrate, parseSources, type Migration } from './index.js';

const fixture = (name: string) => {
  const file = join(import.meta.dirname, 'testdata', name);
  const parsed = parseSources(readFileSync(file, 'utf8'), name);
  expect(parsed.syntaxErrors).toEqual([]);
  return parsed.sources;
};

/** Runs the migration and checks every object through the loader `beacon` itself uses. */
function run(sources: ReturnType<typeof fixture>): Migration & { byName: (kind: string, name: string) => Record<string, unknown> } {
  const result = migrate(sources);
  const loaded = parseManifests(result.objects.map((c) => stringify(c.object)).join('---\n'), 'out.yaml');
  expect(loaded.syntaxErrors).toEqual([]);
  expect(loaded.skipped).toEqual([]);
  expect(loaded.objects).toHaveLength(result.objects.length);
  const byName = (kind: string, name: string) => {
    const found = result.objects.find((c) => c.object.kind === kind && c.object.metadata.name === name);
    expect(found, `${kind} ${name}`).toBeDefined();
    return found!.object as unknown as Record<string, unknown>;
  };
  return { ...result, byName };
}

const notes = (m: Migration) => m.notCarried.map((n) => `${n.line} ${n.kind} ${n.name}: ${n.field}: ${n.reason}`);
const yaml = (text: string) => parseSources(text, 'inline.yaml').sources;

describe('MetalLB layer 2', () => {
  const m = run(fixture('metallb-l2.yaml'));

  it('converts pools and an advertisement covering every pool with nothing left over', () => {
    expect(m.notCarried).toEqual([]);
    expect(m.objects.map((c) => `${c.from.line} ${c.from.kind}/${c.from.name} -> ${c.object.kind}/${c.object.metadata.name}`)).toEqual([
      '3 IPAddressPool/lan -> LoadBalancerIPPool/lan',
      '14 IPAddressPool/office -> LoadBalancerIPPool/office',
      '26 L2Advertisement/racks -> L2AnnouncementPolicy/racks-1',
      '26 L2Advertisement/racks -> L2AnnouncementPolicy/racks-2',
    ]);
  });

  it('keeps CIDRs and ranges, uses every address of a CIDR as MetalLB does, and drops the namespace', () => {
    expect(m.byName('LoadBalancerIPPool', 'lan')).toEqual({
      apiVersion: 'beacon.io/v1alpha1',
      kind: 'LoadBalancerIPPool',
      metadata: { name: 'lan' },
      spec: {
        blocks: [{ cidr: '198.18.10.0/24' }, { start: '198.18.11.10', stop: '198.18.11.20' }, { cidr: '2001:db8:10::/120' }],
        allowFirstLastIPs: 'Yes',
      },
    });
  });

  it('avoidBuggyIPs: ranges that leave out every address ending in .0 or .255', () => {
    const office = m.byName('LoadBalancerIPPool', 'office') as unknown as LoadBalancerIPPool;
    expect(office.metadata.labels).toEqual({ zone: 'office' });
    expect(office.spec.blocks).toEqual([
      { start: '198.18.20.1', stop: '198.18.20.254' },
      { start: '198.18.21.1', stop: '198.18.21.254' },
    ]);
    const usable = office.spec.blocks.map((b) => parseBlock(b, false)).map((r) => (r.ok ? r.value.usable : undefined));
    expect(usable.reduce((n, r) => n + Number(r!.last - r!.first + 1n), 0)).toBe(512 - 4);
  });

  it('one policy per node selector (any of which may match), interfaces as anchored expressions', () => {
    expect(m.byName('L2AnnouncementPolicy', 'racks-1').spec).toEqual({ interfaces: ['^eth0$', '^br\\.lan$'], nodeSelector: { matchLabels: { rack: 'r1' } } });
    expect(m.byName('L2AnnouncementPolicy', 'racks-2').spec).toEqual({
      interfaces: ['^eth0$', '^br\\.lan$'],
      nodeSelector: { matchExpressions: [{ key: 'rack', operator: 'In', values: ['r2', 'r3'] }] },
    });
    expect(new RegExp('^br\\.lan$').test('brXlan')).toBe(false);
  });

  it('reports a pool restriction that leaves pools out: the policy selects every service', () => {
    const r = run([...fixture('metallb-l2.yaml'), ...yaml('apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: bgp-only}\nspec: {addresses: [198.18.90.0/24]}\n')]);
    expect(notes(r)).toEqual([
      '26 L2Advertisement racks: spec.ipAddressPools: Beacon selects services, not pools: it selects every service, so services with addresses from bgp-only are included; narrow it with a service selector, or give the others loadBalancerClass beacon.io/bgp-control-plane',
    ]);
    expect(r.byName('L2AnnouncementPolicy', 'racks-1').spec).not.toHaveProperty('serviceSelector');
  });
});

describe('MetalLB pools', () => {
  const m = run(fixture('metallb-pools.yaml'));

  it('masks host bits as MetalLB does, and disables what cannot be expressed, saying why', () => {
    expect((m.byName('LoadBalancerIPPool', 'cheap') as unknown as LoadBalancerIPPool).spec.blocks).toEqual([{ cidr: '198.18.40.0/24' }]);
    expect(m.byName('LoadBalancerIPPool', 'expensive').spec).toEqual({ blocks: [{ cidr: '198.19.0.64/30' }], allowFirstLastIPs: 'Yes', disabled: true });
    expect(notes(m)).toEqual([
      '11 IPAddressPool expensive: spec.autoAssign: Beacon has no pool that serves only services asking for it by name or address; the pool is written with disabled: true (services keep the addresses they hold, none are handed out) until you express it and remove disabled',
      '39 IPAddressPool tenant-b: spec.addresses[1]: "198.18.52.300/24" is neither a CIDR nor a range FIRST-LAST; left out',
      '39 IPAddressPool tenant-b: spec.serviceAllocation.namespaceSelectors: Beacon does not read Namespace labels; list the namespaces instead; the pool is written with disabled: true (services keep the addresses they hold, none are handed out) until you express it and remove disabled',
    ]);
  });

  it('serviceAllocation: namespaces and one service selector become one selector; priorities keep MetalLB\'s order', () => {
    const tenantA = m.byName('LoadBalancerIPPool', 'tenant-a') as unknown as LoadBalancerIPPool;
    expect(tenantA.spec.priority).toBe(50);
    const selector = parseSelector(tenantA.spec.serviceSelector);
    expect(selector.ok).toBe(true);
    const matches = (labels: Record<string, string>) => selector.ok && selectorMatches(selector.value, labels);
    expect(matches({ 'io.kubernetes.service.namespace': 'tenant-a', app: 'web' })).toBe(true);
    expect(matches({ 'io.kubernetes.service.namespace': 'tenant-b', app: 'web' })).toBe(false);
    expect(matches({ 'io.kubernetes.service.namespace': 'tenant-a', app: 'db' })).toBe(false);
    // A serviceAllocation without priority comes after every explicit priority, before plain pools.
    expect(m.byName('LoadBalancerIPPool', 'tenant-b').spec).toMatchObject({ priority: 51, disabled: true });
    expect(m.byName('LoadBalancerIPPool', 'cheap').spec).not.toHaveProperty('priority');
  });

  it('several service selectors cannot be one selector; unknown fields are reported', () => {
    const r = run(
      yaml(`apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: p, namespace: metallb-system}
spec:
  addresses: [198.18.0.0/28]
  newOption: true
  serviceAllocation:
    serviceSelectors:
    - matchLabels: {a: b}
    - matchLabels: {c: d}
`),
    );
    expect(r.byName('LoadBalancerIPPool', 'p').spec).toMatchObject({ disabled: true, priority: 0 });
    expect(r.notCarried.map((n) => [n.field, n.reason.split(';')[0]])).toEqual([
      ['spec.newOption', 'unknown field'],
      ['spec.serviceAllocation.serviceSelectors', 'a pool has one serviceSelector'],
    ]);
  });
});

describe('MetalLB BGP', () => {
  const m = run(fixture('metallb-bgp.yaml'));

  it('peers become one BGPClusterConfig with an instance per local AS', () => {
    expect(m.byName('BGPClusterConfig', 'metallb').spec).toEqual({
      bgpInstances: [
        {
          name: 'as64512',
          localASN: 64512,
          peers: [
            { name: 'tor-a', peerAddress: '198.18.0.1', peerASN: 64513, peerConfigRef: { name: 'tor-a' } },
            { name: 'tor-b', peerAddress: '2001:db8::1', peerASN: 64514, peerConfigRef: { name: 'tor-b' } },
          ],
        },
      ],
    });
  });

  it('each peer gets a BGPPeerConfig: timers in seconds, password by reference, families selecting its advertisements', () => {
    const torA = m.byName('BGPPeerConfig', 'tor-a') as unknown as BGPPeerConfig;
    const selects = (names: string[]) => ({ matchExpressions: [{ key: advertisementLabel, operator: 'In', values: names }] });
    expect(torA.spec).toEqual({
      timers: { holdTimeSeconds: 90, keepAliveTimeSeconds: 30, connectRetryTimeSeconds: 5 },
      authSecretRef: 'bgp-password-tor-a',
      ebgpMultihop: 255,
      gracefulRestart: { enabled: true },
      families: [
        { afi: 'ipv4', safi: 'unicast', advertisements: selects(['local', 'external']) },
        { afi: 'ipv6', safi: 'unicast', advertisements: selects(['local', 'external']) },
      ],
    });
    expect(JSON.stringify(m.objects)).not.toContain('not-a-real-secret');
    expect(m.byName('BGPPeerConfig', 'tor-b').spec).toEqual({
      transport: { peerPort: 1179, sourceAddress: '2001:db8::10' },
      authSecretRef: 'tor-b-password',
      families: [{ afi: 'ipv6', safi: 'unicast', advertisements: selects(['external']) }],
    });
  });

  it('advertisements resolve community aliases and carry local preference', () => {
    const local = m.byName('BGPAdvertisement', 'local');
    expect(local.metadata).toEqual({ name: 'local', labels: { [advertisementLabel]: 'local' } });
    expect(local.spec).toEqual({
      advertisements: [
        {
          advertisementType: 'Service',
          service: { addresses: ['LoadBalancerIP'] },
          selector: {},
          attributes: { communities: { standard: ['65535:65282', '64512:100'], large: ['4200000000:1:100'] }, localPreference: 200 },
        },
      ],
    });
  });

  it('reports the password, BFD, aggregation and node selection; the Community is consumed', () => {
    expect(notes(m)).toEqual([
      '24 BGPPeer tor-a: spec.password: migrate never writes passwords: create bgp-password-tor-a holding it (standalone: a file beside the manifests; Kubernetes: a Secret with the key password)',
      '41 BGPPeer tor-b: spec.bfdProfile: Beacon has no BFD; failures are detected by the hold timer',
      '73 BGPAdvertisement external: spec.aggregationLength: Beacon advertises exact /32 routes only; no aggregate is sent',
      '73 BGPAdvertisement external: spec.nodeSelectors: Beacon advertises from every node its BGPClusterConfig selects; the advertisement is sent from all of them',
    ]);
    expect(m.objects.some((c) => c.from.kind === 'Community')).toBe(false);
  });

  const peer = (name: string, spec: string) => `---\napiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: ${name}}\nspec: {myASN: 64512, ${spec}}\n`;

  it('an unknown community leaves the whole advertisement out (its routes must not travel further than meant)', () => {
    const r = run(yaml(`${peer('r', 'peerASN: 64513, peerAddress: 198.18.0.1')}---\napiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: a}\nspec: {communities: [NO_EXPORT_ALIAS]}\n`));
    expect(r.objects.map((c) => c.object.kind)).toEqual(['BGPClusterConfig', 'BGPPeerConfig']);
    expect(notes(r)).toEqual([
      '7 BGPAdvertisement a: spec.communities[0]: standard community "NO_EXPORT_ALIAS" must be two decimals 0-65535 as "65000:100", or one decimal 0-4294967295, nor a Community alias; the advertisement is left out',
    ]);
    expect(r.byName('BGPPeerConfig', 'r').spec).toEqual({ families: [{ afi: 'ipv4', safi: 'unicast' }] });
  });

  it('dynamic AS, unnumbered peers, router IDs, VRFs and per-peer advertisements', () => {
    const r = run(
      yaml(
        peer('internal', 'dynamicASN: internal, peerAddress: 198.18.0.2, routerID: 198.18.0.9') +
          peer('external', 'dynamicASN: external, peerAddress: 198.18.0.3') +
          peer('unnumbered', 'peerASN: 64513, interface: eth1') +
          peer('red', 'peerASN: 64600, peerAddress: 198.18.0.4, vrf: red, holdTime: 1500ms') +
          `---\napiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: only-red}\nspec: {peers: [red, gone]}\n`,
      ),
    );
    expect(r.byName('BGPClusterConfig', 'metallb').spec).toEqual({
      bgpInstances: [
        {
          name: 'as64512',
          localASN: 64512,
          peers: [
            { name: 'internal', peerAddress: '198.18.0.2', peerASN: 64512, peerConfigRef: { name: 'internal' } },
            { name: 'red', peerAddress: '198.18.0.4', peerASN: 64600, peerConfigRef: { name: 'red' } },
          ],
        },
      ],
    });
    expect(r.byName('BGPPeerConfig', 'internal').spec).toEqual({ families: [{ afi: 'ipv4', safi: 'unicast' }] });
    expect(r.byName('BGPPeerConfig', 'red').spec).toEqual({
      families: [{ afi: 'ipv4', safi: 'unicast', advertisements: { matchExpressions: [{ key: advertisementLabel, operator: 'In', values: ['only-red'] }] } }],
    });
    expect(r.notCarried.map((n) => `${n.name} ${n.field}`)).toEqual([
      'internal spec.routerID',
      'external spec.dynamicASN',
      'unnumbered spec.interface',
      'red spec.holdTime',
      'red spec.vrf',
      'only-red spec.peers',
    ]);
  });

  it('an advertisement whose name cannot be a label value is left out, said so', () => {
    const name = 'a'.repeat(64);
    const r = run(yaml(`${peer('r', 'peerASN: 64513, peerAddress: 198.18.0.1')}---\napiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: ${name}}\n`));
    expect(r.objects.map((c) => c.object.kind)).toEqual(['BGPClusterConfig', 'BGPPeerConfig']);
    expect(r.notCarried.map((n) => n.field)).toEqual(['metadata.name']);
    expect(r.notCarried[0]!.reason).toMatch(/at most 63 .*the advertisement is left out$/);
  });

  it('peers with different node selectors become separate configs, reported', () => {
    const r = run(yaml(peer('a', 'peerASN: 64513, peerAddress: 198.18.0.1') + peer('b', 'peerASN: 64513, peerAddress: 198.18.0.2, nodeSelectors: [{matchLabels: {rack: b}}]')));
    expect(r.byName('BGPClusterConfig', 'metallb-1').spec).not.toHaveProperty('nodeSelector');
    expect(r.byName('BGPClusterConfig', 'metallb-2').spec).toMatchObject({ nodeSelector: { matchLabels: { rack: 'b' } } });
    expect(r.notCarried.map((n) => `${n.name} ${n.field}`)).toEqual(['a spec.nodeSelectors', 'b spec.nodeSelectors']);
    expect(r.notCarried[0]!.reason).toContain('must select disjoint nodes');
  });
});

describe('Cilium', () => {
  it('takes v2 and v2alpha1 resources as they are, with a new apiVersion and kind', () => {
    const sources = fixture('cilium.yaml');
    const m = run(sources);
    expect(m.notCarried).toEqual([]);
    expect(m.objects.map((c) => `${c.from.kind} -> ${c.object.kind}`)).toEqual([
      'CiliumLoadBalancerIPPool -> LoadBalancerIPPool',
      'CiliumLoadBalancerIPPool -> LoadBalancerIPPool',
      'CiliumL2AnnouncementPolicy -> L2AnnouncementPolicy',
      'CiliumBGPClusterConfig -> BGPClusterConfig',
      'CiliumBGPPeerConfig -> BGPPeerConfig',
      'CiliumBGPAdvertisement -> BGPAdvertisement',
      'CiliumBGPNodeConfigOverride -> BGPNodeConfigOverride',
    ]);
    // Everything but the old `cidrs`, the peer reference's Cilium group and kind, and the status is the same.
    for (const [i, c] of m.objects.entries()) {
      const source = structuredClone(sources[i]!.value) as Record<string, Record<string, unknown>>;
      expect(c.object.metadata).toEqual(source.metadata);
      if (i === 0) expect(c.object.spec).toEqual({ blocks: source.spec!.cidrs });
      else if (c.object.kind === 'BGPClusterConfig') expect(JSON.stringify(c.object.spec)).toBe(JSON.stringify(source.spec).replace(',"group":"cilium.io","kind":"CiliumBGPPeerConfig"', ''));
      else expect(c.object.spec).toEqual(source.spec);
    }
    expect(m.objects[1]!.object).not.toHaveProperty('status');
  });

  it('reports and takes out what Beacon does not do; the rest is kept', () => {
    const m = run(fixture('cilium-unsupported.yaml'));
    expect(notes(m)).toEqual([
      '2 CiliumBGPClusterConfig auto: spec.bgpInstances[0].peers[0].autoDiscovery: Beacon has no peer auto-discovery; give peerAddress',
      '2 CiliumBGPClusterConfig auto: spec.bgpInstances[0].peers[0]: Beacon needs peerAddress (no auto-discovery); the peer is left out',
      '21 CiliumBGPPeerConfig old-transport: spec.transport.localPort: the kernel picks the source port of outgoing sessions; a listening port is bgpInstances[].localPort',
      '21 CiliumBGPPeerConfig old-transport: spec.families[1]: Beacon carries IPv4 and IPv6 unicast only, not l2vpn/evpn; the family is left out',
      '35 CiliumBGPAdvertisement pods-and-services: spec.advertisements[1].service.aggregationLengthIPv4: Beacon advertises exact /32 routes only; no aggregate is sent',
      '35 CiliumBGPAdvertisement pods-and-services: spec.advertisements[0].advertisementType: Beacon advertises service addresses only, not PodCIDR (it assigns no pod addresses); the entry is left out',
      "48 CiliumBGPPeeringPolicy rack0: kind: Cilium's legacy BGP API has no Beacon equivalent; move it to CiliumBGPClusterConfig, CiliumBGPPeerConfig and CiliumBGPAdvertisement first, or write Beacon's BGP resources",
      '57 Service web: kind: Services are not converted: Beacon reads their metallb.io/ and lbipam.cilium.io/ annotations as they are (a loadBalancerClass io.cilium/... must become beacon.io/...)',
      '65 CiliumLoadBalancerIPPool broken: spec.blocks[0]: invalid CIDR "198.18.70.1/24": host bits set (did you mean 198.18.70.0/24?); the LoadBalancerIPPool made from it is left out',
    ]);
    expect(m.byName('BGPClusterConfig', 'auto').spec).toEqual({ bgpInstances: [{ name: 'instance-65001', localASN: 65001, peers: [{ name: 'tor', peerASN: 65000, peerAddress: '198.18.0.1' }] }] });
    expect(m.byName('BGPPeerConfig', 'old-transport').spec).toEqual({ transport: { peerPort: 179 }, families: [{ afi: 'ipv4', safi: 'unicast' }] });
    expect(m.byName('BGPAdvertisement', 'pods-and-services').spec).toEqual({ advertisements: [{ advertisementType: 'Service', service: { addresses: ['LoadBalancerIP'] }, selector: {} }] });
  });
});

describe('every input object is accounted for', () => {
  it('unknown kinds and versions are reported; Beacon objects pass through; a name made twice is reported', () => {
    const m = run(
      yaml(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
---
apiVersion: metallb.io/v1alpha1
kind: IPAddressPool
metadata: {name: old}
---
apiVersion: beacon.io/v1alpha1
kind: LoadBalancerIPPool
metadata: {name: mine}
spec: {blocks: [{cidr: 198.18.0.0/24}]}
---
apiVersion: cilium.io/v2
kind: CiliumLoadBalancerIPPool
metadata: {name: mine}
spec: {blocks: [{cidr: 198.18.1.0/24}]}
---
- not an object
`),
    );
    expect(m.objects.map((c) => `${c.from.kind}/${c.from.name}`)).toEqual(['LoadBalancerIPPool/mine']);
    expect(notes(m)).toEqual([
      '1 Deployment web: kind: apps/v1 Deployment is not a MetalLB or Cilium resource that migrate converts; it is left out',
      '5 IPAddressPool old: apiVersion: metallb.io/v1alpha1 is not read; write it as metallb.io/v1beta1',
      '14 CiliumLoadBalancerIPPool mine: metadata.name: a LoadBalancerIPPool named mine was already made from inline.yaml:9; this one is left out (rename it)',
      '19 - -: (document): not a Kubernetes object; it is left out',
    ]);
  });

  it('reads kind: List and reports YAML syntax errors with their line', () => {
    const list = parseSources('apiVersion: v1\nkind: List\nitems:\n- {apiVersion: cilium.io/v2, kind: CiliumLoadBalancerIPPool, metadata: {name: a}, spec: {blocks: []}}\n', 'l.yaml');
    expect(migrate(list.sources).objects.map((c) => c.object.metadata.name)).toEqual(['a']);
    expect(parseSources('a: 1\n---\nb: 1\nb: 2\n', 'bad.yaml').syntaxErrors.map((e) => e.line)).toEqual([4]);
  });
});
