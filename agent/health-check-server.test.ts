import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { createServer, type Server } from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { HealthCheckListener } from '../kpr/index.js';
import { Reflector } from '../store/index.js';
import { MemoryStore } from '../test/memory-store.js';
import { eventually, freePort } from '../test/process.js';
import { HealthCheckServers, followHealthChecks } from './health-check-server.js';
import { createLogger } from './log.js';

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  localPort: number;
}

function call(port: number, opts: { method?: string; path?: string; agent?: Agent } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path ?? '/', agent: opts.agent ?? false, timeout: 5_000 }, (res) => {
      let body = '';
      const localPort = res.socket.localPort!; // a kept-alive socket leaves the response at its end
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, localPort }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

const listener = (port: number, name: string, localEndpoints: number): HealthCheckListener => ({ port, service: { namespace: 'shop', name }, localEndpoints });

describe('HealthCheckServers over HTTP on 127.0.0.1', () => {
  let servers: HealthCheckServers | undefined;
  let blocker: Server | undefined;
  let logs: Record<string, unknown>[] = [];
  const agents: Agent[] = [];

  const start = (opts: { proxyHealthy?: () => boolean } = {}) => {
    logs = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    servers = new HealthCheckServers({ host: '127.0.0.1', log: createLogger({ destination }), ...opts });
    return servers;
  };

  afterEach(async () => {
    await servers?.close();
    for (const a of agents.splice(0)) a.destroy();
    await new Promise<void>((resolve) => (blocker ? blocker.close(() => resolve()) : resolve()));
    servers = blocker = undefined;
  });

  it("answers any method and path like kube-proxy: 200 with local endpoints, 503 without, kube-proxy's exact body", async () => {
    const [web, api] = [await freePort(), await freePort()];
    await start().reconcile([listener(web, 'web', 2), listener(api, 'api', 0)]);

    const ok = await call(web, { path: '/healthz?probe=1' });
    expect(ok.status).toBe(200);
    expect(ok.headers['content-type']).toBe('application/json');
    expect(ok.headers['x-content-type-options']).toBe('nosniff');
    expect(ok.body).toBe('{\n\t"service": {\n\t\t"namespace": "shop",\n\t\t"name": "web"\n\t},\n\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}');

    const down = await call(api, { method: 'POST', path: '/anything' });
    expect(down.status).toBe(503);
    expect(JSON.parse(down.body)).toEqual({ service: { namespace: 'shop', name: 'api' }, localEndpoints: 0, serviceProxyHealthy: true });
    const head = await call(web, { method: 'HEAD' });
    expect([head.status, head.body]).toEqual([200, '']);
    const byPort = [{ ...listener(web, 'web', 2), listening: true }, { ...listener(api, 'api', 0), listening: true }].sort((x, y) => x.port - y.port);
    expect(servers!.status()).toEqual(byPort);
  });

  it('changes counts in place: a kept-alive connection sees the new answer on the same socket', async () => {
    const port = await freePort();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    await start().reconcile([listener(port, 'web', 1)]);
    const first = await call(port, { agent });
    await servers!.reconcile([listener(port, 'web', 0)]);
    const second = await call(port, { agent });
    expect([first.status, second.status]).toEqual([200, 503]);
    expect(JSON.parse(second.body)).toMatchObject({ localEndpoints: 0 });
    expect(second.localPort).toBe(first.localPort);
    expect(logs.filter((l) => l.msg === 'health check port open')).toHaveLength(1);
    expect(logs.filter((l) => l.msg === 'health check port closed')).toHaveLength(0);
  });

  it('opens new ports and closes removed ones, also with kept-alive connections open', async () => {
    const [a, b] = [await freePort(), await freePort()];
    const agent = new Agent({ keepAlive: true });
    agents.push(agent);
    await start().reconcile([listener(a, 'web', 1)]);
    expect((await call(a, { agent })).status).toBe(200);
    await servers!.reconcile([listener(b, 'web', 1)]);
    await expect(call(a)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect((await call(b)).status).toBe(200);
    expect(servers!.status().map((s) => s.port)).toEqual([b]);
  });

  it('logs a port it cannot bind, keeps serving the others, and binds it at a later reconcile', async () => {
    const [taken, free] = [await freePort(), await freePort()];
    blocker = createServer();
    await new Promise<void>((resolve) => blocker!.listen(taken, '127.0.0.1', resolve));
    const desired = [listener(taken, 'web', 1), listener(free, 'api', 1)];
    await start().reconcile(desired);

    expect((await call(free)).status).toBe(200);
    const stuck = servers!.status().find((s) => s.port === taken)!;
    expect(stuck).toMatchObject({ listening: false, error: expect.stringContaining('EADDRINUSE') as string });
    expect(logs.filter((l) => l.msg === 'health check port not bound; retrying at the next reconcile')).toEqual([
      expect.objectContaining({ port: taken, service: 'shop/web', err: expect.stringContaining('EADDRINUSE') as string }),
    ]);
    // Still taken: tried again, but the same failure is not logged twice.
    await servers!.reconcile(desired);
    expect(logs.filter((l) => l.msg === 'health check port not bound; retrying at the next reconcile')).toHaveLength(1);

    await new Promise<void>((resolve) => blocker!.close(() => resolve()));
    blocker = undefined;
    await servers!.reconcile(desired);
    expect((await call(taken)).status).toBe(200);
    expect(servers!.status().every((s) => s.listening && s.error === undefined)).toBe(true);
  });

  it('answers 503 with serviceProxyHealthy false while the proxy is unhealthy', async () => {
    const port = await freePort();
    let healthy = false;
    await start({ proxyHealthy: () => healthy }).reconcile([listener(port, 'web', 3)]);
    const sick = await call(port);
    expect([sick.status, JSON.parse(sick.body)]).toEqual([503, { service: { namespace: 'shop', name: 'web' }, localEndpoints: 3, serviceProxyHealthy: false }]);
    healthy = true;
    expect((await call(port)).status).toBe(200);
  });

  it('closes every port and connection on close, and stays closed', async () => {
    const port = await freePort();
    const agent = new Agent({ keepAlive: true });
    agents.push(agent);
    const s = start();
    await s.reconcile([listener(port, 'web', 1)]);
    expect((await call(port, { agent })).status).toBe(200);
    await s.close();
    await expect(call(port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await s.reconcile([listener(port, 'web', 1)]);
    expect(s.status()).toEqual([]);
    await expect(call(port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

describe('followHealthChecks', () => {
  it('keeps the servers on the stored Services and EndpointSlices, and tells a problem once', async () => {
    const store = new MemoryStore();
    const services = new Reflector(store, 'Service', { backoffMs: 5 });
    const slices = new Reflector(store, 'EndpointSlice', { backoffMs: 5 });
    await Promise.all([services.start(), slices.start()]);
    const wanted: HealthCheckListener[][] = [];
    const logs: Record<string, unknown>[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _e, done) => (logs.push(JSON.parse(chunk.toString()) as Record<string, unknown>), done()) });
    const stop = followHealthChecks({
      nodeName: 'node-a',
      services,
      slices,
      servers: { reconcile: (l) => (wanted.push([...l]), Promise.resolve()) },
      log: createLogger({ level: 'info', destination: sink }),
      debounceMs: 5,
    });
    try {
      const lb = (name: string, healthCheckNodePort: number) => ({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { namespace: 'shop', name },
        spec: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort, ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }] },
      });
      await store.apply(lb('web', 32000));
      await store.apply({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { namespace: 'shop', name: 'web-1', labels: { 'kubernetes.io/service-name': 'web' } },
        addressType: 'IPv4',
        endpoints: [{ addresses: ['198.18.5.1'], conditions: { ready: true }, nodeName: 'node-a' }, { addresses: ['198.18.5.2'], conditions: { ready: true }, nodeName: 'node-b' }],
        ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      });
      await eventually(() => expect(wanted.at(-1)).toEqual([{ port: 32000, service: { namespace: 'shop', name: 'web' }, localEndpoints: 1 }]));
      await store.apply(lb('copy', 32000)); // the same port: refused, told once
      await store.apply({ ...lb('copy', 32000), metadata: { namespace: 'shop', name: 'copy', labels: { touched: 'yes' } } });
      await eventually(() => expect(logs.filter((l) => l.reason === 'health_check_port_conflict')).toHaveLength(1));
      expect(wanted.at(-1)).toEqual([{ port: 32000, service: { namespace: 'shop', name: 'web' }, localEndpoints: 1 }]);
    } finally {
      stop();
      services.stop();
      slices.stop();
    }
  });
});
