// BGP end to end through `beacon standalone`: the BGP resources in the manifests folder, LB-IPAM
// assigning the IPs, the node agent advertising them to BIRD in another namespace, and the CLI.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BGPPeerView, BGPRouteView } from '../agent/bgp.js';
import type { RouteExplanation } from '../bgp/index.js';
import { Lab, type LabHost, type LabProcess } from '../lab/index.js';
import { PeerDaemon, type BirdDaemon } from './bgp-peers.js';
import { beacon, beaconBin, eventually } from './process.js';

const manifests = (password: boolean) => `apiVersion: beacon.io/v1alpha1
kind: LoadBalancerIPPool
metadata: {name: lan}
spec: {blocks: [{cidr: 198.18.100.0/28}, {cidr: "2001:db8:100::/124"}]}
---
apiVersion: beacon.io/v1alpha1
kind: BGPClusterConfig
metadata: {name: edge}
spec:
  nodeSelector: {matchLabels: {bgp: "on"}}
  bgpInstances:
  - name: main
    localASN: 64512
    peers:
    - {name: router, peerAddress: 198.18.5.1, peerASN: 64600, peerConfigRef: {name: router}}
---
apiVersion: beacon.io/v1alpha1
kind: BGPPeerConfig
metadata: {name: router}
spec:
  timers: {holdTimeSeconds: 9, keepAliveTimeSeconds: 3, connectRetryTimeSeconds: 2}
${password ? '  authSecretRef: router-password\n' : ''}  families:
  - {afi: ipv4, safi: unicast, advertisements: {matchLabels: {advertise: bgp}}}
  - {afi: ipv6, safi: unicast, advertisements: {matchLabels: {advertise: bgp}}}
---
apiVersion: beacon.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: services, labels: {advertise: bgp}}
spec:
  advertisements:
  - advertisementType: Service
    service: {addresses: [LoadBalancerIP]}
    selector: {matchLabels: {app: web}}
    attributes:
      communities: {standard: ["64512:100"], wellKnown: [no-export], large: ["64512:1:2"]}
`;

