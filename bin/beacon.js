#!/usr/bin/env node
// The `beacon` executable: runs the compiled CLI (built by `npm run build` or scripts/setup.sh).
import { existsSync } from 'node:fs';

const cli = new URL('../dist/agent/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('beacon: not built yet: run scripts/setup.sh (or npm ci && npm run build)\n');
  process.exit(1);
}
const { main } = await import(cli.href);
// Exit as soon as the command is done: client libraries (gRPC) may keep idle timers alive.
// Output to a pipe is written asynchronously: exit once both streams are flushed.
const code = await main(process.argv.slice(2));
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
