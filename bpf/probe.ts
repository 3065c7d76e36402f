// Can this kernel run Beacon's datapath? The probe gathers facts (filesystems, program types,
// map types, helpers, asked of the kernel through libbpf's probes) and a pure decision turns them
// into "ok" or one line naming the first missing feature and what brings it.

import { readFileSync } from 'node:fs';
import { Errno, Helper, MapType, ProgType, errnoName, lib } from './libbpf.js';

/** A probe's answer: supported, not supported, or the errno that stopped the probe itself. */
export type ProbeOutcome = boolean | { readonly errno: number };

export interface KernelProbes {
  /** Filesystem types the kernel knows (/proc/filesystems). */
  readonly bpffs: boolean;
  readonly cgroup2: boolean;
  readonly progTypes: Readonly<Record<keyof typeof REQUIRED_PROG_TYPES, ProbeOutcome>>;
  readonly mapTypes: Readonly<Record<keyof typeof REQUIRED_MAP_TYPES, ProbeOutcome>>;
  /** Helpers as seen by a cgroup/sock_addr program. */
  readonly helpers: Readonly<Record<keyof typeof REQUIRED_HELPERS, ProbeOutcome>>;
}

export type KernelSupport = { readonly ok: true; readonly features: readonly string[] } | { readonly ok: false; readonly reason: string };

// What brings each feature: kernel version and config (the versions are those of mainline Linux).
const REQUIRED_PROG_TYPES = {
  CGROUP_SOCK_ADDR: 'Linux 4.17 with CONFIG_CGROUP_BPF',
  SCHED_CLS: 'CONFIG_NET_CLS_BPF and CONFIG_NET_SCH_INGRESS (clsact)',
} as const;
const REQUIRED_MAP_TYPES = {
  HASH: 'CONFIG_BPF_SYSCALL',
  ARRAY: 'CONFIG_BPF_SYSCALL',
  PERCPU_ARRAY: 'Linux 4.6',
  LRU_HASH: 'Linux 4.10',
  HASH_OF_MAPS: 'Linux 4.12',
} as const;
const REQUIRED_HELPERS = {
  get_socket_cookie: 'Linux 5.7 (socket cookies in sock_addr programs)',
  get_netns_cookie: 'Linux 5.7',
  get_prandom_u32: 'Linux 4.1',
  ktime_get_ns: 'Linux 4.1',
  set_retval: 'Linux 5.18',
} as const;

function outcomeProblem(what: string, outcome: ProbeOutcome, brings: string): string | undefined {
  if (outcome === true) return undefined;
  if (outcome === false) return `${what} is not supported by this kernel: needs ${brings}`;
  const hint = outcome.errno === Errno.EPERM ? ' (run as root, or with CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN)' : '';
  return `probing ${what} failed: ${errnoName(outcome.errno)}${hint}`;
}

/** The first missing feature as one line, or the list of features found. */
export function decideKernelSupport(p: KernelProbes): KernelSupport {
  const checks: [string, ProbeOutcome, string][] = [
    ['the bpf filesystem', p.bpffs, 'CONFIG_BPF_SYSCALL'],
    ['cgroup v2', p.cgroup2, 'CONFIG_CGROUPS (Linux 4.5)'],
    ...Object.entries(REQUIRED_PROG_TYPES).map(([n, brings]): [string, ProbeOutcome, string] => [`program type ${n}`, p.progTypes[n as keyof typeof REQUIRED_PROG_TYPES], brings]),
    ...Object.entries(REQUIRED_MAP_TYPES).map(([n, brings]): [string, ProbeOutcome, string] => [`map type ${n}`, p.mapTypes[n as keyof typeof REQUIRED_MAP_TYPES], brings]),
    ...Object.entries(REQUIRED_HELPERS).map(([n, brings]): [string, ProbeOutcome, string] => [`helper bpf_${n} in cgroup/sock_addr programs`, p.helpers[n as keyof typeof REQUIRED_HELPERS], brings]),
  ];
  for (const [what, outcome, brings] of checks) {
    const problem = outcomeProblem(what, outcome, brings);
    if (problem) return { ok: false, reason: problem };
  }
  return { ok: true, features: checks.map(([what]) => what) };
}

const asOutcome = (r: number): ProbeOutcome => (r < 0 ? { errno: -r } : r > 0);
const mapRecord = <K extends string>(names: Record<K, string>, probe: (name: K) => number): Record<K, ProbeOutcome> =>
  Object.fromEntries(Object.keys(names).map((n) => [n, asOutcome(probe(n as K))])) as Record<K, ProbeOutcome>;

/** Asks the running kernel (loads tiny probe programs and maps; needs root or CAP_BPF). */
export function probeKernelFeatures(): KernelProbes {
  const filesystems = readFileSync('/proc/filesystems', 'utf8').split('\n').map((l) => l.trim().split(/\s+/).pop());
  const l = lib();
  return {
    bpffs: filesystems.includes('bpf'),
    cgroup2: filesystems.includes('cgroup2'),
    progTypes: mapRecord(REQUIRED_PROG_TYPES, (n) => l.libbpf_probe_bpf_prog_type(ProgType[n], null)),
    mapTypes: mapRecord(REQUIRED_MAP_TYPES, (n) => l.libbpf_probe_bpf_map_type(MapType[n], null)),
    helpers: mapRecord(REQUIRED_HELPERS, (n) => l.libbpf_probe_bpf_helper(ProgType.CGROUP_SOCK_ADDR, Helper[n], null)),
  };
}

/** Whether this kernel can run the datapath, with the reason when it cannot. */
export function probeKernel(): KernelSupport {
  let probes: KernelProbes;
  try {
    probes = probeKernelFeatures();
  } catch (e) {
    return { ok: false, reason: `cannot probe BPF support: ${(e as Error).message.split('\n')[0]}` };
  }
  return decideKernelSupport(probes);
}
