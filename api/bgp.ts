// BGP control-plane resources: which nodes peer with which routers (BGPClusterConfig), how each
// session behaves (BGPPeerConfig), what is advertised with which attributes (BGPAdvertisement) and
// per-node overrides (BGPNodeConfigOverride). Field names follow Cilium's cilium.io/v2 resources so
// a Cilium configuration moves over by changing apiVersion and kind. The schema checks shapes; the
// community helpers below check the strings a schema cannot (RFC 1997, RFC 8092).
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { apiVersion, Condition, labelSelector, ObjectMeta } from './meta.js';
import type { Parsed } from './ip.js';

export const bgpClusterConfigKind = 'BGPClusterConfig';
export const bgpPeerConfigKind = 'BGPPeerConfig';
export const bgpAdvertisementKind = 'BGPAdvertisement';
export const bgpNodeConfigOverrideKind = 'BGPNodeConfigOverride';

/** Condition set on every BGP object: True when all of it is in use, else why not. */
export const bgpConditionType = 'beacon.io/ConfigValid';

const uint32Max = 4294967295;
// RFC 7607: AS 0 is reserved and never used in a session.
const asn = (description: string) => Type.Integer({ minimum: 1, maximum: uint32Max, description });
const port = (description: string) => Type.Integer({ minimum: 1, maximum: 65535, description });
// Sessions are named "instance/peer": a slash inside either name would make two names collide.
const name = (description: string) => Type.String({ minLength: 1, maxLength: 255, pattern: '^[^/]+$', description: `${description} No "/".` });

const BGPStatus = Type.Object(
  { conditions: Type.Optional(Type.Array(Condition, { description: 'Written by the operator: beacon.io/ConfigValid.' })) },
  { additionalProperties: false },
);

/** A cluster-scoped resource of this API group: one shape for all four kinds. */
const resource = <K extends string, S extends TSchema>(kind: K, spec: S) =>
  Type.Object(
    { apiVersion: Type.Literal(apiVersion), kind: Type.Literal(kind), metadata: ObjectMeta, spec, status: Type.Optional(BGPStatus) },
    { additionalProperties: false },
  );

// --- BGPClusterConfig -------------------------------------------------------------------------

export const PeerConfigReference = Type.Object(
  {
    name: name('Name of a BGPPeerConfig.'),
    group: Type.Optional(Type.String({ description: 'API group of the peer config; cilium.io is accepted too. Default: beacon.io.' })),
    kind: Type.Optional(Type.String({ description: 'Kind of the peer config; CiliumBGPPeerConfig is accepted too. Default: BGPPeerConfig.' })),
  },
  { additionalProperties: false, description: 'Session settings and what is advertised. Absent: default settings, and nothing is advertised.' },
);

export const ClusterConfigPeer = Type.Object(
  {
    name: name('Unique within the instance; with the instance name it names the session ("instance/peer").'),
    peerAddress: Type.String({ description: 'IPv4 or IPv6 address of the router.' }),
    peerASN: asn('AS number of the router; equal to localASN makes the session iBGP.'),
    peerConfigRef: Type.Optional(PeerConfigReference),
  },
  { additionalProperties: false },
);
export type ClusterConfigPeer = Static<typeof ClusterConfigPeer>;

export const ClusterConfigInstance = Type.Object(
  {
    name: name('Unique within the config; a BGPNodeConfigOverride refers to it.'),
    localASN: asn('AS number of the node.'),
    localPort: Type.Optional(port('TCP port to accept sessions on. Absent: the node only connects out.')),
    peers: Type.Optional(Type.Array(ClusterConfigPeer, { description: 'The routers this instance peers with.' })),
  },
  { additionalProperties: false },
);
export type ClusterConfigInstance = Static<typeof ClusterConfigInstance>;

