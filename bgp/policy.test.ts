import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseManifests, type KnownObject } from '../api/index.js';
import { parseCommunity, parseLargeCommunity } from './attributes.js';
import { planBGP, type BGPPolicyInput, type BGPPolicyResult } from './policy.js';

const node = { name: 'n1', labels: { rack: 'a' }, addresses: ['198.18.1.1', '2001:db8:1::1'] };

/** Reads YAML through the manifest parser (as the agent does) into the policy's input. */
function inputOf(yaml: string, extra: Partial<BGPPolicyInput> = {}): BGPPolicyInput {
  const r = parseManifests(yaml, 'test.yaml');
  expect([...r.syntaxErrors, ...r.skipped]).toEqual([]);
  const of = <K extends KnownObject['kind']>(kind: K) =>
    r.objects.flatMap((o) => (o.kind === kind ? [o.object as Extract<KnownObject, { kind: K }>['object']] : []));
  return {
    node,
    clusterConfigs: of('BGPClusterConfig'),
    peerConfigs: of('BGPPeerConfig'),
    advertisements: of('BGPAdvertisement'),
    nodeOverrides: of('BGPNodeConfigOverride'),
    services: of('Service'),
    endpointSlices: of('EndpointSlice'),
    readSecret: (ref) => new Error(`secret ${ref} not found`),
    ...extra,
  };
}

const plan = (yaml: string, extra: Partial<BGPPolicyInput> = {}) => planBGP(inputOf(yaml, extra));

const clusterConfig = (spec = '', name = 'cc', meta = '') => `---
apiVersion: beacon.io/v1alpha1
kind: BGPClusterConfig
metadata: {name: ${name}${meta}}
spec:
${spec || `  bgpInstances:
    - name: i
      localASN: 64512
      peers:
        - {name: r, peerAddress: 198.18.0.1, peerASN: 64513, peerConfigRef: {name: pc}}`}
`;

const peerConfig = (spec = '', name = 'pc') => `---
apiVersion: beacon.io/v1alpha1
kind: BGPPeerConfig
metadata: {name: ${name}}
spec:
${spec || `  families:
    - {afi: ipv4, safi: unicast, advertisements: {matchLabels: {advertise: 'yes'}}}
    - {afi: ipv6, safi: unicast, advertisements: {matchLabels: {advertise: 'yes'}}}`}
`;

const advertisement = (entries: string, name = 'ad', labels = "{advertise: 'yes'}") => `---
apiVersion: beacon.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: ${name}, labels: ${labels}}
spec:
  advertisements:
${entries}
`;

const lbEntry = (extra = '') => `    - advertisementType: Service
      service: {addresses: [LoadBalancerIP]}
      selector: {}
${extra === '' ? '' : `${extra}\n`}`;

const service = (name: string, opts: { ns?: string; labels?: string; spec?: string; ips?: string[] } = {}) => `---
apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${opts.ns ?? 'shop'}, labels: ${opts.labels ?? '{}'}}
spec: {type: LoadBalancer${opts.spec ? `, ${opts.spec}` : ''}}
status: {loadBalancer: {ingress: [${(opts.ips ?? []).map((ip) => `{ip: '${ip}'}`).join(', ')}]}}
`;

const slice = (svc: string, endpoints: string) => `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${svc}-x, namespace: shop, labels: {kubernetes.io/service-name: ${svc}}}
addressType: IPv4
endpoints: ${endpoints}
`;

const base = clusterConfig() + peerConfig() + advertisement(lbEntry());

const condition = (r: BGPPolicyResult, key: string) => r.conditions.get(key)?.[0];
const reasonsOf = (r: BGPPolicyResult) => r.problems.map((p) => `${p.kind}/${p.name} ${p.reason}`);
const explained = (r: BGPPolicyResult, service: string, address?: string) =>
  r.explanations.filter((e) => e.service === service && (address === undefined || e.address === address)).map((e) => `${e.peer} ${e.reason}`);

