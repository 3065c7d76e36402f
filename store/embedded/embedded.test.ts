import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { describeStoreConformance, eventually } from '../conformance.js';
import { ConflictError, ExpiredError, NotFoundError, type ObjectRef, type StoredObject, type WatchEvent } from '../types.js';
import { openDatabase } from './sqlite.js';
import { openEmbeddedStore, StateCorruptError, stateFileName, type EmbeddedStore, type EmbeddedStoreOptions } from './index.js';

const fileFor = (ref: ObjectRef): string => `${ref.kind.toLowerCase()}-${ref.namespace ? `${ref.namespace}-` : ''}${ref.name}.yaml`;

describeStoreConformance('embedded', async () => {
  const root = mkdtempSync(join(tmpdir(), 'beacon-embedded-'));
  const manifestsDir = join(root, 'manifests');
  mkdirSync(manifestsDir);
  const opened: EmbeddedStore[] = [];
  const open = async (): Promise<EmbeddedStore> => {
    const s = await openEmbeddedStore({ manifestsDir, stateDir: join(root, 'state') });
    opened.push(s);
    return s;
  };
  const store = await open();
  return {
    store,
    put: (o: StoredObject) => Promise.resolve(writeFileSync(join(manifestsDir, fileFor({ kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name })), stringify(o))),
    remove: (ref: ObjectRef) => Promise.resolve(rmSync(join(manifestsDir, fileFor(ref)), { force: true })),
    peer: open,
    close: async () => {
      for (const s of opened) await s.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
});

const poolYaml = (name: string, cidr: string, extra = ''): string =>
  `apiVersion: beacon.io/v1alpha1\nkind: LoadBalancerIPPool\nmetadata:\n  name: ${name}\n${extra}spec:\n  blocks:\n    - cidr: ${cidr}\n`;
const serviceYaml = (name: string, labels = ''): string =>
  `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\n  namespace: shop\n${labels}spec:\n  type: LoadBalancer\n`;

const names = async (s: EmbeddedStore, kind = 'LoadBalancerIPPool'): Promise<string[]> => (await s.list(kind)).items.map((o) => o.metadata.name);
const one = async (s: EmbeddedStore, kind: string, name: string): Promise<StoredObject> => {
  const found = (await s.list(kind)).items.find((o) => o.metadata.name === name);
  if (!found) throw new Error(`${kind} ${name} not listed`);
  return found;
};

describe('embedded store', () => {
  let root: string;
  let manifestsDir: string;
  let stateDir: string;
  const stores: EmbeddedStore[] = [];
  const open = async (extra: Partial<EmbeddedStoreOptions> = {}): Promise<EmbeddedStore> => {
    const s = await openEmbeddedStore({ manifestsDir, stateDir, ...extra });
    stores.push(s);
    return s;
  };
  const write = (rel: string, text: string): void => writeFileSync(join(manifestsDir, rel), text);

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'beacon-embedded-'));
    manifestsDir = join(root, 'manifests');
    stateDir = join(root, 'state');
    mkdirSync(manifestsDir);
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('sees edited, added and removed manifests within a second, in subfolders too', async () => {
    write('a.yaml', poolYaml('a', '198.18.0.0/28'));
    const s = await open();
    expect(await names(s)).toEqual(['a']);
    mkdirSync(join(manifestsDir, 'more'));
    write('more/b.yml', poolYaml('b', '198.18.1.0/28'));
    write('c.json', JSON.stringify({ apiVersion: 'beacon.io/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name: 'c' }, spec: { blocks: [{ cidr: '198.18.2.0/28' }] } }));
    await eventually(async () => expect(await names(s)).toEqual(['a', 'b', 'c']), 1000);
    write('a.yaml', poolYaml('a', '198.18.9.0/28'));
    await eventually(async () => expect((await one(s, 'LoadBalancerIPPool', 'a')).spec).toEqual({ blocks: [{ cidr: '198.18.9.0/28' }] }), 1000);
    rmSync(join(manifestsDir, 'more'), { recursive: true });
    await eventually(async () => expect(await names(s)).toEqual(['a', 'c']), 1000);
    expect(s.health()).toMatchObject({ ok: true });
  });

  it('sees changes within a second by rescanning alone, where fs.watch reports nothing', async () => {
    write('a.yaml', poolYaml('a', '198.18.0.0/28'));
    const s = await open({ fsWatch: false });
    write('a.yaml', poolYaml('a', '198.18.7.0/28')); // same size
    write('b.yaml', poolYaml('b', '198.18.1.0/28'));
    await eventually(async () => {
      expect(await names(s)).toEqual(['a', 'b']);
      expect((await one(s, 'LoadBalancerIPPool', 'a')).spec).toEqual({ blocks: [{ cidr: '198.18.7.0/28' }] });
    }, 1000);
  });

  it('reports a missing manifests folder, and picks it up once it exists', async () => {
    rmSync(manifestsDir, { recursive: true });
    const s = await open();
    expect(s.health()).toMatchObject({ ok: false });
    expect(s.health().message).toContain(`${manifestsDir}:0: manifests folder does not exist`);
    mkdirSync(manifestsDir);
    write('a.yaml', poolYaml('a', '198.18.0.0/28'));
    await eventually(async () => expect(await names(s)).toEqual(['a']), 1000);
    expect(s.health().ok).toBe(true);
    // The whole folder going away (an unmount, a rename) is not a deletion of everything in it.
    renameSync(manifestsDir, `${manifestsDir}.away`);
    await eventually(() => expect(s.health().message).toContain('manifests folder does not exist; keeping the objects of the 1 file read from it before'), 1000);
    expect(await names(s)).toEqual(['a']);
    renameSync(`${manifestsDir}.away`, manifestsDir);
    await eventually(() => expect(s.health().ok).toBe(true), 1000);
    expect(await names(s)).toEqual(['a']);
  });

  it('treats an object gone longer than forgetRemovedAfterMs as new when it returns', async () => {
    let clock = Date.parse('2026-01-01T00:00:00Z');
    const s = await open({ now: () => clock, forgetRemovedAfterMs: 60_000 });
    write('svc.yaml', serviceYaml('web'));
    await eventually(async () => expect(await names(s, 'Service')).toEqual(['web']), 1000);
    const before = await one(s, 'Service', 'web');
    expect(before.metadata.creationTimestamp).toBe('2026-01-01T00:00:00Z');
    await s.writeStatus({ kind: 'Service', namespace: 'shop', name: 'web' }, { loadBalancer: { ingress: [{ ip: '198.18.0.3' }] } }, before.metadata.resourceVersion!);
    rmSync(join(manifestsDir, 'svc.yaml'));
    await eventually(async () => expect(await names(s, 'Service')).toEqual([]), 1000);
    clock += 61_000;
    write('svc.yaml', serviceYaml('web'));
    await eventually(async () => expect(await names(s, 'Service')).toEqual(['web']), 1000);
    const after = await one(s, 'Service', 'web');
    expect(after.status).toBeUndefined();
    expect(after.metadata.creationTimestamp).toBe('2026-01-01T00:01:01Z');
    expect(after.metadata.uid).not.toBe(before.metadata.uid);
  });

  it('keeps the last good objects of a file with a syntax error, reports it, and recovers', async () => {
    write('pools.yaml', `${poolYaml('a', '198.18.0.0/28')}---\n${poolYaml('b', '198.18.1.0/28')}`);
    const s = await open();
    const events: WatchEvent[] = [];
    const w = s.watch('LoadBalancerIPPool', (await s.list('LoadBalancerIPPool')).revision, (e) => events.push(e), (e) => { throw e; });
    try {
      write('pools.yaml', `${poolYaml('a', '198.18.0.0/28')}---\nkind: [unclosed\n`); // half-saved
      const file = join(manifestsDir, 'pools.yaml');
      await eventually(() => expect(s.problems().some((p) => p.startsWith(`${file}:`) && /keeping the 2 objects/.test(p))).toBe(true), 1000);
      expect(s.problems()[0]).toMatch(new RegExp(`^${file}:\\d+: `));
      expect(await names(s)).toEqual(['a', 'b']);
      expect(s.health().ok).toBe(false);
      expect(s.health().message).toContain(file);
      write('pools.yaml', ''); // truncated by an editor mid-save: still the last good objects
      await eventually(() => expect(s.problems().join('\n')).toContain('file is empty'), 1000);
      expect(await names(s)).toEqual(['a', 'b']);
      write('pools.yaml', poolYaml('a', '198.18.0.0/28'));
      await eventually(async () => expect(await names(s)).toEqual(['a']), 1000);
      expect(s.problems()).toEqual([]);
      expect(s.health().ok).toBe(true);
      await eventually(() => expect(events.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['deleted b']));
    } finally {
      w.close();
    }
  });

  it('uses the last good version saved in the state folder when a file is broken at startup', async () => {
    write('pools.yaml', poolYaml('a', '198.18.0.0/28'));
    await (await open()).close();
    write('pools.yaml', `${poolYaml('a', '198.18.0.0/28')}  bad: [\n`);
    const s = await open();
    expect(await names(s)).toEqual(['a']);
    expect(s.problems().join('\n')).toMatch(/keeping the 1 object from its last good version \(saved /);
  });

  it('reports skipped objects and duplicates; the first file by path wins', async () => {
    write('a.yaml', poolYaml('x', '198.18.0.0/28'));
    write('b.yaml', `${poolYaml('x', '198.18.5.0/28')}---\n${poolYaml('bad', '198.18.6.0/28')}  colour: blue\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n`);
    const s = await open();
    expect((await one(s, 'LoadBalancerIPPool', 'x')).spec).toEqual({ blocks: [{ cidr: '198.18.0.0/28' }] });
    const problems = s.problems();
    expect(problems).toContainEqual(`${join(manifestsDir, 'b.yaml')}:1: LoadBalancerIPPool x: also defined at ${join(manifestsDir, 'a.yaml')}:1, which wins; this one is ignored`);
    expect(problems.some((p) => p.includes('ConfigMap c: unsupported object v1/ConfigMap'))).toBe(true);
    expect(problems.some((p) => p.includes('LoadBalancerIPPool bad: spec.colour: unknown field'))).toBe(true);
    expect(s.health()).toMatchObject({ ok: false });
    expect(s.health().message).toContain('manifest problem');
  });

  it('keeps creationTimestamp and generation across restarts; generation follows the spec only', async () => {
    write('svc.yaml', serviceYaml('web'));
    let s = await open();
    const first = await one(s, 'Service', 'web');
    expect(first.metadata).toMatchObject({ namespace: 'shop', generation: 1 });
    expect(first.metadata.creationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    write('svc.yaml', serviceYaml('web', '  labels: {a: b}\n'));
    await eventually(async () => expect((await one(s, 'Service', 'web')).metadata.labels).toEqual({ a: 'b' }), 1000);
    const labelled = await one(s, 'Service', 'web');
    expect(labelled.metadata.generation).toBe(1);
    expect(labelled.metadata.resourceVersion).not.toBe(first.metadata.resourceVersion);
    write('svc.yaml', serviceYaml('web', '  labels: {a: b}\n').replace('type: LoadBalancer', 'type: LoadBalancer\n  loadBalancerClass: beacon.io/l2-announcer'));
    await eventually(async () => expect((await one(s, 'Service', 'web')).metadata.generation).toBe(2), 1000);
    await s.close();
    s = await open();
    const again = await one(s, 'Service', 'web');
    expect(again.metadata).toMatchObject({ generation: 2, creationTimestamp: first.metadata.creationTimestamp, uid: first.metadata.uid });
  });

  it('keeps status when a file is renamed, or removed and brought back', async () => {
    write('svc.yaml', serviceYaml('web'));
    const s = await open();
    const ref = { kind: 'Service', namespace: 'shop', name: 'web' };
    const status = { loadBalancer: { ingress: [{ ip: '198.18.0.7' }] } };
    const written = await s.writeStatus(ref, status, (await one(s, 'Service', 'web')).metadata.resourceVersion!);
    renameSync(join(manifestsDir, 'svc.yaml'), join(manifestsDir, 'renamed.yaml'));
    await new Promise((r) => setTimeout(r, 700));
    expect((await one(s, 'Service', 'web')).metadata.resourceVersion).toBe(written.metadata.resourceVersion);
    rmSync(join(manifestsDir, 'renamed.yaml'));
    await eventually(async () => expect(await names(s, 'Service')).toEqual([]), 1000);
    await expect(s.writeStatus(ref, {}, written.metadata.resourceVersion!)).rejects.toBeInstanceOf(NotFoundError);
    write('back.yaml', serviceYaml('web'));
    await eventually(async () => expect((await one(s, 'Service', 'web')).status).toEqual(status), 1000);
  });

  it('refuses stale writers: an edited spec, or another process writing first', async () => {
    write('svc.yaml', serviceYaml('web'));
    const a = await open();
    const b = await open();
    const ref = { kind: 'Service', namespace: 'shop', name: 'web' };
    const rvA = (await one(a, 'Service', 'web')).metadata.resourceVersion!;
    const rvB = (await one(b, 'Service', 'web')).metadata.resourceVersion!;
    expect(rvA).toBe(rvB); // the same object has the same version in every process
    await b.writeStatus(ref, { loadBalancer: { ingress: [{ ip: '198.18.0.1' }] } }, rvB);
    await expect(a.writeStatus(ref, { loadBalancer: { ingress: [{ ip: '198.18.0.2' }] } }, rvA)).rejects.toBeInstanceOf(ConflictError);
    // After the conflict, a fresh read carries b's status and a version that works.
    const fresh = await one(a, 'Service', 'web');
    expect(fresh.status).toEqual({ loadBalancer: { ingress: [{ ip: '198.18.0.1' }] } });
    const mine = await a.writeStatus(ref, { loadBalancer: { ingress: [{ ip: '198.18.0.2' }] } }, fresh.metadata.resourceVersion!);
    write('svc.yaml', serviceYaml('web', '  labels: {edited: "yes"}\n'));
    await eventually(async () => expect((await one(a, 'Service', 'web')).metadata.labels).toEqual({ edited: 'yes' }), 1000);
    await expect(a.writeStatus(ref, {}, mine.metadata.resourceVersion!)).rejects.toBeInstanceOf(ConflictError);
    await expect(a.writeStatus(ref, {}, 'garbage')).rejects.toBeInstanceOf(ConflictError);
  });

  it('commits writes made together in one transaction, each with its own conflict check', async () => {
    write('svc.yaml', serviceYaml('web') + '---\n' + serviceYaml('api') + '---\n' + serviceYaml('db'));
    const s = await open();
    const ref = (name: string) => ({ kind: 'Service', namespace: 'shop', name });
    const rv = async (name: string) => (await one(s, 'Service', name)).metadata.resourceVersion!;
    const [web, api] = [await rv('web'), await rv('api')];
    const status = (ip: string) => ({ loadBalancer: { ingress: [{ ip }] } });
    // Made in one turn: two writers race on web from the same version, api and db are written too.
    const results = await Promise.allSettled([
      s.writeStatus(ref('web'), status('198.18.0.1'), web),
      s.writeStatus(ref('web'), status('198.18.0.2'), web),
      s.writeStatus(ref('api'), status('198.18.0.3'), api),
      s.writeStatus(ref('db'), status('198.18.0.4'), 'stale.version'),
      s.writeStatus(ref('gone'), status('198.18.0.5'), web),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected', 'rejected']);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(ConflictError);
    expect((results[3] as PromiseRejectedResult).reason).toBeInstanceOf(ConflictError);
    expect((results[4] as PromiseRejectedResult).reason).toBeInstanceOf(NotFoundError);
    // Committed for every process: a fresh one reads them from the database.
    const other = await open();
    expect((await one(other, 'Service', 'web')).status).toEqual(status('198.18.0.1'));
    expect((await one(other, 'Service', 'api')).status).toEqual(status('198.18.0.3'));
    expect((await one(other, 'Service', 'db')).status).toBeUndefined();
  });

  it('delivers status written by another process to watches', async () => {
    write('svc.yaml', serviceYaml('web'));
    const a = await open();
    const b = await open();
    const events: WatchEvent[] = [];
    const w = a.watch('Service', (await a.list('Service')).revision, (e) => events.push(e), (e) => { throw e; });
    try {
      const status = { loadBalancer: { ingress: [{ ip: '198.18.0.4' }] } };
      await b.writeStatus({ kind: 'Service', namespace: 'shop', name: 'web' }, status, (await one(b, 'Service', 'web')).metadata.resourceVersion!);
      await eventually(() => expect(events.map((e) => [e.type, e.object.status])).toEqual([['modified', status]]), 1000);
    } finally {
      w.close();
    }
  });

  it('rejects apply and delete, and expires unknown watch revisions', async () => {
    const s = await open();
    await expect(s.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'x' } })).rejects.toThrow(/objects come from the manifests folder/);
    await expect(s.delete({ kind: 'Service', name: 'x' })).rejects.toThrow(/objects come from the manifests folder/);
    const other = await open();
    const foreign = (await other.list('Service')).revision;
    for (const revision of ['', '12', foreign]) {
      const errors: Error[] = [];
      s.watch('Service', revision, () => {}, (e) => errors.push(e));
      await eventually(() => expect(errors).toHaveLength(1));
      expect(errors[0]).toBeInstanceOf(ExpiredError);
    }
  });

  it('resumes a watch from an older list revision, and expires one older than the kept history', async () => {
    const s = await open({ historySize: 2 });
    const start = (await s.list('LoadBalancerIPPool')).revision;
    write('a.yaml', poolYaml('a', '198.18.0.0/28'));
    await eventually(async () => expect(await names(s)).toEqual(['a']), 1000);
    const events: WatchEvent[] = [];
    s.watch('LoadBalancerIPPool', start, (e) => events.push(e), (e) => { throw e; });
    await eventually(() => expect(events.map((e) => e.type)).toEqual(['added']));
    write('b.yaml', poolYaml('b', '198.18.1.0/28'));
    write('c.yaml', poolYaml('c', '198.18.2.0/28'));
    write('d.yaml', poolYaml('d', '198.18.3.0/28'));
    await eventually(async () => expect(await names(s)).toEqual(['a', 'b', 'c', 'd']), 1000);
    const errors: Error[] = [];
    s.watch('LoadBalancerIPPool', start, () => {}, (e) => errors.push(e));
    await eventually(() => expect(errors[0]).toBeInstanceOf(ExpiredError));
  });

  it('upgrades a schema 1 state database: leases keep their holders and gain data', async () => {
    mkdirSync(stateDir);
    const old = openDatabase(join(stateDir, stateFileName));
    old.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
      INSERT INTO meta (key, value) VALUES ('schema', 1), ('revision', 0);
      CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, duration_ms INTEGER NOT NULL,
        acquired_at INTEGER NOT NULL, renewed_at INTEGER NOT NULL, transitions INTEGER NOT NULL);
      INSERT INTO leases VALUES ('beacon-operator', 'node-a', 60000, ${Date.now()}, ${Date.now()}, 3);`);
    old.close();
    const s = await open();
    expect(await s.leases.get('beacon-operator')).toMatchObject({ holder: 'node-a', transitions: 3, data: '' });
    expect((await s.leases.acquireOrRenew('beacon-operator', 'node-a', 60000, 'x')).lease.data).toBe('x');
  });

  it('reports a state file that is not a database, and leaves it untouched', async () => {
    mkdirSync(stateDir);
    const file = join(stateDir, stateFileName);
    const garbage = Buffer.from('not a database\n'.repeat(300));
    writeFileSync(file, garbage);
    const err = await open().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateCorruptError);
    expect((err as Error).message).toContain(file);
    expect((err as Error).message).toMatch(/not a SQLite database.*untouched.*backup/s);
    expect(readFileSync(file).equals(garbage)).toBe(true);
  });

  it('reports a damaged state database, and leaves it untouched', async () => {
    write('svc.yaml', serviceYaml('web'));
    const s = await open();
    for (let i = 0; i < 50; i++) await s.leases.acquireOrRenew(`lease-${i}-${'x'.repeat(200)}`, 'me', 1000);
    await s.close();
    const file = join(stateDir, stateFileName);
    const bytes = readFileSync(file);
    expect(bytes.length).toBeGreaterThan(4096 * 4);
    bytes.fill(0x5a, 4096 * 3, 4096 * 4); // one page of the tables overwritten
    writeFileSync(file, bytes);
    const err = await open().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateCorruptError);
    expect((err as Error).message).toContain(file);
    expect(readFileSync(file).equals(bytes)).toBe(true);
  });
});
