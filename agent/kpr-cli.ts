// `beacon kpr services`, `beacon bpf maps|dump|cleanup`: read the datapath straight from its
// pinned maps, so they answer also while the agent is stopped (the datapath keeps running).
import { parseArgs } from 'node:util';
import { decodeEntry, describeServices, type ServiceDescription } from '../kpr/index.js';
import { DEFAULT_BPF_ROOT, SocketDatapath, listMaps } from '../kpr/datapath.js';
import { NodePortDatapath } from '../kpr/nodeport-datapath.js';
import { decodeNodeportEntry } from '../kpr/nodeport-layout.js';
import { renderTable } from './table.js';

interface IO {
  out(text: string): void;
  err(text: string): void;
}

const mapTypeNames: Record<number, string> = { 1: 'hash', 2: 'array', 6: 'percpu_array', 9: 'lru_hash', 13: 'hash_of_maps' };

function open(bpfRoot: string): SocketDatapath {
  const datapath = SocketDatapath.openPinned(bpfRoot);
  if (!datapath) throw new KprCliError(`no datapath is pinned under ${bpfRoot} (is the agent running with --kube-proxy-replacement, and is --bpf-root the same?)`);
  return datapath;
}

/** A failure the user can act on: printed as one line, exit code 1. */
export class KprCliError extends Error {}

function options(args: string[], extra: { output: readonly string[] }) {
  const { values, positionals } = parseArgs({
    args,
    options: { output: { type: 'string', short: 'o', default: extra.output[0] }, 'bpf-root': { type: 'string', default: DEFAULT_BPF_ROOT } },
    allowPositionals: true,
    strict: true,
  });
  const output = values.output ?? 'table';
  if (!extra.output.includes(output)) throw new KprCliError(`-o ${output}: one of ${extra.output.join(', ')}`);
  return { output, bpfRoot: values['bpf-root'], positionals };
}

const backendText = (s: ServiceDescription): string =>
  s.backends.map((b) => `${b.address.includes(':') ? `[${b.address}]` : b.address}:${b.port}${b.state === 'active' ? '' : ` (${b.state})`}`).join(', ') || '- (refused: no ready backend)';

export function kprServices(args: string[], io: IO): number {
  const { output, bpfRoot } = options(args, { output: ['table', 'json'] });
  const datapath = open(bpfRoot);
  try {
    const services = describeServices(datapath.read());
    if (output === 'json') io.out(`${JSON.stringify(services, null, 2)}\n`);
    else io.out(renderTable(['FRONTEND', 'TYPE', 'ALGORITHM', 'BACKENDS'], services.map((s) => [s.frontend, s.type, s.algorithm, backendText(s)])));
  } finally {
    datapath.close();
  }
  return 0;
}

export function bpfCommand(sub: string | undefined, args: string[], io: IO): number {
  if (sub === 'cleanup') {
    const { bpfRoot } = options(args, { output: ['table'] });
    const devices = NodePortDatapath.detachAll(bpfRoot);
    SocketDatapath.remove(bpfRoot);
    io.out(`removed the datapath pinned under ${bpfRoot} (hooks detached${devices.length > 0 ? `, tc programs taken off ${devices.length} device(s)` : ''}, maps unpinned)\n`);
    return 0;
  }
  if (sub === 'maps') {
    const { output, bpfRoot } = options(args, { output: ['table', 'json'] });
    const datapath = open(bpfRoot);
    const nodeport = NodePortDatapath.pinnedMaps(bpfRoot);
    try {
      const maps = [...datapath.mapList(), ...listMaps(nodeport)].map((m) => ({ name: m.name, type: mapTypeNames[m.type] ?? String(m.type), entries: m.entries, maxEntries: m.maxEntries }));
      if (output === 'json') io.out(`${JSON.stringify(maps, null, 2)}\n`);
      else io.out(renderTable(['NAME', 'TYPE', 'ENTRIES', 'MAX ENTRIES'], maps.map((m) => [m.name, m.type, String(m.entries), String(m.maxEntries)])));
    } finally {
      datapath.close();
      for (const m of nodeport) m.close();
    }
    return 0;
  }
  if (sub === 'dump') {
    const { output, bpfRoot, positionals } = options(args, { output: ['table', 'json'] });
    const name = positionals[0];
    if (name === undefined) throw new KprCliError('beacon bpf dump MAP: name a map (see beacon bpf maps)');
    const datapath = open(bpfRoot);
    const nodeport = NodePortDatapath.pinnedMaps(bpfRoot);
    try {
      const map = datapath.map(name) ?? nodeport.find((m) => m.info.name === name);
      if (!map) throw new KprCliError(`no map named ${name} under ${bpfRoot} (see beacon bpf maps)`);
      const entries = [...map.entries()].map(([k, v]) => decodeNodeportEntry(name, k, v) ?? decodeEntry(name, k, v));
      if (output === 'json') io.out(`${JSON.stringify(entries, null, 2)}\n`);
      else io.out(renderTable(['KEY', 'VALUE'], entries.map((e) => [JSON.stringify(e.key), JSON.stringify(e.value)])));
    } finally {
      datapath.close();
      for (const m of nodeport) m.close();
    }
    return 0;
  }
  throw new KprCliError(`unknown command "bpf ${sub ?? ''}": maps, dump MAP or cleanup`);
}