export const BGPClusterConfigSpec = Type.Object(
  {
    nodeSelector: Type.Optional(labelSelector('Nodes this config applies to; absent selects every node.')),
    bgpInstances: Type.Array(ClusterConfigInstance, { minItems: 1, description: 'BGP instances (a local AS and its peers) the selected nodes run.' }),
  },
  { additionalProperties: false, description: 'Which nodes run which BGP instances and peer with which routers.' },
);
export type BGPClusterConfigSpec = Static<typeof BGPClusterConfigSpec>;

export const BGPClusterConfig = resource(bgpClusterConfigKind, BGPClusterConfigSpec);
export type BGPClusterConfig = Static<typeof BGPClusterConfig>;

// --- BGPPeerConfig ----------------------------------------------------------------------------

export const PeerFamily = Type.Object(
  {
    afi: Type.Union([Type.Literal('ipv4'), Type.Literal('ipv6')], { description: 'Address family (RFC 4760).' }),
    safi: Type.Literal('unicast', { description: 'Subsequent address family: unicast only.' }),
    advertisements: Type.Optional(
      labelSelector('BGPAdvertisements (by their labels) whose routes go to the peer in this family; absent selects none, {} selects all.'),
    ),
  },
  { additionalProperties: false },
);
export type PeerFamily = Static<typeof PeerFamily>;

export const BGPPeerConfigSpec = Type.Object(
  {
    transport: Type.Optional(
      Type.Object(
        {
          peerPort: Type.Optional(port('TCP port of the router. Default: 179.')),
          sourceAddress: Type.Optional(
            Type.String({ description: 'Source address of the session, of the peer address\'s family; a node override\'s localAddress wins. Default: the kernel\'s choice.' }),
          ),
        },
        { additionalProperties: false, description: 'TCP connection settings.' },
      ),
    ),
    timers: Type.Optional(
      Type.Object(
        {
          connectRetryTimeSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 2147483647, description: 'Wait between connection attempts, jittered. Default: 120.' })),
          holdTimeSeconds: Type.Optional(
            Type.Integer({ minimum: 0, maximum: 65535, description: '0 (no keepalives) or at least 3 (RFC 4271 4.2); the session uses the lower of both sides\' values. Default: 90.' }),
          ),
          keepAliveTimeSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'At most the hold time. Default: 30, or a third of an explicit hold time.' })),
        },
        { additionalProperties: false, description: 'Session timers (RFC 4271 section 10).' },
      ),
    ),
    authSecretRef: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'TCP MD5 password (RFC 2385), 1-80 bytes. Kubernetes: a Secret in the install namespace with key "password". Standalone: a file holding the password. Unreadable: the session is not started.',
      }),
    ),
    ebgpMultihop: Type.Optional(Type.Integer({ minimum: 1, maximum: 255, description: 'IP TTL of eBGP packets, for routers that are not directly connected. Default: 1.' })),
    gracefulRestart: Type.Optional(
      Type.Object(
        {
          enabled: Type.Boolean({ description: 'Announce graceful restart (RFC 4724): the router keeps Beacon\'s routes while Beacon restarts.' }),
          // RFC 4724 section 3: the Restart Time field is 12 bits.
          restartTimeSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 4095, description: 'How long the router waits for Beacon to come back. Default: 120.' })),
        },
        { additionalProperties: false, description: 'Graceful restart (RFC 4724).' },
      ),
    ),
    families: Type.Optional(
      Type.Array(PeerFamily, { description: 'Address families of the session and what each carries; a family listed twice uses its first entry. Default: IPv4 and IPv6 unicast, advertising nothing.' }),
    ),
  },
  { additionalProperties: false, description: 'How a BGP session behaves and which BGPAdvertisements it carries per family.' },
);
export type BGPPeerConfigSpec = Static<typeof BGPPeerConfigSpec>;

export const BGPPeerConfig = resource(bgpPeerConfigKind, BGPPeerConfigSpec);
export type BGPPeerConfig = Static<typeof BGPPeerConfig>;

// --- BGPAdvertisement -------------------------------------------------------------------------

