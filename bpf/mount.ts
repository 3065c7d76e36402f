// The filesystems the datapath lives on: a bpf filesystem for pinned maps and links (so they
// outlive the agent) and cgroup v2 for the socket hooks. Pure parsing of /proc/mounts, and two
// small effects that mount what is missing.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export interface MountEntry {
  readonly source: string;
  readonly target: string;
  readonly fstype: string;
  readonly options: readonly string[];
}

/** fstab(5) escapes space, tab, newline and backslash in fields as octal (\040). */
const unescapeField = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));

/** Parses /proc/mounts (or /proc/self/mounts); malformed lines are skipped. */
export function parseMounts(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const [source, target, fstype, options] = line.trim().split(/\s+/);
    if (!source || !target || !fstype) continue;
    out.push({ source: unescapeField(source), target: unescapeField(target), fstype, options: (options ?? '').split(',').filter(Boolean) });
  }
  return out;
}

const within = (path: string, dir: string): boolean => dir === '/' || path === dir || path.startsWith(`${dir}/`);

/** The mount that holds `path`: the last-mounted among the deepest targets containing it. */
export function mountCovering(mounts: readonly MountEntry[], path: string): MountEntry | undefined {
  const abs = resolve(path);
  let best: MountEntry | undefined;
  for (const m of mounts) if (within(abs, m.target) && (!best || m.target.length >= best.target.length)) best = m;
  return best;
}

/** The cgroup v2 root in use: /sys/fs/cgroup when it is cgroup2, else the first cgroup2 mount. */
export function cgroup2Root(mounts: readonly MountEntry[]): string | undefined {
  const v2 = mounts.filter((m) => m.fstype === 'cgroup2');
  return (v2.find((m) => m.target === '/sys/fs/cgroup') ?? v2[0])?.target;
}

export const BPFFS_DEFAULT = '/sys/fs/bpf';
const readMounts = (): MountEntry[] => parseMounts(readFileSync('/proc/self/mounts', 'utf8'));

/**
 * Makes `root` a directory on a bpf filesystem, mounting bpffs at /sys/fs/bpf when `root` lies
 * there and nothing is mounted yet. Throws when `root` is on another filesystem (pins there fail).
 */
export function ensureBpffs(root: string): void {
  const abs = resolve(root);
  if (mountCovering(readMounts(), abs)?.fstype !== 'bpf' && within(abs, BPFFS_DEFAULT)) {
    execFileSync('mount', ['-t', 'bpf', 'bpf', BPFFS_DEFAULT], { stdio: 'pipe', timeout: 10_000 });
  }
  const covering = mountCovering(readMounts(), abs);
  if (covering?.fstype !== 'bpf') throw new Error(`${abs} is on ${covering?.fstype ?? 'no'} filesystem, not on a bpf filesystem (mount -t bpf bpf ${BPFFS_DEFAULT})`);
  mkdirSync(abs, { recursive: true, mode: 0o700 });
}

/** The cgroup v2 root in use, mounting cgroup2 at `path` when the host has none. */
export function ensureCgroup2(path = '/run/beacon/cgroupv2'): string {
  const existing = cgroup2Root(readMounts());
  if (existing) return existing;
  mkdirSync(path, { recursive: true });
  execFileSync('mount', ['-t', 'cgroup2', 'none', path], { stdio: 'pipe', timeout: 10_000 });
  return path;
}
