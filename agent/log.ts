// Structured logs with pino: JSON lines, or a short readable line per record on a terminal.
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

export type { Logger };

const levels: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** Renders one pino JSON record as `15:04:05 INFO  message key=value ...`. */
export function readableLine(json: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const { time, level, msg, pid: _pid, hostname: _host, ...rest } = rec;
  const when = new Date(typeof time === 'number' ? time : Date.now()).toISOString().slice(11, 19);
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${when} ${(levels[level as number] ?? String(level)).padEnd(5)} ${typeof msg === 'string' ? msg : JSON.stringify(msg ?? '')}${fields ? `  ${fields}` : ''}\n`;
}

export function createLogger(opts: { level?: string; pretty?: boolean; destination?: NodeJS.WritableStream } = {}): Logger {
  const out = opts.destination ?? process.stderr;
  const pretty = opts.pretty ?? (process.stderr.isTTY === true && opts.destination === undefined);
  const stream = pretty
    ? new Writable({
        write(chunk: Buffer, _enc, done) {
          for (const line of chunk.toString().split('\n')) if (line) out.write(readableLine(line));
          done();
        },
      })
    : out;
  return pino({ level: opts.level ?? 'info', base: { pid: process.pid } }, stream);
}
