// A deterministic fuzzer for decodeFrame: random bytes, valid frames of every kind, and mutations
// of those (truncation, bit flips, interesting bytes, corrupted length fields, repaired checksums
// so mutations reach the checks behind the checksum). Pure: seeded, no clock; callers time it.
import type { IP } from '../api/index.js';
import { buildARPReply, buildGratuitousARP, encodeARP, type ARPOp } from './arp.js';
import { readU16, writeU16 } from './bytes.js';
import { dropKind, isDropReason } from './drop.js';
import { encodeEthernet, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, type VLANTag } from './ethernet.js';
import { decodeFrame, type Frame } from './frame.js';
import {
  ALL_NODES_IPV6,
  encodeIPv6,
  icmpv6Checksum,
  ipv6FromBytes,
  ipv6MulticastMAC,
  isMulticastIPv6,
  NEXT_HEADER_DESTINATION_OPTIONS,
  NEXT_HEADER_HOP_BY_HOP,
  NEXT_HEADER_ICMPV6,
  solicitedNodeMulticast,
  UNSPECIFIED_IPV6,
} from './ipv6.js';
import { broadcastMAC, macEqual, type MAC } from './mac.js';
import {
  buildNAReply,
  buildUnsolicitedNA,
  encodeNDPFrame,
  encodeNeighborAdvertisement,
  encodeNeighborSolicitation,
  type NeighborAdvertisement,
  type NeighborSolicitation,
} from './ndp.js';

export interface FuzzOptions {
  readonly frames: number;
  readonly seed?: number;
  /** Re-encode every accepted frame and compare (default true). */
  readonly roundTrip?: boolean;
  /** How many failures to keep as samples (default 10). */
  readonly samples?: number;
  /** Called every 65,536 frames with the count so far, for a long run's progress line. */
  readonly onProgress?: (done: number) => void;
}

export interface FuzzFailure {
  readonly kind: 'exception' | 'unknown_reason' | 'round_trip';
  readonly generator: string;
  readonly hex: string;
  readonly detail: string;
}

export interface FuzzReport {
  readonly frames: number;
  /** `arp`, `ns`, `na`, `other:<reason>`, `drop:<reason>`. */
  readonly outcomes: Record<string, number>;
  /** Frames per generator, so a run shows what it tried. */
  readonly generators: Record<string, number>;
  readonly failureCount: number;
  readonly failures: readonly FuzzFailure[];
}

// ---- randomness --------------------------------------------------------------------------------

/** Marsaglia's xorshift32: tiny, seedable, good enough to pick mutations. */
class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.state;
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    this.state = x;
    return x;
  }
  int(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }
  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }
}

// Addresses stay in 198.18.0.0/15 (RFC 2544) and 2001:db8::/32 (RFC 3849), plus the
// protocol-defined multicast and unspecified addresses.
const randomIPv4 = (rng: Rng): IP => ({ family: 4, value: 0xc612_0000n + BigInt(rng.int(0x2_0000)) });
const randomIPv6 = (rng: Rng): IP => ({
  family: 6,
  value: (0x2001_0db8n << 96n) | (BigInt(rng.next()) << 64n) | (BigInt(rng.next()) << 32n) | BigInt(rng.next()),
});
function randomMAC(rng: Rng): MAC {
  const mac = rng.bytes(6);
  mac[0] = (mac[0]! & 0xfc) | 0x02; // locally administered unicast
  return mac;
}
const randomVLAN = (rng: Rng): VLANTag | undefined =>
  rng.chance(0.3) ? { pcp: rng.int(8), dei: rng.chance(0.1), vid: rng.int(4095) } : undefined;

// ---- valid frames ------------------------------------------------------------------------------

function validARP(rng: Rng): Uint8Array {
  const vlan = randomVLAN(rng);
  const mac = randomMAC(rng);
  const ip = randomIPv4(rng);
  switch (rng.int(3)) {
    case 0:
      return buildGratuitousARP(mac, ip, rng.pick<ARPOp>(['request', 'reply']), vlan);
    case 1: {
      const request = { op: 'request' as const, senderMAC: mac, senderIP: ip, targetMAC: new Uint8Array(6), targetIP: randomIPv4(rng) };
      return encodeEthernet({ dst: broadcastMAC(), src: mac, vlan, ethertype: ETHERTYPE_ARP }, encodeARP(request));
    }
    default: {
      const request = { op: 'request' as const, senderMAC: mac, senderIP: ip, targetMAC: new Uint8Array(6), targetIP: randomIPv4(rng) };
      const ethernet = { dst: broadcastMAC(), src: mac, vlan, ethertype: ETHERTYPE_ARP, payload: new Uint8Array(0) };
      return buildARPReply({ kind: 'arp', ethernet, arp: request }, randomMAC(rng));
    }
  }
}

