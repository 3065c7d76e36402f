// An in-memory Transport: speakers in one process reach each other by address, with MD5 keys
// compared like the kernel would (a mismatch never connects). Delivery is asynchronous (one
// microtask per write), so tests see the same interleavings as over TCP, without sockets or root.

import { ipKey, parseIP } from '../api/index.js';
import type { PeerSocketOptions } from './sockopt.js';
import type { BgpSocket, ConnectResult, ConnectTarget, Listener, ListenOptions, SocketHandlers, Transport } from './transport.js';

const keyOf = (address: string): string => {
  const ip = parseIP(address);
  if (ip === undefined) throw new Error(`bad address ${address}`);
  return ipKey(ip);
};

class MemorySocket implements BgpSocket {
  other!: MemorySocket;
  private handlers: SocketHandlers | undefined;
  private inbox: Uint8Array[] = [];
  private closedReason: string | undefined;
  /** A frozen end neither reads nor answers, like a stopped process. */
  frozen = false;
  /** Everything this end wrote, for tests that inspect the wire. */
  readonly written: Uint8Array[] = [];

  constructor(
    readonly localAddress: string,
    readonly remoteAddress: string,
  ) {}

  get bufferedBytes(): number {
    return 0;
  }

  get open(): boolean {
    return this.closedReason === undefined;
  }

  bind(handlers: SocketHandlers): void {
    this.handlers = handlers;
    queueMicrotask(() => this.flush());
  }

  write(data: Uint8Array): void {
    if (!this.open) return;
    const copy = data.slice();
    this.written.push(copy);
    this.other.receive(copy);
  }

  end(): void {
    this.close('connection closed by peer');
  }

  destroy(): void {
    this.close('connection reset by peer');
  }

  private close(reasonForOther: string): void {
    if (!this.open) return;
    this.closedReason = 'closed locally';
    this.other.hangUp(reasonForOther);
  }

  private receive(chunk: Uint8Array): void {
    this.inbox.push(chunk);
    queueMicrotask(() => this.flush());
  }

  private hangUp(reason: string): void {
    queueMicrotask(() => {
      if (!this.open) return;
      this.closedReason = reason;
      this.flush();
      this.handlers?.closed(reason);
    });
  }

  /** Hands queued data over unless frozen; a thawed end catches up. */
  flush(): void {
    if (this.handlers === undefined || this.frozen) return;
    for (const chunk of this.inbox.splice(0)) this.handlers.data(chunk);
  }
}

interface ListenerEntry {
  readonly options: PeerSocketOptions;
  readonly accept: (socket: BgpSocket) => void;
}

class MemoryListener implements Listener {
  readonly peers = new Map<string, ListenerEntry>();
  constructor(
    private readonly network: MemoryNetwork,
    readonly endpoints: readonly string[],
  ) {}
  addPeer(peerAddress: string, options: PeerSocketOptions, accept: (socket: BgpSocket) => void): void {
    this.peers.set(keyOf(peerAddress), { options, accept });
  }
  removePeer(peerAddress: string): void {
    this.peers.delete(keyOf(peerAddress));
  }
  close(): Promise<void> {
    for (const e of this.endpoints) this.network.listeners.delete(e);
    return Promise.resolve();
  }
}

/** A set of addresses that can reach each other; `transport(address)` is one host on it. */
export class MemoryNetwork {
  readonly listeners = new Map<string, MemoryListener>();
  /** Every connection made, both ends, newest last. */
  readonly sockets: MemorySocket[] = [];

  transport(localAddress: string): Transport {
    return {
      connect: (target, done) => this.connect(localAddress, target, done),
      listen: (options) => this.listen(localAddress, options),
    };
  }

  /** Both ends of every open connection between the two addresses. */
  between(a: string, b: string): MemorySocket[] {
    const [ka, kb] = [keyOf(a), keyOf(b)];
    return this.sockets.filter((s) => s.open && ((keyOf(s.localAddress) === ka && keyOf(s.remoteAddress) === kb) || (keyOf(s.localAddress) === kb && keyOf(s.remoteAddress) === ka)));
  }

  private listen(localAddress: string, options: ListenOptions): Promise<Listener> {
    const addresses = options.addresses ?? [localAddress];
    // One listener object serves all its addresses, as one TcpListener serves several sockets.
    const listener = new MemoryListener(this, addresses.map((a) => `${keyOf(a)}#${options.port}`));
    for (const e of listener.endpoints) this.listeners.set(e, listener);
    return Promise.resolve(listener);
  }

  private connect(localAddress: string, target: ConnectTarget, done: (r: ConnectResult) => void): () => void {
    let cancelled = false;
    queueMicrotask(() => {
      if (cancelled) return;
      const listener = this.listeners.get(`${keyOf(target.peerAddress)}#${target.peerPort}`);
      const source = target.localAddress ?? localAddress;
      const entry = listener?.peers.get(keyOf(source));
      if (listener === undefined || entry === undefined) return done({ ok: false, error: 'ECONNREFUSED' });
      // RFC 2385: a segment whose signature does not verify is dropped, so the SYN goes unanswered.
      if ((entry.options.password ?? '') !== (target.password ?? '')) return done({ ok: false, error: 'ETIMEDOUT' });
      const mine = new MemorySocket(source, target.peerAddress);
      const theirs = new MemorySocket(target.peerAddress, source);
      mine.other = theirs;
      theirs.other = mine;
      this.sockets.push(mine, theirs);
      entry.accept(theirs);
      done({ ok: true, socket: mine });
    });
    return () => void (cancelled = true);
  }
}
