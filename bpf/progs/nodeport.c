// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/* North-south load balancing: tc programs on the node's external devices. A packet from outside
 * to a frontend (LoadBalancer IP, ExternalIP, NodePort) is DNATed to a backend chosen as the
 * socket hooks choose (lb_select.h); the kernel then routes it (ip_forward on). A backend on
 * this node sees the client's address; one on another node is also SNATed to this node's address
 * on the device (beacon_devices), so its replies come back here to be translated. Conntrack
 * (beacon_ct) keeps a flow on its backend and holds the reverse translation. Map layout:
 * nodeport.h; shared service tables: lb_maps.h.
 *
 *   ingress: client -> frontend              => client|node:natport -> backend  (forward entry)
 *            backend -> node:natport         => frontend -> client              (reply entry, SNAT)
 *   egress:  local backend -> client         => frontend -> client              (reply entry, local)
 */
#include <linux/bpf.h>
#include <linux/errno.h>
#include <linux/if_ether.h>
#include <linux/icmpv6.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "lb.h"
#include "lb_maps.h"
#include "lb_select.h"
#include "nodeport.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct np_device);
	__uint(max_entries, 256);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} beacon_devices SEC(".maps");

/* Forward and reply entries in one LRU map: under pressure the least recently used flows go
 * first, and a write never fails for want of room. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct np_ct_key);
	__type(value, struct np_ct);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} beacon_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct np_affinity_key);
	__type(value, struct lb_affinity);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} beacon_np_aff SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, NP_STAT_COUNT);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} beacon_np_stats SEC(".maps");

#define NS_PER_S 1000000000ull
#define AF_INET 2
#define AF_INET6 10
/* <linux/icmp.h> pulls in libc headers; the ICMP header is 8 bytes (RFC 792). */
#define ICMP_DEST_UNREACH 3
#define ICMP_PORT_UNREACH 3
#define ICMP_TIME_EXCEEDED 11
struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 unused;
};
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10
#define IP4_OFF(field) (ETH_HLEN + __builtin_offsetof(struct iphdr, field))
#define IP6_OFF(field) (ETH_HLEN + __builtin_offsetof(struct ipv6hdr, field))

static __always_inline void count(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&beacon_np_stats, &stat);
	if (n)
		*n += 1;
}

/* A parsed TCP or UDP packet: its tuple and where its layer-4 header is. */
struct packet {
	struct np_ct_key key;
	__u32 l4_off;
	__u8 v6;
	__u8 tcp_flags;
};

enum { PARSED_TCP_UDP = 0, PARSED_ICMP = 1 };

/* Ethernet, then IPv4 (unfragmented: a fragment has no ports, or the later ones have none) or
 * IPv6 without extension headers, then TCP or UDP (PARSED_TCP_UDP, ports filled in) or ICMP /
 * ICMPv6 (PARSED_ICMP). Anything else is not ours (-1). */
static __always_inline int parse(struct __sk_buff *skb, struct packet *p)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	__builtin_memset(p, 0, sizeof(*p));
	if ((void *)(eth + 1) > end)
		return -1;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->ihl < 5 || (ip->frag_off & bpf_htons(0x3fff)))
			return -1;
		p->key.proto = ip->protocol;
		lb_mapped4(p->key.saddr, ip->saddr);
		lb_mapped4(p->key.daddr, ip->daddr);
		p->l4_off = ETH_HLEN + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return -1;
		p->key.proto = ip6->nexthdr;
		__builtin_memcpy(p->key.saddr, &ip6->saddr, 16);
		__builtin_memcpy(p->key.daddr, &ip6->daddr, 16);
		p->l4_off = ETH_HLEN + sizeof(struct ipv6hdr);
		p->v6 = 1;
	} else {
		return -1;
	}
	if (p->key.proto == (p->v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP))
		return PARSED_ICMP;
	if (p->key.proto != IPPROTO_TCP && p->key.proto != IPPROTO_UDP)
		return -1;
	/* TCP and UDP both start with the two ports; TCP's flags are byte 13. */
	__u8 l4[14];
	if (bpf_skb_load_bytes(skb, p->l4_off, l4, p->key.proto == IPPROTO_TCP ? 14 : 4))
		return -1;
	__builtin_memcpy(&p->key.sport, &l4[0], 2);
	__builtin_memcpy(&p->key.dport, &l4[2], 2);
	if (p->key.proto == IPPROTO_TCP)
		p->tcp_flags = l4[13];
	return PARSED_TCP_UDP;
}

/* A deterministic hash of the tuple (MurmurHash3's mixing): every node picks the same Maglev
 * entry for a flow, so ECMP may send its packets to any of them. */
