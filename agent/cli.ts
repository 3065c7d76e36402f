// The `beacon` command line. Each command is a function of its arguments that writes to the
// given streams and returns an exit code, so tests run it in-process.
import { parseArgs } from 'node:util';
import type { Plan } from '../lbipam/index.js';
import type { StoredObject } from '../store/index.js';
import { labelKeyError, labelValueError } from '../api/selector.js';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import type { RouteExplanation } from '../bgp/index.js';
import type { BGPPeerView, BGPRouteView } from './bgp.js';
import type { L2AnnouncementView } from './l2.js';
import { defaultL2Timing, kubernetesL2Timing, type L2Timing } from './l2-timing.js';
import { defaultSocket, getLocal, LocalAPIError, type PoolView, type ServiceView, type StatusView } from './local-api.js';
import type { StandaloneOptions } from './standalone.js';
import type { KprOptions } from './kpr.js';
import { DEFAULT_MAGLEV_TABLE_SIZE, MAGLEV_TABLE_SIZES } from '../kpr/maglev.js';
import { DEFAULT_BPF_ROOT, DEFAULT_LB_MAP_MAX } from '../kpr/defaults.js';
import type { StoreOptions } from './stores.js';
import { renderTable } from './table.js';

// Commands load what they need when they run: `beacon services` is called in loops and scripts,
// and should not pay for the YAML parser, the allocator or the store clients.
const manifests = () => import('./files.js');

export interface IO {
  out: (text: string) => void;
  err: (text: string) => void;
}

const stdio: IO = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

/** Exit codes: 0 done, 1 failed, 2 bad input (usage, unreadable files, YAML syntax). */
export const exit = { ok: 0, failed: 1, badInput: 2 } as const;

const usage = `Usage: beacon <command> [options]

Commands:
  ipam plan -f PATH [-f PATH ...] [-o table|json]
      Dry run of LB-IPAM: read pools and Services from YAML files or folders and print the IPs
      each service would get, and each pool's usage.
  lab [-o text|json] [--keep] [-f PATH ...] | lab down [RUNID ...]
      Build a whole site in network namespaces (router with BIRD, three nodes on etcd, pods,
      clients), show Beacon at work and under faults, and take it down (needs root).
  manifests [--namespace NAME] [--set KEY=VALUE ...]
      Print the Kubernetes install as YAML: beacon manifests | kubectl apply -f -
  migrate -f PATH [-f PATH ...]
      Convert MetalLB and Cilium resources into Beacon's: YAML on stdout, what was not carried
      over on stderr.
  standalone --node-name NAME [--manifests DIR] [--state-dir DIR] [--store embedded|etcd|kubernetes]
             [--etcd-endpoints URL,...] [--kubeconfig PATH] [--socket PATH] [--metrics-addr HOST:PORT]
             [--lease-duration 5s] [node agent flags]
      Run Beacon on a plain host: the operator role (one process per store, by lease) and the
      node agent.
  operator [--kubeconfig PATH] [--kube-api-qps 20] [--kube-api-burst 40] [--lease-namespace beacon-system] [--identity NAME]
           [--socket /run/beacon/operator.sock] [--metrics-addr HOST:PORT] [--lease-duration 5s]
      Kubernetes mode: the operator role alone (LB-IPAM, status conditions), one replica at a time
      by a Lease; in-cluster credentials without --kubeconfig.
  agent --node-name NAME (default $NODE_NAME) [--kubeconfig PATH] [--lease-namespace beacon-system]
        [--socket PATH] [--metrics-addr HOST:PORT] [node agent flags]
      Kubernetes mode: the node agent alone (L2 announcements, BGP); labels from its Node object.
  node agent flags:
      [--node-labels K=V,...] [--l2-announcements true|false] [--l2-lease-duration 1s (3s on kubernetes)]
      [--l2-renew-interval 200ms (1s on kubernetes)] [--l2-scan-interval 100ms] [--bgp true|false] [--node-ips IP,...]
      [--kube-proxy-replacement true|false] [--bpf-root /sys/fs/bpf/beacon] [--cgroup-root PATH]
      [--bpf-lb-algorithm random|maglev] [--bpf-lb-maglev-table-size 16381] [--bpf-lb-map-max 65536]
      [--devices NAME,PREFIX+,... | none (default: the default-route interfaces)]
  status | services | pools [-o table|json] [--socket PATH]
      Ask a running process (through its unix socket) for its state.
  bgp peers | bgp routes | bgp explain [-o table|json] [--socket PATH]
      BGP sessions of this node (Cilium's columns), the routes advertised to each peer, and why
      each service address is or is not advertised to each peer.
  l2 announcements [-o table|json] [--socket PATH]
      The IPs announced with ARP/NDP: which node answers, on which interfaces, and why this node
      does or does not.
  kpr services [-o table|json] [--bpf-root PATH]
      The frontends the eBPF datapath balances and their backends, read from the pinned maps.
  bpf maps [-o table|json] | bpf dump MAP [-o table|json] | bpf cleanup  [--bpf-root PATH]
      The datapath's maps (entries, max entries), one map's entries decoded, or remove the
      datapath (detach the socket hooks, unpin the maps).
  apply -f PATH | delete -f PATH | get KIND [NAME] [-o json|yaml]  --etcd-endpoints URL,...
      Write and read objects in the etcd store (the embedded store reads its manifests folder).

Run 'beacon ipam plan --help', 'beacon lab --help', 'beacon migrate --help' or 'beacon manifests --help' for details.
`;

