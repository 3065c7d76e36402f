// The libc socket options: struct layouts checked byte by byte, and the calls made on real
// sockets (no traffic: nothing is connected here).
import { describe, expect, it } from 'vitest';
import { parseIP } from '../api/index.js';
import { closeFd, openTcpSocket, setMd5Key, setMinTtl, setTtl, sockaddrOf, SocketOptionError, tcpMd5Sig } from './sockopt.js';

const ip = (t: string) => parseIP(t)!;

describe('struct tcp_md5sig', () => {
  it('holds an IPv4 peer as sockaddr_in on an IPv4 socket', () => {
    const sig = tcpMd5Sig(ip('198.18.0.2'), 4, 'k3y');
    expect(sig).toHaveLength(216);
    expect([...sig.subarray(0, 8)]).toEqual([2, 0, 0, 0, 198, 18, 0, 2]);
    // tcpm_keylen (little-endian u16 at 130) and the key at 136.
    expect([sig[130], sig[131]]).toEqual([3, 0]);
    expect(Buffer.from(sig.subarray(136, 139)).toString()).toBe('k3y');
    expect(sig.subarray(139).every((b) => b === 0)).toBe(true);
  });

  it('holds an IPv4 peer as a v4-mapped sockaddr_in6 on an IPv6 socket, and IPv6 peers as themselves', () => {
    const mapped = sockaddrOf(ip('198.18.0.2'), 6);
    expect([mapped[0], mapped[1]]).toEqual([10, 0]);
    expect([...mapped.subarray(8, 24)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 2]);
    const v6 = sockaddrOf(ip('2001:db8::1'), 6);
    expect([...v6.subarray(8, 24)]).toEqual([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect(() => sockaddrOf(ip('2001:db8::1'), 4)).toThrow(RangeError);
  });

  it('refuses keys longer than the kernel takes (80 octets)', () => {
    expect(() => tcpMd5Sig(ip('198.18.0.2'), 4, 'x'.repeat(81))).toThrow(RangeError);
    expect(tcpMd5Sig(ip('198.18.0.2'), 4, 'x'.repeat(80))[130]).toBe(80);
  });
});

describe('setsockopt through libc', () => {
  it('sets and deletes MD5 keys, the TTL and the minimum TTL on fresh sockets of both families', () => {
    for (const family of [4, 6] as const) {
      const fd = openTcpSocket(family);
      try {
        setMd5Key(fd, family, ip('198.18.0.2'), 'secret');
        setMd5Key(fd, family, ip('198.18.0.2'), '');
        // Deleting a key that is not there is quietly accepted.
        setMd5Key(fd, family, ip('198.18.0.3'), '');
        if (family === 6) setMd5Key(fd, family, ip('2001:db8::2'), 'secret');
        setTtl(fd, family, 255);
        setMinTtl(fd, family, 254);
      } finally {
        closeFd(fd);
      }
    }
  });

  it('reports failures with the errno name', () => {
    expect(() => setTtl(-1, 4, 1)).toThrow(new SocketOptionError('setsockopt(IP_TTL)', 9));
    expect(() => setTtl(-1, 4, 1)).toThrow('setsockopt(IP_TTL) failed: EBADF');
    const fd = openTcpSocket(4);
    try {
      expect(() => setTtl(fd, 4, 256)).toThrow('setsockopt(IP_TTL) failed: EINVAL');
    } finally {
      closeFd(fd);
    }
  });
});