static __always_inline __u32 flow_hash(const struct np_ct_key *k)
{
	const __u32 *w = (const __u32 *)k;
	__u32 h = 0;
#pragma unroll
	for (int i = 0; i < sizeof(*k) / 4; i++) {
		__u32 x = w[i] * 0xcc9e2d51;
		x = ((x << 15) | (x >> 17)) * 0x1b873593;
		h ^= x;
		h = ((h << 13) | (h >> 19)) * 5 + 0xe6546b64;
	}
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	return h ^ (h >> 16);
}

static __always_inline int same_addr(const __u8 *a, const __u8 *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

static __always_inline int is_mapped4(const __u8 *a)
{
	const __u32 *x = (const __u32 *)a;
	return x[0] == 0 && x[1] == 0 && x[2] == bpf_htonl(0xffff);
}

static __always_inline __u64 ct_lifetime_ns(const struct np_ct *ct, __u8 proto)
{
	if (proto != IPPROTO_TCP)
		return NP_CT_LIFETIME_OTHER * NS_PER_S;
	if (ct->flags & NP_CT_CLOSING)
		return NP_CT_LIFETIME_TCP_CLOSING * NS_PER_S;
	if (ct->flags & NP_CT_ESTABLISHED)
		return NP_CT_LIFETIME_TCP_ESTABLISHED * NS_PER_S;
	return NP_CT_LIFETIME_TCP_SYN * NS_PER_S;
}

static __always_inline int ct_expired(const struct np_ct *ct, __u8 proto, __u64 now)
{
	return now - ct->last_seen_ns > ct_lifetime_ns(ct, proto);
}

/* TCP state per direction, from this packet's flags: FIN/RST close, a segment without SYN
 * means the handshake is done (the client's ACK, or the server's first ACK after SYN-ACK). */
static __always_inline __u8 ct_flags_after(__u8 flags, const struct packet *p)
{
	if (p->key.proto != IPPROTO_TCP)
		return flags;
	if (p->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
		return flags | NP_CT_CLOSING;
	if (!(p->tcp_flags & TCP_FLAG_SYN))
		return flags | NP_CT_ESTABLISHED;
	return flags;
}

static __always_inline void ct_touch(struct np_ct *ct, const struct packet *p, __u64 now)
{
	ct->last_seen_ns = now;
	__u8 flags = ct_flags_after(ct->flags, p);
	if (flags != ct->flags)
		ct->flags = flags;
}

static __always_inline __u32 l4_csum_off(const struct packet *p)
{
	return p->l4_off + (p->key.proto == IPPROTO_TCP ? __builtin_offsetof(struct tcphdr, check) : 6);
}

/* An IPv4 UDP checksum of 0 means "none" (RFC 768) and must stay 0; a computed 0 is sent as
 * 0xffff. IPv6 UDP always has one (RFC 8200 section 8.1). */
static __always_inline __u64 mangled0(const struct packet *p)
{
	return !p->v6 && p->key.proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/* Replaces an address at `off`. `ip_csum`: the IPv4 header checksum that covers it. `l4_csum`
 * (0: none): an L4 or ICMP checksum to keep right, with BPF_F_PSEUDO_HDR in `l4_flags` when
 * the address is in that checksum's pseudo header rather than in its data. */
static __always_inline int set_addr(struct __sk_buff *skb, int v6, __u32 off, const __u8 *old, const __u8 *new, __u32 ip_csum, __u32 l4_csum,
				    __u64 l4_flags)
{
	if (same_addr(old, new))
		return 0;
	if (!v6) {
		__u32 from = lb_unmapped4(old), to = lb_unmapped4(new);
		if ((l4_csum && bpf_l4_csum_replace(skb, l4_csum, from, to, l4_flags | sizeof(to))) ||
		    bpf_l3_csum_replace(skb, ip_csum, from, to, sizeof(to)))
			return -1;
		return bpf_skb_store_bytes(skb, off, &to, sizeof(to), 0);
	}
	__s64 diff = bpf_csum_diff((__be32 *)old, 16, (__be32 *)new, 16, 0);
	if (diff < 0 || bpf_l4_csum_replace(skb, l4_csum, 0, diff, l4_flags))
		return -1;
	return bpf_skb_store_bytes(skb, off, new, 16, 0);
}

static __always_inline int set_port(struct __sk_buff *skb, __u32 off, __be16 old, __be16 new, __u32 l4_csum, __u64 l4_flags)
{
	if (old == new)
		return 0;
	if (bpf_l4_csum_replace(skb, l4_csum, old, new, l4_flags | sizeof(new)))
		return -1;
	return bpf_skb_store_bytes(skb, off, &new, sizeof(new), 0);
}

/* Gives the packet the tuple `to` (a conntrack value). */
static __always_inline int rewrite(struct __sk_buff *skb, const struct packet *p, const struct np_ct *to)
{
	__u32 saddr = p->v6 ? IP6_OFF(saddr) : IP4_OFF(saddr), daddr = p->v6 ? IP6_OFF(daddr) : IP4_OFF(daddr);
	__u32 csum = l4_csum_off(p);
	__u64 flags = mangled0(p);
	if (set_addr(skb, p->v6, saddr, p->key.saddr, to->saddr, IP4_OFF(check), csum, BPF_F_PSEUDO_HDR | flags) ||
	    set_addr(skb, p->v6, daddr, p->key.daddr, to->daddr, IP4_OFF(check), csum, BPF_F_PSEUDO_HDR | flags) ||
	    set_port(skb, p->l4_off, p->key.sport, to->sport, csum, flags) || set_port(skb, p->l4_off + 2, p->key.dport, to->dport, csum, flags)) {
		count(NP_STAT_REWRITE_FAILED);
		return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}

/* Sends a translated packet that leaves the node straight out of the device the FIB names, as
 * ip_forward would (TTL decremented, MACs from the neighbour table). A source-NATed packet must
 * not go up the input path: the kernel drops a packet whose source is one of its own addresses
 * (a martian, unless accept_local), and rp_filter a reply whose source is a frontend. Without a
 * route, or with the TTL spent, the stack takes it (and answers as it would). */
static __noinline int forward_by_fib(struct __sk_buff *skb, const struct packet *p)
{
	struct bpf_fib_lookup fib = { .l4_protocol = p->key.proto, .ifindex = skb->ifindex };
	struct bpf_redir_neigh nh = {};
	__u32 ttl_off = p->v6 ? IP6_OFF(hop_limit) : IP4_OFF(ttl);
	__u8 ttl;
	/* the addresses and ports as translated, read back from the packet */
	if (bpf_skb_load_bytes(skb, ttl_off, &ttl, 1) || ttl <= 1 || bpf_skb_load_bytes(skb, p->l4_off, &fib.sport, 4))
		return TC_ACT_OK;
	if (p->v6) {
		fib.family = AF_INET6;
		if (bpf_skb_load_bytes(skb, IP6_OFF(saddr), fib.ipv6_src, 16) || bpf_skb_load_bytes(skb, IP6_OFF(daddr), fib.ipv6_dst, 16))
			return TC_ACT_OK;
	} else {
		fib.family = AF_INET;
		if (bpf_skb_load_bytes(skb, IP4_OFF(saddr), &fib.ipv4_src, 4) || bpf_skb_load_bytes(skb, IP4_OFF(daddr), &fib.ipv4_dst, 4))
			return TC_ACT_OK;
	}
	long found = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (found != BPF_FIB_LKUP_RET_SUCCESS && found != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TC_ACT_OK;
	__u8 next = ttl - 1;
	/* IPv4's checksum covers the TTL as the high byte of the TTL/protocol word */
	if ((!p->v6 && bpf_l3_csum_replace(skb, IP4_OFF(check), bpf_htons(ttl << 8), bpf_htons(next << 8), 2)) ||
	    bpf_skb_store_bytes(skb, ttl_off, &next, 1, 0)) {
		count(NP_STAT_REWRITE_FAILED);
		return TC_ACT_SHOT;
	}
	if (found == BPF_FIB_LKUP_RET_NO_NEIGH) {
		/* fib.ipv*_dst now holds the next hop: the kernel resolves its MAC */
		nh.nh_family = fib.family;
		__builtin_memcpy(nh.ipv6_nh, fib.ipv6_dst, 16); /* ipv4_nh shares the first word */
		return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
	}
	__u8 macs[12];
	__builtin_memcpy(macs, fib.dmac, 6);
	__builtin_memcpy(macs + 6, fib.smac, 6);
	if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0)) {
		count(NP_STAT_REWRITE_FAILED);
		return TC_ACT_SHOT;
	}
	return bpf_redirect(fib.ifindex, 0);
}

static __always_inline __u16 csum_fold(__s64 sum)
{
	__u32 s = (__u32)sum;
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

static __always_inline __u16 csum_of(void *buf, __u32 size)
{
	return csum_fold(bpf_csum_diff(0, 0, buf, size, 0));
}

struct pseudo4 {
	__be32 saddr, daddr;
	__u8 zero, proto;
	__be16 len;
};

struct pseudo6 {
	struct in6_addr saddr, daddr;
	__be32 len;
	__u8 zero[3], next;
};

/* Writes the reply's IP header (source and destination swapped, fresh TTL, no options) and
 * sizes the packet to it plus `payload` bytes. Returns the payload's offset, or -1. */
static __always_inline int reply_ip(struct __sk_buff *skb, const struct packet *p, __u8 proto, __u16 payload)
{
	if (!p->v6) {
		struct iphdr ip = { .version = 4, .ihl = 5, .ttl = 64, .protocol = proto, .frag_off = bpf_htons(0x4000) /* DF */ };
		ip.tot_len = bpf_htons(sizeof(ip) + payload);
		ip.saddr = lb_unmapped4(p->key.daddr);
		ip.daddr = lb_unmapped4(p->key.saddr);
		ip.check = csum_of(&ip, sizeof(ip));
		if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(ip) + payload, 0) || bpf_skb_store_bytes(skb, ETH_HLEN, &ip, sizeof(ip), 0))
			return -1;
		return ETH_HLEN + sizeof(ip);
	}
	struct ipv6hdr ip6 = { .version = 6, .nexthdr = proto, .hop_limit = 64 };
	ip6.payload_len = bpf_htons(payload);
	__builtin_memcpy(&ip6.saddr, p->key.daddr, 16);
	__builtin_memcpy(&ip6.daddr, p->key.saddr, 16);
	if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(ip6) + payload, 0) || bpf_skb_store_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6), 0))
		return -1;
	return ETH_HLEN + sizeof(ip6);
}

