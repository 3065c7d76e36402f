// ARP reply latency and the highest request rate answered without loss: Beacon's PacketLink
// (a worker thread answering from AF_PACKET sockets) beside the Linux kernel answering for an
// address configured on the same interface, in one lab and one run.
//
// Topology: a client and a node on one bridge. The node runs a PacketLink announcing 198.18.0.100
// on eth0 and has 198.18.0.200 configured on eth0 (the kernel answers that one). The client, in its
// namespace, sends ARP requests from its own AF_PACKET socket and timestamps the replies:
//   latency — one request outstanding at a time, N samples, p50/p99 (includes the client's own
//             send/poll/receive path, which is the same for both);
//   rate    — open loop at rising rates for 1 s each; the highest rate with every request answered.
// Usage: npx tsx bench/l2-reply.ts [--samples 2000] [--max-rate 100000]
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { formatIP, parseIP } from '../api/index.js';
import { broadcastMAC, decodeFrame, encodeARP, encodeEthernet, ETHERTYPE_ARP, parseMAC, zeroMAC } from '../l2announce/index.js';
import { arpReplyFilter, ETH_P_ARP, PacketSocket, POLLFD_SIZE, POLLIN, pollFds } from '../l2announce/packet-socket.js';
import { Lab } from '../lab/index.js';
import { LinkChild } from '../test/l2-link-harness.js';

const BEACON_IP = '198.18.0.100';
const KERNEL_IP = '198.18.0.200';
const CLIENT_IP = '198.18.0.2';
const RATES = [1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 40_000, 50_000, 70_000, 100_000, 150_000, 200_000];
const PHASE_NS = 1_000_000_000n;
const REPLY_TIMEOUT_MS = 50;

interface ClientPlan {
  readonly ifindex: number;
  readonly mac: string;
  readonly targets: readonly string[];
  readonly samples: number;
  readonly maxRate: number;
}

interface RateStep {
  readonly rate: number;
  readonly sent: number;
  readonly answered: number;
}

interface TargetResult {
  readonly target: string;
  /** Round trips in microseconds, sorted. */
  readonly latencyUs: readonly number[];
  readonly lost: number;
  readonly steps: readonly RateStep[];
}

const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

// ---- the client, inside the client namespace -------------------------------------------------------

function runClient(plan: ClientPlan): TargetResult[] {
  const mac = parseMAC(plan.mac)!;
  const socket = PacketSocket.open(plan.ifindex, ETH_P_ARP, arpReplyFilter);
  socket.setReceiveBuffer(8 << 20);
  const fds = new Uint8Array(POLLFD_SIZE);
  const fdView = new DataView(fds.buffer);
  fdView.setInt32(0, socket.fd, true);
  fdView.setInt16(4, POLLIN, true);
  const buffer = new Uint8Array(2048);
  const sender = parseIP(CLIENT_IP)!;

  /** Reads every queued reply; counts those from `target` to us. */
  const drain = (target: bigint): number => {
    let n = 0;
    for (let i = 0; i < 1_000_000; i++) {
      const length = socket.receive(buffer);
      if (length < 0) break;
      const d = decodeFrame(buffer.subarray(0, length));
      if (d.ok && d.frame.kind === 'arp' && d.frame.arp.senderIP.value === target && d.frame.arp.targetIP.value === sender.value) n++;
    }
    return n;
  };

  const results: TargetResult[] = [];
  for (const text of plan.targets) {
    const target = parseIP(text)!;
    const request = encodeEthernet(
      { dst: broadcastMAC(), src: mac, ethertype: ETHERTYPE_ARP },
      encodeARP({ op: 'request', senderMAC: mac, senderIP: sender, targetMAC: zeroMAC(), targetIP: target }),
    );
    drain(target.value);

    // Latency: one request outstanding; a reply not back within 50 ms counts as lost.
    const latencyUs: number[] = [];
    let lost = 0;
    for (let i = 0; i < plan.samples; i++) {
      const t0 = process.hrtime.bigint();
      socket.send(request);
      const deadline = t0 + BigInt(REPLY_TIMEOUT_MS) * 1_000_000n;
      let got = false;
      for (let spins = 0; spins < 10_000 && !got; spins++) {
        const left = Number((deadline - process.hrtime.bigint()) / 1_000_000n);
        if (left < 0) break;
        if (pollFds(fds, 1, Math.max(1, left)) <= 0) continue;
        if (drain(target.value) > 0) {
          latencyUs.push(Number(process.hrtime.bigint() - t0) / 1_000);
          got = true;
        }
      }
      if (!got) lost++;
    }
    latencyUs.sort((a, b) => a - b);

    // Rate: requests paced per millisecond for one second, replies counted until 200 ms after the last.
    const steps: RateStep[] = [];
    for (const rate of RATES.filter((r) => r <= plan.maxRate)) {
      drain(target.value);
      const start = process.hrtime.bigint();
      let sent = 0;
      let answered = 0;
      const total = Number((BigInt(rate) * PHASE_NS) / 1_000_000_000n);
      for (let tick = 0; tick < 100_000; tick++) {
        const elapsed = process.hrtime.bigint() - start;
        if (elapsed >= PHASE_NS + 200_000_000n) break;
        const due = Math.min(total, Number((BigInt(rate) * elapsed) / 1_000_000_000n));
        for (; sent < due; sent++) {
          try {
            socket.send(request);
          } catch {
            break; // ENOBUFS: the client's own queue is full; counted as not sent
          }
        }
        answered += drain(target.value);
        pollFds(fds, 1, 1);
      }
      answered += drain(target.value);
      steps.push({ rate, sent, answered });
      if (answered < sent || sent < total) break;
    }
    results.push({ target: formatIP(target), latencyUs, lost, steps });
  }
  socket.close();
  return results;
}

