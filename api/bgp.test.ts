import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { checkLargeCommunity, checkStandardCommunity, checkWellKnownCommunity, wellKnownCommunities } from './bgp.js';
import { renderCRDs } from './crd.js';
import { parseManifests } from './manifests.js';

// Cilium's documented examples, with only apiVersion and kind changed (addresses and ASNs moved
// to documentation ranges): a Cilium user's files must read unchanged otherwise.
const migrated = `
apiVersion: beacon.io/v1alpha1
kind: BGPClusterConfig
metadata:
  name: cilium-bgp
spec:
  nodeSelector:
    matchLabels:
      rack: rack0
  bgpInstances:
  - name: "instance-65000"
    localASN: 65000
    localPort: 179
    peers:
    - name: "peer-65000-tor1"
      peerASN: 65000
      peerAddress: 2001:db8:10::1
      peerConfigRef:
        name: "cilium-peer"
    - name: "peer-65000-tor2"
      peerASN: 65000
      peerAddress: 2001:db8:11::1
      peerConfigRef:
        name: "cilium-peer"
---
apiVersion: beacon.io/v1alpha1
kind: BGPPeerConfig
metadata:
  name: cilium-peer
spec:
  transport:
    peerPort: 179
  timers:
    connectRetryTimeSeconds: 5
    holdTimeSeconds: 9
    keepAliveTimeSeconds: 3
  authSecretRef: bgp-auth-secret
  ebgpMultihop: 4
  gracefulRestart:
    enabled: true
    restartTimeSeconds: 15
  families:
    - afi: ipv4
      safi: unicast
      advertisements:
        matchLabels:
          advertise: "bgp"
    - afi: ipv6
      safi: unicast
      advertisements:
        matchLabels:
          advertise: "bgp"
---
apiVersion: beacon.io/v1alpha1
kind: BGPAdvertisement
metadata:
  name: bgp-advertisements
  labels:
    advertise: bgp
spec:
  advertisements:
    - advertisementType: "Service"
      service:
        addresses:
          - ClusterIP
          - ExternalIP
          - LoadBalancerIP
      selector:
        matchExpressions:
          - { key: bgp, operator: In, values: [ blue ] }
      attributes:
        communities:
          standard: [ "65000:99" ]
          wellKnown: [ "no-export" ]
          large: [ "4200000000:1:2" ]
        localPreference: 99
---
apiVersion: beacon.io/v1alpha1
kind: BGPNodeConfigOverride
metadata:
  name: bgp-cplane-dev-multi-homing-worker
spec:
  bgpInstances:
    - name: "instance-65000"
      routerID: "198.18.10.1"
      localPort: 1790
      localASN: 65010
      peers:
        - name: "peer-65000-tor1"
          localAddress: 2001:db8:10::2
        - name: "peer-65000-tor2"
          localAddress: 2001:db8:11::2
`;

