// The Beacon process: the operator role (LB-IPAM and status conditions, held by one process
// through a lease) and the node-agent role (L2 announcer, BGP), on any store, with the local API
// and metrics. `beacon standalone` runs both roles; in Kubernetes mode `beacon operator` and
// `beacon agent` run one each.
import { createServer, type Server } from 'node:http';
import {
  endpointSliceKind,
  ipamConditionType,
  l2PolicyCondition,
  l2PolicyKind,
  parseL2Policy,
  type Condition,
  type L2AnnouncementPolicy,
  type Labels,
  type LoadBalancerIPPool,
  type Service,
  type ServiceStatus,
} from '../api/index.js';
import { isManaged, poolConditionTypes } from '../lbipam/index.js';
import { objectKey, Reflector, type Store, type StoredObject } from '../store/index.js';
import { bgpKinds, startBGPRole, type BGPReflectors, type BGPRoleOptions } from './bgp.js';
import { ConditionWriter } from './conditions.js';
import { LeaderElector } from './election.js';
import { fixedNodeLabels, nodeObjectLabels } from './kubernetes-node.js';
import { KprAgent, kprOffReason, type KprOptions } from './kpr.js';
import { HealthCheckServers, followHealthChecks } from './health-check-server.js';
import { InterfaceWatcher } from '../l2announce/index.js';
import { startNorthSouth, type NorthSouth } from './nodeport.js';
import { followNodeAddresses } from './node-addresses.js';
import { L2Announcer, type InterfaceSource, type L2Timing, type Responder } from './l2.js';
import { serveLocalAPI, type PoolView, type ServiceView, type StatusView } from './local-api.js';
import type { Logger } from './log.js';
import { createMetrics, type Metrics } from './metrics.js';
import { Operator } from './operator.js';
import { openStore, type StoreOptions } from './stores.js';

export interface StandaloneOptions {
  nodeName: string;
  store: StoreOptions;
  socket: string;
  metricsAddr?: string | undefined;
  /** Operator lease duration (ms). */
  leaseDurationMs: number;
  /** Which roles this process runs (default: both). */
  roles?: Roles;
  /**
   * This node's labels (policies select nodes by them). Default: on the Kubernetes store, the
   * labels of this node's Node object, followed as they change; elsewhere none.
   */
  nodeLabels?: Labels;
  l2?: L2Options;
  /** This node's addresses for BGP (router ID, next hops); default: read from its interfaces. */
  nodeAddresses?: string[];
  bgp?: { enabled: boolean; speakerOptions?: BGPRoleOptions['speakerOptions'] };
  /** The eBPF kube-proxy replacement; absent = off. */
  kpr?: KprOptions;
  log: Logger;
}

export interface Roles {
  /** Contend for the operator lease; while held, run LB-IPAM and the condition writers. */
  operator: boolean;
  /** Run the node agent: L2 announcer and BGP speaker. */
  agent: boolean;
}

export interface L2Options {
  enabled: boolean;
  timing?: Partial<L2Timing>;
  /** The packet link and interface watcher; default: AF_PACKET sockets and the kernel's interfaces. */
  open?: (log: Logger) => Promise<{ responder: Responder; interfaces: InterfaceSource }>;
}

/**
 * This namespace's interfaces, read once for the whole agent (the L2 link and the north-south
 * devices both follow them): started on first use, closed with close().
 */
function sharedInterfaces(log: Logger): { get(): Promise<InterfaceWatcher>; close(): void } {
  let started: Promise<InterfaceWatcher> | undefined;
  return {
    get: () => (started ??= InterfaceWatcher.start({ onError: (e) => log.warn({ err: e.message }, 'reading the interfaces failed; keeping the last inventory') })),
    close: () => void started?.then((w) => w.close(), () => undefined),
  };
}

export interface Running {
  readonly store: Store;
  /** Absent when this process does not run the operator role. */
  readonly operator: Operator | undefined;
  readonly elector: LeaderElector | undefined;
  readonly metrics: Metrics;
  stop(reason: string): Promise<void>;
}

export const operatorLease = 'beacon-operator';
const version = '0.1.0';

const condition = (o: StoredObject, type: string): Condition | undefined =>
  ((o.status as { conditions?: Condition[] } | undefined)?.conditions ?? []).find((c) => c.type === type);

