// /proc/mounts parsing and the decisions on it (no root needed), then the effects on this host.
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cgroup2Root, ensureBpffs, ensureCgroup2, mountCovering, parseMounts } from './index.js';

const HYBRID = `sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
/dev/sda1 /mnt/with\\040space ext4 rw 0 0
`;
const UNIFIED = `cgroup2 /run/beacon/cgroupv2 cgroup2 rw 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0
bpf /sys/fs/bpf bpf rw,nosuid,nodev,noexec,relatime,mode=700 0 0
none /sys/fs/bpf tmpfs rw 0 0
`;

describe('mount table parsing', () => {
  it('reads fields and decodes octal escapes', () => {
    const mounts = parseMounts(HYBRID);
    expect(mounts).toHaveLength(5);
    expect(mounts[3]).toEqual({ source: 'cgroup2', target: '/sys/fs/cgroup/unified', fstype: 'cgroup2', options: ['rw', 'relatime'] });
    expect(mounts[4]!.target).toBe('/mnt/with space');
    expect(parseMounts('garbage\n\n')).toEqual([]);
  });

  it('finds the cgroup v2 root: /sys/fs/cgroup when unified, else the hybrid mount, else none', () => {
    expect(cgroup2Root(parseMounts(UNIFIED))).toBe('/sys/fs/cgroup');
    expect(cgroup2Root(parseMounts(HYBRID))).toBe('/sys/fs/cgroup/unified');
    expect(cgroup2Root(parseMounts('tmpfs /sys/fs/cgroup tmpfs rw 0 0'))).toBeUndefined();
  });

  it('finds the mount holding a path: deepest target, the later of stacked mounts', () => {
    const mounts = parseMounts(`/dev/root / ext4 rw 0 0\n${HYBRID}${UNIFIED}`);
    expect(mountCovering(mounts, '/sys/fs/bpf/beacon/maps')?.fstype).toBe('tmpfs'); // stacked over the bpffs
    expect(mountCovering(parseMounts(`/dev/root / ext4 rw 0 0\n${HYBRID}bpf /sys/fs/bpf bpf rw 0 0`), '/sys/fs/bpf/beacon')?.fstype).toBe('bpf');
    expect(mountCovering(mounts, '/sys/fs/bpfx')?.target).toBe('/sys');
    expect(mountCovering(mounts, '/home')?.target).toBe('/');
    expect(mountCovering([], '/home')).toBeUndefined();
  });
});

describe('mounting on this host (root)', () => {
  it('ensureBpffs makes the directory on the bpf filesystem, and refuses a root elsewhere', () => {
    ensureBpffs('/sys/fs/bpf');
    const dir = `${mkdtempSync('/sys/fs/bpf/beacon-test-')}/nested/root`;
    try {
      ensureBpffs(dir);
      expect(statSync(dir).isDirectory()).toBe(true);
      expect(() => ensureBpffs('/tmp/beacon-not-bpffs')).toThrow('not on a bpf filesystem');
      expect(existsSync('/tmp/beacon-not-bpffs')).toBe(false);
    } finally {
      rmSync(dir.replace(/\/nested\/root$/, ''), { recursive: true, force: true });
    }
  });

  it('ensureCgroup2 returns the cgroup v2 root in use', () => {
    const root = ensureCgroup2();
    expect(existsSync(`${root}/cgroup.procs`)).toBe(true);
  });
});
