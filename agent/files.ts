// Reads manifest files and folders from disk (the I/O edge of api/manifests.ts).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseManifests, type KnownObject, type ManifestProblem } from '../api/index.js';

const manifestFile = /\.(ya?ml|json)$/i;

/** Expands paths into files: a folder means every YAML/JSON file below it, in name order. */
function expand(path: string, problems: ManifestProblem[]): string[] {
  let stat;
  try {
    stat = statSync(path);
  } catch (e) {
    problems.push({ file: path, line: 0, reason: (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or folder' : (e as Error).message });
    return [];
  }
  if (!stat.isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .flatMap((d) => (d.isDirectory() ? expand(join(path, d.name), problems) : manifestFile.test(d.name) ? [join(path, d.name)] : []));
}

export interface LoadedManifests {
  objects: KnownObject[];
  /** Unreadable files and YAML syntax errors. */
  fatal: ManifestProblem[];
  skipped: ManifestProblem[];
}

export function loadManifests(paths: readonly string[]): LoadedManifests {
  const out: LoadedManifests = { objects: [], fatal: [], skipped: [] };
  for (const file of paths.flatMap((p) => expand(p, out.fatal))) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      out.fatal.push({ file, line: 0, reason: (e as Error).message });
      continue;
    }
    const parsed = parseManifests(text, file);
    out.objects.push(...parsed.objects);
    out.fatal.push(...parsed.syntaxErrors);
    out.skipped.push(...parsed.skipped);
  }
  return out;
}

export const problemText = (p: ManifestProblem): string =>
  `${p.file}:${p.line}: ${p.kind || p.name ? `${[p.kind, p.name].filter(Boolean).join(' ')}: ` : ''}${p.reason}`;
