// Byte layout of the load-balancing maps, mirroring bpf/progs/lb.h field for field. Pure: turns
// datapath entries into map keys/values and back (adoption after a restart, `beacon bpf dump`).
// Integers are little-endian (the host's order on the machines Beacon supports); ports are in
// network order as the kernel hands them to the socket hooks; IPv4 is stored IPv4-mapped.
import { canonicalIPv4, formatIP, parseIP } from '../api/index.js';
import type { Algorithm, BackendState, FrontendType, Protocol } from './model.js';

export const mapNames = {
  services: 'beacon_svc',
  backends: 'beacon_backends',
  slots: 'beacon_slots',
  maglev: 'beacon_maglev',
  affinity: 'beacon_affinity',
  revnat: 'beacon_revnat',
  config: 'beacon_config',
  stats: 'beacon_stats',
} as const;

export const sizes = {
  svcKey: 20,
  svc: 16,
  backendKey: 4,
  backend: 20,
  slotKey: 8,
  slot: 4,
  config: 8,
  affinityKey: 16,
  affinity: 16,
  revnatKey: 32,
  revnat: 24,
} as const;

const protocolNumbers: Record<Protocol, number> = { TCP: 6, UDP: 17 };
const protocolNames = new Map<number, Protocol>([
  [6, 'TCP'],
  [17, 'UDP'],
]);
const frontendTypes: readonly FrontendType[] = ['ClusterIP', 'LoadBalancer', 'ExternalIP', 'NodePort'];
const algorithms: readonly Algorithm[] = ['random', 'maglev'];
/** enum lb_backend_flags. */
const TERMINATING = 1;
const LOCAL = 2;

/** Order of the counters in beacon_stats (enum lb_stat). */
export const statNames = [
  'connect_translated',
  'sendmsg_translated',
  'refused_no_backend',
  'backend_missing',
  'revnat_restored',
  'affinity_hit',
  'revnat_full',
] as const;
export type StatName = (typeof statNames)[number];

export interface Address {
  address: string;
  port: number;
  protocol: Protocol;
}

/** IPv6 (and non-canonical IPv4) bytes, memoised: parsing them takes bigints. */
const slowAddresses = new Map<string, Buffer>();

/** Writes the 16 bytes of an address, IPv4-mapped for IPv4. */
export function encodeAddress(address: string, out: Buffer, at: number): void {
  const v4 = canonicalIPv4(address);
  if (v4 !== undefined) {
    // The common case, with no allocation: what the planner's entries hold. Byte stores, not
    // fill(): a call into C++ per entry costs more than the ten stores (110,000 entries a first pass).
    for (let i = at; i < at + 10; i++) out[i] = 0;
    out[at + 10] = out[at + 11] = 0xff;
    out.writeUInt32BE(v4, at + 12);
    return;
  }
  let bytes = slowAddresses.get(address);
  if (bytes === undefined) {
    const ip = parseIP(address);
    if (ip === undefined) throw new Error(`not an IP address: ${address}`);
    bytes = Buffer.alloc(16);
    let value = ip.family === 4 ? ip.value | (0xffffn << 32n) : ip.value;
    for (let i = 15; i >= 0; i--, value >>= 8n) bytes[i] = Number(value & 0xffn);
    if (slowAddresses.size > 100_000) slowAddresses.clear();
    slowAddresses.set(address, bytes);
  }
  bytes.copy(out, at);
}

/** 16 bytes of an address, IPv4-mapped for IPv4. */
export function addressBytes(address: string): Buffer {
  const bytes = Buffer.alloc(16);
  encodeAddress(address, bytes, 0);
  return bytes;
}

export function formatAddressBytes(bytes: Uint8Array, offset = 0): string {
  const view = bytes.subarray(offset, offset + 16);
  const mapped = view.subarray(0, 10).every((b) => b === 0) && view[10] === 0xff && view[11] === 0xff;
  if (mapped) return `${view[12]}.${view[13]}.${view[14]}.${view[15]}`;
  let value = 0n;
  for (const b of view) value = (value << 8n) | BigInt(b);
  return formatIP({ family: 6, value });
}

function protocolName(n: number): Protocol {
  const name = protocolNames.get(n);
  if (name === undefined) throw new Error(`unknown protocol number ${n}`);
  return name;
}

export function encodeServiceKey(f: Address, out: Buffer = Buffer.alloc(sizes.svcKey), at = 0): Buffer {
  encodeAddress(f.address, out, at);
  out.writeUInt16BE(f.port, at + 16);
  out[at + 18] = protocolNumbers[f.protocol];
  out[at + 19] = 0;
  return out;
}

export function decodeServiceKey(b: Uint8Array, at = 0): Address {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return { address: formatAddressBytes(buf, at), port: buf.readUInt16BE(at + 16), protocol: protocolName(buf[at + 18]!) };
}

export interface ServiceEntry {
  id: number;
  count: number;
  algorithm: Algorithm;
  type: FrontendType;
  affinityTimeoutSeconds: number;
}

export function encodeService(s: ServiceEntry, out: Buffer = Buffer.alloc(sizes.svc), at = 0): Buffer {
  out.writeUInt32LE(s.id, at);
  out.writeUInt16LE(s.count, at + 4);
  out[at + 6] = algorithms.indexOf(s.algorithm);
  out[at + 7] = frontendTypes.indexOf(s.type) + 1;
  out.writeUInt32LE(s.affinityTimeoutSeconds, at + 8);
  out.writeUInt32LE(0, at + 12);
  return out;
}

