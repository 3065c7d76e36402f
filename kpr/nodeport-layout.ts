// Byte layout of the north-south datapath's own maps, mirroring bpf/progs/nodeport.h field for
// field: the devices map the agent fills, and conntrack / affinity entries decoded for display.
// Pure. Integers little-endian, ports in network order, addresses 16 bytes with IPv4 mapped,
// as in layout.ts.
import { parseIP } from '../api/index.js';
import { addressBytes, formatAddressBytes, sumPerCpu } from './layout.js';
import type { Protocol } from './model.js';

export const nodeportMapNames = {
  devices: 'beacon_devices',
  conntrack: 'beacon_ct',
  affinity: 'beacon_np_aff',
  stats: 'beacon_np_stats',
} as const;

export const nodeportSizes = { deviceKey: 4, device: 20, ctKey: 40, ct: 56, affinityKey: 24 } as const;

/** The tc programs (SEC("tc")) and the hook each goes on, on every external device. */
export const nodeportPrograms = { ingress: 'beacon_np_ingress', egress: 'beacon_np_egress' } as const;

/** Order of the counters in beacon_np_stats (enum np_stat). */
export const nodeportStatNames = [
  'new_local',
  'new_remote',
  'established',
  'reply',
  'reject',
  'backend_gone',
  'backend_missing',
  'ct_full',
  'nat_exhausted',
  'no_node_addr',
  'affinity_hit',
  'rewrite_failed',
  'unsupported',
  'icmp_error',
] as const;
export type NodeportStatName = (typeof nodeportStatNames)[number];

/** enum np_ct_lifetime: seconds after the last packet. */
export const ctLifetimeSeconds = { tcpEstablished: 21600, tcpSyn: 60, tcpClosing: 10, other: 60 } as const;
/** enum np_nat: the SNAT source ports and the tries per new flow. */
export const natPorts = { min: 61000, max: 65535, probes: 32 } as const;

const CT_REPLY = 1;
const CT_SNAT = 2;
const CT_ESTABLISHED = 4;
const CT_CLOSING = 8;
const protocolNumbers: Record<Protocol, number> = { TCP: 6, UDP: 17 };
const protocolOf = (n: number): Protocol => {
  if (n === 6) return 'TCP';
  if (n === 17) return 'UDP';
  throw new Error(`unknown protocol number ${n}`);
};
const view = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** The node's addresses on one external device; a family without one is not source-NATed. */
export interface DeviceAddresses {
  ipv4?: string;
  ipv6?: string;
}

export function encodeDevice(d: DeviceAddresses): Buffer {
  const out = Buffer.alloc(nodeportSizes.device);
  const family = (text: string | undefined, want: 4 | 6) => {
    if (text !== undefined && parseIP(text)?.family !== want) throw new Error(`not an IPv${want} address: ${text}`);
    return text;
  };
  const v4 = family(d.ipv4, 4);
  const v6 = family(d.ipv6, 6);
  if (v4 !== undefined) addressBytes(v4).copy(out, 0, 12, 16);
  if (v6 !== undefined) addressBytes(v6).copy(out, 4);
  return out;
}

export function decodeDevice(b: Uint8Array): DeviceAddresses {
  const buf = view(b);
  const mapped = Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]), buf.subarray(0, 4)]);
  const out: DeviceAddresses = {};
  if (buf.readUInt32LE(0) !== 0) out.ipv4 = formatAddressBytes(mapped);
  if (!buf.subarray(4, 20).every((x) => x === 0)) out.ipv6 = formatAddressBytes(buf, 4);
  return out;
}

/** A packet's tuple (struct np_ct_key, and the tuple half of struct np_ct). */
export interface Tuple {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
}

export function encodeCtKey(t: Tuple & { protocol: Protocol }): Buffer {
  const out = Buffer.alloc(nodeportSizes.ctKey);
  addressBytes(t.src).copy(out, 0);
  addressBytes(t.dst).copy(out, 16);
  out.writeUInt16BE(t.srcPort, 32);
  out.writeUInt16BE(t.dstPort, 34);
  out[36] = protocolNumbers[t.protocol];
  return out;
}

export function decodeCtKey(b: Uint8Array): Tuple & { protocol: Protocol } {
  const buf = view(b);
  return { src: formatAddressBytes(buf, 0), dst: formatAddressBytes(buf, 16), srcPort: buf.readUInt16BE(32), dstPort: buf.readUInt16BE(34), protocol: protocolOf(buf[36]!) };
}

/** A conntrack entry: the tuple the packet leaves with, and the flow's state. */
export interface CtEntry {
  /** The translated tuple. */
  to: Tuple;
  backendId: number;
  lastSeenNs: bigint;
  /** A reply entry (backend -> client) or the client's forward entry. */
  reply: boolean;
  /** The flow is source-NATed to the node (a backend on another node). */
  snat: boolean;
  established: boolean;
  closing: boolean;
}

