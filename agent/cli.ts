// The `beacon` command line. Each command is a function of its arguments that writes to the
// given streams and returns an exit code, so tests run it in-process.
import { parseArgs } from 'node:util';
import { plan, type Plan } from '../lbipam/index.js';
import { loadManifests, problemText } from './files.js';
import { renderTable } from './table.js';

export interface IO {
  out: (text: string) => void;
  err: (text: string) => void;
}

const stdio: IO = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

/** Exit codes: 0 done, 1 failed, 2 bad input (usage, unreadable files, YAML syntax). */
export const exit = { ok: 0, failed: 1, badInput: 2 } as const;

const usage = `Usage: beacon <command> [options]

Commands:
  ipam plan -f PATH [-f PATH ...] [-o table|json]
      Dry run of LB-IPAM: read pools and Services from YAML files or folders and print the IPs
      each service would get, and each pool's usage.

Run 'beacon <command> --help' for details.
`;

const planUsage = `Usage: beacon ipam plan -f PATH [-f PATH ...] [-o table|json]

Reads multi-document YAML (LoadBalancerIPPool and v1 Service objects, services possibly with a
status), runs the LB-IPAM reconciler as the operator does, and prints the outcome.

  -f, --filename PATH   file or folder (repeatable); folders are read recursively (*.yaml, *.yml, *.json)
  -o, --output FORMAT   table (default) or json
Exit codes: 0 when the inputs parse (unsatisfied services are results), 2 on unreadable files or
YAML syntax errors. Objects that break their schema are reported and skipped.
`;

function ipamPlan(args: string[], io: IO): number {
  const { values } = parseArgs({
    args,
    options: {
      filename: { type: 'string', short: 'f', multiple: true },
      output: { type: 'string', short: 'o', default: 'table' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    io.out(planUsage);
    return exit.ok;
  }
  const files = values.filename ?? [];
  if (files.length === 0) throw new UsageError('ipam plan needs at least one -f PATH');
  if (values.output !== 'table' && values.output !== 'json') throw new UsageError(`unknown output format "${values.output}" (table or json)`);
  const loaded = loadManifests(files);
  if (loaded.fatal.length > 0) {
    for (const p of loaded.fatal) io.err(`${problemText(p)}\n`);
    return exit.badInput;
  }
  for (const p of loaded.skipped) io.err(`skipped ${problemText(p)}\n`);
  const pools = loaded.objects.flatMap((o) => (o.kind === 'LoadBalancerIPPool' ? [o.object] : []));
  const services = loaded.objects.flatMap((o) => (o.kind === 'Service' ? [o.object] : []));
  const result = plan(
    pools,
    services,
    loaded.skipped.map((p) => ({ file: p.file, line: p.line, ...(p.kind ? { kind: p.kind } : {}), ...(p.name ? { name: p.name } : {}), reason: p.reason })),
  );
  io.out(values.output === 'json' ? `${JSON.stringify(result, null, 2)}\n` : planTable(result));
  return exit.ok;
}

export function planTable(p: Plan): string {
  const services = renderTable(
    ['NAMESPACE', 'NAME', 'IPS', 'SATISFIED', 'REASON', 'MESSAGE'],
    p.services.map((s) => [s.namespace, s.name, s.ips.join(',') || '-', s.satisfied ? 'yes' : 'no', s.reason, s.message]),
  );
  const pools = renderTable(
    ['POOL', 'TOTAL', 'USED', 'AVAILABLE', 'CONFLICTING', 'MESSAGE'],
    p.pools.map((x) => [x.name, x.total, x.used, x.available, x.conflicting ? 'yes' : 'no', x.message]),
  );
  return `${p.services.length > 0 ? services : 'No LoadBalancer services managed by Beacon.\n'}\n${pools}`;
}

class UsageError extends Error {}

export async function main(argv: readonly string[], io: IO = stdio): Promise<number> {
  const [command, sub, ...rest] = argv;
  try {
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      io.out(usage);
      return command === undefined ? exit.badInput : exit.ok;
    }
    if (command === 'ipam' && sub === 'plan') return await Promise.resolve(ipamPlan(rest, io));
    throw new UsageError(`unknown command "${[command, sub].filter(Boolean).join(' ')}"`);
  } catch (e) {
    // parseArgs reports unknown flags with a code; both are the user's to fix, not a crash.
    if (e instanceof UsageError || (e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`beacon: ${(e as Error).message}\n\n${usage}`);
      return exit.badInput;
    }
    throw e;
  }
}
