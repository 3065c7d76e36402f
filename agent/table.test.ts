import { describe, expect, it } from 'vitest';
import { renderTable } from './table.js';

describe('renderTable', () => {
  it('aligns columns to the widest cell and leaves the last one unpadded', () => {
    expect(renderTable(['A', 'LONGER', 'MSG'], [['xyz', '1', 'first'], ['q', '22', '']])).toBe('A     LONGER   MSG\nxyz   1        first\nq     22\n');
  });
});