/** Hop-by-Hop or Destination Options with one PadN option, in front of an ICMPv6 message. */
function withOptionsHeader(rng: Rng, message: Uint8Array): { nextHeader: number; payload: Uint8Array } {
  if (!rng.chance(0.1)) return { nextHeader: NEXT_HEADER_ICMPV6, payload: message };
  const units = rng.int(2); // 8 or 16 octets
  const header = new Uint8Array(8 * (units + 1));
  header[0] = NEXT_HEADER_ICMPV6;
  header[1] = units;
  header[2] = 1; // PadN (RFC 8200 §4.2)
  header[3] = header.length - 4;
  const payload = new Uint8Array(header.length + message.length);
  payload.set(header);
  payload.set(message, header.length);
  return { nextHeader: rng.pick([NEXT_HEADER_HOP_BY_HOP, NEXT_HEADER_DESTINATION_OPTIONS]), payload };
}

/** An ND message with an unknown option (a DAD nonce, type 14, RFC 7527) appended, checksum redone. */
function withNonce(rng: Rng, message: Uint8Array, src: IP, dst: IP): Uint8Array {
  if (!rng.chance(0.2)) return message;
  const out = new Uint8Array(message.length + 8);
  out.set(message);
  out[message.length] = 14;
  out[message.length + 1] = 1;
  out.set(rng.bytes(6), message.length + 2);
  out[2] = 0;
  out[3] = 0;
  writeU16(out, 2, icmpv6Checksum(src, dst, out));
  return out;
}

function ndpFrame(rng: Rng, link: { src: MAC; dst: MAC; vlan: VLANTag | undefined }, src: IP, dst: IP, message: Uint8Array): Uint8Array {
  const { nextHeader, payload } = withOptionsHeader(rng, withNonce(rng, message, src, dst));
  if (nextHeader === NEXT_HEADER_ICMPV6) return encodeNDPFrame(link, src, dst, payload);
  const packet = encodeIPv6({ nextHeader, hopLimit: 255, src, dst }, payload);
  return encodeEthernet({ ...link, ethertype: ETHERTYPE_IPV6 }, packet);
}

function validNS(rng: Rng): Uint8Array {
  const target = randomIPv6(rng);
  const dad = rng.chance(0.2);
  const src = dad ? UNSPECIFIED_IPV6 : randomIPv6(rng);
  const dst = dad || rng.chance(0.7) ? solicitedNodeMulticast(target) : target;
  const mac = randomMAC(rng);
  const ns: NeighborSolicitation = dad || rng.chance(0.2) ? { target } : { target, sourceLinkLayer: mac };
  const link = { src: mac, dst: isMulticastIPv6(dst) ? ipv6MulticastMAC(dst) : randomMAC(rng), vlan: randomVLAN(rng) };
  return ndpFrame(rng, link, src, dst, encodeNeighborSolicitation(ns, src, dst));
}

function validNA(rng: Rng): Uint8Array {
  const mac = randomMAC(rng);
  const target = randomIPv6(rng);
  if (rng.chance(0.2)) return buildUnsolicitedNA(mac, target, randomVLAN(rng));
  const multicast = rng.chance(0.4);
  const dst = multicast ? ALL_NODES_IPV6 : randomIPv6(rng);
  const na: NeighborAdvertisement = {
    router: rng.chance(0.2),
    solicited: !multicast && rng.chance(0.7),
    override: rng.chance(0.7),
    target,
    ...(rng.chance(0.8) ? { targetLinkLayer: mac } : {}),
  };
  const link = { src: mac, dst: multicast ? ipv6MulticastMAC(dst) : randomMAC(rng), vlan: randomVLAN(rng) };
  return ndpFrame(rng, link, target, dst, encodeNeighborAdvertisement(na, target, dst));
}

