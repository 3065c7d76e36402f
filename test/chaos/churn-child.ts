// EndpointSlice writes through the project's own etcd store, run inside the lab's etcd namespace
// (only there is etcd reachable):
//   churn-child.ts churn ENDPOINT RATE SECONDS
//       RATE changes a second for SECONDS: each change marks one endpoint of one slice not ready and
//       the slice's previous one ready again, so every service keeps at least two ready backends
//       throughout. At the end every slice is written back as it was.
//       Prints one JSON line: {"changes","seconds","errors","restored"}.
//   churn-child.ts ready ENDPOINT NODE true|false
//       Marks the endpoints on NODE ready or not in every slice, as Kubernetes' endpoint controller
//       does when a node stops (or starts again) reporting. Prints {"changed": slices written}.
import { openEtcdStore, type EtcdStore } from '../../store/etcd/index.js';
import type { StoredObject } from '../../store/index.js';

interface Endpoint {
  readonly addresses: string[];
  readonly conditions?: { ready?: boolean };
  readonly nodeName?: string;
}
type Slice = StoredObject & { endpoints: Endpoint[] };

/** The object as written by `apply`: its metadata without what the store assigns (labels stay: they name the service). */
function desired(slice: Slice): Slice {
  const { resourceVersion: _rv, creationTimestamp: _ct, generation: _g, ...metadata } = slice.metadata;
  return { ...slice, metadata };
}

/** The `change`-th rewrite: slice `change mod slices`, with endpoint `(change div slices) mod endpoints` not ready. */
export function churnStep(slices: readonly Slice[], change: number): Slice {
  const slice = slices[change % slices.length]!;
  const down = Math.floor(change / slices.length) % slice.endpoints.length;
  return { ...desired(slice), endpoints: slice.endpoints.map((e, i) => ({ ...e, conditions: { ...e.conditions, ready: i !== down } })) };
}

/** The slice with the endpoints on `node` ready or not; undefined when it has none there. */
export function withNodeReady(slice: Slice, node: string, ready: boolean): Slice | undefined {
  if (!slice.endpoints.some((e) => e.nodeName === node)) return undefined;
  return { ...desired(slice), endpoints: slice.endpoints.map((e) => (e.nodeName === node ? { ...e, conditions: { ...e.conditions, ready } } : e)) };
}

async function setNodeReady(store: EtcdStore, node: string, ready: boolean): Promise<{ changed: number }> {
  const slices = (await store.list('EndpointSlice')).items as Slice[];
  const changed = slices.map((s) => withNodeReady(s, node, ready)).filter((s): s is Slice => s !== undefined);
  for (const s of changed) await store.apply(s);
  return { changed: changed.length };
}

async function churn(store: EtcdStore, rate: number, seconds: number): Promise<{ changes: number; seconds: number; errors: number; restored: number }> {
  const slices = (await store.list('EndpointSlice')).items as Slice[];
  if (slices.length === 0) throw new Error('no EndpointSlice to churn');
  const started = Date.now();
  const total = Math.round(rate * seconds);
  let changes = 0;
  let errors = 0;
  // Paced by the schedule, not by the previous write: the slices are written side by side, each
  // slice's writes in order (a chain per slice), so a slow write delays only its own slice.
  const chains = slices.map(() => Promise.resolve());
  for (let i = 0; i < total && Date.now() - started < seconds * 1000 + 5_000; i++) {
    const wait = started + (i * 1000) / rate - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const step = churnStep(slices, i);
    const k = i % slices.length;
    chains[k] = chains[k]!.then(() => store.apply(step)).then(
      () => void changes++,
      () => void errors++,
    );
  }
  await Promise.all(chains);
  const elapsed = (Date.now() - started) / 1000;
  for (const s of slices) await store.apply(desired(s));
  return { changes, seconds: elapsed, errors, restored: slices.length };
}

if (process.argv[1]?.replace(/\.ts$/, '.js').endsWith('churn-child.js')) {
  const [mode, endpoint, a, b] = process.argv.slice(2);
  const valid = endpoint !== undefined && ((mode === 'churn' && Number(a) > 0 && Number(b) > 0) || (mode === 'ready' && a !== undefined && (b === 'true' || b === 'false')));
  if (!valid) {
    console.error('usage: churn-child.ts churn ENDPOINT RATE SECONDS | ready ENDPOINT NODE true|false');
    process.exit(2);
  }
  const store = await openEtcdStore({ endpoints: [endpoint] });
  try {
    const result = mode === 'churn' ? await churn(store, Number(a), Number(b)) : await setNodeReady(store, a!, b === 'true');
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await store.close();
  }
}
