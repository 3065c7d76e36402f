// Compiles, but the verifier rejects it: it reads packet data without checking data_end.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int unchecked_read(struct __sk_buff *skb)
{
	return *(__u32 *)(long)skb->data;
}

char LICENSE[] SEC("license") = "GPL";
