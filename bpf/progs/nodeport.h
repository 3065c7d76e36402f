/* The north-south datapath's own maps (nodeport.c): the contract with kpr/nodeport-layout.ts,
 * which encodes the same structs byte for byte. Addresses are 16 bytes, IPv4 IPv4-mapped, ports
 * in network order, as in lb.h. */
#ifndef BEACON_NODEPORT_H
#define BEACON_NODEPORT_H

#include <linux/types.h>

/* beacon_devices: ifindex -> the node's addresses on that external device, written by the
 * agent. A remote backend is reached with source NAT to the address of the packet's family. */
struct np_device {
	__u8 addr4[4];  /* IPv4 address in network order; 0.0.0.0 = none (IPv4 traffic is not SNATed) */
	__u8 addr6[16]; /* IPv6 address; :: = none */
};

/* beacon_ct key: a packet's tuple as it arrives at the hook that looks it up. */
struct np_ct_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;       /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 reserved[3];
};

enum np_ct_flags {
	NP_CT_REPLY = 1,       /* a reply entry (backend -> client); else the client's forward entry */
	NP_CT_SNAT = 2,        /* the flow is source-NATed to the node (remote backend) */
	NP_CT_ESTABLISHED = 4, /* TCP: a segment without SYN was seen in this direction */
	NP_CT_CLOSING = 8,     /* TCP: FIN or RST was seen in this direction */
};

/* beacon_ct value: the tuple the packet leaves with, i.e. the whole translation, so one lookup
 * and one rewrite serve every direction. */
struct np_ct {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u32 backend_id;     /* the chosen backend; a forward entry is re-checked against beacon_backends */
	__u64 last_seen_ns;   /* bpf_ktime_get_ns() of the last packet; expiry: np_ct_lifetime() */
	__u8 flags;           /* NP_CT_* */
	__u8 reserved[7];
};

/* beacon_np_aff key: ClientIP affinity of external clients, by client address. */
struct np_affinity_key {
	__u8 client[16];
	__u32 svc_id;
	__u32 reserved;
};

/* Lifetimes after the last packet, in seconds (Cilium's defaults: CT_LIFETIME_TCP,
 * CT_SYN_TIMEOUT, CT_CLOSE_TIMEOUT, CT_LIFETIME_NONTCP). */
enum np_ct_lifetime {
	NP_CT_LIFETIME_TCP_ESTABLISHED = 21600,
	NP_CT_LIFETIME_TCP_SYN = 60,
	NP_CT_LIFETIME_TCP_CLOSING = 10,
	NP_CT_LIFETIME_OTHER = 60,
};

/* Source ports for SNAT: above Linux's default ip_local_port_range (32768-60999), so the node's
 * own connections do not take them; NP_NAT_PROBES tries per new flow. */
enum np_nat { NP_NAT_PORT_MIN = 61000, NP_NAT_PORT_MAX = 65535, NP_NAT_PROBES = 32 };

/* Counters in beacon_np_stats (per CPU). */
enum np_stat {
	NP_STAT_NEW_LOCAL = 0,     /* new flow to a backend on this node (DNAT) */
	NP_STAT_NEW_REMOTE,        /* new flow to a backend on another node (DNAT + SNAT) */
	NP_STAT_ESTABLISHED,       /* forward packet of a tracked flow */
	NP_STAT_REPLY,             /* reply translated back (ingress after SNAT, or egress) */
	NP_STAT_REJECT,            /* no backend: TCP RST or ICMP port unreachable sent back */
	NP_STAT_BACKEND_GONE,      /* a tracked flow's backend was removed: chosen anew */
	NP_STAT_BACKEND_MISSING,   /* a slot names a backend that is not in beacon_backends */
	NP_STAT_CT_FULL,           /* a conntrack write failed: refused (reply entry) or untracked (forward) */
	NP_STAT_NAT_EXHAUSTED,     /* no free SNAT port after NP_NAT_PROBES tries: rejected */
	NP_STAT_NO_NODE_ADDR,      /* remote backend but no node address on the device: rejected */
	NP_STAT_AFFINITY_HIT,      /* ClientIP affinity reused the client's backend */
	NP_STAT_REWRITE_FAILED,    /* a checksum or store helper failed mid-rewrite: dropped */
	NP_STAT_UNSUPPORTED,       /* no reject possible (IPv4 options to quote in ICMP): dropped */
	NP_STAT_ICMP_ERROR,        /* an ICMP error about a tracked flow translated */
	NP_STAT_COUNT,
};

#endif
