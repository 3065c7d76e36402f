// The `beacon lab` story on a built site: wait until every service is reachable, look at who
// answers and what the router learned, send traffic, kill the announcing node, restart an agent.
import { setTimeout as sleep } from 'node:timers/promises';
import { failoverSeconds, tally, type FailoverReport, type LabReport, type RestartReport, type ServiceReport } from './report.js';
import type { ProbeOutcome, ProbePlan } from './site-child.js';
import { onLan, type Site, type SiteNode } from './site.js';

/** The subset of `beacon services -o json` the lab reads. */
interface ServiceRow {
  readonly namespace: string;
  readonly name: string;
  readonly ips: string[];
  readonly reason: string;
  readonly message: string;
}
interface L2Row {
  readonly ip: string;
  readonly node: string | null;
}

const PORT = 80;
/** Traffic during a fault: a request every 20 ms per IP, each given 300 ms. */
const FAULT_PACE: Omit<ProbePlan, 'urls' | 'durationMs'> = { intervalMs: 20, timeoutMs: 300, maxRounds: 2_000 };
const FAULT_AT_MS = 1_500;
const hostPrefix = (ip: string) => (ip.includes(':') ? `${ip}/128` : `${ip}/32`);

export interface ScenarioOptions {
  /** How long traffic runs around each fault (default 8 s: the fault 1.5 s in). */
  readonly faultWindowMs?: number;
}

export async function runScenario(site: Site, opts: ScenarioOptions = {}): Promise<LabReport> {
  const say = site.progress;
  const first = site.nodes[0]!;
  say('waiting until every service has its IPs, its announcer or routes, and answers');
  const services = await settled(site, first);

  say('sending requests through each LoadBalancer IP');
  const reports: ServiceReport[] = [];
  for (const s of services) {
    const l2 = isL2(s);
    const client = l2 ? site.lanClient : site.wanClient;
    const outcomes = await site.probe(client, s.ips.map((ip) => ({ ip, port: PORT })), { intervalMs: 10, timeoutMs: 1_000, durationMs: 10_000, maxRounds: 30 });
    const { requests, failed, backendsHit } = tally(outcomes);
    const announcers: Record<string, string | null> = {};
    if (l2) for (const ip of s.ips) announcers[ip] = (await site.neighbourOf(ip)) ?? null;
    const routes = l2 ? [] : await Promise.all(s.ips.map(async (ip) => ({ prefix: hostPrefix(ip), nextHops: await site.routesTo(ip) })));
    reports.push({ ...s, announcer: l2 ? (announcers[s.ips[0]!] ?? null) : null, announcers, routes, client: client.name, requests, failed, backendsHit });
  }

  const windowMs = opts.faultWindowMs ?? 8_000;
  const web = reports.find((r) => r.announcer !== null);
  if (web === undefined) throw new Error('no L2 service has an announcer: nothing to fail over (see `beacon l2 announcements`)');
  say(`killing ${web.announcer}, which answers for ${web.ips[0]}`);
  const failover = await killAnnouncer(site, web, windowMs);

  const restartNode = site.nodes.find((n) => n.name === failover.to) ?? first;
  say(`restarting ${restartNode.name}'s agent while traffic flows`);
  const restart = await restartAgent(site, restartNode, reports, windowMs);
  return { runId: site.lab.runId, services: reports, failover, restart };
}

/** A service on the LAN is reached through L2 announcement; the others through the router (BGP). */
const isL2 = (s: ServiceRow) => s.ips.some(onLan);