describe('planBGP: sessions', () => {
  it('turns examples/bgp.yaml into one dual-family session and routes with communities', () => {
    const example = readFileSync(join(import.meta.dirname, '..', 'examples', 'bgp.yaml'), 'utf8');
    const r = plan(
      example +
        service('web', { ips: ['198.18.10.1'] }) +
        service('api', { ips: ['198.18.10.2', '2001:db8:10::2'] }) +
        service('ingress-nginx', { ns: 'ingress', labels: '{beacon.io/tier: ingress}', ips: ['198.18.20.10'] }) +
        service('dns', { ns: 'infra', ips: ['198.18.10.3'] }),
    );
    expect(r.problems).toEqual([]);
    expect(r.instances).toEqual([{ clusterConfig: 'lan', name: 'lan', localASN: 64512, routerId: '198.18.1.1' }]);
    expect(r.peers).toEqual([
      {
        name: 'lan/tor',
        peerAddress: '198.18.0.1',
        peerASN: 64513,
        localASN: 64512,
        routerId: '198.18.1.1',
        holdTimeSeconds: 9,
        keepAliveTimeSeconds: 3,
        connectRetryTimeSeconds: 5,
        gracefulRestart: { enabled: true, restartTimeSeconds: 120 },
        families: ['ipv4-unicast', 'ipv6-unicast'],
        nextHop: { ipv6: '2001:db8:1::1' },
      },
    ]);
    const shop = { communities: ['64512:100', '65535:65281'], largeCommunities: ['4200000000:1:100'] };
    expect(r.routes.get('lan/tor')).toEqual([
      { prefix: '198.18.10.1/32', ...shop },
      { prefix: '198.18.10.2/32', ...shop },
      { prefix: '198.18.20.10/32', communities: ['64512:200'], localPreference: 200 },
      { prefix: '2001:db8:10::2/128', ...shop },
    ]);
    // The speaker's own parsers read every attribute the policy writes.
    for (const route of r.routes.get('lan/tor')!) {
      for (const c of route.communities ?? []) expect(parseCommunity(c), c).toBeDefined();
      for (const c of route.largeCommunities ?? []) expect(parseLargeCommunity(c), c).toBeDefined();
    }
    expect(explained(r, 'infra/dns')).toEqual(['lan/tor not_selected']);
    expect(r.explanations.find((e) => e.service === 'shop/web')).toEqual({
      peer: 'lan/tor',
      service: 'shop/web',
      addressType: 'LoadBalancerIP',
      address: '198.18.10.1',
      advertised: true,
      reason: 'advertised',
      message: 'advertised as 198.18.10.1/32 by lan-services[0]',
    });
    for (const key of ['BGPClusterConfig/lan', 'BGPPeerConfig/tor', 'BGPAdvertisement/lan-services']) {
      expect(condition(r, key)).toEqual({ type: 'beacon.io/ConfigValid', status: 'True', reason: 'Valid', message: 'every field is in use' });
    }
  });

  it('is level-triggered: the same input gives the same output', () => {
    const yaml = base + service('a', { ips: ['198.18.10.1'] });
    expect(plan(yaml)).toEqual(plan(yaml));
  });

  it('takes the router ID from the node override, else from the node\'s first IPv4 address', () => {
    const v6first = { ...node, addresses: ['2001:db8:1::1', '198.18.1.7', '198.18.1.1'] };
    expect(plan(base, { node: v6first }).peers[0]!.routerId).toBe('198.18.1.7');
    const override = `---
apiVersion: beacon.io/v1alpha1
kind: BGPNodeConfigOverride
metadata: {name: n1}
spec: {bgpInstances: [{name: i, routerID: 198.18.99.1}]}
`;
    expect(plan(base + override).peers[0]!.routerId).toBe('198.18.99.1');
  });

  it('runs no instance on an IPv6-only node without a routerID, and says so', () => {
    const r = plan(base, { node: { ...node, addresses: ['2001:db8:1::1'] } });
    expect(r.peers).toEqual([]);
    expect(r.instances).toEqual([]);
    expect(r.routes.size).toBe(0);
    expect(r.problems).toEqual([
      {
        kind: 'BGPClusterConfig',
        name: 'cc',
        reason: 'NoRouterID',
        message: 'instance "i": node n1 has no IPv4 address for the router ID; set routerID in a BGPNodeConfigOverride named n1',
        nodeSpecific: true,
      },
    ]);
    expect(condition(r, 'BGPClusterConfig/cc')).toMatchObject({ status: 'False', reason: 'NoRouterID' });
  });

  it.each(['2001:db8::1', '0.0.0.0', 'router-1'])('refuses routerID %s', (id) => {
    const r = plan(base + `---\napiVersion: beacon.io/v1alpha1\nkind: BGPNodeConfigOverride\nmetadata: {name: n1}\nspec: {bgpInstances: [{name: i, routerID: '${id}'}]}\n`);
    expect(r.peers).toEqual([]);
    expect(r.problems[0]).toMatchObject({ kind: 'BGPNodeConfigOverride', name: 'n1', reason: 'InvalidRouterID', nodeSpecific: true });
    expect(r.problems[0]!.message).toContain('must be a non-zero dotted IPv4 address');
  });

  it('applies a node override: local port, local ASN and per-peer local address; other nodes\' overrides are ignored', () => {
    const overrides = `---
apiVersion: beacon.io/v1alpha1
kind: BGPNodeConfigOverride
metadata: {name: n1, generation: 3}
spec:
  bgpInstances:
    - {name: i, localPort: 1790, localASN: 64600, peers: [{name: r, localAddress: 198.18.1.9}]}
---
apiVersion: beacon.io/v1alpha1
kind: BGPNodeConfigOverride
metadata: {name: n2}
spec: {bgpInstances: [{name: i, routerID: 198.18.2.2}]}
`;
    const r = plan(base + overrides);
    expect(r.instances).toEqual([{ clusterConfig: 'cc', name: 'i', localASN: 64600, routerId: '198.18.1.1', localPort: 1790 }]);
    expect(r.peers[0]).toMatchObject({ localASN: 64600, localAddress: '198.18.1.9', routerId: '198.18.1.1' });
    expect(condition(r, 'BGPNodeConfigOverride/n1')).toEqual({ type: 'beacon.io/ConfigValid', status: 'True', observedGeneration: 3, reason: 'Valid', message: 'every field is in use' });
  });

  it('reports override entries that name no instance or peer, and bad local addresses', () => {
    const override = (peers: string, inst = 'i') =>
      `---\napiVersion: beacon.io/v1alpha1\nkind: BGPNodeConfigOverride\nmetadata: {name: n1}\nspec: {bgpInstances: [{name: ${inst}, peers: ${peers}}]}\n`;
    expect(reasonsOf(plan(base + override('[]', 'nope')))).toEqual(['BGPNodeConfigOverride/n1 UnknownInstance']);
    expect(reasonsOf(plan(base + override('[{name: nope}]')))).toEqual(['BGPNodeConfigOverride/n1 UnknownPeer']);
    const bad = plan(base + override('[{name: r, localAddress: 198.18.1}]'));
    expect(reasonsOf(bad)).toEqual(['BGPNodeConfigOverride/n1 InvalidAddress']);
    expect(bad.peers).toEqual([]);
    const mismatch = plan(base + override('[{name: r, localAddress: "2001:db8:1::1"}]'));
    expect(reasonsOf(mismatch)).toEqual(['BGPNodeConfigOverride/n1 AddressFamilyMismatch']);
    expect(mismatch.peers).toEqual([]);
  });

  it('applies to the nodes its nodeSelector selects; absent selects every node', () => {
    const selecting = (sel: string) =>
      clusterConfig(`  nodeSelector: ${sel}\n  bgpInstances: [{name: i, localASN: 64512, peers: [{name: r, peerAddress: 198.18.0.1, peerASN: 64513}]}]`);
    expect(plan(selecting('{matchLabels: {rack: a}}')).peers).toHaveLength(1);
    expect(plan(selecting('{matchLabels: {rack: b}}')).peers).toEqual([]);
    expect(plan(selecting('{matchExpressions: [{key: rack, operator: NotIn, values: [b]}]}')).peers).toHaveLength(1);
    const broken = plan(selecting('{matchExpressions: [{key: rack, operator: In}]}'));
    expect(broken.peers).toEqual([]);
    expect(broken.problems[0]).toMatchObject({ reason: 'InvalidSelector', nodeSpecific: false });
    expect(broken.problems[0]!.message).toBe('nodeSelector: matchExpressions[0]: operator In needs at least one value; the config applies to no node until fixed');
  });

  it('uses the oldest of several configs that select one node and marks the others as conflicting', () => {
    const r = plan(
      clusterConfig('', 'newer', ', creationTimestamp: "2026-02-01T00:00:00Z"') +
        clusterConfig(
          '  bgpInstances: [{name: j, localASN: 64512, peers: [{name: r, peerAddress: 198.18.0.2, peerASN: 64513}]}]',
          'older',
          ', creationTimestamp: "2026-01-01T00:00:00Z"',
        ) +
        peerConfig(),
    );
    expect(r.peers.map((p) => p.name)).toEqual(['j/r']);
    expect(r.problems).toEqual([
      {
        kind: 'BGPClusterConfig',
        name: 'newer',
        reason: 'ConflictingClusterConfigs',
        message: 'node n1 is also selected by the older BGPClusterConfig "older", which it uses; this config is ignored there',
        nodeSpecific: true,
      },
    ]);
  });

  it('maps every peer config field onto the session', () => {
    const r = plan(
      clusterConfig() +
        peerConfig(`  transport: {peerPort: 1179, sourceAddress: 198.18.1.1}
  timers: {holdTimeSeconds: 30, connectRetryTimeSeconds: 7}
  authSecretRef: /etc/beacon/pw
  ebgpMultihop: 3
  gracefulRestart: {enabled: true}
  families: [{afi: ipv4, safi: unicast}]`),
      { readSecret: (ref) => (ref === '/etc/beacon/pw' ? 's3cret\n' : new Error('no')) },
    );
    expect(r.problems).toEqual([]);
    expect(r.peers).toEqual([
      {
        name: 'i/r',
        peerAddress: '198.18.0.1',
        peerASN: 64513,
        peerPort: 1179,
        localASN: 64512,
        localAddress: '198.18.1.1',
        routerId: '198.18.1.1',
        holdTimeSeconds: 30,
        keepAliveTimeSeconds: 10, // a third of the explicit hold time
        connectRetryTimeSeconds: 7,
        password: 's3cret', // the file's trailing newline is not part of the key
        ebgpMultihop: 3,
        gracefulRestart: { enabled: true },
        families: ['ipv4-unicast'],
      },
    ]);
  });

  it('gives a peer without peerConfigRef default settings: both families, nothing advertised', () => {
    const r = plan(
      clusterConfig('  bgpInstances: [{name: i, localASN: 64512, peers: [{name: r, peerAddress: "2001:db8::1", peerASN: 64513}]}]') +
        advertisement(lbEntry()) +
        service('a', { ips: ['198.18.10.1'] }),
    );
    expect(r.problems).toEqual([]);
    expect(r.peers).toEqual([
      { name: 'i/r', peerAddress: '2001:db8::1', peerASN: 64513, localASN: 64512, routerId: '198.18.1.1', families: ['ipv4-unicast', 'ipv6-unicast'], nextHop: { ipv4: '198.18.1.1' } },
    ]);
    expect(r.routes.get('i/r')).toEqual([]);
    expect(explained(r, 'shop/a')).toEqual(['i/r not_selected']);
  });

  it('does not start a session whose peer config is missing, of another kind or invalid', () => {
    const withRef = (ref: string) => clusterConfig(`  bgpInstances: [{name: i, localASN: 64512, peers: [{name: r, peerAddress: 198.18.0.1, peerASN: 64513, peerConfigRef: ${ref}}]}]`);
    const missing = plan(withRef('{name: gone}'));
    expect(missing.peers).toEqual([]);
    expect(missing.problems[0]!.message).toBe('bgpInstances[0].peers[0] "r": BGPPeerConfig "gone" does not exist; the session is not started');
    expect(reasonsOf(missing)).toEqual(['BGPClusterConfig/cc MissingPeerConfig']);
    expect(reasonsOf(plan(withRef('{name: pc, kind: Secret}') + peerConfig()))).toEqual(['BGPClusterConfig/cc InvalidPeerConfigRef']);
    expect(plan(withRef('{name: pc, group: cilium.io, kind: CiliumBGPPeerConfig}') + peerConfig()).peers).toHaveLength(1);
    const invalid = plan(withRef('{name: pc}') + peerConfig('  timers: {holdTimeSeconds: 2}'));
    expect(invalid.peers).toEqual([]);
    expect(reasonsOf(invalid)).toEqual(['BGPPeerConfig/pc InvalidTimers', 'BGPClusterConfig/cc PeerConfigInvalid']);
  });

  it.each([
    ['  timers: {holdTimeSeconds: 1}', 'InvalidTimers', 'timers.holdTimeSeconds 1 must be 0 or at least 3 (RFC 4271 4.2)'],
    ['  timers: {holdTimeSeconds: 9, keepAliveTimeSeconds: 10}', 'InvalidTimers', 'timers.keepAliveTimeSeconds 10 exceeds holdTimeSeconds 9'],
    ['  timers: {keepAliveTimeSeconds: 91}', 'InvalidTimers', 'timers.keepAliveTimeSeconds 91 exceeds holdTimeSeconds 90'],
    ['  transport: {sourceAddress: eth0}', 'InvalidAddress', 'transport.sourceAddress "eth0" is not an IP address'],
    ['  authSecretRef: pw', 'MissingAuthSecret', 'authSecretRef "pw": secret pw not found; sessions using this config are not started without their password'],
  ])('refuses a peer config with %s', (spec, reason, message) => {
    const r = plan(clusterConfig() + peerConfig(spec));
    expect(r.peers).toEqual([]);
    expect(r.problems[0]).toEqual({ kind: 'BGPPeerConfig', name: 'pc', reason, message, nodeSpecific: false });
    expect(condition(r, 'BGPPeerConfig/pc')).toEqual({ type: 'beacon.io/ConfigValid', status: 'False', reason, message: `${reason}: ${message}` });
  });

  it('accepts a hold time of 0 (no keepalives, RFC 4271 4.2)', () => {
    expect(plan(clusterConfig() + peerConfig('  timers: {holdTimeSeconds: 0}')).peers[0]).toMatchObject({ holdTimeSeconds: 0 });
  });

  it.each([
    ['', 'InvalidAuthSecret'],
    ['\n', 'InvalidAuthSecret'],
    ['x'.repeat(81), 'InvalidAuthSecret'],
  ])('refuses the password %j', (password, reason) => {
    const r = plan(clusterConfig() + peerConfig('  authSecretRef: pw'), { readSecret: () => password });
    expect(r.peers).toEqual([]);
    expect(reasonsOf(r)[0]).toBe(`BGPPeerConfig/pc ${reason}`);
    expect(r.problems[0]!.message).not.toContain(password.trim() || '\u0000'); // never echoes the secret
  });

  it('takes an 80-byte password, and reads each secret once per peer config', () => {
    let reads = 0;
    const r = plan(
      clusterConfig(
        '  bgpInstances: [{name: i, localASN: 64512, peers: [{name: a, peerAddress: 198.18.0.1, peerASN: 64513, peerConfigRef: {name: pc}}, {name: b, peerAddress: 198.18.0.2, peerASN: 64513, peerConfigRef: {name: pc}}]}]',
      ) + peerConfig('  authSecretRef: pw'),
      { readSecret: () => (reads++, 'y'.repeat(80)) },
    );
    expect(r.peers.map((p) => p.password?.length)).toEqual([80, 80]);
    expect(reads).toBe(1);
  });

  it('keeps the first of duplicate instances, peers and peer addresses', () => {
    const r = plan(
      clusterConfig(`  bgpInstances:
    - {name: i, localASN: 64512, peers: [{name: r, peerAddress: 198.18.0.1, peerASN: 64513}, {name: r, peerAddress: 198.18.0.2, peerASN: 64513}]}
    - {name: i, localASN: 64512}
    - {name: j, localASN: 64512, peers: [{name: s, peerAddress: 198.18.0.1, peerASN: 64514}, {name: t, peerAddress: 198.18.0.300, peerASN: 64514}]}`),
    );
    expect(r.peers.map((p) => p.name)).toEqual(['i/r']);
    expect(r.problems.map((p) => p.message)).toEqual([
      'bgpInstances[0].peers[1] "r": peer name is used twice in instance "i"; the first is used',
      'bgpInstances[1]: instance name "i" is used twice; the first is used',
      'bgpInstances[2].peers[0] "s": 198.18.0.1:179 is already peer i/r; one node cannot hold two sessions to the same address and port',
      'bgpInstances[2].peers[1] "t": peerAddress "198.18.0.300" is not an IP address',
    ]);
    expect(condition(r, 'BGPClusterConfig/cc')).toMatchObject({ status: 'False', reason: 'DuplicatePeerName' });
    expect(condition(r, 'BGPClusterConfig/cc')!.message).toMatch(/^DuplicatePeerName: .*; DuplicateInstanceName: .*; DuplicatePeerAddress: .*; InvalidAddress: /);
  });

  it('writes peer addresses canonically and allows one address on two ports', () => {
    const r = plan(
      clusterConfig(`  bgpInstances:
    - {name: i, localASN: 64512, peers: [{name: a, peerAddress: "2001:DB8:0::1", peerASN: 64513}, {name: b, peerAddress: "2001:db8::1", peerASN: 64513, peerConfigRef: {name: alt}}]}`) +
        peerConfig('  transport: {peerPort: 1179}', 'alt'),
    );
    expect(r.problems).toEqual([]);
    expect(r.peers.map((p) => [p.peerAddress, p.peerPort])).toEqual([
      ['2001:db8::1', undefined],
      ['2001:db8::1', 1179],
    ]);
  });
});

