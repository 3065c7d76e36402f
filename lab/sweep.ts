// Clean-up of a run from its state file, and the sweeper that applies it to runs whose owner is
// dead. A run whose owner is alive is never touched: it may be a test running beside us.
import { readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { judgeOwner, parseRunState, runIdOfStateFile, stateFilePath, type OwnerVerdict, type RunState } from './state.js';
import { listNamespacesSync, readProcStat, removeNamespaceSync, runCommandSync, type NamespaceRemoval } from './system.js';

export const DEFAULT_STATE_DIR = '/run/beacon-lab';
export const DEFAULT_LOG_ROOT = '/tmp/beacon-lab';

/** At most this many state files are looked at per call: loops stay bounded even if the folder fills up. */
const MAX_RUNS = 1000;

export interface CleanUpReport {
  readonly runId: string;
  readonly namespaces: readonly NamespaceRemoval[];
  /** The log folder, and whether it was removed (false when logs are kept). */
  readonly logDir: string;
  readonly logsRemoved: boolean;
}

/**
 * Removes everything `state` names: the namespaces (with any process still inside), the log
 * folder unless logs are kept, and the state file last, so an interrupted clean-up is retried
 * by the next sweep. Namespaces with the run's prefix that the file misses are included: the
 * prefix belongs to this run alone.
 */
export function cleanUpRunSync(state: RunState, stateDir: string, keepLogs = state.keepLogs, present: readonly string[] = listNamespacesSync()): CleanUpReport {
  const ours = new Set(present.filter((ns) => ns.startsWith(`${state.runId}-`)));
  // Hosts first, switch last: a bridge port's peer disappears with its host anyway.
  const order = [...ours].sort((a, b) => Number(a.endsWith('-switch')) - Number(b.endsWith('-switch')) || a.localeCompare(b));
  const namespaces = order.map((ns) => removeNamespaceSync(ns));
  const unmounted = releaseMountsSync(state);
  let logsRemoved = false;
  // A mount still in place would take the removal into it (a cgroup2 mount is the host's hierarchy).
  if (!keepLogs && unmounted) {
    rmSync(state.logDir, { recursive: true, force: true });
    logsRemoved = true;
  }
  if (namespaces.every((n) => n.deleted) && unmounted) rmSync(stateFilePath(stateDir, state.runId), { force: true });
  return { runId: state.runId, namespaces, logDir: state.logDir, logsRemoved };
}

/**
 * Removes the run's cgroups (deepest first) and unmounts its filesystems (last mounted first).
 * True when none is left mounted. The namespaces are gone by now, so no process holds them.
 */
function releaseMountsSync(state: RunState): boolean {
  for (const cgroup of [...(state.cgroups ?? [])].reverse()) {
    try {
      rmdirSync(cgroup);
    } catch {
      // Gone already, or busy: the unmount below still goes ahead; a busy cgroup stays in the hierarchy.
    }
  }
  let clear = true;
  for (const mount of [...(state.mounts ?? [])].reverse()) {
    if (!isMountPoint(mount)) continue;
    if (runCommandSync(['umount', mount], 10_000).code !== 0) clear = false;
  }
  return clear;
}

/** Whether `path` is a mount point now (listed in /proc/self/mounts, octal escapes undone). */
function isMountPoint(path: string): boolean {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mounts', 'utf8').split('\n').some((line) => unescape(line.split(' ')[1] ?? '') === path);
}

export interface RunListing {
  readonly runId: string;
  readonly file: string;
  /** Undefined when the file could not be read; `problem` says why. */
  readonly state?: RunState;
  readonly problem?: string;
  readonly owner?: OwnerVerdict;
  /** Namespaces of the run that exist now. */
  readonly presentNamespaces: readonly string[];
}

/** Every run recorded in the state folder, with whether its owner is alive. */
export function listRuns(opts: { stateDir?: string } = {}): RunListing[] {
  const stateDir = opts.stateDir ?? DEFAULT_STATE_DIR;
  let files: string[];
  try {
    files = readdirSync(stateDir);
  } catch {
    return [];
  }
  const present = listNamespacesSync();
  const out: RunListing[] = [];
  for (const fileName of files.sort().slice(0, MAX_RUNS)) {
    const runId = runIdOfStateFile(fileName);
    if (runId === undefined) continue;
    const file = join(stateDir, fileName);
    const presentNamespaces = present.filter((ns) => ns.startsWith(`${runId}-`));
    try {
      const state = parseRunState(readFileSync(file, 'utf8'));
      if (state.runId !== runId) throw new Error(`file names run ${runId} but holds ${state.runId}`);
      out.push({ runId, file, state, owner: judgeOwner(state.owner, readProcStat(state.owner.pid)), presentNamespaces });
    } catch (e) {
      out.push({ runId, file, problem: (e as Error).message, presentNamespaces });
    }
  }
  return out;
}

export interface SweepReport {
  /** Runs whose owner was dead, and what was removed of each. */
  readonly removed: readonly (CleanUpReport & { readonly owner: OwnerVerdict; readonly ownerPid: number })[];
  /** Runs left alone, with the reason (`owner_alive`, or why the state file was unreadable). */
  readonly kept: readonly { readonly runId: string; readonly reason: string }[];
}

/** Removes the leftovers of runs whose owner process is gone. Safe to run at any time, from anywhere. */
export function sweepStaleRuns(opts: { stateDir?: string } = {}): SweepReport {
  const stateDir = opts.stateDir ?? DEFAULT_STATE_DIR;
  const removed: SweepReport['removed'][number][] = [];
  const kept: SweepReport['kept'][number][] = [];
  for (const run of listRuns({ stateDir })) {
    if (run.state === undefined || run.owner === undefined) {
      // A file we cannot read names nothing we may safely delete.
      kept.push({ runId: run.runId, reason: `unreadable state file: ${run.problem ?? 'unknown'}` });
      continue;
    }
    if (run.owner === 'owner_alive' || run.state.kept === true) {
      kept.push({ runId: run.runId, reason: run.state.kept === true ? 'kept' : run.owner });
      continue;
    }
    const report = cleanUpRunSync(run.state, stateDir, run.state.keepLogs, run.presentNamespaces);
    removed.push({ ...report, owner: run.owner, ownerPid: run.state.owner.pid });
  }
  return { removed, kept };
}

/** Takes down runs left in place on purpose (`beacon lab --keep`): all of them, or those named. Logs go too. */
export function removeKeptRuns(opts: { stateDir?: string; runIds?: readonly string[] } = {}): CleanUpReport[] {
  const stateDir = opts.stateDir ?? DEFAULT_STATE_DIR;
  return listRuns({ stateDir })
    .filter((run) => run.state?.kept === true && (opts.runIds === undefined || opts.runIds.includes(run.runId)))
    .map((run) => cleanUpRunSync(run.state!, stateDir, false, run.presentNamespaces));
}