const planUsage = `Usage: beacon ipam plan -f PATH [-f PATH ...] [-o table|json]

Reads multi-document YAML (LoadBalancerIPPool and v1 Service objects, services possibly with a
status), runs the LB-IPAM reconciler as the operator does, and prints the outcome.

  -f, --filename PATH   file or folder (repeatable); folders are read recursively (*.yaml, *.yml, *.json)
  -o, --output FORMAT   table (default) or json
Exit codes: 0 when the inputs parse (unsatisfied services are results), 2 on unreadable files or
YAML syntax errors. Objects that break their schema are reported and skipped.
`;

async function ipamPlan(args: string[], io: IO): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      filename: { type: 'string', short: 'f', multiple: true },
      output: { type: 'string', short: 'o', default: 'table' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    io.out(planUsage);
    return exit.ok;
  }
  const files = values.filename ?? [];
  if (files.length === 0) throw new UsageError('ipam plan needs at least one -f PATH');
  if (values.output !== 'table' && values.output !== 'json') throw new UsageError(`unknown output format "${values.output}" (table or json)`);
  const { loadManifests, problemText } = await manifests();
  const { plan } = await import('../lbipam/index.js');
  const loaded = loadManifests(files);
  if (loaded.fatal.length > 0) {
    for (const p of loaded.fatal) io.err(`${problemText(p)}\n`);
    return exit.badInput;
  }
  for (const p of loaded.skipped) io.err(`skipped ${problemText(p)}\n`);
  const pools = loaded.objects.flatMap((o) => (o.kind === 'LoadBalancerIPPool' ? [o.object] : []));
  const services = loaded.objects.flatMap((o) => (o.kind === 'Service' ? [o.object] : []));
  const result = plan(
    pools,
    services,
    loaded.skipped.map((p) => ({ file: p.file, line: p.line, ...(p.kind ? { kind: p.kind } : {}), ...(p.name ? { name: p.name } : {}), reason: p.reason })),
  );
  io.out(values.output === 'json' ? `${JSON.stringify(result, null, 2)}\n` : planTable(result));
  return exit.ok;
}

export function planTable(p: Plan): string {
  const services = renderTable(
    ['NAMESPACE', 'NAME', 'IPS', 'SATISFIED', 'REASON', 'MESSAGE'],
    p.services.map((s) => [s.namespace, s.name, s.ips.join(',') || '-', s.satisfied ? 'yes' : 'no', s.reason, s.message]),
  );
  const pools = renderTable(
    ['POOL', 'TOTAL', 'USED', 'AVAILABLE', 'CONFLICTING', 'MESSAGE'],
    p.pools.map((x) => [x.name, x.total, x.used, x.available, x.conflicting ? 'yes' : 'no', x.message]),
  );
  return `${p.services.length > 0 ? services : 'No LoadBalancer services managed by Beacon.\n'}\n${pools}`;
}

class UsageError extends Error {}

