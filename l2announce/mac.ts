// IEEE 802 MAC addresses as 6-octet arrays: the wire form, so encoding is a copy.

/** Exactly 6 octets. Decoders return fresh copies, never views into a receive buffer. */
export type MAC = Uint8Array;

export const MAC_LENGTH = 6;

const macText = /^([0-9a-f]{2})([:-])([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})$/i;

/** Parses `02:00:00:00:00:01` (or with `-`, any case); undefined when it is not a MAC address. */
export function parseMAC(text: string): MAC | undefined {
  if (typeof text !== 'string') return undefined;
  const m = macText.exec(text);
  if (m === null) return undefined;
  return Uint8Array.from([m[1], m[3], m[4], m[5], m[6], m[7]], (h) => parseInt(h!, 16));
}

/** Canonical text: lower case, colon separated (the form `ip link` prints). */
export function formatMAC(mac: MAC): string {
  let out = '';
  for (let i = 0; i < MAC_LENGTH; i++) out += (i === 0 ? '' : ':') + (mac[i] ?? 0).toString(16).padStart(2, '0');
  return out;
}

export const isMAC = (value: unknown): value is MAC => value instanceof Uint8Array && value.length === MAC_LENGTH;

export function macEqual(a: MAC, b: MAC): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** ff:ff:ff:ff:ff:ff, a fresh array each call (typed arrays cannot be frozen). */
export const broadcastMAC = (): MAC => new Uint8Array(MAC_LENGTH).fill(0xff);
export const zeroMAC = (): MAC => new Uint8Array(MAC_LENGTH);

/** The I/G bit, the least significant bit of the first octet, marks group addresses (IEEE 802-2014 §8.2). */
export const isMulticastMAC = (mac: MAC): boolean => ((mac[0] ?? 0) & 1) === 1;
export const isBroadcastMAC = (mac: MAC): boolean => mac.length === MAC_LENGTH && mac.every((b) => b === 0xff);

/** Throws on a value that is not 6 octets: a caller bug, not bad input from the wire. */
export function assertMAC(mac: MAC, what: string): void {
  if (!isMAC(mac)) throw new RangeError(`${what} must be a 6-octet MAC address`);
}
