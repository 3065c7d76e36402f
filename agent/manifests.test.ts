import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { installObjects, manifestsCommand, renderKustomizeBase, renderYAML, type KubeObject } from './manifests.js';

const baseDir = join(import.meta.dirname, '..', 'deploy', 'base');

type Container = { args: string[]; image: string };
const podSpec = (objects: KubeObject[], kind: string) => (objects.find((o) => o.kind === kind)!.spec as { template: { spec: { containers: Container[] } } }).template.spec;
const argValue = (args: string[], flag: string) => args[args.indexOf(flag) + 1];

function run(...args: string[]) {
  let out = '';
  let err = '';
  const code = manifestsCommand(args, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

describe('deploy/base', () => {
  it('matches the committed files (run `npm run gen:deploy` after changing agent/manifests.ts or api/)', () => {
    const rendered = renderKustomizeBase();
    expect(readdirSync(baseDir).sort()).toEqual([...rendered.keys()].sort());
    for (const [name, text] of rendered) expect(readFileSync(join(baseDir, name), 'utf8'), name).toBe(text);
  });
});

describe('installObjects', () => {
  it('puts every namespaced object in the chosen namespace and points the processes at it', () => {
    const objects = installObjects({ namespace: 'lb' });
    const clusterScoped = new Set(['CustomResourceDefinition', 'Namespace', 'ClusterRole', 'ClusterRoleBinding']);
    for (const o of objects) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(clusterScoped.has(o.kind) ? undefined : 'lb');
    expect(objects.find((o) => o.kind === 'Namespace')!.metadata.name).toBe('lb');
    for (const kind of ['Deployment', 'DaemonSet']) expect(argValue(podSpec(objects, kind).containers[0]!.args, '--lease-namespace')).toBe('lb');
    const subjects = objects.flatMap((o) => (o.subjects as { namespace: string }[] | undefined) ?? []);
    expect(subjects.length).toBe(4);
    for (const s of subjects) expect(s.namespace).toBe('lb');
  });

  it('applies every --set key', () => {
    const objects = installObjects({ set: { image: 'registry.example/beacon:dev', 'operator.replicas': '3', 'agent.l2': 'false', 'agent.bgp': 'false', logLevel: 'debug' } });
    const deployment = objects.find((o) => o.kind === 'Deployment')!;
    expect((deployment.spec as { replicas: number }).replicas).toBe(3);
    const agent = podSpec(objects, 'DaemonSet').containers[0]!;
    expect([argValue(agent.args, '--l2-announcements'), argValue(agent.args, '--bgp'), argValue(agent.args, '--log-level')]).toEqual(['false', 'false', 'debug']);
    for (const kind of ['Deployment', 'DaemonSet']) expect(podSpec(objects, kind).containers[0]!.image).toBe('registry.example/beacon:dev');
  });

  it('refuses unknown keys and bad values with a message that names them', () => {
    expect(() => installObjects({ set: { replicas: '3' } })).toThrow(/unknown --set key "replicas" \(known: image, operator\.replicas, agent\.l2, agent\.bgp, agent\.kubeProxyReplacement, logLevel\)/);
    expect(() => installObjects({ set: { 'operator.replicas': '0' } })).toThrow(/operator\.replicas=0/);
    expect(() => installObjects({ set: { 'agent.bgp': 'yes' } })).toThrow(/agent\.bgp=yes: true or false/);
    expect(() => installObjects({ set: { logLevel: 'loud' } })).toThrow(/logLevel=loud/);
    expect(() => installObjects({ namespace: 'Beacon_System' })).toThrow(/DNS label/);
  });

  it('renders YAML that reads back as the same objects, booleans in args kept as strings', () => {
    const objects = installObjects();
    const docs = parseAllDocuments(renderYAML(objects), { version: '1.1' }).map((d) => d.toJS() as unknown);
    expect(docs).toEqual(objects);
  });
});

describe('beacon manifests', () => {
  it('prints the install for the namespace and settings given', () => {
    const r = run('--namespace', 'lb', '--set', 'agent.bgp=false', '--set', 'logLevel=warn');
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    expect(r.out).toBe(renderYAML(installObjects({ namespace: 'lb', set: { 'agent.bgp': 'false', logLevel: 'warn' } })));
  });

  it('exits 2 with the usage on bad input', () => {
    for (const args of [['--set', 'nope=1'], ['--set', 'image'], ['--bogus'], ['-n', 'UPPER']]) {
      const r = run(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.out).toBe('');
      expect(r.err).toMatch(/^beacon: .+\n\nUsage: beacon manifests/);
    }
  });

  it('prints its usage for --help', () => {
    const r = run('--help');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/agent\.l2=true\|false/);
  });
});