export async function main(argv: readonly string[], io: IO = stdio): Promise<number> {
  const [command, sub, ...rest] = argv;
  try {
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      io.out(usage);
      return command === undefined ? exit.badInput : exit.ok;
    }
    if (command === 'ipam' && sub === 'plan') return await ipamPlan(rest, io);
    // Commands with a usage of their own print it; the others are described in the general usage.
    const ownHelp = ['migrate', 'manifests', 'lab'];
    if (!ownHelp.includes(command) && (argv.includes('--help') || argv.includes('-h'))) {
      io.out(usage);
      return exit.ok;
    }
    const args = sub === undefined ? rest : [sub, ...rest];
    if (command === 'standalone') return await standalone(args, io);
    if (command === 'operator') return await operatorCommand(args, io);
    if (command === 'agent') return await agentCommand(args, io);
    if (command === 'migrate') return await (await import('./migrate-cli.js')).migrateCommand(args, io);
    if (command === 'lab') return await (await import('./lab-cli.js')).labCommand(args, io);
    if (command === 'manifests') return (await import('./manifests.js')).manifestsCommand(args, io);
    if (command === 'status' || command === 'services' || command === 'pools') return await inspect(command, args, io);
    if (command === 'l2' && sub === 'announcements') return await l2Announcements(rest, io);
    if (command === 'bgp' && (sub === 'peers' || sub === 'routes' || sub === 'explain')) return await bgpCommand(sub, rest, io);
    if (command === 'apply' || command === 'delete' || command === 'get') return await etcdCommand(command, args, io);
    if (command === 'kpr' && sub === 'services') return await kprCli((m) => m.kprServices(rest, io), io);
    if (command === 'bpf') return await kprCli((m) => m.bpfCommand(sub, rest, io), io);
    throw new UsageError(`unknown command "${[command, sub].filter(Boolean).join(' ')}"`);
  } catch (e) {
    // parseArgs reports unknown flags with a code; both are the user's to fix, not a crash.
    if (e instanceof LocalAPIError) {
      io.err(`beacon: ${e.message}\n`);
      return exit.failed;
    }
    if (e instanceof UsageError || (e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`beacon: ${(e as Error).message}\n\n${usage}`);
      return exit.badInput;
    }
    throw e;
  }
}

const seconds = (text: string, flag: string): number => {
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(text);
  if (!m) throw new UsageError(`${flag} "${text}": expected a duration like 5s or 500ms`);
  return m[2] === 'ms' ? Number(m[1]) : Number(m[1]) * 1000;
};

/** The operator's local API socket: it may share a host with an agent on the default one. */
const defaultOperatorSocket = '/run/beacon/operator.sock';

/** Flags of every long-running command (with `socket`). */
const processFlags = {
  'metrics-addr': { type: 'string' },
  'log-level': { type: 'string', default: 'info' },
  kubeconfig: { type: 'string' },
  'lease-namespace': { type: 'string', default: 'beacon-system' },
  'kube-api-qps': { type: 'string', default: '20' },
  'kube-api-burst': { type: 'string', default: '40' },
} as const;

/** Flags of the node agent (`standalone` and `agent`). */
const agentFlags = {
  'node-labels': { type: 'string' },
  'l2-announcements': { type: 'string', default: 'true' },
  // No parser defaults: they depend on the store (agentOptions).
  'l2-lease-duration': { type: 'string' },
  'l2-renew-interval': { type: 'string' },
  'l2-scan-interval': { type: 'string' },
  bgp: { type: 'string', default: 'true' },
  'node-ips': { type: 'string' },
  'kube-proxy-replacement': { type: 'string' },
  'bpf-root': { type: 'string', default: DEFAULT_BPF_ROOT },
  'cgroup-root': { type: 'string' },
  'bpf-lb-algorithm': { type: 'string', default: 'random' },
  'bpf-lb-maglev-table-size': { type: 'string', default: String(DEFAULT_MAGLEV_TABLE_SIZE) },
  'bpf-lb-map-max': { type: 'string', default: String(DEFAULT_LB_MAP_MAX) },
  devices: { type: 'string' },
} as const;

