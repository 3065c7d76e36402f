// L2 announcement benchmark (`npm run bench:l2`, with bench/l2-reply.ts for ARP reply latency):
// three `beacon standalone` nodes in namespaces on one bridge, sharing an embedded store, and a
// client namespace. Measured from the client's side:
//   - failover: SIGKILL of the announcer → the client's neighbour entry for the VIP points to
//     another node (`ip -ts monitor neigh` timestamps), repeated KILLS times (default 20);
//   - graceful handover: replies lost by a client pinging every 10 ms while the announcer gets
//     SIGTERM (its datapath removed as soon as it exits);
//   - store load: L2 lease writes per second per node with 10, 1,000 and 10,000 announced IPs.
// Usage: node dist/bench/l2.js [--kills N] [--handovers N]
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { L2AnnouncementView } from '../agent/l2.js';
import { getLocal } from '../agent/local-api.js';
import { Lab, type LabHost, type LabProcess } from '../lab/index.js';
import { sleep } from '../test/process.js';

// Run from dist/bench: the executable is two folders up.
const beaconBin = join(import.meta.dirname, '..', '..', 'bin', 'beacon.js');

const { values } = parseArgs({ options: { kills: { type: 'string', default: '20' }, handovers: { type: 'string', default: '5' } } });
const kills = Number(values.kills);
const handovers = Number(values.handovers);
const vip = '198.18.0.100';

