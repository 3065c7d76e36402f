// The stand-in API server keeps the real API's rules; these tests hold it to them over HTTP.
import { request } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { eventually } from '../store/conformance.js';
import { jsonPatch, KubeApiServer, mergePatch, parseLabelSelector } from './kube-apiserver.js';
import { selectorMatches } from '../api/index.js';

/** The fields these tests read from API objects, Status objects and watch events. */
interface Json {
  type?: string;
  kind?: string;
  code?: number;
  reason?: string;
  metadata: { name: string; namespace?: string; resourceVersion: string; uid?: string; creationTimestamp?: string; generation?: number; labels?: Record<string, string> };
  items: Json[];
  object: Json;
  spec?: unknown;
  status?: unknown;
}

const services = '/api/v1/namespaces/shop/services';
const pools = '/apis/beacon.io/v1alpha1/loadbalancerippools';
const svc = (name: string, labels: Record<string, string> = {}, spec: unknown = { type: 'LoadBalancer' }) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, labels },
  spec,
});

/** Opens a watch and collects its JSON lines until closed. */
function openWatch(server: KubeApiServer, path: string): { events: Json[]; ended: Promise<void>; close(): void } {
  const events: Json[] = [];
  let close = (): void => undefined;
  const ended = new Promise<void>((resolve) => {
    const req = request(`${server.url}${path}`, { agent: false, headers: { authorization: `Bearer ${server.token}` } }, (res) => {
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        const lines = buffer.split('\n');
        buffer = lines.pop()!;
        for (const l of lines) events.push(JSON.parse(l) as Json);
      });
      res.on('close', resolve);
    });
    req.on('error', () => resolve());
    req.end();
    close = () => req.destroy();
  });
  return { events, ended, close: () => close() };
}

const brief = (events: Json[]): string[] => events.map((e) => `${e.type} ${e.object.metadata?.name ?? String(e.object.code)}`);

