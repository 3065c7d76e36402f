// A real single-member etcd for tests: 127.0.0.1 on free ports, a temporary data dir, health
// polled before use. stop()/kill9()/restart() keep the data dir, so a restart is the same cluster
// with the same data. close() always kills the process and removes the data dir. If the test
// process dies without close() (a crash, process.exit, SIGKILL), an exit hook or, failing that, a
// small detached shell watchdog that polls our pid kills etcd and removes the directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ETCD_BINARY = '/usr/bin/etcd';

export interface EtcdServer {
  /** `http://127.0.0.1:<client port>`. */
  readonly endpoint: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  readonly running: boolean;
  /** SIGTERM (SIGKILL after 5 s); resolves once the process has exited. Keeps the data dir. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash; keeps the data dir. */
  kill9(): Promise<void>;
  /** Starts etcd again (stopping it first if needed) on the same ports and data dir, waits for health. */
  restart(): Promise<void>;
  /** The last lines etcd wrote, for failure messages. */
  logTail(): string;
  /** Kills etcd and removes the data dir; safe to call twice. */
  close(): Promise<void>;
}

export interface StartEtcdOptions {
  /** How long to wait for /health after a start (ms). */
  startTimeoutMs?: number;
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Every live server of this process, killed synchronously if the process exits without close(). */
const live = new Set<{ child: ChildProcess | undefined; root: string }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const s of live) {
      s.child?.kill('SIGKILL');
      rmSync(s.root, { recursive: true, force: true });
    }
  });
}

export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdServer> {
  const startTimeoutMs = opts.startTimeoutMs ?? 15_000;
  installExitHook();
  // root/data is etcd's data dir, root/etcd.pid names the running etcd for the watchdog.
  const root = mkdtempSync(join(tmpdir(), 'beacon-etcd-'));
  const dataDir = join(root, 'data');
  const pidFile = join(root, 'etcd.pid');
  const entry: { child: ChildProcess | undefined; root: string } = { child: undefined, root };
  live.add(entry);
  const watchdog = spawn(
    '/bin/sh',
    ['-c', 'while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; [ -f "$2/etcd.pid" ] && kill -9 "$(cat "$2/etcd.pid")"; rm -rf "$2"', 'etcd-watchdog', String(process.pid), root],
    // Its own process group: a Ctrl-C to the test run must not take it down before it has cleaned up.
    { stdio: 'ignore', detached: true },
  );
  watchdog.unref();
  let clientPort = 0;
  let peerPort = 0;
  let log = '';
  let closed = false;

  const appendLog = (chunk: Buffer): void => {
    log = (log + chunk.toString('utf8')).slice(-8000);
  };

  const exited = (child: ChildProcess): Promise<void> =>
    child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));

  async function waitHealthy(child: ChildProcess, endpoint: string): Promise<void> {
    const end = Date.now() + startTimeoutMs;
    while (Date.now() < end) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`etcd exited (${child.exitCode ?? child.signalCode}) while starting:\n${log.slice(-2000)}`);
      }
      try {
        const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
        const body = (await res.json()) as { health?: string };
        if (body.health === 'true') return;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    throw new Error(`etcd not healthy after ${startTimeoutMs} ms:\n${log.slice(-2000)}`);
  }

  async function launch(): Promise<void> {
    const client = `http://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    const child = spawn(
      ETCD_BINARY,
      [
        '--name=beacon-test',
        `--data-dir=${dataDir}`,
        `--listen-client-urls=${client}`,
        `--advertise-client-urls=${client}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=beacon-test=${peer}`,
        '--initial-cluster-state=new',
        '--logger=zap',
        '--log-level=warn',
      ],
      // A clean environment: no ETCD_* variables from the host change the member.
      { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } },
    );
    child.stdout?.on('data', appendLog);
    child.stderr?.on('data', appendLog);
    child.on('error', (e) => appendLog(Buffer.from(`spawn error: ${e.message}\n`)));
    entry.child = child;
    if (child.pid !== undefined) writeFileSync(pidFile, String(child.pid));
    try {
      await waitHealthy(child, client);
    } catch (e) {
      child.kill('SIGKILL');
      await exited(child);
      throw e;
    }
  }

  async function halt(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const child = entry.child;
    if (!child) return;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      const gone = exited(child);
      const timeout = sleep(5000).then(() => 'timeout' as const);
      if ((await Promise.race([gone, timeout])) === 'timeout') {
        child.kill('SIGKILL');
        await exited(child);
      }
    }
    rmSync(pidFile, { force: true }); // the pid may be reused now: the watchdog must not kill it
    entry.child = undefined;
  }

  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    await halt('SIGKILL');
    watchdog.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
    live.delete(entry);
  }

  // A port picked as free can be taken before etcd binds it: try a few fresh pairs.
  for (let attempt = 1; ; attempt++) {
    clientPort = await freePort();
    peerPort = await freePort();
    if (peerPort === clientPort) continue;
    try {
      await launch();
      break;
    } catch (e) {
      if (attempt >= 3) {
        await close();
        throw e;
      }
      // A failed first start may have written a member with the old ports: start from empty
      // (etcd recreates the directory).
      rmSync(dataDir, { recursive: true, force: true });
    }
  }

  return {
    get endpoint() {
      return `http://127.0.0.1:${clientPort}`;
    },
    clientPort,
    peerPort,
    dataDir,
    get running() {
      const c = entry.child;
      return c !== undefined && c.exitCode === null && c.signalCode === null;
    },
    stop: () => halt('SIGTERM'),
    kill9: () => halt('SIGKILL'),
    async restart() {
      if (closed) throw new Error('etcd server is closed');
      await halt('SIGTERM');
      await launch();
    },
    logTail: () => log,
    close,
  };
}
