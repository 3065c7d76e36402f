// Runtime validation against the TypeBox schemas, with errors a person can act on
// (`spec.blocks[0].cidrr: unknown field`).
import type { TSchema, Static } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { ValueErrorType } from '@sinclair/typebox/errors';

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();

function checker<T extends TSchema>(schema: T): TypeCheck<T> {
  let check = compiled.get(schema);
  if (!check) {
    check = TypeCompiler.Compile(schema);
    compiled.set(schema, check);
  }
  return check as TypeCheck<T>;
}

/** JSON pointer `/spec/blocks/0/cidr` to `spec.blocks[0].cidr`. */
function pathText(pointer: string): string {
  const parts = pointer.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  let out = '';
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : out === '' ? p : `.${p}`;
  return out === '' ? '(object)' : out;
}

/** A union of literals reads better as its list of allowed values. */
function enumText(schema: TSchema): string | undefined {
  const branches = (schema as { anyOf?: { const?: unknown }[] }).anyOf;
  if (!branches || !branches.every((b) => b.const !== undefined)) return undefined;
  return `must be one of ${branches.map((b) => JSON.stringify(b.const)).join(', ')}`;
}

export type Validated<T> = { ok: true; value: T } | { ok: false; errors: string[] };

/** Checks a value against a schema; returns at most `limit` distinct errors. */
export function validate<T extends TSchema>(schema: T, value: unknown, limit = 5): Validated<Static<T>> {
  const check = checker(schema);
  if (check.Check(value)) return { ok: true, value };
  const errors: string[] = [];
  for (const e of check.Errors(value)) {
    // Unions report every failed branch; the first error per path is the useful one.
    const path = pathText(e.path);
    if (errors.some((x) => x.startsWith(`${path}:`))) continue;
    const message =
      e.type === ValueErrorType.ObjectAdditionalProperties
        ? 'unknown field'
        : e.type === ValueErrorType.ObjectRequiredProperty
          ? 'required field missing'
          : (enumText(e.schema) ?? e.message.charAt(0).toLowerCase() + e.message.slice(1));
    errors.push(`${path}: ${message}`);
    if (errors.length >= limit) break;
  }
  return { ok: false, errors };
}
