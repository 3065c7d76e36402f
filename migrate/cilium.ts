// Cilium (cilium.io) resources into Beacon's. Beacon keeps Cilium's field names, so the work is a
// new apiVersion and kind, plus taking out (and reporting) what Beacon does not do.
import type { TSchema } from '@sinclair/typebox';
import { apiVersion } from '../api/index.js';
import { beaconMeta, beaconSchemas, isRecord, list, originOf, record, type BeaconObject, type MigrationBuilder, type Obj, type Origin, type Source } from './model.js';

const ciliumVersions = ['cilium.io/v2alpha1', 'cilium.io/v2'];

/** Cilium kind → Beacon kind and the apiVersions read. */
export const ciliumKinds: Readonly<Record<string, { kind: BeaconObject['kind']; versions: readonly string[] }>> = {
  CiliumLoadBalancerIPPool: { kind: 'LoadBalancerIPPool', versions: ciliumVersions },
  CiliumL2AnnouncementPolicy: { kind: 'L2AnnouncementPolicy', versions: ciliumVersions },
  CiliumBGPClusterConfig: { kind: 'BGPClusterConfig', versions: ciliumVersions },
  CiliumBGPPeerConfig: { kind: 'BGPPeerConfig', versions: ciliumVersions },
  CiliumBGPAdvertisement: { kind: 'BGPAdvertisement', versions: ciliumVersions },
  CiliumBGPNodeConfigOverride: { kind: 'BGPNodeConfigOverride', versions: ciliumVersions },
};

/** Why a Cilium field Beacon's schema lacks is not carried over, where there is more to say than "no equivalent". */
const removedFieldReasons: Readonly<Record<string, string>> = {
  autoDiscovery: 'Beacon has no peer auto-discovery; give peerAddress',
  aggregationLengthIPv4: 'Beacon advertises exact /32 routes only; no aggregate is sent',
  aggregationLengthIPv6: 'Beacon advertises exact /128 routes only; no aggregate is sent',
  localPort: 'the kernel picks the source port of outgoing sessions; a listening port is bgpInstances[].localPort',
};

/**
 * Removes, and reports, every field the schema does not have. `null` means "unset" in
 * Kubernetes objects and is dropped quietly.
 */
function pruneToSchema(schema: TSchema, value: unknown, path: string, removed: (path: string, field: string) => void): void {
  if (Array.isArray(value) && schema.items) {
    for (const [i, v] of value.entries()) pruneToSchema(schema.items as TSchema, v, `${path}[${i}]`, removed);
    return;
  }
  if (!isRecord(value) || !isRecord(schema.properties)) return;
  for (const key of Object.keys(value)) {
    const sub = (schema.properties as Record<string, TSchema>)[key];
    if (value[key] === null) delete value[key];
    else if (sub !== undefined) pruneToSchema(sub, value[key], `${path}.${key}`, removed);
    else if (schema.additionalProperties === false) {
      removed(path, key);
      delete value[key];
    }
  }
}

/** Entries Beacon cannot serve, taken out after pruning so that reported indexes are the source's. */
function dropUnsupportedEntries(kind: string, spec: Obj, note: (field: string, reason: string) => void): void {
  switch (kind) {
    case 'CiliumBGPClusterConfig':
      for (const [i, inst] of list(spec.bgpInstances).map(record).entries()) {
        inst.peers = list(inst.peers).filter((p, j) => {
          const peer = record(p);
          const ref = record(peer.peerConfigRef);
          if (ref.group === 'cilium.io') delete ref.group;
          if (ref.kind === 'CiliumBGPPeerConfig') delete ref.kind;
          if (typeof peer.peerAddress === 'string') return true;
          note(`spec.bgpInstances[${i}].peers[${j}]`, 'Beacon needs peerAddress (no auto-discovery); the peer is left out');
          return false;
        });
      }
      break;
    case 'CiliumBGPPeerConfig':
      if (spec.families !== undefined) {
        spec.families = list(spec.families).filter((f, i) => {
          const { afi, safi } = record(f);
          if ((afi === 'ipv4' || afi === 'ipv6') && safi === 'unicast') return true;
          note(`spec.families[${i}]`, `Beacon carries IPv4 and IPv6 unicast only, not ${String(afi)}/${String(safi)}; the family is left out`);
          return false;
        });
      }
      break;
    case 'CiliumBGPAdvertisement':
      spec.advertisements = list(spec.advertisements).filter((a, i) => {
        const type = record(a).advertisementType;
        if (type === 'Service') return true;
        note(`spec.advertisements[${i}].advertisementType`, `Beacon advertises service addresses only, not ${String(type)} (it assigns no pod addresses); the entry is left out`);
        return false;
      });
      break;
  }
}

export function convertCilium(src: Source, out: MigrationBuilder): void {
  const from: Origin = originOf(src);
  const target = ciliumKinds[from.kind]!;
  const note = (field: string, reason: string) => out.note(from, field, reason);
  const spec = structuredClone(record(record(src.value).spec));
  // v2alpha1 pools before Cilium 1.15 called their blocks `cidrs`.
  if (from.kind === 'CiliumLoadBalancerIPPool' && spec.blocks === undefined && spec.cidrs !== undefined) {
    spec.blocks = spec.cidrs;
    delete spec.cidrs;
  }
  const specSchema = (beaconSchemas[target.kind].properties as Record<string, TSchema>).spec!;
  pruneToSchema(specSchema, spec, 'spec', (path, field) => note(`${path}.${field}`, removedFieldReasons[field] ?? 'Beacon has no equivalent'));
  dropUnsupportedEntries(from.kind, spec, note);
  out.emit(from, { apiVersion, kind: target.kind, metadata: beaconMeta(src.value), spec } as BeaconObject);
}