export function decodeService(b: Uint8Array, at = 0): ServiceEntry {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return {
    id: buf.readUInt32LE(at),
    count: buf.readUInt16LE(at + 4),
    algorithm: algorithms[buf[at + 6]!] ?? 'random',
    type: frontendTypes[buf[at + 7]! - 1] ?? 'ClusterIP',
    affinityTimeoutSeconds: buf.readUInt32LE(at + 8),
  };
}

export const encodeU32 = (n: number, out: Buffer = Buffer.alloc(4), at = 0): Buffer => (out.writeUInt32LE(n, at), out);
export const decodeU32 = (b: Uint8Array, at = 0): number => Buffer.from(b.buffer, b.byteOffset, b.byteLength).readUInt32LE(at);

export interface BackendEntry extends Address {
  state: BackendState;
  /** On this node: the tc datapath reaches it without source NAT. Absent when not. */
  local?: boolean;
}

export function encodeBackend(b: BackendEntry, out: Buffer = Buffer.alloc(sizes.backend), at = 0): Buffer {
  encodeAddress(b.address, out, at);
  out.writeUInt16BE(b.port, at + 16);
  out[at + 18] = protocolNumbers[b.protocol];
  out[at + 19] = (b.state === 'terminating' ? TERMINATING : 0) | (b.local ? LOCAL : 0);
  return out;
}

export function decodeBackend(b: Uint8Array, at = 0): BackendEntry {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const flags = buf[at + 19]!;
  const entry: BackendEntry = {
    address: formatAddressBytes(buf, at),
    port: buf.readUInt16BE(at + 16),
    protocol: protocolName(buf[at + 18]!),
    state: flags & TERMINATING ? 'terminating' : 'active',
  };
  if (flags & LOCAL) entry.local = true;
  return entry;
}

export function encodeSlotKey(serviceId: number, slot: number, out: Buffer = Buffer.alloc(sizes.slotKey), at = 0): Buffer {
  out.writeUInt32LE(serviceId, at);
  out.writeUInt32LE(slot, at + 4);
  return out;
}

export function decodeSlotKey(b: Uint8Array, at = 0): { serviceId: number; slot: number } {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return { serviceId: buf.readUInt32LE(at), slot: buf.readUInt32LE(at + 4) };
}

export const encodeConfig = (c: { maglevTableSize: number }): Buffer => {
  const out: Buffer = Buffer.alloc(sizes.config);
  out.writeUInt32LE(c.maglevTableSize, 0);
  return out;
};

export const decodeConfig = (b: Uint8Array): { maglevTableSize: number } => ({ maglevTableSize: decodeU32(b, 0) });

export function decodeAffinityKey(b: Uint8Array): { client: bigint; serviceId: number } {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return { client: buf.readBigUInt64LE(0), serviceId: buf.readUInt32LE(8) };
}

export function decodeAffinity(b: Uint8Array): { backendId: number; slot: number; lastNs: bigint } {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return { backendId: buf.readUInt32LE(0), slot: buf.readUInt32LE(4), lastNs: buf.readBigUInt64LE(8) };
}

export function decodeRevnatKey(b: Uint8Array): { cookie: bigint } & Address {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return { cookie: buf.readBigUInt64LE(0), address: formatAddressBytes(buf, 8), port: buf.readUInt16BE(24), protocol: protocolName(buf[26]!) };
}

export function decodeRevnat(b: Uint8Array): { address: string; port: number } {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return { address: formatAddressBytes(buf, 0), port: buf.readUInt16BE(16) };
}

/** Per-CPU counters come back as one 8-byte value per possible CPU; the total is their sum. */
export function sumPerCpu(value: Uint8Array): bigint {
  const buf = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  let total = 0n;
  for (let at = 0; at + 8 <= buf.length; at += 8) total += buf.readBigUInt64LE(at);
  return total;
}

/** One entry of a Beacon map decoded for `beacon bpf dump`; unknown maps show hex. */
export function decodeEntry(mapName: string, key: Uint8Array, value: Uint8Array): { key: unknown; value: unknown } {
  const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
  switch (mapName) {
    case mapNames.services:
      return { key: decodeServiceKey(key), value: decodeService(value) };
    case mapNames.backends:
      return { key: decodeU32(key), value: decodeBackend(value) };
    case mapNames.slots:
      return { key: decodeSlotKey(key), value: { backendId: decodeU32(value) } };
    case mapNames.maglev:
      return { key: { serviceId: decodeU32(key) }, value: { innerMapId: decodeU32(value) } };
    case mapNames.affinity: {
      const k = decodeAffinityKey(key);
      const v = decodeAffinity(value);
      return { key: { client: k.client.toString(), serviceId: k.serviceId }, value: { ...v, lastNs: v.lastNs.toString() } };
    }
    case mapNames.revnat: {
      const k = decodeRevnatKey(key);
      return { key: { ...k, cookie: k.cookie.toString() }, value: decodeRevnat(value) };
    }
    case mapNames.config:
      return { key: decodeU32(key), value: decodeConfig(value) };
    case mapNames.stats:
      return { key: statNames[decodeU32(key)] ?? decodeU32(key), value: sumPerCpu(value).toString() };
    default:
      return { key: hex(key), value: hex(value) };
  }
}
