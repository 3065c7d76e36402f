#!/usr/bin/env node
// The `beacon` executable: runs the compiled CLI (built by `npm run build` or scripts/setup.sh).
import { existsSync } from 'node:fs';

const cli = new URL('../dist/agent/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('beacon: not built yet: run scripts/setup.sh (or npm ci && npm run build)\n');
  process.exit(1);
}
const { main } = await import(cli.href);
process.exitCode = await main(process.argv.slice(2));