export const ServiceAddressType = Type.Union([Type.Literal('LoadBalancerIP'), Type.Literal('ExternalIP'), Type.Literal('ClusterIP')], {
  description: 'LoadBalancerIP: status.loadBalancer.ingress[].ip; ExternalIP: spec.externalIPs; ClusterIP: spec.clusterIPs.',
});
export type ServiceAddressType = Static<typeof ServiceAddressType>;

export const Advertisement = Type.Object(
  {
    advertisementType: Type.Literal('Service', { description: 'Only Service; Cilium\'s PodCIDR, CiliumPodIPPool and Interface are not supported.' }),
    service: Type.Optional(
      Type.Object(
        { addresses: Type.Array(ServiceAddressType, { minItems: 1, description: 'Which addresses of a selected service are advertised.' }) },
        { additionalProperties: false, description: 'Required for advertisementType Service: an entry without it is left out.' },
      ),
    ),
    selector: Type.Optional(
      labelSelector(
        'Services to advertise; absent selects none, {} selects all. Services also carry the labels io.kubernetes.service.namespace and io.kubernetes.service.name.',
      ),
    ),
    attributes: Type.Optional(
      Type.Object(
        {
          communities: Type.Optional(
            Type.Object(
              {
                standard: Type.Optional(Type.Array(Type.String(), { description: '"65000:100" (16 bits each) or one 32-bit decimal.' })),
                wellKnown: Type.Optional(Type.Array(Type.String(), { description: 'Names such as no-export, no-advertise, blackhole.' })),
                large: Type.Optional(Type.Array(Type.String(), { description: '"4200000000:1:2" (32 bits each, RFC 8092).' })),
              },
              { additionalProperties: false, description: 'Communities attached to the routes; several entries on one route add up.' },
            ),
          ),
          localPreference: Type.Optional(Type.Integer({ minimum: 0, maximum: uint32Max, description: 'Sent to iBGP peers only (RFC 4271 5.1.5); several entries on one route: the highest.' })),
        },
        { additionalProperties: false, description: 'Path attributes of the advertised routes.' },
      ),
    ),
  },
  { additionalProperties: false },
);
export type Advertisement = Static<typeof Advertisement>;

export const BGPAdvertisementSpec = Type.Object(
  { advertisements: Type.Array(Advertisement, { description: 'Entries; a broken entry is left out whole, the others keep working.' }) },
  { additionalProperties: false, description: 'Which services\' addresses are advertised over BGP, with which attributes. Peer configs select it by its labels.' },
);
export type BGPAdvertisementSpec = Static<typeof BGPAdvertisementSpec>;

export const BGPAdvertisement = resource(bgpAdvertisementKind, BGPAdvertisementSpec);
export type BGPAdvertisement = Static<typeof BGPAdvertisement>;

// --- BGPNodeConfigOverride --------------------------------------------------------------------

export const NodeOverrideInstance = Type.Object(
  {
    name: name('A bgpInstances[].name of the BGPClusterConfig that selects the node.'),
    routerID: Type.Optional(Type.String({ description: 'Non-zero dotted IPv4 router ID (RFC 6286); required on IPv6-only nodes. Default: the node\'s first IPv4 address.' })),
    localPort: Type.Optional(port('Replaces the instance\'s localPort on this node.')),
    localASN: Type.Optional(asn('Replaces the instance\'s localASN on this node.')),
    peers: Type.Optional(
      Type.Array(
        Type.Object(
          { name: name('A peers[].name of the instance.'), localAddress: Type.Optional(Type.String({ description: 'Source address of this session on this node.' })) },
          { additionalProperties: false },
        ),
        { description: 'Per-session settings on this node.' },
      ),
    ),
  },
  { additionalProperties: false },
);
export type NodeOverrideInstance = Static<typeof NodeOverrideInstance>;

