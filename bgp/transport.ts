// The TCP edge of the BGP speaker: outgoing connections (bound to a local address, MD5 key and
// TTL set before the SYN), and one listener shared by every peer that hands each accepted
// connection to the peer it came from and refuses strangers. Sessions see only the small
// interfaces below, so they run the same over node:net and over the in-memory transport of tests.

import net from 'node:net';
import { formatIP, ipKey, parseIP, type Family, type IP } from '../api/index.js';
import { applyTtlOptions, closeFd, fdOf, openTcpSocket, setMd5Key, type PeerSocketOptions } from './sockopt.js';

/** One established TCP connection, as a session uses it. */
export interface BgpSocket {
  readonly localAddress: string;
  readonly remoteAddress: string;
  /** Octets queued in user space, not yet handed to the kernel. */
  readonly bufferedBytes: number;
  /** Receives data until `closed`; set once, right after the connection is handed over. */
  bind(handlers: SocketHandlers): void;
  write(data: Uint8Array): void;
  /** Flush what is queued (a NOTIFICATION, say), then close. */
  end(): void;
  /** Close now, dropping what is queued. */
  destroy(): void;
}

export interface SocketHandlers {
  data(chunk: Uint8Array): void;
  closed(reason: string): void;
}

export interface ConnectTarget extends PeerSocketOptions {
  readonly peerAddress: string;
  readonly peerPort: number;
  readonly localAddress?: string;
}

export type ConnectResult = { readonly ok: true; readonly socket: BgpSocket } | { readonly ok: false; readonly error: string };

export interface Listener {
  /** Accept connections from `peerAddress` (with its MD5 key and TTL rules) and hand them to `accept`. */
  addPeer(peerAddress: string, options: PeerSocketOptions, accept: (socket: BgpSocket) => void): void;
  removePeer(peerAddress: string): void;
  close(): Promise<void>;
}

export interface ListenOptions {
  readonly port: number;
  /** Default: every address (`::`, which takes IPv4 too). */
  readonly addresses?: readonly string[];
}

export interface TransportLog {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
}

export interface Transport {
  /** Starts a connection attempt; `done` runs once unless the returned cancel runs first. */
  connect(target: ConnectTarget, done: (result: ConnectResult) => void): () => void;
  listen(options: ListenOptions, log?: TransportLog): Promise<Listener>;
}

/** The canonical key of an address; IPv4-mapped IPv6 (from a dual-stack listener) counts as IPv4. */
export function addressKey(text: string): string | undefined {
  const ip = parseIP(text.startsWith('::ffff:') && text.includes('.') ? text.slice(7) : text);
  return ip === undefined ? undefined : ipKey(ip);
}

export function plainAddress(text: string): string {
  const ip = parseIP(text.startsWith('::ffff:') && text.includes('.') ? text.slice(7) : text);
  return ip === undefined ? text : formatIP(ip);
}

const silent: TransportLog = { info: () => undefined, warn: () => undefined };

/** A net.Socket seen through BgpSocket. */
class NodeSocket implements BgpSocket {
  readonly localAddress: string;
  readonly remoteAddress: string;
  private handlers: SocketHandlers | undefined;
  private error = '';
  private closed = false;

  constructor(private readonly socket: net.Socket) {
    this.localAddress = plainAddress(socket.localAddress ?? '');
    this.remoteAddress = plainAddress(socket.remoteAddress ?? '');
    // Keepalives are tiny and time-critical; bulk UPDATEs are written in large batches anyway.
    socket.setNoDelay(true);
    socket.on('error', (e: NodeJS.ErrnoException) => (this.error = e.code ?? e.message));
    socket.on('close', () => {
      this.closed = true;
      this.handlers?.closed(this.error === '' ? 'connection closed by peer' : this.error);
    });
    // Data waits in the kernel until a session binds (a paused socket reads nothing).
    socket.pause();
  }

  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  bind(handlers: SocketHandlers): void {
    this.handlers = handlers;
    this.socket.on('data', (chunk: Buffer) => handlers.data(chunk));
    if (this.closed) handlers.closed(this.error === '' ? 'connection closed by peer' : this.error);
    else this.socket.resume();
  }

  write(data: Uint8Array): void {
    if (!this.closed) this.socket.write(data);
  }

