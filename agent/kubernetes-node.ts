// Where the node agent's labels come from: `--node-labels` (fixed), or in Kubernetes mode this
// node's own Node object, followed as it changes (policies select nodes by their labels, and
// `kubectl label node` must move announcements without a restart).
import type { Labels } from '../api/index.js';
import type { Reflector } from '../store/index.js';
import type { Logger } from './log.js';

export interface NodeLabelSource {
  /** The labels now (a plain function: passed around as the agents' label getter). */
  readonly get: () => Labels;
  /** Calls `listener` after the labels changed; returns the unsubscribe function. */
  readonly onChange: (listener: () => void) => () => void;
}

export function fixedNodeLabels(labels: Labels): NodeLabelSource {
  return { get: () => labels, onChange: () => () => undefined };
}

const sameLabels = (a: Labels, b: Labels): boolean => {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
};

/**
 * The labels of the Node named `nodeName` in a Node reflector (cluster-scoped: the key is the
 * name). A missing Node has no labels; that is logged once, since no policy selects such a node.
 */
export function nodeObjectLabels(nodes: Reflector, nodeName: string, log: Logger): NodeLabelSource {
  const read = (): Labels => (nodes.get(nodeName)?.metadata.labels as Labels | undefined) ?? {};
  let current = read();
  let warnedMissing = false;
  const listeners = new Set<() => void>();
  const refresh = (): void => {
    const missing = nodes.hasSynced && !nodes.get(nodeName);
    if (missing && !warnedMissing) log.warn({ node: nodeName }, 'no Node object with this name: the node has no labels (check --node-name)');
    warnedMissing = missing;
    const next = read();
    if (sameLabels(next, current)) return;
    current = next;
    log.info({ node: nodeName, labels: next }, 'node labels changed');
    for (const l of listeners) l();
  };
  nodes.onChange((key) => {
    if (key === undefined || key === nodeName) refresh();
  });
  refresh();
  return {
    get: () => current,
    onChange: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