describe('planBGP: families and next hops', () => {
  it('sends each family only where the peer config enables it', () => {
    const r = plan(clusterConfig() + peerConfig("  families: [{afi: ipv4, safi: unicast, advertisements: {matchLabels: {advertise: 'yes'}}}]") + advertisement(lbEntry()) + service('a', { ips: ['198.18.10.1', '2001:db8:10::1'] }));
    expect(r.routes.get('i/r')).toEqual([{ prefix: '198.18.10.1/32' }]);
    expect(explained(r, 'shop/a', '2001:db8:10::1')).toEqual(['i/r family_not_enabled']);
    expect(r.peers[0]!.families).toEqual(['ipv4-unicast']);
    expect(r.peers[0]!.nextHop).toBeUndefined();
  });

  it('drops an explicit family the node has no next hop for, and says so; default families narrow quietly', () => {
    const v4only = { ...node, addresses: ['198.18.1.1'] };
    const explicit = plan(base, { node: v4only });
    expect(explicit.peers[0]!.families).toEqual(['ipv4-unicast']);
    expect(explicit.problems).toEqual([
      {
        kind: 'BGPClusterConfig',
        name: 'cc',
        reason: 'NoNextHop',
        message: 'peer i/r: node n1 has no IPv6 address to use as next hop over an IPv4 session; ipv6-unicast is not negotiated',
        nodeSpecific: true,
      },
    ]);
    const defaults = plan(clusterConfig() + peerConfig('  timers: {holdTimeSeconds: 30}'), { node: v4only });
    expect(defaults.problems).toEqual([]);
    expect(defaults.peers[0]!.families).toEqual(['ipv4-unicast']);
  });

  it('lists a family twice only once, and a broken advertisements selector selects nothing', () => {
    const r = plan(
      clusterConfig() +
        peerConfig(`  families:
    - {afi: ipv4, safi: unicast, advertisements: {matchExpressions: [{key: advertise, operator: In}]}}
    - {afi: ipv4, safi: unicast, advertisements: {}}`) +
        advertisement(lbEntry()) +
        service('a', { ips: ['198.18.10.1'] }),
    );
    expect(r.problems.map((p) => p.message)).toEqual([
      'families[0].advertisements: matchExpressions[0]: operator In needs at least one value; it selects nothing until fixed',
      'families[1]: ipv4/unicast is listed twice; the first entry is used',
    ]);
    expect(r.peers).toHaveLength(1); // the session itself is fine
    expect(r.routes.get('i/r')).toEqual([]);
  });

  it('selects advertisements by their labels; {} selects every advertisement', () => {
    const yaml = (sel: string) =>
      clusterConfig() +
      peerConfig(`  families: [{afi: ipv4, safi: unicast, advertisements: ${sel}}]`) +
      advertisement(lbEntry(), 'blue', '{colour: blue}') +
      advertisement(lbEntry('      attributes: {communities: {standard: ["64512:2"]}}'), 'green', '{colour: green}') +
      service('a', { ips: ['198.18.10.1'] });
    expect(plan(yaml('{matchLabels: {colour: blue}}')).routes.get('i/r')).toEqual([{ prefix: '198.18.10.1/32' }]);
    expect(plan(yaml('{matchLabels: {colour: green}}')).routes.get('i/r')).toEqual([{ prefix: '198.18.10.1/32', communities: ['64512:2'] }]);
    expect(plan(yaml('{}')).routes.get('i/r')).toEqual([{ prefix: '198.18.10.1/32', communities: ['64512:2'] }]);
    expect(plan(yaml('{matchLabels: {colour: red}}')).routes.get('i/r')).toEqual([]);
  });
});