  end(): void {
    this.socket.end();
    // A peer that never closes its side must not keep the socket forever.
    setTimeout(() => this.socket.destroy(), 2_000).unref();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Connections over the kernel's TCP, with MD5 and TTL set through sockopt.ts. */
export class TcpTransport implements Transport {
  connect(target: ConnectTarget, done: (result: ConnectResult) => void): () => void {
    const peer = parseIP(target.peerAddress);
    if (peer === undefined) {
      queueMicrotask(() => done({ ok: false, error: `bad peer address ${target.peerAddress}` }));
      return () => undefined;
    }
    let finished = false;
    const finish = (r: ConnectResult): void => {
      if (finished) return;
      finished = true;
      done(r);
    };
    let socket: net.Socket;
    try {
      socket = connectedSocket(peer, target);
    } catch (e) {
      queueMicrotask(() => finish({ ok: false, error: (e as Error).message }));
      return () => void (finished = true);
    }
    const onError = (e: NodeJS.ErrnoException): void => {
      socket.destroy();
      finish({ ok: false, error: e.code ?? e.message });
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      if (finished) socket.destroy();
      else finish({ ok: true, socket: new NodeSocket(socket) });
    });
    return () => {
      finished = true;
      socket.destroy();
    };
  }

  async listen(options: ListenOptions, log: TransportLog = silent): Promise<Listener> {
    const listener = new TcpListener(log);
    await listener.start(options);
    return listener;
  }
}

/** A socket made with socket(2) so the MD5 key and TTL are in place before connect(2) sends the SYN. */
function connectedSocket(peer: IP, target: ConnectTarget): net.Socket {
  const fd = openTcpSocket(peer.family);
  try {
    if (target.password !== undefined && target.password !== '') setMd5Key(fd, peer.family, peer, target.password);
    applyTtlOptions(fd, peer.family, target);
  } catch (e) {
    closeFd(fd);
    throw e;
  }
  const socket = new net.Socket({ fd, readable: true, writable: true });
  socket.connect({ port: target.peerPort, host: formatIP(peer), ...(target.localAddress === undefined ? {} : { localAddress: target.localAddress }) });
  return socket;
}

interface PeerEntry {
  readonly address: IP;
  readonly options: PeerSocketOptions;
  readonly accept: (socket: BgpSocket) => void;
}

/** One or more listening sockets; peers are looked up by the connection's remote address. */
class TcpListener implements Listener {
  private readonly servers: { server: net.Server; family: Family }[] = [];
  private readonly peers = new Map<string, PeerEntry>();

  constructor(private readonly log: TransportLog) {}

  async start(options: ListenOptions): Promise<void> {
    const addresses = options.addresses === undefined || options.addresses.length === 0 ? ['::'] : options.addresses;
    try {
      for (const host of addresses) {
        const ip = parseIP(host);
        if (ip === undefined) throw new Error(`bad listen address ${host}`);
        const server = net.createServer({ pauseOnConnect: true }, (s) => this.accepted(s, ip.family));
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ port: options.port, host, ipv6Only: false }, () => {
            server.off('error', reject);
            resolve();
          });
        });
        server.on('error', (e) => this.log.warn({ err: e.message }, 'BGP listener error'));
        this.servers.push({ server, family: ip.family });
        // A GTSM peer drops a SYN-ACK below its minimum TTL; 255 suits every peer (accepted sockets get their own TTL below).
        const fd = fdOf(server);
        if (fd >= 0) applyTtlOptions(fd, ip.family, { ttl: 255 });
      }
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  addPeer(peerAddress: string, options: PeerSocketOptions, accept: (socket: BgpSocket) => void): void {
    const address = parseIP(peerAddress);
    if (address === undefined) throw new Error(`bad peer address ${peerAddress}`);
    const key = ipKey(address);
    this.peers.set(key, { address, options, accept });
    for (const { server, family } of this.servers) {
      if (family === 4 && address.family === 6) continue;
      const fd = fdOf(server);
      // Replacing a key sets the new one; '' removes a key the peer no longer has.
      if (fd >= 0) setMd5Key(fd, family, address, options.password ?? '');
    }
  }

  removePeer(peerAddress: string): void {
    const key = addressKey(peerAddress);
    const entry = key === undefined ? undefined : this.peers.get(key);
    if (entry === undefined || key === undefined) return;
    this.peers.delete(key);
    for (const { server, family } of this.servers) {
      const fd = fdOf(server);
      if (fd >= 0 && !(family === 4 && entry.address.family === 6)) setMd5Key(fd, family, entry.address, '');
    }
  }

  async close(): Promise<void> {
    const servers = this.servers.splice(0);
    await Promise.all(servers.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }

  private accepted(socket: net.Socket, family: Family): void {
    const remote = socket.remoteAddress ?? '';
    const key = addressKey(remote);
    const entry = key === undefined ? undefined : this.peers.get(key);
    if (entry === undefined) {
      // RFC 4271 section 8.2.1.1: connections from unconfigured peers are refused.
      this.log.info({ remote: plainAddress(remote) }, 'BGP connection from an unknown peer refused');
      socket.destroy();
      return;
    }
    try {
      applyTtlOptions(fdOf(socket), family, entry.options);
    } catch (e) {
      this.log.warn({ remote: plainAddress(remote), err: (e as Error).message }, 'BGP connection refused: socket options failed');
      socket.destroy();
      return;
    }
    entry.accept(new NodeSocket(socket));
  }
}
