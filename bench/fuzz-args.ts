// The command line both fuzz runs share: `--count N` (default 1,000,000), `--seed S`, `--json`.
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';

export function fuzzArgs(name: string): { count: number; seed: number; json: boolean; log: (line: string) => void; machine: string } {
  const { values } = parseArgs({
    options: {
      count: { type: 'string', default: '1000000' },
      seed: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
    },
  });
  const count = Number(values.count);
  const seed = Number(values.seed);
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(seed)) {
    console.error(`usage: ${name} [--count N] [--seed S] [--json]`);
    process.exit(2);
  }
  return {
    count,
    seed,
    json: values.json,
    // With --json only the JSON line is printed.
    log: (line) => {
      if (!values.json) console.log(line);
    },
    machine: `Node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'}`,
  };
}
