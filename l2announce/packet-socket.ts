// Raw AF_PACKET sockets, poll(2) and eventfd(2) through libc with koffi: the only place that
// opens raw sockets (the packet link's worker uses it; the lab tests and the benchmark use it as a
// client). Every call is synchronous and non-blocking except poll(), which the worker thread may
// block in; nothing here is meant for the main event loop beyond a one-off send.
import { constants as osConstants, endianness } from 'node:os';
import koffi from 'koffi';
import type { MAC } from './mac.js';

// <linux/if_ether.h>, <linux/if_packet.h>, <sys/socket.h>, <poll.h>, <sys/eventfd.h>
export const ETH_P_ALL = 0x0003;
export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const SO_RCVBUFFORCE = 33;
const SO_ATTACH_FILTER = 26;
const SOL_PACKET = 263;
const PACKET_ADD_MEMBERSHIP = 1;
const PACKET_DROP_MEMBERSHIP = 2;
const PACKET_MR_MULTICAST = 0;
const MSG_DONTWAIT = 0x40;
const EFD_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;
export const POLLIN = 0x1;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const POLLNVAL = 0x20;
/** struct sockaddr_ll: family, protocol, ifindex, hatype, pkttype, halen, addr[8]. */
const SOCKADDR_LL_SIZE = 20;
/** struct packet_mreq: ifindex, type, alen, address[8]. */
const PACKET_MREQ_SIZE = 16;
/** struct pollfd: fd, events, revents. */
export const POLLFD_SIZE = 8;

/** One classic BPF instruction (struct sock_filter). */
export interface BPFInstruction {
  readonly code: number;
  readonly jt: number;
  readonly jf: number;
  readonly k: number;
}

interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Uint8Array, length: number): number;
  setsockopt(fd: number, level: number, name: number, value: Uint8Array, length: number): number;
  setFilter(fd: number, level: number, name: number, prog: { len: number; filter: readonly BPFInstruction[] }, length: number): number;
  send(fd: number, buf: Uint8Array, length: number, flags: number): number;
  recv(fd: number, buf: Uint8Array, length: number, flags: number): number;
  poll(fds: Uint8Array, count: number, timeoutMs: number): number;
  eventfd(initial: number, flags: number): number;
  read(fd: number, buf: Uint8Array, length: number): number;
  write(fd: number, buf: Uint8Array, length: number): number;
  close(fd: number): number;
}

let libc: Libc | undefined;
/** Loaded on first use (once per thread: koffi is loaded per isolate). */
function lib(): Libc {
  if (libc !== undefined) return libc;
  const c = koffi.load('libc.so.6');
  const filter = koffi.struct('beacon_sock_filter', { code: 'uint16_t', jt: 'uint8_t', jf: 'uint8_t', k: 'uint32_t' });
  koffi.struct('beacon_sock_fprog', { len: 'uint16_t', filter: koffi.pointer(filter) });
  const f = <T>(signature: string) => c.func(signature) as T;
  libc = {
    socket: f('int socket(int, int, int)'),
    bind: f('int bind(int, const void *, uint32_t)'),
    setsockopt: f('int setsockopt(int, int, int, const void *, uint32_t)'),
    setFilter: f('int setsockopt(int, int, int, const beacon_sock_fprog *, uint32_t)'),
    send: f('intptr_t send(int, const void *, size_t, int)'),
    recv: f('intptr_t recv(int, void *, size_t, int)'),
    poll: f('int poll(void *, unsigned long, int)'),
    eventfd: f('int eventfd(unsigned int, int)'),
    read: f('intptr_t read(int, void *, size_t)'),
    write: f('intptr_t write(int, const void *, size_t)'),
    close: f('int close(int)'),
  };
  return libc;
}

const errnoNames = new Map(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));
export const errnoName = (errno: number): string => errnoNames.get(errno) ?? `errno ${errno}`;
export const lastErrno = (): number => koffi.errno();

export class PacketSocketError extends Error {
  override name = 'PacketSocketError';
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super(`${call}: ${errnoName(errno)}`);
  }
  /** The errno's name (EPERM, ENODEV …): what stats and logs show. */
  get code(): string {
    return errnoName(this.errno);
  }
}

function check(result: number, call: string): number {
  if (result < 0) throw new PacketSocketError(call, koffi.errno());
  return result;
}