/* Fills, at `buf`, the pseudo header a reply's upper-layer checksum covers (RFC 9293 section
 * 3.1: 12 bytes; RFC 8200 section 8.1: 40 bytes) for a message of `len` bytes. */
static __always_inline void fill_pseudo(void *buf, const struct packet *p, __u8 proto, __u16 len)
{
	if (!p->v6) {
		struct pseudo4 *ph = buf;
		ph->saddr = lb_unmapped4(p->key.daddr);
		ph->daddr = lb_unmapped4(p->key.saddr);
		ph->zero = 0;
		ph->proto = proto;
		ph->len = bpf_htons(len);
		return;
	}
	struct pseudo6 *ph = buf;
	__builtin_memcpy(&ph->saddr, p->key.daddr, 16);
	__builtin_memcpy(&ph->daddr, p->key.saddr, 16);
	ph->len = bpf_htonl(len);
	ph->zero[0] = ph->zero[1] = ph->zero[2] = 0;
	ph->next = proto;
}

/* A TCP segment to a port with nobody behind it is answered with RST (RFC 9293, a segment
 * arriving in the CLOSED state): the client's connect() fails at once with ECONNREFUSED. */
static __always_inline int reset_tcp(struct __sk_buff *skb, const struct packet *p)
{
	struct tcphdr in;
	__u16 ip_payload;
	if (p->tcp_flags & TCP_FLAG_RST)
		return -1; /* never answer a RST */
	if (bpf_skb_load_bytes(skb, p->l4_off, &in, sizeof(in)))
		return -1;
	if (p->v6) {
		if (bpf_skb_load_bytes(skb, IP6_OFF(payload_len), &ip_payload, 2))
			return -1;
		ip_payload = bpf_ntohs(ip_payload);
	} else {
		__u16 tot_len;
		if (bpf_skb_load_bytes(skb, IP4_OFF(tot_len), &tot_len, 2))
			return -1;
		ip_payload = bpf_ntohs(tot_len) - (p->l4_off - ETH_HLEN);
	}
	/* seg.len counts the data, SYN and FIN */
	__u32 seg_len = ip_payload - in.doff * 4 + in.syn + in.fin;

	struct {
		struct pseudo6 pseudo; /* IPv4 uses the last 12 bytes */
		struct tcphdr tcp;
	} m = {};
	m.tcp.source = in.dest;
	m.tcp.dest = in.source;
	m.tcp.doff = 5;
	m.tcp.rst = 1;
	if (in.ack) {
		m.tcp.seq = in.ack_seq;
	} else {
		m.tcp.ack = 1;
		m.tcp.ack_seq = bpf_htonl(bpf_ntohl(in.seq) + seg_len);
	}
	void *pseudo = p->v6 ? (void *)&m.pseudo : (void *)&m.pseudo + sizeof(m.pseudo) - sizeof(struct pseudo4);
	fill_pseudo(pseudo, p, IPPROTO_TCP, sizeof(m.tcp));
	m.tcp.check = p->v6 ? csum_of(&m, sizeof(m)) : csum_of(pseudo, sizeof(struct pseudo4) + sizeof(m.tcp));
	int off = reply_ip(skb, p, IPPROTO_TCP, sizeof(m.tcp));
	if (off < 0 || bpf_skb_store_bytes(skb, off, &m.tcp, sizeof(m.tcp), 0))
		return -1;
	return 0;
}

