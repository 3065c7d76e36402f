/* Backend selection shared by the socket hooks (lb.c) and the tc datapath (nodeport.c), so a
 * service spreads its clients the same way whichever path they take. The caller supplies the
 * flow hash (a socket cookie's, or a packet 5-tuple's) and where ClientIP affinity is kept. */
#ifndef BEACON_LB_SELECT_H
#define BEACON_LB_SELECT_H

#include "lb_maps.h"

/* Spreads 64 bits over 32 (Fibonacci hashing of both halves). */
static __always_inline __u32 lb_mix64(__u64 v)
{
	return ((__u32)v ^ (__u32)(v >> 32)) * 2654435761u;
}

static __always_inline __u32 lb_slot_backend(__u32 svc_id, __u32 slot)
{
	struct lb_slot_key key = { .svc_id = svc_id, .slot = slot };
	__u32 *id = bpf_map_lookup_elem(&beacon_slots, &key);
	return id ? *id : 0;
}

/* Picks a backend id, 0 when none. Maglev indexes the service's table with `hash`, so a flow
 * maps to the same backend on every node while the backend set is stable; random draws a slot,
 * from `hash` when `hashed` (a socket keeps its backend across datagrams), else at random.
 * *slot_out is the slot drawn, 0 for a Maglev choice. */
static __always_inline __u32 lb_pick(const struct lb_svc *svc, __u32 hash, int hashed, __u32 *slot_out)
{
	__u32 slot, id = 0;

	if (svc->algorithm == LB_MAGLEV) {
		__u32 zero = 0;
		struct lb_config *cfg = bpf_map_lookup_elem(&beacon_config, &zero);
		void *table = bpf_map_lookup_elem(&beacon_maglev, &svc->id);
		if (cfg && table && cfg->maglev_size) {
			__u32 index = hash % cfg->maglev_size;
			__u32 *entry = bpf_map_lookup_elem(table, &index);
			if (entry)
				id = *entry;
		}
		if (id) {
			*slot_out = 0;
			return id;
		}
		/* no table yet (being written): fall through to the slots */
	}
	__u32 draw = hashed ? hash : bpf_get_prandom_u32();
	slot = draw % svc->count + 1;
	*slot_out = slot;
	return lb_slot_backend(svc->id, slot);
}

/* ClientIP affinity: reuse the client's backend (the lb_affinity at `akey` in `affinity_map`)
 * while the entry is fresh and its slot still holds that backend; otherwise pick and remember.
 * *affinity_hit tells the caller to count a reuse. svc->count must be non-zero. */
static __always_inline __u32 lb_select(const struct lb_svc *svc, void *affinity_map, const void *akey, __u32 hash, int hashed,
				       int *affinity_hit)
{
	__u32 slot = 0, id;

	if (!svc->affinity_timeout)
		return lb_pick(svc, hash, hashed, &slot);

	__u64 now = bpf_ktime_get_ns();
	struct lb_affinity *seen = bpf_map_lookup_elem(affinity_map, akey);
	if (seen && now - seen->last_ns < (__u64)svc->affinity_timeout * 1000000000ull) {
		__u32 still = seen->slot && seen->slot <= svc->count ? lb_slot_backend(svc->id, seen->slot) : 0;
		if (still == seen->backend_id || (!seen->slot && svc->algorithm == LB_MAGLEV)) {
			seen->last_ns = now;
			*affinity_hit = 1;
			return seen->backend_id;
		}
	}
	id = lb_pick(svc, hash, hashed, &slot);
	if (id) {
		struct lb_affinity fresh = { .backend_id = id, .slot = slot, .last_ns = now };
		bpf_map_update_elem(affinity_map, akey, &fresh, BPF_ANY);
	}
	return id;
}

#endif
