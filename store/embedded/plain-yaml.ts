// A fast reader for the YAML that manifests are written in: block mappings and sequences, one-line
// plain and quoted scalars, one-line flow collections, comments and `---`. The yaml library reads
// about 2 MB/s, and a folder of 10,000 Services is 4.5 MB: most of the time to the first
// assignment. Anything outside this subset (anchors, aliases, tags, block or multi-line scalars,
// tabs, CR line ends, duplicate keys, directives, anything odd) makes it give up, and the caller
// then reads the file with the yaml library, so the outcome is always the library's: the tests
// check that whenever this reader answers, the library gives the same values and lines.
//
// Scalars resolve as in the library's default YAML 1.2 core schema: null, true/false, decimal,
// 0o octal and 0x hex integers, floats, .inf and .nan; everything else is a string.

export interface PlainDocument {
  readonly value: unknown;
  /** 1-based line of the document's first content line. */
  readonly line: number;
}

/** Thrown (one instance) to leave the subset; never escapes readPlainYaml. */
const giveUp = new Error('not plain YAML');

interface Line {
  readonly indent: number;
  /** After the indentation, without trailing spaces; never empty, never a comment line. */
  readonly text: string;
  readonly number: number;
}

/** The documents of `text`, or undefined when it is not in the subset (use the yaml library then). */
export function readPlainYaml(text: string): PlainDocument[] | undefined {
  try {
    return documents(text);
  } catch (e) {
    if (e === giveUp) return undefined;
    throw e;
  }
}

// Tabs, CR, BOM, control characters and the characters YAML or JavaScript may treat as line breaks.
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const unsupported = /[\t\r\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u0085\u2028\u2029\ufeff]/;

function documents(text: string): PlainDocument[] {
  if (unsupported.test(text)) throw giveUp;
  const out: PlainDocument[] = [];
  let lines: Line[] = [];
  const finish = (): void => {
    if (lines.length > 0) out.push({ value: new Reader(lines).document(), line: lines[0]!.number });
    lines = [];
  };
  const raw = text.split('\n');
  for (let i = 0; i < raw.length; i++) {
    const line = raw[i]!.trimEnd();
    if (line.startsWith('---')) {
      if (line !== '---' && !/^--- +#/.test(line)) throw giveUp; // content on the marker line, or `---x`
      finish();
      continue;
    }
    if (line.startsWith('...') || line.startsWith('%')) throw giveUp; // document end, directives
    let indent = 0;
    while (line.charCodeAt(indent) === 32) indent++;
    if (indent === line.length || line[indent] === '#') continue; // blank or comment line
    lines.push({ indent, text: line.slice(indent), number: i + 1 });
  }
  finish();
  return out;
}

const isSeqItem = (text: string): boolean => text === '-' || text.startsWith('- ');

/** Sets a key as the yaml library does on a plain object (defineProperty for names already present, e.g. `constructor`). */
function setKey(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key in obj) Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  else obj[key] = value;
}

class Reader {
  private pos = 0;
  constructor(private readonly lines: Line[]) {}

  document(): unknown {
    const value = this.block(-1);
    if (this.pos !== this.lines.length) throw giveUp;
    return value;
  }

  /** The node starting at the current line, whose indentation is more than `parent`. */
  private block(parent: number): unknown {
    const line = this.lines[this.pos]!;
    if (isSeqItem(line.text)) return this.sequence(line.indent);
    const entry = mappingEntry(line.text);
    if (entry) return this.mapping(line.indent, entry);
    this.pos++;
    const value = inlineValue(line.text);
    if (this.moreIndented(parent)) throw giveUp; // a scalar continued on the next line
    return value;
  }

  private moreIndented(than: number): boolean {
    return this.pos < this.lines.length && this.lines[this.pos]!.indent > than;
  }

  /** A block mapping; `first` is its first line's entry, already read. */
  private mapping(indent: number, first: { key: string; rest: string }): Record<string, unknown> {
    const obj: Record<string, unknown> = {};
    const seen = new Set<string>();
    let next: { key: string; rest: string } | undefined = first;
    while (this.pos < this.lines.length && this.lines[this.pos]!.indent === indent) {
      const entry = next ?? mappingEntry(this.lines[this.pos]!.text);
      next = undefined;
      if (!entry || seen.has(entry.key)) throw giveUp; // duplicate keys are the library's error to report
      seen.add(entry.key);
      this.pos++;
      let value: unknown = null;
      if (entry.rest !== '') {
        value = inlineValue(entry.rest);
        if (this.moreIndented(indent)) throw giveUp;
      } else if (this.moreIndented(indent)) {
        value = this.block(indent);
      } else if (this.pos < this.lines.length && this.lines[this.pos]!.indent === indent && isSeqItem(this.lines[this.pos]!.text)) {
        value = this.sequence(indent); // `key:` followed by `- item` at the key's own indentation
      }
      setKey(obj, entry.key, value);
    }
    if (this.moreIndented(indent)) throw giveUp;
    return obj;
  }

