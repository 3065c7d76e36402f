// The map layout against bpf/progs/lb.h: every expected byte below is written by hand from the C
// structs (offsets, little-endian integers, ports in network order, IPv4 stored IPv4-mapped).
import { describe, expect, it } from 'vitest';
import { nodeportMapNames } from './nodeport-layout.js';
import {
  addressBytes,
  decodeAffinity,
  decodeAffinityKey,
  decodeBackend,
  decodeConfig,
  decodeEntry,
  decodeRevnat,
  decodeRevnatKey,
  decodeService,
  decodeServiceKey,
  decodeSlotKey,
  decodeU32,
  encodeBackend,
  encodeConfig,
  encodeService,
  encodeServiceKey,
  encodeSlotKey,
  encodeU32,
  formatAddressBytes,
  mapNames,
  sizes,
  statNames,
  sumPerCpu,
  type BackendEntry,
  type ServiceEntry,
} from './layout.js';

/** Bytes from hex text; spaces and `|` (field separators) are ignored. */
const hex = (text: string): Buffer => Buffer.from(text.replace(/[\s|]/g, ''), 'hex');
const mapped = (v4: string) => `00000000000000000000ffff${v4}`;
const doc6 = '20010db8000000000000000000000001'; // 2001:db8::1

describe('map names', () => {
  it('fit the kernel (BPF_OBJ_NAME_LEN: 15 characters), so the CLI finds a map by the name it shows', () => {
    for (const name of [...Object.values(mapNames), ...Object.values(nodeportMapNames)]) expect(name.length, name).toBeLessThanOrEqual(15);
  });
});

describe('encoders match struct layouts in lb.h', () => {
  it('lb_svc_key: addr[16], __be16 port, proto, scope = 0', () => {
    expect(encodeServiceKey({ address: '198.18.0.1', port: 80, protocol: 'TCP' })).toEqual(hex(`${mapped('c6120001')} | 0050 | 06 | 00`));
    expect(encodeServiceKey({ address: '2001:db8::1', port: 0x1234, protocol: 'UDP' })).toEqual(hex(`${doc6} | 1234 | 11 | 00`));
  });

  it('lb_svc: __u32 id, __u16 count, algorithm, type (1-based), __u32 affinity_timeout, __u32 reserved', () => {
    const svc: ServiceEntry = { id: 0x01020304, count: 0x0506, algorithm: 'maglev', type: 'LoadBalancer', affinityTimeoutSeconds: 10800 };
    expect(encodeService(svc)).toEqual(hex('04030201 | 0605 | 01 | 02 | 302a0000 | 00000000'));
    expect(encodeService({ ...svc, id: 7, count: 0, algorithm: 'random', type: 'NodePort', affinityTimeoutSeconds: 0 })).toEqual(hex('07000000 | 0000 | 00 | 04 | 00000000 | 00000000'));
    expect(encodeService({ ...svc, type: 'ClusterIP' })[7]).toBe(1);
    expect(encodeService({ ...svc, type: 'ExternalIP' })[7]).toBe(3);
  });

  it('lb_backend: addr[16], __be16 port, proto, state', () => {
    expect(encodeBackend({ address: '198.18.1.2', port: 8080, protocol: 'TCP', state: 'active' })).toEqual(hex(`${mapped('c6120102')} | 1f90 | 06 | 00`));
    expect(encodeBackend({ address: '2001:db8::1', port: 53, protocol: 'UDP', state: 'terminating' })).toEqual(hex(`${doc6} | 0035 | 11 | 01`));
    expect(encodeBackend({ address: '198.18.1.2', port: 8080, protocol: 'TCP', state: 'terminating', local: true })).toEqual(hex(`${mapped('c6120102')} | 1f90 | 06 | 03`));
  });

  it('lb_slot_key, backend id, slot value and lb_config: little-endian __u32s', () => {
    expect(encodeSlotKey(7, 2)).toEqual(hex('07000000 | 02000000'));
    expect(encodeU32(0xa1b2c3d4)).toEqual(hex('d4c3b2a1'));
    expect(encodeConfig({ maglevTableSize: 16381 })).toEqual(hex('fd3f0000 | 00000000'));
  });

  it('writes at an offset into a shared batch buffer, leaving the rest alone', () => {
    const out = Buffer.alloc(2 * sizes.svcKey, 0xee);
    encodeServiceKey({ address: '198.18.0.1', port: 80, protocol: 'TCP' }, out, sizes.svcKey);
    expect(out.subarray(0, sizes.svcKey)).toEqual(Buffer.alloc(sizes.svcKey, 0xee));
    expect(out.subarray(sizes.svcKey)).toEqual(hex(`${mapped('c6120001')} 0050 06 00`));
  });

  it('sizes are the C sizeof of each struct', () => {
    expect(sizes).toEqual({ svcKey: 20, svc: 16, backendKey: 4, backend: 20, slotKey: 8, slot: 4, config: 8, affinityKey: 16, affinity: 16, revnatKey: 32, revnat: 24 });
  });
});

