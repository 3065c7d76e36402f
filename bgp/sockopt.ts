// Socket options Node does not expose, set through libc with koffi: TCP MD5 signatures (RFC 2385),
// the TTL security check of GTSM (RFC 5082) and the TTL of eBGP multihop. MD5 must be in place
// before the SYN leaves, so outgoing sockets are created here (socket(2), non-blocking) and handed
// to `net.Socket({ fd })`; on a listening socket the keys are added per peer at any time, and the
// kernel copies them to the connections it accepts.

import { constants as osConstants } from 'node:os';
import koffi from 'koffi';
import { ipBytes } from './update.js';
import type { Family, IP } from '../api/index.js';

// <sys/socket.h>, <netinet/in.h>, <linux/tcp.h>, <linux/in6.h>
const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const IPPROTO_IP = 0;
const IPPROTO_TCP = 6;
const IPPROTO_IPV6 = 41;
const IP_TTL = 2;
const IP_MINTTL = 21;
const IPV6_UNICAST_HOPS = 16;
const IPV6_MINHOPCOUNT = 73;
const TCP_MD5SIG = 14;
/** struct tcp_md5sig: sockaddr_storage (128), flags (1), prefixlen (1), keylen (2), ifindex (4), key (80). */
const TCP_MD5SIG_SIZE = 216;
export const TCP_MD5SIG_MAXKEYLEN = 80;

interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  setsockopt(fd: number, level: number, name: number, value: Uint8Array, length: number): number;
  close(fd: number): number;
}

let libc: Libc | undefined;
/** Loaded on first use, so importing the BGP module costs nothing where no socket is made. */
function lib(): Libc {
  if (libc === undefined) {
    const c = koffi.load('libc.so.6');
    libc = {
      socket: c.func('int socket(int, int, int)') as Libc['socket'],
      setsockopt: c.func('int setsockopt(int, int, int, const void *, uint32_t)') as Libc['setsockopt'],
      close: c.func('int close(int)') as Libc['close'],
    };
  }
  return libc;
}

const errnoNames = new Map(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

export class SocketOptionError extends Error {
  override name = 'SocketOptionError';
  constructor(
    what: string,
    readonly errno: number,
  ) {
    super(`${what} failed: ${errnoNames.get(errno) ?? `errno ${errno}`}`);
  }
}

function check(result: number, what: string): number {
  if (result < 0) throw new SocketOptionError(what, koffi.errno());
  return result;
}

/** A new non-blocking TCP socket of the family; the caller owns the descriptor. */
export function openTcpSocket(family: Family): number {
  return check(lib().socket(family === 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), 'socket()');
}

export function closeFd(fd: number): void {
  lib().close(fd);
}

/**
 * The sockaddr of `peer` as a socket of `socketFamily` sees it: an IPv4 peer of an IPv6 socket
 * is the v4-mapped address (the kernel then files the key under IPv4, tcp_v6_parse_md5_keys).
 */
export function sockaddrOf(peer: IP, socketFamily: Family): Uint8Array {
  const out = new Uint8Array(128);
  const view = new DataView(out.buffer);
  if (socketFamily === 4) {
    if (peer.family !== 4) throw new RangeError('an IPv4 socket cannot hold a key for an IPv6 peer');
    view.setUint16(0, AF_INET, true);
    out.set(ipBytes(peer), 4);
  } else {
    view.setUint16(0, AF_INET6, true);
    // sin6_port and sin6_flowinfo stay zero; sin6_addr starts at offset 8.
    if (peer.family === 4) {
      out[18] = 0xff;
      out[19] = 0xff;
      out.set(ipBytes(peer), 20);
    } else out.set(ipBytes(peer), 8);
  }
  return out;
}

/** struct tcp_md5sig for one peer; an empty key deletes the peer's key. */
export function tcpMd5Sig(peer: IP, socketFamily: Family, key: string): Uint8Array {
  const keyBytes = new TextEncoder().encode(key);
  if (keyBytes.length > TCP_MD5SIG_MAXKEYLEN) throw new RangeError(`a TCP MD5 key is at most ${TCP_MD5SIG_MAXKEYLEN} octets`);
  const out = new Uint8Array(TCP_MD5SIG_SIZE);
  out.set(sockaddrOf(peer, socketFamily), 0);
  new DataView(out.buffer).setUint16(130, keyBytes.length, true);
  out.set(keyBytes, 136);
  return out;
}

/** Sets (or with '' deletes) the TCP MD5 key used with `peer` on this socket (RFC 2385). */
export function setMd5Key(fd: number, socketFamily: Family, peer: IP, key: string): void {
  const sig = tcpMd5Sig(peer, socketFamily, key);
  const r = lib().setsockopt(fd, IPPROTO_TCP, TCP_MD5SIG, sig, sig.length);
  // Deleting a key that is not there is not an error worth reporting.
  if (r < 0 && !(key === '' && koffi.errno() === osConstants.errno.ENOENT)) throw new SocketOptionError('setsockopt(TCP_MD5SIG)', koffi.errno());
}

function setInt(fd: number, level: number, name: number, value: number, what: string): void {
  const v = new Uint8Array(4);
  new DataView(v.buffer).setInt32(0, value, true);
  check(lib().setsockopt(fd, level, name, v, 4), what);
}

/**
 * The TTL (hop limit) of outgoing packets: 1 for a directly connected eBGP peer, the multihop
 * count, or 255 for GTSM. An IPv6 socket also carries v4-mapped traffic, which uses IP_TTL.
 */
export function setTtl(fd: number, socketFamily: Family, ttl: number): void {
  if (socketFamily === 6) setInt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, ttl, 'setsockopt(IPV6_UNICAST_HOPS)');
  setInt(fd, IPPROTO_IP, IP_TTL, ttl, 'setsockopt(IP_TTL)');
}

/** RFC 5082 section 3: drop segments whose TTL (hop limit) arrived below `minTtl`; 0 turns the check off. */
export function setMinTtl(fd: number, socketFamily: Family, minTtl: number): void {
  if (socketFamily === 6) setInt(fd, IPPROTO_IPV6, IPV6_MINHOPCOUNT, minTtl, 'setsockopt(IPV6_MINHOPCOUNT)');
  setInt(fd, IPPROTO_IP, IP_MINTTL, minTtl, 'setsockopt(IP_MINTTL)');
}

/** What to set on a BGP socket for one peer. */
export interface PeerSocketOptions {
  /** TCP MD5 key; absent or '' means none. */
  readonly password?: string;
  /** Outgoing TTL; absent leaves the kernel default. */
  readonly ttl?: number;
  /** GTSM: the lowest TTL accepted; absent or 0 means no check. */
  readonly minTtl?: number;
}

/** TTL and GTSM on a socket bound to one peer (the MD5 key is set separately: before connect, or on the listener). */
export function applyTtlOptions(fd: number, socketFamily: Family, o: PeerSocketOptions): void {
  if (o.ttl !== undefined) setTtl(fd, socketFamily, o.ttl);
  if (o.minTtl !== undefined && o.minTtl > 0) setMinTtl(fd, socketFamily, o.minTtl);
}

/** The file descriptor behind a Node socket or server (libuv's handle exposes it; -1 when there is none). */
export function fdOf(handleOwner: object): number {
  const handle = (handleOwner as { _handle?: { fd?: unknown } | null })._handle;
  return typeof handle?.fd === 'number' ? handle.fd : -1;
}