/* A UDP datagram to a port nobody serves is answered with ICMP port unreachable (RFC 1122
 * section 4.1.3.1; ICMPv6 type 1 code 4, RFC 4443 section 3.1), the only signal UDP has: the
 * client's next recv() fails with ECONNREFUSED. The error quotes the IP header and the first 8
 * bytes (the UDP header), enough for the client to find its socket. */
static __always_inline int unreachable_udp(struct __sk_buff *skb, const struct packet *p)
{
	struct {
		struct pseudo6 pseudo;
		struct icmp6hdr icmp;
		struct ipv6hdr ip;
		__u8 l4[8];
	} m6 = {};
	if (p->v6) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &m6.ip, sizeof(m6.ip) + sizeof(m6.l4)))
			return -1;
		m6.icmp.icmp6_type = ICMPV6_DEST_UNREACH;
		m6.icmp.icmp6_code = ICMPV6_PORT_UNREACH;
		__u16 len = sizeof(m6) - sizeof(m6.pseudo);
		fill_pseudo(&m6.pseudo, p, IPPROTO_ICMPV6, len);
		m6.icmp.icmp6_cksum = csum_of(&m6, sizeof(m6));
		int off = reply_ip(skb, p, IPPROTO_ICMPV6, len);
		if (off < 0 || bpf_skb_store_bytes(skb, off, &m6.icmp, len, 0))
			return -1;
		return 0;
	}
	struct {
		struct icmphdr icmp;
		struct iphdr ip;
		__u8 l4[8];
	} m4 = {};
	if (p->l4_off != ETH_HLEN + sizeof(struct iphdr)) {
		count(NP_STAT_UNSUPPORTED); /* quoting IPv4 options is not done */
		return -1;
	}
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &m4.ip, sizeof(m4.ip) + sizeof(m4.l4)))
		return -1;
	m4.icmp.type = ICMP_DEST_UNREACH;
	m4.icmp.code = ICMP_PORT_UNREACH;
	m4.icmp.checksum = csum_of(&m4, sizeof(m4));
	int off = reply_ip(skb, p, IPPROTO_ICMP, sizeof(m4));
	if (off < 0 || bpf_skb_store_bytes(skb, off, &m4, sizeof(m4), 0))
		return -1;
	return 0;
}

