// The node agent's BGP part: the pure `planBGP` turns the BGP resources, the services and this
// node into sessions and per-peer routes; the speaker keeps its Adj-RIB-Outs equal to them.
// Level-triggered: every change recomputes the plan and the speaker sends only the difference.
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import {
  bgpAdvertisementKind,
  bgpClusterConfigKind,
  bgpNodeConfigOverrideKind,
  bgpPeerConfigKind,
  type BGPAdvertisement,
  type BGPClusterConfig,
  type BGPNodeConfigOverride,
  type BGPPeerConfig,
  type Condition,
  type EndpointSlice,
  type Labels,
} from '../api/index.js';
import { conditionsOf, planBGP, Speaker, type BGPPolicyInput, type BGPPolicyResult, type BGPService, type Family, type PeerConfig, type SpeakerOptions } from '../bgp/index.js';
import type { Reflector, Store, StoredObject } from '../store/index.js';
import { followNodeAddresses } from './node-addresses.js';
import { ConditionWriter } from './conditions.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

export const bgpKinds = [bgpClusterConfigKind, bgpPeerConfigKind, bgpAdvertisementKind, bgpNodeConfigOverrideKind] as const;

export interface BGPReflectors {
  clusterConfigs: Reflector;
  peerConfigs: Reflector;
  advertisements: Reflector;
  overrides: Reflector;
  services: Reflector;
  slices: Reflector;
}

export interface BGPAgentDeps {
  nodeName: string;
  /** This node's labels now (they may change: call schedule). */
  nodeLabels: () => Labels;
  /** This node's addresses (router ID and next hops default to them). */
  nodeAddresses: () => readonly string[];
  reflectors: BGPReflectors;
  /** Relative `authSecretRef` paths are read from here (standalone: the password is a file). */
  secretsDir: string;
  log: Logger;
  metrics: Metrics;
  /** Tests pass an in-memory transport. */
  speakerOptions?: Omit<SpeakerOptions, 'listen' | 'log'>;
}

/** One line of `beacon bgp peers` (Cilium's columns). */
export interface BGPPeerView {
  node: string;
  name: string;
  localASN: number;
  peerASN: number;
  peerAddress: string;
  peerPort: number;
  state: string;
  uptimeSeconds: number;
  families: Family[];
  received: number;
  advertised: number;
  lastError: string | null;
}

/** One line of `beacon bgp routes`. */
export interface BGPRouteView {
  peer: string;
  prefix: string;
  family: Family;
  nextHop: string;
  asPath: number[];
  communities: string[];
  largeCommunities: string[];
  localPreference: number | null;
  med: number | null;
}

/** The planner's input from the reflectors' objects. */
export function bgpInput(node: BGPPolicyInput['node'], r: BGPReflectors, readSecret: BGPPolicyInput['readSecret']): BGPPolicyInput {
  const items = <T>(x: Reflector): T[] => x.items() as unknown as T[];
  return {
    node,
    clusterConfigs: items<BGPClusterConfig>(r.clusterConfigs),
    peerConfigs: items<BGPPeerConfig>(r.peerConfigs),
    advertisements: items<BGPAdvertisement>(r.advertisements),
    nodeOverrides: items<BGPNodeConfigOverride>(r.overrides),
    services: items<BGPService>(r.services),
    endpointSlices: items<EndpointSlice>(r.slices),
    readSecret,
  };
}

/**
 * Conditions of the BGP objects as the operator writes them: only the problems that do not depend
 * on a node (those are logged by each node and shown by `beacon bgp peers`).
 */
export function clusterBGPConditions(r: BGPReflectors, operatorNode: BGPPolicyInput['node']): Map<string, Condition[]> {
  // Secrets are per node; the operator does not judge them.
  const input = bgpInput(operatorNode, r, () => 'unchecked');
  return conditionsOf(input, planBGP(input).problems.filter((p) => !p.nodeSpecific));
}

