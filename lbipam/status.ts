// Results as Kubernetes status: the Service's ingress list and IPAMRequestSatisfied condition, and
// the pool's count and conflict conditions. lastTransitionTime moves only when a status flips.
import { ipamConditionType, type Condition, type ServiceStatus } from '../api/index.js';
import type { PoolResult, ServiceResult } from './allocator.js';

export const poolConditionTypes = {
  total: 'beacon.io/IPsTotal',
  available: 'beacon.io/IPsAvailable',
  used: 'beacon.io/IPsUsed',
  conflict: 'beacon.io/PoolConflict',
  invalid: 'beacon.io/InvalidSpec',
} as const;

/** Merges freshly computed conditions into the previous list, keeping others' conditions. */
export function mergeConditions(previous: readonly Condition[] | undefined, fresh: readonly Condition[], now: string): Condition[] {
  const out = (previous ?? []).filter((c) => !fresh.some((f) => f.type === c.type));
  for (const f of fresh) {
    const old = previous?.find((c) => c.type === f.type);
    out.push({ ...f, lastTransitionTime: old && old.status === f.status && old.lastTransitionTime ? old.lastTransitionTime : now });
  }
  return out.sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
}

export function serviceCondition(result: ServiceResult, generation: number | undefined): Condition {
  return {
    type: ipamConditionType,
    status: result.satisfied ? 'True' : 'False',
    ...(generation === undefined ? {} : { observedGeneration: generation }),
    reason: result.reason,
    message: result.message,
  };
}

/** The status LB-IPAM writes for a service; `result` undefined means the service is no longer managed. */
export function serviceStatus(previous: ServiceStatus | undefined, result: ServiceResult | undefined, generation: number | undefined, now: string): ServiceStatus {
  const others = (previous?.conditions ?? []).filter((c) => c.type !== ipamConditionType);
  if (!result) return { ...previous, loadBalancer: {}, conditions: others };
  return {
    ...previous,
    loadBalancer: { ingress: result.ips.map((ip) => ({ ip })) },
    conditions: mergeConditions(previous?.conditions, [serviceCondition(result, generation)], now),
  };
}

export function poolConditions(pool: PoolResult, generation: number | undefined): Condition[] {
  const gen = generation === undefined ? {} : { observedGeneration: generation };
  const count = (type: string, n: bigint): Condition => ({ type, status: 'True', ...gen, reason: 'Counted', message: n.toString() });
  return [
    count(poolConditionTypes.total, pool.total),
    count(poolConditionTypes.available, pool.available),
    count(poolConditionTypes.used, pool.used),
    {
      type: poolConditionTypes.conflict,
      status: pool.conflicting ? 'True' : 'False',
      ...gen,
      reason: pool.conflicting ? 'OverlappingBlocks' : 'NoConflict',
      message: pool.conflicting ? pool.message : 'no block overlaps another pool',
    },
    {
      type: poolConditionTypes.invalid,
      status: pool.invalid ? 'True' : 'False',
      ...gen,
      reason: pool.invalid ? 'InvalidSpec' : 'Valid',
      message: pool.invalid ?? 'spec is valid',
    },
  ];
}
