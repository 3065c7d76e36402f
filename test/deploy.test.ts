// The cluster install as kubectl sees it: `kubectl kustomize deploy/base` rendered offline, every
// object checked for consistency and least privilege, and the container build checked against
// the repository it copies from.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { agentCapabilities, installObjects, type KubeObject } from '../agent/manifests.js';
import { crdSources, group } from '../api/index.js';

const root = join(import.meta.dirname, '..');
const namespace = 'beacon-system';

function kustomize(dir: string): KubeObject[] {
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir}: ${r.error?.message ?? r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as KubeObject);
}

const key = (o: KubeObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
const byKey = (objects: KubeObject[]) => new Map(objects.map((o) => [key(o), o]));

interface Container {
  name: string;
  image: string;
  args: string[];
  env?: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports: { name: string; containerPort: number; hostPort?: number }[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  securityContext: { runAsNonRoot?: boolean; privileged?: boolean; allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; capabilities: { drop?: string[]; add?: string[] } };
  volumeMounts: { name: string; mountPath: string; mountPropagation?: string; readOnly?: boolean }[];
}
interface PodSpec {
  serviceAccountName: string;
  hostNetwork?: boolean;
  hostPID?: boolean;
  dnsPolicy?: string;
  tolerations?: { operator: string; key?: string }[];
  securityContext: { runAsNonRoot?: boolean; runAsUser?: number };
  containers: Container[];
  initContainers?: Container[];
  volumes: { name: string; hostPath?: { path: string }; emptyDir?: object }[];
}
interface Workload extends KubeObject {
  spec: { replicas?: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
}
interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

/**
 * Least privilege, written out by hand: `group/resource` to the verbs, for each role. Anything
 * the generated roles grant beyond this, or fail to grant, fails the test.
 */
const read = 'get,list,watch';
const beaconRead = Object.fromEntries(crdSources.map((s) => [`${group}/${s.plural}`, read]));
const expectedRBAC: Record<string, Record<string, string>> = {
  'ClusterRole/beacon-operator': {
    '/services': read,
    '/services/status': 'patch',
    '/nodes': read,
    'discovery.k8s.io/endpointslices': read,
    ...beaconRead,
    ...Object.fromEntries(crdSources.map((s) => [`${group}/${s.plural}/status`, 'patch'])),
    'events.k8s.io/events': 'create,patch',
  },
  'ClusterRole/beacon-agent': {
    '/services': read,
    '/nodes': read,
    'discovery.k8s.io/endpointslices': read,
    ...beaconRead,
    'events.k8s.io/events': 'create,patch',
  },
  'Role/beacon-operator': {
    'coordination.k8s.io/leases': 'create,get,list,update,watch',
  },
  'Role/beacon-agent': {
    'coordination.k8s.io/leases': 'create,get,list,update,watch',
    '/secrets': read,
  },
};

function grants(rules: Rule[]): Record<string, string> {
  const verbs = new Map<string, Set<string>>();
  for (const r of rules) for (const g of r.apiGroups) for (const res of r.resources) for (const v of r.verbs) verbs.set(`${g}/${res}`, (verbs.get(`${g}/${res}`) ?? new Set()).add(v));
  return Object.fromEntries([...verbs].map(([k, v]) => [k, [...v].sort().join(',')]));
}

const objects = kustomize(join(root, 'deploy', 'base'));
const find = <T extends KubeObject>(kind: string, name: string) => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name}`);
  return o as T;
};
const operator = find<Workload>('Deployment', 'beacon-operator');
const agent = find<Workload>('DaemonSet', 'beacon-agent');
const workloads = [operator, agent];
const flag = (args: string[], name: string) => {
  const at = args.indexOf(name);
  return at < 0 ? undefined : args[at + 1];
};

describe('kubectl kustomize deploy/base', () => {
  it('renders exactly the objects of installObjects()', () => {
    const expected = byKey(installObjects());
    const rendered = byKey(objects);
    expect([...rendered.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [k, o] of rendered) expect(o, k).toEqual(expected.get(k));
  });

  it('has the expected kinds, namespaced objects in the install namespace', () => {
    const kinds = objects.map((o) => o.kind).sort();
    expect(kinds).toEqual(
      [
        ...crdSources.map(() => 'CustomResourceDefinition'),
        'Namespace',
        ...['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'Service'].flatMap((k) => [k, k]),
        'Deployment',
        'PodDisruptionBudget',
        'DaemonSet',
      ].sort(),
    );
    const clusterScoped = new Set(['CustomResourceDefinition', 'Namespace', 'ClusterRole', 'ClusterRoleBinding']);
    for (const o of objects) expect(o.metadata.namespace, key(o)).toBe(clusterScoped.has(o.kind) ? undefined : namespace);
    expect(find('Namespace', namespace).metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('privileged');
    expect(objects.filter((o) => o.kind === 'CustomResourceDefinition').map((o) => o.metadata.name).sort()).toEqual(crdSources.map((s) => `${s.plural}.${group}`).sort());
  });

  it('runs one image, with args, ports, probes and services that agree', () => {
    const images = new Set(workloads.flatMap((w) => [...w.spec.template.spec.containers, ...(w.spec.template.spec.initContainers ?? [])].map((c) => c.image)));
    expect([...images]).toEqual(['ghcr.io/beacon-lb/beacon:0.1.0']);
    for (const [w, command] of [[operator, 'operator'], [agent, 'agent']] as const) {
      const pod = w.spec.template.spec;
      expect(pod.containers.length).toBe(1);
      const c = pod.containers[0]!;
      expect(c.args[0]).toBe(command);
      expect(flag(c.args, '--lease-namespace')).toBe(namespace);
      // The selector picks the template's pods.
      expect(w.spec.template.metadata.labels).toMatchObject(w.spec.selector.matchLabels);
      // The metrics server listens on the port the container declares, and the probes ask it.
      const metricsPort = Number(flag(c.args, '--metrics-addr')!.split(':').at(-1));
      expect(c.ports).toEqual([expect.objectContaining({ name: 'metrics', containerPort: metricsPort })]);
      expect([c.livenessProbe.httpGet, c.readinessProbe.httpGet]).toEqual([
        { path: '/healthz', port: 'metrics' },
        { path: '/readyz', port: 'metrics' },
      ]);
      expect(Object.keys(c.resources.requests).sort()).toEqual(['cpu', 'memory']);
      expect(c.resources.limits.memory).toBeDefined();
      // The local API socket sits on a mounted, writable volume (the root file system is read-only).
      const socket = flag(c.args, '--socket')!;
      const mount = c.volumeMounts.find((m) => socket.startsWith(`${m.mountPath}/`));
      expect(mount?.readOnly).toBeFalsy();
      for (const m of c.volumeMounts) expect(pod.volumes.map((v) => v.name), m.name).toContain(m.name);
      // Its own service account, which exists in the namespace.
      expect(pod.serviceAccountName).toBe(w.metadata.name);
      find('ServiceAccount', pod.serviceAccountName);
      // A metrics Service that selects these pods on the named port.
      const svc = find<KubeObject & { spec: { selector: Record<string, string>; ports: { port: number; targetPort: string }[] } }>('Service', `${w.metadata.name}-metrics`);
      expect(w.spec.template.metadata.labels).toMatchObject(svc.spec.selector);
      expect(svc.spec.ports).toEqual([expect.objectContaining({ port: metricsPort, targetPort: 'metrics' })]);
    }
  });

  it('grants exactly the intended verbs per resource, with no wildcards', () => {
    const roles = objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role');
    expect(roles.map((r) => `${r.kind}/${r.metadata.name}`).sort()).toEqual(Object.keys(expectedRBAC).sort());
    for (const r of roles) {
      const rules = r.rules as Rule[];
      for (const rule of rules) for (const v of [...rule.verbs, ...rule.resources, ...rule.apiGroups]) expect(v, key(r)).not.toContain('*');
      expect(grants(rules), key(r)).toEqual(expectedRBAC[`${r.kind}/${r.metadata.name}`]);
    }
    // Each binding gives its role to the service account of the same name, in the install namespace.
    for (const b of objects.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding')) {
      const roleRef = b.roleRef as { kind: string; name: string };
      expect(roleRef.kind).toBe(b.kind.replace('Binding', ''));
      find(roleRef.kind, roleRef.name);
      expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: b.metadata.name, namespace }]);
    }
  });

  it('runs the operator unprivileged, two leader-elected replicas kept apart', () => {
    const pod = operator.spec.template.spec;
    const c = pod.containers[0]!;
    expect(operator.spec.replicas).toBe(2);
    // Leader election needs a distinct holder identity per replica: the pod name.
    expect(c.env).toEqual([{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }]);
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
    expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect([pod.hostNetwork, pod.hostPID]).toEqual([undefined, undefined]);
    expect(pod.volumes.filter((v) => v.hostPath)).toEqual([]);
    expect(JSON.stringify(pod)).toContain('"topologyKey":"kubernetes.io/hostname"');
    const pdb = find<KubeObject & { spec: { maxUnavailable: number; selector: { matchLabels: Record<string, string> } } }>('PodDisruptionBudget', 'beacon-operator');
    expect(pdb.spec.maxUnavailable).toBe(1);
    expect(operator.spec.template.metadata.labels).toMatchObject(pdb.spec.selector.matchLabels);
  });

  it('gives the agent the host network, every node, and only its listed capabilities', () => {
    const pod = agent.spec.template.spec;
    const c = pod.containers[0]!;
    expect([pod.hostNetwork, pod.dnsPolicy]).toEqual([true, 'ClusterFirstWithHostNet']);
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(c.securityContext.capabilities.drop).toEqual(['ALL']);
    expect([...c.securityContext.capabilities.add!].sort()).toEqual(['BPF', 'NET_ADMIN', 'NET_BIND_SERVICE', 'NET_RAW', 'PERFMON', 'SYS_RESOURCE']);
    expect([...agentCapabilities].sort()).toEqual([...c.securityContext.capabilities.add!].sort());
    expect([c.securityContext.privileged, c.securityContext.allowPrivilegeEscalation, c.securityContext.readOnlyRootFilesystem]).toEqual([false, false, true]);
    // The node name from the downward API, passed on as --node-name.
    expect(flag(c.args, '--node-name')).toBe('$(NODE_NAME)');
    expect(c.env).toEqual([{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }]);
    expect([flag(c.args, '--l2-announcements'), flag(c.args, '--bgp')]).toEqual(['true', 'true']);
    // With hostNetwork, a declared port is a host port.
    expect(c.ports.every((p) => p.hostPort === p.containerPort)).toBe(true);
    const hostPathOf = (mountPath: string) => {
      const m = c.volumeMounts.find((x) => x.mountPath === mountPath);
      return m && pod.volumes.find((v) => v.name === m.name)?.hostPath?.path;
    };
    expect([hostPathOf('/sys/fs/bpf'), hostPathOf('/run/beacon'), hostPathOf('/host/sys/fs/cgroup')]).toEqual(['/sys/fs/bpf', '/run/beacon', '/sys/fs/cgroup']);
    // Bidirectional propagation needs a privileged container; the agent only pins, never mounts.
    expect(c.volumeMounts.every((m) => m.mountPropagation !== 'Bidirectional')).toBe(true);
    expect(objects.some((o) => JSON.stringify(o).includes('"privileged":true'))).toBe(false);
  });
});

describe('an overlay over deploy/base', () => {
  const dir = mkdtempSync(join(tmpdir(), 'beacon-overlay-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // Kustomize takes other kustomizations by relative path only.
  it('retags the image with kustomize `images`, as docs/install.md shows', () => {
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      `resources:\n  - ${relative(dir, join(root, 'deploy', 'base'))}\nimages:\n  - name: ghcr.io/beacon-lb/beacon\n    newName: registry.example/beacon\n    newTag: dev\n`,
    );
    const images = kustomize(dir).flatMap((o) => (o.kind === 'Deployment' || o.kind === 'DaemonSet' ? (o as Workload).spec.template.spec.containers.map((c) => c.image) : []));
    expect(images).toEqual(['registry.example/beacon:dev', 'registry.example/beacon:dev']);
  });
});

describe('deploy/Containerfile', () => {
  const text = readFileSync(join(root, 'deploy', 'Containerfile'), 'utf8');
  const stages = text.split(/^FROM /m).slice(1);

  it('builds on node:20-bookworm and runs on node:20-bookworm-slim with iproute2', () => {
    expect(stages.map((s) => s.split('\n')[0])).toEqual(['node:20-bookworm AS build', 'node:20-bookworm-slim']);
    expect(stages[0]).toMatch(/^RUN npm ci$/m);
    expect(stages[0]).toMatch(/^RUN npm run build && npm prune --omit=dev$/m);
    expect(stages[1]).toMatch(/apt-get install -y --no-install-recommends iproute2/);
    expect(stages[1]).toMatch(/^ENTRYPOINT \["beacon"\]$/m);
  });

  it('copies files that exist, every folder the build compiles, and links bin/beacon.js as beacon', () => {
    const copies = [...text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(' '));
    expect(copies).toContain('package.json');
    expect(copies).toContain('package-lock.json');
    expect(copies).toContain('bin/beacon.js');
    for (const path of copies) expect(existsSync(join(root, path)), path).toBe(true);
    const build = JSON.parse(readFileSync(join(root, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
    for (const folder of build.include) expect(copies, folder).toContain(folder);
    expect(statSync(join(root, 'bin', 'beacon.js')).mode & 0o111).not.toBe(0);
    expect(text).toMatch(/ln -s \/opt\/beacon\/bin\/beacon\.js \/usr\/local\/bin\/beacon/);
    // bin/beacon.js loads the compiled CLI from dist/, which the run stage copies beside bin/.
    expect(readFileSync(join(root, 'bin', 'beacon.js'), 'utf8')).toContain("'../dist/agent/cli.js'");
    expect(stages[1]).toMatch(/^COPY --from=build \/src\/dist \.\/dist$/m);
    expect(stages[1]).toMatch(/^WORKDIR \/opt\/beacon$/m);
  });
});