/** Waits (bounded) until the services have IPs, L2 IPs an agreed announcer, BGP IPs three next hops. */
async function settled(site: Site, node: SiteNode): Promise<ServiceRow[]> {
  let rows: ServiceRow[] = [];
  await site.until(async () => {
    rows = await site.cli<ServiceRow[]>(node, 'services');
    return rows.length > 0 && rows.every((s) => s.ips.length > 0);
  }, 60_000, () => `every service to get its IPs (now: ${JSON.stringify(rows)})`);
  for (const s of rows) {
    if (isL2(s)) {
      await site.until(async () => {
        const views = await Promise.all(site.nodes.map((n) => site.cli<L2Row[]>(n, 'l2', 'announcements')));
        return s.ips.every((ip) => {
          const seen = views.map((v) => v.find((a) => a.ip === ip)?.node ?? null);
          return seen[0] !== null && seen.every((x) => x === seen[0]);
        });
      }, 30_000, () => `the nodes to agree who announces ${s.ips.join(', ')}`);
    } else {
      await site.until(async () => (await Promise.all(s.ips.map((ip) => site.routesTo(ip)))).every((hops) => hops.length === site.nodes.length), 60_000, () => `the router to learn ${s.ips.join(', ')} from every node`);
    }
  }
  // The datapath: one answered request per IP.
  for (const s of rows) {
    const client = isL2(s) ? site.lanClient : site.wanClient;
    await site.until(async () => {
      const out = await site.probe(client, s.ips.map((ip) => ({ ip, port: PORT })), { intervalMs: 0, timeoutMs: 1_000, durationMs: 2_000, maxRounds: 1 });
      return out.length > 0 && out.every((o) => o.backend !== undefined);
    }, 60_000, () => `${s.name} to answer on ${s.ips.join(', ')}`);
  }
  return rows.sort((a, b) => a.name.localeCompare(b.name));
}

/** The announcing node dies (LAN link down, agent SIGKILL) under traffic; then it is restored. */
async function killAnnouncer(site: Site, web: ServiceReport, windowMs: number): Promise<FailoverReport> {
  const ip = web.ips[0]!;
  const victim = site.nodes.find((n) => n.name === web.announcer)!;
  const traffic = site.probe(site.lanClient, [{ ip, port: PORT }], { ...FAULT_PACE, durationMs: windowMs });
  await sleep(FAULT_AT_MS);
  const faultAt = Date.now();
  await site.setNodeLink(victim, 'down');
  await site.stopAgent(victim, 'SIGKILL');
  const outcomes = await traffic;
  const to = (await site.neighbourOf(ip)) ?? null;
  site.progress(`restoring ${victim.name}`);
  await site.setNodeLink(victim, 'up');
  await site.startAgent(victim);
  await waitAnnounced(site, ip);
  const { requests, failed } = tally(outcomes);
  return { ip, from: victim.name, to, seconds: failoverSeconds(outcomes, faultAt), requests, failed };
}

/** Every node agrees on an announcer for `ip` again (after a node came back). */
async function waitAnnounced(site: Site, ip: string): Promise<void> {
  await site.until(async () => {
    const seen = await Promise.all(site.nodes.map(async (n) => (await site.cli<L2Row[]>(n, 'l2', 'announcements')).find((a) => a.ip === ip)?.node ?? null));
    return seen[0] !== null && seen.every((x) => x === seen[0]);
  }, 30_000, () => `the nodes to agree who announces ${ip}`);
}

/** SIGTERM to a node's agent and a fresh start, with requests to every service IP throughout. */
async function restartAgent(site: Site, node: SiteNode, services: readonly ServiceReport[], windowMs: number): Promise<RestartReport> {
  const targets = (client: string) => services.filter((s) => s.client === client).flatMap((s) => s.ips.map((ip) => ({ ip, port: PORT })));
  const plan = { ...FAULT_PACE, durationMs: windowMs };
  const traffic: Promise<ProbeOutcome[]>[] = [site.probe(site.lanClient, targets(site.lanClient.name), plan), site.probe(site.wanClient, targets(site.wanClient.name), plan)];
  await sleep(FAULT_AT_MS);
  await site.stopAgent(node, 'SIGTERM');
  await site.startAgent(node);
  const outcomes = (await Promise.all(traffic)).flat();
  const { requests, failed, errors } = tally(outcomes);
  return { node: node.name, requests, failed, errors };
}
