// The Kubernetes install: every object `beacon manifests` prints and deploy/base/ holds, built
// from one function so the command, the kustomize base and the tests cannot drift apart.
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { crdObject, crdSources, group as beaconGroup } from '../api/index.js';
import { defaultSocket } from './local-api.js';
import { exit, type IO } from './cli.js';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

export interface InstallOptions {
  namespace?: string;
  image?: string;
  /** `--set` values, checked against {@link setKeys}. */
  set?: Record<string, string>;
}

export const defaultNamespace = 'beacon-system';
export const defaultImage = 'ghcr.io/beacon-lb/beacon:0.1.0';
export const operatorMetricsPort = 9464;
// The agent listens in the node's own network namespace (hostNetwork), where 9464 is a common
// exporter port (OpenTelemetry's Prometheus exporter): it gets a port of its own.
export const agentMetricsPort = 9465;

/**
 * The only capabilities the agent keeps (capabilities(7)): AF_PACKET sockets for ARP/NDP need
 * NET_RAW, interface and neighbour changes NET_ADMIN, BGP on port 179 NET_BIND_SERVICE; eBPF maps
 * and programs need BPF and PERFMON (kernel >= 5.8) and a memlock rlimit raised with SYS_RESOURCE.
 */
export const agentCapabilities = ['NET_RAW', 'NET_ADMIN', 'NET_BIND_SERVICE', 'BPF', 'PERFMON', 'SYS_RESOURCE'] as const;

const logLevels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];
const bool = (key: string, v: string): boolean => {
  if (v !== 'true' && v !== 'false') throw new ManifestError(`--set ${key}=${v}: true or false`);
  return v === 'true';
};

/** The `--set` keys: each checks its value and returns it in the form the objects use. */
export const setKeys = {
  image: (v: string) => {
    if (!/^[^\s]+$/.test(v)) throw new ManifestError(`--set image=${v}: an image reference without spaces`);
    return v;
  },
  'operator.replicas': (v: string) => {
    if (!/^[1-9]\d{0,2}$/.test(v)) throw new ManifestError(`--set operator.replicas=${v}: a whole number from 1`);
    return Number(v);
  },
  'agent.l2': (v: string) => bool('agent.l2', v),
  'agent.bgp': (v: string) => bool('agent.bgp', v),
  'agent.kubeProxyReplacement': (v: string) => bool('agent.kubeProxyReplacement', v),
  logLevel: (v: string) => {
    if (!logLevels.includes(v)) throw new ManifestError(`--set logLevel=${v}: one of ${logLevels.join(', ')}`);
    return v;
  },
} as const;

export class ManifestError extends Error {}

interface Settings {
  image: string;
  replicas: number;
  l2: boolean;
  bgp: boolean;
  kpr: boolean;
  logLevel: string;
}

function settings(image: string, set: Record<string, string>): Settings {
  const unknown = Object.keys(set).filter((k) => !Object.hasOwn(setKeys, k));
  if (unknown.length > 0) throw new ManifestError(`unknown --set key ${unknown.map((k) => `"${k}"`).join(', ')} (known: ${Object.keys(setKeys).join(', ')})`);
  return {
    image: set.image === undefined ? image : setKeys.image(set.image),
    replicas: set['operator.replicas'] === undefined ? 2 : setKeys['operator.replicas'](set['operator.replicas']),
    l2: set['agent.l2'] === undefined ? true : setKeys['agent.l2'](set['agent.l2']),
    bgp: set['agent.bgp'] === undefined ? true : setKeys['agent.bgp'](set['agent.bgp']),
    kpr: set['agent.kubeProxyReplacement'] === undefined ? true : setKeys['agent.kubeProxyReplacement'](set['agent.kubeProxyReplacement']),
    logLevel: set.logLevel === undefined ? 'info' : setKeys.logLevel(set.logLevel),
  };
}

