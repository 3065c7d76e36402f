// A stand-in Kubernetes API server for tests (no kube-apiserver can run on these machines). It
// serves the resources Beacon uses over real HTTP on loopback and keeps the API's rules: one global
// resourceVersion, list + watch from a version (410 Gone once that version left the bounded
// history), 409 on create of an existing object and on writes with a stale resourceVersion, the
// status subresource split, JSON merge and JSON patches, label selectors, bookmarks, generation.
// Test controls: restart, dropWatches, compact, request counts per verb and per client.
import { randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import { parseSelector, selectorMatches, type RawLabelSelector, type Selector } from '../api/index.js';
import { apiVersionOf, kubeResources, type KubeResource } from '../store/kubernetes/index.js';

type Json = Record<string, unknown>;
interface KubeObject extends Json {
  metadata: Json & { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
}
type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';
interface HistoryEntry {
  readonly rv: number;
  readonly plural: string;
  readonly type: EventType;
  readonly object: KubeObject;
  readonly previous: KubeObject | undefined;
}
interface Watcher {
  readonly resource: KubeResource;
  readonly namespace: string | undefined;
  readonly selector: Selector;
  readonly res: ServerResponse;
  readonly timers: NodeJS.Timeout[];
}
interface Target {
  resource: KubeResource;
  namespace: string | undefined;
  name: string | undefined;
  subresource: 'status' | undefined;
}

export interface KubeApiServerOptions {
  /** Watch events kept for watches that resume from an older version (default 1000). */
  historySize?: number;
  /** How often a watch with allowWatchBookmarks gets a BOOKMARK (ms, default 1000). */
  bookmarkIntervalMs?: number;
  /** The bearer token clients must send (default 'beacon-test-token'). */
  token?: string;
}

/** Requests counted by `<verb> <plural>[/status]`, e.g. `update leases`, `watch services`. */
export interface RequestTally {
  total: number;
  byVerb: Record<string, number>;
}

/** All requests, and per client: the user its token names (`kubeconfig(user)`; `test` for the shared token). */
export interface RequestCounts extends RequestTally {
  byClient: Record<string, RequestTally>;
}

class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Json,
  ) {
    super(message);
  }
}

const clone = <T>(v: T): T => structuredClone(v);
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const dnsSubdomain = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
/** The user a token may name after the server's token and a dot (`kubeconfig(user)`). */
const userName = /^[a-z0-9][-a-z0-9]*$/;
/** Kubernetes prints Time with second precision. */
const kubeTime = (ms: number): string => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');

