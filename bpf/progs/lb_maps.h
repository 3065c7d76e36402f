/* The service tables every datapath program reads (socket hooks in lb.c, tc programs in
 * nodeport.c). Each object that includes this declares the same maps pinned by name, so the
 * objects loaded with one pin root share them: the agent writes a service once. Names, types,
 * layouts and default sizes are the contract with kpr/layout.ts; the agent sets sizes before
 * load (--bpf-lb-map-max) and must give every object the same ones. Hash maps are not
 * preallocated, so a large maximum costs memory only for what is stored. */
#ifndef BEACON_LB_MAPS_H
#define BEACON_LB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "lb.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb_svc_key);
	__type(value, struct lb_svc);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} beacon_svc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb_backend);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} beacon_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb_slot_key);
	__type(value, __u32);
	__uint(max_entries, 524288);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} beacon_slots SEC(".maps");

/* BPF_F_INNER_MAP lets tables of another size replace these, so the table size can change. */
struct lb_maglev_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 16381);
	__uint(map_flags, BPF_F_INNER_MAP);
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__type(key, __u32);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct lb_maglev_table);
} beacon_maglev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} beacon_config SEC(".maps");

/* Addresses in these maps are 16 bytes, IPv4 stored IPv4-mapped (::ffff:a.b.c.d). */
static __always_inline void lb_mapped4(__u8 addr[16], __u32 ip4)
{
	__builtin_memset(addr, 0, 10);
	addr[10] = 0xff;
	addr[11] = 0xff;
	__builtin_memcpy(&addr[12], &ip4, 4);
}

static __always_inline __u32 lb_unmapped4(const __u8 addr[16])
{
	__u32 ip4;
	__builtin_memcpy(&ip4, &addr[12], 4);
	return ip4;
}

#endif