describe('planBGP: services', () => {
  const routesOf = (yaml: string, extra?: Partial<BGPPolicyInput>) => plan(yaml, extra).routes.get('i/r')!.map((r) => r.prefix);

  it('advertises services without a class or with the BGP class, and leaves other classes alone', () => {
    const r = plan(
      base +
        service('none', { ips: ['198.18.10.1'] }) +
        service('bgp', { ips: ['198.18.10.2'], spec: 'loadBalancerClass: beacon.io/bgp-control-plane' }) +
        service('l2', { ips: ['198.18.10.3'], spec: 'loadBalancerClass: beacon.io/l2-announcer' }) +
        service('other', { ips: ['198.18.10.4'], spec: 'loadBalancerClass: example.com/lb' }),
    );
    expect(r.routes.get('i/r')!.map((x) => x.prefix)).toEqual(['198.18.10.1/32', '198.18.10.2/32']);
    expect(r.explanations.filter((e) => e.service === 'shop/other')).toEqual([
      { peer: 'i/r', service: 'shop/other', advertised: false, reason: 'other_class', message: 'loadBalancerClass example.com/lb belongs to another controller' },
    ]);
    expect(explained(r, 'shop/l2')).toEqual(['i/r other_class']);
  });

  it('advertises each address type an advertisement lists: load balancer, external and cluster IPs', () => {
    const svc = service('a', { ips: ['198.18.10.1'], spec: 'externalIPs: [198.18.30.1], clusterIP: 198.18.40.1, clusterIPs: [198.18.40.1, "2001:db8:40::1"]' });
    const entry = (types: string) => advertisement(`    - {advertisementType: Service, service: {addresses: [${types}]}, selector: {}}`);
    const yaml = (types: string) => clusterConfig() + peerConfig() + entry(types) + svc;
    expect(routesOf(yaml('LoadBalancerIP'))).toEqual(['198.18.10.1/32']);
    expect(routesOf(yaml('ExternalIP'))).toEqual(['198.18.30.1/32']);
    expect(routesOf(yaml('ClusterIP'))).toEqual(['198.18.40.1/32', '2001:db8:40::1/128']);
    const r = plan(yaml('LoadBalancerIP'));
    expect(explained(r, 'shop/a', '198.18.30.1')).toEqual(['i/r address_type_not_selected']);
    expect(r.explanations.find((e) => e.address === '198.18.40.1')!.message).toBe('ad[0] select the service but not its ClusterIP addresses');
  });

  it('has no cluster IP for headless services, explains services with no address and refuses bad addresses', () => {
    const r = plan(base + service('headless', { spec: 'clusterIP: None' }) + service('bad', { ips: ['198.18.10.999'] }));
    expect(r.routes.get('i/r')).toEqual([]);
    expect(r.explanations.filter((e) => e.service === 'shop/headless')).toEqual([
      { peer: 'i/r', service: 'shop/headless', advertised: false, reason: 'no_address', message: 'the service has no load balancer, external or cluster IP yet' },
    ]);
    expect(r.explanations.find((e) => e.service === 'shop/bad')).toMatchObject({ reason: 'invalid_address', message: '"198.18.10.999" is not an IP address' });
  });

  it('with externalTrafficPolicy Local advertises only from nodes with a ready local endpoint', () => {
    const svc = service('local', { ips: ['198.18.10.1'], spec: 'externalTrafficPolicy: Local' });
    expect(routesOf(base + svc)).toEqual([]);
    expect(explained(plan(base + svc), 'shop/local')).toEqual(['i/r no_local_endpoint']);
    expect(plan(base + svc).explanations[0]!.message).toBe('externalTrafficPolicy is Local and node n1 has no ready endpoint of the service');
    expect(routesOf(base + svc + slice('local', "[{addresses: ['198.18.50.1'], nodeName: n1}]"))).toEqual(['198.18.10.1/32']); // ready when unset
    expect(routesOf(base + svc + slice('local', "[{addresses: ['198.18.50.1'], nodeName: n1, conditions: {ready: true}}]"))).toEqual(['198.18.10.1/32']);
    expect(routesOf(base + svc + slice('local', "[{addresses: ['198.18.50.1'], nodeName: n1, conditions: {ready: false}}]"))).toEqual([]);
    expect(routesOf(base + svc + slice('local', "[{addresses: ['198.18.50.1'], nodeName: n2}]"))).toEqual([]);
    expect(routesOf(base + svc + slice('other', "[{addresses: ['198.18.50.1'], nodeName: n1}]"))).toEqual([]);
  });

  it('applies internalTrafficPolicy, not externalTrafficPolicy, to cluster IPs', () => {
    const ad = advertisement('    - {advertisementType: Service, service: {addresses: [ClusterIP, LoadBalancerIP]}, selector: {}}');
    const yaml = (policies: string) => clusterConfig() + peerConfig() + ad + service('a', { ips: ['198.18.10.1'], spec: `clusterIP: 198.18.40.1, ${policies}` });
    expect(routesOf(yaml('externalTrafficPolicy: Local'))).toEqual(['198.18.40.1/32']);
    expect(routesOf(yaml('internalTrafficPolicy: Local'))).toEqual(['198.18.10.1/32']);
  });

  it('selects services by labels and by the namespace and name virtual labels; an absent selector selects none', () => {
    const ad = (selector: string) => advertisement(`    - {advertisementType: Service, service: {addresses: [LoadBalancerIP]}${selector}}`);
    const svcs = service('a', { ips: ['198.18.10.1'], labels: '{tier: web}' }) + service('b', { ns: 'infra', ips: ['198.18.10.2'] });
    const yaml = (selector: string) => clusterConfig() + peerConfig() + ad(selector) + svcs;
    expect(routesOf(yaml(', selector: {matchLabels: {tier: web}}'))).toEqual(['198.18.10.1/32']);
    expect(routesOf(yaml(', selector: {matchLabels: {io.kubernetes.service.namespace: infra}}'))).toEqual(['198.18.10.2/32']);
    expect(routesOf(yaml(', selector: {matchLabels: {io.kubernetes.service.name: a}}'))).toEqual(['198.18.10.1/32']);
    expect(routesOf(yaml(''))).toEqual([]);
    expect(routesOf(yaml(', selector: {}'))).toEqual(['198.18.10.1/32', '198.18.10.2/32']);
  });

  it('merges advertisements that select one address: union of communities, highest local preference', () => {
    const r = plan(
      clusterConfig() +
        peerConfig() +
        advertisement(
          lbEntry('      attributes: {communities: {standard: ["64512:2", "64512:10"], large: ["2:2:2"]}, localPreference: 100}') +
            lbEntry('      attributes: {communities: {standard: ["64512:2"], wellKnown: [no-export], large: ["1:1:1"]}, localPreference: 300}'),
        ) +
        advertisement(lbEntry('      attributes: {communities: {standard: ["4194304010"]}, localPreference: 200}'), 'ad2') +
        service('a', { ips: ['198.18.10.1'] }) +
        service('b', { ips: ['198.18.10.1'] }), // shares the address (sharing key)
    );
    expect(r.routes.get('i/r')).toEqual([
      { prefix: '198.18.10.1/32', communities: ['64000:10', '64512:2', '64512:10', '65535:65281'], largeCommunities: ['1:1:1', '2:2:2'], localPreference: 300 },
    ]);
    expect(r.explanations.find((e) => e.service === 'shop/a')!.message).toBe('advertised as 198.18.10.1/32 by ad[0], ad[1], ad2[0]');
  });

  it('leaves out an advertisement entry with a bad community, selector or no addresses, and keeps its good entries', () => {
    const r = plan(
      clusterConfig() +
        peerConfig() +
        advertisement(
          lbEntry('      attributes: {communities: {standard: ["64512:70000"], wellKnown: [no-exports], large: ["1:2"]}}') +
            '    - {advertisementType: Service, selector: {}}\n' +
            '    - {advertisementType: Service, service: {addresses: [LoadBalancerIP]}, selector: {matchLabels: {"-bad": x}}}\n' +
            lbEntry('      attributes: {communities: {standard: ["64512:7"]}}'),
        ) +
        service('a', { ips: ['198.18.10.1'] }),
    );
    expect(r.routes.get('i/r')).toEqual([{ prefix: '198.18.10.1/32', communities: ['64512:7'] }]);
    expect(r.problems.map((p) => `${p.reason}: ${p.message}`)).toEqual([
      'InvalidCommunity: advertisements[0].attributes.communities.standard[0]: standard community "64512:70000" must be two decimals 0-65535 as "65000:100", or one decimal 0-4294967295',
      expect.stringMatching(/^InvalidCommunity: advertisements\[0\]\.attributes\.communities\.wellKnown\[0\]: well-known community "no-exports" is not one of internet, /),
      'InvalidCommunity: advertisements[0].attributes.communities.large[0]: large community "1:2" must be three decimals 0-4294967295 as "4200000000:1:2"',
      'MissingServiceAddresses: advertisements[1]: advertisementType Service needs service.addresses (LoadBalancerIP, ExternalIP, ClusterIP)',
      `InvalidSelector: advertisements[2].selector: matchLabels: label key "-bad": name must be 1-63 alphanumerics, '-', '_' or '.'`,
    ]);
    expect(condition(r, 'BGPAdvertisement/ad')).toMatchObject({ status: 'False', reason: 'InvalidCommunity' });
    expect(r.problems.every((p) => !p.nodeSpecific)).toBe(true);
  });

  it('gives every peer its own routes, sorted IPv4 then IPv6 by address', () => {
    const r = plan(
      clusterConfig(`  bgpInstances:
    - name: i
      localASN: 64512
      peers:
        - {name: r, peerAddress: 198.18.0.1, peerASN: 64513, peerConfigRef: {name: pc}}
        - {name: v4, peerAddress: 198.18.0.2, peerASN: 64512, peerConfigRef: {name: v4}}`) +
        peerConfig() +
        peerConfig('  families: [{afi: ipv4, safi: unicast, advertisements: {}}]', 'v4') +
        advertisement(lbEntry()) +
        service('a', { ips: ['2001:db8:10::1', '198.18.10.20', '198.18.10.3'] }),
    );
    expect([...r.routes.keys()]).toEqual(['i/r', 'i/v4']);
    expect(r.routes.get('i/r')!.map((x) => x.prefix)).toEqual(['198.18.10.3/32', '198.18.10.20/32', '2001:db8:10::1/128']);
    expect(r.routes.get('i/v4')!.map((x) => x.prefix)).toEqual(['198.18.10.3/32', '198.18.10.20/32']);
  });
});