function status(code: number, reason: string, message: string, details?: Json): Json {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

/** RFC 7386 JSON Merge Patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch);
  const out: Json = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** RFC 6902 JSON Patch (add, remove, replace, test), the operations Kubernetes clients send. */
export function jsonPatch(doc: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new ApiError(400, 'BadRequest', 'a JSON patch must be an array of operations');
  let root = clone(doc);
  for (const op of ops as Json[]) {
    const path = typeof op.path === 'string' ? op.path : '';
    const keys = path === '' ? [] : path.slice(1).split('/').map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = keys.pop();
    if (last === undefined) {
      if (op.op === 'test' && !isDeepStrictEqual(root, op.value)) throw new ApiError(422, 'Invalid', `test failed at ${path}`);
      if (op.op === 'add' || op.op === 'replace') root = clone(op.value);
      continue;
    }
    let parent: unknown = root;
    for (const k of keys) parent = isObject(parent) || Array.isArray(parent) ? (parent as Json)[k] : undefined;
    if (!isObject(parent) && !Array.isArray(parent)) throw new ApiError(422, 'Invalid', `no parent for ${path}`);
    const p = parent as Json;
    const present = Object.hasOwn(p, last);
    switch (op.op) {
      case 'test':
        if (!isDeepStrictEqual(p[last], op.value)) throw new ApiError(422, 'Invalid', `test failed at ${path}`);
        break;
      case 'remove':
      case 'replace':
        if (!present) throw new ApiError(422, 'Invalid', `${String(op.op)}: nothing at ${path}`);
        if (op.op === 'remove') {
          if (Array.isArray(parent)) parent.splice(Number(last), 1);
          else delete p[last];
        } else p[last] = clone(op.value);
        break;
      case 'add':
        if (Array.isArray(parent)) parent.splice(last === '-' ? parent.length : Number(last), 0, clone(op.value));
        else p[last] = clone(op.value);
        break;
      default:
        throw new ApiError(422, 'Invalid', `unsupported JSON patch operation ${String(op.op)}`);
    }
  }
  return root;
}

/** `a=b,c!=d,e in (f,g),h notin (i),j,!k` as a compiled selector. */
export function parseLabelSelector(text: string): Selector {
  const raw: Required<RawLabelSelector> = { matchLabels: {}, matchExpressions: [] };
  for (const part of text.match(/([^,(]+(\([^)]*\))?)/g) ?? []) {
    const term = part.trim();
    let m: RegExpMatchArray | null;
    if ((m = /^(\S+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(term))) {
      raw.matchExpressions.push({ key: m[1]!, operator: m[2] === 'in' ? 'In' : 'NotIn', values: m[3]!.split(',').map((v) => v.trim()) });
    } else if ((m = /^([^=!\s]+)\s*!=\s*(\S*)$/.exec(term))) {
      raw.matchExpressions.push({ key: m[1]!, operator: 'NotIn', values: [m[2]!] });
    } else if ((m = /^([^=!\s]+)\s*==?\s*(\S*)$/.exec(term))) {
      raw.matchExpressions.push({ key: m[1]!, operator: 'In', values: [m[2]!] });
    } else if ((m = /^!(\S+)$/.exec(term))) {
      raw.matchExpressions.push({ key: m[1]!, operator: 'DoesNotExist' });
    } else if (term) {
      raw.matchExpressions.push({ key: term, operator: 'Exists' });
    }
  }
  const parsed = parseSelector(raw);
  if (!parsed.ok) throw new ApiError(400, 'BadRequest', `unable to parse labelSelector ${JSON.stringify(text)}: ${parsed.error}`);
  return parsed.value;
}

export class KubeApiServer {
  private rv = 0;
  /** plural → `namespace/name` (or `name`) → object. */
  private objects = new Map<string, Map<string, KubeObject>>();
  private history: HistoryEntry[] = [];
  /** A watch from a version below this one would miss dropped events: 410 Gone. */
  private oldestResumable = 0;
  private readonly watchers = new Set<Watcher>();
  private readonly sockets = new Set<Socket>();
  /** client → `<verb> <plural>` → requests. */
  private readonly counts = new Map<string, Map<string, number>>();
  private server: Server;
  private readonly historySize: number;
  private readonly bookmarkIntervalMs: number;
  readonly token: string;

  private constructor(
    readonly port: number,
    opts: KubeApiServerOptions,
  ) {
    this.historySize = opts.historySize ?? 1000;
    this.bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 1000;
    this.token = opts.token ?? 'beacon-test-token';
    this.server = this.newServer();
  }

  /** Listens on 127.0.0.1 on a random port. */
  static async start(opts: KubeApiServerOptions = {}): Promise<KubeApiServer> {
    const s = new KubeApiServer(0, opts);
    await s.listen(0);
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /**
   * A kubeconfig for this server (plain HTTP on loopback, bearer token). With `user`, the token
   * names that user, and its requests are counted under it (as the real server's audit log
   * attributes requests to users).
   */
  kubeconfig(user?: string): string {
    if (user !== undefined && !userName.test(user)) throw new Error(`user ${JSON.stringify(user)}: lower-case letters, digits and dashes`);
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: test\n  cluster:\n    server: ${this.url}\n    insecure-skip-tls-verify: true`,
      'users:',
      `- name: test\n  user:\n    token: ${this.token}${user === undefined ? '' : `.${user}`}`,
      'contexts:',
      '- name: test\n  context:\n    cluster: test\n    user: test',
      'current-context: test',
      '',
    ].join('\n');
  }

  /** Requests since the start or the last resetCounts(): in all, per verb and resource, per client. */
  requestCounts(): RequestCounts {
    const tally = (entries: [string, number][]): RequestTally => ({
      total: entries.reduce((sum, [, n]) => sum + n, 0),
      byVerb: Object.fromEntries(entries.sort(([a], [b]) => a.localeCompare(b))),
    });
    const all = new Map<string, number>();
    for (const perClient of this.counts.values()) for (const [k, n] of perClient) all.set(k, (all.get(k) ?? 0) + n);
    const byClient = Object.fromEntries([...this.counts].sort(([a], [b]) => a.localeCompare(b)).map(([client, c]) => [client, tally([...c])]));
    return { ...tally([...all]), byClient };
  }

  resetCounts(): void {
    this.counts.clear();
  }

  /** Ends every open watch cleanly, as the API server does when a watch times out. */
  dropWatches(): void {
    for (const w of [...this.watchers]) this.endWatch(w);
  }

  /** Forgets the watch history: any watch from an older version now gets 410 Gone. */
  compact(): void {
    this.history = [];
    this.oldestResumable = this.rv;
  }

  /**
   * Stops and starts again on the same port: every connection and watch is cut. With
   * keepData false the objects and history are gone too (the version counter still only grows).
   */
  async restart({ keepData }: { keepData: boolean }): Promise<void> {
    await this.stop();
    if (!keepData) {
      // The wipe is a change no history holds: every earlier version is now too old to resume from.
      this.objects.clear();
      this.history = [];
      this.oldestResumable = ++this.rv;
    }
    this.server = this.newServer();
    await this.listen(this.port);
  }

  async close(): Promise<void> {
    await this.stop();
  }

  /** A kubectl-like client for tests: one request, JSON in and out, no connection reuse. */
  request<T = Json>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; body: T }> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = httpRequest(
        `${this.url}${path}`,
        { method, agent: false, headers: { authorization: `Bearer ${this.token}`, ...(data ? { 'content-type': contentType } : {}) } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: (text ? JSON.parse(text) : {}) as T }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  }

  // ---- plumbing ----

  private newServer(): Server {
    const server = createServer((req, res) => void this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    return server;
  }

  private listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        const addr = this.server.address();
        (this as { port: number }).port = typeof addr === 'object' && addr ? addr.port : port;
        resolve();
      });
    });
  }

  private stop(): Promise<void> {
    for (const w of this.watchers) for (const t of w.timers) clearTimeout(t);
    this.watchers.clear();
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** The user a request's token names, or undefined when the token is not this server's. */
  private clientOf(req: IncomingMessage): string | undefined {
    const auth = req.headers.authorization ?? '';
    const prefix = `Bearer ${this.token}`;
    if (auth === prefix) return 'test';
    const user = auth.startsWith(`${prefix}.`) ? auth.slice(prefix.length + 1) : '';
    return userName.test(user) ? user : undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const client = this.clientOf(req);
      if (client === undefined) throw new ApiError(401, 'Unauthorized', 'Unauthorized');
      const url = new URL(req.url ?? '/', this.url);
      const target = this.route(url.pathname);
      const body = await readBody(req);
      const counts = this.counts.get(client) ?? this.counts.set(client, new Map()).get(client)!;
      const count = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
      this.serve(req.method ?? 'GET', target, url.searchParams, req.headers['content-type'] ?? '', body, res, count);
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(500, 'InternalError', String(e));
      send(res, err.code, status(err.code, err.reason, err.message, err.details));
    }
  }

  private route(path: string): Target {
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    let group = '';
    let rest: string[];
    if (parts[0] === 'api' && parts.length >= 2) rest = parts.slice(2);
    else if (parts[0] === 'apis' && parts.length >= 3) {
      group = parts[1]!;
      rest = parts.slice(3);
    } else throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${path})`);
    const version = parts[0] === 'api' ? parts[1]! : parts[2]!;
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const [plural, name, sub, ...extra] = rest;
    const resource = kubeResources.find((r) => r.group === group && r.version === version && r.plural === plural);
    const subOk = sub === undefined || (sub === 'status' && resource?.statusSubresource);
    if (!resource || extra.length || !subOk || (namespace !== undefined && !resource.namespaced) || (resource.namespaced && name !== undefined && namespace === undefined)) {
      throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${path})`);
    }
    return { resource, namespace, name, subresource: sub === 'status' ? 'status' : undefined };
  }

  private serve(method: string, t: Target, query: URLSearchParams, contentType: string, body: string, res: ServerResponse, count: (key: string) => void): void {
    const suffix = `${t.resource.plural}${t.subresource ? '/status' : ''}`;
    if (t.name === undefined) {
      if (method === 'GET' && ['1', 'true'].includes(query.get('watch') ?? '')) {
        count(`watch ${suffix}`);
        return this.watch(t, query, res);
      }
      if (method === 'GET') {
        count(`list ${suffix}`);
        return send(res, 200, this.list(t, query));
      }
      if (method === 'POST' && (t.namespace !== undefined) === t.resource.namespaced) {
        count(`create ${suffix}`);
        return send(res, 201, this.create(t, parseJson(body)));
      }
    } else {
      const key = t.namespace ? `${t.namespace}/${t.name}` : t.name;
      const current = this.table(t.resource).get(key);
      const notFound = (): never => {
        throw new ApiError(404, 'NotFound', `${t.resource.plural}${t.resource.group ? `.${t.resource.group}` : ''} "${t.name}" not found`, {
          name: t.name,
          group: t.resource.group,
          kind: t.resource.plural,
        });
      };
      switch (method) {
        case 'GET':
          count(`get ${suffix}`);
          return send(res, 200, current ?? notFound());
        case 'PUT':
          count(`update ${suffix}`);
          return send(res, 200, this.update(t, key, current ?? notFound(), parseJson(body)));
        case 'PATCH': {
          count(`patch ${suffix}`);
          const base = current ?? notFound();
          let patched: unknown;
          if (contentType.startsWith('application/merge-patch+json')) patched = mergePatch(base, parseJson(body));
          else if (contentType.startsWith('application/json-patch+json')) patched = jsonPatch(base, JSON.parse(body));
          else throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format: ${contentType}`);
          return send(res, 200, this.update(t, key, base, patched));
        }
        case 'DELETE': {
          count(`delete ${suffix}`);
          if (t.subresource || !current) return notFound();
          this.table(t.resource).delete(key);
          return send(res, 200, this.commit(t.resource, 'DELETED', clone(current), current));
        }
      }
    }
    throw new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
  }

  private table(r: KubeResource): Map<string, KubeObject> {
    let t = this.objects.get(r.plural);
    if (!t) this.objects.set(r.plural, (t = new Map<string, KubeObject>()));
    return t;
  }

  private selected(t: Target, selector: Selector) {
    return (o: KubeObject | undefined): o is KubeObject =>
      o !== undefined && (t.namespace === undefined || o.metadata.namespace === t.namespace) && selectorMatches(selector, o.metadata.labels ?? {});
  }

  private list(t: Target, query: URLSearchParams): Json {
    const match = this.selected(t, parseLabelSelector(query.get('labelSelector') ?? ''));
    const items = [...this.table(t.resource)].sort(([a], [b]) => a.localeCompare(b)).map(([, o]) => o).filter(match);
    return { kind: `${t.resource.kind}List`, apiVersion: apiVersionOf(t.resource), metadata: { resourceVersion: String(this.rv) }, items };
  }

  /** Checks what every write checks: the body is this kind's object, named and namespaced as the URL says. */
  private validate(t: Target, body: unknown): KubeObject {
    if (!isObject(body) || !isObject(body.metadata)) throw new ApiError(400, 'BadRequest', 'the body must be an object with metadata');
    const o = body as KubeObject;
    if (o.kind !== undefined && o.kind !== t.resource.kind) throw new ApiError(400, 'BadRequest', `kind ${JSON.stringify(o.kind)} does not match ${t.resource.kind}`);
    if (o.apiVersion !== undefined && o.apiVersion !== apiVersionOf(t.resource)) throw new ApiError(400, 'BadRequest', `apiVersion ${JSON.stringify(o.apiVersion)} does not match`);
    if (t.name !== undefined && o.metadata.name !== t.name) throw new ApiError(400, 'BadRequest', 'the name of the object does not match the name on the URL');
    if (typeof o.metadata.name !== 'string' || !dnsSubdomain.test(o.metadata.name)) {
      throw new ApiError(422, 'Invalid', `${t.resource.kind} "${String(o.metadata.name)}" is invalid: metadata.name must be a DNS subdomain`);
    }
    if (o.metadata.namespace !== undefined && o.metadata.namespace !== t.namespace) {
      throw new ApiError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
    }
    return o;
  }

  private create(t: Target, body: unknown): KubeObject {
    const o = clone(this.validate(t, body));
    const key = t.namespace ? `${t.namespace}/${o.metadata.name}` : o.metadata.name;
    if (this.table(t.resource).has(key)) {
      throw new ApiError(409, 'AlreadyExists', `${t.resource.plural} "${o.metadata.name}" already exists`, { name: o.metadata.name, group: t.resource.group, kind: t.resource.plural });
    }
    // The server owns these fields; with a status subresource, status starts empty.
    if (t.resource.statusSubresource) delete o.status;
    const { resourceVersion: _rv, ...meta } = o.metadata;
    o.metadata = {
      ...meta,
      ...(t.namespace ? { namespace: t.namespace } : {}),
      uid: randomUUID(),
      creationTimestamp: kubeTime(Date.now()),
      ...(t.resource.statusSubresource ? { generation: 1 } : {}),
    };
    o.kind = t.resource.kind;
    o.apiVersion = apiVersionOf(t.resource);
    this.table(t.resource).set(key, o);
    return this.commit(t.resource, 'ADDED', o, undefined);
  }

  /** PUT and PATCH: the main resource takes everything but status, /status only status. */
  private update(t: Target, key: string, current: KubeObject, body: unknown): KubeObject {
    const given = this.validate(t, body);
    const rv = given.metadata.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== current.metadata.resourceVersion) {
      throw new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${t.resource.plural} "${t.name}": the object has been modified; please apply your changes to the latest version and try again`, {
        name: t.name,
        group: t.resource.group,
        kind: t.resource.plural,
      });
    }
    let next: KubeObject;
    if (t.subresource === 'status') {
      next = { ...clone(current), status: clone(given.status) };
      if (given.status === undefined) delete next.status;
    } else {
      next = clone(given);
      if (t.resource.statusSubresource) {
        if (current.status === undefined) delete next.status;
        else next.status = clone(current.status);
      }
      const { uid, creationTimestamp, generation, namespace } = current.metadata;
      next.metadata = { ...next.metadata, uid, creationTimestamp, ...(namespace ? { namespace } : {}), ...(generation !== undefined ? { generation } : {}) };
      next.kind = t.resource.kind;
      next.apiVersion = apiVersionOf(t.resource);
      if (typeof generation === 'number' && !isDeepStrictEqual(next.spec, current.spec)) next.metadata.generation = generation + 1;
    }
    next.metadata.resourceVersion = current.metadata.resourceVersion;
    // A write that changes nothing keeps the version and sends no event, as the real server does.
    if (isDeepStrictEqual(next, current)) return current;
    this.table(t.resource).set(key, next);
    return this.commit(t.resource, 'MODIFIED', next, current);
  }

  /** Gives the change the next version, records it and tells every matching watch. */
  private commit(r: KubeResource, type: EventType, object: KubeObject, previous: KubeObject | undefined): KubeObject {
    object.metadata.resourceVersion = String(++this.rv);
    const entry: HistoryEntry = { rv: this.rv, plural: r.plural, type, object: clone(object), previous };
    this.history.push(entry);
    if (this.history.length > this.historySize) this.oldestResumable = this.history.shift()!.rv;
    for (const w of this.watchers) if (w.resource === r) this.deliver(w, entry);
    return object;
  }

  private deliver(w: Watcher, e: HistoryEntry): void {
    const match = this.selected({ resource: w.resource, namespace: w.namespace, name: undefined, subresource: undefined }, w.selector);
    const now = match(e.object);
    const before = e.type === 'MODIFIED' && match(e.previous);
    // With a selector, an object moving into it is ADDED and one moving out is DELETED.
    let type: EventType | undefined = e.type;
    if (e.type === 'MODIFIED') type = now && before ? 'MODIFIED' : now ? 'ADDED' : before ? 'DELETED' : undefined;
    else if (!now) type = undefined;
    if (type) w.res.write(`${JSON.stringify({ type, object: e.object })}\n`);
  }

  private watch(t: Target, query: URLSearchParams, res: ServerResponse): void {
    const selector = parseLabelSelector(query.get('labelSelector') ?? '');
    const from = query.get('resourceVersion') ?? '';
    if (from !== '' && !/^\d+$/.test(from)) throw new ApiError(400, 'BadRequest', `invalid resource version ${JSON.stringify(from)}`);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const w: Watcher = { resource: t.resource, namespace: t.namespace, selector, res, timers: [] };
    if (from !== '' && from !== '0' && Number(from) < this.oldestResumable) {
      const gone = status(410, 'Expired', `too old resource version: ${from} (${this.oldestResumable})`);
      res.end(`${JSON.stringify({ type: 'ERROR', object: gone })}\n`);
      return;
    }
    if (from === '' || from === '0') {
      // No version: the current state as ADDED events first, then changes.
      const items = this.list(t, query).items as KubeObject[];
      for (const object of items) this.deliver(w, { rv: this.rv, plural: t.resource.plural, type: 'ADDED', object, previous: undefined });
    } else {
      for (const e of this.history) if (e.rv > Number(from) && e.plural === t.resource.plural) this.deliver(w, e);
    }
    this.watchers.add(w);
    res.on('close', () => this.endWatch(w));
    if (['1', 'true'].includes(query.get('allowWatchBookmarks') ?? '')) {
      const bookmark = { kind: t.resource.kind, apiVersion: apiVersionOf(t.resource) };
      const tick = (): void => {
        res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { ...bookmark, metadata: { resourceVersion: String(this.rv) } } })}\n`);
        w.timers[0] = setTimeout(tick, this.bookmarkIntervalMs);
      };
      w.timers[0] = setTimeout(tick, this.bookmarkIntervalMs);
    }
    const timeout = Number(query.get('timeoutSeconds') ?? '');
    if (timeout > 0) w.timers[1] = setTimeout(() => this.endWatch(w), timeout * 1000);
  }

  private endWatch(w: Watcher): void {
    if (!this.watchers.delete(w)) return;
    for (const t of w.timers) clearTimeout(t);
    w.res.end();
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(400, 'BadRequest', 'the request body is not valid JSON');
  }
}

function send(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