function validNAReply(rng: Rng): Uint8Array {
  const target = randomIPv6(rng);
  const dad = rng.chance(0.3);
  const ns: NeighborSolicitation = dad ? { target } : { target, sourceLinkLayer: randomMAC(rng) };
  const ethernet = { dst: randomMAC(rng), src: randomMAC(rng), vlan: randomVLAN(rng), ethertype: ETHERTYPE_IPV6, payload: new Uint8Array(0) };
  const ipv6 = {
    trafficClass: 0,
    flowLabel: 0,
    payloadLength: 24,
    nextHeader: NEXT_HEADER_ICMPV6,
    hopLimit: 255,
    src: dad ? UNSPECIFIED_IPV6 : randomIPv6(rng),
    dst: solicitedNodeMulticast(target),
  };
  return buildNAReply({ kind: 'ns', ethernet, ipv6, ns }, randomMAC(rng));
}

/** Well-formed frames the responder ignores: IPv4, ICMPv6 echo, UDP over IPv6, 802.3, LLDP. */
function validOther(rng: Rng): Uint8Array {
  const link = { src: randomMAC(rng), dst: randomMAC(rng), vlan: randomVLAN(rng) };
  switch (rng.int(4)) {
    case 0:
      return encodeEthernet({ ...link, ethertype: ETHERTYPE_IPV4 }, rng.bytes(20 + rng.int(40)));
    case 1: {
      const src = randomIPv6(rng);
      const dst = randomIPv6(rng);
      const echo = rng.bytes(8 + rng.int(24));
      echo[0] = 128; // echo request (RFC 4443 §4.1)
      echo[1] = 0;
      echo[2] = 0;
      echo[3] = 0;
      writeU16(echo, 2, icmpv6Checksum(src, dst, echo));
      return encodeNDPFrame(link, src, dst, echo);
    }
    case 2:
      return encodeEthernet(
        { ...link, ethertype: ETHERTYPE_IPV6 },
        encodeIPv6({ nextHeader: 17, hopLimit: 64, src: randomIPv6(rng), dst: randomIPv6(rng) }, rng.bytes(8 + rng.int(32))),
      );
    default:
      return encodeEthernet({ ...link, ethertype: rng.pick([0x88cc, 46, 0x88a8]) }, rng.bytes(rng.int(60)));
  }
}

// Weighted towards the frames with the most checks; 'other' mostly exercises the classifier.
const validGenerators: readonly (readonly [string, (rng: Rng) => Uint8Array])[] = [
  ['arp', validARP],
  ['arp', validARP],
  ['ns', validNS],
  ['ns', validNS],
  ['ns', validNS],
  ['na', validNA],
  ['na', validNA],
  ['na_reply', validNAReply],
  ['other', validOther],
];

// ---- mutations ---------------------------------------------------------------------------------

const interesting = [0x00, 0x01, 0x02, 0x04, 0x06, 0x3a, 0x7f, 0x80, 0x86, 0x87, 0x88, 0xdd, 0xfe, 0xff];

/** Where the Ethernet payload starts, if the frame has a tag. */
const l3Offset = (frame: Uint8Array): number => (frame[12] === 0x81 && frame[13] === 0x00 ? 18 : 14);