  private sequence(indent: number): unknown[] {
    const items: unknown[] = [];
    while (this.pos < this.lines.length && this.lines[this.pos]!.indent === indent && isSeqItem(this.lines[this.pos]!.text)) {
      const line = this.lines[this.pos]!;
      let spaces = 1;
      while (line.text.charCodeAt(spaces) === 32) spaces++;
      const rest = line.text.slice(spaces);
      if (rest === '' || rest[0] === '#') {
        this.pos++;
        items.push(this.moreIndented(indent) ? this.block(indent) : null);
        continue;
      }
      // `- key: value` or `- scalar`: the item starts where its text does.
      this.lines[this.pos] = { indent: indent + spaces, text: rest, number: line.number };
      items.push(this.block(indent));
    }
    if (this.moreIndented(indent)) throw giveUp;
    return items;
  }
}

/** `key: rest` (rest '' when the value follows on the next lines), or undefined when the line is not a mapping entry. */
function mappingEntry(text: string): { key: string; rest: string } | undefined {
  let key: string;
  let after: number;
  const c = text[0]!;
  if (c === '"' || c === "'") {
    const q = quoted(text, 0);
    let j = q.end;
    while (text.charCodeAt(j) === 32) j++;
    if (text[j] !== ':' || (j + 1 < text.length && text[j + 1] !== ' ')) return undefined;
    key = q.value;
    after = j + 1;
  } else {
    if (c === '[' || c === '{') return undefined;
    let i = 0;
    for (; i < text.length; i++) {
      const ch = text[i];
      if (ch === ':' && (i + 1 === text.length || text[i + 1] === ' ')) break;
      if (ch === '#' && i > 0 && text[i - 1] === ' ') return undefined; // the rest is a comment
    }
    if (i === text.length) return undefined;
    const plain = text.slice(0, i).trimEnd();
    checkPlain(plain, false);
    key = keyName(resolvePlain(plain));
    after = i + 1;
  }
  if (key === '__proto__' || key === '<<' || key.length > 1000) throw giveUp;
  let rest = text.slice(after).trimStart();
  if (rest.startsWith('#')) rest = '';
  return { key, rest };
}

/** A value written on the same line as its key or dash: a scalar or a flow collection, maybe with a comment. */
function inlineValue(text: string): unknown {
  const c = text[0]!;
  if (c === '"' || c === "'" || c === '[' || c === '{') {
    const { value, end } = c === '[' || c === '{' ? flow(text, 0) : quoted(text, 0);
    const tail = text.slice(end);
    if (tail !== '' && !(tail[0] === ' ' && (tail.trim() === '' || tail.trimStart()[0] === '#'))) throw giveUp;
    return value;
  }
  const comment = text.indexOf(' #');
  const plain = (comment < 0 ? text : text.slice(0, comment)).trimEnd();
  checkPlain(plain, false);
  return resolvePlain(plain);
}

/** A plain scalar this reader is sure about, in block or flow context; anything else gives up. */
function checkPlain(text: string, inFlow: boolean): void {
  if (text === '') throw giveUp;
  const c = text[0]!;
  if ('?:,[]{}#&*!|>\'"%@`'.includes(c)) throw giveUp;
  if (c === '-' && (text.length === 1 || text[1] === ' ')) throw giveUp;
  if (text.includes(': ') || text.endsWith(':') || text.includes(' #')) throw giveUp;
  if (inFlow && /[,[\]{}]/.test(text)) throw giveUp;
}

/** A scalar key as the yaml library names the property of a plain object. */
const keyName = (v: string | number | boolean | null): string => (v === null ? '' : String(v));

function resolvePlain(s: string): string | number | boolean | null {
  // Most scalars are names: a letter that starts no null, boolean or number is a string.
  const c = s.charCodeAt(0);
  if (((c >= 97 && c <= 122) || (c >= 65 && c <= 90)) && !'nNtTfF'.includes(s[0]!)) return s;
  if (/^(?:~|[Nn]ull|NULL)?$/.test(s)) return null;
  if (/^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/.test(s)) return s[0] === 't' || s[0] === 'T';
  if (/^0o[0-7]+$/.test(s)) return parseInt(s.substring(2), 8);
  if (/^[-+]?[0-9]+$/.test(s)) return parseInt(s, 10);
  if (/^0x[0-9a-fA-F]+$/.test(s)) return parseInt(s.substring(2), 16);
  if (/^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/.test(s)) {
    return s.slice(-3).toLowerCase() === 'nan' ? NaN : s[0] === '-' ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  }
  if (/^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/.test(s) || /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/.test(s)) return parseFloat(s);
  return s;
}