/* No backend: answer the client from the frontend, back out of the device it came in on (MACs
 * swapped), rather than drop, so it fails at once instead of retrying into a timeout. */
static __noinline int reject(struct __sk_buff *skb, const struct packet *p)
{
	__u8 mac[12], swapped[12];

	count(NP_STAT_REJECT);
	if ((p->key.proto == IPPROTO_TCP ? reset_tcp(skb, p) : unreachable_udp(skb, p)) || bpf_skb_load_bytes(skb, 0, mac, sizeof(mac)))
		return TC_ACT_SHOT;
	__builtin_memcpy(swapped, mac + 6, 6);
	__builtin_memcpy(swapped + 6, mac, 6);
	if (bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0))
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

/* Answers of the translation steps that the program's entry point completes, once their stack
 * frames are gone (a BPF program has 512 bytes of stack for all its frames together):
 * refuse the client (reject), or send the translated packet on by the FIB (forward_by_fib). */
#define VERDICT_REJECT -1
#define VERDICT_FORWARD -2

/* Translates a packet of a flow; one that is source-NATed then leaves by the FIB, others go up
 * the stack (to a local backend, or out as the node's own traffic). */
static __always_inline int translate(struct __sk_buff *skb, const struct packet *p, const struct np_ct *to)
{
	int verdict = rewrite(skb, p, to);
	return verdict == TC_ACT_OK && (to->flags & NP_CT_SNAT) ? VERDICT_FORWARD : verdict;
}

/* The verdict of a translation step, completed. */
static __always_inline int complete(struct __sk_buff *skb, const struct packet *p, int verdict)
{
	if (verdict == VERDICT_REJECT)
		return reject(skb, p);
	if (verdict == VERDICT_FORWARD)
		return forward_by_fib(skb, p);
	return verdict;
}

/* The reply key of a forward SNAT entry: backend -> node:natport. */
static __always_inline void snat_reply_key(struct np_ct_key *rkey, const struct np_ct *fwd, __u8 proto)
{
	__builtin_memcpy(rkey->saddr, fwd->daddr, 16);
	__builtin_memcpy(rkey->daddr, fwd->saddr, 16);
	rkey->sport = fwd->dport;
	rkey->dport = fwd->sport;
	rkey->proto = proto;
	rkey->reserved[0] = rkey->reserved[1] = rkey->reserved[2] = 0;
}

/* Claims a source port for the reply entry `rkey` (node address and backend filled in): the
 * first of NP_NAT_PROBES ports, from a start the flow hashes to, whose reply entry is absent or
 * expired, so (node address, port, backend, proto) names one flow. 0, -EBUSY when every probe
 * is taken, or the map's error. */
