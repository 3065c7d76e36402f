// Defaults of the datapath's flags, apart from the datapath so the CLI can show them without
// loading libbpf.

/** bpffs directory for the datapath's pins (--bpf-root). */
export const DEFAULT_BPF_ROOT = '/sys/fs/bpf/beacon';
/** Entries of the service and backend maps (--bpf-lb-map-max, Cilium's default). */
export const DEFAULT_LB_MAP_MAX = 65536;