interface AgentFlagValues {
  'node-labels'?: string | undefined;
  'l2-announcements': string;
  'l2-lease-duration'?: string | undefined;
  'l2-renew-interval'?: string | undefined;
  'l2-scan-interval'?: string | undefined;
  bgp: string;
  'node-ips'?: string | undefined;
  'kube-proxy-replacement'?: string | undefined;
  'bpf-root': string;
  'cgroup-root'?: string | undefined;
  'bpf-lb-algorithm': string;
  'bpf-lb-maglev-table-size': string;
  'bpf-lb-map-max': string;
  devices?: string | undefined;
}

/** The node agent's part of StandaloneOptions, from its flags; L2 timing flags not given take the store's defaults. */
function agentOptions(values: AgentFlagValues, backend: StoreOptions['backend']): Pick<StandaloneOptions, 'nodeLabels' | 'nodeAddresses' | 'bgp' | 'l2' | 'kpr'> {
  const l2Enabled = values['l2-announcements'];
  if (l2Enabled !== 'true' && l2Enabled !== 'false') throw new UsageError(`--l2-announcements "${l2Enabled}": true or false`);
  if (values.bgp !== 'true' && values.bgp !== 'false') throw new UsageError(`--bgp "${values.bgp}": true or false`);
  const nodeIPs = values['node-ips']?.split(',').filter(Boolean);
  const badIP = nodeIPs?.find((ip) => isIP(ip) === 0);
  if (badIP !== undefined) throw new UsageError(`--node-ips: "${badIP}" is not an IP address`);
  // On Kubernetes every renewal is an API request: a longer lease, renewed once a second.
  const l2Defaults: L2Timing = backend === 'kubernetes' ? kubernetesL2Timing : defaultL2Timing;
  const l2Flag = (name: 'l2-lease-duration' | 'l2-renew-interval' | 'l2-scan-interval', fallbackMs: number) => seconds(values[name] ?? `${fallbackMs}ms`, `--${name}`);
  const l2LeaseMs = l2Flag('l2-lease-duration', l2Defaults.leaseDurationMs);
  const l2RenewMs = l2Flag('l2-renew-interval', l2Defaults.renewMs);
  if (l2RenewMs * 2 >= l2LeaseMs) throw new UsageError('--l2-renew-interval must be less than half of --l2-lease-duration, or one late renewal silences the node');
  return {
    // Without --node-labels: none, or in Kubernetes mode the Node object's (followed).
    ...(values['node-labels'] !== undefined ? { nodeLabels: parseLabels(values['node-labels']) } : {}),
    ...(nodeIPs ? { nodeAddresses: nodeIPs } : {}),
    bgp: { enabled: values.bgp === 'true' },
    kpr: kprOptions(values),
    l2: {
      enabled: l2Enabled === 'true',
      timing: {
        leaseDurationMs: l2LeaseMs,
        renewMs: l2RenewMs,
        scanMs: l2Flag('l2-scan-interval', l2Defaults.scanMs),
        // Go quiet a fifth of the lease before others may take over (the documented margin).
        marginMs: Math.round(l2LeaseMs / 5),
      },
    },
  };
}

function kprOptions(values: AgentFlagValues): KprOptions {
  const flag = values['kube-proxy-replacement'];
  if (flag !== undefined && flag !== 'true' && flag !== 'false') throw new UsageError(`--kube-proxy-replacement "${flag}": true or false`);
  const algorithm = values['bpf-lb-algorithm'];
  if (algorithm !== 'random' && algorithm !== 'maglev') throw new UsageError(`--bpf-lb-algorithm "${algorithm}": random or maglev`);
  const tableSize = Number(values['bpf-lb-maglev-table-size']);
  if (!(MAGLEV_TABLE_SIZES as readonly number[]).includes(tableSize)) throw new UsageError(`--bpf-lb-maglev-table-size "${values['bpf-lb-maglev-table-size']}": one of the primes ${MAGLEV_TABLE_SIZES.join(', ')}`);
  const mapMax = Number(values['bpf-lb-map-max']);
  if (!Number.isInteger(mapMax) || mapMax < 16 || mapMax > 1 << 24) throw new UsageError(`--bpf-lb-map-max "${values['bpf-lb-map-max']}": an integer from 16 to ${1 << 24}`);
  return {
    enabled: flag === undefined ? undefined : flag === 'true',
    bpfRoot: values['bpf-root'],
    cgroupRoot: values['cgroup-root'],
    maglevTableSize: tableSize,
    lbMapMax: mapMax,
    defaultAlgorithm: algorithm,
    // `none`: socket-level balancing only, no programs on any interface.
    devices: values.devices === 'none' ? 'none' : values.devices?.split(',').map((d) => d.trim()).filter(Boolean),
  };
}

