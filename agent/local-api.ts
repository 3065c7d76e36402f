// The local API: HTTP on a unix socket (mode 0600, so only root on the host reaches it), and
// the small client the CLI uses. JSON shapes here are the documented contract of `beacon status`,
// `beacon services` and `beacon pools`.
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { dirname } from 'node:path';
import type { RouteExplanation } from '../bgp/index.js';
import type { BGPPeerView, BGPRouteView } from './bgp.js';
import type { L2AnnouncementView } from './l2.js';

export interface StatusView {
  node: string;
  store: { backend: string; ok: boolean; message: string };
  roles: { operator: boolean; operatorHolder: string | null; agent: boolean };
  l2: { enabled: true; liveNodes: string[]; announcing: number } | { enabled: false; reason: string };
  /** devices: the interfaces carrying the north-south programs. */
  kpr: { enabled: true; frontends: number; backends: number; devices: string[] } | { enabled: false; reason: string };
  counts: { pools: number; services: number; satisfied: number; unsatisfied: number };
  uptimeSeconds: number;
  version: string;
}

export interface ServiceView {
  namespace: string;
  name: string;
  ips: string[];
  satisfied: boolean;
  reason: string;
  message: string;
  /** Nodes answering ARP/NDP for the service's IPs (absent when L2 announcements are off here). */
  announcers?: string[];
}

export interface PoolView {
  name: string;
  total: string;
  used: string;
  available: string;
  conflicting: boolean;
  disabled: boolean;
  message: string;
}

export interface LocalAPIHandlers {
  status(): StatusView;
  services(): ServiceView[];
  pools(): PoolView[];
  l2Announcements(): L2AnnouncementView[];
  bgpPeers(): BGPPeerView[];
  bgpRoutes(): BGPRouteView[];
  /** Why each service address is or is not advertised to each peer. */
  bgpExplanations(): RouteExplanation[];
}

export const defaultSocket = '/run/beacon/beacon.sock';

export async function serveLocalAPI(socketPath: string, handlers: LocalAPIHandlers): Promise<Server> {
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o700 });
  rmSync(socketPath, { force: true }); // a socket left by a killed process
  const routes: Record<string, () => unknown> = {
    '/v1/status': () => handlers.status(),
    '/v1/services': () => handlers.services(),
    '/v1/pools': () => handlers.pools(),
    '/v1/l2/announcements': () => handlers.l2Announcements(),
    '/v1/bgp/peers': () => handlers.bgpPeers(),
    '/v1/bgp/routes': () => handlers.bgpRoutes(),
    '/v1/bgp/explanations': () => handlers.bgpExplanations(),
  };
  const server = createServer((req, res) => {
    const route = req.method === 'GET' ? routes[req.url ?? ''] : undefined;
    if (!route) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `no route ${req.method ?? ''} ${req.url ?? ''}` }));
      return;
    }
    try {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(route()));
    } catch (e) {
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: (e as Error).message }));
    }
  });
  // Create the socket with no permissions for others from the first moment, then set 0600.
  const mask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
  } finally {
    process.umask(mask);
  }
  chmodSync(socketPath, 0o600);
  return server;
}

export class LocalAPIError extends Error {}

/** GET a path of the local API; a clear error when no Beacon process listens there. */
export function getLocal<T>(socketPath: string, path: string, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        try {
          const parsed = JSON.parse(body) as unknown;
          if (res.statusCode !== 200) reject(new LocalAPIError(`${path}: ${(parsed as { error?: string }).error ?? res.statusCode}`));
          else resolve(parsed as T);
        } catch {
          reject(new LocalAPIError(`${path}: unreadable answer`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new LocalAPIError(`no answer from ${socketPath} within ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e instanceof LocalAPIError) reject(e);
      else if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') reject(new LocalAPIError(`no Beacon process at ${socketPath} (is \`beacon standalone\` running? use --socket PATH)`));
      else if (e.code === 'EACCES') reject(new LocalAPIError(`permission denied on ${socketPath}: the local API is for root only`));
      else reject(new LocalAPIError(`${socketPath}: ${e.message}`));
    });
    req.end();
  });
}
