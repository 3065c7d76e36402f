// The fast reader must never disagree with the yaml library: whenever it answers, the library
// reads the same text without errors and gives the same documents, values (key order included)
// and lines. Checked on the repository's own YAML, on generated manifests in many styles, and on
// randomly damaged ones.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LineCounter, parseAllDocuments } from 'yaml';
import { readPlainYaml } from './plain-yaml.js';

/** Values in a canonical text that keeps key order and tells -0, NaN and Infinity apart. */
function show(v: unknown): string {
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (Array.isArray(v)) return `[${v.map(show).join(',')}]`;
  if (v !== null && typeof v === 'object') return `{${Object.keys(v).map((k) => `${JSON.stringify(k)}:${show((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

/**
 * What the library makes of a text: its documents, or undefined when it reports an error. Empty
 * and null documents are left out on both sides: manifests skip them (decodeObject), and the two
 * readers need not agree on where an empty document starts.
 */
function library(text: string): { value: string; line: number }[] | undefined {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  if (list.some((d) => d.errors.length > 0)) return undefined;
  return list
    .map((d) => ({ js: d.toJS({ maxAliasCount: 100 }) as unknown, line: d.contents ? lines.linePos(d.contents.range[0]).line : 0 }))
    .filter((d) => d.js !== null && d.js !== undefined)
    .map((d) => ({ value: show(d.js), line: d.line }));
}

/** Checks the contract on one text; true when the fast reader answered. */
function agrees(text: string): boolean {
  const fast = readPlainYaml(text);
  if (!fast) return false;
  const expected = library(text);
  expect(expected, `the library rejects what the fast reader accepted:\n${text}`).toBeDefined();
  expect(fast.filter((d) => d.value !== null).map((d) => ({ value: show(d.value), line: d.line })), text).toEqual(expected);
  return true;
}

function yamlFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yamlFiles(path, out);
    else if (/\.ya?ml$/.test(name)) out.push(path);
  }
  return out;
}

const service = (i: number): string => `apiVersion: v1
kind: Service
metadata:
  name: svc-${i}
  namespace: team-${i % 7}
  labels:
    app: svc-${i}
    app.kubernetes.io/part-of: "suite"
  annotations:
    beacon.io/sharing-key: shared-${i % 3}  # grouped
    beacon.io/ips: '198.18.0.${i}'
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  selector: {app: svc-${i}}
  ports:
  - name: https
    port: 443
    targetPort: 8443
    protocol: TCP
  - {name: metrics, port: 9090, protocol: TCP}
`;

// ---- generated manifests -------------------------------------------------------------------------

const trickyKeys = ['apiVersion', 'kind', 'name', 'app', 'app.kubernetes.io/name', 'on', 'yes', 'true', 'null', '80', '0x1F', 'a b', 'x:y', '-x', 'constructor', 'toString', '', 'ü', 'k#v', "it's"];
const trickyStrings = [
  '', ' ', 'web', 'True', 'TRUE', 'yes', 'no', 'on', 'null', 'Null', '~', '0x1F', '0o17', '017', '08', '1e3', '1.5', '.5', '5.', '.inf', '-.Inf', '.nan', '+1', '-0',
  '-', '--', '---', '- a', '-a', 'a: b', 'a:b', 'a:', ':a', 'a #b', 'a#b', '#x', '@x', '%x', '!x', '&x', '*x', '|', '>', '?', '? x', 'x,y', '[x]', '{x}', 'x]', 'x}',
  "it's", 'say "hi"', 'a\\b', 'tab\there', 'ünïcode ✓', 'http://x:80/p', '198.18.0.1', '2001:db8::1', '2001:db8::/64', 'a  b', ' lead', 'trail ', 'line\nbreak', '\u2028',
];

interface Style {
  indent: number;
  compactSeq: boolean;
  flowProbability: number;
  comments: boolean;
}

const scalarText = (v: unknown, quote: number): string => {
  if (typeof v !== 'string') return String(v);
  if (quote === 1) return `'${v.replace(/'/g, "''")}'`;
  if (quote === 2) return JSON.stringify(v);
  return v; // plain, careless on purpose: the text means whatever the library says it means
};

/** Renders a value as YAML in a random style; sloppy on purpose, so the texts cover odd corners. */
function render(v: unknown, style: Style, pick: () => number, depth: number): string[] {
  const pad = ' '.repeat(style.indent);
  const comment = (): string => (style.comments && pick() < 0.15 ? ' # note' : '');
  if (Array.isArray(v) || (v !== null && typeof v === 'object')) {
    if (pick() < style.flowProbability) return [flowText(v, pick) + comment()];
    const entries = Array.isArray(v) ? v.map((x) => [undefined, x] as const) : Object.entries(v as Record<string, unknown>);
    if (entries.length === 0) return [Array.isArray(v) ? '[]' : '{}'];
    const out: string[] = [];
    for (const [k, x] of entries) {
      const head = k === undefined ? '-' : `${scalarText(k, Math.floor(pick() * 3))}:`;
      const nested = x !== null && typeof x === 'object' && (Array.isArray(x) ? x.length > 0 : Object.keys(x as object).length > 0);
      if (style.comments && pick() < 0.1) out.push('# a comment line');
      if (pick() < 0.05) out.push('');
      if (!nested) {
        out.push(`${head} ${render(x, style, pick, depth + 1)[0]!}${comment()}`);
        continue;
      }
      const inner = render(x, style, pick, depth + 1);
      if (inner.length === 1 && !inner[0]!.startsWith('-') && !/^[^'"[{].*: /.test(inner[0]!)) {
        out.push(`${head} ${inner[0]!}`);
      } else if (k === undefined && !Array.isArray(x) && pick() < 0.6) {
        out.push(`- ${inner[0]!}`, ...inner.slice(1).map((l) => `  ${l}`)); // `- key: value` items
      } else {
        out.push(head + comment());
        const sameIndent = Array.isArray(x) && k !== undefined && style.compactSeq;
        out.push(...inner.map((l) => (sameIndent ? l : pad + l)));
      }
    }
    return out;
  }
  return [scalarText(v, Math.floor(pick() * 3))];
}

function flowText(v: unknown, pick: () => number): string {
  if (Array.isArray(v)) return `[${v.map((x) => flowText(x, pick)).join(pick() < 0.5 ? ', ' : ',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.entries(v)
      .map(([k, x]) => `${scalarText(k, Math.floor(pick() * 3))}: ${flowText(x, pick)}`)
      .join(', ')}}`;
  }
  return scalarText(v, Math.floor(pick() * 3));
}

const valueArb = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(...trickyStrings),
    fc.integer({ min: -100000, max: 100000 }),
    fc.double({ noNaN: false }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.constantFrom(...trickyKeys), tie('value'), { maxKeys: 5 }),
  ),
})).value;