/** The Kubernetes store: the kubeconfig given, or the pod's service account. */
function kubernetesStore(values: { kubeconfig?: string | undefined; 'lease-namespace': string; 'kube-api-qps': string; 'kube-api-burst': string }): StoreOptions {
  const rate = (flag: 'kube-api-qps' | 'kube-api-burst'): number => {
    const n = Number(values[flag]);
    if (!Number.isFinite(n) || n <= 0 || n > 10_000) throw new UsageError(`--${flag} "${values[flag]}": a number above 0 and at most 10000`);
    return n;
  };
  return {
    backend: 'kubernetes',
    ...(values.kubeconfig !== undefined ? { kubeconfig: values.kubeconfig } : {}),
    namespace: values['lease-namespace'],
    qps: rate('kube-api-qps'),
    burst: Math.max(1, Math.floor(rate('kube-api-burst'))),
  };
}

async function standalone(args: string[], io: IO): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...processFlags,
      ...agentFlags,
      socket: { type: 'string', default: defaultSocket },
      'node-name': { type: 'string' },
      manifests: { type: 'string', default: '/etc/beacon/manifests' },
      'state-dir': { type: 'string', default: '/var/lib/beacon' },
      store: { type: 'string', default: 'embedded' },
      'etcd-endpoints': { type: 'string' },
      'etcd-prefix': { type: 'string', default: '/beacon' },
      'lease-duration': { type: 'string', default: '5s' },
    },
    strict: true,
  });
  const nodeName = values['node-name'];
  if (!nodeName) throw new UsageError('standalone needs --node-name NAME');
  const store = ((): StoreOptions => {
    const backend = values.store;
    if (backend === 'embedded') return { backend, manifestsDir: values.manifests, stateDir: values['state-dir'] };
    if (backend === 'kubernetes') return kubernetesStore(values);
    if (backend !== 'etcd') throw new UsageError(`--store "${backend}": embedded, etcd or kubernetes`);
    const endpoints = (values['etcd-endpoints'] ?? '').split(',').filter(Boolean);
    if (endpoints.length === 0) throw new UsageError('--store etcd needs --etcd-endpoints URL,...');
    return { backend, endpoints, prefix: values['etcd-prefix'] };
  })();
  return run(io, values, { nodeName, store, leaseDurationMs: seconds(values['lease-duration'], '--lease-duration'), ...agentOptions(values, store.backend) });
}

/** `beacon operator`: the operator role alone, on the Kubernetes API. */
async function operatorCommand(args: string[], io: IO): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...processFlags,
      socket: { type: 'string', default: defaultOperatorSocket },
      // The lease holder's name: the pod name in a cluster, unique among the operator replicas.
      identity: { type: 'string', default: process.env.POD_NAME ?? hostname() },
      'lease-duration': { type: 'string', default: '5s' },
    },
    strict: true,
  });
  return run(io, values, {
    nodeName: values.identity,
    roles: { operator: true, agent: false },
    store: kubernetesStore(values),
    leaseDurationMs: seconds(values['lease-duration'], '--lease-duration'),
  });
}

/** `beacon agent`: the node agent alone, on the Kubernetes API. */
async function agentCommand(args: string[], io: IO): Promise<number> {
  const { values } = parseArgs({ args, options: { ...processFlags, ...agentFlags, socket: { type: 'string', default: defaultSocket }, 'node-name': { type: 'string', default: process.env.NODE_NAME } }, strict: true });
  const nodeName = values['node-name'];
  if (!nodeName) throw new UsageError('agent needs --node-name NAME (or NODE_NAME, from the downward API spec.nodeName)');
  // The lease duration only matters to the operator role, which this process does not run.
  return run(io, values, { nodeName, roles: { operator: false, agent: true }, store: kubernetesStore(values), leaseDurationMs: 5000, ...agentOptions(values, 'kubernetes') });
}

