// Beacon's BPF layer: the build outputs' loader and typed handles on libbpf. Only bpf/ talks to libbpf.
export { BpfError, Errno, Helper, MapType, ProgType, UpdateFlags, errnoName, setLibbpfLogger } from './libbpf.js';
export type { LibbpfLevel } from './libbpf.js';
export { BpfMap } from './map.js';
export type { CreateMapOptions, MapInfo } from './map.js';
export { BpfObject, BpfProgram, attachCgroup, attachTc, builtObjectPath, detachPinnedLink, detachTc, ifindexOf, queryTc, testRun } from './object.js';
export type { CgroupAttachment, OpenOptions, TcDirection, TcFilter, TestRunOptions, TestRunResult } from './object.js';
export { withNetns } from './netns.js';
export { BPFFS_DEFAULT, cgroup2Root, ensureBpffs, ensureCgroup2, mountCovering, parseMounts } from './mount.js';
export type { MountEntry } from './mount.js';
export { decideKernelSupport, probeKernel, probeKernelFeatures } from './probe.js';
export type { KernelProbes, KernelSupport, ProbeOutcome } from './probe.js';
