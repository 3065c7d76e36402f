// Crash safety of the embedded store with real processes: two Beacon-like writers share one state
// folder, race on one object through optimistic concurrency, and are killed with SIGKILL mid-burst.
// Every write a child reported as committed must be there afterwards, and no two writers may both
// have won from the same version.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { openEmbeddedStore, type EmbeddedStore } from '../store/embedded/index.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const storeModule = pathToFileURL(join(repo, 'store/embedded/index.ts')).href;

/** 198.18.0.0/15 carries a counter: n ↔ 198.18.(n >> 8).(n & 255). */
const childScript = `
import { openEmbeddedStore } from ${JSON.stringify(storeModule)};
const [manifestsDir, stateDir, me] = process.argv.slice(2);
const store = await openEmbeddedStore({ manifestsDir, stateDir });
const ipOf = (n) => \`198.18.\${n >> 8}.\${n & 255}\`;
const countOf = (o) => { const ip = o.status?.loadBalancer?.ingress?.[0]?.ip; if (!ip) return 0; const [, , a, b] = ip.split('.').map(Number); return a * 256 + b; };
const find = async (name) => (await store.list('Service')).items.find((o) => o.metadata.name === name);
process.stdout.write('ready\\n');
for (let own = 1; ; own++) {
  // The shared counter: read, add one, write back only if nobody wrote in between.
  for (;;) {
    const counter = await find('counter');
    const next = countOf(counter) + 1;
    try {
      await store.writeStatus({ kind: 'Service', namespace: 'shop', name: 'counter' }, { loadBalancer: { ingress: [{ ip: ipOf(next) }] } }, counter.metadata.resourceVersion);
      process.stdout.write(\`counter \${next}\\n\`);
      break;
    } catch (e) {
      if (e.name !== 'ConflictError') throw e;
    }
  }
  // This writer's own object: nobody races on it.
  const mine = await find(me);
  await store.writeStatus({ kind: 'Service', namespace: 'shop', name: me }, { loadBalancer: { ingress: [{ ip: ipOf(own) }] } }, mine.metadata.resourceVersion);
  process.stdout.write(\`own \${own}\\n\`);
  await new Promise((r) => setImmediate(r));
}
`;

const serviceYaml = (name: string): string => `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\n  namespace: shop\nspec:\n  type: LoadBalancer\n---\n`;
const countOf = (ip: string | undefined): number => {
  if (!ip) return 0;
  const [, , a, b] = ip.split('.').map(Number);
  return a! * 256 + b!;
};

interface Child {
  readonly process: ChildProcess;
  readonly lines: string[];
  exited: Promise<void>;
  stderr: string;
}

