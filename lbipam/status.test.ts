import { describe, expect, it } from 'vitest';
import { mergeConditions, poolConditions, serviceStatus } from './status.js';

describe('status', () => {
  const ok = { ips: ['198.18.0.1'], satisfied: true, reason: 'satisfied' as const, message: 'assigned 198.18.0.1 from pool p' };

  it('writes ingress IPs and the IPAMRequestSatisfied condition, keeping other conditions', () => {
    const other = { type: 'example.com/Other', status: 'True' as const, reason: 'x', message: 'y', lastTransitionTime: 't0' };
    const st = serviceStatus({ conditions: [other] }, ok, 3, 't1');
    expect(st.loadBalancer).toEqual({ ingress: [{ ip: '198.18.0.1' }] });
    expect(st.conditions).toEqual([
      { type: 'beacon.io/IPAMRequestSatisfied', status: 'True', observedGeneration: 3, reason: 'satisfied', message: 'assigned 198.18.0.1 from pool p', lastTransitionTime: 't1' },
      other,
    ]);
    expect(serviceStatus(st, undefined, 4, 't2')).toEqual({ loadBalancer: {}, conditions: [other] });
  });

  it('moves lastTransitionTime only when the condition status flips', () => {
    const first = mergeConditions(undefined, [{ type: 'a', status: 'True', reason: 'r', message: 'm1' }], 't1');
    const same = mergeConditions(first, [{ type: 'a', status: 'True', reason: 'r', message: 'm2' }], 't2');
    expect(same[0]).toMatchObject({ message: 'm2', lastTransitionTime: 't1' });
    const flipped = mergeConditions(same, [{ type: 'a', status: 'False', reason: 'r', message: 'm3' }], 't3');
    expect(flipped[0]).toMatchObject({ status: 'False', lastTransitionTime: 't3' });
  });

  it('states pool counts as decimal strings and explains conflicts', () => {
    const conds = poolConditions({ name: 'p', total: 1n << 64n, used: 2n, available: (1n << 64n) - 2n, conflicting: true, invalid: undefined, message: 'conflicting: block x overlaps y' }, 7);
    expect(Object.fromEntries(conds.map((c) => [c.type, [c.status, c.message]]))).toEqual({
      'beacon.io/IPsTotal': ['True', '18446744073709551616'],
      'beacon.io/IPsAvailable': ['True', '18446744073709551614'],
      'beacon.io/IPsUsed': ['True', '2'],
      'beacon.io/PoolConflict': ['True', 'conflicting: block x overlaps y'],
      'beacon.io/InvalidSpec': ['False', 'spec is valid'],
    });
    expect(conds.every((c) => c.observedGeneration === 7)).toBe(true);
  });
});
