// Client and backend processes for the socket-LB tests, run inside lab namespaces (and, for
// clients, inside the test cgroup the socket hooks are attached to). Every mode is bounded in
// count and time and prints one JSON line with what it saw.
//   serve NAME PORT                  TCP (greets with NAME, then echoes) and UDP (answers NAME) on [::]
//   serve-peer NAME PORT             as serve, greeting and answering `NAME PEER` (the source address seen);
//                                    also HTTP on PORT+1, answering `NAME PEER` to any request (curl)
//   tcp HOST PORT COUNT              COUNT connections one after another: greeting names, peers, errors
//   udp HOST PORT COUNT              COUNT datagrams from one unconnected socket: answering names, sources
//   udp-flows HOST PORT COUNT        as udp, each datagram from a new socket (a new source port: a new flow)
//   hold HOST PORT COUNT MS          COUNT connections (more, up to 40, until two backends hold
//                                    some); prints them, then echoes a byte on each every 50 ms for MS ms
//   loop HOST PORT MS                new connections back to back for MS ms (at most 20,000);
//                                    prints a line after the first
import { createSocket } from 'node:dgram';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';

const [mode, a, b, c, d] = process.argv.slice(2);
const print = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
const count = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);

/** One connection: resolves with the greeting and the peer the socket reports (getpeername). */
function greet(host: string, port: number, timeoutMs = 2000): Promise<{ name: string; peer: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => socket.destroy(new Error('ETIMEDOUT')), timeoutMs);
    let data = '';
    socket.on('data', (d) => {
      data += d.toString();
      const nl = data.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      socket.removeAllListeners('data');
      resolve({ name: data.slice(0, nl), peer: `${socket.remoteAddress}:${socket.remotePort}`, socket });
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

async function tcp(host: string, port: number, n: number): Promise<void> {
  const names: Record<string, number> = {};
  const errors: Record<string, number> = {};
  const peers = new Set<string>();
  for (let i = 0; i < n; i++) {
    try {
      const r = await greet(host, port);
      count(names, r.name);
      peers.add(r.peer);
      r.socket.destroy();
    } catch (e) {
      count(errors, (e as NodeJS.ErrnoException).code ?? (e as Error).message);
    }
  }
  print({ names, errors, peers: [...peers] });
}

async function udp(host: string, port: number, n: number, socketPerDatagram = false): Promise<void> {
  const open = () => createSocket(host.includes(':') ? 'udp6' : 'udp4');
  let socket = open();
  const names: Record<string, number> = {};
  const errors: Record<string, number> = {};
  const sources = new Set<string>();
  for (let i = 0; i < n; i++) {
    if (socketPerDatagram && i > 0) {
      socket.close();
      socket = open();
    }
    const reply = await new Promise<{ name: string; from: string } | Error>((resolve) => {
      const timer = setTimeout(() => resolve(new Error('timeout')), 1000);
      socket.once('message', (msg, rinfo) => {
        clearTimeout(timer);
        resolve({ name: msg.toString(), from: `${rinfo.address}:${rinfo.port}` });
      });
      socket.send(`hello ${i}`, port, host, (err) => {
        if (err) {
          clearTimeout(timer);
          resolve(err);
        }
      });
    });
    if (reply instanceof Error) count(errors, (reply as NodeJS.ErrnoException).code ?? reply.message);
    else {
      count(names, reply.name);
      sources.add(reply.from);
    }
  }
  socket.close();
  print({ names, errors, sources: [...sources] });
}

async function hold(host: string, port: number, n: number, ms: number): Promise<void> {
  const held: { name: string; socket: Socket; sent: number; echoed: number; error: string | null }[] = [];
  while (held.length < 40 && (held.length < n || new Set(held.map((h) => h.name)).size < 2)) {
    const { name, socket } = await greet(host, port);
    const h = { name, socket, sent: 0, echoed: 0, error: null as string | null };
    socket.on('data', (d) => (h.echoed += d.length));
    socket.on('error', (e: NodeJS.ErrnoException) => (h.error = e.code ?? e.message));
    held.push(h);
  }
  print({ connected: held.map((h) => h.name) });
  const until = Date.now() + ms;
  while (Date.now() < until) {
    for (const h of held) {
      if (h.error) continue;
      h.socket.write('x');
      h.sent++;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 300));
  for (const h of held) h.socket.destroy();
  print({ held: held.map(({ name, sent, echoed, error }) => ({ name, sent, echoed, error })) });
}

async function loop(host: string, port: number, ms: number): Promise<void> {
  const names: Record<string, number> = {};
  const errors: Record<string, number> = {};
  const until = Date.now() + ms;
  for (let i = 0; i < 20_000 && Date.now() < until; i++) {
    try {
      const r = await greet(host, port);
      if (i === 0) print({ started: r.name });
      count(names, r.name);
      r.socket.destroy();
    } catch (e) {
      count(errors, (e as NodeJS.ErrnoException).code ?? (e as Error).message);
    }
  }
  print({ names, errors });
}

/** A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d. */
const plain = (address: string | undefined) => (address ?? '?').replace(/^::ffff:/, '');

function serve(name: string, port: number, withPeer = false): void {
  const answer = (peer: string | undefined) => (withPeer ? `${name} ${plain(peer)}` : name);
  createServer((s) => {
    s.on('error', () => undefined);
    s.write(`${answer(s.remoteAddress)}\n`);
    s.on('data', (d) => s.write(d));
  }).listen({ port, host: '::', ipv6Only: false }, () => print({ listening: port }));
  const u = createSocket({ type: 'udp6', ipv6Only: false });
  u.on('message', (_msg, rinfo) => u.send(answer(rinfo.address), rinfo.port, rinfo.address));
  u.bind(port, '::');
  if (withPeer) createHttpServer((req, res) => res.end(`${answer(req.socket.remoteAddress)}\n`)).listen({ port: port + 1, host: '::', ipv6Only: false });
  setTimeout(() => process.exit(0), 600_000).unref(); // never outlive a test run
}

const run: Record<string, () => void | Promise<void>> = {
  serve: () => serve(a!, Number(b)),
  'serve-peer': () => serve(a!, Number(b), true),
  tcp: () => tcp(a!, Number(b), Number(c)),
  udp: () => udp(a!, Number(b), Number(c)),
  'udp-flows': () => udp(a!, Number(b), Number(c), true),
  hold: () => hold(a!, Number(b), Number(c), Number(d)),
  loop: () => loop(a!, Number(b), Number(c)),
};
const fn = run[mode ?? ''];
if (!fn) {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
void Promise.resolve(fn()).then(() => {
  if (!mode!.startsWith('serve')) process.exit(0);
});