export function encodeCt(e: CtEntry): Buffer {
  const out = Buffer.alloc(nodeportSizes.ct);
  addressBytes(e.to.src).copy(out, 0);
  addressBytes(e.to.dst).copy(out, 16);
  out.writeUInt16BE(e.to.srcPort, 32);
  out.writeUInt16BE(e.to.dstPort, 34);
  out.writeUInt32LE(e.backendId, 36);
  out.writeBigUInt64LE(e.lastSeenNs, 40);
  out[48] = (e.reply ? CT_REPLY : 0) | (e.snat ? CT_SNAT : 0) | (e.established ? CT_ESTABLISHED : 0) | (e.closing ? CT_CLOSING : 0);
  return out;
}

export function decodeCt(b: Uint8Array): CtEntry {
  const buf = view(b);
  const flags = buf[48]!;
  return {
    to: { src: formatAddressBytes(buf, 0), dst: formatAddressBytes(buf, 16), srcPort: buf.readUInt16BE(32), dstPort: buf.readUInt16BE(34) },
    backendId: buf.readUInt32LE(36),
    lastSeenNs: buf.readBigUInt64LE(40),
    reply: (flags & CT_REPLY) !== 0,
    snat: (flags & CT_SNAT) !== 0,
    established: (flags & CT_ESTABLISHED) !== 0,
    closing: (flags & CT_CLOSING) !== 0,
  };
}

/** Seconds an entry lives after its last packet (ct_lifetime_ns in nodeport.c). */
export function ctLifetime(e: Pick<CtEntry, 'established' | 'closing'>, protocol: Protocol): number {
  if (protocol !== 'TCP') return ctLifetimeSeconds.other;
  if (e.closing) return ctLifetimeSeconds.tcpClosing;
  return e.established ? ctLifetimeSeconds.tcpEstablished : ctLifetimeSeconds.tcpSyn;
}

/** Whether the datapath treats the entry as gone at `nowNs` (CLOCK_MONOTONIC, as bpf_ktime_get_ns). */
export const ctExpired = (e: CtEntry, protocol: Protocol, nowNs: bigint): boolean => nowNs - e.lastSeenNs > BigInt(ctLifetime(e, protocol)) * 1_000_000_000n;

export function decodeNodeportAffinityKey(b: Uint8Array): { client: string; serviceId: number } {
  const buf = view(b);
  return { client: formatAddressBytes(buf, 0), serviceId: buf.readUInt32LE(16) };
}

/**
 * The flow hash nodeport.c gives Maglev and the SNAT port search (MurmurHash3's mixing over the
 * ten little-endian words of struct np_ct_key), so tools can predict a flow's choices.
 */
export function flowHash(key: Uint8Array): number {
  const buf = view(key);
  let h = 0;
  for (let at = 0; at < nodeportSizes.ctKey; at += 4) {
    let x = Math.imul(buf.readUInt32LE(at), 0xcc9e2d51);
    x = Math.imul((x << 15) | (x >>> 17), 0x1b873593);
    h ^= x;
    h = (Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64) | 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The source ports a new SNAT flow with this forward key tries, in order (claim_nat_port). */
export function natPortCandidates(key: Uint8Array): number[] {
  const start = flowHash(key);
  const range = natPorts.max - natPorts.min + 1;
  return Array.from({ length: natPorts.probes }, (_, i) => natPorts.min + (((start + i) >>> 0) % range));
}

/** One entry of a north-south map decoded for `beacon bpf dump`; undefined for other maps. */
export function decodeNodeportEntry(mapName: string, key: Uint8Array, value: Uint8Array): { key: unknown; value: unknown } | undefined {
  switch (mapName) {
    case nodeportMapNames.devices:
      return { key: { ifindex: view(key).readUInt32LE(0) }, value: decodeDevice(value) };
    case nodeportMapNames.conntrack: {
      const v = decodeCt(value);
      return { key: decodeCtKey(key), value: { ...v, lastSeenNs: v.lastSeenNs.toString() } };
    }
    case nodeportMapNames.affinity: {
      const v = view(value);
      return { key: decodeNodeportAffinityKey(key), value: { backendId: v.readUInt32LE(0), slot: v.readUInt32LE(4), lastNs: v.readBigUInt64LE(8).toString() } };
    }
    case nodeportMapNames.stats: {
      const i = view(key).readUInt32LE(0);
      return { key: nodeportStatNames[i] ?? i, value: sumPerCpu(value).toString() };
    }
    default:
      return undefined;
  }
}
