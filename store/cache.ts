// A reflector: keeps an in-memory copy of one kind, fed by list + watch, that survives whatever
// the store does. On a watch error it lists again after a jittered backoff; a periodic relist
// repairs anything a watch might have missed. Consumers only hear "this kind changed".
import { ExpiredError, objectKey, type Store, type StoredObject, type Watch } from './types.js';

export interface ReflectorOptions {
  /** Relist this often even when the watch looks healthy (ms). */
  resyncMs?: number;
  /** First retry delay after an error (ms); doubles up to maxBackoffMs, with jitter. */
  backoffMs?: number;
  maxBackoffMs?: number;
  onError?: (err: Error) => void;
  random?: () => number;
}

export class Reflector {
  private objects = new Map<string, StoredObject>();
  private watch: Watch | undefined;
  private timer: NodeJS.Timeout | undefined;
  private resync: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  private synced = false;
  private readonly listeners = new Set<(key: string | undefined) => void>();
  private readonly opts: Required<Omit<ReflectorOptions, 'onError'>> & Pick<ReflectorOptions, 'onError'>;

  constructor(
    private readonly store: Store,
    readonly kind: string,
    opts: ReflectorOptions = {},
  ) {
    this.opts = { resyncMs: 60_000, backoffMs: 200, maxBackoffMs: 10_000, random: Math.random, ...opts };
  }

  private syncedWaiters: (() => void)[] = [];

  /** Starts listing and watching; resolves once the first list is in (retrying until it is). */
  start(): Promise<void> {
    this.resync = setInterval(() => void this.relist(), this.opts.resyncMs);
    this.resync.unref();
    void this.relist();
    return this.synced ? Promise.resolve() : new Promise((resolve) => this.syncedWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    this.watch?.close();
    clearTimeout(this.timer);
    clearInterval(this.resync);
    for (const w of this.syncedWaiters.splice(0)) w();
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  items(): StoredObject[] {
    return [...this.objects.values()];
  }

  get(key: string): StoredObject | undefined {
    return this.objects.get(key);
  }

  /** `listener(key)` after one object changed, `listener(undefined)` after a relist changed anything. */
  onChange(listener: (key: string | undefined) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(key: string | undefined): void {
    for (const l of this.listeners) l(key);
  }

  private async relist(): Promise<void> {
    if (this.stopped) return;
    try {
      const { items, revision } = await this.store.list(this.kind);
      if (this.stopped) return;
      this.watch?.close();
      const fresh = new Map(items.map((o) => [objectKey(o), o]));
      const changed = fresh.size !== this.objects.size || items.some((o) => this.objects.get(objectKey(o))?.metadata.resourceVersion !== o.metadata.resourceVersion);
      this.objects = fresh;
      this.synced = true;
      this.failures = 0;
      for (const w of this.syncedWaiters.splice(0)) w();
      this.watch = this.store.watch(
        this.kind,
        revision,
        (e) => {
          const key = objectKey(e.object);
          if (e.type === 'deleted') this.objects.delete(key);
          else this.objects.set(key, e.object);
          this.notify(key);
        },
        (err) => this.retry(err),
      );
      if (changed) this.notify(undefined);
    } catch (e) {
      this.retry(e as Error);
    }
  }

  private retry(err: Error): void {
    if (this.stopped) return;
    if (!(err instanceof ExpiredError)) this.opts.onError?.(err);
    this.failures++;
    const base = Math.min(this.opts.maxBackoffMs, this.opts.backoffMs * 2 ** Math.min(this.failures - 1, 10));
    const delay = err instanceof ExpiredError ? 0 : base / 2 + (this.opts.random() * base) / 2;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.relist(), delay);
    this.timer.unref();
  }
}
