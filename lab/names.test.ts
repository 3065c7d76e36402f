import { describe, expect, it } from 'vitest';
import {
  checkHostName, checkInterfaceName, checkProcessName, isRunId, namespaceName, newRunId, nextInterfaceName, runIdOfNamespace, switchNamespace,
} from './names.js';

describe('run ids and namespace names', () => {
  it('makes bl-<6 hex> from three random bytes', () => {
    const id = newRunId(() => Uint8Array.from([0x0a, 0xbc, 0xff]));
    expect(id).toBe('bl-0abcff');
    expect(isRunId(id)).toBe(true);
    expect(() => newRunId(() => new Uint8Array(2))).toThrow(/3 random bytes/);
  });

  it('prefixes every namespace with the run id, and finds the run id back', () => {
    expect(namespaceName('bl-0abcff', 'node1')).toBe('bl-0abcff-node1');
    expect(switchNamespace('bl-0abcff')).toBe('bl-0abcff-switch');
    expect(runIdOfNamespace('bl-0abcff-node1')).toBe('bl-0abcff');
    expect(runIdOfNamespace('blue-node1')).toBeUndefined();
    expect(runIdOfNamespace('bl-0abcff')).toBeUndefined();
    expect(() => namespaceName('lab-1', 'x')).toThrow(/not a lab run id/);
  });

  it('accepts plain host names and refuses others, and the reserved switch name', () => {
    for (const ok of ['a', 'node1', 'router-a', 'x'.repeat(32)]) expect(() => checkHostName(ok)).not.toThrow();
    for (const bad of ['', 'Node', 'a_b', '-a', 'a-', 'a b', 'x'.repeat(33), '../etc']) expect(() => checkHostName(bad)).toThrow(/host name/);
    expect(() => checkHostName('switch')).toThrow(/reserved/);
  });
});

describe('interface names', () => {
  it('holds to the kernel limit of 15 characters', () => {
    expect(() => checkInterfaceName('abcdefghijklmno')).not.toThrow();
    expect(() => checkInterfaceName('abcdefghijklmnop')).toThrow(/1-15 characters/);
    expect(() => checkInterfaceName('')).toThrow(/1-15 characters/);
  });

  it('refuses "/", ":", spaces and a leading dot', () => {
    for (const bad of ['a/b', 'eth0:1', 'a b', '.x', '..']) expect(() => checkInterfaceName(bad)).toThrow(/may hold only/);
    for (const ok of ['eth0', 'br-lan', 'v.100', 'ens3_x']) expect(() => checkInterfaceName(ok)).not.toThrow();
  });

  it('picks the first free eth<n>', () => {
    expect(nextInterfaceName(new Set(['lo']))).toBe('eth0');
    expect(nextInterfaceName(new Set(['eth0', 'eth2']))).toBe('eth1');
    expect(() => nextInterfaceName(new Set(['eth0', 'eth1']), 'eth', 2)).toThrow(/no free/);
  });
});

describe('process names', () => {
  it('are safe file names', () => {
    expect(() => checkProcessName('bird.r1')).not.toThrow();
    for (const bad of ['', '../x', 'a/b', '.hidden', 'x'.repeat(65)]) expect(() => checkProcessName(bad)).toThrow(/process name/);
  });
});