describe('decoders', () => {
  it('round-trip service keys and entries of both families', () => {
    for (const key of [
      { address: '198.18.0.1', port: 80, protocol: 'TCP' as const },
      { address: '2001:db8::1', port: 65535, protocol: 'UDP' as const },
      { address: '2001:db8:0:0:1::', port: 1, protocol: 'TCP' as const },
    ]) {
      expect(decodeServiceKey(encodeServiceKey(key))).toEqual(key);
    }
    for (const type of ['ClusterIP', 'LoadBalancer', 'ExternalIP', 'NodePort'] as const) {
      const svc: ServiceEntry = { id: 4_000_000_000, count: 65535, algorithm: type === 'NodePort' ? 'maglev' : 'random', type, affinityTimeoutSeconds: 86400 };
      expect(decodeService(encodeService(svc))).toEqual(svc);
    }
  });

  it('round-trip backends, slot keys and config, also at an offset inside a larger buffer', () => {
    const backends: BackendEntry[] = [
      { address: '198.18.255.254', port: 8443, protocol: 'UDP', state: 'terminating' },
      { address: '2001:db8::1', port: 8080, protocol: 'TCP', state: 'active' },
      { address: '198.18.0.9', port: 80, protocol: 'TCP', state: 'active', local: true },
    ];
    for (const b of backends) expect(decodeBackend(encodeBackend(b))).toEqual(b);
    const batch = Buffer.alloc(3 * sizes.backend);
    encodeBackend(backends[1]!, batch, 2 * sizes.backend);
    expect(decodeBackend(batch.subarray(2 * sizes.backend))).toEqual(backends[1]);
    expect(decodeBackend(batch, 2 * sizes.backend)).toEqual(backends[1]);
    expect(decodeSlotKey(encodeSlotKey(123456, 9))).toEqual({ serviceId: 123456, slot: 9 });
    expect(decodeU32(encodeU32(0xffffffff))).toBe(0xffffffff);
    expect(decodeConfig(encodeConfig({ maglevTableSize: 251 }))).toEqual({ maglevTableSize: 251 });
  });

  it('unknown enum values decode to the display defaults; an unknown protocol is an error', () => {
    expect(decodeService(hex('01000000 | 0000 | 09 | 09 | 00000000 | 00000000'))).toMatchObject({ algorithm: 'random', type: 'ClusterIP' });
    expect(decodeBackend(hex(`${doc6} 0050 06 04`))).toEqual({ address: '2001:db8::1', port: 80, protocol: 'TCP', state: 'active' }); // an unknown flag
    expect(() => decodeBackend(hex(`${doc6} 0050 84 00`))).toThrow(/unknown protocol number 132/);
  });

  it('decodes lb_affinity_key / lb_affinity and lb_revnat_key / lb_revnat', () => {
    expect(decodeAffinityKey(hex('0807060504030201 | 05000000 | 00000000'))).toEqual({ client: 0x0102030405060708n, serviceId: 5 });
    expect(decodeAffinity(hex('03000000 | 02000000 | 00ca9a3b00000000'))).toEqual({ backendId: 3, slot: 2, lastNs: 1_000_000_000n });
    expect(decodeRevnatKey(hex(`2a00000000000000 | ${mapped('c6120102')} | 1f90 | 11 | 0000000000`))).toEqual({
      cookie: 42n,
      address: '198.18.1.2',
      port: 8080,
      protocol: 'UDP',
    });
    expect(decodeRevnat(hex(`${doc6} | 0050 | 000000000000`))).toEqual({ address: '2001:db8::1', port: 80 });
  });
});