static __always_inline long claim_nat_port(struct np_ct_key *rkey, const struct np_ct *rev, __u32 start, __u64 now)
{
	for (__u32 i = 0; i < NP_NAT_PROBES; i++) {
		rkey->dport = bpf_htons(NP_NAT_PORT_MIN + (start + i) % (NP_NAT_PORT_MAX - NP_NAT_PORT_MIN + 1));
		long err = bpf_map_update_elem(&beacon_ct, rkey, rev, BPF_NOEXIST);
		if (err != -EEXIST)
			return err;
		struct np_ct *held = bpf_map_lookup_elem(&beacon_ct, rkey);
		if (held && ct_expired(held, rkey->proto, now))
			return bpf_map_update_elem(&beacon_ct, rkey, rev, BPF_ANY);
	}
	return -EBUSY;
}

/* The node's address of the packet's family on the device it arrived on (beacon_devices), as
 * the source of a source-NATed flow; -1 when the agent gave none. */
static __always_inline int node_address(struct __sk_buff *skb, int v6, __u8 addr[16])
{
	__u32 ifindex = skb->ifindex;
	struct np_device *dev = bpf_map_lookup_elem(&beacon_devices, &ifindex);
	if (!dev)
		return -1;
	if (!v6) {
		__u32 a4;
		__builtin_memcpy(&a4, dev->addr4, 4);
		lb_mapped4(addr, a4);
		return a4 ? 0 : -1;
	}
	__builtin_memcpy(addr, dev->addr6, 16);
	const __u32 *w = (const __u32 *)addr;
	return w[0] | w[1] | w[2] | w[3] ? 0 : -1;
}

/* A new flow: choose a backend, write the reply entry first (a reply can only come after the
 * forward packet), then the forward entry, and translate. */
static __noinline int new_flow(struct __sk_buff *skb, struct packet *p, const struct lb_svc *svc, __u64 now)
{
	if (!svc->count)
		return VERDICT_REJECT;

	struct np_affinity_key akey = { .svc_id = svc->id };
	__builtin_memcpy(akey.client, p->key.saddr, 16);
	int affinity_hit = 0;
	__u32 id = lb_select(svc, &beacon_np_aff, &akey, flow_hash(&p->key), 0, &affinity_hit);
	if (affinity_hit)
		count(NP_STAT_AFFINITY_HIT);
	struct lb_backend *be = id ? bpf_map_lookup_elem(&beacon_backends, &id) : 0;
	if (!be || is_mapped4(be->addr) == p->v6) {
		count(NP_STAT_BACKEND_MISSING);
		return VERDICT_REJECT;
	}

	/* forward: client -> backend (source kept or NATed); reply: frontend -> client */
	struct np_ct fwd = { .sport = p->key.sport, .dport = be->port, .backend_id = id, .last_seen_ns = now };
	__builtin_memcpy(fwd.saddr, p->key.saddr, 16);
	__builtin_memcpy(fwd.daddr, be->addr, 16);
	fwd.flags = ct_flags_after(0, p);
	struct np_ct rev = { .sport = p->key.dport, .dport = p->key.sport, .backend_id = id, .last_seen_ns = now, .flags = NP_CT_REPLY };
	__builtin_memcpy(rev.saddr, p->key.daddr, 16);
	__builtin_memcpy(rev.daddr, p->key.saddr, 16);
	struct np_ct_key rkey = { .sport = be->port, .dport = p->key.sport, .proto = p->key.proto };
	__builtin_memcpy(rkey.saddr, be->addr, 16);
	long err;

	if (be->flags & LB_BACKEND_LOCAL) {
		__builtin_memcpy(rkey.daddr, p->key.saddr, 16);
		err = bpf_map_update_elem(&beacon_ct, &rkey, &rev, BPF_ANY);
	} else {
		if (node_address(skb, p->v6, fwd.saddr)) {
			count(NP_STAT_NO_NODE_ADDR);
			return VERDICT_REJECT;
		}
		fwd.flags |= NP_CT_SNAT;
		rev.flags |= NP_CT_SNAT;
		__builtin_memcpy(rkey.daddr, fwd.saddr, 16);
		err = claim_nat_port(&rkey, &rev, flow_hash(&p->key), now);
		if (err == -EBUSY) {
			count(NP_STAT_NAT_EXHAUSTED);
			return VERDICT_REJECT;
		}
		fwd.sport = rkey.dport;
	}
	if (err) {
		count(NP_STAT_CT_FULL); /* replies could not be translated: refuse now, not half-open */
		return VERDICT_REJECT;
	}
	if (bpf_map_update_elem(&beacon_ct, &p->key, &fwd, BPF_ANY))
		count(NP_STAT_CT_FULL); /* the next packet chooses again */
	count(be->flags & LB_BACKEND_LOCAL ? NP_STAT_NEW_LOCAL : NP_STAT_NEW_REMOTE);
	return translate(skb, p, &fwd);
}

