// The run record: one small JSON file per run (RUNID.json in the state folder) that names the
// owner process and everything the run created, written before each thing is created. When the
// owner dies without cleaning up (SIGKILL, OOM, power cut of a test worker), the sweeper reads
// these files to find and remove exactly what that run left, and nothing else.
import { isAbsolute, basename, join, normalize } from 'node:path';
import { isRunId } from './names.js';

export const STATE_VERSION = 1;

export interface RunOwner {
  readonly pid: number;
  /** Start time of the owner in clock ticks since boot (/proc/PID/stat field 22): tells a reused pid apart. */
  readonly startTicks?: number;
}

export interface RunState {
  readonly version: typeof STATE_VERSION;
  readonly runId: string;
  /** Free text for humans: what the run is for (`test`, `bench`, `demo`). */
  readonly name: string;
  readonly owner: RunOwner;
  readonly startedAt: string;
  /** Every namespace the run created or is about to create, switch namespace included. */
  readonly namespaces: readonly string[];
  /** The run's log folder; its last path element is the run id. */
  readonly logDir: string;
  /** Logs stay after clean-up (also when the sweeper removes the run). */
  readonly keepLogs: boolean;
  /** Filesystems the run mounted (bpffs, cgroup2), all under logDir: unmounted at clean-up. */
  readonly mounts?: readonly string[];
  /** Cgroups the run made inside its cgroup2 mount: removed at clean-up, before the unmount. */
  readonly cgroups?: readonly string[];
  /** Left running on purpose (`beacon lab --keep`): the sweeper leaves it alone though its owner is gone. */
  readonly kept?: boolean;
}

export class RunStateError extends Error {
  override name = 'RunStateError';
}

export const stateFileName = (runId: string): string => `${runId}.json`;
export const stateFilePath = (stateDir: string, runId: string): string => join(stateDir, stateFileName(runId));

/** The run id a state file is for, or undefined for other files in the folder. */
export function runIdOfStateFile(fileName: string): string | undefined {
  const m = /^(bl-[0-9a-f]{6})\.json$/.exec(fileName);
  return m ? m[1] : undefined;
}

export function serializeRunState(state: RunState): string {
  return `${JSON.stringify(state, null, 2)}\n`;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isPid = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;

/**
 * Reads a state file strictly. Whatever it names is later deleted as root, so a file that names
 * a namespace outside its own run, or a log folder that is not its own, is refused as a whole.
 */
export function parseRunState(text: string): RunState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new RunStateError(`not JSON: ${(e as Error).message}`);
  }
  if (!isObject(raw)) throw new RunStateError('not a JSON object');
  if (raw.version !== STATE_VERSION) throw new RunStateError(`unsupported version ${JSON.stringify(raw.version)} (expected ${STATE_VERSION})`);
  const { runId, name, owner, startedAt, namespaces, logDir, keepLogs } = raw;
  if (typeof runId !== 'string' || !isRunId(runId)) throw new RunStateError(`runId ${JSON.stringify(runId)} is not a lab run id`);
  if (typeof name !== 'string') throw new RunStateError('name must be a string');
  if (!isObject(owner) || !isPid(owner.pid)) throw new RunStateError('owner.pid must be a positive integer');
  if (owner.startTicks !== undefined && !(typeof owner.startTicks === 'number' && Number.isSafeInteger(owner.startTicks) && owner.startTicks >= 0)) {
    throw new RunStateError('owner.startTicks must be a non-negative integer');
  }
  if (typeof startedAt !== 'string' || Number.isNaN(Date.parse(startedAt))) throw new RunStateError('startedAt must be an ISO date');
  if (!Array.isArray(namespaces) || namespaces.length > 1000) throw new RunStateError('namespaces must be a list (at most 1000)');
  for (const ns of namespaces) {
    if (typeof ns !== 'string' || !ns.startsWith(`${runId}-`) || !/^[a-z0-9-]{1,64}$/.test(ns)) {
      throw new RunStateError(`namespace ${JSON.stringify(ns)} does not belong to run ${runId}`);
    }
  }
  if (typeof logDir !== 'string' || !isAbsolute(logDir) || basename(logDir) !== runId) {
    throw new RunStateError(`logDir ${JSON.stringify(logDir)} must be an absolute path ending in /${runId}`);
  }
  if (typeof keepLogs !== 'boolean') throw new RunStateError('keepLogs must be true or false');
  const mounts = pathList(raw.mounts, 'mounts', (p) => p.startsWith(`${logDir}/`), `under ${logDir}`);
  const cgroups = pathList(raw.cgroups, 'cgroups', (p) => mounts.some((m) => p.startsWith(`${m}/`)), 'inside a mount of the run');
  if (raw.kept !== undefined && typeof raw.kept !== 'boolean') throw new RunStateError('kept must be true or false');
  return {
    version: STATE_VERSION,
    runId,
    name,
    owner: owner.startTicks === undefined ? { pid: owner.pid } : { pid: owner.pid, startTicks: owner.startTicks },
    startedAt,
    namespaces: namespaces as string[],
    logDir,
    keepLogs,
    ...(mounts.length > 0 ? { mounts } : {}),
    ...(cgroups.length > 0 ? { cgroups } : {}),
    ...(raw.kept === true ? { kept: true } : {}),
  };
}

/** An optional list of absolute paths that must each pass `inside` (clean-up removes them as root). */
function pathList(v: unknown, field: string, inside: (path: string) => boolean, where: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > 100) throw new RunStateError(`${field} must be a list (at most 100)`);
  for (const p of v) {
    if (typeof p !== 'string' || !isAbsolute(p) || normalize(p) !== p || !inside(p)) throw new RunStateError(`${field}: ${JSON.stringify(p)} must be an absolute path ${where}`);
  }
  return v as string[];
}

export interface ProcStat {
  /** One-letter state (R, S, D, Z, ...). */
  readonly state: string;
  readonly startTicks: number;
}

/**
 * Parses /proc/PID/stat (proc(5)). The command name (field 2) sits in parentheses and may itself
 * hold spaces and ")", so fields are counted from the last ")".
 */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = text.slice(close + 1).trim().split(/\s+/);
  // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
  const state = fields[0];
  const start = fields[19];
  if (state === undefined || start === undefined || !/^[0-9]+$/.test(start)) return undefined;
  return { state, startTicks: Number(start) };
}

export type OwnerVerdict = 'owner_alive' | 'owner_gone' | 'owner_zombie' | 'owner_pid_reused';

/**
 * Is the run's owner still running? `procStat` is the text of /proc/PID/stat, or undefined when
 * the pid does not exist. Only `owner_alive` protects a run; the others make it a leftover.
 */
export function judgeOwner(owner: RunOwner, procStat: string | undefined): OwnerVerdict {
  if (procStat === undefined) return 'owner_gone';
  const stat = parseProcStat(procStat);
  // An unreadable stat of an existing pid: stay on the safe side and treat it as alive.
  if (stat === undefined) return 'owner_alive';
  if (stat.state === 'Z' || stat.state === 'X') return 'owner_zombie';
  if (owner.startTicks !== undefined && stat.startTicks !== owner.startTicks) return 'owner_pid_reused';
  return 'owner_alive';
}
