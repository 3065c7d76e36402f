// Test fixture for the libbpf binding: one map of each kind the datapath uses, a cgroup
// connect4 program that rewrites destination ports, and a tc program with observable verdicts.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

enum { COUNT_TC_PACKETS, COUNT_TC_DROPS, COUNT_REWRITES, COUNT_MAX };

// Destination port (host order) -> the port connect() is sent to instead. Pinned by name so a
// second load with the same pin root adopts it.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u16);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} port_rewrite SEC(".maps");

// Socket cookie -> original destination port of each rewritten connect().
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u16);
} rewritten SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, COUNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

// Index 0: the UDP destination port (host order) the tc program drops; 0 drops nothing.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} drop_port SEC(".maps");

struct verdict_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
};

// UDP destination port -> an inner array whose entry 0 is the tc verdict for that port.
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 64);
	__type(key, __u32);
	__array(values, struct verdict_inner);
} verdicts SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&counters, &which);
	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("cgroup/connect4")
int rewrite_connect4(struct bpf_sock_addr *ctx)
{
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u16 *to = bpf_map_lookup_elem(&port_rewrite, &port);
	if (!to)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	bpf_map_update_elem(&rewritten, &cookie, &port, BPF_ANY);
	ctx->user_port = bpf_htons(*to);
	count(COUNT_REWRITES);
	return 1;
}

SEC("tc")
int classify(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct udphdr *udp = data + sizeof(*eth) + sizeof(*ip);

	count(COUNT_TC_PACKETS);
	if ((void *)(udp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return TC_ACT_OK;
	__u32 port = bpf_ntohs(udp->dest), zero = 0;
	__u32 *drop = bpf_map_lookup_elem(&drop_port, &zero);
	if (drop && *drop != 0 && *drop == port) {
		count(COUNT_TC_DROPS);
		return TC_ACT_SHOT;
	}
	void *inner = bpf_map_lookup_elem(&verdicts, &port);
	if (inner) {
		__u32 *verdict = bpf_map_lookup_elem(inner, &zero);
		if (verdict)
			return *verdict;
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
