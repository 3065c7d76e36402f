// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/* Socket-level load balancing (east-west): cgroup v2 hooks translate a connect()/sendmsg() to a
 * service frontend into one to a chosen backend, before any packet exists, so there is no
 * per-packet NAT and no conntrack. recvmsg/getpeername translate back, so the application only
 * ever sees the frontend. Map layout: lb.h. */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/errno.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lb.h"
#include "lb_maps.h"
#include "lb_select.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The service tables (beacon_svc, beacon_backends, beacon_slots, beacon_maglev, beacon_config)
 * and backend selection are shared with the tc datapath: lb_maps.h, lb_select.h. The maps below
 * are the socket hooks' own; sizes are defaults the agent sets before load. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_affinity_key);
	__type(value, struct lb_affinity);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} beacon_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_revnat_key);
	__type(value, struct lb_revnat);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} beacon_revnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, STAT_COUNT);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} beacon_stats SEC(".maps");

static __always_inline void count(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&beacon_stats, &stat);
	if (n)
		*n += 1;
}

/* ClientIP affinity for a socket: the client is its network namespace (its cookie). */
static __always_inline __u32 select_backend(void *ctx, const struct lb_svc *svc, __u64 cookie, int per_socket)
{
	struct lb_affinity_key akey = { .svc_id = svc->id };
	if (svc->affinity_timeout)
		akey.client = bpf_get_netns_cookie(ctx);
	int affinity_hit = 0;
	__u32 id = lb_select(svc, &beacon_affinity, &akey, lb_mix64(cookie), per_socket, &affinity_hit);
	if (affinity_hit)
		count(STAT_AFFINITY_HIT);
	return id;
}

static __always_inline void read6(__u8 addr[16], const struct bpf_sock_addr *ctx)
{
	__u32 w[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
	__builtin_memcpy(addr, w, 16);
}

static __always_inline void write6(struct bpf_sock_addr *ctx, const __u8 addr[16])
{
	__u32 w[4];
	__builtin_memcpy(w, addr, 16);
	ctx->user_ip6[0] = w[0];
	ctx->user_ip6[1] = w[1];
	ctx->user_ip6[2] = w[2];
	ctx->user_ip6[3] = w[3];
}

/* Forward translation shared by connect and sendmsg, both families. Returns 1 to let the call
 * proceed (translated or not a frontend) and 0 to refuse it with ECONNREFUSED. */
static __always_inline int translate(struct bpf_sock_addr *ctx, int v6, int is_sendmsg)
{
	struct lb_svc_key key = {};
	if (v6)
		read6(key.addr, ctx);
	else
		lb_mapped4(key.addr, ctx->user_ip4);
	key.port = (__be16)ctx->user_port;
	key.proto = ctx->protocol;

	struct lb_svc *svc = bpf_map_lookup_elem(&beacon_svc, &key);
	if (!svc)
		return 1;
	if (!svc->count) {
		count(STAT_REFUSED_NO_BACKEND);
		bpf_set_retval(-ECONNREFUSED);
		return 0;
	}
	__u64 cookie = bpf_get_socket_cookie(ctx);
	__u32 id = select_backend(ctx, svc, cookie, is_sendmsg);
	struct lb_backend *be = id ? bpf_map_lookup_elem(&beacon_backends, &id) : 0;
	if (!be) {
		count(STAT_BACKEND_MISSING);
		bpf_set_retval(-ECONNREFUSED);
		return 0;
	}

	struct lb_revnat_key rkey = { .cookie = cookie, .port = be->port, .proto = key.proto };
	__builtin_memcpy(rkey.addr, be->addr, 16);
	struct lb_revnat front = { .port = key.port };
	__builtin_memcpy(front.addr, key.addr, 16);
	if (bpf_map_update_elem(&beacon_revnat, &rkey, &front, BPF_ANY))
		count(STAT_REVNAT_FULL);

	if (v6)
		write6(ctx, be->addr);
	else
		ctx->user_ip4 = lb_unmapped4(be->addr);
	ctx->user_port = be->port;
	count(is_sendmsg ? STAT_SENDMSG_TRANSLATED : STAT_CONNECT_TRANSLATED);
	return 1;
}

/* Reverse translation: a datagram from (or a peer that is) a backend this socket was sent to
 * shows the frontend instead. */
static __always_inline int restore(struct bpf_sock_addr *ctx, int v6)
{
	struct lb_revnat_key rkey = { .cookie = bpf_get_socket_cookie(ctx), .proto = ctx->protocol };
	if (v6)
		read6(rkey.addr, ctx);
	else
		lb_mapped4(rkey.addr, ctx->user_ip4);
	rkey.port = (__be16)ctx->user_port;

	struct lb_revnat *front = bpf_map_lookup_elem(&beacon_revnat, &rkey);
	if (!front)
		return 1;
	if (v6)
		write6(ctx, front->addr);
	else
		ctx->user_ip4 = lb_unmapped4(front->addr);
	ctx->user_port = front->port;
	count(STAT_REVNAT_RESTORED);
	return 1;
}

SEC("cgroup/connect4")
int beacon_connect4(struct bpf_sock_addr *ctx) { return translate(ctx, 0, 0); }

SEC("cgroup/connect6")
int beacon_connect6(struct bpf_sock_addr *ctx) { return translate(ctx, 1, 0); }

SEC("cgroup/sendmsg4")
int beacon_sendmsg4(struct bpf_sock_addr *ctx) { return translate(ctx, 0, 1); }

SEC("cgroup/sendmsg6")
int beacon_sendmsg6(struct bpf_sock_addr *ctx) { return translate(ctx, 1, 1); }

SEC("cgroup/recvmsg4")
int beacon_recvmsg4(struct bpf_sock_addr *ctx) { return restore(ctx, 0); }

SEC("cgroup/recvmsg6")
int beacon_recvmsg6(struct bpf_sock_addr *ctx) { return restore(ctx, 1); }

SEC("cgroup/getpeername4")
int beacon_getpeername4(struct bpf_sock_addr *ctx) { return restore(ctx, 0); }

SEC("cgroup/getpeername6")
int beacon_getpeername6(struct bpf_sock_addr *ctx) { return restore(ctx, 1); }
