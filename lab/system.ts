// The I/O edge of the lab: running commands with a time limit, and the few kernel look-ups the
// clean-up needs. Clean-up is synchronous on purpose: the same code serves `destroy()`, the
// sweeper and the process 'exit' handler, where nothing asynchronous runs any more.
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { deleteNamespace, namespacePids, type Argv } from './commands.js';

export interface CommandResult {
  /** Exit code, or null when the command was ended by a signal. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

export const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_BUFFER = 16 * 1024 * 1024;

export interface RunOptions {
  readonly timeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
  readonly input?: string;
}

/** Runs argv; resolves with the outcome (never rejects on a failing command). SIGKILL at the deadline. */
export function runCommand(argv: Argv, opts: RunOptions = {}): Promise<CommandResult> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new Error('empty command'));
  const timeout = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve) => {
    const child = execFile(file, args, { timeout, killSignal: 'SIGKILL', maxBuffer: MAX_BUFFER, encoding: 'utf8', env: opts.env }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: NodeJS.Signals | null; killed?: boolean }) | null;
      if (e && typeof e.code === 'string') {
        // Spawning itself failed (ENOENT, EACCES): report it like a shell would.
        resolve({ code: 127, signal: null, stdout, stderr: `${stderr}${e.message}\n`, timedOut: false });
        return;
      }
      const signal = e?.signal ?? null;
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal, stdout, stderr, timedOut: Boolean(e?.killed && signal === 'SIGKILL') });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

export function runCommandSync(argv: Argv, timeoutMs = DEFAULT_TIMEOUT_MS): CommandResult {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('empty command');
  const r = spawnSync(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: MAX_BUFFER, stdio: ['ignore', 'pipe', 'pipe'] });
  const timedOut = (r.error as { code?: string } | undefined)?.code === 'ETIMEDOUT';
  return { code: r.error && !timedOut ? 127 : r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${r.error && !timedOut ? r.error.message : ''}`, timedOut };
}

export const describeFailure = (argv: Argv, r: CommandResult): string =>
  `\`${argv.join(' ')}\` ${r.timedOut ? 'timed out' : r.signal ? `ended by ${r.signal}` : `exited ${r.code}`}${r.stderr.trim() ? `: ${r.stderr.trim()}` : ''}`;

/** Names in /run/netns, from `ip -j netns list`. */
export function listNamespacesSync(): string[] {
  const r = runCommandSync(['ip', '-j', 'netns', 'list']);
  if (r.code !== 0) throw new Error(describeFailure(['ip', '-j', 'netns', 'list'], r));
  const text = r.stdout.trim();
  if (text === '') return [];
  const list = JSON.parse(text) as { name?: unknown }[];
  return list.map((e) => e.name).filter((n): n is string => typeof n === 'string');
}

/** Text of /proc/PID/stat, or undefined when there is no such process. */
export function readProcStat(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
}

export function signalPid(pid: number, signal: NodeJS.Signals): boolean {
  // Never ourselves or init, whatever a namespace lookup says.
  if (pid <= 1 || pid === process.pid) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Signals a whole process group (a process started detached leads its own group). */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  if (pgid <= 1 || pgid === process.pid) return false;
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

export interface NamespaceRemoval {
  readonly namespace: string;
  /** Processes that were still inside the namespace and got SIGKILL. */
  readonly killedPids: number[];
  readonly deleted: boolean;
  readonly error?: string;
}

/**
 * Kills every process left in the namespace (a namespace with processes outlives `ip netns del`,
 * and with it its veth ends), then deletes it. A few rounds catch processes forked meanwhile.
 */
export function removeNamespaceSync(ns: string): NamespaceRemoval {
  const killed: number[] = [];
  for (let round = 0; round < 3; round++) {
    const r = runCommandSync(namespacePids(ns), 5_000);
    if (r.code !== 0) break;
    const pids = r.stdout.split('\n').map((l) => Number(l.trim())).filter((p) => Number.isSafeInteger(p) && p > 1);
    const fresh = pids.filter((p) => signalPid(p, 'SIGKILL'));
    killed.push(...fresh);
    if (fresh.length === 0) break;
  }
  const del = runCommandSync(deleteNamespace(ns), 5_000);
  if (del.code === 0) return { namespace: ns, killedPids: killed, deleted: true };
  return { namespace: ns, killedPids: killed, deleted: false, error: describeFailure(deleteNamespace(ns), del) };
}