export const BGPNodeConfigOverrideSpec = Type.Object(
  { bgpInstances: Type.Array(NodeOverrideInstance, { description: 'Overrides per BGP instance.' }) },
  { additionalProperties: false, description: 'Settings of one node (metadata.name is the node\'s name): router ID, port, local AS, source addresses.' },
);
export type BGPNodeConfigOverrideSpec = Static<typeof BGPNodeConfigOverrideSpec>;

/** metadata.name is the name of the node it applies to. */
export const BGPNodeConfigOverride = resource(bgpNodeConfigOverrideKind, BGPNodeConfigOverrideSpec);
export type BGPNodeConfigOverride = Static<typeof BGPNodeConfigOverride>;

// --- Communities ------------------------------------------------------------------------------

/**
 * Well-known communities by name (RFC 1997, 3765, 7611, 7999, 8326, 8642, draft-ietf-idr-long-lived-gr),
 * the names Cilium accepts plus graceful-shutdown and local-as.
 */
export const wellKnownCommunities: Readonly<Record<string, number>> = Object.freeze({
  internet: 0x00000000,
  'planned-shut': 0xffff0000,
  'graceful-shutdown': 0xffff0000, // RFC 8326 uses the planned-shut value
  'accept-own': 0xffff0001,
  'route-filter-translated-v4': 0xffff0002,
  'route-filter-v4': 0xffff0003,
  'route-filter-translated-v6': 0xffff0004,
  'route-filter-v6': 0xffff0005,
  'llgr-stale': 0xffff0006,
  'no-llgr': 0xffff0007,
  blackhole: 0xffff029a,
  'no-export': 0xffffff01,
  'no-advertise': 0xffffff02,
  'no-export-subconfed': 0xffffff03,
  'local-as': 0xffffff03, // the same value under its older name
  'no-peer': 0xffffff04,
});

const communityText = (value: number): string => `${Math.floor(value / 0x10000)}:${value % 0x10000}`;

/** A decimal without sign, spaces or leading zeros, at most `max`. */
function decimal(part: string, max: number): number | undefined {
  if (!/^(0|[1-9][0-9]{0,9})$/.test(part)) return undefined;
  const n = Number(part);
  return n <= max ? n : undefined;
}

/** RFC 1997 community as "high:low" (16 bits each) or one 32-bit decimal; the result is always "high:low". */
export function checkStandardCommunity(text: string): Parsed<string> {
  if (Object.hasOwn(wellKnownCommunities, text)) {
    return { ok: false, error: `standard community "${text}" is a well-known name: list it under wellKnown` };
  }
  const parts = text.split(':');
  if (parts.length === 1) {
    const v = decimal(text, uint32Max);
    if (v !== undefined) return { ok: true, value: communityText(v) };
  } else if (parts.length === 2) {
    const [hi, lo] = parts.map((p) => decimal(p, 0xffff));
    if (hi !== undefined && lo !== undefined) return { ok: true, value: `${hi}:${lo}` };
  }
  return { ok: false, error: `standard community "${text}" must be two decimals 0-65535 as "65000:100", or one decimal 0-4294967295` };
}

/** A well-known community name; the result is its "65535:x" value. */
export function checkWellKnownCommunity(text: string): Parsed<string> {
  const value = Object.hasOwn(wellKnownCommunities, text) ? wellKnownCommunities[text] : undefined;
  if (value === undefined) {
    return { ok: false, error: `well-known community "${text}" is not one of ${Object.keys(wellKnownCommunities).join(', ')}` };
  }
  return { ok: true, value: communityText(value) };
}

/** RFC 8092 large community: three decimals 0-4294967295 as "global:local1:local2". */
export function checkLargeCommunity(text: string): Parsed<string> {
  const parts = text.split(':');
  const values = parts.map((p) => decimal(p, uint32Max));
  if (parts.length !== 3 || values.some((v) => v === undefined)) {
    return { ok: false, error: `large community "${text}" must be three decimals 0-4294967295 as "4200000000:1:2"` };
  }
  return { ok: true, value: values.join(':') };
}
