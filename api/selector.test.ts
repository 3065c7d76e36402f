import { describe, expect, it } from 'vitest';
import { parseSelector, selectorMatches } from './selector.js';

const sel = (s: Parameters<typeof parseSelector>[0]) => {
  const r = parseSelector(s);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};

describe('label selectors', () => {
  it('absent and empty selectors match everything', () => {
    expect(selectorMatches(sel(undefined), {})).toBe(true);
    expect(selectorMatches(sel({}), { a: 'b' })).toBe(true);
  });

  it('applies matchLabels and every operator', () => {
    const s = sel({
      matchLabels: { tier: 'web' },
      matchExpressions: [
        { key: 'env', operator: 'In', values: ['prod', 'staging'] },
        { key: 'team', operator: 'NotIn', values: ['legacy'] },
        { key: 'beacon.io/lb', operator: 'Exists' },
        { key: 'skip', operator: 'DoesNotExist' },
      ],
    });
    const base = { tier: 'web', env: 'prod', 'beacon.io/lb': '' };
    expect(selectorMatches(s, base)).toBe(true);
    expect(selectorMatches(s, { ...base, team: 'core' })).toBe(true);
    expect(selectorMatches(s, { ...base, team: 'legacy' })).toBe(false);
    expect(selectorMatches(s, { ...base, tier: 'db' })).toBe(false);
    expect(selectorMatches(s, { ...base, env: 'dev' })).toBe(false);
    expect(selectorMatches(s, { tier: 'web', env: 'prod' })).toBe(false);
    expect(selectorMatches(s, { ...base, skip: 'x' })).toBe(false);
  });

  it('gives equal selectors equal canonical text', () => {
    const a = sel({ matchLabels: { a: '1', b: '2' } });
    const b = sel({ matchExpressions: [{ key: 'b', operator: 'In', values: ['2'] }], matchLabels: { a: '1' } });
    expect(a.text).toBe(b.text);
  });

  it('rejects bad keys, values and operators with a reason', () => {
    const bad: [Parameters<typeof parseSelector>[0], RegExp][] = [
      [{ matchLabels: { 'bad key': 'x' } }, /label key "bad key"/],
      [{ matchLabels: { a: 'white space' } }, /label value/],
      [{ matchLabels: { 'UPPER.example/x': 'y' } }, /prefix must be a DNS subdomain/],
      [{ matchExpressions: [{ key: 'a', operator: 'Gt', values: ['1'] }] }, /unknown operator "Gt"/],
      [{ matchExpressions: [{ key: 'a', operator: 'In' }] }, /needs at least one value/],
      [{ matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] }, /takes no values/],
      [{ matchLabels: { ['a'.repeat(64)]: 'x' } }, /name must be 1-63/],
    ];
    for (const [s, why] of bad) {
      const r = parseSelector(s);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toMatch(why);
    }
  });
});
