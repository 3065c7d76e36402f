// The only addresses a lab may configure: 198.18.0.0/15 (RFC 2544, benchmarking) and
// 2001:db8::/32 (RFC 3849, documentation), plus loopback. Real networks never use these, so a
// lab that leaks a packet or a route still cannot disturb anything real.
import { BlockList, isIPv4, isIPv6 } from 'node:net';

export type LabFamily = 4 | 6;

interface Range {
  readonly family: LabFamily;
  readonly network: string;
  readonly prefix: number;
}

export const LAB_RANGES: readonly Range[] = [
  { family: 4, network: '198.18.0.0', prefix: 15 },
  { family: 6, network: '2001:db8::', prefix: 32 },
  { family: 4, network: '127.0.0.0', prefix: 8 },
  { family: 6, network: '::1', prefix: 128 },
];

const describeRanges = 'allowed: 198.18.0.0/15, 2001:db8::/32 and loopback (127.0.0.0/8, ::1)';

export class LabAddressError extends Error {
  override name = 'LabAddressError';
}

export interface LabCidr {
  readonly family: LabFamily;
  readonly address: string;
  readonly prefix: number;
  /** `address/prefix`, as given. */
  readonly text: string;
}

function familyOf(address: string): LabFamily | undefined {
  // Zones (`fe80::1%eth0`) are refused: a lab address never needs one.
  if (address.includes('%')) return undefined;
  if (isIPv4(address)) return 4;
  if (isIPv6(address)) return 6;
  return undefined;
}

function rangeOf(family: LabFamily, address: string): Range | undefined {
  return LAB_RANGES.find((r) => {
    if (r.family !== family) return false;
    const list = new BlockList();
    list.addSubnet(r.network, r.prefix, family === 4 ? 'ipv4' : 'ipv6');
    return list.check(address, family === 4 ? 'ipv4' : 'ipv6');
  });
}

/** A single address (a gateway, a ping target): must lie in a lab range. */
export function checkLabIp(address: string): LabFamily {
  const family = familyOf(address);
  if (family === undefined) throw new LabAddressError(`"${address}" is not an IPv4 or IPv6 address`);
  if (!rangeOf(family, address)) throw new LabAddressError(`address ${address} is outside the lab ranges (${describeRanges})`);
  return family;
}

/**
 * An interface address or route destination `address/prefix`. The whole subnet must lie in a lab
 * range: 198.18.0.1/8 would put an on-link route over real networks, so it is refused too.
 */
export function parseLabCidr(text: string): LabCidr {
  const slash = text.indexOf('/');
  if (slash < 0) throw new LabAddressError(`"${text}" needs a prefix length (e.g. 198.18.0.1/24 or 2001:db8::1/64)`);
  const address = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  const family = familyOf(address);
  if (family === undefined) throw new LabAddressError(`"${text}": "${address}" is not an IPv4 or IPv6 address`);
  const bits = family === 4 ? 32 : 128;
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > bits) {
    throw new LabAddressError(`"${text}": prefix length must be 0-${bits}`);
  }
  const prefix = Number(prefixText);
  const range = rangeOf(family, address);
  if (!range) throw new LabAddressError(`address ${text} is outside the lab ranges (${describeRanges})`);
  if (prefix < range.prefix) {
    throw new LabAddressError(`subnet ${text} reaches outside ${range.network}/${range.prefix}; use a prefix of at least /${range.prefix}`);
  }
  return { family, address, prefix, text };
}