const docArb = fc.record({
  docs: fc.array(fc.dictionary(fc.constantFrom(...trickyKeys), valueArb, { minKeys: 1, maxKeys: 6 }), { minLength: 1, maxLength: 3 }),
  style: fc.record({ indent: fc.constantFrom(1, 2, 4), compactSeq: fc.boolean(), flowProbability: fc.constantFrom(0, 0.2, 0.6), comments: fc.boolean() }),
  seed: fc.integer(),
});

function textOf({ docs, style, seed }: { docs: Record<string, unknown>[]; style: Style; seed: number }): string {
  let s = seed >>> 0;
  const pick = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  return docs.map((d, i) => (i > 0 || pick() < 0.3 ? '---\n' : '') + render(d, style, pick, 0).join('\n') + '\n').join('');
}

describe('readPlainYaml', () => {
  it('reads typical manifests (so that the fast path is really taken)', () => {
    const text = Array.from({ length: 20 }, (_, i) => service(i)).join('---\n');
    expect(agrees(text)).toBe(true);
    expect(readPlainYaml(text)).toHaveLength(20);
    expect(readPlainYaml(text)![3]!.line).toBe(3 * service(0).split('\n').length + 1);
    expect(agrees(readFileSync(join(import.meta.dirname, '../../examples/services.yaml'), 'utf8'))).toBe(true);
    expect(agrees(readFileSync(join(import.meta.dirname, '../../examples/pools.yaml'), 'utf8'))).toBe(true);
  });

  it('agrees with the yaml library on every YAML file in the repository', () => {
    const files = yamlFiles(join(import.meta.dirname, '../..'));
    expect(files.length).toBeGreaterThan(1);
    for (const f of files) agrees(readFileSync(f, 'utf8'));
  });

  it('gives up on what it does not handle', () => {
    for (const text of [
      'a: &x 1\nb: *x\n',
      'a: !!str 1\n',
      'a: |\n  text\n',
      'a: >\n  text\n',
      'a: multi\n  line\n',
      'a: "open\n  quote"\n',
      'a: [1,\n  2]\n',
      'a: 1\na: 2\n',
      '? a\n: b\n',
      'a:\tb\n',
      'a: b\r\n',
      '%YAML 1.2\n---\na: b\n',
      '--- a\n',
      'a: b\n...\n',
      'a: b: c\n',
      '- a\nb: c\n',
      'a:\n  b: 1\n c: 2\n',
      '__proto__: x\n',
      '<<: {a: 1}\n',
      '{a: 1}: b\n',
      'a: "\\x41"\n',
    ]) {
      expect(readPlainYaml(text), JSON.stringify(text)).toBeUndefined();
    }
  });

  it('agrees with the library on generated manifests in many styles', () => {
    let answered = 0;
    fc.assert(
      fc.property(docArb, (d) => {
        if (agrees(textOf(d))) answered++;
      }),
      { numRuns: Number(process.env['PLAIN_YAML_RUNS'] ?? 3000) },
    );
    expect(answered).toBeGreaterThan(300); // the generator reaches the fast path often
  });

  it('never accepts a damaged manifest the library reads differently', () => {
    const alphabet = [':', ' ', '-', '#', "'", '"', '[', ']', '{', '}', ',', '\n', '  ', 'a', '0', '.', '\\', '|', '&', '*', '!', '?', '%', '@', '~'];
    fc.assert(
      fc.property(
        docArb,
        fc.array(fc.record({ at: fc.nat(), op: fc.constantFrom('insert', 'delete', 'replace'), ch: fc.constantFrom(...alphabet) }), { minLength: 1, maxLength: 4 }),
        (d, edits) => {
          let text = textOf(d);
          for (const e of edits) {
            const at = e.at % (text.length + 1);
            text = e.op === 'insert' ? text.slice(0, at) + e.ch + text.slice(at) : e.op === 'delete' ? text.slice(0, at) + text.slice(at + 1) : text.slice(0, at) + e.ch + text.slice(at + 1);
          }
          agrees(text);
        },
      ),
      { numRuns: Number(process.env['PLAIN_YAML_RUNS'] ?? 5000) },
    );
  });
});