describe('addresses', () => {
  it('stores IPv4 IPv4-mapped and IPv6 as is', () => {
    expect(addressBytes('198.18.0.1')).toEqual(hex(mapped('c6120001')));
    expect(addressBytes('2001:db8::1')).toEqual(hex(doc6));
    expect(() => addressBytes('not-an-ip')).toThrow(/not an IP address/);
  });

  it('formats mapped bytes as IPv4 and everything else as canonical IPv6', () => {
    expect(formatAddressBytes(hex(mapped('c6120001')))).toBe('198.18.0.1');
    expect(formatAddressBytes(hex(mapped('00000000')))).toBe('0.0.0.0'); // ::ffff:0:0 is the mapped 0.0.0.0
    expect(formatAddressBytes(hex(doc6))).toBe('2001:db8::1');
    expect(formatAddressBytes(Buffer.alloc(16))).toBe('::');
    expect(formatAddressBytes(hex('00000000000000000000000000000001'))).toBe('::1');
    // ffff in bytes 10-11 is not enough: the 80 bits before it must be zero.
    expect(formatAddressBytes(hex('20010db8000000000000ffffc6120001'))).toBe('2001:db8::ffff:c612:1');
    expect(formatAddressBytes(hex('0000000000000000ffff0000c6120001'))).toBe('::ffff:0:c612:1');
    expect(formatAddressBytes(hex('00000000000000000000fffec6120001'))).toBe('::fffe:c612:1');
  });

  it('reads the 16 bytes at an offset', () => {
    const buf = Buffer.concat([Buffer.from([1, 2, 3]), hex(doc6), Buffer.from([4])]);
    expect(formatAddressBytes(buf, 3)).toBe('2001:db8::1');
  });

  it('an IPv4-mapped IPv6 frontend shares the map key of its IPv4 address and reads back as IPv4', () => {
    // The kernel hands IPv4 and mapped IPv6 sockets the same 16 bytes, so the key is shared by
    // design; callers must not expect '::ffff:c612:1' back (see the report on adoption).
    expect(encodeServiceKey({ address: '::ffff:c612:1', port: 80, protocol: 'TCP' })).toEqual(encodeServiceKey({ address: '198.18.0.1', port: 80, protocol: 'TCP' }));
    expect(decodeServiceKey(encodeServiceKey({ address: '::ffff:c612:1', port: 80, protocol: 'TCP' })).address).toBe('198.18.0.1');
  });
});

describe('sumPerCpu', () => {
  it('adds one little-endian __u64 per possible CPU', () => {
    expect(sumPerCpu(new Uint8Array(0))).toBe(0n);
    expect(sumPerCpu(hex('0500000000000000 | 0700000000000000 | 0000000001000000'))).toBe(12n + (1n << 32n));
    expect(sumPerCpu(hex('ffffffffffffffff | 0100000000000000'))).toBe(1n << 64n); // no wrap-around
  });

  it('ignores a trailing partial value and honours a view into a larger buffer', () => {
    expect(sumPerCpu(hex('0300000000000000 | 0400'))).toBe(3n);
    const big = hex('ff | 0200000000000000 | 0300000000000000');
    expect(sumPerCpu(big.subarray(1))).toBe(5n);
  });
});

describe('decodeEntry', () => {
  it('decodes each Beacon map by name', () => {
    const svcKey = encodeServiceKey({ address: '198.18.0.1', port: 80, protocol: 'TCP' });
    const svc = { id: 3, count: 2, algorithm: 'maglev', type: 'ExternalIP', affinityTimeoutSeconds: 0 } as const;
    expect(decodeEntry(mapNames.services, svcKey, encodeService(svc))).toEqual({ key: { address: '198.18.0.1', port: 80, protocol: 'TCP' }, value: svc });
    const backend = { address: '2001:db8::1', port: 8080, protocol: 'TCP', state: 'active' } as const;
    expect(decodeEntry(mapNames.backends, encodeU32(9), encodeBackend(backend))).toEqual({ key: 9, value: backend });
    expect(decodeEntry(mapNames.slots, encodeSlotKey(3, 1), encodeU32(9))).toEqual({ key: { serviceId: 3, slot: 1 }, value: { backendId: 9 } });
    expect(decodeEntry(mapNames.maglev, encodeU32(3), encodeU32(77))).toEqual({ key: { serviceId: 3 }, value: { innerMapId: 77 } });
    expect(decodeEntry(mapNames.affinity, hex('0100000000000080 03000000 00000000'), hex('09000000 01000000 0100000000000000'))).toEqual({
      key: { client: '9223372036854775809', serviceId: 3 },
      value: { backendId: 9, slot: 1, lastNs: '1' },
    });
    expect(decodeEntry(mapNames.revnat, hex(`0200000000000000 ${doc6} 1f90 06 0000000000`), hex(`${mapped('c6120001')} 0050 000000000000`))).toEqual({
      key: { cookie: '2', address: '2001:db8::1', port: 8080, protocol: 'TCP' },
      value: { address: '198.18.0.1', port: 80 },
    });
    expect(decodeEntry(mapNames.config, encodeU32(0), encodeConfig({ maglevTableSize: 251 }))).toEqual({ key: 0, value: { maglevTableSize: 251 } });
  });

  it('names the counters of beacon_stats and sums them over CPUs; an index past the enum stays a number', () => {
    expect(statNames.indexOf('refused_no_backend')).toBe(2);
    expect(decodeEntry(mapNames.stats, encodeU32(2), hex('0100000000000000 0200000000000000'))).toEqual({ key: 'refused_no_backend', value: '3' });
    expect(decodeEntry(mapNames.stats, encodeU32(statNames.length), hex('0000000000000000'))).toEqual({ key: statNames.length, value: '0' });
  });

  it('shows an unknown map as hex', () => {
    expect(decodeEntry('other_map', hex('0a0b'), hex('ff00'))).toEqual({ key: '0a0b', value: 'ff00' });
  });
});
