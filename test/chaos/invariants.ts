// The fault-injection suite's shared parts: building the lab site, the state captured once it has
// settled, traffic around a fault, and the checks every fault must pass afterwards (no IP lost,
// moved or doubled; one answer per L2 IP; BGP routes from every live node; traffic back within the
// bound; no crash). Recovery times are printed, never asserted beyond the generous bound.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import type { L2AnnouncementView } from '../../agent/l2.js';
import type { ServiceView, StatusView } from '../../agent/local-api.js';
import { failoverSeconds, onLan, Site, tally, type LabHost, type SiteNode } from '../../lab/index.js';
import type { ProbeOutcome } from '../../lab/site-child.js';
import { beaconBin, root } from '../process.js';

/** Service port of every example service. */
export const PORT = 80;
/** Traffic is answered again within this once the site agrees again (docs: L2 failover "about a second", BGP hold 9 s). */
export const RECOVERY_BOUND_MS = 10_000;
/**
 * Two nodes answering one IP at once beyond this is a fencing failure (see underTraffic): docs/l2.md
 * allows two scan intervals (200 ms) on a graceful handover; plus the 50 ms between the client's
 * requests and 50 ms for timers on a loaded host.
 */
const DOUBLE_ANSWER_MARGIN_MS = 300;
/** Lab faults settle within this (an agent restart: datapath load, lease, BGP connect retry 2 s). */
const SETTLE_MS = 30_000;

/** `BEACON_CHAOS_SOAK=N` repeats each fault N times (default 1); bad values are refused, not guessed. */
export function soakRounds(value: string | undefined): number {
  if (value === undefined || value === '') return 1;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new Error(`BEACON_CHAOS_SOAK=${value}: a whole number from 1 to 1000`);
  return n;
}
export const ROUNDS = soakRounds(process.env.BEACON_CHAOS_SOAK);
/** A per-fault test timeout that grows with the soak rounds. */
export const faultTimeout = (perRoundMs: number): number => perRoundMs * ROUNDS + 10_000;

/** The example site (`examples/lab`) with its progress on the test output. */
export function buildSite(label: string): Promise<Site> {
  return Site.build({ beaconBin, manifests: [join(root, 'examples', 'lab')], progress: (line) => console.log(`[${label}] ${line}`) });
}

/**
 * One settled site for the enclosing `describe`: built and settled before its tests, destroyed
 * after them (its logs kept, and their folder printed, when a test failed).
 */
export function useSite(label: string): { readonly site: Site; readonly baseline: Baseline } {
  let site: Site | undefined;
  let baseline: Baseline | undefined;
  let failed = false;
  beforeAll(async () => {
    site = await buildSite(label);
    baseline = await settle(site);
  }, 240_000);
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') failed = true;
  });
  afterAll(async () => {
    if (failed && site) console.log(`[${label}] logs kept in ${site.dir}`);
    await site?.destroy(failed);
  }, 60_000);
  const built = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error(`[${label}] the site was not built`);
    return value;
  };
  return {
    get site() {
      return built(site);
    },
    get baseline() {
      return built(baseline);
    },
  };
}

/** What must survive every fault: each service's IPs, and which IPs are answered on L2 or routed. */
export interface Baseline {
  readonly ips: ReadonlyMap<string, readonly string[]>;
  readonly l2: readonly string[];
  readonly bgp: readonly string[];
}

