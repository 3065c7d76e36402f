// L2 announcements end to end: `beacon standalone` processes in network namespaces on one bridge,
// sharing an embedded store (one state folder), and a client namespace that asks with the real
// tools (arping, ndisc6) and keeps its answers in the kernel's neighbour table.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { L2AnnouncementView } from '../agent/l2.js';
import type { ServiceView } from '../agent/local-api.js';
import { Lab, type LabBridge, type LabHost, type LabProcess } from '../lab/index.js';
import { beacon, beaconBin, eventually, sleep } from './process.js';

const vip4 = '198.18.0.100';
const vip6 = '2001:db8::100';

const pool = `apiVersion: beacon.io/v1alpha1
kind: LoadBalancerIPPool
metadata: {name: lan}
spec:
  blocks: [{start: 198.18.0.100, stop: 198.18.0.109}, {start: "2001:db8::100", stop: "2001:db8::109"}]
`;
const policy = (spec: string) => `apiVersion: beacon.io/v1alpha1
kind: L2AnnouncementPolicy
metadata: {name: lan}
spec: ${spec}
`;
const service = (name: string, extra = '', labels = '{app: web}', annotations = '{}', port = 80) => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: shop, labels: ${labels}, annotations: ${annotations}}
spec:
  type: LoadBalancer${extra}
  ports: [{port: ${port}, protocol: TCP}]
