// A process inside a lab namespace, driven over stdin/stdout with JSON lines, for the L2 tests and
// the benchmark. Mode `node` runs a PacketLink; mode `raw` only opens packet sockets (a client that
// injects frames). Both report interface changes as `{"event":"interfaces",…}` lines.
//   → {"id":1,"cmd":"table","entries":[{"ip":"198.18.0.100","interfaces":["eth0"]}]}
//   → {"id":2,"cmd":"fence","ms":5000}      (ms from now; "forever": true; ms 0: fence now)
//   → {"id":3,"cmd":"stats"} | {"cmd":"interfaces"} | {"cmd":"send","ifname":"eth0","hex":"ff…"} | {"cmd":"close"}
//   → {"id":4,"cmd":"stall","ms":3000}        (blocks the main thread: the worker must answer regardless)
//   ← {"id":…,"ok":true,"result":…} or {"id":…,"ok":false,"error":"…"}
import { createInterface } from 'node:readline';
import { InterfaceWatcher } from '../l2announce/netif.js';
import { PacketLink } from '../l2announce/packet-link.js';
import { ETH_P_ALL, PacketSocket } from '../l2announce/packet-socket.js';
import type { AnswerEntry } from '../l2announce/responder.js';

interface Command {
  readonly id?: number;
  readonly cmd: string;
  readonly entries?: AnswerEntry[];
  readonly ms?: number;
  readonly forever?: boolean;
  readonly ifname?: string;
  readonly hex?: string;
}

const mode = process.argv[2];
if (mode !== 'node' && mode !== 'raw') throw new Error('usage: l2-link-child.ts node|raw');
const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

const watcher = await InterfaceWatcher.start();
watcher.onChange((inventory) => print({ event: 'interfaces', inventory }));
const link = mode === 'node' ? await PacketLink.start({ interfaces: watcher, log: (level, msg, fields) => print({ event: 'log', level, msg, fields }) }) : undefined;
const senders = new Map<string, PacketSocket>();

function sender(ifname: string): PacketSocket {
  let s = senders.get(ifname);
  if (s === undefined) {
    const i = watcher.snapshot().interfaces.find((x) => x.name === ifname);
    if (i === undefined) throw new Error(`no interface ${ifname}`);
    // ETH_P_ALL bound for sending only; received frames are never read (the socket is closed at exit).
    s = PacketSocket.open(i.ifindex, ETH_P_ALL, [{ code: 0x06, jt: 0, jf: 0, k: 0 }]);
    senders.set(ifname, s);
  }
  return s;
}

async function handle(c: Command): Promise<unknown> {
  switch (c.cmd) {
    case 'table':
      link!.setTable(c.entries ?? []);
      return null;
    case 'fence':
      link!.setFence(c.forever === true ? PacketLink.FOREVER : c.ms === 0 ? 0n : process.hrtime.bigint() + BigInt(c.ms ?? 0) * 1_000_000n);
      return null;
    case 'stats':
      return link!.stats();
    case 'stall': {
      const end = Date.now() + (c.ms ?? 0);
      let spins = 0;
      while (Date.now() < end) spins++;
      return spins;
    }
    case 'interfaces':
      return watcher.refresh();
    case 'send':
      sender(c.ifname ?? '').send(Uint8Array.from(Buffer.from(c.hex ?? '', 'hex')));
      return null;
    case 'close':
      await link?.close();
      watcher.close();
      for (const s of senders.values()) s.close();
      print({ id: c.id, ok: true, result: null });
      return process.exit(0);
    default:
      throw new Error(`unknown command ${c.cmd}`);
  }
}

print({ event: 'ready', pid: process.pid });
// Commands run one at a time, in order.
let queue: Promise<unknown> = Promise.resolve();
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === '') continue;
  const c = JSON.parse(line) as Command;
  queue = queue.then(() =>
    handle(c).then(
      (result) => print({ id: c.id, ok: true, result }),
      (e: unknown) => print({ id: c.id, ok: false, error: e instanceof Error ? e.message : String(e) }),
    ),
  );
}
// stdin closed: the test is gone.
await queue;
await link?.close();
process.exit(0);