describe('BGP resources', () => {
  it("read Cilium's examples with only apiVersion and kind changed", () => {
    const r = parseManifests(migrated, 'bgp.yaml');
    expect(r.syntaxErrors).toEqual([]);
    expect(r.skipped).toEqual([]);
    expect(r.objects.map((o) => [o.kind, o.object.metadata.name])).toEqual([
      ['BGPClusterConfig', 'cilium-bgp'],
      ['BGPPeerConfig', 'cilium-peer'],
      ['BGPAdvertisement', 'bgp-advertisements'],
      ['BGPNodeConfigOverride', 'bgp-cplane-dev-multi-homing-worker'],
    ]);
  });

  it('reads examples/bgp.yaml without a problem', () => {
    const file = join(import.meta.dirname, '..', 'examples', 'bgp.yaml');
    const r = parseManifests(readFileSync(file, 'utf8'), file);
    expect([...r.syntaxErrors, ...r.skipped]).toEqual([]);
    expect(new Set(r.objects.map((o) => o.kind))).toEqual(new Set(['BGPClusterConfig', 'BGPPeerConfig', 'BGPAdvertisement']));
  });

  const doc = (kind: string, spec: string) => `apiVersion: beacon.io/v1alpha1\nkind: ${kind}\nmetadata: {name: x}\nspec:\n${spec}\n`;
  it.each([
    ['BGPClusterConfig', '  bgpInstances: []', 'spec.bgpInstances: expected array length to be greater or equal to 1'],
    ['BGPClusterConfig', '  bgpInstances: [{name: a, localASN: 0}]', 'spec.bgpInstances[0].localASN: expected integer to be greater or equal to 1'],
    ['BGPClusterConfig', '  bgpInstances: [{name: a, localASN: 4294967296}]', 'spec.bgpInstances[0].localASN: expected integer to be less or equal to 4294967295'],
    ['BGPClusterConfig', '  bgpInstances: [{name: a/b, localASN: 65000}]', 'spec.bgpInstances[0].name: expected string to match'],
    ['BGPClusterConfig', '  bgpInstances: [{name: a, localASN: 65000, peers: [{name: p, peerAddress: 198.18.0.1, peerASN: 65001, autoDiscovery: {}}]}]', 'spec.bgpInstances[0].peers[0].autoDiscovery: unknown field'],
    ['BGPPeerConfig', '  families: [{afi: ipv4, safi: multicast}]', 'spec.families[0].safi: expected'],
    ['BGPPeerConfig', '  families: [{afi: l2vpn, safi: unicast}]', 'spec.families[0].afi: must be one of "ipv4", "ipv6"'],
    ['BGPPeerConfig', '  ebgpMultihop: 256', 'spec.ebgpMultihop: expected integer to be less or equal to 255'],
    ['BGPPeerConfig', '  gracefulRestart: {enabled: true, restartTimeSeconds: 4096}', 'spec.gracefulRestart.restartTimeSeconds: expected integer to be less or equal to 4095'],
    ['BGPPeerConfig', '  gracefulRestart: {restartTimeSeconds: 10}', 'spec.gracefulRestart.enabled: required field missing'],
    ['BGPPeerConfig', '  transport: {peerPort: 0}', 'spec.transport.peerPort: expected integer to be greater or equal to 1'],
    ['BGPAdvertisement', '  advertisements: [{advertisementType: PodCIDR}]', 'spec.advertisements[0].advertisementType: expected'],
    ['BGPAdvertisement', '  advertisements: [{advertisementType: Service, service: {addresses: [NodeIP]}}]', 'spec.advertisements[0].service.addresses[0]: must be one of "LoadBalancerIP", "ExternalIP", "ClusterIP"'],
    ['BGPAdvertisement', '  advertisements: [{advertisementType: Service, attributes: {localPreference: -1}}]', 'spec.advertisements[0].attributes.localPreference: expected integer to be greater or equal to 0'],
    ['BGPNodeConfigOverride', '  bgpInstances: [{name: a, peers: [{name: p, localASN: 1}]}]', 'spec.bgpInstances[0].peers[0].localASN: unknown field'],
  ])('%s refuses %s', (kind, spec, error) => {
    const r = parseManifests(doc(kind, spec), 'x.yaml');
    expect(r.objects).toEqual([]);
    expect(r.skipped).toHaveLength(1);
    expect(r.skipped[0]!.kind).toBe(kind);
    expect(r.skipped[0]!.reason.toLowerCase()).toContain(error.toLowerCase());
  });

  it('are generated as cluster-scoped CRDs with a validity column', () => {
    const rendered = renderCRDs();
    for (const [file, kind] of [
      ['beacon.io_bgpclusterconfigs.yaml', 'BGPClusterConfig'],
      ['beacon.io_bgppeerconfigs.yaml', 'BGPPeerConfig'],
      ['beacon.io_bgpadvertisements.yaml', 'BGPAdvertisement'],
      ['beacon.io_bgpnodeconfigoverrides.yaml', 'BGPNodeConfigOverride'],
    ] as const) {
      const crd = parse(rendered.get(file)!) as { spec: { scope: string; names: { kind: string }; versions: { additionalPrinterColumns: { name: string }[] }[] } };
      expect(crd.spec.names.kind).toBe(kind);
      expect(crd.spec.scope).toBe('Cluster');
      expect(crd.spec.versions[0]!.additionalPrinterColumns.map((c) => c.name)).toEqual(['Valid', 'Message', 'Age']);
    }
  });
});

describe('communities', () => {
  it.each([
    ['65000:100', '65000:100'],
    ['0:0', '0:0'],
    ['65535:65535', '65535:65535'],
    ['4259840100', '65000:100'], // one 32-bit decimal, as Cilium accepts
    ['0', '0:0'],
  ])('standard %s is %s', (text, value) => expect(checkStandardCommunity(text)).toEqual({ ok: true, value }));

  it.each(['65536:1', '1:65536', '1:2:3', '', ':', '1:', '-1:2', '01:2', ' 1:2', '0x10:1', '4294967296', '1.5:2'])('standard %j is refused', (text) => {
    const r = checkStandardCommunity(text);
    expect(r).toEqual({ ok: false, error: `standard community "${text}" must be two decimals 0-65535 as "65000:100", or one decimal 0-4294967295` });
  });

  it('points a well-known name written as standard to wellKnown', () => {
    expect(checkStandardCommunity('no-export')).toEqual({ ok: false, error: 'standard community "no-export" is a well-known name: list it under wellKnown' });
  });

  it.each([
    ['no-export', '65535:65281'],
    ['no-advertise', '65535:65282'],
    ['no-export-subconfed', '65535:65283'],
    ['local-as', '65535:65283'],
    ['no-peer', '65535:65284'],
    ['blackhole', '65535:666'],
    ['graceful-shutdown', '65535:0'],
    ['planned-shut', '65535:0'],
    ['llgr-stale', '65535:6'],
    ['internet', '0:0'],
  ])('well-known %s is %s', (text, value) => expect(checkWellKnownCommunity(text)).toEqual({ ok: true, value }));

  it('refuses unknown well-known names, listing the known ones', () => {
    const r = checkWellKnownCommunity('NO_EXPORT');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toBe(`well-known community "NO_EXPORT" is not one of ${Object.keys(wellKnownCommunities).join(', ')}`);
    expect(checkWellKnownCommunity('toString').ok).toBe(false); // no prototype keys
  });

  it.each([
    ['4200000000:1:2', '4200000000:1:2'],
    ['0:0:0', '0:0:0'],
    ['4294967295:4294967295:4294967295', '4294967295:4294967295:4294967295'],
  ])('large %s is %s', (text, value) => expect(checkLargeCommunity(text)).toEqual({ ok: true, value }));

  it.each(['1:2', '1:2:3:4', '4294967296:1:2', 'a:b:c', '1::2', '01:2:3'])('large %j is refused', (text) => {
    expect(checkLargeCommunity(text)).toEqual({ ok: false, error: `large community "${text}" must be three decimals 0-4294967295 as "4200000000:1:2"` });
  });
});