export const htons = (v: number): number => (endianness() === 'LE' ? ((v & 0xff) << 8) | (v >>> 8) : v);

function sockaddrLL(ifindex: number, protocol: number): Uint8Array {
  const out = Buffer.alloc(SOCKADDR_LL_SIZE);
  out.writeUInt16LE(AF_PACKET, 0); // host order, like every sa_family (x86 and arm64 are little-endian)
  out.writeUInt16BE(protocol, 2); // network order
  out.writeInt32LE(ifindex, 4);
  return out;
}

// ---- classic BPF ---------------------------------------------------------------------------------

// <linux/filter.h>: ld/ldh/ldb absolute, jeq immediate, ret; ancillary loads at SKF_AD_OFF.
const BPF_LD_W_ABS = 0x20;
const BPF_LD_H_ABS = 0x28;
const BPF_LD_B_ABS = 0x30;
const BPF_JEQ_K = 0x15;
const BPF_RET_K = 0x06;
const SKF_AD_OFF = -0x1000;
const SKF_AD_VLAN_TAG_PRESENT = 48;
const ACCEPT = 0xffff; // bytes kept: the whole frame (ARP and NS are far below)

const load = (code: number, k: number): BPFInstruction => ({ code, jt: 0, jf: 0, k: k >>> 0 });
/** A program of tests `[load, value]` that must all match; any mismatch jumps to the final reject. */
function allOf(tests: readonly (readonly [BPFInstruction, number])[]): BPFInstruction[] {
  const out: BPFInstruction[] = [];
  tests.forEach(([ld, value], i) => {
    const remaining = (tests.length - 1 - i) * 2; // instructions between this jump and `ret ACCEPT`
    out.push(ld, { code: BPF_JEQ_K, jt: 0, jf: remaining + 1, k: value });
  });
  out.push({ code: BPF_RET_K, jt: 0, jf: 0, k: ACCEPT }, { code: BPF_RET_K, jt: 0, jf: 0, k: 0 });
  return out;
}

// Linux strips an 802.1Q tag into skb metadata before packet taps see the frame, so the tag shows
// only through the ancillary VLAN_TAG_PRESENT load, and offsets below are those of an untagged frame.
// Tagged frames are refused here: a VLAN is answered on its 8021q sub-interface, where the kernel
// delivers its frames untagged (see the responder's `vlan_tagged`).
const untagged = [load(BPF_LD_W_ABS, SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT), 0] as const;

const arpFilter = (opcode: number) => allOf([untagged, [load(BPF_LD_H_ABS, 12), ETH_P_ARP], [load(BPF_LD_H_ABS, 20), opcode]]);
/** Passes untagged ARP requests: EtherType 0x0806, opcode 1 (RFC 826) at octet 20. */
export const arpRequestFilter: readonly BPFInstruction[] = arpFilter(1);
/** Passes untagged ARP replies (opcode 2): what a client waits for. */
export const arpReplyFilter: readonly BPFInstruction[] = arpFilter(2);

/**
 * Passes untagged ICMPv6 Neighbor Solicitations: EtherType 0x86dd, Next Header 58 at octet 20,
 * ICMPv6 type 135 at octet 54. An NS behind extension headers is not passed (none is sent so: ND
 * messages have no use for them, and RFC 6980 forbids fragmenting them).
 */
export const neighborSolicitationFilter: readonly BPFInstruction[] = allOf([
  untagged,
  [load(BPF_LD_H_ABS, 12), ETH_P_IPV6],
  [load(BPF_LD_B_ABS, 20), 58],
  [load(BPF_LD_B_ABS, 54), 135],
]);

// ---- sockets -------------------------------------------------------------------------------------

/**
 * A non-blocking AF_PACKET SOCK_RAW socket bound to one interface and one EtherType: it reads and
 * writes whole Ethernet frames. Bound to a single protocol, it sees only incoming frames (packet
 * taps for ETH_P_ALL also see every outgoing one, and cost a clone per sent packet).
 */
export class PacketSocket {
  private closed = false;

  private constructor(
    readonly fd: number,
    readonly ifindex: number,
    readonly protocol: number,
  ) {}

