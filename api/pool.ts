// LoadBalancerIPPool: the schema, and the semantic checks a schema cannot express (CIDR syntax,
// start <= stop, one family per block), turning a pool's blocks into usable address ranges.
import { Type, type Static } from '@sinclair/typebox';
import { apiVersion, Condition, labelSelector, ObjectMeta } from './meta.js';
import { formatIP, parseCIDR, parseIP, rangeSize, type IPRange } from './ip.js';

export const poolKind = 'LoadBalancerIPPool';

export const PoolBlock = Type.Object(
  {
    cidr: Type.Optional(Type.String({ description: 'A CIDR such as 198.18.0.0/24 or 2001:db8::/64; host bits must be zero.' })),
    start: Type.Optional(Type.String({ description: 'First address of a range (instead of cidr).' })),
    stop: Type.Optional(Type.String({ description: 'Last address of the range, of the same family as start; absent means the single address start.' })),
  },
  { additionalProperties: false, description: 'Either {cidr} or {start, stop}.' },
);
export type PoolBlock = Static<typeof PoolBlock>;

export const PoolSpec = Type.Object(
  {
    blocks: Type.Array(PoolBlock, { description: 'Address blocks, IPv4 and IPv6.' }),
    serviceSelector: Type.Optional(
      labelSelector(
        'Which services may take addresses from this pool; absent selects every service. Services also carry the labels io.kubernetes.service.namespace and io.kubernetes.service.name.',
      ),
    ),
    disabled: Type.Optional(Type.Boolean({ description: 'No new allocations; existing ones stay. Default: false.' })),
    allowFirstLastIPs: Type.Optional(
      Type.Union([Type.Literal('Yes'), Type.Literal('No')], {
        description: 'With No the first and last address of each CIDR block larger than /31 (/127) are not used; start/stop ranges are always used whole. Default: No.',
      }),
    ),
    priority: Type.Optional(
      Type.Integer({
        description: 'Lower is preferred. Pools without a priority come after those with one; ties are broken by name.',
      }),
    ),
  },
  { additionalProperties: false, description: 'Address blocks LB-IPAM assigns LoadBalancer IPs from, and which services may use them.' },
);
export type PoolSpec = Static<typeof PoolSpec>;

export const PoolStatus = Type.Object(
  {
    conditions: Type.Optional(
      Type.Array(Condition, {
        description: 'Written by the operator: beacon.io/IPsTotal, beacon.io/IPsUsed, beacon.io/IPsAvailable (the count is the message), beacon.io/PoolConflict, beacon.io/InvalidSpec.',
      }),
    ),
  },
  { additionalProperties: false },
);
export type PoolStatus = Static<typeof PoolStatus>;

export const LoadBalancerIPPool = Type.Object(
  {
    apiVersion: Type.Literal(apiVersion),
    kind: Type.Literal(poolKind),
    metadata: ObjectMeta,
    spec: PoolSpec,
    status: Type.Optional(PoolStatus),
  },
  { additionalProperties: false },
);
export type LoadBalancerIPPool = Static<typeof LoadBalancerIPPool>;

/** One block of a pool as the allocator uses it. */
export interface PoolRange {
  /** The block as written, for messages. */
  readonly block: string;
  /** The usable addresses (first and last removed where allowFirstLastIPs is No). */
  readonly usable: IPRange;
  /** The whole block, for overlap detection. */
  readonly whole: IPRange;
}

export function blockText(block: PoolBlock): string {
  if (block.cidr !== undefined) return block.cidr;
  return block.stop !== undefined ? `${block.start ?? ''}-${block.stop}` : (block.start ?? '');
}

/** Turns one block into its range, or a reason it cannot be used. */
export function parseBlock(block: PoolBlock, allowFirstLast: boolean): { ok: true; value: PoolRange } | { ok: false; error: string } {
  const text = blockText(block);
  if (block.cidr !== undefined) {
    if (block.start !== undefined || block.stop !== undefined) {
      return { ok: false, error: `block "${text}": give either cidr or start/stop, not both` };
    }
    const parsed = parseCIDR(block.cidr);
    if (!parsed.ok) return parsed;
    const { range, prefix } = parsed.value;
    // Point-to-point and host prefixes have no network/broadcast address to skip (RFC 3021).
    const trim = !allowFirstLast && rangeSize(range) > 2n && prefix < (range.family === 4 ? 31 : 127);
    const usable = trim ? { ...range, first: range.first + 1n, last: range.last - 1n } : range;
    return { ok: true, value: { block: text, usable, whole: range } };
  }
  if (block.start === undefined) return { ok: false, error: 'block needs cidr or start' };
  const start = parseIP(block.start);
  if (!start) return { ok: false, error: `block "${text}": invalid start address "${block.start}"` };
  const stop = block.stop === undefined ? start : parseIP(block.stop);
  if (!stop) return { ok: false, error: `block "${text}": invalid stop address "${block.stop ?? ''}"` };
  if (start.family !== stop.family) return { ok: false, error: `block "${text}": start and stop are of different families` };
  if (start.value > stop.value) {
    return { ok: false, error: `block "${text}": start ${formatIP(start)} is after stop ${formatIP(stop)}` };
  }
  const range: IPRange = { family: start.family, first: start.value, last: stop.value };
  return { ok: true, value: { block: text, usable: range, whole: range } };
}
