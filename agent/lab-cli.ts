// `beacon lab`: the whole story on one machine. Builds a site in network namespaces (lab/site.ts),
// runs the scenario (lab/scenario.ts), prints what happened, and takes it all down again — or,
// with --keep, leaves it running for a look around until `beacon lab down`.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { Site, removeKeptRuns, renderReport, runScenario, type LabReport } from '../lab/index.js';

interface IO {
  out(text: string): void;
  err(text: string): void;
}

export const labUsage = `Usage: beacon lab [-o text|json] [--keep] [-f PATH ...]
       beacon lab down [RUNID ...]

Builds a site in network namespaces — a router running BIRD, three nodes running beacon on a
shared etcd, a pod behind each node, a client on the LAN and one behind the router — applies the
manifests (default: examples/lab), and reports: the IPs each service got and why, who answers
ARP/NDP, the routes the router learned, requests through every LoadBalancer IP and their spread,
the failover when the announcing node dies, and failed requests while an agent restarts.
Needs root. Everything is removed on exit or Ctrl-C.

  -o, --output FORMAT   text (default) or json (one object on stdout; progress on stderr)
  --keep                leave the site running and print how to enter it
  -f, --filename PATH   manifests to apply instead of examples/lab (repeatable)
  down [RUNID ...]      remove kept sites (all of them without RUNID)
`;

/** The project folder: where package.json is, above this module (agent/ or dist/agent/). */
function projectRoot(): string {
  let dir = dirname(new URL(import.meta.url).pathname);
  for (let i = 0; i < 4 && !existsSync(join(dir, 'package.json')); i++) dir = dirname(dir);
  return dir;
}

/** What the lab needs besides root: the daemons it runs. */
const tools = [
  ['/usr/bin/etcd', 'etcd'],
  ['/usr/sbin/bird', 'bird2'],
  ['/usr/sbin/birdc', 'bird2'],
] as const;

export async function labCommand(args: string[], io: IO): Promise<number> {
  if (args[0] === 'down') return labDown(args.slice(1), io);
  const { values } = parseArgs({
    args,
    options: { output: { type: 'string', short: 'o', default: 'text' }, keep: { type: 'boolean' }, filename: { type: 'string', short: 'f', multiple: true }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help) {
    io.out(labUsage);
    return 0;
  }
  if (values.output !== 'text' && values.output !== 'json') {
    io.err(`beacon lab: -o ${values.output}: one of text, json\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    io.err('beacon lab: needs root — it creates network namespaces, mounts bpffs and loads eBPF programs (try: sudo bin/beacon.js lab)\n');
    return 1;
  }
  const missing = tools.filter(([path]) => !existsSync(path));
  if (missing.length > 0) {
    io.err(`beacon lab: missing ${missing.map(([p]) => p).join(', ')} (Debian packages: ${[...new Set(missing.map(([, pkg]) => pkg))].join(' ')}; scripts/setup.sh installs them)\n`);
    return 1;
  }
  const root = projectRoot();
  const site = await Site.build({
    beaconBin: join(root, 'bin', 'beacon.js'),
    manifests: values.filename ?? [join(root, 'examples', 'lab')],
    progress: (line) => io.err(`lab: ${line}\n`),
  }).catch((e: unknown) => {
    io.err(`beacon lab: the site did not come up: ${(e as Error).message}\n`);
    return undefined;
  });
  if (site === undefined) return 1;
  let report: LabReport;
  try {
    report = await runScenario(site);
  } catch (e) {
    io.err(`beacon lab: ${(e as Error).message}\nlogs: ${site.dir}\n`);
    await site.destroy(true);
    return 1;
  }
  io.out(values.output === 'json' ? `${JSON.stringify(report, null, 2)}\n` : renderReport(report));
  if (values.keep) {
    site.lab.keep();
    io.err(keptHelp(site, report));
  } else {
    await site.destroy();
  }
  return 0;
}

function keptHelp(site: Site, report: LabReport): string {
  const ns = (host: string) => `${site.lab.runId}-${host}`;
  const first = site.nodes[0]!;
  const ip = (l2: boolean) => report.services.find((s) => (s.announcer !== null) === l2)?.ips[0];
  const url = (ip: string | undefined) => (ip === undefined ? '' : ip.includes(':') ? `http://[${ip}]/` : `http://${ip}/`);
  return [
    '',
    `The site stays up (run ${site.lab.runId}; logs in ${site.dir}). Look around:`,
    `  ip netns exec ${ns('lan-client')} curl -s ${url(ip(true))}     # an L2 service from the LAN`,
    `  ip netns exec ${ns('wan-client')} curl -s ${url(ip(false))}    # a BGP service from behind the router`,
    `  bin/beacon.js services --socket ${first.socket}          # also: status, l2 announcements, bgp peers`,
    `  bin/beacon.js kpr services --bpf-root ${first.bpfRoot}`,
    `  ip netns exec ${ns('router')} birdc -s ${join(site.dir, 'bird.ctl')} show route`,
    `  ip netns exec ${ns('node-1')} bash                         # a shell on node-1 (also: router, etcd, lan-client, wan-client, pod-N)`,
    `Remove it: bin/beacon.js lab down ${site.lab.runId}`,
    '',
  ].join('\n');
}

function labDown(runIds: string[], io: IO): number {
  if (process.getuid?.() !== 0) {
    io.err('beacon lab down: needs root (it deletes network namespaces and unmounts)\n');
    return 1;
  }
  const removed = removeKeptRuns(runIds.length > 0 ? { runIds } : {});
  for (const r of removed) {
    const failed = r.namespaces.filter((n) => !n.deleted);
    io.out(`${r.runId}: removed ${r.namespaces.length - failed.length} namespaces${failed.length > 0 ? `; could not remove ${failed.map((n) => n.namespace).join(', ')}` : ''}\n`);
  }
  const unknown = runIds.filter((id) => !removed.some((r) => r.runId === id));
  for (const id of unknown) io.err(`beacon lab down: no kept site ${id}\n`);
  if (removed.length === 0 && runIds.length === 0) io.out('no kept site\n');
  return unknown.length > 0 ? 1 : 0;
}