// ---- the orchestrator, in the root namespace --------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { samples: { type: 'string', default: '2000' }, 'max-rate': { type: 'string', default: '200000' } } });
  const samples = Number(values.samples);
  const maxRate = Number(values['max-rate']);
  const lab = await Lab.create({ name: 'bench' });
  let node: LinkChild | undefined;
  try {
    const lan = await lab.bridge('lan');
    const client = await lab.host('client');
    const nodeHost = await lab.host('node');
    await lab.attach(client, lan, { addresses: [`${CLIENT_IP}/24`] });
    await lab.attach(nodeHost, lan, { addresses: ['198.18.0.11/24', `${KERNEL_IP}/24`] });
    node = await LinkChild.start(nodeHost, 'node');
    await node.setTable([{ ip: BEACON_IP, interfaces: ['eth0'] }]);
    await node.fence('forever');

    const sys = async (file: string) => (await client.exec('cat', [`/sys/class/net/eth0/${file}`])).stdout.trim();
    const plan: ClientPlan = { ifindex: Number(await sys('ifindex')), mac: await sys('address'), targets: [BEACON_IP, KERNEL_IP], samples, maxRate };
    // The client runs this same file inside its namespace, with the flags this process has (tsx's loader).
    const args = ['netns', 'exec', client.namespace, process.execPath, ...process.execArgv, process.argv[1]!, '--client', JSON.stringify(plan)];
    const results = await new Promise<TargetResult[]>((resolve, reject) => {
      const child = spawn('ip', args, { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve(JSON.parse(out) as TargetResult[]);
        else reject(new Error(`client exited with ${code}`));
      });
    });
    const stats = await node.stats();
    report(results, samples, stats.answered.arp);
  } finally {
    await node?.stop();
    await lab.destroy({ graceMs: 500 });
  }
}

function report(results: readonly TargetResult[], samples: number, beaconAnswered: number): void {
  const [beacon, kernel] = results as [TargetResult, TargetResult];
  const lossless = (r: TargetResult) => {
    const ok = r.steps.filter((s) => s.answered === s.sent && s.sent > 0);
    return ok.length === 0 ? 0 : ok[ok.length - 1]!.rate;
  };
  /** Why the ladder stopped: the first loss, or the client itself unable to send the rate. */
  const stop = (r: TargetResult) => {
    const last = r.steps[r.steps.length - 1];
    if (last === undefined) return '';
    if (last.answered < last.sent) return ` (at ${last.rate}/s: ${last.answered}/${last.sent} answered)`;
    if (last.sent < last.rate) return ` (client could send only ${last.sent} at ${last.rate}/s: the client's limit, not the responder's)`;
    return ' (top of the ladder)';
  };
  const row = (name: string, r: TargetResult) =>
    `${name.padEnd(23)} p50 ${percentile(r.latencyUs, 50).toFixed(1).padStart(7)} µs   p99 ${percentile(r.latencyUs, 99).toFixed(1).padStart(7)} µs   lost ${r.lost}/${samples}   lossless up to ${lossless(r)}/s${stop(r)}`;
  console.log(`ARP reply, ${samples} sequential requests per target, then 1 s open-loop steps ${RATES.join(', ')} /s`);
  console.log(row(`Beacon PacketLink`, beacon));
  console.log(row(`Linux kernel (local IP)`, kernel));
  const ratio = (a: number, b: number) => (b === 0 ? 'n/a' : (a / b).toFixed(2));
  console.log(
    `ratios Beacon/kernel: p50 ${ratio(percentile(beacon.latencyUs, 50), percentile(kernel.latencyUs, 50))}x   p99 ${ratio(percentile(beacon.latencyUs, 99), percentile(kernel.latencyUs, 99))}x   lossless rate ${ratio(lossless(beacon), lossless(kernel))}x`,
  );
  const requested = beacon.latencyUs.length + beacon.lost + beacon.steps.reduce((n, st) => n + st.sent, 0);
  console.log(`the worker sent ${beaconAnswered} ARP replies for ${requested} requests to it: replies missing at the client beyond those were lost on the way back (veth, bridge, client queue), as the kernel's are`);
}

if (process.argv[2] === '--client') {
  process.stdout.write(JSON.stringify(runClient(JSON.parse(process.argv[3]!) as ClientPlan)));
} else {
  await main();
}