/* A packet to a frontend: a tracked flow keeps its backend while that backend still exists (the
 * same id with the same address); otherwise, or after expiry, or on a new SYN after the old
 * connection closed, the flow is chosen anew. */
static __always_inline int forward(struct __sk_buff *skb, struct packet *p, const struct lb_svc *svc)
{
	__u64 now = bpf_ktime_get_ns();
	struct np_ct *ct = bpf_map_lookup_elem(&beacon_ct, &p->key);
	if (!ct || (ct->flags & NP_CT_REPLY))
		return new_flow(skb, p, svc, now);

	int reopened = (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN && (ct->flags & NP_CT_CLOSING);
	if (!reopened && !ct_expired(ct, p->key.proto, now)) {
		__u32 id = ct->backend_id;
		struct lb_backend *be = bpf_map_lookup_elem(&beacon_backends, &id);
		if (be && be->port == ct->dport && same_addr(be->addr, ct->daddr)) {
			ct_touch(ct, p, now);
			if (ct->flags & NP_CT_SNAT) {
				/* keep the reply entry, and so the NAT port, alive while the client talks */
				struct np_ct_key rkey;
				snat_reply_key(&rkey, ct, p->key.proto);
				struct np_ct *rev = bpf_map_lookup_elem(&beacon_ct, &rkey);
				if (rev)
					rev->last_seen_ns = now;
			}
			count(NP_STAT_ESTABLISHED);
			return translate(skb, p, ct);
		}
		count(NP_STAT_BACKEND_GONE);
	}
	if (ct->flags & NP_CT_SNAT) {
		/* give the old NAT port back, unless another flow has taken it since it expired */
		struct np_ct_key rkey;
		snat_reply_key(&rkey, ct, p->key.proto);
		struct np_ct *rev = bpf_map_lookup_elem(&beacon_ct, &rkey);
		if (rev && rev->dport == p->key.sport && same_addr(rev->daddr, p->key.saddr))
			bpf_map_delete_elem(&beacon_ct, &rkey);
	}
	return new_flow(skb, p, svc, now);
}

static __always_inline int translate_reply(struct __sk_buff *skb, struct packet *p, struct np_ct *ct)
{
	ct_touch(ct, p, bpf_ktime_get_ns());
	count(NP_STAT_REPLY);
	return translate(skb, p, ct);
}

static __always_inline int in_nat_range(__be16 port)
{
	return bpf_ntohs(port) >= NP_NAT_PORT_MIN;
}

/* An ICMP error about a translated flow is translated as the packet it quotes would be in the
 * other direction, so the client sees an error about its own packet to the frontend (port
 * unreachable from a backend) and a backend one about its own reply (PMTU discovery: frag
 * needed, RFC 1191; packet too big, RFC 8201). The quoted packet, reversed, is the tuple of a
 * conntrack entry E: the quote becomes E's translation reversed, the error goes to E's
 * destination, and an error the quoted destination sent itself comes from E's source. The
 * quoted L4 checksum is left alone (ICMPv4 may quote only 8 bytes; receivers do not check it).
 * `egress`: only local-backend reply entries apply, as for egress TCP/UDP. */
static __noinline int translate_icmp_error(struct __sk_buff *skb, const struct packet *outer, int egress)
{
	__u8 type;
	if (bpf_skb_load_bytes(skb, outer->l4_off, &type, 1))
		return TC_ACT_OK;
	/* destination unreachable, time exceeded; ICMPv6 also packet too big */
	if (outer->v6 ? type < ICMPV6_DEST_UNREACH || type > ICMPV6_TIME_EXCEED : type != ICMP_DEST_UNREACH && type != ICMP_TIME_EXCEEDED)
		return TC_ACT_OK;

	__u32 inner_off = outer->l4_off + 8, inner_l4, inner_saddr, inner_daddr;
	struct np_ct_key k = {};
	if (outer->v6) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, inner_off, &ip6, sizeof(ip6)))
			return TC_ACT_OK;
		k.proto = ip6.nexthdr;
		__builtin_memcpy(k.saddr, &ip6.daddr, 16); /* reversed: the reply direction */
		__builtin_memcpy(k.daddr, &ip6.saddr, 16);
		inner_l4 = inner_off + sizeof(ip6);
		inner_saddr = inner_off + __builtin_offsetof(struct ipv6hdr, saddr);
		inner_daddr = inner_off + __builtin_offsetof(struct ipv6hdr, daddr);
	} else {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, inner_off, &ip, sizeof(ip)) || ip.ihl < 5)
			return TC_ACT_OK;
		k.proto = ip.protocol;
		lb_mapped4(k.saddr, ip.daddr);
		lb_mapped4(k.daddr, ip.saddr);
		inner_l4 = inner_off + ip.ihl * 4;
		inner_saddr = inner_off + __builtin_offsetof(struct iphdr, saddr);
		inner_daddr = inner_off + __builtin_offsetof(struct iphdr, daddr);
	}
	__be16 ports[2];
	if ((k.proto != IPPROTO_TCP && k.proto != IPPROTO_UDP) || bpf_skb_load_bytes(skb, inner_l4, ports, sizeof(ports)))
		return TC_ACT_OK;
	k.sport = ports[1];
	k.dport = ports[0];
	struct np_ct *e = bpf_map_lookup_elem(&beacon_ct, &k);
	if (!e || (egress && (e->flags & (NP_CT_REPLY | NP_CT_SNAT)) != NP_CT_REPLY))
		return TC_ACT_OK;
	struct np_ct to = *e;

	__u32 icmp_csum = outer->l4_off + 2;
	__u32 inner_check = inner_off + __builtin_offsetof(struct iphdr, check);
	/* The quoted IPv4 header's own checksum absorbs its address changes, so the ICMP checksum
	 * sees no change there; ICMPv6 covers the quoted addresses as data and the outer ones in
	 * its pseudo header. ICMPv4 has no pseudo header. */
	__u32 inner_addr_csum = outer->v6 ? icmp_csum : 0;
	__u32 outer_addr_csum = outer->v6 ? icmp_csum : 0;
	__u32 saddr = outer->v6 ? IP6_OFF(saddr) : IP4_OFF(saddr), daddr = outer->v6 ? IP6_OFF(daddr) : IP4_OFF(daddr);
	const __u8 *outer_src = same_addr(outer->key.saddr, k.saddr) ? to.saddr : outer->key.saddr;
	if (set_addr(skb, outer->v6, inner_saddr, k.daddr, to.daddr, inner_check, inner_addr_csum, 0) ||
	    set_addr(skb, outer->v6, inner_daddr, k.saddr, to.saddr, inner_check, inner_addr_csum, 0) ||
	    set_port(skb, inner_l4, k.dport, to.dport, icmp_csum, 0) || set_port(skb, inner_l4 + 2, k.sport, to.sport, icmp_csum, 0) ||
	    set_addr(skb, outer->v6, daddr, outer->key.daddr, to.daddr, IP4_OFF(check), outer_addr_csum, BPF_F_PSEUDO_HDR) ||
	    set_addr(skb, outer->v6, saddr, outer->key.saddr, outer_src, IP4_OFF(check), outer_addr_csum, BPF_F_PSEUDO_HDR)) {
		count(NP_STAT_REWRITE_FAILED);
		return TC_ACT_SHOT;
	}
	count(NP_STAT_ICMP_ERROR);
	/* to or from a source-NATed flow: on by the FIB, as the flow's own packets */
	return !egress && (to.flags & NP_CT_SNAT) ? forward_by_fib(skb, outer) : TC_ACT_OK;
}

