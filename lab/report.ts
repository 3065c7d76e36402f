// What `beacon lab` found, as data (its `-o json`) and as a readable report; the measurements are
// pure functions of the probe outcomes, so they are tested without a lab.
import type { ProbeOutcome } from './site-child.js';

export interface ServiceReport {
  readonly namespace: string;
  readonly name: string;
  readonly ips: readonly string[];
  /** Why the service has these IPs (or none): the operator's reason and message. */
  readonly reason: string;
  readonly message: string;
  /** L2 services: the node that answers ARP/NDP for the first IP, as the LAN client's neighbour table has it. */
  readonly announcer: string | null;
  /** Per IP: who answers (L2), seen from the LAN client. */
  readonly announcers: Readonly<Record<string, string | null>>;
  /** BGP services: the router's kernel route to each IP and its next hops (node names). */
  readonly routes: readonly RouteReport[];
  /** Requests sent to the service's IPs, from which client, and which backend answered how often. */
  readonly client: string;
  readonly requests: number;
  readonly failed: number;
  readonly backendsHit: Readonly<Record<string, number>>;
}

export interface RouteReport {
  readonly prefix: string;
  readonly nextHops: readonly string[];
}

export interface FailoverReport {
  readonly ip: string;
  readonly from: string | null;
  readonly to: string | null;
  /** From the fault to the first request (sent after it) that a backend answered; null if none did. */
  readonly seconds: number | null;
  readonly requests: number;
  readonly failed: number;
}

export interface RestartReport {
  readonly node: string;
  readonly requests: number;
  readonly failed: number;
  /** Failed requests by error, e.g. {"timeout": 2}. */
  readonly errors: Readonly<Record<string, number>>;
}

export interface LabReport {
  readonly runId: string;
  readonly services: readonly ServiceReport[];
  readonly failover: FailoverReport;
  readonly restart: RestartReport;
}

/** How often each backend answered, and how many requests failed. */
export function tally(outcomes: readonly ProbeOutcome[]): { requests: number; failed: number; backendsHit: Record<string, number>; errors: Record<string, number> } {
  const backendsHit: Record<string, number> = {};
  const errors: Record<string, number> = {};
  let failed = 0;
  for (const o of outcomes) {
    if (o.backend !== undefined) backendsHit[o.backend] = (backendsHit[o.backend] ?? 0) + 1;
    else {
      failed++;
      const e = o.error ?? 'unknown';
      errors[e] = (errors[e] ?? 0) + 1;
    }
  }
  return { requests: outcomes.length, failed, backendsHit: sortedRecord(backendsHit), errors: sortedRecord(errors) };
}

/**
 * The failover time the client saw: from `faultAt` to the send time of the first request after
 * it that was answered, counting only once a request has failed (a fault nobody noticed took 0 s).
 * Null when no request was answered after the fault.
 */
export function failoverSeconds(outcomes: readonly ProbeOutcome[], faultAt: number): number | null {
  const after = outcomes.filter((o) => o.at >= faultAt).sort((a, b) => a.at - b.at);
  const firstFailure = after.findIndex((o) => o.backend === undefined);
  if (firstFailure < 0) return after.length > 0 ? 0 : null;
  const recovered = after.slice(firstFailure).find((o) => o.backend !== undefined);
  return recovered === undefined ? null : (recovered.at - faultAt) / 1000;
}

const sortedRecord = <T>(r: Record<string, T>): Record<string, T> => Object.fromEntries(Object.entries(r).sort(([a], [b]) => a.localeCompare(b)));

const spread = (hits: Readonly<Record<string, number>>): string =>
  Object.entries(hits)
    .map(([backend, n]) => `${backend} ${n}`)
    .join(', ') || 'none';

/** The readable report. */
export function renderReport(r: LabReport): string {
  const lines: string[] = [`Beacon lab ${r.runId}`, '', '1. LoadBalancer IPs (from the operator, on etcd)'];
  for (const s of r.services) {
    lines.push(`   ${s.namespace}/${s.name}: ${s.ips.join(', ') || 'no IP'} — ${s.reason}${s.message ? `: ${s.message}` : ''}`);
  }
  lines.push('', '2. Who answers ARP/NDP (the LAN client\'s neighbour table)');
  const l2 = r.services.filter((s) => Object.keys(s.announcers).length > 0);
  for (const s of l2) for (const [ip, node] of Object.entries(s.announcers)) lines.push(`   ${ip} (${s.name}): ${node ?? 'nobody'}`);
  if (l2.length === 0) lines.push('   (no L2 service)');
  lines.push('', '3. Routes the router learned by BGP (its kernel table)');
  const bgp = r.services.filter((s) => s.routes.length > 0);
  for (const s of bgp) for (const route of s.routes) lines.push(`   ${route.prefix} (${s.name}): via ${route.nextHops.join(', ') || 'no next hop'}`);
  if (bgp.length === 0) lines.push('   (no BGP service)');
  lines.push('', '4. Requests through each LoadBalancer IP');
  for (const s of r.services) lines.push(`   ${s.name} from ${s.client}: ${s.requests} requests, ${s.failed} failed; answered by ${spread(s.backendsHit)}`);
  const f = r.failover;
  lines.push(
    '',
    `5. Failover: ${f.from ?? '?'} (answering for ${f.ip}) killed — link down and agent SIGKILL`,
    f.seconds === null
      ? `   no request was answered after the fault (${f.failed} of ${f.requests} failed)`
      : `   ${f.to ?? '?'} answers; the client was served again after ${f.seconds.toFixed(2)} s (${f.failed} of ${f.requests} requests failed); ${f.from ?? 'the node'} restored`,
  );
  const x = r.restart;
  lines.push(
    '',
    `6. ${x.node}'s agent restarted (SIGTERM, started again) while traffic flowed`,
    `   ${x.requests} requests, ${x.failed} failed${x.failed > 0 ? ` (${Object.entries(x.errors).map(([e, n]) => `${e} ${n}`).join(', ')})` : ''}`,
  );
  return `${lines.join('\n')}\n`;
}
