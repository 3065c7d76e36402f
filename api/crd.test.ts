import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { renderCRDs } from './crd.js';

const dir = join(import.meta.dirname, '..', 'deploy', 'crds');

type Node = Record<string, unknown>;

/** Every rule of a Kubernetes structural schema this generator must keep. */
function structuralProblems(node: Node, path: string): string[] {
  const problems: string[] = [];
  if (typeof node.type !== 'string') problems.push(`${path}: no type`);
  if ('$ref' in node) problems.push(`${path}: $ref`);
  for (const k of ['anyOf', 'oneOf', 'allOf', 'patternProperties', 'const']) if (k in node) problems.push(`${path}: ${k}`);
  if ('properties' in node && 'additionalProperties' in node) problems.push(`${path}: properties beside additionalProperties`);
  for (const [k, v] of Object.entries((node.properties as Record<string, Node> | undefined) ?? {})) problems.push(...structuralProblems(v, `${path}.${k}`));
  if (node.items) problems.push(...structuralProblems(node.items as Node, `${path}[]`));
  if (typeof node.additionalProperties === 'object') problems.push(...structuralProblems(node.additionalProperties as Node, `${path}{}`));
  return problems;
}

describe('generated CRDs', () => {
  const rendered = renderCRDs();

  it('match the committed files in deploy/crds (run `npm run gen:crds` after changing api/)', () => {
    const committed = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();
    expect(committed).toEqual([...rendered.keys()].sort());
    for (const [name, text] of rendered) expect(readFileSync(join(dir, name), 'utf8'), name).toBe(text);
  });

  it('are structural schemas in group beacon.io, version v1alpha1', () => {
    for (const [name, text] of rendered) {
      const crd = parse(text) as { spec: { group: string; versions: { name: string; schema: { openAPIV3Schema: Node } }[] } };
      expect(crd.spec.group).toBe('beacon.io');
      expect(crd.spec.versions.map((v) => v.name)).toEqual(['v1alpha1']);
      expect(structuralProblems(crd.spec.versions[0]!.schema.openAPIV3Schema, name)).toEqual([]);
    }
  });

  it('write literal unions as enums and maps as additionalProperties', () => {
    const pool = parse(rendered.get('beacon.io_loadbalancerippools.yaml')!) as { spec: { scope: string; versions: { schema: { openAPIV3Schema: Node } }[] } };
    expect(pool.spec.scope).toBe('Cluster');
    const spec = (pool.spec.versions[0]!.schema.openAPIV3Schema.properties as Record<string, Node>).spec!;
    const props = spec.properties as Record<string, Node>;
    expect(props.allowFirstLastIPs).toMatchObject({ type: 'string', enum: ['Yes', 'No'] });
    expect(props.priority).toMatchObject({ type: 'integer' });
    const selector = props.serviceSelector!.properties as Record<string, Node>;
    expect(selector.matchLabels).toEqual({ type: 'object', additionalProperties: { type: 'string' } });
    expect(spec.required).toEqual(['blocks']);
  });
});
