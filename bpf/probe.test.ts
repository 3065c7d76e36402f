// The kernel-support decision from probe results (no root needed), and the real probe here.
import { describe, expect, it } from 'vitest';
import { Errno, decideKernelSupport, probeKernel, probeKernelFeatures, type KernelProbes } from './index.js';

const everything: KernelProbes = {
  bpffs: true,
  cgroup2: true,
  progTypes: { CGROUP_SOCK_ADDR: true, SCHED_CLS: true },
  mapTypes: { HASH: true, ARRAY: true, PERCPU_ARRAY: true, LRU_HASH: true, HASH_OF_MAPS: true },
  helpers: { get_socket_cookie: true, get_netns_cookie: true, get_prandom_u32: true, ktime_get_ns: true, set_retval: true },
};

describe('decideKernelSupport', () => {
  it('is ok with everything present and lists what it checked', () => {
    const d = decideKernelSupport(everything);
    expect(d.ok).toBe(true);
    expect(d.ok && d.features).toContain('helper bpf_set_retval in cgroup/sock_addr programs');
  });

  it.each([
    [{ bpffs: false }, 'the bpf filesystem is not supported by this kernel: needs CONFIG_BPF_SYSCALL'],
    [{ cgroup2: false }, 'cgroup v2 is not supported by this kernel: needs CONFIG_CGROUPS (Linux 4.5)'],
    [{ progTypes: { ...everything.progTypes, SCHED_CLS: false } }, 'program type SCHED_CLS is not supported by this kernel: needs CONFIG_NET_CLS_BPF and CONFIG_NET_SCH_INGRESS (clsact)'],
    [{ mapTypes: { ...everything.mapTypes, HASH_OF_MAPS: false } }, 'map type HASH_OF_MAPS is not supported by this kernel: needs Linux 4.12'],
    [{ helpers: { ...everything.helpers, set_retval: false } }, 'helper bpf_set_retval in cgroup/sock_addr programs is not supported by this kernel: needs Linux 5.18'],
  ] as [Partial<KernelProbes>, string][])('names the missing feature and what brings it: %o', (missing, reason) => {
    expect(decideKernelSupport({ ...everything, ...missing })).toEqual({ ok: false, reason });
  });

  it('reports the first missing feature only, and a probe that could not run with its errno', () => {
    const d = decideKernelSupport({ ...everything, cgroup2: false, progTypes: { CGROUP_SOCK_ADDR: { errno: Errno.EPERM }, SCHED_CLS: false } });
    expect(d).toEqual({ ok: false, reason: 'cgroup v2 is not supported by this kernel: needs CONFIG_CGROUPS (Linux 4.5)' });
    const perm = decideKernelSupport({ ...everything, progTypes: { CGROUP_SOCK_ADDR: { errno: Errno.EPERM }, SCHED_CLS: true } });
    expect(perm.ok === false && perm.reason).toMatch(/^probing program type CGROUP_SOCK_ADDR failed: EPERM \(run as root/);
  });
});

describe('probeKernel on this kernel (root)', () => {
  it('finds every feature the datapath needs', () => {
    expect(probeKernelFeatures()).toEqual(everything);
    expect(probeKernel()).toMatchObject({ ok: true });
  });
});
