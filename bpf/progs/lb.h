/* Beacon's load-balancing maps: the contract between the datapath programs and kpr/layout.ts,
 * which encodes the same structs byte for byte. Addresses are 16 bytes; IPv4 is stored
 * IPv4-mapped (::ffff:a.b.c.d) so one map serves both families. Ports are in network order. */
#ifndef BEACON_LB_H
#define BEACON_LB_H

#include <linux/types.h>

/* A frontend: the address a client dials. scope is reserved for part 2 (0 = every client). */
struct lb_svc_key {
	__u8 addr[16];
	__be16 port;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 scope;
};

enum lb_algorithm { LB_RANDOM = 0, LB_MAGLEV = 1 };

struct lb_svc {
	__u32 id;
	__u16 count; /* selectable backends in slots 1..count; 0 refuses connections */
	__u8 algorithm;
	__u8 type; /* 1 ClusterIP, 2 LoadBalancer, 3 ExternalIP, 4 NodePort: for display only */
	__u32 affinity_timeout; /* seconds of ClientIP affinity, 0 = none */
	__u32 reserved;
};

struct lb_backend {
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 flags; /* LB_BACKEND_*: selection reads the slots, the tc datapath reads LOCAL */
};

/* Terminating is for display; LOCAL marks a backend on this node: external traffic reaches it
 * without source NAT (client address preserved), others are reached with SNAT to the node. */
enum lb_backend_flags { LB_BACKEND_TERMINATING = 1, LB_BACKEND_LOCAL = 2 };

struct lb_slot_key {
	__u32 svc_id;
	__u32 slot; /* 1-based */
};

/* ClientIP affinity for socket LB: the client is its network namespace (its cookie). */
struct lb_affinity_key {
	__u64 client;
	__u32 svc_id;
	__u32 reserved;
};

struct lb_affinity {
	__u32 backend_id;
	__u32 slot; /* validated against the slot map: a backend that left the service is not reused */
	__u64 last_ns;
};

/* Reverse translation for recvmsg/getpeername: socket + backend -> the frontend it dialled. */
struct lb_revnat_key {
	__u64 cookie;
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 reserved[5];
};

struct lb_revnat {
	__u8 addr[16];
	__be16 port;
	__u8 reserved[6];
};

struct lb_config {
	__u32 maglev_size; /* entries of every Maglev table (a prime) */
	__u32 reserved;
};

/* Counters in beacon_stats (per CPU), read by the agent's metrics. */
enum lb_stat {
	STAT_CONNECT_TRANSLATED = 0,
	STAT_SENDMSG_TRANSLATED,
	STAT_REFUSED_NO_BACKEND,
	STAT_BACKEND_MISSING,
	STAT_REVNAT_RESTORED,
	STAT_AFFINITY_HIT,
	STAT_REVNAT_FULL,
	STAT_COUNT,
};

#endif
