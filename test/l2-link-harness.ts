// Drives test/l2-link-child.ts inside a lab host over stdin/stdout JSON lines (the lab's spawn
// writes to a log file and has no stdin, so this spawns `ip netns exec` itself and kills it in stop()).
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { LabHost } from '../lab/index.js';
import type { InterfaceInventory } from '../l2announce/netif.js';
import type { LinkStats } from '../l2announce/packet-link.js';
import type { AnswerEntry } from '../l2announce/responder.js';

const root = join(import.meta.dirname, '..');
const childScript = join(root, 'test', 'l2-link-child.ts');

type Line = Record<string, unknown>;

export class LinkChild {
  private readonly lines: Line[] = [];
  private buffered = '';
  private stderr = '';
  private nextId = 1;
  private readonly waiters = new Set<() => void>();
  private readonly exited: Promise<void>;

  private constructor(
    readonly host: LabHost,
    private readonly child: ChildProcess,
  ) {
    child.stdout!.on('data', (d: Buffer) => {
      this.buffered += d.toString();
      const parts = this.buffered.split('\n');
      this.buffered = parts.pop()!;
      for (const p of parts) if (p.startsWith('{')) this.lines.push(JSON.parse(p) as Line);
      for (const w of [...this.waiters]) w();
    });
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    void this.exited.then(() => {
      for (const w of [...this.waiters]) w();
    });
  }

  /** Starts the child in `host`: `node` runs a PacketLink, `raw` only sends frames. */
  static async start(host: LabHost, mode: 'node' | 'raw'): Promise<LinkChild> {
    const child = spawn('ip', ['netns', 'exec', host.namespace, process.execPath, '--import', 'tsx', childScript, mode], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
    const c = new LinkChild(host, child);
    await c.waitFor((l) => l.event === 'ready', 60_000, 'child ready');
    return c;
  }

  /** The first line (past or future) matching `match`, within `timeoutMs`. */
  waitFor(match: (line: Line) => boolean, timeoutMs = 10_000, what = 'line'): Promise<Line> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.lines.find(match);
        if (found !== undefined) return done(() => resolve(found));
        if (this.child.exitCode !== null || this.child.signalCode !== null) done(() => reject(new Error(`${what}: child exited; stderr:\n${this.stderr}`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`${what}: not within ${timeoutMs} ms; stderr:\n${this.stderr}`))), timeoutMs);
      const done = (f: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        f();
      };
      this.waiters.add(check);
      check();
    });
  }

  events(name: string): Line[] {
    return this.lines.filter((l) => l.event === name);
  }

  async call(cmd: string, args: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.nextId++;
    this.child.stdin!.write(`${JSON.stringify({ id, cmd, ...args })}\n`);
    const reply = await this.waitFor((l) => l.id === id, 15_000, `reply to ${cmd}`);
    if (reply.ok !== true) throw new Error(`${cmd}: ${String(reply.error)}`);
    return reply.result;
  }

  setTable(entries: AnswerEntry[]): Promise<unknown> {
    return this.call('table', { entries });
  }

  /** `forever`, `0` (fenced now) or milliseconds from now. */
  fence(ms: number | 'forever'): Promise<unknown> {
    return this.call('fence', ms === 'forever' ? { forever: true } : { ms });
  }

  async stats(): Promise<LinkStats> {
    return (await this.call('stats')) as LinkStats;
  }

  async interfaces(): Promise<InterfaceInventory> {
    return (await this.call('interfaces')) as InterfaceInventory;
  }

  send(ifname: string, frame: Uint8Array): Promise<unknown> {
    return this.call('send', { ifname, hex: Buffer.from(frame).toString('hex') });
  }

  /** Closes gracefully, or kills after 5 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.stdin!.write(`${JSON.stringify({ cmd: 'close' })}\n`);
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }
}