/** A program of this folder run by Node (under tsx) inside a lab host; its one JSON output line. */
export async function runChild<T>(host: LabHost, file: string, args: readonly string[], timeoutMs: number): Promise<T> {
  const r = await host.exec(process.execPath, ['--import', 'tsx', join(import.meta.dirname, file), ...args], { timeoutMs });
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} in ${host.name} ended with ${r.code}: ${r.stderr.trim().slice(-1000)} ${r.stdout.trim().slice(-500)}`);
  return JSON.parse(r.stdout) as T;
}

/** Marks a node's endpoints (not) ready in etcd, as Kubernetes does for the pods of a node that stops reporting. */
export async function setEndpointsReady(site: Site, n: SiteNode, ready: boolean): Promise<void> {
  const { changed } = await runChild<{ changed: number }>(site.etcd, 'churn-child.ts', ['ready', site.etcdEndpoint, n.name, String(ready)], 30_000);
  expect(changed, `EndpointSlices with an endpoint on ${n.name}`).toBeGreaterThan(0);
}

/** Nodes whose agent a fault keeps stopped: the checks leave them alone until `restart`. */
const stoppedOnPurpose = new WeakSet<SiteNode>();

const serviceKey = (s: ServiceView) => `${s.namespace}/${s.name}`;
const nodeOf = (site: Site, name: string | null | undefined) => site.nodes.find((n) => n.name === name);

/** Nodes whose agent runs and whose LAN link is up: those that must announce and advertise. */
export async function liveNodes(site: Site): Promise<SiteNode[]> {
  const up = await Promise.all(site.nodes.map(async (n) => n.agent?.running === true && (await linkUp(n.host))));
  return site.nodes.filter((_, i) => up[i]);
}

async function linkUp(host: LabHost): Promise<boolean> {
  const r = await host.exec('ip', ['-j', 'link', 'show', 'eth0']);
  return r.code === 0 && (JSON.parse(r.stdout) as { flags: string[] }[])[0]!.flags.includes('UP');
}

/** Waits until every service has IPs, the site is whole (see `checkSettled`) and captures the baseline. */
export async function settle(site: Site): Promise<Baseline> {
  let rows: ServiceView[] = [];
  await site.until(async () => {
    rows = await site.cli<ServiceView[]>(site.nodes[0]!, 'services');
    return rows.length > 0 && rows.every((s) => s.ips.length > 0);
  }, 60_000, () => `every service to get its IPs (now: ${JSON.stringify(rows)})`);
  const ips = new Map(rows.map((s) => [serviceKey(s), [...s.ips].sort()]));
  const all = [...ips.values()].flat();
  const baseline: Baseline = { ips, l2: all.filter(onLan), bgp: all.filter((ip) => !onLan(ip)) };
  console.log(`[baseline] ${[...ips].map(([k, v]) => `${k}: ${v.join(', ')}`).join('; ')}`);
  await checkSettled(site, baseline, 'settle', Date.now(), 60_000);
  return baseline;
}

/** Every live node reports the same announcer for `ip`, and it is a live node: returns it. */
export async function agreedAnnouncer(site: Site, ip: string, timeoutMs = SETTLE_MS): Promise<SiteNode> {
  let seen: (string | null)[] = [];
  await site.until(async () => {
    const live = await liveNodes(site);
    seen = await Promise.all(live.map(async (n) => (await site.cli<L2AnnouncementView[]>(n, 'l2', 'announcements')).find((a) => a.ip === ip)?.node ?? null));
    return seen.length > 0 && seen.every((x) => x === seen[0]) && live.some((n) => n.name === seen[0]);
  }, timeoutMs, () => `the live nodes to agree on a live announcer for ${ip} (they say ${JSON.stringify(seen)})`);
  return nodeOf(site, seen[0])!;
}

/** The MACs that answer ARP (arping, two requests) or NDP (ndisc6, every answer) for `ip` on the LAN. */
export async function linkLayerAnswers(site: Site, ip: string): Promise<string[]> {
  const r = ip.includes(':')
    ? await site.lanClient.exec('ndisc6', ['-m', '-q', '-r', '2', '-w', '1000', ip, 'eth0'], { timeoutMs: 8_000 })
    : await site.lanClient.exec('arping', ['-c', '2', '-w', '3', '-r', '-i', 'eth0', ip], { timeoutMs: 8_000 });
  return [...new Set(r.stdout.split('\n').map((l) => l.trim().toLowerCase()).filter(Boolean))];
}

/** Requests to every service IP until `durationMs` passes, from the client that reaches it. */
export async function traffic(site: Site, baseline: Baseline, durationMs: number, timeoutMs = 500): Promise<ProbeOutcome[]> {
  const plan = { intervalMs: 50, timeoutMs, durationMs, maxRounds: Math.ceil(durationMs / 50) };
  const targets = (ips: readonly string[]) => ips.map((ip) => ({ ip, port: PORT }));
  const runs = await Promise.all([site.probe(site.lanClient, targets(baseline.l2), plan), site.probe(site.wanClient, targets(baseline.bgp), plan)]);
  return runs.flat();
}

/**
 * Runs `fault` while traffic flows: from 1 s before it until it is done and `windowMs` has passed
 * since it began (probe runs of 2 s back to back); prints what the clients saw.
 */
async function trafficAround(site: Site, baseline: Baseline, label: string, fault: () => Promise<void>, windowMs = 8_000): Promise<{ outcomes: ProbeOutcome[]; faultAt: number }> {
  let faultAt = Number.POSITIVE_INFINITY;
  let done = false;
  const flowing = (async () => {
    const outcomes: ProbeOutcome[] = [];
    // Bounded: a fault that never ends is stopped by the test's timeout; 300 runs are 10 minutes.
    for (let run = 0; run < 300 && !(done && Date.now() >= faultAt + windowMs); run++) {
      // A probe that could not run (the host too busy to start it in time) is the harness's
      // failure, not the site's: told, and the next run goes on.
      await traffic(site, baseline, 2_000).then(
        (o) => void outcomes.push(...o),
        (e: unknown) => console.log(`[${label}] a probe run failed: ${(e as Error).message}`),
      );
    }
    return outcomes;
  })();
  let outcomes: ProbeOutcome[] = [];
  try {
    await new Promise((r) => setTimeout(r, 1_000));
    faultAt = Date.now();
    await fault();
  } finally {
    done = true;
    outcomes = await flowing;
  }
  report(label, outcomes, faultAt);
  return { outcomes, faultAt };
}

/**
 * Runs `fault` under traffic (see trafficAround) with every ARP reply for the site's IPv4 L2
 * address recorded: two nodes may both answer only within DOUBLE_ANSWER_MARGIN_MS.
 */
export async function underTraffic(site: Site, baseline: Baseline, label: string, fault: () => Promise<void>, windowMs?: number): Promise<{ outcomes: ProbeOutcome[]; faultAt: number }> {
  const ip = baseline.l2.find((x) => !x.includes(':'))!;
  const { result, replies } = await watchArp(site, ip, () => trafficAround(site, baseline, label, fault, windowMs));
  const double = doubleAnswerMs(replies);
  console.log(`[${label}] ${replies.length} ARP replies for ${ip} from ${[...new Set(replies.map((r) => nodeByMac(site, r.mac)))].join(' then ')}; two answering at once for ${double} ms`);
  expect(double, `ms two nodes answered ARP for ${ip} at once`).toBeLessThanOrEqual(DOUBLE_ANSWER_MARGIN_MS);
  return result;
}

const nodeByMac = (site: Site, mac: string) => site.nodes.find((n) => n.mac === mac)?.name ?? mac;

/** ARP replies for `ip` in `tcpdump -nn -e -tt` output (solicited and gratuitous): when, and which MAC claims it. */
export function arpReplies(tcpdump: string, ip: string): { at: number; mac: string }[] {
  const out: { at: number; mac: string }[] = [];
  for (const line of tcpdump.split('\n')) {
    const m = /^(\d+\.\d+) .*: Reply (\S+) is-at ([0-9a-f:]{17})/.exec(line);
    if (m && m[2] === ip) out.push({ at: Math.round(Number(m[1]) * 1000), mac: m[3]! });
  }
  return out.sort((a, b) => a.at - b.at);
}

/** The LAN client asks every this often: a reply stands for the node answering until the next request. */
const ASK_EVERY_MS = 50;
/** Replies of one MAC further apart than this belong to separate answering spells. */
const SPELL_GAP_MS = 300;

/**
 * The longest time two MACs answered for one IP at once (ms, 0 when never). Each MAC's replies
 * form spells (no gap above SPELL_GAP_MS), each lasting until a request interval after its last
 * reply; two spells of different MACs that overlap are two nodes answering at once.
 */
export function doubleAnswerMs(replies: readonly { at: number; mac: string }[]): number {
  const spells: { mac: string; from: number; to: number }[] = [];
  const open = new Map<string, { mac: string; from: number; to: number }>();
  for (const r of [...replies].sort((x, y) => x.at - y.at)) {
    const spell = open.get(r.mac);
    if (spell !== undefined && r.at - spell.to <= SPELL_GAP_MS) spell.to = r.at;
    else {
      const fresh = { mac: r.mac, from: r.at, to: r.at };
      spells.push(fresh);
      open.set(r.mac, fresh);
    }
  }
  let worst = 0;
  for (const x of spells) for (const y of spells) if (x.mac < y.mac) worst = Math.max(worst, Math.min(x.to, y.to) + ASK_EVERY_MS - Math.max(x.from, y.from));
  return worst;
}

let watches = 0;

/**
 * Runs `during` while the LAN client asks for `ip` every 50 ms and records every ARP reply on its
 * wire; returns the replies (for doubleAnswerMs).
 */
export async function watchArp<T>(site: Site, ip: string, during: () => Promise<T>): Promise<{ result: T; replies: { at: number; mac: string }[] }> {
  const name = `arp-watch-${++watches}`;
  const capture = await site.lanClient.spawn(name, 'tcpdump', ['-i', 'eth0', '-nn', '-e', '-tt', '-l', 'arp and arp[6:2] == 2']);
  // Bounded: 1,200 requests at 50 ms are a minute; the asker is stopped when `during` ends anyway.
  const asker = await site.lanClient.spawn(`${name}-arping`, 'arping', ['-c', '1200', '-w', '60', '-W', String(ASK_EVERY_MS / 1000), '-i', 'eth0', ip]);
  let result: T;
  try {
    result = await during();
  } finally {
    await asker.stop(500);
    await capture.stop(500);
  }
  return { result, replies: arpReplies(capture.logs(), ip) };
}

/** One line per IP: requests, failures and the client-seen recovery time (figures, not assertions). */
export function report(label: string, outcomes: readonly ProbeOutcome[], faultAt: number): void {
  const byUrl = new Map<string, ProbeOutcome[]>();
  for (const o of outcomes) byUrl.set(o.url, [...(byUrl.get(o.url) ?? []), o]);
  for (const [url, list] of byUrl) {
    const { requests, failed, errors } = tally(list);
    const seconds = failoverSeconds(list, faultAt);
    console.log(`[${label}] ${url}: ${requests} requests, ${failed} failed ${JSON.stringify(errors)}; recovered after ${seconds === null ? 'never (within the window)' : `${seconds.toFixed(2)} s`}`);
  }
}

/**
 * The after-fault invariants. Agents stopped on purpose (`stopOnPurpose`) are left alone; every
 * other agent must run. `since` (the fault) only dates the printed figures.
 */
export async function checkSettled(site: Site, baseline: Baseline, label: string, since = Date.now(), settleMs = SETTLE_MS): Promise<void> {
  // (5) No crash: every agent not stopped on purpose runs; no agent log (of any start) has a fatal line.
  for (const n of site.nodes) if (n.agent !== undefined && !stoppedOnPurpose.has(n)) expect(n.agent.running, `${n.name}'s agent runs`).toBe(true);
  expect(crashLines(site), 'fatal or uncaught lines in the agent logs').toEqual([]);

  // (1)-(3) run side by side: each is a poll of its own.
  const live = await liveNodes(site);
  await Promise.all([
    // (1) Every service keeps exactly its IPs, as seen by every live agent; no IP on two services
    // (the example services share no IP: no sharing key).
    ...live.map(async (n) => {
      let rows: ServiceView[] = [];
      await site.until(async () => {
        rows = await site.cli<ServiceView[]>(n, 'services');
        return rows.length === baseline.ips.size;
      }, settleMs, () => `${n.name} to list ${baseline.ips.size} services (it lists ${rows.length})`);
      expect(new Map(rows.map((s) => [serviceKey(s), [...s.ips].sort()])), `services' IPs on ${n.name} after ${label}`).toEqual(baseline.ips);
      const all = rows.flatMap((s) => s.ips);
      expect(new Set(all).size, `an IP held by two services on ${n.name}`).toBe(all.length);
    }),
    // (2) One announcer per L2 IP, agreed by every live node, and exactly its MAC answers on the wire.
    ...baseline.l2.map(async (ip) => {
      const announcer = await agreedAnnouncer(site, ip, settleMs);
      const answers = await linkLayerAnswers(site, ip);
      expect(answers, `link-layer answers for ${ip} after ${label} (announcer ${announcer.name})`).toEqual([announcer.mac]);
    }),
    // (3) The router has each BGP IP via every live node. A stopped agent's routes may stay, stale,
    // for the graceful-restart time (RFC 4724 section 4.2): its datapath still carries the traffic.
    ...baseline.bgp.map(async (ip) => {
      const names = live.map((n) => n.name);
      const whole = live.length === site.nodes.length;
      let hops: string[] = [];
      await site.until(async () => {
        hops = await site.routesTo(ip);
        return names.every((n) => hops.includes(n)) && hops.every((h) => site.nodes.some((n) => n.name === h)) && (!whole || hops.length === names.length);
      }, settleMs, () => `the router's route to ${ip} via ${names.join(', ')} (it has ${hops.join(', ') || 'none'})`);
    }),
  ]);

  // (4) Traffic through every IP is answered again, within the bound once the site has settled
  // (the checks above wait for agreement and routes; the probes' own start-up is slow on a busy host).
  const settledAt = Date.now();
  let failing: ProbeOutcome[] = [];
  await site.until(async () => {
    failing = (await traffic(site, baseline, 600, 1_000)).filter((o) => o.backend === undefined);
    return failing.length === 0;
  }, RECOVERY_BOUND_MS, () => `every service IP to answer (failing: ${failing.map((o) => `${o.url} ${o.error}`).join(', ')})`);
  console.log(`[${label}] all invariants hold ${((Date.now() - since) / 1000).toFixed(1)} s after the fault (traffic answered ${((Date.now() - settledAt) / 1000).toFixed(1)} s after the site agreed)`);
}