const service = (name: string) => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: shop, labels: {app: web}}
spec: {type: LoadBalancer, ipFamilyPolicy: RequireDualStack, ipFamilies: [IPv4, IPv6], ports: [{port: 80}]}
`;

describe('BGP through beacon standalone, with BIRD as the router', { timeout: 180_000 }, () => {
  let lab: Lab;
  let dir: string;
  let node: LabHost;
  let bird: BirdDaemon;
  let beaconProc: LabProcess | undefined;
  let starts = 0;
  const sock = () => join(dir, 'node.sock');
  const put = (file: string, text: string) => writeFileSync(join(dir, 'manifests', file), text);

  async function start(): Promise<void> {
    beaconProc = await node.spawn(`beacon-${++starts}`, process.execPath, [
      beaconBin, 'standalone', '--kube-proxy-replacement', 'false', '--node-name', 'node-1', '--node-labels', 'bgp=on', '--manifests', join(dir, 'manifests'),
      '--state-dir', join(dir, 'state'), '--socket', sock(), '--l2-announcements', 'false',
    ]);
    await beaconProc.waitForLog('beacon standalone started', 20_000);
  }

  const cli = <T>(...args: string[]): T => {
    const r = beacon(...args, '-o', 'json', '--socket', sock());
    if (r.code !== 0) throw new Error(r.err);
    return JSON.parse(r.out) as T;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'beacon-bgp-e2e-'));
    mkdirSync(join(dir, 'manifests'));
    lab = await Lab.create({ name: 'test' });
    node = await lab.host('node');
    const router = await lab.host('router');
    await lab.link(node, router, { a: { addresses: ['198.18.5.2/24', '2001:db8:5::2/64'] }, b: { addresses: ['198.18.5.1/24', '2001:db8:5::1/64'] } });
    bird = await PeerDaemon.start('bird', router, {
      localASN: 64600,
      routerId: '198.18.5.1',
      localAddresses: ['198.18.5.1'],
      neighbours: [{ address: '198.18.5.2', asn: 64512, passive: true, families: ['ipv4-unicast', 'ipv6-unicast'], password: 'correct horse' }],
    });
    put('bgp.yaml', manifests(true));
    put('web.yaml', service('web'));
    writeFileSync(join(dir, 'manifests', 'router-password'), 'correct horse\n', { mode: 0o600 });
    await start();
  }, 120_000);

  afterAll(async () => {
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('advertises the service IPs with next hop self and the communities, over TCP MD5 with the password from a file', async () => {
    await bird.waitEstablished('198.18.5.2', 30_000);
    await eventually(async () => expect((await bird.routes()).map((r) => r.prefix).sort()).toEqual(['198.18.100.1/32', '2001:db8:100::1/128']), 15_000);
    const v4 = (await bird.routes('ipv4-unicast'))[0]!;
    expect(v4).toMatchObject({ nextHop: '198.18.5.2', asPath: [64512], largeCommunities: ['64512:1:2'] });
    expect([...v4.communities].sort()).toEqual(['64512:100', '65535:65281']);
    const v6 = (await bird.routes('ipv6-unicast'))[0]!;
    expect(v6.nextHop).toBe('2001:db8:5::2');

    const peers = cli<BGPPeerView[]>('bgp', 'peers');
    expect(peers).toMatchObject([{ node: 'node-1', name: 'main/router', localASN: 64512, peerASN: 64600, peerAddress: '198.18.5.1', state: 'established', advertised: 2 }]);
    const routes = cli<BGPRouteView[]>('bgp', 'routes');
    expect(routes.map((r) => `${r.peer} ${r.prefix} ${r.nextHop}`).sort()).toEqual(['main/router 198.18.100.1/32 198.18.5.2', 'main/router 2001:db8:100::1/128 2001:db8:5::2']);
    expect(beacon('bgp', 'peers', '--socket', sock()).out).toMatch(/NODE\s+LOCAL AS\s+PEER AS\s+PEER ADDRESS\s+SESSION STATE\s+UPTIME\s+FAMILY\s+RECEIVED\s+ADVERTISED/);
  });

  it('explains per peer and address why a service is or is not advertised', async () => {
    put('other.yaml', service('other').replace('labels: {app: web}', 'labels: {app: other}'));
    const why = (name: string) =>
      cli<RouteExplanation[]>('bgp', 'explain')
        .filter((e) => e.service === `shop/${name}`)
        .map((e) => `${e.peer} ${e.address ?? '-'} ${e.advertised} ${e.reason}`)
        .sort();
    await eventually(() => expect(why('other')).toHaveLength(2), 15_000);
    expect(why('web')).toEqual(['main/router 198.18.100.1 true advertised', 'main/router 2001:db8:100::1 true advertised']);
    expect(why('other').every((line) => line.endsWith('false not_selected'))).toBe(true);
    expect(beacon('bgp', 'explain', '--socket', sock()).out).toMatch(/PEER\s+SERVICE\s+ADDRESS\s+ADVERTISED\s+REASON\s+MESSAGE[\s\S]*shop\/other .* no\s+not_selected/);
    rmSync(join(dir, 'manifests', 'other.yaml'));
  });

  it('advertises a new service and withdraws a deleted one', async () => {
    put('api.yaml', service('api'));
    await eventually(async () => expect((await bird.routes()).length).toBe(4), 15_000);
    rmSync(join(dir, 'manifests', 'api.yaml'));
    await eventually(async () => expect((await bird.routes()).map((r) => r.prefix).sort()).toEqual(['198.18.100.1/32', '2001:db8:100::1/128']), 15_000);
  });

  it('keeps the session down with a wrong password, and reports it', async () => {
    // Password files are re-read every 10 s.
    writeFileSync(join(dir, 'manifests', 'router-password'), 'wrong\n');
    await eventually(async () => expect((await bird.session('198.18.5.2')).established).toBe(false), 30_000);
    expect((await bird.routes()).length).toBe(0);
    writeFileSync(join(dir, 'manifests', 'router-password'), 'correct horse\n');
    await bird.waitEstablished('198.18.5.2', 30_000);
    await eventually(async () => expect((await bird.routes()).length).toBe(2), 15_000);
  });

  it('withdraws its routes before it exits on SIGTERM', async () => {
    const exit = await beaconProc!.stop(6000); // SIGTERM (to the process group), SIGKILL only after 6 s
    expect(exit.code).toBe(0);
    await eventually(async () => expect(await bird.routes()).toEqual([]), 10_000);
    await start();
    await eventually(async () => expect((await bird.routes()).length).toBe(2), 30_000);
  });
});
