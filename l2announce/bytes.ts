// Big-endian field access on Uint8Array. Plain index arithmetic rather than a DataView per call:
// creating a DataView costs more than decoding a whole ARP packet on Node 20.

export const readU16 = (bytes: Uint8Array, at: number): number => (bytes[at]! << 8) | bytes[at + 1]!;

export const readU32 = (bytes: Uint8Array, at: number): number =>
  bytes[at]! * 0x100_0000 + ((bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!);

export function writeU16(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 8;
  bytes[at + 1] = value;
}

export function writeU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = value >>> 16;
  bytes[at + 2] = value >>> 8;
  bytes[at + 3] = value;
}

// One 16-octet scratch area for 128-bit values: callers are synchronous, so sharing is safe.
const scratch = new Uint8Array(16);
const scratchView = new DataView(scratch.buffer);

export function readU128(bytes: Uint8Array, at: number): bigint {
  for (let i = 0; i < 16; i++) scratch[i] = bytes[at + i]!;
  return (scratchView.getBigUint64(0) << 64n) | scratchView.getBigUint64(8);
}

export function writeU128(bytes: Uint8Array, at: number, value: bigint): void {
  scratchView.setBigUint64(0, value >> 64n);
  scratchView.setBigUint64(8, BigInt.asUintN(64, value));
  bytes.set(scratch, at);
}
