// The dry run: pools and services in, the outcome the operator would write out. `beacon ipam plan`
// prints it; tests use it as the contract.
import type { LoadBalancerIPPool, Service } from '../api/index.js';
import { Allocator, type Reason } from './allocator.js';
import { poolInput, serviceInput } from './inputs.js';

export interface PlanService {
  namespace: string;
  name: string;
  ips: string[];
  satisfied: boolean;
  reason: Reason;
  message: string;
}

export interface PlanPool {
  name: string;
  /** Counts are decimal strings: IPv6 counts exceed 2^53. */
  total: string;
  used: string;
  available: string;
  conflicting: boolean;
  message: string;
}

export interface PlanError {
  file: string;
  line: number;
  kind?: string;
  name?: string;
  reason: string;
}

export interface Plan {
  services: PlanService[];
  pools: PlanPool[];
  /** Objects skipped because they could not be used; empty when all were. */
  errors: PlanError[];
}

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export function plan(pools: readonly LoadBalancerIPPool[], services: readonly Service[], errors: PlanError[] = []): Plan {
  const inputs = services.map(serviceInput);
  const allocator = new Allocator(pools.map(poolInput), inputs);
  const results = allocator.results();
  return {
    services: inputs
      .filter((s) => results.has(s.key))
      .sort((a, b) => byText(a.namespace, b.namespace) || byText(a.name, b.name))
      .map((s) => {
        const r = results.get(s.key)!;
        return { namespace: s.namespace, name: s.name, ips: [...r.ips], satisfied: r.satisfied, reason: r.reason, message: r.message };
      }),
    pools: allocator
      .pools()
      .sort((a, b) => byText(a.name, b.name))
      .map((p) => ({
        name: p.name,
        total: p.total.toString(),
        used: p.used.toString(),
        available: p.available.toString(),
        conflicting: p.conflicting,
        message: p.message,
      })),
    errors,
  };
}