/**
 * Requests during a fault that the site must carry (churn, floods): none refused (that is a
 * frontend without a ready backend) nor failed otherwise, except the `tolerated` errors, which a
 * loaded host or the fault itself may cause now and then: at most 10 % of the requests.
 */
export function expectServed(outcomes: readonly ProbeOutcome[], since: number, what: string, tolerated: readonly string[] = ['timeout']): void {
  const during = tally(outcomes.filter((o) => o.at >= since));
  const others = Object.fromEntries(Object.entries(during.errors).filter(([e]) => !tolerated.includes(e)));
  const tolerable = tolerated.reduce((sum, e) => sum + (during.errors[e] ?? 0), 0);
  expect(others, `requests failed ${what}`).toEqual({});
  expect(tolerable, `requests failed with ${tolerated.join(' or ')} ${what} (of ${during.requests})`).toBeLessThanOrEqual(during.requests * 0.1);
}

/** Lines of every agent log (all starts) that show a crash: pino fatal (level 60), uncaught errors. */
export function crashLines(site: Site): string[] {
  return readdirSync(site.dir)
    .filter((f) => /^node-\d+-agent-\d+\.log$/.test(f))
    .flatMap((f) => readFileSync(join(site.dir, f), 'utf8').split('\n').filter((l) => /"level":60|uncaught|unhandled|FATAL ERROR|^\s+at /i.test(l)).map((l) => `${f}: ${l.slice(0, 300)}`));
}

