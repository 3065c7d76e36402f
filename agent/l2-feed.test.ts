import { describe, expect, it } from 'vitest';
import { seededRandom, type Random } from '../api/index.js';
import { IncrementalElection, electAnnouncers, type LiveNode } from '../l2announce/index.js';
import { objectKey, type StoredObject } from '../store/index.js';
import { electionInputOf, L2ElectionFeed, type L2Source } from './l2-feed.js';

/** A reflector's cache driven by hand: single changes, and relists that bring copies of every object. */
class HandReflector implements L2Source {
  private objects = new Map<string, StoredObject>();
  private listeners: ((key: string | undefined) => void)[] = [];
  items = () => [...this.objects.values()];
  get = (key: string) => this.objects.get(key);
  onChange(l: (key: string | undefined) => void) {
    this.listeners.push(l);
    return () => undefined;
  }
  put(o: StoredObject): void {
    this.objects.set(objectKey(o), o);
    for (const l of this.listeners) l(objectKey(o));
  }
  delete(key: string): void {
    this.objects.delete(key);
    for (const l of this.listeners) l(key);
  }
  /** A relist: every object a fresh copy, some changed or gone without an event of their own. */
  relist(edit: (objects: Map<string, StoredObject>) => void): void {
    this.objects = new Map([...this.objects].map(([k, o]) => [k, structuredClone(o)]));
    edit(this.objects);
    for (const l of this.listeners) l(undefined);
  }
}

const nodeNames = ['n0', 'n1', 'n2'];
const nodes: LiveNode[] = nodeNames.map((name, i) => ({
  name,
  candidacy: { labels: { zone: i === 2 ? 'b' : 'a' }, ready: true, draining: false, interfaces: [{ name: 'eth0', up: true, addresses: [{ ip: `198.18.0.${i + 1}`, prefixLength: 24 }] }], defaultRoute: { ipv4: ['eth0'], ipv6: [] } },
}));

let version = 0;
const pick = <T,>(r: Random, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const meta = (name: string, namespace?: string, labels?: Record<string, string>) => ({ name, namespace, labels, resourceVersion: String(++version) });

function randomService(r: Random): StoredObject {
  const ips = ['198.18.0.50', '198.18.0.51', '198.18.0.52', '2001:db8::50'].filter(() => r() < 0.3);
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(pick(r, ['a', 'b', 'c', 'd']), 'ns', { app: pick(r, ['web', 'db']) }),
    spec: { type: 'LoadBalancer', externalTrafficPolicy: r() < 0.6 ? 'Local' : 'Cluster' },
    status: { loadBalancer: { ingress: ips.map((ip) => ({ ip })) } },
  };
}

function randomSlice(r: Random): StoredObject {
  const labels = r() < 0.9 ? { 'kubernetes.io/service-name': pick(r, ['a', 'b', 'c', 'd']) } : undefined; // a slice may move to another service, or lose its label
  const endpoints = nodeNames.filter(() => r() < 0.4).map((nodeName) => ({ addresses: ['198.18.5.1'], nodeName, conditions: { ready: r() < 0.8 } }));
  return { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: meta(pick(r, ['s1', 's2', 's3', 's4', 's5']), 'ns', labels), addressType: 'IPv4', endpoints };
}

function randomPolicy(r: Random): StoredObject {
  const spec = pick(r, [{}, { serviceSelector: { matchLabels: { app: 'web' } } }, { nodeSelector: { matchLabels: { zone: 'a' } } }, { nodeSelector: { matchLabels: { 'bad key!': 'x' } } }]);
  return { apiVersion: 'beacon.io/v1alpha1', kind: 'L2AnnouncementPolicy', metadata: meta(pick(r, ['p', 'q'])), spec };
}

describe('L2ElectionFeed', () => {
  it('keeps the incremental election equal to a full rebuild from the reflectors, through changes, relists and partial syncs', () => {
    for (let seed = 1; seed <= 60; seed++) {
      const r = seededRandom(seed);
      const sources = { policies: new HandReflector(), services: new HandReflector(), slices: new HandReflector() };
      sources.policies.put(randomPolicy(r));
      const election = new IncrementalElection('n0');
      election.setNodes(nodes);
      const feed = new L2ElectionFeed(election, sources);
      feed.subscribe(() => undefined);
      for (let step = 0; step < 40; step++) {
        const roll = r();
        const kind = pick(r, ['services', 'slices'] as const);
        const make = kind === 'services' ? randomService : randomSlice;
        if (roll < 0.55) sources[kind].put(make(r));
        else if (roll < 0.7) sources[kind].delete(`ns/${pick(r, kind === 'services' ? ['a', 'b', 'c', 'd'] : ['s1', 's2', 's3', 's4', 's5'])}`);
        else if (roll < 0.8) sources.policies.put(randomPolicy(r));
        else {
          sources[kind].relist((objects) => {
            const o = make(r);
            if (r() < 0.5) objects.set(objectKey(o), o);
            else objects.delete(pick(r, [...objects.keys(), 'ns/none']));
          });
        }
        // Synced in slices of a few objects, as the agent's time-bounded passes do; sometimes more changes come first.
        let budget = Math.floor(r() * 4);
        feed.sync(() => budget-- > 0);
        if (r() < 0.3) continue;
        while (feed.pending) {
          budget = 1 + Math.floor(r() * 3);
          feed.sync(() => budget-- > 0);
        }
        election.elect();
        expect(feed.pending).toBe(false);
        expect(election.announcements(), `seed ${seed} step ${step}`).toEqual(electAnnouncers(electionInputOf(sources, nodes), 'n0'));
      }
    }
  });
});
