// The north-south map layout against bpf/progs/nodeport.h: every expected byte below is written by
// hand from the C structs (offsets, little-endian integers, ports in network order, IPv4 mapped).
import { describe, expect, it } from 'vitest';
import {
  ctExpired,
  ctLifetime,
  decodeCt,
  decodeCtKey,
  decodeDevice,
  decodeNodeportEntry,
  encodeCt,
  encodeCtKey,
  encodeDevice,
  flowHash,
  natPortCandidates,
  nodeportSizes,
  nodeportStatNames,
  type CtEntry,
} from './nodeport-layout.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/[\s|]/g, ''), 'hex');
const mapped = (v4: string) => `00000000000000000000ffff${v4}`;
const doc6 = (last: string) => `20010db8000000000000000000000${last}`;
const synKey = encodeCtKey({ src: '198.18.0.1', dst: '198.18.0.2', srcPort: 40000, dstPort: 80, protocol: 'TCP' });

describe('encoders match struct layouts in nodeport.h', () => {
  it('np_device: addr4[4] (network order), addr6[16]; absent = zeros', () => {
    expect(encodeDevice({ ipv4: '198.18.0.1', ipv6: '2001:db8::1' })).toEqual(hex(`c6120001 | ${doc6('001')}`));
    expect(encodeDevice({ ipv6: '2001:db8::1' })).toEqual(hex(`00000000 | ${doc6('001')}`));
    expect(encodeDevice({})).toEqual(Buffer.alloc(nodeportSizes.device));
    expect(() => encodeDevice({ ipv4: '2001:db8::1' })).toThrow('not an IPv4 address');
    expect(() => encodeDevice({ ipv6: '198.18.0.1' })).toThrow('not an IPv6 address');
  });

  it('np_ct_key: saddr[16], daddr[16], __be16 sport, __be16 dport, proto, reserved[3]', () => {
    expect(synKey).toEqual(hex(`${mapped('c6120001')} | ${mapped('c6120002')} | 9c40 | 0050 | 06 | 000000`));
    expect(encodeCtKey({ src: '2001:db8::1', dst: '2001:db8::2', srcPort: 1, dstPort: 0xffff, protocol: 'UDP' })).toEqual(hex(`${doc6('001')} | ${doc6('002')} | 0001 | ffff | 11 | 000000`));
  });

  it('np_ct: saddr[16], daddr[16], sport, dport, __u32 backend_id, __u64 last_seen_ns, flags, reserved[7]', () => {
    const e: CtEntry = {
      to: { src: '198.18.0.9', dst: '198.18.1.2', srcPort: 61000, dstPort: 8080 },
      backendId: 0x01020304,
      lastSeenNs: 0x1122334455667788n,
      reply: false,
      snat: true,
      established: true,
      closing: false,
    };
    expect(encodeCt(e)).toEqual(hex(`${mapped('c6120009')} | ${mapped('c6120102')} | ee48 | 1f90 | 04030201 | 8877665544332211 | 06 | 00000000000000`));
    expect(encodeCt({ ...e, reply: true, snat: false, established: false, closing: true })[48]).toBe(0x09);
  });

  it('sizes are the C sizeof of each struct', () => {
    expect(nodeportSizes).toEqual({ deviceKey: 4, device: 20, ctKey: 40, ct: 56, affinityKey: 24 });
    expect(nodeportStatNames).toHaveLength(14);
  });
});

describe('decoders and the datapath rules', () => {
  it('round-trip devices, tuples and entries', () => {
    for (const d of [{ ipv4: '198.18.0.1', ipv6: '2001:db8::1' }, { ipv4: '198.19.255.254' }, { ipv6: '2001:db8:1::' }, {}]) expect(decodeDevice(encodeDevice(d))).toEqual(d);
    expect(decodeCtKey(synKey)).toEqual({ src: '198.18.0.1', dst: '198.18.0.2', srcPort: 40000, dstPort: 80, protocol: 'TCP' });
    const e: CtEntry = { to: { src: '2001:db8::1', dst: '2001:db8::2', srcPort: 5, dstPort: 6 }, backendId: 9, lastSeenNs: 5n, reply: true, snat: true, established: false, closing: true };
    expect(decodeCt(encodeCt(e))).toEqual(e);
  });

  it('lifetimes: TCP by state, everything else 60 s; expiry strictly after the lifetime', () => {
    const base: CtEntry = { to: { src: '198.18.0.1', dst: '198.18.0.2', srcPort: 1, dstPort: 2 }, backendId: 1, lastSeenNs: 1_000n, reply: false, snat: false, established: false, closing: false };
    expect(ctLifetime(base, 'TCP')).toBe(60);
    expect(ctLifetime({ ...base, established: true }, 'TCP')).toBe(21600);
    expect(ctLifetime({ ...base, established: true, closing: true }, 'TCP')).toBe(10);
    expect(ctLifetime({ ...base, closing: true }, 'UDP')).toBe(60);
    expect(ctExpired(base, 'UDP', 1_000n + 60_000_000_000n)).toBe(false);
    expect(ctExpired(base, 'UDP', 1_001n + 60_000_000_000n)).toBe(true);
  });

  it('flowHash: MurmurHash3 mixing of the key words (value from an independent implementation)', () => {
    expect(flowHash(synKey)).toBe(0x333654f4);
    const ports = natPortCandidates(synKey);
    expect(ports).toHaveLength(32);
    expect(ports[0]).toBe(61000 + (0x333654f4 % 4536));
    expect(new Set(ports).size).toBe(32);
    expect(ports.every((p) => p >= 61000 && p <= 65535)).toBe(true);
  });

  it('decodeNodeportEntry shows each map, and nothing for others', () => {
    expect(decodeNodeportEntry('beacon_devices', hex('03000000'), encodeDevice({ ipv4: '198.18.0.1' }))).toEqual({ key: { ifindex: 3 }, value: { ipv4: '198.18.0.1' } });
    expect(decodeNodeportEntry('beacon_np_stats', hex('04000000'), hex('0200000000000000 0300000000000000'))).toEqual({ key: 'reject', value: '5' });
    expect(decodeNodeportEntry('beacon_ct', synKey, encodeCt({ to: { src: '198.18.0.1', dst: '198.18.1.2', srcPort: 40000, dstPort: 8080 }, backendId: 7, lastSeenNs: 9n, reply: false, snat: false, established: true, closing: false }))).toMatchObject({
      key: { dstPort: 80 },
      value: { backendId: 7, lastSeenNs: '9', established: true },
    });
    expect(decodeNodeportEntry('beacon_np_aff', hex(`${mapped('c6120001')} 05000000 00000000`), hex('07000000 02000000 0a00000000000000'))).toEqual({
      key: { client: '198.18.0.1', serviceId: 5 },
      value: { backendId: 7, slot: 2, lastNs: '10' },
    });
    expect(decodeNodeportEntry('beacon_svc', synKey, synKey)).toBeUndefined();
  });
});