describe('embedded store crash safety', () => {
  const children: Child[] = [];
  const dirs: string[] = [];
  let store: EmbeddedStore | undefined;

  afterEach(async () => {
    await store?.close();
    store = undefined;
    for (const c of children.splice(0)) {
      if (c.process.exitCode === null && c.process.signalCode === null) c.process.kill('SIGKILL');
      await c.exited;
    }
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('loses no committed status write when writers are killed with SIGKILL mid-burst', async () => {
    const root = mkdtempSync(join(tmpdir(), 'beacon-embedded-crash-'));
    dirs.push(root);
    const manifestsDir = join(root, 'manifests');
    const stateDir = join(root, 'state');
    mkdirSync(manifestsDir);
    writeFileSync(join(manifestsDir, 'services.yaml'), ['counter', 'writer-a', 'writer-b'].map(serviceYaml).join(''));
    const script = join(root, 'writer.mjs');
    writeFileSync(script, childScript);

    const start = (name: string): Child => {
      // cwd = the repo, so that `--import tsx` resolves from its node_modules.
      const proc = spawn(process.execPath, ['--import', 'tsx', script, manifestsDir, stateDir, name], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
      const child: Child = { process: proc, lines: [], stderr: '', exited: new Promise((r) => proc.once('exit', () => r())) };
      let partial = '';
      proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        const parts = (partial + chunk).split('\n');
        partial = parts.pop()!;
        child.lines.push(...parts);
      });
      proc.stderr.setEncoding('utf8').on('data', (chunk: string) => (child.stderr += chunk));
      children.push(child);
      return child;
    };
    const writers = [start('writer-a'), start('writer-b')];

    // Let both write for a while (bounded), then kill them in the middle of it.
    const deadline = Date.now() + 20_000;
    const counted = (c: Child, what: string): number => c.lines.filter((l) => l.startsWith(`${what} `)).length;
    while (!writers.every((c) => counted(c, 'own') >= 40)) {
      for (const c of writers) {
        if (c.process.exitCode !== null) throw new Error(`writer exited early (${c.process.exitCode}): ${c.stderr}`);
      }
      if (Date.now() > deadline) throw new Error(`writers too slow: ${writers.map((c) => `${counted(c, 'own')} (${c.stderr})`).join(', ')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const c of writers) c.process.kill('SIGKILL');
    await Promise.all(writers.map((c) => c.exited));
    expect(writers.map((c) => c.process.signalCode)).toEqual(['SIGKILL', 'SIGKILL']);

    store = await openEmbeddedStore({ manifestsDir, stateDir });
    expect(store.checkIntegrity()).toEqual(['ok']);
    const status = new Map((await store.list('Service')).items.map((o) => [o.metadata.name, countOf((o.status as { loadBalancer?: { ingress?: { ip?: string }[] } } | undefined)?.loadBalancer?.ingress?.[0]?.ip)]));

    // Each writer's own object holds at least its last reported write (at most one more that was
    // committed but not yet reported when the kill came).
    for (const [i, c] of writers.entries()) {
      const reported = counted(c, 'own');
      const stored = status.get(`writer-${'ab'[i]}`)!;
      expect(stored).toBeGreaterThanOrEqual(reported);
      expect(stored).toBeLessThanOrEqual(reported + 1);
    }
    // The shared counter: every reported value is unique (compare-and-set across processes lost no
    // update), and the stored value covers all of them.
    const values = writers.flatMap((c) => c.lines.filter((l) => l.startsWith('counter ')).map((l) => Number(l.slice(8))));
    expect(new Set(values).size).toBe(values.length);
    const highest = Math.max(...values);
    expect(status.get('counter')).toBeGreaterThanOrEqual(highest);
    expect(status.get('counter')).toBeLessThanOrEqual(highest + 2);
    expect(values.length).toBeGreaterThanOrEqual(highest - 2);
  });

  it('lets several processes create a new state database at the same moment', async () => {
    const root = mkdtempSync(join(tmpdir(), 'beacon-embedded-open-'));
    dirs.push(root);
    const manifestsDir = join(root, 'manifests');
    mkdirSync(manifestsDir);
    const script = join(root, 'opener.mjs');
    // A start barrier: every child is loaded and waiting before any of them opens the store.
    writeFileSync(
      script,
      `import { existsSync } from 'node:fs';\nimport { openEmbeddedStore } from ${JSON.stringify(storeModule)};\nconst [manifestsDir, stateDir, go] = process.argv.slice(2);\nprocess.stdout.write('waiting\\n');\nconst until = Date.now() + 20000;\nwhile (!existsSync(go) && Date.now() < until) await new Promise((r) => setTimeout(r, 1));\nconst store = await openEmbeddedStore({ manifestsDir, stateDir });\nawait store.close();\nprocess.stdout.write('opened\\n');\n`,
    );
    // Each round a fresh state folder, opened by four processes at once: the WAL switch of a new
    // database needs an exclusive lock, which SQLite refuses at once while another process holds it.
    for (let round = 0; round < 3; round++) {
      const stateDir = join(root, `state-${round}`);
      const go = join(root, `go-${round}`);
      const runs = Array.from({ length: 4 }, () => {
        const proc = spawn(process.execPath, ['--import', 'tsx', script, manifestsDir, stateDir, go], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        const child: Child = { process: proc, lines: [], stderr: '', exited: new Promise((r) => proc.once('exit', () => r())) };
        // `stderr` collects everything the child says, so the barrier can see 'waiting'.
        proc.stdout.setEncoding('utf8').on('data', (c: string) => ((out += c), (child.stderr += c)));
        proc.stderr.setEncoding('utf8').on('data', (c: string) => ((out += c), (child.stderr += c)));
        children.push(child);
        return new Promise<{ code: number | null; out: string }>((r) => proc.once('exit', (code) => r({ code, out })));
      });
      const started = children.slice(-4);
      const until = Date.now() + 20_000;
      while (!started.every((c) => c.stderr.includes('waiting')) && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      writeFileSync(go, '');
      for (const r of await Promise.all(runs)) expect(r, r.out).toEqual({ code: 0, out: 'waiting\nopened\n' });
    }
  }, 60_000);
});