type Component = 'operator' | 'agent';
const selector = (c: Component) => ({ 'app.kubernetes.io/name': 'beacon', 'app.kubernetes.io/component': c });
const labels = (c?: Component) => (c ? { ...selector(c), 'app.kubernetes.io/part-of': 'beacon' } : { 'app.kubernetes.io/name': 'beacon', 'app.kubernetes.io/part-of': 'beacon' });

const rule = (apiGroup: string, resources: string[], verbs: string[]) => ({ apiGroups: [apiGroup], resources, verbs });
const read = ['get', 'list', 'watch'];
const beaconPlurals = crdSources.map((s) => s.plural);
/** Leases as the store keeps them (store/kubernetes): read and watched (the L2 live set), created or updated; never deleted. */
const leaseRule = rule('coordination.k8s.io', ['leases'], ['get', 'list', 'watch', 'create', 'update']);
const eventRule = rule('events.k8s.io', ['events'], ['create', 'patch']);

/**
 * Cluster-wide rules: both read the cluster's state and record Events about Services (which live in
 * every namespace); only the operator writes status, and only through /status.
 */
const clusterRules: Record<Component, ReturnType<typeof rule>[]> = {
  operator: [
    rule('', ['services', 'nodes'], read),
    rule('', ['services/status'], ['patch']),
    rule('discovery.k8s.io', ['endpointslices'], read),
    rule(beaconGroup, beaconPlurals, read),
    rule(beaconGroup, beaconPlurals.map((p) => `${p}/status`), ['patch']),
    eventRule,
  ],
  agent: [rule('', ['services', 'nodes'], read), rule('discovery.k8s.io', ['endpointslices'], read), rule(beaconGroup, beaconPlurals, read), eventRule],
};
/** Rules in the install namespace: leader and liveness Leases, and (agent) BGP auth Secrets. */
const namespaceRules: Record<Component, ReturnType<typeof rule>[]> = {
  operator: [leaseRule],
  agent: [leaseRule, rule('', ['secrets'], read)],
};

function rbac(c: Component, ns: string): KubeObject[] {
  const name = `beacon-${c}`;
  const subjects = [{ kind: 'ServiceAccount', name, namespace: ns }];
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: ns, labels: labels(c) } },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name, labels: labels(c) }, rules: clusterRules[c] },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name, labels: labels(c) }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name }, subjects },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace: ns, labels: labels(c) }, rules: namespaceRules[c] },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name, namespace: ns, labels: labels(c) }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects },
  ];
}

const probes = (port: string) => ({
  livenessProbe: { httpGet: { path: '/healthz', port }, periodSeconds: 10, failureThreshold: 3 },
  readinessProbe: { httpGet: { path: '/readyz', port }, periodSeconds: 5, failureThreshold: 2 },
});

function metricsService(c: Component, ns: string, port: number): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: `beacon-${c}-metrics`, namespace: ns, labels: labels(c) },
    spec: { type: 'ClusterIP', selector: selector(c), ports: [{ name: 'metrics', port, targetPort: 'metrics', protocol: 'TCP' }] },
  };
}

function operator(ns: string, s: Settings): KubeObject[] {
  const name = 'beacon-operator';
  const deployment: KubeObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns, labels: labels('operator') },
    spec: {
      replicas: s.replicas,
      selector: { matchLabels: selector('operator') },
      template: {
        metadata: { labels: labels('operator') },
        spec: {
          serviceAccountName: name,
          priorityClassName: 'system-cluster-critical',
          // Standbys on other nodes: losing one node must not take the leader and its successor.
          affinity: {
            podAntiAffinity: {
              preferredDuringSchedulingIgnoredDuringExecution: [
                { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selector('operator') } } },
              ],
            },
          },
          securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'operator',
              image: s.image,
              args: ['operator', '--lease-namespace', ns, '--metrics-addr', `0.0.0.0:${operatorMetricsPort}`, '--socket', defaultSocket, '--log-level', s.logLevel],
              // The leader Lease's holder identity (`--identity` defaults to it): unique per replica.
              env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
              ports: [{ name: 'metrics', containerPort: operatorMetricsPort, protocol: 'TCP' }],
              ...probes('metrics'),
              resources: { requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '384Mi' } },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              // The local API socket needs a writable folder on a read-only root.
              volumeMounts: [{ name: 'run', mountPath: '/run/beacon' }],
            },
          ],
          volumes: [{ name: 'run', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } }],
        },
      },
    },
  };
  const budget: KubeObject = {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name, namespace: ns, labels: labels('operator') },
    // maxUnavailable, not minAvailable: with --set operator.replicas=1 a drain still proceeds.
    spec: { maxUnavailable: 1, selector: { matchLabels: selector('operator') } },
  };
  return [deployment, budget, metricsService('operator', ns, operatorMetricsPort)];
}

