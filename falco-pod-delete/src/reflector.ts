// A reflector, after client-go's tools/cache: lists a resource (paged), then watches it from the list's
// resourceVersion with bookmarks, and feeds a store. A watch that ends is resumed from the last version seen; a
// 410 Gone (the version is too old) means list again. Every failure waits (jittered, growing backoff) and tries
// again; the reflector never stops until it is told to. It never acts on anything: it only keeps a view.
import { type ListWatch, WatchError } from './kube/client-node.js';

export interface ReflectorStore<T> {
  /** Everything, from a new list: what is not in it is gone. */
  replace(items: T[]): void;
  upsert(item: T): void;
  remove(item: T): void;
}

export interface ReflectorOptions<T> {
  /** The collection's path, e.g. /api/v1/pods. */
  path: string;
  /** Strips an object to what the program reads (client-go's SetTransform); undefined drops it. */
  transform: (raw: Record<string, any>) => T | undefined;
  store: ReflectorStore<T>;
  pageSize?: number;
  /** Called with each state change and why: listing, watching, broken. */
  onState?: (state: ReflectorState, detail: string) => void;
  /** Objects at most in the store; above it the reflector stops and says so (the program falls back). */
  maxObjects?: number;
}

export type ReflectorState = 'listing' | 'watching' | 'broken' | 'too-large' | 'stopped';

/** A watch with no byte for this long (bookmarks arrive about once a minute) is dead: it is dropped and resumed. */
export const WATCH_IDLE_MS = 90_000;
const MAX_BACKOFF_MS = 30_000;

export class Reflector<T> {
  private resourceVersion = '';
  private abort = new AbortController();
  private stopped = false;
  private running: Promise<void> | undefined;
  state: ReflectorState = 'listing';
  /** When the current watch was last known to be open, or 0 while listing or broken. */
  private watchingSince = 0;
  private lastBroken = 0;
  private listed = false;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(private readonly lw: ListWatch, private readonly opts: ReflectorOptions<T>) {}

  start(): void {
    this.running ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    if (this.idleTimer) clearTimeout(this.idleTimer);
    await this.running?.catch(() => undefined);
    this.setState('stopped', 'stopped');
  }

  /** Listed once, and its watch open (or broken less than `graceMs` ago): the store is current to within the watch's delay. */
  fresh(graceMs = 2000, now = Date.now()): boolean {
    if (!this.listed || this.stopped) return false;
    if (this.state === 'watching') return true;
    return this.state !== 'too-large' && this.lastBroken > 0 && now - this.lastBroken < graceMs && this.watchingSince > 0;
  }

  private setState(state: ReflectorState, detail: string): void {
    if (state === 'broken') this.lastBroken = Date.now();
    if (state === this.state && state !== 'broken') return;
    this.state = state;
    this.opts.onState?.(state, detail);
  }

  private async run(): Promise<void> {
    let failures = 0;
    const backoff = async () => {
      failures++;
      const ms = Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(failures, 8)) * (0.5 + Math.random() / 2);
      await new Promise((r) => setTimeout(r, ms).unref());
    };
    while (!this.stopped) {
      if (!this.resourceVersion) {
        try {
          await this.list();
          failures = 0;
        } catch (e) {
          if (this.stopped) return;
          if (this.state === 'too-large') return;
          this.setState('broken', `list ${this.opts.path}: ${(e as Error).message}`);
          await backoff();
          continue;
        }
      }
      try {
        await this.watch();
        failures = 0; // the server ended the watch (its timeout): resume at once
      } catch (e) {
        if (this.stopped) return;
        const gone = e instanceof WatchError && e.status === 410;
        this.setState('broken', gone ? `watch ${this.opts.path}: resourceVersion ${this.resourceVersion} is too old (410): listing again` : `watch ${this.opts.path}: ${(e as Error).message}`);
        if (gone) {
          this.resourceVersion = '';
          continue;
        }
        await backoff();
      }
    }
  }

  private signal(): AbortSignal {
    if (this.abort.signal.aborted && !this.stopped) this.abort = new AbortController();
    return this.abort.signal;
  }

  private async list(): Promise<void> {
    this.setState('listing', `list ${this.opts.path}`);
    const items: T[] = [];
    let next: string | undefined;
    let rv = '';
    do {
      // No resourceVersion: a consistent read, so the view starts from what the server has now.
      const query: Record<string, string> = { limit: String(this.opts.pageSize ?? 500) };
      if (next) query.continue = next;
      let page;
      try {
        page = await this.lw.list(this.opts.path, query, this.signal());
      } catch (e) {
        // An expired continue token (410): start the list again from its first page.
        if (e instanceof WatchError && e.status === 410 && next) {
          items.length = 0;
          next = undefined;
          continue;
        }
        throw e;
      }
      for (const raw of page.items) {
        const t = typeof raw === 'object' && raw !== null ? this.opts.transform(raw as Record<string, any>) : undefined;
        if (t !== undefined) items.push(t);
      }
      if (this.opts.maxObjects !== undefined && items.length > this.opts.maxObjects) {
        this.opts.store.replace([]);
        this.listed = false;
        this.setState('too-large', `more than ${this.opts.maxObjects} objects in ${this.opts.path}: the view is off, every check reads the API`);
        throw new Error('too large');
      }
      next = page.continue;
      rv = page.resourceVersion;
    } while (next);
    this.opts.store.replace(items);
    this.resourceVersion = rv;
    this.listed = true;
  }

  private async watch(): Promise<void> {
    const signal = this.signal();
    // The server's own timeout, randomised as client-go does (5 to 10 minutes), so replicas do not resume together.
    const timeoutSeconds = String(300 + Math.floor(Math.random() * 300));
    const query = { allowWatchBookmarks: 'true', resourceVersion: this.resourceVersion, timeoutSeconds };
    const abort = this.abort;
    const idle = () => {
      if (this.idleTimer) clearTimeout(this.idleTimer);
      this.idleTimer = setTimeout(() => abort.abort(), WATCH_IDLE_MS);
      this.idleTimer.unref();
    };
    idle();
    try {
      await this.lw.watch(this.opts.path, query, signal, (type, object) => {
        idle();
        const rv = object?.metadata?.resourceVersion;
        if (typeof rv === 'string' && rv !== '') this.resourceVersion = rv;
        if (type === 'BOOKMARK') return;
        const item = this.opts.transform(object);
        if (item === undefined) return;
        if (type === 'DELETED') this.opts.store.remove(item);
        else this.opts.store.upsert(item);
      }, () => this.opened());
    } finally {
      if (this.idleTimer) clearTimeout(this.idleTimer);
    }
  }

  /** The server answered the watch with 200: events flow from here. */
  private opened(): void {
    this.watchingSince = Date.now();
    this.setState('watching', `watching ${this.opts.path} from resourceVersion ${this.resourceVersion}`);
  }
}
