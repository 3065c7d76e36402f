// The healthCheckNodePort servers: one HTTP listener per port of kpr's desiredHealthChecks,
// answering as kube-proxy does (pkg/proxy/healthcheck) so load balancers that probe kube-proxy
// probe Beacon unchanged: any method and path, 200 with local endpoints, 503 without, and the same
// tab-indented JSON body. Counts change in place; a port is opened or closed only when the set of
// ports changes. A port that cannot be bound is logged and tried again at the next reconcile.
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { EndpointSlice, Service } from '../api/index.js';
import { desiredHealthChecks, type HealthCheckListener } from '../kpr/index.js';
import type { Reflector } from '../store/index.js';
import type { Logger } from './log.js';

export interface HealthCheckServerOptions {
  /** Address to listen on; default all addresses (`::`, which also accepts IPv4 where the kernel allows dual-stack sockets). */
  readonly host?: string;
  readonly log: Logger;
  /** kube-proxy's serviceProxyHealthy: when false every port answers 503. Default: always healthy. */
  readonly proxyHealthy?: () => boolean;
}

export interface HealthCheckPortStatus extends HealthCheckListener {
  readonly listening: boolean;
  /** Why the port is not listening (the bind error), until a reconcile binds it. */
  readonly error?: string;
}

interface Port {
  listener: HealthCheckListener;
  server: Server | undefined;
  error: string | undefined;
}

/** The body kube-proxy writes: its template is this object, indented with tabs, without a final newline. */
export const healthCheckBody = (listener: HealthCheckListener, proxyHealthy: boolean): string =>
  JSON.stringify({ service: listener.service, localEndpoints: listener.localEndpoints, serviceProxyHealthy: proxyHealthy }, null, '\t');

export class HealthCheckServers {
  private readonly ports = new Map<number, Port>();
  private queue: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly opts: HealthCheckServerOptions) {}

  /** Makes the listeners match `desired` (one entry per port); resolves when ports are bound or have failed. */
  reconcile(desired: readonly HealthCheckListener[]): Promise<void> {
    // One reconcile at a time, in call order: a later one sees the ports an earlier one opened.
    const next = this.queue.then(() => this.apply(desired));
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Every wanted port, listening or not, by port. */
  status(): HealthCheckPortStatus[] {
    return [...this.ports.values()]
      .map((p) => ({ ...p.listener, listening: p.server !== undefined, ...(p.error === undefined ? {} : { error: p.error }) }))
      .sort((a, b) => a.port - b.port);
  }

  /** Closes every listener and open connection; later reconciles do nothing. */
  close(): Promise<void> {
    this.closed = true;
    return this.reconcile([]);
  }

  private async apply(desired: readonly HealthCheckListener[]): Promise<void> {
    const wanted = new Map(this.closed ? [] : desired.map((l) => [l.port, l]));
    const removed = [...this.ports].filter(([port]) => !wanted.has(port));
    for (const [port] of removed) this.ports.delete(port);
    await Promise.all(removed.flatMap(([port, p]) => (p.server ? [this.stop(port, p.server)] : [])));
    for (const listener of wanted.values()) {
      const existing = this.ports.get(listener.port);
      if (existing) existing.listener = listener;
      else this.ports.set(listener.port, { listener, server: undefined, error: undefined });
    }
    await Promise.all([...this.ports.values()].filter((p) => p.server === undefined).map((p) => this.start(p)));
  }

  private async start(p: Port): Promise<void> {
    const { port } = p.listener;
    const server = createServer((_req, res) => this.answer(port, res));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port, host: this.opts.host }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      if (error !== p.error) this.opts.log.warn({ port, service: serviceName(p.listener), err: error }, 'health check port not bound; retrying at the next reconcile');
      p.error = error;
      return;
    }
    // A socket error after listening (rare: EMFILE on accept) is logged; the next reconcile keeps the port.
    server.on('error', (e) => this.opts.log.warn({ port, err: e.message }, 'health check server error'));
    p.server = server;
    p.error = undefined;
    this.opts.log.info({ port, service: serviceName(p.listener), host: this.opts.host ?? 'all' }, 'health check port open');
  }

  private async stop(port: number, server: Server): Promise<void> {
    // Probers keep connections alive; close them too, or close() would wait for their idle timeout.
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    this.opts.log.info({ port }, 'health check port closed');
  }

  private answer(port: number, res: ServerResponse): void {
    const listener = this.ports.get(port)?.listener;
    if (listener === undefined) {
      res.writeHead(503).end(); // closing: the port is no longer wanted
      return;
    }
    const healthy = this.opts.proxyHealthy?.() ?? true;
    const body = healthCheckBody(listener, healthy);
    res
      .writeHead(listener.localEndpoints > 0 && healthy ? 200 : 503, {
        'Content-Type': 'application/json',
        'X-Content-Type-Options': 'nosniff',
        'Content-Length': Buffer.byteLength(body),
      })
      .end(body);
  }
}

const serviceName = (l: HealthCheckListener): string => `${l.service.namespace}/${l.service.name}`;

export interface HealthCheckFollowerDeps {
  readonly nodeName: string;
  readonly services: Reflector;
  readonly slices: Reflector;
  readonly servers: Pick<HealthCheckServers, 'reconcile'>;
  readonly log: Logger;
  /** Changes within this window are taken together (the desired set is computed over all services). */
  readonly debounceMs?: number;
}

/**
 * Keeps the servers on desiredHealthChecks of the stored Services and EndpointSlices. A whole
 * pass per burst of changes: it only reads the few Services with a healthCheckNodePort closely.
 */
export function followHealthChecks(deps: HealthCheckFollowerDeps): () => void {
  let timer: NodeJS.Timeout | undefined;
  let reported = new Set<string>();
  const pass = (): void => {
    timer = undefined;
    const { listeners, problems } = desiredHealthChecks({
      services: deps.services.items() as unknown as Service[],
      slices: deps.slices.items() as unknown as EndpointSlice[],
      nodeName: deps.nodeName,
    });
    // Each problem is told once, when it appears.
    const now = new Set(problems.map((p) => `${p.service}|${p.reason}|${p.port}`));
    for (const p of problems) if (!reported.has(`${p.service}|${p.reason}|${p.port}`)) deps.log.warn({ service: p.service, port: p.port, reason: p.reason }, p.message);
    reported = now;
    void deps.servers.reconcile(listeners);
  };
  const schedule = (): void => {
    timer ??= setTimeout(pass, deps.debounceMs ?? 100);
  };
  const unsubscribe = [deps.services.onChange(schedule), deps.slices.onChange(schedule)];
  schedule();
  return () => {
    clearTimeout(timer);
    for (const u of unsubscribe) u();
  };
}
