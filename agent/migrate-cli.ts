// `beacon migrate -f PATH...`: the I/O edge of migrate/. Reads MetalLB and Cilium YAML, prints the
// Beacon objects as multi-document YAML on stdout and what was not carried over on stderr.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Source } from '../migrate/index.js';
import { exit, type IO } from './cli.js';

export const migrateUsage = `Usage: beacon migrate -f PATH [-f PATH ...]

Converts MetalLB (metallb.io) and Cilium (cilium.io) load-balancer resources into Beacon's and
prints them as YAML; what could not be carried over is listed on stderr as
FILE:LINE: KIND NAME: FIELD: REASON (see docs/migrate.md).

  -f, --filename PATH   file or folder (repeatable); folders are read recursively (*.yaml, *.yml, *.json)
Exit codes: 0 everything converted, 1 something was not carried over, 2 unreadable input.
`;

// kubectl reads YAML 1.1, where an unquoted Yes is a boolean and 1:30 a number: quote those.
// Objects used twice are written out twice, not as anchors, so each document reads on its own.
const yamlOptions = { version: '1.1', aliasDuplicateObjects: false } as const;

const manifestFile = /\.(ya?ml|json)$/i;

/** Files under the paths, folders in name order; problems for paths that cannot be read. */
function expand(path: string, problems: string[]): string[] {
  try {
    if (!statSync(path).isDirectory()) return [path];
    return readdirSync(path, { withFileTypes: true })
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .flatMap((d) => (d.isDirectory() ? expand(join(path, d.name), problems) : manifestFile.test(d.name) ? [join(path, d.name)] : []));
  } catch (e) {
    problems.push(`${path}:0: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or folder' : (e as Error).message}`);
    return [];
  }
}

export async function migrateCommand(args: string[], io: IO): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args, options: { filename: { type: 'string', short: 'f', multiple: true }, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (e) {
    io.err(`beacon: ${(e as Error).message}\n\n${migrateUsage}`);
    return exit.badInput;
  }
  if (values.help) {
    io.out(migrateUsage);
    return exit.ok;
  }
  if (!values.filename?.length) {
    io.err(`beacon: migrate needs at least one -f PATH\n\n${migrateUsage}`);
    return exit.badInput;
  }
  const [{ migrate, parseSources }, { stringify }] = await Promise.all([import('../migrate/index.js'), import('yaml')]);
  const fatal: string[] = [];
  const sources: Source[] = [];
  for (const file of values.filename.flatMap((p) => expand(p, fatal))) {
    try {
      const parsed = parseSources(readFileSync(file, 'utf8'), file);
      sources.push(...parsed.sources);
      fatal.push(...parsed.syntaxErrors.map((e) => `${e.file}:${e.line}: ${e.reason}`));
    } catch (e) {
      fatal.push(`${file}:0: ${(e as Error).message}`);
    }
  }
  if (fatal.length > 0) {
    for (const line of fatal) io.err(`${line}\n`);
    return exit.badInput;
  }
  const result = migrate(sources);
  io.out(result.objects.map((c) => stringify(c.object, yamlOptions)).join('---\n'));
  for (const n of result.notCarried) io.err(`${n.file}:${n.line}: ${n.kind} ${n.name}: ${n.field}: ${n.reason}\n`);
  return result.notCarried.length > 0 ? exit.failed : exit.ok;
}
