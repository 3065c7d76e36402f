// The embedded store's desired state: every YAML/JSON file under the manifests folder. A scan
// re-reads only files whose size or mtime moved (or whose mtime is too recent to trust), and a file
// that cannot be read as a whole (YAML syntax error, unreadable, truncated to zero bytes mid-save)
// keeps the objects of its last good version, so a half-saved file never makes services vanish.
import { readdirSync, readFileSync, statSync, watch, type FSWatcher, type Stats } from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { ManifestProblem } from '../../api/index.js';
import { parseFile, shortHash, type DesiredObject, type GoodParse } from './parse.js';

export { canonicalJson, keyOfRef, objectId, problemText, shortHash, type DesiredObject } from './parse.js';

const manifestFile = /\.(ya?ml|json)$/i;
/** mtime granularity and clock steps: a file changed this recently is read again even if size and mtime match. */
const racyMs = 2000;
const maxDepth = 16;

/** Where the last good text of each file survives restarts (the state database). */
export interface LastGoodStore {
  lastGood(path: string): { text: string; savedAt: number } | undefined;
  /** Several files at once: one transaction for a whole scan. */
  saveLastGood(files: readonly { path: string; text: string }[]): void;
  forgetLastGood(path: string): void;
}

export interface ManifestSnapshot {
  /** The same Map as the previous scan's when no file changed (callers may skip their diff). */
  readonly objects: ReadonlyMap<string, DesiredObject>;
  readonly problems: readonly ManifestProblem[];
}

interface FileState {
  mtimeMs: number;
  size: number;
  hash: string;
  good: GoodParse | undefined;
  /** Why the file's current text is not used (syntax errors, read error, empty). */
  fatal: ManifestProblem[];
}

/** Walk order: names compared folder by folder, as a sorted depth-first walk lists them. */
function byPathSegments(a: string, b: string): number {
  const x = a.split(sep);
  const y = b.split(sep);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1;
  }
  return x.length - y.length;
}

/** The part of a snapshot that depends on the files only, kept while no file changes. */
interface Assembled {
  readonly paths: readonly string[];
  readonly objects: ReadonlyMap<string, DesiredObject>;
  readonly problems: readonly ManifestProblem[];
}

export class ManifestFolder {
  private files = new Map<string, FileState>();
  private watchers = new Map<string, FSWatcher>();
  private onFsEvent: (() => void) | undefined;
  private useFsWatch = true;
  private assembled: Assembled | undefined;
  /** Good texts read during the current scan, saved together at its end. */
  private goodTexts: { path: string; text: string }[] = [];

  constructor(
    readonly dir: string,
    private readonly cache: LastGoodStore,
    private readonly now: () => number = Date.now,
  ) {}

  /** Calls `listener` when fs.watch reports anything in the folder tree (hints only; scans decide); undefined: no fs.watch. */
  watch(listener: (() => void) | undefined): void {
    this.onFsEvent = listener;
    this.useFsWatch = listener !== undefined;
    if (!this.useFsWatch) this.syncWatchers([]);
  }

  /** Reads what changed on disk and returns the whole desired state with its problems. */
  scan(): ManifestSnapshot {
    const problems: ManifestProblem[] = [];
    const dirs: string[] = [];
    const unreadable: string[] = [];
    const paths = this.list(problems, dirs, unreadable);
    this.syncWatchers(this.useFsWatch ? dirs : []);
    const seen = new Set<string>();
    let changed = false;
    for (const path of paths) {
      const before = this.files.get(path);
      if (this.refresh(path)) seen.add(path);
      if (this.files.get(path) !== before) changed = true;
    }
    if (this.goodTexts.length > 0) this.cache.saveLastGood(this.goodTexts.splice(0));
    for (const path of [...this.files.keys()]) {
      if (seen.has(path)) continue;
      if (unreadable.some((d) => path.startsWith(d + sep))) {
        // A folder that cannot be read (permissions, a mount that went away) is not a deletion.
        paths.push(path);
        continue;
      }
      this.files.delete(path);
      this.cache.forgetLastGood(this.rel(path));
      changed = true;
    }
    paths.sort(byPathSegments);
    const last = this.assembled;
    // Nothing changed in any file (the usual periodic rescan): the previous result stands as is.
    const same = !changed && last !== undefined && last.paths.length === paths.length && last.paths.every((p, i) => p === paths[i]);
    const assembled = same ? last : (this.assembled = this.assemble(paths));
    return { objects: assembled.objects, problems: [...problems, ...assembled.problems] };
  }

  /** The objects of every file, first definition winning, and the files' problems, in path order. */
  private assemble(paths: readonly string[]): Assembled {
    const problems: ManifestProblem[] = [];
    const objects = new Map<string, DesiredObject>();
    for (const path of paths) {
      const state = this.files.get(path);
      if (!state) continue;
      problems.push(...state.fatal);
      for (const d of state.good?.desired ?? []) {
        const first = objects.get(d.id);
        if (first) {
          const name = d.key.namespace ? `${d.key.namespace}/${d.key.name}` : d.key.name;
          problems.push({ file: d.file, line: d.line, kind: d.key.kind, name, reason: `also defined at ${first.file}:${first.line}, which wins; this one is ignored` });
          continue;
        }
        objects.set(d.id, d);
      }
      problems.push(...(state.good?.skipped ?? []));
    }
    return { paths, objects, problems };
  }

