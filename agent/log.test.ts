import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, readableLine } from './log.js';

const sink = () => {
  let text = '';
  return { stream: new Writable({ write: (c: Buffer, _e, done) => ((text += c.toString()), done()) }), text: () => text };
};

describe('logs', () => {
  it('writes JSON records with the message and fields', () => {
    const out = sink();
    createLogger({ destination: out.stream, pretty: false }).info({ service: 'shop/web', ips: ['198.18.0.1'] }, 'assigned');
    expect(JSON.parse(out.text())).toMatchObject({ level: 30, msg: 'assigned', service: 'shop/web', ips: ['198.18.0.1'] });
  });

  it('renders a record as one readable line for terminals', () => {
    const line = readableLine(JSON.stringify({ level: 40, time: Date.UTC(2026, 10, 26, 8, 30, 5), pid: 1, msg: 'no free address', service: 'shop/web', reason: 'out_of_ips' }));
    expect(line).toBe('08:30:05 WARN  no free address  service=shop/web reason=out_of_ips\n');
    expect(readableLine('not json')).toBe('not json');
  });
});