`;

interface Node {
  name: string;
  host: LabHost;
  mac: string;
  proc?: LabProcess;
}

describe('L2 announcements on a bridge (real kernel, arping, ndisc6)', { timeout: 240_000 }, () => {
  let lab: Lab;
  let dir: string;
  let client: LabHost;
  let br: LabBridge;
  const nodes: Node[] = [];
  let starts = 0;

  const put = (file: string, text: string) => writeFileSync(join(dir, 'manifests', file), text);
  const socket = (n: Node) => join(dir, `${n.name}.sock`);

  async function macOf(host: LabHost, ifname: string): Promise<string> {
    const r = await host.exec('ip', ['-j', 'link', 'show', ifname]);
    return (JSON.parse(r.stdout) as { address: string }[])[0]!.address;
  }

  async function start(n: Node): Promise<void> {
    n.proc = await n.host.spawn(`${n.name}-${++starts}`, process.execPath, [
      beaconBin, 'standalone', '--kube-proxy-replacement', 'false', '--node-name', n.name, '--manifests', join(dir, 'manifests'), '--state-dir', join(dir, 'state'),
      '--socket', socket(n), '--lease-duration', '2s', '--node-labels', `zone=${n.name === 'n3' ? 'b' : 'a'}`,
    ]);
    await n.proc.waitForLog('beacon standalone started', 20_000);
  }

  const view = (n: Node): L2AnnouncementView[] => {
    const r = beacon('l2', 'announcements', '-o', 'json', '--socket', socket(n));
    if (r.code !== 0) throw new Error(r.err);
    return JSON.parse(r.out) as L2AnnouncementView[];
  };

  /** The MACs that answer ARP for an IP (arping: two requests, raw output). */
  async function arpAnswers(ip: string, from = client, ifname = 'eth0'): Promise<string[]> {
    const r = await from.exec('arping', ['-c', '2', '-w', '3', '-r', '-i', ifname, ip], { timeoutMs: 8000 });
    return [...new Set(r.stdout.split('\n').map((l) => l.trim().toLowerCase()).filter(Boolean))];
  }

  async function ndpAnswer(ip: string): Promise<string | undefined> {
    const r = await client.exec('ndisc6', ['-1', '-q', '-r', '2', '-w', '1000', ip, 'eth0'], { timeoutMs: 8000 });
    return r.code === 0 ? r.stdout.trim().toLowerCase() : undefined;
  }

  const nodeByMac = (mac: string) => nodes.find((n) => n.mac === mac)?.name;

  /** Waits until every running node reports the same announcer for `ip`, and returns it. */
  async function announcer(ip: string, timeoutMs = 10_000): Promise<Node> {
    let chosen: string | null = null;
    await eventually(() => {
      const running = nodes.filter((n) => n.proc?.running !== false && n.proc);
      const seen = running.map((n) => view(n).find((a) => a.ip === ip)?.node ?? null);
      expect(seen[0]).not.toBeNull();
      expect(new Set(seen).size).toBe(1);
      chosen = seen[0]!;
    }, timeoutMs);
    return nodes.find((n) => n.name === chosen)!;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'beacon-l2-'));
    mkdirSync(join(dir, 'manifests'));
    lab = await Lab.create({ name: 'test' });
    br = await lab.bridge('br0');
    client = await lab.host('client');
    await lab.attach(client, br, { addresses: ['198.18.0.1/24', '2001:db8::1/64'] });
    for (const [i, name] of ['n1', 'n2', 'n3'].entries()) {
      const host = await lab.host(name);
      await lab.attach(host, br, { addresses: [`198.18.0.1${i + 1}/24`, `2001:db8::1${i + 1}/64`] });
      // The service datapath stand-in: the node accepts traffic for the VIP (a local route, no
      // address). arp_ignore=1 keeps the kernel from answering ARP for it (only Beacon does), and
      // arp_announce=2 from using it as the source of its own ARP requests, which would pull
      // clients back to a node that no longer announces it.
      await host.exec('sysctl', ['-qw', 'net.ipv4.conf.all.arp_ignore=1', 'net.ipv4.conf.all.arp_announce=2']);
      await host.exec('ip', ['route', 'add', 'local', `${vip4}/32`, 'dev', 'lo', 'table', 'local']);
      nodes.push({ name, host, mac: await macOf(host, 'eth0') });
    }
    put('pool.yaml', pool);
    put('policy.yaml', policy('{serviceSelector: {matchLabels: {app: web}}, interfaces: ["^eth0$"]}'));
    put('web.yaml', service('web', '\n  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]'));
    for (const n of nodes) await start(n);
  }, 120_000);

  afterAll(async () => {
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('answers ARP and NDP for the service IPs from the elected node only, with its MAC', async () => {
    const elected = await announcer(vip4);
    expect(await arpAnswers(vip4)).toEqual([elected.mac]);
    const elected6 = await announcer(vip6);
    expect(await ndpAnswer(vip6)).toBe(elected6.mac);
    // The client's kernel learned it too.
    await client.exec('ping', ['-c', '1', '-W', '1', vip4]);
    const neigh = await client.exec('ip', ['-j', 'neigh', 'show', vip4, 'dev', 'eth0']);
    expect((JSON.parse(neigh.stdout) as { lladdr?: string }[])[0]?.lladdr).toBe(elected.mac);
    // Every node explains its part.
    for (const n of nodes) {
      const a = view(n).find((x) => x.ip === vip4)!;
      expect(a).toMatchObject({ services: ['shop/web'], node: elected.name, interfaces: ['eth0'], reason: n === elected ? 'announcing' : 'not_elected' });
    }
    const svc = JSON.parse(beacon('services', '-o', 'json', '--socket', socket(nodes[0]!)).out) as ServiceView[];
    expect(svc[0]!.announcers!.sort()).toEqual([...new Set([elected.name, elected6.name])].sort());
  });

  it('does not answer for IPs it does not announce, and the kernel does not answer for the VIP either', async () => {
    expect(await arpAnswers('198.18.0.109')).toEqual([]);
    expect(await ndpAnswer('2001:db8::109')).toBeUndefined();
  });

  it('follows policy and service edits', async () => {
    put('policy.yaml', policy('{serviceSelector: {matchLabels: {app: web}}, nodeSelector: {matchLabels: {zone: b}}}'));
    await eventually(async () => expect(await arpAnswers(vip4)).toEqual([nodes[2]!.mac]), 10_000);
    expect(view(nodes[0]!).find((a) => a.ip === vip4)?.reason).toBe('node_not_selected');
    put('web.yaml', service('web', '\n  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]', '{app: other}'));
    await eventually(async () => expect(await arpAnswers(vip4)).toEqual([]), 10_000);
    expect(view(nodes[0]!).find((a) => a.ip === vip4)?.reason).toBe('no_policy');
    put('web.yaml', service('web', '\n  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]'));
    put('policy.yaml', policy('{serviceSelector: {matchLabels: {app: web}}, interfaces: ["^eth0$"]}'));
    await eventually(async () => expect((await arpAnswers(vip4)).length).toBe(1), 10_000);
  });

  it('gives services that share an IP one announcer', async () => {
    const shared = '{beacon.io/sharing-key: k, beacon.io/ips: 198.18.0.105}';
    put('a.yaml', service('share-a', '', '{app: web}', shared, 81));
    put('b.yaml', service('share-b', '', '{app: web}', shared, 82));
    const elected = await announcer('198.18.0.105');
    expect(view(nodes[0]!).find((a) => a.ip === '198.18.0.105')?.services).toEqual(['shop/share-a', 'shop/share-b']);
    expect(await arpAnswers('198.18.0.105')).toEqual([elected.mac]);
  });

  it('fails over when the announcer is killed with SIGKILL, and takes the IP back when it returns', async () => {
    const before = await announcer(vip4);
    const t0 = Date.now();
    before.proc!.kill('SIGKILL');
    let answer: string[] = [];
    for (let i = 0; i < 40; i++) {
      answer = await arpAnswers(vip4);
      if (answer.length === 1 && answer[0] !== before.mac) break;
    }
    const took = Date.now() - t0;
    expect(answer).toHaveLength(1);
    expect(nodeByMac(answer[0]!)).not.toBe(before.name);
    console.log(`SIGKILL failover: another node answered after ${took} ms (arping granularity)`);
    await start(before); // rendezvous hashing gives it its IPs back
    await eventually(async () => expect(await arpAnswers(vip4)).toEqual([before.mac]), 15_000);
  });

  it('fails over when the announcer loses its link', async () => {
    const before = await announcer(vip4);
    await before.host.setLink('eth0', 'down');
    try {
      await eventually(async () => {
        const answer = await arpAnswers(vip4);
        expect(answer).toHaveLength(1);
        expect(answer[0]).not.toBe(before.mac);
      }, 10_000);
      expect(view(before).find((a) => a.ip === vip4)?.reason).toBe('interface_not_found');
    } finally {
      await before.host.setLink('eth0', 'up');
    }
    await eventually(async () => expect(await arpAnswers(vip4)).toEqual([before.mac]), 15_000);
  });

  it('hands over on SIGTERM: a client pinging the IP loses no reply', async () => {
    const before = await announcer(vip4);
    await client.exec('ping', ['-c', '1', '-W', '1', vip4]);
    // 200 echo requests, one every 20 ms, while the announcer stops.
    const pinging = client.exec('ping', ['-n', '-i', '0.02', '-c', '200', '-W', '1', vip4], { timeoutMs: 20_000 });
    await sleep(800);
    await before.proc!.stop(5000); // SIGTERM, and SIGKILL only after 5 s
    // The node is gone: its datapath goes too. Only a client that moved on keeps its replies.
    await before.host.exec('ip', ['route', 'del', 'local', `${vip4}/32`, 'dev', 'lo', 'table', 'local']);
    const r = await pinging;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    expect(Number(m![2])).toBe(Number(m![1]));
    const after = await arpAnswers(vip4);
    expect(after).toHaveLength(1);
    expect(after[0]).not.toBe(before.mac);
    await before.host.exec('ip', ['route', 'add', 'local', `${vip4}/32`, 'dev', 'lo', 'table', 'local']);
    await start(before);
  });

  it('answers only on the selected interface of a node with two NICs', async () => {
    const br2 = await lab.bridge('br1');
    const client2 = await lab.host('client2');
    await lab.attach(client2, br2, { addresses: ['198.18.1.1/24'] });
    for (const [i, n] of nodes.entries()) await lab.attach(n.host, br2, { ifname: 'eth1', addresses: [`198.18.1.1${i + 1}/24`] });
    // Announce on eth1 only: the client on br0 gets nothing, the one on br1 gets the node's eth1 MAC.
    put('policy.yaml', policy('{serviceSelector: {matchLabels: {app: web}}, interfaces: ["^eth1$"]}'));
    await eventually(async () => expect(await arpAnswers(vip4, client2)).toHaveLength(1), 15_000);
    const elected = await announcer(vip4);
    expect(await arpAnswers(vip4, client2)).toEqual([await macOf(elected.host, 'eth1')]);
    expect(await arpAnswers(vip4)).toEqual([]);
    expect(view(elected).find((a) => a.ip === vip4)?.interfaces).toEqual(['eth1']);
  });
});
