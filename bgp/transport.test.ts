// The node:net transport on loopback: MD5 keys set before the SYN and per peer on the listener
// (the kernel drops a mismatch), connections routed to their peer by address, strangers refused.
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../test/process.js';
import { TcpTransport, addressKey, type BgpSocket, type ConnectResult, type ConnectTarget, type Listener } from './transport.js';

const transport = new TcpTransport();
const listeners: Listener[] = [];
const sockets: BgpSocket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const l of listeners.splice(0)) await l.close();
});

const connect = (target: ConnectTarget, giveUpMs = 2_000): Promise<ConnectResult | 'pending'> =>
  new Promise((resolve) => {
    const cancel = transport.connect(target, (r) => {
      clearTimeout(timer);
      if (r.ok) sockets.push(r.socket);
      resolve(r);
    });
    const timer = setTimeout(() => {
      cancel();
      resolve('pending');
    }, giveUpMs);
  });

/** A listener on `host` whose accepted sockets are collected per peer. */
async function listen(host: string, peers: Record<string, string | undefined>): Promise<{ port: number; accepted: Map<string, BgpSocket[]> }> {
  const port = await freePort();
  const listener = await transport.listen({ port, addresses: [host] });
  listeners.push(listener);
  const accepted = new Map<string, BgpSocket[]>();
  for (const [peer, password] of Object.entries(peers)) {
    listener.addPeer(peer, password === undefined ? {} : { password }, (s) => {
      sockets.push(s);
      accepted.set(peer, [...(accepted.get(peer) ?? []), s]);
    });
  }
  return { port, accepted };
}

const waitFor = async (check: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
};

describe('TcpTransport on loopback', () => {
  it('connects with a matching MD5 key and carries data both ways', async () => {
    const { port, accepted } = await listen('127.0.0.1', { '127.0.0.1': 'shared key' });
    const r = await connect({ peerAddress: '127.0.0.1', peerPort: port, password: 'shared key', localAddress: '127.0.0.1' });
    expect(r).toMatchObject({ ok: true });
    if (r === 'pending' || !r.ok) return;
    await waitFor(() => accepted.has('127.0.0.1'));
    const server = accepted.get('127.0.0.1')![0]!;
    const got: string[] = [];
    server.bind({ data: (c) => got.push(Buffer.from(c).toString()), closed: () => undefined });
    r.socket.bind({ data: () => undefined, closed: () => undefined });
    r.socket.write(Buffer.from('hello'));
    await waitFor(() => got.join('') === 'hello');
    expect(got.join('')).toBe('hello');
    expect([r.socket.localAddress, r.socket.remoteAddress, server.remoteAddress]).toEqual(['127.0.0.1', '127.0.0.1', '127.0.0.1']);
  });

  it('never completes the handshake when the keys differ, or when only one side has one', async () => {
    const { port, accepted } = await listen('127.0.0.1', { '127.0.0.1': 'the right key' });
    expect(await connect({ peerAddress: '127.0.0.1', peerPort: port, password: 'a wrong key' }, 1_500)).toBe('pending');
    expect(await connect({ peerAddress: '127.0.0.1', peerPort: port }, 1_500)).toBe('pending');
    expect(accepted.size).toBe(0);
  });

  it('hands IPv6 connections (and IPv4 ones on a dual-stack listener) to their peer, and refuses strangers', async () => {
    const { port, accepted } = await listen('::', { '::1': undefined, '127.0.0.1': 'v4 key' });
    expect(await connect({ peerAddress: '::1', peerPort: port })).toMatchObject({ ok: true });
    expect(await connect({ peerAddress: '127.0.0.1', peerPort: port, password: 'v4 key' })).toMatchObject({ ok: true });
    await waitFor(() => accepted.size === 2);
    expect([...accepted.keys()].sort()).toEqual(['127.0.0.1', '::1']);
    expect(accepted.get('127.0.0.1')![0]!.remoteAddress).toBe('127.0.0.1');

    // 127.0.0.2 is not a peer: accepted by the kernel, closed at once.
    const stranger = await connect({ peerAddress: '127.0.0.1', peerPort: port, localAddress: '127.0.0.2' });
    expect(stranger).toMatchObject({ ok: true });
    if (stranger === 'pending' || !stranger.ok) return;
    let closed = '';
    stranger.socket.bind({ data: () => undefined, closed: (why) => (closed = why) });
    await waitFor(() => closed !== '');
    expect(closed).not.toBe('');
    expect(accepted.size).toBe(2);
  });

  it('reports a refused connection and a bad address', async () => {
    const port = await freePort();
    expect(await connect({ peerAddress: '127.0.0.1', peerPort: port })).toEqual({ ok: false, error: 'ECONNREFUSED' });
    expect(await connect({ peerAddress: 'not-an-ip', peerPort: port })).toEqual({ ok: false, error: 'bad peer address not-an-ip' });
  });

  it('keys addresses so IPv4-mapped IPv6 and plain IPv4 match', () => {
    expect(addressKey('::ffff:198.18.0.1')).toBe(addressKey('198.18.0.1'));
    expect(addressKey('2001:DB8::1')).toBe(addressKey('2001:db8::1'));
    expect(addressKey('nope')).toBeUndefined();
  });
});