export class BGPAgent {
  private speaker: Speaker | undefined;
  private starting: Promise<Speaker> | undefined;
  private listenPort: number | false | undefined;
  private plan: BGPPolicyResult | undefined;
  private timer: NodeJS.Timeout | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void)[] = [];
  private stopped = false;
  private loggedProblems = '';

  constructor(private readonly deps: BGPAgentDeps) {}

  start(): void {
    const r = this.deps.reflectors;
    this.unsubscribe = [r.clusterConfigs, r.peerConfigs, r.advertisements, r.overrides, r.services, r.slices].map((x) => x.onChange(() => this.schedule()));
    this.schedule();
    this.statsTimer = setInterval(() => this.exportStats(), 1000);
    this.statsTimer.unref();
    // Password files are not watched: re-plan every 10 s so a changed secret takes effect.
    this.resyncTimer = setInterval(() => this.schedule(), 10_000);
    this.resyncTimer.unref();
  }

  /** Stops the speaker: peers with graceful restart keep our routes (restart), others get withdrawals first. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.statsTimer);
    clearInterval(this.resyncTimer);
    for (const u of this.unsubscribe) u();
    const speaker = this.speaker ?? (await this.starting?.catch(() => undefined));
    if (!speaker) return;
    const peers = this.plan?.peers ?? [];
    const restart = peers.length > 0 && peers.every((p) => p.gracefulRestart?.enabled);
    await speaker.close(restart ? 'restart' : 'graceful', restart ? 0 : 500);
  }

  /** Re-read the node's addresses and the objects soon. */
  schedule(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.reconcile();
    }, 10);
  }

  private readSecret = (ref: string): string | Error => {
    const path = isAbsolute(ref) ? ref : resolve(this.deps.secretsDir, ref);
    try {
      return readFileSync(path, 'utf8');
    } catch (e) {
      return new Error(`cannot read the password file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };

  private async reconcile(): Promise<void> {
    if (this.stopped) return;
    // Without any cluster config there is nothing to plan (and no speaker to update).
    if (this.deps.reflectors.clusterConfigs.items().length === 0 && !this.speaker && !this.starting) return;
    const node = { name: this.deps.nodeName, labels: this.deps.nodeLabels(), addresses: this.deps.nodeAddresses() };
    const plan = planBGP(bgpInput(node, this.deps.reflectors, this.readSecret));
    this.plan = plan;
    const problems = plan.problems.map((p) => `${p.kind} ${p.name}: ${p.reason}: ${p.message}`).join('\n');
    if (problems !== this.loggedProblems) {
      this.loggedProblems = problems;
      for (const p of plan.problems) this.deps.log.warn({ kind: p.kind, name: p.name, reason: p.reason }, p.message);
    }
    if (plan.peers.length === 0 && !this.speaker && !this.starting) return; // BGP not configured for this node
    const port = plan.instances.find((i) => i.localPort !== undefined)?.localPort ?? false;
    try {
      const speaker = await this.speakerFor(port);
      if (this.stopped) return;
      speaker.setPeers(plan.peers);
      for (const p of plan.peers) speaker.setRoutes(p.name, plan.routes.get(p.name) ?? []);
    } catch (e) {
      this.deps.log.error({ err: (e as Error).message, port }, 'cannot start the BGP speaker; retrying');
      setTimeout(() => this.schedule(), 2000).unref();
    }
  }

  /** The running speaker, restarted when the listening port changes. */
  private async speakerFor(port: number | false): Promise<Speaker> {
    if (this.starting && this.listenPort === port) return this.starting;
    const old = this.speaker ?? (await this.starting?.catch(() => undefined));
    if (old) await old.close('graceful', 500);
    this.listenPort = port;
    const log = this.deps.log;
    this.starting = Speaker.start({ ...this.deps.speakerOptions, listen: port === false ? false : { port }, log });
    this.starting.then(
      (s) => {
        this.speaker = s;
        s.events.on('state', (name: string, state: string) => log.info({ peer: name, state }, 'BGP session state'));
      },
      () => {
        this.starting = undefined;
        this.speaker = undefined;
      },
    );
    return this.starting;
  }

  peers(): BGPPeerView[] {
    const configs = new Map((this.plan?.peers ?? []).map((p: PeerConfig) => [p.name, p]));
    return (this.speaker?.peers() ?? [])
      .filter((p) => configs.has(p.name))
      .map((p) => ({
        node: this.deps.nodeName,
        name: p.name,
        localASN: p.localASN,
        peerASN: p.peerASN,
        peerAddress: p.peerAddress,
        peerPort: p.peerPort,
        state: p.state,
        uptimeSeconds: p.uptimeSeconds,
        families: p.families,
        received: p.received,
        advertised: p.advertised,
        lastError: p.lastError ?? null,
      }));
  }

  routes(): BGPRouteView[] {
    const speaker = this.speaker;
    if (!speaker) return [];
    return this.peers().flatMap((p) =>
      speaker.advertised(p.name).map((r) => ({
        peer: p.name,
        prefix: r.prefix,
        family: r.family,
        nextHop: r.nextHop,
        asPath: r.asPath,
        communities: r.communities ?? [],
        largeCommunities: r.largeCommunities ?? [],
        localPreference: r.localPreference ?? null,
        med: r.med ?? null,
      })),
    );
  }

  /** Why each service address is or is not advertised to each peer. */
  explanations(): BGPPolicyResult['explanations'] {
    return this.plan?.explanations ?? [];
  }

  private exportStats(): void {
    const peers = this.peers();
    const m = this.deps.metrics;
    m.bgpSessions.reset();
    for (const p of peers) m.bgpSessions.inc({ state: p.state });
    m.bgpRoutes.set({ direction: 'advertised' }, peers.reduce((a, p) => a + p.advertised, 0));
    m.bgpRoutes.set({ direction: 'received' }, peers.reduce((a, p) => a + p.received, 0));
  }
}

/** Objects of a BGP kind by `Kind/name`, as `clusterBGPConditions` keys them. */
const conditionKey = (o: StoredObject): string => `${o.kind}/${o.metadata.name}`;

export interface BGPRoleOptions {
  store: Store;
  nodeName: string;
  /** This node's labels now (they may change: call the agent's schedule). */
  nodeLabels: () => Labels;
  /** Fixed addresses (`--node-ips`); default: read from the interfaces every 10 s. */
  nodeAddresses: string[] | undefined;
  /** Run the node agent's BGP part (the operator's condition writers exist either way). */
  enabled: boolean;
  reflectors: BGPReflectors;
  secretsDir: string;
  log: Logger;
  metrics: Metrics;
  speakerOptions?: BGPAgentDeps['speakerOptions'] | undefined;
}

/**
 * The BGP part of a process: the node agent (when enabled) and the condition writers the
 * operator starts and stops with its lease. BGP objects' conditions depend on each other (a peer
 * config that a cluster config names): one cached cluster-wide plan, dropped after any change of
 * a BGP object, feeds a writer per kind.
 */
export async function startBGPRole(o: BGPRoleOptions): Promise<{ agent: BGPAgent | undefined; conditionWriters: ConditionWriter[]; stop(): Promise<void> }> {
  const r = o.reflectors;
  const kinds = [r.clusterConfigs, r.peerConfigs, r.advertisements, r.overrides];
  let addresses = o.nodeAddresses ?? [];
  const node = () => ({ name: o.nodeName, labels: o.nodeLabels(), addresses });
  let conditions: Map<string, Condition[]> | undefined;
  const operatorLog = o.log.child({ role: 'operator' });
  const conditionWriters = kinds.map((x) => new ConditionWriter(o.store, x, (obj) => (conditions ??= clusterBGPConditions(r, node())).get(conditionKey(obj)) ?? [], operatorLog, o.metrics));
  for (const x of kinds) {
    x.onChange(() => {
      conditions = undefined;
      for (const w of conditionWriters) w.recheckAll();
    });
  }
  if (!o.enabled) return { agent: undefined, conditionWriters, stop: () => Promise.resolve() };

  const agent = new BGPAgent({ nodeName: o.nodeName, nodeLabels: o.nodeLabels, nodeAddresses: () => addresses, reflectors: r, secretsDir: o.secretsDir, log: o.log.child({ role: 'bgp' }), metrics: o.metrics, ...(o.speakerOptions ? { speakerOptions: o.speakerOptions } : {}) });
  const followed = await followNodeAddresses(o.nodeAddresses, (next) => {
    addresses = [...next];
    agent.schedule();
  });
  agent.start();
  return {
    agent,
    conditionWriters,
    stop: () => {
      followed.stop();
      return agent.stop();
    },
  };
}