  /**
   * Opens with protocol 0 (receives nothing), attaches the filter, then binds: no frame is queued
   * before the filter is in place. Throws PacketSocketError (EPERM without CAP_NET_RAW, ENODEV …).
   */
  static open(ifindex: number, protocol: number, filter?: readonly BPFInstruction[]): PacketSocket {
    const c = lib();
    const fd = check(c.socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), 'socket(AF_PACKET)');
    try {
      if (filter !== undefined) check(c.setFilter(fd, SOL_SOCKET, SO_ATTACH_FILTER, { len: filter.length, filter }, 16), 'setsockopt(SO_ATTACH_FILTER)');
      const addr = sockaddrLL(ifindex, protocol);
      check(c.bind(fd, addr, addr.length), 'bind(AF_PACKET)');
    } catch (e) {
      c.close(fd);
      throw e;
    }
    return new PacketSocket(fd, ifindex, protocol);
  }

  /** Sends one frame (Ethernet header included); throws PacketSocketError (ENETDOWN, ENOBUFS …). */
  send(frame: Uint8Array): void {
    const n = check(lib().send(this.fd, frame, frame.length, MSG_DONTWAIT), 'send');
    if (n !== frame.length) throw new PacketSocketError('send (short)', osConstants.errno.EMSGSIZE);
  }

  /**
   * Reads one frame into `buffer`: its length, or -1 when none is queued. A pending socket error
   * (ENETDOWN when the link went down or vanished) is thrown once, then cleared by the kernel.
   */
  receive(buffer: Uint8Array): number {
    const n = lib().recv(this.fd, buffer, buffer.length, MSG_DONTWAIT);
    if (n >= 0) return n;
    const errno = koffi.errno();
    if (errno === osConstants.errno.EAGAIN || errno === osConstants.errno.EINTR) return -1;
    throw new PacketSocketError('recv', errno);
  }

  /**
   * Asks for a receive queue of `bytes` (the kernel doubles it for bookkeeping). SO_RCVBUFFORCE
   * passes net.core.rmem_max with CAP_NET_ADMIN; without it SO_RCVBUF is capped there. Best effort.
   */
  setReceiveBuffer(bytes: number): void {
    const value = Buffer.alloc(4);
    value.writeInt32LE(bytes);
    if (lib().setsockopt(this.fd, SOL_SOCKET, SO_RCVBUFFORCE, value, 4) < 0) lib().setsockopt(this.fd, SOL_SOCKET, SO_RCVBUF, value, 4);
  }

  /** Joins or leaves a link-layer multicast group, so that a NIC's filter passes it to us. */
  setMembership(mac: MAC, join: boolean): void {
    const mreq = Buffer.alloc(PACKET_MREQ_SIZE);
    mreq.writeInt32LE(this.ifindex, 0);
    mreq.writeUInt16LE(PACKET_MR_MULTICAST, 4);
    mreq.writeUInt16LE(mac.length, 6);
    mreq.set(mac, 8);
    const option = join ? PACKET_ADD_MEMBERSHIP : PACKET_DROP_MEMBERSHIP;
    check(lib().setsockopt(this.fd, SOL_PACKET, option, mreq, mreq.length), join ? 'setsockopt(PACKET_ADD_MEMBERSHIP)' : 'setsockopt(PACKET_DROP_MEMBERSHIP)');
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    lib().close(this.fd);
  }
}

// ---- waking and waiting --------------------------------------------------------------------------

/** An eventfd: another thread writes to wake a poll() on it (fs.writeSync works on its number). */
export class EventFd {
  private constructor(readonly fd: number) {}

  static create(): EventFd {
    return new EventFd(check(lib().eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), 'eventfd'));
  }

  /** Resets the counter (non-blocking: nothing happens when it is zero). */
  drain(): void {
    lib().read(this.fd, Buffer.alloc(8), 8);
  }

  close(): void {
    lib().close(this.fd);
  }
}

/** The 8-octet increment written to an eventfd. */
export const EVENTFD_ONE: Uint8Array = (() => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(1n);
  return b;
})();

/** poll(2) on a buffer of `count` struct pollfd; returns the number ready (revents filled in), or -errno. */
export function pollFds(fds: Uint8Array, count: number, timeoutMs: number): number {
  const n = lib().poll(fds, count, timeoutMs);
  return n < 0 ? -koffi.errno() : n;
}
