// Kubernetes label selectors (metav1.LabelSelector): parsed once into a matcher, with the
// apimachinery rules for keys, values and operators, so a bad selector is a reason, not a crash.
import type { Parsed } from './ip.js';

/** A LabelSelector as decoded from YAML; operators are checked here, not trusted. */
export interface RawLabelSelector {
  matchLabels?: Record<string, string> | undefined;
  matchExpressions?: { key: string; operator: string; values?: string[] | undefined }[] | undefined;
}

export type Labels = Readonly<Record<string, string>>;

/** A compiled selector: a list of requirements that must all hold. */
export interface Selector {
  readonly requirements: readonly Requirement[];
  /** Canonical text (`a=b,c in (d,e)`), usable to compare two selectors for equality. */
  readonly text: string;
}

type Requirement =
  | { op: 'In' | 'NotIn'; key: string; values: ReadonlySet<string> }
  | { op: 'Exists' | 'DoesNotExist'; key: string };

const nameRe = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$/;
const prefixRe = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const valueRe = /^(([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?)$/;

/** Label keys are `[prefix/]name`: prefix a DNS subdomain up to 253, name up to 63 characters. */
export function labelKeyError(key: unknown): string | undefined {
  if (typeof key !== 'string' || key === '') return 'label key must be a non-empty string';
  const slash = key.lastIndexOf('/');
  const name = slash < 0 ? key : key.slice(slash + 1);
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  if (prefix !== undefined && (prefix.length > 253 || !prefixRe.test(prefix))) {
    return `label key "${key}": prefix must be a DNS subdomain`;
  }
  if (!nameRe.test(name)) return `label key "${key}": name must be 1-63 alphanumerics, '-', '_' or '.'`;
  return undefined;
}

export function labelValueError(value: unknown): string | undefined {
  if (typeof value !== 'string' || !valueRe.test(value) || value.length > 63) {
    return `label value "${String(value)}" must be at most 63 alphanumerics, '-', '_' or '.'`;
  }
  return undefined;
}

/** Compiles a LabelSelector. An absent selector matches everything (as an empty one does). */
export function parseSelector(sel: RawLabelSelector | undefined | null): Parsed<Selector> {
  const reqs: Requirement[] = [];
  const errors: string[] = [];
  for (const [key, value] of Object.entries(sel?.matchLabels ?? {})) {
    const err = labelKeyError(key) ?? labelValueError(value);
    if (err) errors.push(`matchLabels: ${err}`);
    else reqs.push({ op: 'In', key, values: new Set([value]) });
  }
  for (const [i, expr] of (sel?.matchExpressions ?? []).entries()) {
    const where = `matchExpressions[${i}]`;
    const keyErr = labelKeyError(expr.key);
    if (keyErr) {
      errors.push(`${where}: ${keyErr}`);
      continue;
    }
    const values = expr.values ?? [];
    switch (expr.operator) {
      case 'In':
      case 'NotIn': {
        if (values.length === 0) errors.push(`${where}: operator ${expr.operator} needs at least one value`);
        const bad = values.map(labelValueError).find((e) => e !== undefined);
        if (bad) errors.push(`${where}: ${bad}`);
        reqs.push({ op: expr.operator, key: expr.key, values: new Set(values) });
        break;
      }
      case 'Exists':
      case 'DoesNotExist':
        if (values.length > 0) errors.push(`${where}: operator ${expr.operator} takes no values`);
        reqs.push({ op: expr.operator, key: expr.key });
        break;
      default:
        errors.push(`${where}: unknown operator "${String(expr.operator)}" (use In, NotIn, Exists or DoesNotExist)`);
    }
  }
  if (errors.length > 0) return { ok: false, error: errors.join('; ') };
  return { ok: true, value: { requirements: reqs, text: selectorText(reqs) } };
}

function selectorText(reqs: readonly Requirement[]): string {
  return reqs
    .map((r) => {
      switch (r.op) {
        case 'Exists':
          return r.key;
        case 'DoesNotExist':
          return `!${r.key}`;
        case 'In':
        case 'NotIn':
          return `${r.key} ${r.op === 'In' ? 'in' : 'notin'} (${[...r.values].sort().join(',')})`;
      }
    })
    .sort()
    .join(',');
}

export const everything: Selector = { requirements: [], text: '' };

export function selectorMatches(selector: Selector, labels: Labels): boolean {
  for (const r of selector.requirements) {
    const has = Object.hasOwn(labels, r.key);
    switch (r.op) {
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      case 'In':
        if (!has || !r.values.has(labels[r.key]!)) return false;
        break;
      case 'NotIn':
        if (has && r.values.has(labels[r.key]!)) return false;
        break;
    }
  }
  return true;
}