function agent(ns: string, s: Settings): KubeObject[] {
  const name = 'beacon-agent';
  const hostPath = (volume: string, path: string) => ({ name: volume, hostPath: { path, type: 'DirectoryOrCreate' } });
  const daemonSet: KubeObject = {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name, namespace: ns, labels: labels('agent') },
    spec: {
      selector: { matchLabels: selector('agent') },
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
      template: {
        metadata: { labels: labels('agent') },
        spec: {
          serviceAccountName: name,
          priorityClassName: 'system-node-critical',
          // ARP/NDP and BGP work on the node's own interfaces and addresses.
          hostNetwork: true,
          dnsPolicy: 'ClusterFirstWithHostNet',
          // Every node may be asked to announce, tainted or not.
          tolerations: [{ operator: 'Exists' }],
          securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'agent',
              image: s.image,
              args: [
                'agent',
                '--node-name',
                '$(NODE_NAME)',
                '--lease-namespace',
                ns,
                '--metrics-addr',
                `0.0.0.0:${agentMetricsPort}`,
                '--socket',
                defaultSocket,
                '--l2-announcements',
                String(s.l2),
                '--bgp',
                String(s.bgp),
                '--kube-proxy-replacement',
                String(s.kpr),
                '--cgroup-root',
                '/host/sys/fs/cgroup',
                '--log-level',
                s.logLevel,
              ],
              env: [{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }],
              // With hostNetwork the API server sets hostPort to containerPort; written out so
              // `kubectl diff` stays quiet.
              ports: [{ name: 'metrics', containerPort: agentMetricsPort, hostPort: agentMetricsPort, protocol: 'TCP' }],
              ...probes('metrics'),
              resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } },
              // Root for the capabilities to be effective (no ambient capabilities for other users),
              // but no privileged mode and no capability beyond the list.
              securityContext: {
                runAsUser: 0,
                privileged: false,
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'], add: [...agentCapabilities] },
              },
              volumeMounts: [
                // Pinned maps live in the host's bpffs so they outlive a restart of the agent. The
                // agent only pins files, it never mounts: HostToContainer suffices, where
                // Bidirectional would require a privileged container.
                { name: 'bpf', mountPath: '/sys/fs/bpf', mountPropagation: 'HostToContainer' },
                // The cgroup v2 root, for attaching socket-level programs; opened, never written.
                { name: 'cgroup', mountPath: '/host/sys/fs/cgroup', readOnly: true, mountPropagation: 'HostToContainer' },
                // The local API socket, so `beacon status` on the node reaches the agent.
                { name: 'run', mountPath: '/run/beacon' },
              ],
            },
          ],
          volumes: [hostPath('bpf', '/sys/fs/bpf'), { name: 'cgroup', hostPath: { path: '/sys/fs/cgroup', type: 'Directory' } }, hostPath('run', '/run/beacon')],
        },
      },
    },
  };
  return [daemonSet, metricsService('agent', ns, agentMetricsPort)];
}

