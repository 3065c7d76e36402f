// Fault injection, part 1: the nodes. kill -9 and SIGTERM of the announcing agent and of the
// operator holder, and a node's LAN link down and up, each under traffic on the example site;
// after each fault the shared invariants (invariants.ts) and the reason for the transition, as the
// `beacon` CLI and the agents' logs tell it. BEACON_CHAOS_SOAK=N repeats each fault N times.
import { describe, expect, it } from 'vitest';
import type { L2AnnouncementView } from '../../agent/l2.js';
import type { SiteNode } from '../../lab/index.js';
import { agreedAnnouncer, checkSettled, faultTimeout, liveNodes, logLines, operatorHolder, restart, ROUNDS, setEndpointsReady, statusOf, stopOnPurpose, underTraffic, useSite } from './invariants.js';

describe('chaos: node faults (kill -9, SIGTERM, link down) under traffic', () => {
  const suite = useSite('node-faults');

  const announcement = async (n: SiteNode, ip: string) => (await suite.site.cli<L2AnnouncementView[]>(n, 'l2', 'announcements')).find((a) => a.ip === ip);

  /** The announcer of `ip` stops by `signal`; a survivor takes over and says so; the victim comes back. */
  async function announcerStops(ip: string, signal: 'SIGKILL' | 'SIGTERM', cause: string): Promise<void> {
    const s = suite.site;
    for (let round = 1; round <= ROUNDS; round++) {
      const label = `${signal} of ${ip}'s announcer, round ${round}`;
      const victim = await agreedAnnouncer(s, ip);
      let exit: Awaited<ReturnType<typeof stopOnPurpose>> | undefined;
      const { faultAt } = await underTraffic(s, suite.baseline, label, async () => {
        exit = await stopOnPurpose(s, victim, signal);
      });
      // A clean stop ends with code 0 after its handover; a kill ends by the signal.
      expect(exit).toEqual(signal === 'SIGTERM' ? { code: 0, signal: null } : { code: null, signal: 'SIGKILL' });
      const successor = await agreedAnnouncer(s, ip);
      expect(successor.name).not.toBe(victim.name);
      expect(await announcement(successor, ip)).toMatchObject({ node: successor.name, reason: 'announcing' });
      const survivor = (await liveNodes(s)).find((n) => n !== successor);
      if (survivor) expect(await announcement(survivor, ip)).toMatchObject({ node: successor.name, reason: 'not_elected' });
      expect(logLines(successor, 'announcing', faultAt).filter((l) => l.ip === ip)).toContainEqual(expect.objectContaining({ previous: victim.name, cause }));
      if (signal === 'SIGTERM') expect(victim.agent!.logs()).toMatch(/"reason":"SIGTERM","msg":"stopping"[^]*"msg":"stopped"/);
      await checkSettled(s, suite.baseline, label, faultAt);
      await restart(s, victim);
      await checkSettled(s, suite.baseline, `${label}: ${victim.name} back`);
    }
  }

  it('kill -9 of the agent answering ARP: a survivor takes over (cause failover)', () => announcerStops(suite.baseline.l2.find((ip) => !ip.includes(':'))!, 'SIGKILL', 'failover'), faultTimeout(120_000));

  it('SIGTERM of the agent answering NDP: it hands over (cause move) and exits cleanly', () => announcerStops(suite.baseline.l2.find((ip) => ip.includes(':'))!, 'SIGTERM', 'move'), faultTimeout(120_000));

  /** The operator holder stops by `signal`; another node takes the role and says so in status and log. */
  async function holderStops(signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
    const s = suite.site;
    for (let round = 1; round <= ROUNDS; round++) {
      const label = `${signal} of the operator holder, round ${round}`;
      const victim = await operatorHolder(s);
      const { faultAt } = await underTraffic(s, suite.baseline, label, async () => {
        await stopOnPurpose(s, victim, signal);
      });
      const next = await operatorHolder(s);
      expect(next.name).not.toBe(victim.name);
      expect((await statusOf(s, next)).roles).toMatchObject({ operator: true, operatorHolder: next.name });
      expect(logLines(next, 'operator role taken', faultAt)).toHaveLength(1);
      await checkSettled(s, suite.baseline, label, faultAt);
      await restart(s, victim);
      await checkSettled(s, suite.baseline, `${label}: ${victim.name} back`);
      // The holder keeps its role: a returning node does not take it back.
      expect((await operatorHolder(s)).name).toBe(next.name);
    }
  }

  it('kill -9 of the operator holder: another node takes the role; no IP changes', () => holderStops('SIGKILL'), faultTimeout(120_000));

  it('SIGTERM of the operator holder: another node takes the role; no IP changes', () => holderStops('SIGTERM'), faultTimeout(120_000));

  it('link down and up of the node answering ARP: a survivor answers, the node rejoins without a crash', async () => {
    const s = suite.site;
    const ip = suite.baseline.l2.find((x) => !x.includes(':'))!;
    for (let round = 1; round <= ROUNDS; round++) {
      const label = `link down of ${ip}'s announcer, round ${round}`;
      const victim = await agreedAnnouncer(s, ip);
      // The node's pod is cut off with it: its endpoints go not ready, as Kubernetes marks the pods of
      // a node that stops reporting (the static lab slices would otherwise keep sending to it).
      const { faultAt } = await underTraffic(s, suite.baseline, label, async () => {
        await s.setNodeLink(victim, 'down');
        await setEndpointsReady(s, victim, false);
      });
      const successor = await agreedAnnouncer(s, ip);
      expect(successor.name).not.toBe(victim.name);
      const takeovers = logLines(successor, 'announcing', faultAt).filter((l) => l.ip === ip && l.previous === victim.name);
      expect(takeovers.map((l) => l.cause)).toEqual([expect.stringMatching(/^(failover|move)$/)]);
      // Cut off from etcd, the victim fences itself: it says so and stops answering.
      await s.until(() => victim.agent!.logs().includes('L2 lease not renewed in time: stopped answering'), 10_000, () => `${victim.name} to log that it fenced itself`);
      expect(victim.agent!.running).toBe(true);
      await checkSettled(s, suite.baseline, label, faultAt);
      const upAt = Date.now();
      await s.setNodeLink(victim, 'up');
      await setEndpointsReady(s, victim, true);
      await checkSettled(s, suite.baseline, `${label}: link up`, upAt);
      expect((await liveNodes(s)).map((n) => n.name)).toContain(victim.name);
    }
  }, faultTimeout(120_000));
});