describe('test kube-apiserver', () => {
  let server: KubeApiServer;
  beforeEach(async () => {
    server = await KubeApiServer.start({ historySize: 5, bookmarkIntervalMs: 50 });
  });
  afterEach(async () => {
    await server.close();
  });

  it('creates with server-owned metadata, refuses duplicates with 409 AlreadyExists and answers 404 as a v1 Status', async () => {
    const created = await server.request<Json>('POST', services, { ...svc('web'), status: { loadBalancer: { ingress: [{ ip: '198.18.0.1' }] } } });
    expect(created.status).toBe(201);
    expect(created.body.metadata).toMatchObject({ name: 'web', namespace: 'shop', generation: 1, resourceVersion: expect.stringMatching(/^\d+$/) as string });
    expect(created.body.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.body.metadata.creationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(created.body.status).toBeUndefined(); // status only through /status
    const again = await server.request<Json>('POST', services, svc('web'));
    expect(again).toMatchObject({ status: 409, body: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'AlreadyExists', code: 409 } });
    const missing = await server.request<Json>('GET', `${services}/nope`);
    expect(missing).toMatchObject({ status: 404, body: { kind: 'Status', reason: 'NotFound', code: 404, details: { name: 'nope', kind: 'services' } } });
    expect((await server.request<Json>('GET', '/apis/beacon.io/v1alpha1/namespaces/x/loadbalancerippools')).status).toBe(404); // cluster-scoped
    expect((await server.request<Json>('POST', services, svc('Bad_Name'))).body.reason).toBe('Invalid');
    expect((await server.request<Json>('POST', services, { ...svc('x'), metadata: { name: 'x', namespace: 'other' } })).status).toBe(400);
  });

  it('refuses requests without the bearer token', async () => {
    const res = await new Promise<number>((resolve) => request(`${server.url}${services}`, { agent: false }, (r) => resolve(r.statusCode!)).end());
    expect(res).toBe(401);
  });

  it('rejects a PUT with a stale resourceVersion, keeps status on the main resource and bumps generation on spec changes', async () => {
    const v1 = (await server.request<Json>('POST', services, svc('web'))).body;
    const withStatus = await server.request<Json>('PUT', `${services}/web/status`, { ...v1, spec: { type: 'ClusterIP' }, status: { loadBalancer: { ingress: [{ ip: '198.18.0.2' }] } } });
    expect(withStatus.body.spec).toEqual({ type: 'LoadBalancer' }); // /status ignores everything else
    expect(withStatus.body.metadata.generation).toBe(1);
    const stale = await server.request<Json>('PUT', `${services}/web`, { ...v1, spec: { type: 'NodePort' } });
    expect(stale).toMatchObject({ status: 409, body: { reason: 'Conflict' } });
    const updated = await server.request<Json>('PUT', `${services}/web`, { ...withStatus.body, spec: { type: 'NodePort' }, status: { loadBalancer: {} } });
    expect(updated.body).toMatchObject({ spec: { type: 'NodePort' }, status: { loadBalancer: { ingress: [{ ip: '198.18.0.2' }] } }, metadata: { generation: 2, uid: v1.metadata.uid } });
    const relabelled = await server.request<Json>('PUT', `${services}/web`, { ...svc('web', { a: 'b' }, { type: 'NodePort' }) }); // no version: unconditional
    expect(relabelled.body.metadata).toMatchObject({ generation: 2, labels: { a: 'b' } });
    // A write that changes nothing keeps the version.
    const same = await server.request<Json>('PUT', `${services}/web`, relabelled.body);
    expect(same.body.metadata.resourceVersion).toBe(relabelled.body.metadata.resourceVersion);
  });

  it('applies merge patches and JSON patches, with resourceVersion in the patch as a precondition', async () => {
    const v1 = (await server.request<Json>('POST', pools, { apiVersion: 'beacon.io/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: 'a' }, spec: { blocks: [{ cidr: '198.18.0.0/28' }] } })).body;
    const merged = await server.request<Json>('PATCH', `${pools}/a/status`, { status: { conditions: [], ips: 16 } }, 'application/merge-patch+json');
    expect(merged.body.status).toEqual({ conditions: [], ips: 16 });
    const dropped = await server.request<Json>('PATCH', `${pools}/a/status`, { status: { ips: null } }, 'application/merge-patch+json');
    expect(dropped.body.status).toEqual({ conditions: [] });
    const stale = await server.request<Json>('PATCH', `${pools}/a/status`, { metadata: { resourceVersion: v1.metadata.resourceVersion }, status: {} }, 'application/merge-patch+json');
    expect(stale.status).toBe(409);
    const replaced = await server.request<Json>(
      'PATCH',
      `${pools}/a/status`,
      [
        { op: 'replace', path: '/metadata/resourceVersion', value: dropped.body.metadata.resourceVersion },
        { op: 'add', path: '/status', value: { ips: 3 } },
      ],
      'application/json-patch+json',
    );
    expect(replaced.body.status).toEqual({ ips: 3 });
    const specPatch = await server.request<Json>('PATCH', `${pools}/a`, { spec: { disabled: true }, status: { ips: 0 } }, 'application/merge-patch+json');
    expect(specPatch.body).toMatchObject({ spec: { disabled: true, blocks: [{ cidr: '198.18.0.0/28' }] }, status: { ips: 3 }, metadata: { generation: 2 } });
    expect((await server.request<Json>('PATCH', `${pools}/a`, {}, 'application/apply-patch+yaml')).status).toBe(415);
  });

  it('lists with a resourceVersion and label selectors, also across namespaces', async () => {
    await server.request<Json>('POST', services, svc('web', { tier: 'edge' }));
    await server.request<Json>('POST', services, svc('db', { tier: 'data' }));
    await server.request<Json>('POST', '/api/v1/namespaces/other/services', svc('web', { tier: 'edge' }));
    const all = (await server.request<Json>('GET', '/api/v1/services')).body;
    expect(all.items.map((o: Json) => `${o.metadata.namespace}/${o.metadata.name}`)).toEqual(['other/web', 'shop/db', 'shop/web']);
    expect(all.metadata.resourceVersion).toBe(all.items[0]!.metadata.resourceVersion);
    const edge = (await server.request<Json>('GET', `${services}?labelSelector=${encodeURIComponent('tier in (edge,x),!gone')}`)).body;
    expect(edge.items.map((o: Json) => o.metadata.name)).toEqual(['web']);
    expect((await server.request<Json>('GET', `${services}?labelSelector=tier!%3Dedge`)).body.items.map((o: Json) => o.metadata.name)).toEqual(['db']);
  });

  it('watches from a version with ADDED, MODIFIED, DELETED and BOOKMARK; a selector turns moves into ADDED/DELETED', async () => {
    const { body: list } = await server.request<Json>('GET', services);
    const all = openWatch(server, `${services}?watch=1&resourceVersion=${list.metadata.resourceVersion}&allowWatchBookmarks=true`);
    const edge = openWatch(server, `${services}?watch=true&resourceVersion=${list.metadata.resourceVersion}&labelSelector=tier%3Dedge`);
    const created = (await server.request<Json>('POST', services, svc('web', { tier: 'edge' }))).body;
    await server.request<Json>('PUT', `${services}/web`, { ...created, metadata: { ...created.metadata, labels: { tier: 'data' } } });
    await server.request<Json>('DELETE', `${services}/web`);
    await eventually(() => expect(brief(all.events.filter((e) => e.type !== 'BOOKMARK'))).toEqual(['ADDED web', 'MODIFIED web', 'DELETED web']));
    await eventually(() => expect(brief(edge.events)).toEqual(['ADDED web', 'DELETED web']));
    const deleted = all.events.filter((e) => e.type === 'DELETED')[0]!;
    await eventually(() => expect(all.events.at(-1)).toMatchObject({ type: 'BOOKMARK', object: { kind: 'Service', metadata: { resourceVersion: deleted.object.metadata.resourceVersion } } }));
    expect(edge.events.some((e) => e.type === 'BOOKMARK')).toBe(false); // not asked for
    all.close();
    edge.close();
    // Without a version: the current state first.
    await server.request<Json>('POST', services, svc('db'));
    const fresh = openWatch(server, `${services}?watch=1`);
    await eventually(() => expect(brief(fresh.events)).toEqual(['ADDED db']));
    fresh.close();
  });

  it('answers a watch from a version older than its history with a 410 Expired ERROR event', async () => {
    await server.request<Json>('POST', services, svc('first'));
    const start = (await server.request<Json>('GET', services)).body.metadata.resourceVersion;
    for (let i = 0; i < 7; i++) await server.request<Json>('POST', services, svc(`s${i}`));
    const old = openWatch(server, `${services}?watch=1&resourceVersion=${start}`);
    await old.ended;
    expect(old.events).toEqual([{ type: 'ERROR', object: expect.objectContaining({ kind: 'Status', code: 410, reason: 'Expired' }) as Json }]);
    // Resuming inside the history replays what came after.
    const recent = (await server.request<Json>('GET', `${services}/s4`)).body.metadata.resourceVersion;
    const resumed = openWatch(server, `${services}?watch=1&resourceVersion=${recent}`);
    await eventually(() => expect(brief(resumed.events)).toEqual(['ADDED s5', 'ADDED s6']));
    resumed.close();
    server.compact();
    const compacted = openWatch(server, `${services}?watch=1&resourceVersion=${recent}`);
    await compacted.ended;
    expect(compacted.events[0]!.object.code).toBe(410);
  });

  it('drops watches, restarts with or without data, and counts requests per verb and resource and per client', async () => {
    await server.request<Json>('POST', services, svc('web'));
    const w = openWatch(server, `${services}?watch=1&resourceVersion=1`);
    await eventually(() => expect(server.requestCounts().byVerb['watch services']).toBe(1));
    server.dropWatches();
    await w.ended;
    const w2 = openWatch(server, `${services}?watch=1&resourceVersion=1`);
    await eventually(() => expect(server.requestCounts().byVerb['watch services']).toBe(2));
    await server.restart({ keepData: true });
    await w2.ended; // cut
    expect((await server.request<Json>('GET', `${services}/web`)).status).toBe(200);
    const port = server.port;
    await server.restart({ keepData: false });
    expect(server.port).toBe(port);
    expect((await server.request<Json>('GET', services)).body.items).toEqual([]);
    const created = await server.request<Json>('POST', services, svc('web'));
    expect(Number(created.body.metadata.resourceVersion)).toBeGreaterThan(1); // versions only grow
    expect(server.requestCounts().byVerb).toEqual({ 'create services': 2, 'get services': 1, 'list services': 1, 'watch services': 2 });
    // A kubeconfig for a named user: its requests are counted under that user; a token naming no valid user is refused.
    const token = /token: (\S+)/.exec(server.kubeconfig('node-a'))![1]!;
    expect(token).toBe(`${server.token}.node-a`);
    const asUser = (t: string) => fetch(`${server.url}${services}`, { headers: { authorization: `Bearer ${t}` } });
    expect((await asUser(token)).status).toBe(200);
    expect((await asUser(`${server.token}.Bad_User`)).status).toBe(401);
    expect(server.requestCounts()).toEqual({
      total: 7,
      byVerb: { 'create services': 2, 'get services': 1, 'list services': 2, 'watch services': 2 },
      byClient: { 'node-a': { total: 1, byVerb: { 'list services': 1 } }, test: { total: 6, byVerb: { 'create services': 2, 'get services': 1, 'list services': 1, 'watch services': 2 } } },
    });
    server.resetCounts();
    expect(server.requestCounts()).toEqual({ total: 0, byVerb: {}, byClient: {} });
  });

  it('implements merge patch, JSON patch and selector text as their specifications say', () => {
    expect(mergePatch({ a: 1, b: { c: 2, d: 3 }, e: [1] }, { b: { c: null, x: 1 }, e: [2], f: 'g' })).toEqual({ a: 1, b: { d: 3, x: 1 }, e: [2], f: 'g' });
    expect(jsonPatch({ a: [1, 2] }, [{ op: 'add', path: '/a/-', value: 3 }, { op: 'remove', path: '/a/0' }, { op: 'add', path: '/b~1c', value: 1 }])).toEqual({ a: [2, 3], 'b/c': 1 });
    expect(() => jsonPatch({ a: 1 }, [{ op: 'test', path: '/a', value: 2 }])).toThrow(/test failed/);
    const sel = parseLabelSelector('a=b,c!=d,e in (f, g),h notin (i),j,!k');
    expect(selectorMatches(sel, { a: 'b', e: 'g', h: 'x', j: '' })).toBe(true);
    expect(selectorMatches(sel, { a: 'b', e: 'g', j: '', k: '' })).toBe(false);
    expect(selectorMatches(sel, { a: 'b', c: 'd', e: 'f', j: '' })).toBe(false);
    expect(() => parseLabelSelector('bad key!=x')).toThrow();
  });
});