/** Every object of an install, CRDs first, in the order `kubectl apply` can create them. */
export function installObjects({ namespace = defaultNamespace, image = defaultImage, set = {} }: InstallOptions = {}): KubeObject[] {
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)) throw new ManifestError(`namespace "${namespace}": a DNS label (lower case letters, digits, '-')`);
  const s = settings(image, set);
  const namespaceObject: KubeObject = {
    apiVersion: 'v1',
    kind: 'Namespace',
    // Pod Security Admission: the agent uses the host network and capabilities beyond "baseline".
    metadata: { name: namespace, labels: { ...labels(), 'pod-security.kubernetes.io/enforce': 'privileged' } },
  };
  return [
    ...crdSources.map((src) => crdObject(src) as KubeObject),
    namespaceObject,
    ...rbac('operator', namespace),
    ...rbac('agent', namespace),
    ...operator(namespace, s),
    ...agent(namespace, s),
  ];
}

// kubectl reads YAML 1.1, where an unquoted `true` in args would become a boolean: quote those.
const yamlOptions = { version: '1.1', aliasDuplicateObjects: false, lineWidth: 0 } as const;

/** Objects as multi-document YAML. */
export const renderYAML = (objects: readonly KubeObject[]): string => objects.map((o) => `---\n${stringify(o, yamlOptions)}`).join('');

const generatedHeader = '# Generated from agent/manifests.ts by `npm run gen:deploy`. Do not edit.\n';

/** File name to text for deploy/base/: the default install, one file per part, and its kustomization. */
export function renderKustomizeBase(): Map<string, string> {
  const objects = installObjects();
  const part = (o: KubeObject): string => {
    if (o.kind === 'CustomResourceDefinition') return 'crds.yaml';
    if (o.kind === 'Namespace') return 'namespace.yaml';
    const component = o.metadata.labels?.['app.kubernetes.io/component'];
    return /^(ServiceAccount|(Cluster)?Role(Binding)?)$/.test(o.kind) ? `rbac-${component}.yaml` : `${component}.yaml`;
  };
  const files = new Map<string, KubeObject[]>();
  for (const o of objects) files.set(part(o), [...(files.get(part(o)) ?? []), o]);
  const out = new Map([...files].map(([name, objs]) => [name, generatedHeader + renderYAML(objs)]));
  const kustomization = { apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: [...files.keys()] };
  out.set('kustomization.yaml', generatedHeader + stringify(kustomization, yamlOptions));
  return out;
}

export const manifestsUsage = `Usage: beacon manifests [--namespace NAME] [--set KEY=VALUE ...]

Prints the Kubernetes install (CRDs, namespace, RBAC, operator Deployment, agent DaemonSet) as
multi-document YAML:  beacon manifests | kubectl apply -f -

  -n, --namespace NAME   install namespace (default ${defaultNamespace})
  --set KEY=VALUE        repeatable; keys:
      image=REF              container image (default ${defaultImage})
      operator.replicas=N    operator replicas, one leader and standbys (default 2)
      agent.l2=true|false    ARP/NDP announcements (default true)
      agent.bgp=true|false   BGP speaker (default true)
      agent.kubeProxyReplacement=true|false   the eBPF service datapath (default true)
      logLevel=LEVEL         ${logLevels.join('|')} (default info)
Exit codes: 0 printed, 2 bad option or value.
`;

export function manifestsCommand(args: string[], io: IO): number {
  try {
    const { values } = parseArgs({
      args,
      options: { namespace: { type: 'string', short: 'n' }, set: { type: 'string', multiple: true }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    });
    if (values.help) {
      io.out(manifestsUsage);
      return exit.ok;
    }
    const set: Record<string, string> = {};
    for (const pair of values.set ?? []) {
      const at = pair.indexOf('=');
      if (at <= 0) throw new ManifestError(`--set "${pair}": expected KEY=VALUE`);
      set[pair.slice(0, at)] = pair.slice(at + 1);
    }
    io.out(renderYAML(installObjects({ ...(values.namespace === undefined ? {} : { namespace: values.namespace }), set })));
    return exit.ok;
  } catch (e) {
    if (e instanceof ManifestError || (e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`beacon: ${(e as Error).message}\n\n${manifestsUsage}`);
      return exit.badInput;
    }
    throw e;
  }
}
