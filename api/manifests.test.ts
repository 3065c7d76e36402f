import { describe, expect, it } from 'vitest';
import { parseManifests } from './manifests.js';

const pool = (name: string, extra = '') => `apiVersion: beacon.io/v1alpha1
kind: LoadBalancerIPPool
metadata:
  name: ${name}
spec:
  blocks:
    - cidr: 198.18.0.0/24${extra}
`;

describe('parseManifests', () => {
  it('reads multi-document YAML and remembers where each object starts', () => {
    const text = `# comment\n${pool('a')}---\napiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: n}\nspec: {type: LoadBalancer}\n`;
    const r = parseManifests(text, 'x.yaml');
    expect(r.syntaxErrors).toEqual([]);
    expect(r.skipped).toEqual([]);
    expect(r.objects.map((o) => [o.kind, o.object.metadata.name, o.line])).toEqual([
      ['LoadBalancerIPPool', 'a', 2],
      ['Service', 's', 10],
    ]);
  });

  it('skips objects that break their schema, by name, and keeps the rest', () => {
    const text = `${pool('bad', '\n  colour: blue')}---\n${pool('good')}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n`;
    const r = parseManifests(text, 'x.yaml');
    expect(r.objects.map((o) => o.object.metadata.name)).toEqual(['good']);
    expect(r.skipped).toEqual([
      { file: 'x.yaml', line: 1, kind: 'LoadBalancerIPPool', name: 'bad', reason: 'spec.colour: unknown field' },
      { file: 'x.yaml', line: 18, kind: 'ConfigMap', name: 'c', reason: 'unsupported object v1/ConfigMap' },
    ]);
  });

  it('reports YAML syntax errors with the line', () => {
    const r = parseManifests(`${pool('a')}---\nkind: [unclosed\n`, 'broken.yaml');
    expect(r.syntaxErrors.length).toBeGreaterThan(0);
    expect(r.syntaxErrors[0]).toMatchObject({ file: 'broken.yaml' });
    expect(r.syntaxErrors[0]!.line).toBeGreaterThanOrEqual(9);
  });

  it('reads kubectl List objects and ignores empty documents', () => {
    const text = `---\n---\napiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Service\n    metadata: {name: s}\n    spec: {type: LoadBalancer}\n`;
    const r = parseManifests(text, 'list.yaml');
    expect(r.objects.map((o) => o.object.metadata.name)).toEqual(['s']);
  });

  it('refuses duplicate keys and alias bombs instead of guessing', () => {
    expect(parseManifests('a: 1\na: 2\n', 'dup.yaml').syntaxErrors.length).toBe(1);
    const bomb = ['a: &a [x,x,x,x,x,x,x,x,x,x]', ...Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(',')}]`)].join('\n');
    expect(parseManifests(bomb, 'bomb.yaml').syntaxErrors.length).toBe(1);
  });
});