interface Node {
  name: string;
  host: LabHost;
  mac: string;
  proc?: LabProcess;
  starts: number;
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'beacon-bench-l2-'));
  const manifests = join(dir, 'manifests');
  mkdirSync(manifests);
  // BEACON_KEEP_LOGS=1 keeps the nodes' and the neighbour monitor's logs for a look afterwards.
  const lab = await Lab.create({ name: 'bench', keepLogs: process.env.BEACON_KEEP_LOGS === '1' });
  process.stderr.write(`logs: ${lab.logDir}\n`);
  const stop = () => void lab.destroy().finally(() => process.exit(1));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const br = await lab.bridge('br0');
    const client = await lab.host('client');
    await lab.attach(client, br, { addresses: ['198.18.0.1/24'] });
    const nodes: Node[] = [];
    for (const [i, name] of ['n1', 'n2', 'n3'].entries()) {
      const host = await lab.host(name);
      await lab.attach(host, br, { addresses: [`198.18.0.1${i + 1}/24`] });
      await host.exec('sysctl', ['-qw', 'net.ipv4.conf.all.arp_ignore=1', 'net.ipv4.conf.all.arp_announce=2']);
      await host.exec('ip', ['route', 'add', 'local', `${vip}/32`, 'dev', 'lo', 'table', 'local']);
      const link = JSON.parse((await host.exec('ip', ['-j', 'link', 'show', 'eth0'])).stdout) as { address: string }[];
      nodes.push({ name, host, mac: link[0]!.address, starts: 0 });
    }
    writeFileSync(join(manifests, 'base.yaml'), `apiVersion: beacon.io/v1alpha1
kind: LoadBalancerIPPool
metadata: {name: lan}
spec: {blocks: [{start: ${vip}, stop: 198.18.0.109}]}
---
apiVersion: beacon.io/v1alpha1
kind: L2AnnouncementPolicy
metadata: {name: all}
spec: {interfaces: ["^eth0$"]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {type: LoadBalancer, ports: [{port: 80}]}
`);
    const start = async (n: Node) => {
      n.proc = await n.host.spawn(`${n.name}-${++n.starts}`, process.execPath, [
        beaconBin, 'standalone', '--kube-proxy-replacement', 'false', '--node-name', n.name, '--manifests', manifests, '--state-dir', join(dir, 'state'),
        '--socket', join(dir, `${n.name}.sock`), '--metrics-addr', '127.0.0.1:9464', '--log-level', process.env.BEACON_KEEP_LOGS === '1' ? 'info' : 'warn',
      ]);
    };
    for (const n of nodes) await start(n);

    // The client's view: every change of its neighbour entry for the VIP, with kernel timestamps.
    const monitor = await client.spawn('neigh-monitor', 'ip', ['-ts', 'monitor', 'neigh', 'dev', 'eth0']);
    if (process.env.BEACON_KEEP_LOGS === '1') await client.spawn('arp-capture', 'tcpdump', ['-n', '-e', '-tttt', '-i', 'eth0', 'arp']);
    const neighbourChanges = (): { at: number; mac: string }[] =>
      readFileSync(join(lab.logDir, 'neigh-monitor.log'), 'utf8')
        .split('\n')
        .flatMap((line) => {
          const m = /^\[(\S+)\] (\S+) .*lladdr (\S+)/.exec(line);
          // ip prints local time without a zone; Date.parse reads such a string as local time too.
          return m && m[2] === vip ? [{ at: Date.parse(m[1]!.slice(0, 23)), mac: m[3]! }] : [];
        });
    const currentMac = async (): Promise<string | undefined> => {
      await client.exec('ping', ['-c', '1', '-W', '1', vip]);
      const r = JSON.parse((await client.exec('ip', ['-j', 'neigh', 'show', vip, 'dev', 'eth0'])).stdout) as { lladdr?: string }[];
      return r[0]?.lladdr;
    };
    const views = () =>
      Promise.all(nodes.map((n) => getLocal<L2AnnouncementView[]>(join(dir, `${n.name}.sock`), '/v1/l2/announcements').then((v) => v.find((a) => a.ip === vip), () => undefined)));
    // Steady: every node is running and names the same announcer for the VIP, that node says it
    // answers, and the client's neighbour entry points to it (a returning node has taken its share
    // back and the client has moved with it).
    const settle = async (): Promise<Node> => {
      for (let i = 0; i < 150; i++) {
        const seen = await views();
        const chosen = seen[0]?.node;
        const n = nodes.find((x) => x.name === chosen);
        if (n && nodes.every((x) => x.proc?.running) && seen.every((a) => a?.node === chosen) && (await currentMac()) === n.mac) return n;
        await sleep(200);
      }
      throw new Error('the nodes do not agree on an announcer, or the client does not follow it');
    };

    // Failover after SIGKILL.
    const failovers: number[] = [];
    for (let i = 0; i < kills; i++) {
      const victim = await settle();
      const seen = neighbourChanges().length;
      const t0 = Date.now();
      victim.proc!.kill('SIGKILL');
      let moved: { at: number; mac: string } | undefined;
      // Keep the entry in use, as a real client would; give up after 10 s.
      const pinger = client.exec('ping', ['-n', '-i', '0.05', '-w', '10', vip], { timeoutMs: 12_000 });
      for (let w = 0; w < 1000 && !moved; w++) {
        moved = neighbourChanges().slice(seen).find((c) => c.mac !== victim.mac);
        if (!moved) await sleep(10);
      }
      await client.exec('pkill', ['-f', `ping -n -i 0.05 -w 10 ${vip}`]);
      await pinger;
      if (!moved) throw new Error(`kill ${i + 1}: no other node took over within 10 s`);
      failovers.push(moved.at - t0);
      await start(victim);
      process.stderr.write(`kill ${i + 1}/${kills}: ${victim.name} → ${nodes.find((n) => n.mac === moved.mac)?.name}: ${moved.at - t0} ms\n`);
    }

    // Graceful handover: replies lost while the announcer stops.
    const losses: { sent: number; lost: number }[] = [];
    for (let i = 0; i < handovers; i++) {
      const leaving = await settle();
      const pinging = client.exec('ping', ['-n', '-i', '0.01', '-c', '300', '-W', '1', vip], { timeoutMs: 20_000 });
      await sleep(500);
      const termAt = Date.now();
      await leaving.proc!.stop(5000); // SIGTERM, and SIGKILL only after 5 s
      await leaving.host.exec('ip', ['route', 'del', 'local', `${vip}/32`, 'dev', 'lo', 'table', 'local']);
      const out = (await pinging).stdout;
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      if (!m) throw new Error(`ping printed no summary: ${out}`);
      losses.push({ sent: Number(m[1]), lost: Number(m[1]) - Number(m[2]) });
      process.stderr.write(`handover ${i + 1}: SIGTERM to ${leaving.name} (${leaving.mac}) at ${new Date(termAt).toISOString()}\n`);
      await leaving.host.exec('ip', ['route', 'add', 'local', `${vip}/32`, 'dev', 'lo', 'table', 'local']);
      await start(leaving);
      process.stderr.write(`handover ${i + 1}/${handovers}: ${losses.at(-1)!.lost} of ${losses.at(-1)!.sent} lost\n`);
    }

    // Store load by number of announced IPs.
    const leaseWrites = async (n: Node): Promise<number> => {
      const r = await n.host.exec(process.execPath, ['-e', `fetch('http://127.0.0.1:9464/metrics').then(r=>r.text()).then(t=>console.log(t))`]);
      return Number(/^beacon_l2_lease_writes_total (\d+)/m.exec(r.stdout)?.[1] ?? NaN);
    };
    const announced = async (n: Node): Promise<number> => {
      const r = await n.host.exec(process.execPath, ['-e', `fetch('http://127.0.0.1:9464/metrics').then(r=>r.text()).then(t=>console.log(t))`]);
      return Number(/^beacon_l2_announced_ips (\d+)/m.exec(r.stdout)?.[1] ?? NaN);
    };
    await settle();
    const load: { ips: number; writesPerNodePerSecond: number[] }[] = [];
    for (const count of [10, 1000, 10000]) {
      const docs = Array.from({ length: count - 1 }, (_, i) => `apiVersion: v1
kind: Service
metadata: {name: bulk-${i}, namespace: bulk}
spec: {type: LoadBalancer, ports: [{port: 80}]}
`);
      writeFileSync(join(manifests, 'bulk-pool.yaml'), `apiVersion: beacon.io/v1alpha1\nkind: LoadBalancerIPPool\nmetadata: {name: bulk}\nspec: {blocks: [{cidr: 198.18.64.0/18}]}\n`);
      writeFileSync(join(manifests, 'bulk.yaml'), docs.join('---\n'));
      for (let w = 0; w < 600; w++) {
        const total = (await Promise.all(nodes.map(announced))).reduce((a, b) => a + b, 0);
        if (total === count) break;
        await sleep(500);
      }
      const before = await Promise.all(nodes.map(leaseWrites));
      const t0 = Date.now();
      await sleep(10_000);
      const after = await Promise.all(nodes.map(leaseWrites));
      const seconds = (Date.now() - t0) / 1000;
      load.push({ ips: count, writesPerNodePerSecond: after.map((a, i) => Math.round(((a - before[i]!) / seconds) * 10) / 10) });
      process.stderr.write(`store load with ${count} IPs: ${load.at(-1)!.writesPerNodePerSecond.join(', ')} writes/s per node\n`);
    }

    failovers.sort((a, b) => a - b);
    const summary = {
      date: new Date().toISOString().slice(0, 10),
      timing: 'defaults: lease 1 s, renew 200 ms, scan 100 ms, margin 200 ms, handover 500 ms',
      failoverMs: { kills: failovers.length, p50: quantile(failovers, 0.5), p90: quantile(failovers, 0.9), p99: quantile(failovers, 0.99), max: failovers.at(-1), all: failovers },
      handover: { runs: losses.length, lost: losses.reduce((a, l) => a + l.lost, 0), sent: losses.reduce((a, l) => a + l.sent, 0) },
      storeLoad: load,
      peers: 'Not run here (no Kubernetes); computed from their defaults: Cilium (leaseDuration 15 s, renewDeadline 5 s, retryPeriod 2 s) give 10–20 s failover and one lease per service renewed every 2 s (5,000 writes/s at 10,000 services).',
    };
    console.log(JSON.stringify(summary, null, 2));
    monitor.kill('SIGTERM');
  } finally {
    await lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
