// The programs a lab site runs inside its namespaces:
//   serve NAME PORT...   an HTTP server per port that answers every request with NAME (a "pod")
//   probe JSON           a client that sends requests to URLs at a fixed pace and prints one JSON
//                        line with every outcome (time, URL, backend or error) when done
// Each request opens a new connection (Connection: close), so each one is balanced anew.
import { request, createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ProbePlan {
  readonly urls: readonly string[];
  /** Pause between rounds (one request per URL each round). */
  readonly intervalMs: number;
  /** Per request: a request not answered within this counts as failed. */
  readonly timeoutMs: number;
  /** Stop after this long... */
  readonly durationMs: number;
  /** ...or after this many rounds, whichever comes first. */
  readonly maxRounds: number;
}

export interface ProbeOutcome {
  readonly url: string;
  /** Wall-clock time (ms since the epoch) the request was sent: comparable with the lab's clock. */
  readonly at: number;
  /** The backend that answered; absent when the request failed. */
  readonly backend?: string;
  readonly error?: string;
}

function get(url: string, timeoutMs: number): Promise<{ backend?: string; error?: string }> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(res.statusCode === 200 ? { backend: body.trim() } : { error: `HTTP ${res.statusCode}` }));
      res.on('error', (e) => resolve({ error: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    req.end();
  });
}

export async function probe(plan: ProbePlan): Promise<ProbeOutcome[]> {
  const out: ProbeOutcome[] = [];
  const end = Date.now() + plan.durationMs;
  for (let round = 0; round < plan.maxRounds && Date.now() < end; round++) {
    const results = await Promise.all(
      plan.urls.map(async (url) => {
        const at = Date.now();
        return { url, at, ...(await get(url, plan.timeoutMs)) };
      }),
    );
    out.push(...results);
    await sleep(plan.intervalMs);
  }
  return out;
}

function serve(name: string, ports: number[]): void {
  for (const port of ports) {
    createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
      res.end(`${name}\n`);
    }).listen(port, '::', () => console.log(`${name} listening on ${port}`));
  }
}

if (process.argv[1]?.replace(/\.ts$/, '.js').endsWith('site-child.js')) {
  const [mode, ...args] = process.argv.slice(2);
  if (mode === 'serve') serve(args[0]!, args.slice(1).map(Number));
  else if (mode === 'probe') process.stdout.write(`${JSON.stringify(await probe(JSON.parse(args[0]!) as ProbePlan))}\n`);
  else {
    console.error('usage: site-child serve NAME PORT... | probe JSON');
    process.exit(2);
  }
}