/** One service as `beacon services` shows it, or undefined when LB-IPAM has nothing to do with it. */
function serviceView(o: StoredObject): ServiceView | undefined {
  const c = condition(o, ipamConditionType);
  if (!c && !(o.kind === 'Service' && isManaged(o as unknown as Service))) return undefined;
  const status = o.status as ServiceStatus | undefined;
  return {
    namespace: o.metadata.namespace ?? 'default',
    name: o.metadata.name,
    ips: (status?.loadBalancer?.ingress ?? []).flatMap((i) => (i.ip ? [i.ip] : [])),
    satisfied: c?.status === 'True',
    reason: c?.reason ?? 'pending',
    message: c?.message ?? 'not processed by the operator yet',
  };
}

const byNamespaceName = (a: ServiceView, b: ServiceView): number =>
  a.namespace === b.namespace ? (a.name < b.name ? -1 : 1) : a.namespace < b.namespace ? -1 : 1;

/** What `beacon services` shows: read from the stored status, so every node agrees. */
export function serviceViews(services: readonly StoredObject[]): ServiceView[] {
  return services.flatMap((o) => serviceView(o) ?? []).sort(byNamespaceName);
}

/**
 * serviceViews of a reflector's services, kept up to date one object at a time: with 10,000
 * services, rebuilding and sorting the whole list on every request would cost each `beacon
 * services` (and each poll of it) far more than the change it is waiting for.
 */
class ServiceViewCache {
  private views = new Map<string, ServiceView>();
  /** The sorted list, and each key's place in it; undefined after a service came or went. */
  private sorted: { list: ServiceView[]; at: Map<string, number> } | undefined;

  constructor(private readonly services: Reflector) {
    services.onChange((key) => (key === undefined ? this.reset() : this.update(key)));
    this.reset();
  }

  private reset(): void {
    this.views = new Map(this.services.items().flatMap((o) => {
      const v = serviceView(o);
      return v ? [[objectKey(o), v] as const] : [];
    }));
    this.sorted = undefined;
  }

  private update(key: string): void {
    const o = this.services.get(key);
    const view = o && serviceView(o);
    const place = this.sorted?.at.get(key);
    if (view && place !== undefined) this.sorted!.list[place] = view; // same service, same place
    else if (view || this.views.has(key)) this.sorted = undefined;
    if (view) this.views.set(key, view);
    else this.views.delete(key);
  }

  list(): ServiceView[] {
    if (!this.sorted) {
      const entries = [...this.views].sort(([, a], [, b]) => byNamespaceName(a, b));
      this.sorted = { list: entries.map(([, v]) => v), at: new Map(entries.map(([k], i) => [k, i])) };
    }
    return this.sorted.list;
  }
}

export function poolViews(pools: readonly StoredObject[]): PoolView[] {
  return pools
    .map((o) => {
      const count = (type: string) => condition(o, type)?.message ?? '0';
      const conflict = condition(o, poolConditionTypes.conflict);
      const invalid = condition(o, poolConditionTypes.invalid);
      const disabled = (o.spec as LoadBalancerIPPool['spec'] | undefined)?.disabled === true;
      const message =
        invalid?.status === 'True' ? `invalid: ${invalid.message}` : conflict?.status === 'True' ? conflict.message : disabled ? 'disabled: no new allocations' : condition(o, poolConditionTypes.total) ? 'ok' : 'not processed by the operator yet';
      return {
        name: o.metadata.name,
        total: count(poolConditionTypes.total),
        used: count(poolConditionTypes.used),
        available: count(poolConditionTypes.available),
        conflicting: conflict?.status === 'True',
        disabled,
        message,
      };
    })
    .sort((a, b) => (a.name < b.name ? -1 : 1));
}