const mutations: readonly (readonly [string, (rng: Rng, frame: Uint8Array) => Uint8Array])[] = [
  ['truncate', (rng, f) => f.slice(0, rng.int(f.length + 1))],
  [
    'bit_flip',
    (rng, f) => {
      const out = f.slice();
      for (let n = 1 + rng.int(4); n > 0 && out.length > 0; n--) out[rng.int(out.length)]! ^= 1 << rng.int(8);
      return out;
    },
  ],
  [
    'interesting_byte',
    (rng, f) => {
      const out = f.slice();
      if (out.length > 0) out[rng.int(out.length)] = rng.pick(interesting);
      return out;
    },
  ],
  [
    'length_field',
    (rng, f) => {
      // ARP hlen/plen, IPv6 payload length, the first ND option's length, an extension header's length.
      const out = f.slice();
      const l3 = l3Offset(out);
      const targets = [l3 + 4, l3 + 5, l3 + 40 + 1, l3 + 40 + 24 + 1, l3 + 40 + 8 + 24 + 1];
      const at = rng.pick(targets);
      if (at + 1 >= out.length) return out;
      if (rng.chance(0.5)) out[at] = rng.pick(interesting);
      else writeU16(out, at - 1, (readU16(out, at - 1) + rng.int(17) - 8) & 0xffff);
      return out;
    },
  ],
  [
    'ethertype',
    (rng, f) => {
      const out = f.slice();
      const at = rng.chance(0.5) ? 12 : l3Offset(out) - 2;
      if (at + 2 > out.length) return out;
      writeU16(out, at, rng.pick([ETHERTYPE_ARP, ETHERTYPE_IPV6, ETHERTYPE_VLAN, 0x88a8, ETHERTYPE_IPV4, rng.int(0x10000)]));
      return out;
    },
  ],
  [
    'field',
    (rng, f) => {
      // One protocol field set to a value that trips a specific check: VLAN ID 4095, next header
      // 44 (fragment), a multicast source or target, the unspecified source of DAD, type, code,
      // flags, hop limit, option type.
      const out = f.slice();
      const l3 = l3Offset(out);
      const choice = rng.int(8);
      if (choice === 0 && l3 === 18) {
        out[14] = (out[14]! & 0xf0) | 0x0f;
        out[15] = 0xff;
      } else if (choice === 1 && out.length > l3 + 24) out.fill(0, l3 + 8, l3 + 24);
      else {
        const at = l3 + rng.pick([6, 7, 8, 24, 40, 41, 44, 48, 64, 65]);
        if (at < out.length) out[at] = rng.pick([...interesting, 0x2c, 0x3b, 0x3c, 0x87, 0x88, 0x0e]);
      }
      return out;
    },
  ],
  [
    'append',
    (rng, f) => {
      const tail = rng.bytes(1 + rng.int(32));
      const out = new Uint8Array(f.length + tail.length);
      out.set(f);
      out.set(tail, f.length);
      return out;
    },
  ],
  [
    'random_region',
    (rng, f) => {
      const out = f.slice();
      const start = rng.int(out.length);
      const end = Math.min(out.length, start + 1 + rng.int(16));
      for (let i = start; i < end; i++) out[i] = rng.next() & 0xff;
      return out;
    },
  ],
];

/** Rewrites the ICMPv6 checksum of a mutated frame so the checks behind it are reached. */
function repairChecksum(frame: Uint8Array): void {
  const l3 = l3Offset(frame);
  if (frame.length < l3 + 44 || frame[l3 + 6] !== NEXT_HEADER_ICMPV6 || frame[l3]! >>> 4 !== 6) return;
  const end = Math.min(frame.length, l3 + 40 + readU16(frame, l3 + 4));
  if (end < l3 + 44) return;
  const message = frame.subarray(l3 + 40, end);
  writeU16(frame, l3 + 42, icmpv6Checksum(ipv6FromBytes(frame, l3 + 8), ipv6FromBytes(frame, l3 + 24), message));
}

// ---- the run -----------------------------------------------------------------------------------

const hex = (bytes: Uint8Array): string => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Re-encodes an accepted frame and says what differs, or undefined when it round-trips. */
function roundTripError(bytes: Uint8Array, frame: Frame): string | undefined {
  const { ethernet } = frame;
  const again = encodeEthernet(ethernet, ethernet.payload);
  const prefix = again.subarray(0, Math.min(again.length, bytes.length));
  if (!sameBytes(prefix, bytes.subarray(0, prefix.length)) || again.subarray(prefix.length).some((b) => b !== 0)) {
    return 'ethernet re-encoding differs';
  }
  switch (frame.kind) {
    case 'arp':
      return sameBytes(encodeARP(frame.arp), ethernet.payload.subarray(0, 28)) ? undefined : 'ARP re-encoding differs';
    case 'ns': {
      const { src, dst } = frame.ipv6;
      const link = { src: ethernet.src, dst: ethernet.dst, vlan: ethernet.vlan };
      const back = decodeFrame(encodeNDPFrame(link, src, dst, encodeNeighborSolicitation(frame.ns, src, dst)));
      if (!back.ok || back.frame.kind !== 'ns') return `NS re-decoding failed: ${back.ok ? back.frame.kind : back.reason}`;
      const a = frame.ns;
      const b = back.frame.ns;
      const macs = a.sourceLinkLayer === undefined ? b.sourceLinkLayer === undefined : b.sourceLinkLayer !== undefined && macEqual(a.sourceLinkLayer, b.sourceLinkLayer);
      return a.target.value === b.target.value && macs ? undefined : 'NS fields differ after re-encoding';
    }
    case 'na': {
      const { src, dst } = frame.ipv6;
      const link = { src: ethernet.src, dst: ethernet.dst, vlan: ethernet.vlan };
      const back = decodeFrame(encodeNDPFrame(link, src, dst, encodeNeighborAdvertisement(frame.na, src, dst)));
      if (!back.ok || back.frame.kind !== 'na') return `NA re-decoding failed: ${back.ok ? back.frame.kind : back.reason}`;
      const a = frame.na;
      const b = back.frame.na;
      const macs = a.targetLinkLayer === undefined ? b.targetLinkLayer === undefined : b.targetLinkLayer !== undefined && macEqual(a.targetLinkLayer, b.targetLinkLayer);
      const same = a.target.value === b.target.value && a.router === b.router && a.solicited === b.solicited && a.override === b.override;
      return same && macs ? undefined : 'NA fields differ after re-encoding';
    }
    case 'other':
      return undefined;
  }
}

