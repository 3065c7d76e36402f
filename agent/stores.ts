// Opens the configured store. Backends are imported on demand, so the CLI does not load the
// etcd client (gRPC), SQLite or the Kubernetes client unless it needs them.
import type { Store } from '../store/index.js';
import type { Logger } from './log.js';

export type StoreOptions =
  | { backend: 'embedded'; manifestsDir: string; stateDir: string }
  | { backend: 'etcd'; endpoints: string[]; prefix: string }
  /** Without a kubeconfig path: the pod's service account. */
  | { backend: 'kubernetes'; kubeconfig?: string; namespace?: string; identity?: string; qps?: number; burst?: number };

export async function openStore(opts: StoreOptions, log: Logger): Promise<Store> {
  switch (opts.backend) {
    case 'embedded': {
      const { openEmbeddedStore } = await import('../store/embedded/index.js');
      return openEmbeddedStore({ manifestsDir: opts.manifestsDir, stateDir: opts.stateDir, logger: log.child({ store: 'embedded' }) });
    }
    case 'etcd': {
      const { openEtcdStore } = await import('../store/etcd/index.js');
      return openEtcdStore({ endpoints: opts.endpoints, prefix: opts.prefix, logger: log.child({ store: 'etcd' }) });
    }
    case 'kubernetes': {
      const { openKubernetesStore } = await import('../store/kubernetes/index.js');
      return openKubernetesStore({ kubeconfig: opts.kubeconfig, namespace: opts.namespace, identity: opts.identity, qps: opts.qps, burst: opts.burst, log: log.child({ store: 'kubernetes' }) });
    }
  }
}