  close(): void {
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    this.onFsEvent = undefined;
  }

  private rel(path: string): string {
    return relative(this.dir, path).split(sep).join('/');
  }

  /** Manifest files below the folder in path order; dot-files (editor temp files, ConfigMap `..data`) are skipped. */
  private list(problems: ManifestProblem[], dirs: string[], unreadable: string[]): string[] {
    const out: string[] = [];
    const visited = new Set<string>();
    const walk = (dir: string, depth: number): void => {
      let st: Stats;
      let names: string[];
      try {
        st = statSync(dir);
        names = readdirSync(dir).sort();
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // A removed subfolder removes its objects; the whole folder missing or unreadable keeps them.
        if (code !== 'ENOENT' || dir === this.dir) unreadable.push(dir);
        const kept = [...this.files.keys()].filter((f) => f.startsWith(dir + sep)).length;
        const note = kept > 0 && (code !== 'ENOENT' || dir === this.dir) ? `; keeping the objects of the ${kept} file${kept === 1 ? '' : 's'} read from it before` : '';
        problems.push({ file: dir, line: 0, reason: (code === 'ENOENT' ? 'manifests folder does not exist' : `cannot read folder: ${(e as Error).message}`) + note });
        return;
      }
      const id = `${st.dev}:${st.ino}`;
      if (visited.has(id) || depth > maxDepth) return; // symlink loop
      visited.add(id);
      dirs.push(`${dir}\0${id}`); // a folder replaced by a new one at the same path needs a new watch
      for (const name of names) {
        if (name.startsWith('.')) continue;
        const path = join(dir, name);
        let entry: Stats;
        try {
          entry = statSync(path); // follows symlinks
        } catch {
          continue; // removed meanwhile, or a dangling link
        }
        if (entry.isDirectory()) walk(path, depth + 1);
        else if (entry.isFile() && manifestFile.test(name)) out.push(path);
      }
    };
    walk(this.dir, 0);
    return out;
  }

  /** Brings one file's state up to date; false when it vanished before it could be read. */
  private refresh(path: string): boolean {
    const prev = this.files.get(path);
    let st: Stats;
    try {
      st = statSync(path);
    } catch {
      return false;
    }
    if (prev && prev.mtimeMs === st.mtimeMs && prev.size === st.size && this.now() - st.mtimeMs > racyMs) return true;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      this.files.set(path, this.keepLastGood(path, prev, st, '', [{ file: path, line: 0, reason: `cannot read: ${(e as Error).message}` }]));
      return true;
    }
    const hash = shortHash(text);
    if (prev && prev.hash === hash) {
      prev.mtimeMs = st.mtimeMs;
      prev.size = st.size;
      return true;
    }
    if (text.length === 0) {
      // Editors that truncate then write leave a moment with an empty file.
      const state = this.keepLastGood(path, prev, st, hash, [{ file: path, line: 0, reason: 'file is empty' }]);
      if (!state.good?.desired.length) state.fatal = []; // nothing to keep: an empty file is just empty
      this.files.set(path, state);
      return true;
    }
    const parsed = parseFile(text, path);
    if (!parsed.good) {
      this.files.set(path, this.keepLastGood(path, prev, st, hash, [...parsed.syntaxErrors]));
      return true;
    }
    this.files.set(path, { mtimeMs: st.mtimeMs, size: st.size, hash, good: parsed.good, fatal: [] });
    this.goodTexts.push({ path: this.rel(path), text });
    return true;
  }

  /** The file's current text is unusable: serve its last good version (from memory, else from the state database). */
  private keepLastGood(path: string, prev: FileState | undefined, st: Stats, hash: string, fatal: ManifestProblem[]): FileState {
    let good = prev?.good;
    let from = 'its last good version';
    if (!good) {
      const saved = this.cache.lastGood(this.rel(path));
      if (saved) {
        const reparsed = parseFile(saved.text, path);
        if (reparsed.good) {
          good = { desired: reparsed.good.desired, skipped: [] };
          from = `its last good version (saved ${new Date(saved.savedAt).toISOString()})`;
        }
      }
    }
    const count = good?.desired.length ?? 0;
    const note = count > 0 ? `; keeping the ${count} object${count === 1 ? '' : 's'} from ${from} until it is fixed` : '; the file is ignored until it is fixed';
    const [first, ...rest] = fatal;
    return { mtimeMs: st.mtimeMs, size: st.size, hash, good, fatal: first ? [{ ...first, reason: first.reason + note }, ...rest] : [] };
  }

  /** One non-recursive fs.watch per folder, keyed by path and inode (recursive watching is unreliable on Linux in Node 20). */
  private syncWatchers(dirs: string[]): void {
    const wanted = new Set(dirs);
    for (const [key, w] of this.watchers) {
      if (wanted.has(key)) continue;
      w.close();
      this.watchers.delete(key);
    }
    for (const key of wanted) {
      if (this.watchers.has(key)) continue;
      const dir = key.slice(0, key.indexOf('\0'));
      try {
        const w = watch(dir, { persistent: false }, () => this.onFsEvent?.());
        w.on('error', () => {
          w.close();
          if (this.watchers.get(key) === w) this.watchers.delete(key);
          this.onFsEvent?.();
        });
        this.watchers.set(key, w);
      } catch {
        // Out of inotify watches, or the folder just went away: the periodic scan still sees changes.
      }
    }
  }
}