/** The outcome key of one decodeFrame result, or an error when the result breaks the contract. */
function outcomeOf(result: ReturnType<typeof decodeFrame>): { key: string; error?: string } {
  if (!result.ok) {
    if (!isDropReason(result.reason)) return { key: 'unknown', error: `unknown reason ${String(result.reason)}` };
    if (dropKind(result.reason) !== 'malformed') return { key: `drop:${result.reason}`, error: 'a not_ours reason reported as a drop' };
    return { key: `drop:${result.reason}` };
  }
  if (result.frame.kind === 'other') {
    const { reason } = result.frame;
    if (!isDropReason(reason) || dropKind(reason) !== 'not_ours') return { key: `other:${reason}`, error: 'other frame with a malformed reason' };
    return { key: `other:${reason}` };
  }
  return { key: result.frame.kind };
}

export interface FuzzCase {
  /** `random`, `valid:<kind>` or `mutated:<kind>:<first mutation>[+]`. */
  readonly generator: string;
  readonly bytes: Uint8Array;
}

function nextCase(rng: Rng): FuzzCase {
  const roll = rng.int(100);
  if (roll < 10) return { generator: 'random', bytes: rng.bytes(rng.int(128)) };
  const [base, make] = rng.pick(validGenerators);
  if (roll < 25) return { generator: `valid:${base}`, bytes: make(rng) };
  let bytes = make(rng);
  const names: string[] = [];
  for (let n = 1 + (rng.chance(0.3) ? rng.int(3) : 0); n > 0; n--) {
    const [name, mutate] = rng.pick(mutations);
    names.push(name);
    bytes = mutate(rng, bytes);
  }
  if (rng.chance(0.5)) repairChecksum(bytes);
  return { generator: `mutated:${base}:${names[0]}${names.length > 1 ? '+' : ''}`, bytes };
}

/** `count` cases from `seed`: the same seed always gives the same frames. */
export function fuzzCorpus(count: number, seed = 1): FuzzCase[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => nextCase(rng));
}

/** Runs `frames` decodes; the report's failureCount is zero when the decoders keep their contract. */
export function fuzzFrames(options: FuzzOptions): FuzzReport {
  const rng = new Rng(options.seed ?? 1);
  const roundTrip = options.roundTrip ?? true;
  const keep = options.samples ?? 10;
  const outcomes: Record<string, number> = {};
  const generators: Record<string, number> = {};
  const failures: FuzzFailure[] = [];
  let failureCount = 0;
  const fail = (failure: FuzzFailure): void => {
    failureCount++;
    if (failures.length < keep) failures.push(failure);
  };

  for (let i = 0; i < options.frames; i++) {
    if (options.onProgress !== undefined && i > 0 && (i & 0xffff) === 0) options.onProgress(i);
    const { generator, bytes } = nextCase(rng);
    generators[generator] = (generators[generator] ?? 0) + 1;
    let result: ReturnType<typeof decodeFrame>;
    try {
      result = decodeFrame(bytes);
    } catch (e) {
      outcomes.exception = (outcomes.exception ?? 0) + 1;
      fail({ kind: 'exception', generator, hex: hex(bytes), detail: e instanceof Error ? (e.stack ?? e.message) : String(e) });
      continue;
    }
    const { key, error } = outcomeOf(result);
    outcomes[key] = (outcomes[key] ?? 0) + 1;
    if (error !== undefined) fail({ kind: 'unknown_reason', generator, hex: hex(bytes), detail: error });
    if (roundTrip && result.ok) {
      let mismatch: string | undefined;
      try {
        mismatch = roundTripError(bytes, result.frame);
      } catch (e) {
        mismatch = `re-encoding threw: ${e instanceof Error ? e.message : String(e)}`;
      }
      if (mismatch !== undefined) fail({ kind: 'round_trip', generator, hex: hex(bytes), detail: mismatch });
    }
  }
  return { frames: options.frames, outcomes, generators, failureCount, failures };
}