/** Starts the process and runs it until SIGTERM/SIGINT. */
async function run(io: IO, values: { socket: string; 'metrics-addr'?: string | undefined; 'log-level': string }, opts: Omit<StandaloneOptions, 'socket' | 'metricsAddr' | 'log'>): Promise<number> {
  const { createLogger } = await import('./log.js');
  const log = createLogger({ level: values['log-level'] });
  const { startStandalone } = await import('./standalone.js');
  const running = await startStandalone({ ...opts, socket: values.socket, metricsAddr: values['metrics-addr'], log });
  // SIGTERM/SIGINT: hand over, release the lease and finish writes; never take longer than 5 s.
  // A repeated SIGTERM (a supervisor signalling the whole process group again) must not cut the
  // handover short, so the handlers stay installed; a second Ctrl-C exits at once.
  await new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (signal: string) => {
      if (stopping) {
        if (signal === 'SIGINT') process.exit(exit.failed);
        return;
      }
      stopping = true;
      setTimeout(() => {
        io.err('beacon: shutdown took longer than 5 s; exiting\n');
        process.exit(exit.failed);
      }, 4500).unref();
      void running.stop(signal).then(resolve);
    };
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
  });
  return exit.ok;
}

/** `a=b,c=d` as node labels, checked with the Kubernetes rules. */
function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of text.split(',').filter(Boolean)) {
    const at = pair.indexOf('=');
    const [key, value] = at < 0 ? [pair, ''] : [pair.slice(0, at), pair.slice(at + 1)];
    const problem = labelKeyError(key) ?? labelValueError(value);
    if (problem) throw new UsageError(`--node-labels "${pair}": ${problem}`);
    labels[key] = value;
  }
  return labels;
}

async function l2Announcements(args: string[], io: IO): Promise<number> {
  const { values } = parseArgs({ args, options: { output: { type: 'string', short: 'o' }, socket: { type: 'string', default: defaultSocket } }, strict: true });
  const format = outputFormat(values.output, ['table', 'json']);
  const data = await getLocal<L2AnnouncementView[]>(values.socket, '/v1/l2/announcements');
  if (format === 'json') io.out(`${JSON.stringify(data, null, 2)}\n`);
  else if (data.length === 0) io.out('No IPs to announce: no service with an IP is selected by an L2AnnouncementPolicy.\n');
  else io.out(renderTable(['IP', 'SERVICES', 'NODE', 'INTERFACES', 'REASON'], data.map((a) => [a.ip, a.services.join(','), a.node ?? '-', a.interfaces.join(',') || '-', a.reason])));
  return exit.ok;
}

