// Floods of malformed input at the agents, run inside a lab namespace:
//   flood-child.ts l2 IFNAME COUNT SEED
//       COUNT frames from the L2 fuzz corpus (random bytes, valid and mutated ARP/NDP frames) sent
//       on IFNAME through a raw AF_PACKET socket, in bursts of 500 with a 10 ms pause between.
//   flood-child.ts bgp LOCAL ASN SECONDS SEED
//       For SECONDS, a BGP peer on LOCAL port 179 (the router's address, BIRD stopped): each agent
//       that connects gets a valid OPEN (AS ASN, hold 9 s) and KEEPALIVE, then fuzzed messages (the
//       BGP fuzzer's valid messages, mutated) every 20 ms until it answers with a NOTIFICATION.
// Prints one JSON line: l2 {"sent","errors"}; bgp {"connections":{agent: count},"sent","replies"}
// where a reply is `notification:CODE/SUBCODE` (the agent's first NOTIFICATION), `closed`
// (closed without one), `survived_50` (50 messages and the session still up) or an errno.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { parseIP } from '../../api/ip.js';
import { seededRandom } from '../../api/random.js';
import { buildOpen, encodeKeepalive, encodeOpen, MessageType } from '../../bgp/index.js';
import { mutate, randomMessage } from '../../bgp/fuzz.js';
import { fuzzCorpus } from '../../l2announce/index.js';
import { ETH_P_ALL, PacketSocket } from '../../l2announce/packet-socket.js';

const BGP_PORT = 179;
/** A BGP header is 19 octets; a NOTIFICATION (type 3) carries its code and subcode in the next two. */
const HEADER = 19;

async function floodL2(ifname: string, count: number, seed: number): Promise<{ sent: number; errors: number }> {
  const ifindex = Number(readFileSync(`/sys/class/net/${ifname}/ifindex`, 'utf8'));
  // Bound for sending only: a filter that accepts nothing, so no frame is ever queued to it.
  const socket = PacketSocket.open(ifindex, ETH_P_ALL, [{ code: 0x06, jt: 0, jf: 0, k: 0 }]);
  let sent = 0;
  let errors = 0;
  try {
    const corpus = fuzzCorpus(count, seed);
    for (let i = 0; i < corpus.length; i++) {
      // Frames shorter than an Ethernet header are refused by the kernel itself: count them as errors.
      try {
        socket.send(corpus[i]!.bytes);
        sent++;
      } catch {
        errors++;
      }
      if (i % 500 === 499) await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    socket.close();
  }
  return { sent, errors };
}

/** The kind of the first NOTIFICATION in `received` (`notification:CODE/SUBCODE`), skipping OPEN and KEEPALIVEs. */
export function firstNotification(received: Uint8Array): string | undefined {
  const view = new DataView(received.buffer, received.byteOffset, received.byteLength);
  for (let at = 0; at + HEADER <= received.length; ) {
    const length = view.getUint16(at + 16);
    if (length < HEADER || at + length > received.length) return undefined;
    if (received[at + 18] === MessageType.NOTIFICATION && length >= HEADER + 2) return `notification:${received[at + 19]}/${received[at + 20]}`;
    at += length;
  }
  return undefined;
}

/**
 * A peer that speaks BGP badly: every node's agent that connects gets a valid OPEN and KEEPALIVE,
 * then fuzzed messages one every 20 ms (at most 50) until it answers with a NOTIFICATION or closes.
 */
async function floodBgp(local: string, asn: number, seconds: number, seed: number): Promise<{ connections: Record<string, number>; sent: number; replies: Record<string, number> }> {
  const r = seededRandom(seed);
  const id = parseIP(local);
  if (id === undefined || id.family !== 4) throw new Error(`${local}: an IPv4 address (it is also the BGP identifier)`);
  const hello = Buffer.concat([encodeOpen(buildOpen({ asn, holdTime: 9, bgpId: id })), encodeKeepalive()]);
  const corpus = Array.from({ length: 64 }, () => randomMessage(r));
  const connections: Record<string, number> = {};
  const replies: Record<string, number> = {};
  let sent = 0;
  const open = new Set<(kind: string) => void>();
  const server = createServer((socket) => {
    const remote = socket.remoteAddress ?? '?';
    connections[remote] = (connections[remote] ?? 0) + 1;
    let received = Buffer.alloc(0);
    let outcome: string | undefined;
    const end = (kind: string) => {
      if (outcome !== undefined) return;
      outcome = kind;
      open.delete(end);
      replies[kind] = (replies[kind] ?? 0) + 1;
      clearInterval(pump);
      socket.destroy();
    };
    socket.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
      const kind = firstNotification(received);
      if (kind !== undefined) end(kind);
    });
    socket.on('error', (e: NodeJS.ErrnoException) => end(e.code ?? 'error'));
    socket.on('close', () => end('closed'));
    open.add(end);
    socket.write(hello);
    let n = 0;
    const pump = setInterval(() => {
      if (++n > 50) return end('survived_50');
      socket.write(mutate(corpus[Math.floor(r() * corpus.length)]!, r, corpus));
      sent++;
    }, 20);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(BGP_PORT, local, resolve));
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  server.close();
  for (const end of open) end('open_at_end');
  return { connections, sent, replies };
}

if (process.argv[1]?.replace(/\.ts$/, '.js').endsWith('flood-child.js')) {
  const [mode, ...a] = process.argv.slice(2);
  const result =
    mode === 'l2' && a.length === 3 ? await floodL2(a[0]!, Number(a[1]), Number(a[2]))
    : mode === 'bgp' && a.length === 4 ? await floodBgp(a[0]!, Number(a[1]), Number(a[2]), Number(a[3]))
    : undefined;
  if (result === undefined) {
    console.error('usage: flood-child.ts l2 IFNAME COUNT SEED | bgp LOCAL ASN SECONDS SEED');
    process.exit(2);
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
