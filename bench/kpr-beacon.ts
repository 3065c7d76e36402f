// Beacon as a peer of bench/kpr.ts: the agent's own path from Services and EndpointSlices to the
// kernel (buildFrontends → planDatapath → SocketDatapath.apply), with the north-south tc programs
// on the node's client-facing device. Loading the programs is the agent's start, not programming:
// it happens once, in unavailable(); programming, a change and tear-down are map writes (and the
// filter attach / detach), timed by the harness like the other peers' commands.
//
// The backends sit behind the node, so they are this node's (local: DNAT only, as the other
// peers' rules do). Private bpffs root and an empty private cgroup for the socket hooks (nothing
// runs in it): nothing outside the benchmark's namespaces is touched.
import { mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import type { EndpointSlice, Service } from '../api/index.js';
import { cgroup2Root, ifindexOf, parseMounts, probeKernel, testRun, withNetns } from '../bpf/index.js';
import { SocketDatapath } from '../kpr/datapath.js';
import {
  DEFAULT_MAGLEV_TABLE_SIZE,
  applyDelta,
  buildFrontends,
  emptyDatapathState,
  frontendKey,
  planDatapathChanges,
  planDatapathFull,
  type DatapathPlan,
  type DatapathState,
  type Frontend,
  type PlanOptions,
} from '../kpr/index.js';
import { NodePortDatapath } from '../kpr/nodeport-datapath.js';
import { TCP_FLAGS, buildFrame } from '../kpr/packet.js';
import type { BenchService, NodeShell, Peer, PerPacket } from './kpr-peers.js';

const NODE = 'bench-node';
/** Room for 100,000 services with their frontends: the map sizes of the agent's --bpf-lb-map-max. */
const LB_MAP_MAX = 131_072;
/** A frontend whose backend is itself: repeated test runs of one packet keep taking the translated path. */
const PROBE = { address: '198.18.250.1', port: 80 };
const PROBE_CLIENT = '198.18.0.2';
const PACKET_REPEAT = 1_000_000;

function objects(s: BenchService): { service: Service; slice: EndpointSlice } {
  return {
    service: {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { namespace: s.namespace, name: s.name },
      spec: { type: 'ClusterIP', clusterIP: s.address, clusterIPs: [s.address], ports: [{ name: s.portName, port: s.port, protocol: 'TCP', targetPort: s.targetPort }] },
    },
    slice: {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { namespace: s.namespace, name: `${s.name}-bench`, labels: { 'kubernetes.io/service-name': s.name } },
      addressType: 'IPv4',
      endpoints: s.backends.map((address) => ({ addresses: [address], conditions: { ready: true }, nodeName: NODE })),
      ports: [{ name: s.portName, port: s.targetPort, protocol: 'TCP' }],
    },
  };
}

const frontendsOf = (list: readonly BenchService[]): Frontend[] => {
  const pairs = list.map(objects);
  return buildFrontends({ services: pairs.map((p) => p.service), slices: pairs.map((p) => p.slice), nodeName: NODE, nodeAddresses: [], defaultAlgorithm: 'random' }).frontends;
};

const probeService: BenchService = { namespace: 'bench-probe', name: 'probe', portName: 'http', ...PROBE, targetPort: PROBE.port, backends: [PROBE.address] };

export function beaconPeer(): Peer {
  const bpfRoot = `/sys/fs/bpf/beacon-bench-kpr-${process.pid}`;
  let cgroup: string | undefined;
  let socket: SocketDatapath | undefined;
  let nodeport: NodePortDatapath | undefined;
  let state: DatapathState = emptyDatapathState();
  let attached: { netns: string; ifindex: number } | undefined;
  const opts: PlanOptions = { maglevTableSize: DEFAULT_MAGLEV_TABLE_SIZE, maxServices: LB_MAP_MAX, maxBackends: LB_MAP_MAX, nodeName: NODE };
  const write = (plan: DatapathPlan): void => {
    if (plan.problems.length > 0) throw new Error(`beacon: ${plan.problems[0]!.message}`);
    socket!.apply(plan.ops);
    applyDelta(state, plan.delta);
  };

  const close = (): Promise<void> => {
    nodeport?.close();
    socket?.close();
    nodeport = socket = undefined;
    SocketDatapath.remove(bpfRoot);
    if (cgroup) rmdirSync(cgroup);
    cgroup = undefined;
    return Promise.resolve();
  };

  return {
    name: 'beacon',
    unavailable: (): Promise<string | undefined> => {
      const support = probeKernel();
      if (!support.ok) return Promise.resolve(`beacon: the kernel lacks support: ${support.reason}`);
      try {
        const base = cgroup2Root(parseMounts(readFileSync('/proc/self/mounts', 'utf8')));
        if (base === undefined) return Promise.resolve('beacon: no cgroup v2 mount');
        cgroup = join(base, `beacon-bench-kpr-${process.pid}`);
        mkdirSync(cgroup);
        socket = SocketDatapath.open({ bpfRoot, cgroupRoot: cgroup, maglevTableSize: opts.maglevTableSize, lbMapMax: LB_MAP_MAX });
        nodeport = NodePortDatapath.open({ bpfRoot, maglevTableSize: opts.maglevTableSize, lbMapMax: LB_MAP_MAX });
        return Promise.resolve(undefined);
      } catch (e) {
        void close();
        return Promise.resolve(`beacon: the datapath could not be loaded: ${(e as Error).message.split('\n')[0]}`);
      }
    },
    program: (node: NodeShell, services: readonly BenchService[]): Promise<void> => {
      const netns = `/var/run/netns/${node.namespace}`;
      const ifindex = withNetns(netns, () => ifindexOf(node.devices[0]!));
      write(planDatapathFull(state, [...frontendsOf(services), ...frontendsOf([probeService])], opts));
      withNetns(netns, () => nodeport!.attach(ifindex, {}));
      attached = { netns, ifindex };
      return Promise.resolve();
    },
    change: (_node: NodeShell, from: BenchService, to: BenchService): Promise<void> => {
      const next = frontendsOf([to]);
      const changes = new Map<string, Frontend | undefined>(frontendsOf([from]).map((f) => [frontendKey(f), undefined]));
      for (const f of next) changes.set(frontendKey(f), f);
      write(planDatapathChanges(state, changes, opts));
      return Promise.resolve();
    },
    teardown: (): Promise<void> => {
      if (attached) withNetns(attached.netns, () => nodeport!.detach(attached!.ifindex, true));
      attached = undefined;
      write(planDatapathFull(state, [], opts));
      nodeport!.clearConntrack();
      state = emptyDatapathState();
      return Promise.resolve();
    },
    perPacket: (): PerPacket => {
      const ingress = nodeport!.program('ingress');
      const frame = (dst: string): Buffer =>
        buildFrame({ src: PROBE_CLIENT, dst, l4: { protocol: 'TCP', srcPort: 40_000, dstPort: PROBE.port, flags: TCP_FLAGS.ACK } });
      // Best of three: the least disturbed by the rest of the machine.
      const best = (packet: Buffer): number => Math.min(...[0, 1, 2].map(() => testRun(ingress, packet, { repeat: PACKET_REPEAT }).durationNs));
      return { translatedNs: best(frame(PROBE.address)), passNs: best(frame('198.18.251.1')) };
    },
    close,
  };
}