const escapes: Record<string, string> = { '\\': '\\', '"': '"', '/': '/', n: '\n', t: '\t', r: '\r', '0': '\0', b: '\b', f: '\f' };

/** A quoted scalar closed on the same line; `end` is just past the closing quote. */
function quoted(text: string, start: number): { value: string; end: number } {
  const q = text[start];
  let value = '';
  let i = start + 1;
  if (q === "'") {
    for (;;) {
      const close = text.indexOf("'", i);
      if (close < 0) throw giveUp; // continues on the next line
      value += text.slice(i, close);
      if (text[close + 1] === "'") {
        value += "'";
        i = close + 2;
        continue;
      }
      return { value, end: close + 1 };
    }
  }
  for (;;) {
    const close = text.slice(i).search(/["\\]/);
    if (close < 0) throw giveUp;
    const at = i + close;
    value += text.slice(i, at);
    if (text[at] === '"') return { value, end: at + 1 };
    const e = text[at + 1];
    if (e === 'u') {
      const hex = text.slice(at + 2, at + 6);
      if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw giveUp;
      value += String.fromCharCode(parseInt(hex, 16));
      i = at + 6;
      continue;
    }
    const plain = e === undefined ? undefined : escapes[e];
    if (plain === undefined) throw giveUp;
    value += plain;
    i = at + 2;
  }
}

const skipSpaces = (text: string, i: number): number => {
  while (text.charCodeAt(i) === 32) i++;
  return i;
};

/** A flow collection (`[a, b]`, `{k: v}`) closed on the same line. */
function flow(text: string, start: number): { value: unknown; end: number } {
  const open = text[start];
  const close = open === '[' ? ']' : '}';
  let i = skipSpaces(text, start + 1);
  if (text[i] === close) return { value: open === '[' ? [] : {}, end: i + 1 };
  const items: unknown[] = [];
  const obj: Record<string, unknown> = {};
  const seen = new Set<string>();
  for (;;) {
    if (open === '[') {
      const item = flowItem(text, i, false);
      items.push(item.value);
      i = item.end;
    } else {
      const key = flowItem(text, i, true);
      const name = keyName(key.value as string | number | boolean | null); // flowItem gives keys as scalars only
      if (name === '__proto__' || name === '<<' || seen.has(name)) throw giveUp;
      seen.add(name);
      i = skipSpaces(text, key.end);
      if (text[i] !== ':') throw giveUp;
      i = skipSpaces(text, i + 1);
      if (text[i] === ',' || text[i] === '}') throw giveUp; // a key without a value
      const value = flowItem(text, i, false);
      setKey(obj, name, value.value);
      i = value.end;
    }
    i = skipSpaces(text, i);
    if (text[i] === close) return { value: open === '[' ? items : obj, end: i + 1 };
    if (text[i] !== ',') throw giveUp; // unclosed on this line, or something unexpected
    i = skipSpaces(text, i + 1);
    if (text[i] === close) throw giveUp; // a trailing comma
  }
}

/** One entry of a flow collection; a key stops at its `:`. */
function flowItem(text: string, start: number, isKey: boolean): { value: unknown; end: number } {
  const c = text[start];
  if (c === undefined) throw giveUp;
  if (c === '"' || c === "'") {
    const q = quoted(text, start);
    if (!isKey && text[skipSpaces(text, q.end)] === ':') throw giveUp; // a pair inside a sequence
    return q;
  }
  if (c === '[' || c === '{') {
    if (isKey) throw giveUp;
    return flow(text, start);
  }
  let i = start;
  for (; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === ',' || ch === ']' || ch === '}' || ch === '[' || ch === '{') break;
    if (ch === ':' && (i + 1 === text.length || ' ,]}'.includes(text[i + 1]!))) {
      if (!isKey) throw giveUp; // a pair inside a sequence, or `k: v: w`
      break;
    }
    if (ch === '#' && text[i - 1] === ' ') throw giveUp;
  }
  const plain = text.slice(start, i).trimEnd();
  checkPlain(plain, true);
  return { value: resolvePlain(plain), end: i };
}