/* Ingress of an external device. A packet that is neither to a frontend nor a reply to a NAT
 * port costs one lookup and passes untouched. */
SEC("tc")
int beacon_np_ingress(struct __sk_buff *skb)
{
	struct packet p;
	int parsed = parse(skb, &p);
	if (parsed == PARSED_ICMP)
		return translate_icmp_error(skb, &p, 0);
	if (parsed != PARSED_TCP_UDP)
		return TC_ACT_OK;
	if (in_nat_range(p.key.dport)) {
		struct np_ct *ct = bpf_map_lookup_elem(&beacon_ct, &p.key);
		if (ct && (ct->flags & NP_CT_REPLY))
			return complete(skb, &p, translate_reply(skb, &p, ct));
	}
	struct lb_svc_key skey = { .port = p.key.dport, .proto = p.key.proto };
	__builtin_memcpy(skey.addr, p.key.daddr, 16);
	struct lb_svc *svc = bpf_map_lookup_elem(&beacon_svc, &skey);
	if (!svc)
		return TC_ACT_OK;
	return complete(skb, &p, forward(skb, &p, svc));
}

/* Egress of an external device: replies of backends on this node leave with the frontend as
 * their source. One lookup for every other packet. */
SEC("tc")
int beacon_np_egress(struct __sk_buff *skb)
{
	struct packet p;
	int parsed = parse(skb, &p);
	if (parsed == PARSED_ICMP)
		return translate_icmp_error(skb, &p, 1);
	if (parsed != PARSED_TCP_UDP)
		return TC_ACT_OK;
	struct np_ct *ct = bpf_map_lookup_elem(&beacon_ct, &p.key);
	if (!ct || (ct->flags & (NP_CT_REPLY | NP_CT_SNAT)) != NP_CT_REPLY)
		return TC_ACT_OK;
	return translate_reply(skb, &p, ct);
}