/** 3725 → 1h2m5s, as Cilium prints uptimes. */
export function uptimeText(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${h > 0 ? `${h}h` : ''}${h > 0 || m > 0 ? `${m}m` : ''}${s}s`;
}

async function bgpCommand(what: 'peers' | 'routes' | 'explain', args: string[], io: IO): Promise<number> {
  const { values } = parseArgs({ args, options: { output: { type: 'string', short: 'o' }, socket: { type: 'string', default: defaultSocket } }, strict: true });
  const format = outputFormat(values.output, ['table', 'json']);
  if (what === 'peers') {
    const peers = await getLocal<BGPPeerView[]>(values.socket, '/v1/bgp/peers');
    if (format === 'json') io.out(`${JSON.stringify(peers, null, 2)}\n`);
    else if (peers.length === 0) io.out('No BGP peers: no BGPClusterConfig selects this node.\n');
    else
      io.out(
        renderTable(
          ['NODE', 'LOCAL AS', 'PEER AS', 'PEER ADDRESS', 'SESSION STATE', 'UPTIME', 'FAMILY', 'RECEIVED', 'ADVERTISED', 'LAST ERROR'],
          peers.map((p) => [p.node, String(p.localASN), String(p.peerASN), `${p.peerAddress}:${p.peerPort}`, p.state, uptimeText(p.uptimeSeconds), p.families.join(','), String(p.received), String(p.advertised), p.lastError ?? '-']),
        ),
      );
    return exit.ok;
  }
  if (what === 'explain') {
    const why = await getLocal<RouteExplanation[]>(values.socket, '/v1/bgp/explanations');
    if (format === 'json') io.out(`${JSON.stringify(why, null, 2)}\n`);
    else if (why.length === 0) io.out('No service is considered for BGP: no BGPClusterConfig selects this node, or no peer is configured.\n');
    else io.out(renderTable(['PEER', 'SERVICE', 'ADDRESS', 'ADVERTISED', 'REASON', 'MESSAGE'], why.map((e) => [e.peer, e.service, e.address ?? '-', e.advertised ? 'yes' : 'no', e.reason, e.message])));
    return exit.ok;
  }
  const routes = await getLocal<BGPRouteView[]>(values.socket, '/v1/bgp/routes');
  if (format === 'json') io.out(`${JSON.stringify(routes, null, 2)}\n`);
  else if (routes.length === 0) io.out('No routes advertised.\n');
  else
    io.out(
      renderTable(
        ['PEER', 'PREFIX', 'NEXT HOP', 'AS PATH', 'COMMUNITIES', 'LARGE COMMUNITIES', 'LOCAL PREF', 'MED'],
        routes.map((r) => [r.peer, r.prefix, r.nextHop, r.asPath.join(' ') || '-', r.communities.join(',') || '-', r.largeCommunities.join(',') || '-', r.localPreference === null ? '-' : String(r.localPreference), r.med === null ? '-' : String(r.med)]),
      ),
    );
  return exit.ok;
}

function outputFormat(value: string | undefined, allowed: readonly string[]): string {
  const format = value ?? allowed[0]!;
  if (!allowed.includes(format)) throw new UsageError(`unknown output format "${format}" (${allowed.join(' or ')})`);
  return format;
}

async function inspect(command: 'status' | 'services' | 'pools', args: string[], io: IO): Promise<number> {
  const { values } = parseArgs({ args, options: { output: { type: 'string', short: 'o' }, socket: { type: 'string', default: defaultSocket } }, strict: true });
  const format = outputFormat(values.output, ['table', 'json']);
  const data = await getLocal<unknown>(values.socket, `/v1/${command}`);
  if (format === 'json') {
    io.out(`${JSON.stringify(data, null, 2)}\n`);
    return exit.ok;
  }
  if (command === 'status') {
    const s = data as StatusView;
    const rows: [string, string][] = [
      ['Node', s.node],
      ['Store', `${s.store.backend} (${s.store.ok ? 'healthy' : 'unhealthy'}: ${s.store.message})`],
      ['Operator', s.roles.operator ? 'this node' : `${s.roles.operatorHolder ?? 'nobody yet'}`],
      ['L2', s.l2.enabled ? `announcing ${s.l2.announcing} IPs; live nodes: ${s.l2.liveNodes.join(', ') || 'none'}` : `off (${s.l2.reason})`],
      ['KPR', s.kpr.enabled ? `${s.kpr.frontends} frontends, ${s.kpr.backends} backends; sockets${s.kpr.devices.length > 0 ? ` and ${s.kpr.devices.join(', ')}` : ' only'}` : `off (${s.kpr.reason})`],
      ['Services', `${s.counts.services} (${s.counts.satisfied} with IPs, ${s.counts.unsatisfied} waiting)`],
      ['Pools', String(s.counts.pools)],
      ['Uptime', `${s.uptimeSeconds}s`],
      ['Version', s.version],
    ];
    io.out(rows.map(([k, v]) => `${`${k}:`.padEnd(10)} ${v}`).join('\n') + '\n');
  } else if (command === 'services') {
    const rows = (data as ServiceView[]).map((s) => [s.namespace, s.name, s.ips.join(',') || '-', s.satisfied ? 'yes' : 'no', s.announcers === undefined ? 'n/a' : s.announcers.join(',') || '-', s.reason, s.message]);
    io.out(renderTable(['NAMESPACE', 'NAME', 'IPS', 'SATISFIED', 'ANNOUNCER', 'REASON', 'MESSAGE'], rows));
  } else {
    const rows = (data as PoolView[]).map((p) => [p.name, p.total, p.used, p.available, p.disabled ? 'yes' : 'no', p.conflicting ? 'yes' : 'no', p.message]);
    io.out(renderTable(['POOL', 'TOTAL', 'USED', 'AVAILABLE', 'DISABLED', 'CONFLICTING', 'MESSAGE'], rows));
  }
  return exit.ok;
}

/** The datapath commands; their failures (nothing pinned, unknown map, a BPF error) are one line. */
async function kprCli(run: (m: typeof import('./kpr-cli.js')) => number, io: IO): Promise<number> {
  const m = await import('./kpr-cli.js');
  try {
    return run(m);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) throw e;
    io.err(`beacon: ${(e as Error).message.split('\n')[0]}\n`);
    return exit.failed;
  }
}

/** Kind names and short names users type, as kubectl accepts them. */
const kindAliases: Record<string, string> = {
  loadbalancerippool: 'LoadBalancerIPPool',
  loadbalancerippools: 'LoadBalancerIPPool',
  lbippool: 'LoadBalancerIPPool',
  lbippools: 'LoadBalancerIPPool',
  pool: 'LoadBalancerIPPool',
  pools: 'LoadBalancerIPPool',
  service: 'Service',
  services: 'Service',
  svc: 'Service',
};

async function etcdCommand(command: 'apply' | 'delete' | 'get', args: string[], io: IO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      filename: { type: 'string', short: 'f', multiple: true },
      output: { type: 'string', short: 'o' },
      namespace: { type: 'string', short: 'n' },
      'etcd-endpoints': { type: 'string', default: process.env.BEACON_ETCD_ENDPOINTS },
      'etcd-prefix': { type: 'string', default: '/beacon' },
    },
    strict: true,
  });
  const endpoints = (values['etcd-endpoints'] ?? '').split(',').filter(Boolean);
  if (endpoints.length === 0) throw new UsageError(`${command} needs --etcd-endpoints URL,... (or BEACON_ETCD_ENDPOINTS); the embedded store reads its manifests folder instead`);
  let objects: StoredObject[] = [];
  let kind: string | undefined;
  if (command === 'get') {
    kind = kindAliases[(positionals[0] ?? '').toLowerCase()] ?? undefined;
    if (!kind) throw new UsageError(`get needs a kind: ${[...new Set(Object.values(kindAliases))].join(', ')} (or short names pools, svc)`);
    outputFormat(values.output, ['yaml', 'json']);
  } else {
    if (!values.filename?.length) throw new UsageError(`${command} needs -f PATH`);
    const { loadManifests, problemText } = await manifests();
    const loaded = loadManifests(values.filename);
    if (loaded.fatal.length > 0 || loaded.skipped.length > 0) {
      for (const p of [...loaded.fatal, ...loaded.skipped]) io.err(`${problemText(p)}\n`);
      return exit.badInput; // nothing is written when any object is bad
    }
    objects = loaded.objects.map((o) => o.object as unknown as StoredObject);
  }
  const [{ createLogger }, { openStore }, { stringify }] = await Promise.all([import('./log.js'), import('./stores.js'), import('yaml')]);
  const log = createLogger({ level: 'warn' });
  const store = await openStore({ backend: 'etcd', endpoints, prefix: values['etcd-prefix'] }, log);
  try {
    if (command === 'apply') {
      for (const o of objects) {
        await store.apply(o);
        io.out(`${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name} applied\n`);
      }
    } else if (command === 'delete') {
      for (const o of objects) {
        const gone = await store.delete({ kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name });
        io.out(`${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name} ${gone ? 'deleted' : 'not found'}\n`);
      }
    } else {
      const name = positionals[1];
      const ns = values.namespace;
      const items = (await store.list(kind!)).items.filter(
        (o) => (name === undefined || o.metadata.name === name || `${o.metadata.namespace}/${o.metadata.name}` === name) && (ns === undefined || o.metadata.namespace === ns),
      );
      if (name !== undefined && items.length === 0) {
        io.err(`beacon: ${kind!} ${name} not found\n`);
        return exit.failed;
      }
      const doc = name !== undefined && items.length === 1 ? items[0] : { apiVersion: 'v1', kind: 'List', items };
      io.out((values.output ?? 'yaml') === 'json' ? `${JSON.stringify(doc, null, 2)}\n` : stringify(doc));
    }
  } finally {
    await store.close();
  }
  return exit.ok;
}