/** The JSON log lines of a node's current agent with message `msg` (optionally at or after `since`). */
export function logLines(n: SiteNode, msg: string, since = 0): Record<string, unknown>[] {
  return (n.agent?.logs() ?? '')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === msg && (l.time as number) >= since);
}

/** `beacon status` of a node: who holds the operator role, the live L2 nodes. */
export const statusOf = (site: Site, n: SiteNode): Promise<StatusView> => site.cli<StatusView>(n, 'status');

/** The node that holds the operator role, agreed by every live node. */
export async function operatorHolder(site: Site): Promise<SiteNode> {
  let seen: (string | null)[] = [];
  await site.until(async () => {
    seen = await Promise.all((await liveNodes(site)).map(async (n) => (await statusOf(site, n)).roles.operatorHolder));
    return seen.length > 0 && seen[0] !== null && seen.every((x) => x === seen[0]);
  }, SETTLE_MS, () => `the live nodes to agree on the operator holder (they say ${JSON.stringify(seen)})`);
  return nodeOf(site, seen[0])!;
}

/** Stops a node's agent on purpose and returns its exit; `restart` brings it back (and into the checks). */
export async function stopOnPurpose(site: Site, n: SiteNode, signal: 'SIGTERM' | 'SIGKILL'): Promise<{ code: number | null; signal: string | null }> {
  const agent = n.agent!;
  stoppedOnPurpose.add(n);
  await site.stopAgent(n, signal);
  return agent.exited;
}

export async function restart(site: Site, n: SiteNode): Promise<void> {
  await site.startAgent(n);
  stoppedOnPurpose.delete(n);
}