describe('planBGP: conditions', () => {
  it('gives every BGP object one ConfigValid condition with its generation, whether or not it is in use here', () => {
    const r = plan(
      clusterConfig('', 'cc', ', generation: 4') +
        clusterConfig('  nodeSelector: {matchLabels: {rack: z}}\n  bgpInstances: [{name: i, localASN: 64512}]', 'elsewhere') +
        peerConfig() +
        peerConfig('  ebgpMultihop: 2', 'unused') +
        advertisement(lbEntry()),
    );
    expect([...r.conditions.keys()].sort()).toEqual(['BGPAdvertisement/ad', 'BGPClusterConfig/cc', 'BGPClusterConfig/elsewhere', 'BGPPeerConfig/pc', 'BGPPeerConfig/unused']);
    expect(condition(r, 'BGPClusterConfig/cc')).toEqual({ type: 'beacon.io/ConfigValid', status: 'True', observedGeneration: 4, reason: 'Valid', message: 'every field is in use' });
    for (const conditions of r.conditions.values()) expect(conditions).toHaveLength(1);
  });

  it('reports problems of objects that do not apply to this node too (node-independent checks)', () => {
    const r = plan(clusterConfig('  nodeSelector: {matchLabels: {rack: z}}\n  bgpInstances: [{name: i, localASN: 64512, peers: [{name: r, peerAddress: x, peerASN: 1}]}]'));
    expect(r.peers).toEqual([]);
    expect(reasonsOf(r)).toEqual(['BGPClusterConfig/cc InvalidAddress']);
  });
});