function listen(server: Server, addr: string): Promise<void> {
  const at = addr.lastIndexOf(':');
  const host = addr.slice(0, at).replace(/^\[|\]$/g, '') || '127.0.0.1';
  const port = Number(addr.slice(at + 1));
  if (at < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--metrics-addr "${addr}": expected HOST:PORT`);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
}

export async function startStandalone(opts: StandaloneOptions): Promise<Running> {
  const { log } = opts;
  const roles = opts.roles ?? { operator: true, agent: true };
  if (!roles.operator && !roles.agent) throw new Error('startStandalone: no role to run');
  const started = Date.now();
  const metrics = createMetrics();
  const store = await openStore(opts.store.backend === 'kubernetes' ? { identity: opts.nodeName, ...opts.store } : opts.store, log);
  const onError = (op: string) => (err: Error) => {
    metrics.storeErrors.inc({ op });
    log.warn({ err: err.message }, `store ${op} failed; retrying`);
  };
  const pools = new Reflector(store, 'LoadBalancerIPPool', { onError: onError('watch pools') });
  const services = new Reflector(store, 'Service', { onError: onError('watch services') });
  const l2Policies = new Reflector(store, l2PolicyKind, { onError: onError('watch L2 policies') });
  const slices = new Reflector(store, endpointSliceKind, { onError: onError('watch endpoint slices') });
  const [clusterConfigs, peerConfigs, advertisements, overrides] = bgpKinds.map((k) => new Reflector(store, k, { onError: onError(`watch ${k}`) })) as [Reflector, Reflector, Reflector, Reflector];
  // In Kubernetes mode the agent follows its Node object's labels unless they were given.
  const nodes = roles.agent && !opts.nodeLabels && store.backend === 'kubernetes' ? new Reflector(store, 'Node', { onError: onError('watch nodes') }) : undefined;
  const reflectors = [pools, services, l2Policies, slices, clusterConfigs, peerConfigs, advertisements, overrides, ...(nodes ? [nodes] : [])];
  await Promise.all(reflectors.map((r) => r.start()));
  const nodeLabels = nodes ? nodeObjectLabels(nodes, opts.nodeName, log) : fixedNodeLabels(opts.nodeLabels ?? {});
  const bgpReflectors: BGPReflectors = { clusterConfigs, peerConfigs, advertisements, overrides, services, slices };
  const policyConditions = new ConditionWriter(store, l2Policies, (o) => [l2PolicyCondition(parseL2Policy(o as unknown as L2AnnouncementPolicy))], log.child({ role: 'operator' }), metrics);

  const bgpRole = await startBGPRole({
    store,
    nodeName: opts.nodeName,
    nodeLabels: nodeLabels.get,
    nodeAddresses: opts.nodeAddresses,
    enabled: roles.agent && opts.bgp?.enabled !== false,
    reflectors: bgpReflectors,
    secretsDir: opts.store.backend === 'embedded' ? opts.store.manifestsDir : process.cwd(),
    log,
    metrics,
    speakerOptions: opts.bgp?.speakerOptions,
  });
  const bgp = bgpRole.agent;
  const conditionWriters = [policyConditions, ...bgpRole.conditionWriters];

  // The L2 announcer needs raw sockets; without them this node announces nothing and says why.
  const hostInterfaces = sharedInterfaces(log);
  let l2: L2Announcer | undefined;
  let l2Off: string | undefined = !roles.agent ? 'this process does not run the node agent' : opts.l2?.enabled === false ? 'disabled by --l2-announcements false' : undefined;
  if (!l2Off) {
    try {
      const open = opts.l2?.open ?? (async (l2Log: Logger) => (await import('./l2-link.js')).openL2Link(l2Log, await hostInterfaces.get()));
      const { responder, interfaces } = await open(log.child({ role: 'l2' }));
      l2 = new L2Announcer({ nodeName: opts.nodeName, nodeLabels: nodeLabels.get, leases: store.leases, policies: l2Policies, services, slices, responder, interfaces, log: log.child({ role: 'l2' }), metrics, timing: opts.l2?.timing, events: store.events });
      l2.start();
    } catch (e) {
      l2Off = `cannot open the packet link: ${(e as Error).message}`;
      log.error({ err: (e as Error).message }, 'L2 announcements are off on this node');
    }
  }

  const kprRole: KprRole = roles.agent ? await startKpr(opts, services, slices, metrics, hostInterfaces) : { agent: undefined, off: 'this process does not run the node agent', devices: () => [], stop: () => Promise.resolve() };
  const kpr = kprRole.agent;

  const stopFollowingLabels = nodeLabels.onChange(() => {
    l2?.nodeLabelsChanged();
    bgp?.schedule();
  });

  const operator = roles.operator ? new Operator({ store, pools, services, log: log.child({ role: 'operator' }), metrics }) : undefined;
  const elector = operator
    ? new LeaderElector(store.leases, operatorLease, opts.nodeName, { durationMs: opts.leaseDurationMs }, ({ leader, reason }) => {
        metrics.leaseHeld.set({ lease: operatorLease }, leader ? 1 : 0);
        metrics.leaseTransitions.inc({ lease: operatorLease, held: String(leader) });
        log.info({ lease: operatorLease, reason }, leader ? 'operator role taken' : 'operator role given up');
        if (leader) {
          operator.start();
          for (const w of conditionWriters) w.start();
        } else {
          void operator.stop();
          for (const w of conditionWriters) w.stop();
        }
      })
    : undefined;
  elector?.start();

  const views = new ServiceViewCache(services);
  const status = (): StatusView => {
    const health = store.health();
    const svc = views.list();
    return {
      node: opts.nodeName,
      store: { backend: store.backend, ok: health.ok, message: health.message },
      roles: { operator: elector?.isLeader ?? false, operatorHolder: elector?.holder ?? null, agent: roles.agent },
      l2: l2 ? { enabled: true, liveNodes: [...l2.liveNodes], announcing: l2.announcements().filter((a) => a.reason === 'announcing').length } : { enabled: false, reason: l2Off ?? 'off' },
      kpr: kpr ? { enabled: true, frontends: kpr.frontends, backends: kpr.backends, devices: kprRole.devices() } : { enabled: false, reason: kprRole.off ?? 'off' },
      counts: { pools: pools.items().length, services: svc.length, satisfied: svc.filter((s) => s.satisfied).length, unsatisfied: svc.filter((s) => !s.satisfied).length },
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
      version,
    };
  };
  const withAnnouncers = (list: ServiceView[]): ServiceView[] => {
    if (!l2) return list;
    const by = l2.announcersByService();
    return list.map((v) => ({ ...v, announcers: by.get(`${v.namespace}/${v.name}`) ?? [] }));
  };
  const api = await serveLocalAPI(opts.socket, {
    status,
    services: () => withAnnouncers(views.list()),
    pools: () => poolViews(pools.items()),
    l2Announcements: () => {
      if (!l2) throw new Error(`L2 announcements are off on this node: ${l2Off ?? 'not started'}`);
      return l2.announcements();
    },
    bgpPeers: () => {
      if (!bgp) throw new Error('BGP is off on this node (--bgp false)');
      return bgp.peers();
    },
    bgpRoutes: () => {
      if (!bgp) throw new Error('BGP is off on this node (--bgp false)');
      return bgp.routes();
    },
    bgpExplanations: () => {
      if (!bgp) throw new Error('BGP is off on this node (--bgp false)');
      return bgp.explanations();
    },
  });

  let metricsServer: Server | undefined;
  if (opts.metricsAddr) {
    metricsServer = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      if (path === '/metrics') {
        metrics.storeUp.set(store.health().ok ? 1 : 0);
        void metrics.registry.metrics().then((text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text));
      } else if (path === '/healthz') {
        res.writeHead(200).end('ok\n');
      } else if (path === '/readyz') {
        const health = store.health();
        const ready = reflectors.every((r) => r.hasSynced) && health.ok;
        res.writeHead(ready ? 200 : 503).end(ready ? 'ok\n' : `not ready: ${health.ok ? 'caches not synced' : health.message}\n`);
      } else {
        res.writeHead(404).end('not found\n');
      }
    });
    await listen(metricsServer, opts.metricsAddr);
  }
  log.info({ node: opts.nodeName, roles, store: store.backend, socket: opts.socket, metrics: opts.metricsAddr ?? null }, `beacon ${roles.agent ? (roles.operator ? 'standalone' : 'agent') : 'operator'} started`);

  let stopping: Promise<void> | undefined;
  const stop = (reason: string): Promise<void> =>
    (stopping ??= (async () => {
      log.info({ reason }, 'stopping');
      // Hand the L2 share over first (successors answer before this node goes quiet), withdraw BGP
      // routes (or keep them at peers with graceful restart), then the operator lease.
      stopFollowingLabels();
      await Promise.all([l2?.stop(), bgpRole.stop(), kpr?.stop()]);
      await kprRole.stop();
      hostInterfaces.close();
      await elector?.stop(); // releases the lease so another process takes over at once
      for (const w of conditionWriters) w.stop();
      await operator?.stop(); // lets in-flight status writes finish
      for (const r of reflectors) r.stop();
      await new Promise<void>((r) => api.close(() => r()));
      if (metricsServer) await new Promise<void>((r) => metricsServer.close(() => r()));
      await store.close();
      log.info('stopped');
    })());
  return { store, operator, elector, metrics, stop };
}

/**
 * The kube-proxy replacement of this node, or why it is off: by flag, for lack of kernel
 * support (probed first) or because the programs could not be loaded. Never fatal: the rest of
 * the node agent runs either way, and status and metrics say why.
 */
interface KprRole {
  agent: KprAgent | undefined;
  off: string | undefined;
  /** Devices carrying the north-south programs. */
  devices(): string[];
  stop(): Promise<void>;
}

async function startKpr(opts: StandaloneOptions, services: Reflector, slices: Reflector, metrics: Metrics, interfaces: ReturnType<typeof sharedInterfaces>): Promise<KprRole> {
  const log = opts.log.child({ role: 'kpr' });
  const off = (reason: string) => {
    metrics.kprEnabled.set({ reason }, 0);
    return { agent: undefined, off: reason, devices: () => [], stop: () => Promise.resolve() };
  };
  if (!opts.kpr) return off('not configured');
  const k = opts.kpr;
  const { probeKernel, ensureCgroup2, setLibbpfLogger } = await import('../bpf/index.js');
  // libbpf's own messages (e.g. why a pinned map could not be reused) into this log, not stderr.
  setLibbpfLogger((level, message) => (level === 'warn' ? log.warn({ source: 'libbpf' }, message) : log.debug({ source: 'libbpf' }, message)));
  const reason = kprOffReason(k.enabled, probeKernel);
  if (reason) {
    if (k.enabled !== false) log.warn({ reason }, 'kube-proxy replacement is off');
    return off(reason);
  }
  let agent: KprAgent | undefined;
  try {
    const { SocketDatapath } = await import('../kpr/datapath.js');
    const cgroupRoot = k.cgroupRoot ?? ensureCgroup2();
    const datapath = SocketDatapath.open({ bpfRoot: k.bpfRoot, cgroupRoot, maglevTableSize: k.maglevTableSize, lbMapMax: k.lbMapMax, warn: (m) => log.warn(m) });
    const addresses = await followNodeAddresses(opts.nodeAddresses, () => agent?.nodeAddressesChanged());
    agent = new KprAgent({ nodeName: opts.nodeName, nodeAddresses: addresses.get, services, slices, datapath, options: k, log, metrics });
    agent.start();
    // With kube-proxy gone, its healthCheckNodePort answers (externalTrafficPolicy: Local) come from here.
    const healthChecks = new HealthCheckServers({ log: log.child({ part: 'health-check' }) });
    const stopHealthChecks = followHealthChecks({ nodeName: opts.nodeName, services, slices, servers: healthChecks, log });
    // Also with --devices none: programs an earlier run left on devices are taken off.
    let northSouth: NorthSouth | undefined;
    try {
      northSouth = await startNorthSouth(k, log, metrics, () => interfaces.get());
    } catch (e) {
      // Socket-level balancing keeps working; only traffic from outside the node is not balanced here.
      log.error({ err: (e as Error).message }, 'north-south datapath is off: the tc programs could not be loaded');
    }
    metrics.kprEnabled.set({ reason: 'running' }, 1);
    log.info({ bpfRoot: k.bpfRoot, cgroupRoot, devices: northSouth?.devices() ?? [] }, 'kube-proxy replacement running');
    return {
      agent,
      devices: () => northSouth?.devices() ?? [],
      off: undefined,
      stop: async () => {
        addresses.stop();
        stopHealthChecks();
        await Promise.all([healthChecks.close(), northSouth?.stop()]);
      },
    };
  } catch (e) {
    const message = (e as Error).message;
    log.error({ err: message }, 'kube-proxy replacement is off: the datapath could not be loaded');
    return off(`cannot load the datapath: ${message.split('\n')[0]}`);
  }
}
