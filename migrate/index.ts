// `beacon migrate`: MetalLB and Cilium resources into Beacon resources, as pure data. Every object
// written out passes Beacon's schema; everything that could not be carried over is listed with
// the object, the field and the reason, and no input object is dropped without a line.
import { apiVersion, parseBlock, validate } from '../api/index.js';
import { ciliumKinds, convertCilium } from './cilium.js';
import { convertMetalLB, metallbKinds } from './metallb.js';
import { beaconSchemas, isRecord, MigrationBuilder, originOf, record, type BeaconObject, type Converted, type Migration, type Source } from './model.js';

export { parseSources, type BeaconObject, type Converted, type Migration, type NotCarried, type ParsedSources, type Source } from './model.js';
export { advertisementLabel } from './metallb.js';

/** Kinds recognised but not converted, with why. */
const notConverted: Readonly<Record<string, string>> = {
  CiliumBGPPeeringPolicy: 'Cilium\'s legacy BGP API has no Beacon equivalent; move it to CiliumBGPClusterConfig, CiliumBGPPeerConfig and CiliumBGPAdvertisement first, or write Beacon\'s BGP resources',
  BFDProfile: 'Beacon has no BFD; failures are detected by the BGP hold timer',
  Service: 'Services are not converted: Beacon reads their metallb.io/ and lbipam.cilium.io/ annotations as they are (a loadBalancerClass io.cilium/... must become beacon.io/...)',
  ConfigMap: 'MetalLB\'s ConfigMap configuration is not read: convert it to MetalLB resources first',
};

export function migrate(sources: readonly Source[]): Migration {
  const out = new MigrationBuilder();
  const metallb: Source[] = [];
  for (const src of sources) {
    const from = originOf(src);
    const version = record(src.value).apiVersion;
    const cilium = ciliumKinds[from.kind];
    const metallbVersions = metallbKinds[from.kind];
    if (!isRecord(src.value)) out.note(from, '(document)', 'not a Kubernetes object; it is left out');
    else if (cilium?.versions.includes(version as string)) convertCilium(src, out);
    else if (metallbVersions?.includes(version as string)) metallb.push(src);
    else if (version === apiVersion && Object.hasOwn(beaconSchemas, from.kind)) out.emit(from, src.value as BeaconObject);
    else if (cilium ?? metallbVersions) out.note(from, 'apiVersion', `${String(version)} is not read; write it as ${(cilium?.versions ?? metallbVersions ?? []).join(' or ')}`);
    else out.note(from, 'kind', notConverted[from.kind] ?? `${String(version)} ${from.kind} is not a MetalLB or Cilium resource that migrate converts; it is left out`);
  }
  convertMetalLB(metallb, out);
  return checked(out, sources);
}

const fileOrder = (sources: readonly Source[]) => {
  const files = [...new Set(sources.map((s) => s.file))];
  return (a: Converted['from'], b: Converted['from']) => files.indexOf(a.file) - files.indexOf(b.file) || a.line - b.line;
};

/**
 * The last gate: every object passes its schema and its semantic checks, and no kind/name is
 * written twice; what fails is reported and left out. Output follows the input's order.
 */
function checked(out: MigrationBuilder, sources: readonly Source[]): Migration {
  const result = new MigrationBuilder();
  result.notCarried.push(...out.notCarried);
  const seen = new Map<string, Converted>();
  for (const c of out.objects) {
    const { kind, metadata } = c.object;
    const valid = validate(beaconSchemas[kind], c.object);
    const problems = valid.ok ? semanticProblems(c.object) : valid.errors;
    const key = `${kind}/${String(record(metadata).name)}`;
    const earlier = seen.get(key);
    if (problems.length > 0) {
      for (const p of problems) {
        const at = p.indexOf(': ');
        result.note(c.from, at < 0 ? '(object)' : p.slice(0, at), `${at < 0 ? p : p.slice(at + 2)}; the ${kind} made from it is left out`);
      }
    } else if (earlier) {
      result.note(c.from, 'metadata.name', `a ${kind} named ${metadata.name} was already made from ${earlier.from.file}:${earlier.from.line}; this one is left out (rename it)`);
    } else {
      seen.set(key, c);
      result.emit(c.from, c.object);
    }
  }
  const order = fileOrder(sources);
  result.objects.sort((a, b) => order(a.from, b.from));
  result.notCarried.sort(order);
  return result;
}

/** What a schema cannot say: blocks must parse (Beacon would refuse the whole pool otherwise). */
function semanticProblems(object: BeaconObject): string[] {
  if (object.kind !== 'LoadBalancerIPPool') return [];
  return object.spec.blocks.flatMap((b, i) => {
    const parsed = parseBlock(b, true);
    return parsed.ok ? [] : [`spec.blocks[${i}]: ${parsed.error}`];
  });
}
