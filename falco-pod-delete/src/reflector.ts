// A reflector, after client-go's tools/cache: gets a resource's state, then watches it from that state's
// resourceVersion with bookmarks, and feeds a store. The state comes as a streaming list where the server offers
// one (a watch with sendInitialEvents=true, the WatchList feature, on by default since 1.34: the server streams
// the objects from its watch cache and ends them with a bookmark, never building one large LIST response), else
// as a paged list (a server with the feature off refuses sendInitialEvents; one that predates it never ends the
// initial events, and STREAM_END_MS ends the wait). A watch that ends is resumed from the last version seen; a
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
  /** Try a streaming list first (default true); false: paged lists only. */
  streaming?: boolean;
  /** How long the initial events of a streaming list may take to end (default STREAM_END_MS). */
  streamEndMs?: number;
}

/** How the state was got: a streaming list (WatchList), or a paged list. */
export type ListMode = 'streaming' | 'paged';

/** The bookmark that ends a streaming list's initial events. */
const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';
/** A streaming list whose initial events do not end within this long is given up for a paged list. */
export const STREAM_END_MS = 60_000;

export type ReflectorState = 'listing' | 'watching' | 'broken' | 'too-large' | 'stopped';

/** A watch with no byte for this long (bookmarks arrive about once a minute) is dead: it is dropped and resumed. */
export const WATCH_IDLE_MS = 90_000;
const MAX_BACKOFF_MS = 30_000;
/** A watch ended by the server sooner than this, with no event, is a failure (backoff), not a timeout. */
const SHORT_WATCH_MS = 1000;

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
  /** How the last state was got; undefined until then. */
  listMode: ListMode | undefined;
  /** The server refused a streaming list once: paged lists from then on. */
  private streamingRefused = false;

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
      if (!this.resourceVersion && this.opts.streaming !== false && !this.streamingRefused) {
        try {
          // The state and the watch in one stream: it returns when the server ends the watch.
          await this.streamList();
          failures = 0;
          continue;
        } catch (e) {
          if (this.stopped) return;
          if (this.state === 'too-large') return;
          if (!this.listed) {
            // As client-go's reflector: a streaming list that fails before its initial events end (the feature
            // off: 4xx; a storage without RequestWatchProgress: an ERROR event, 500; no end at all) gives way to
            // paged lists, at once, for the life of this reflector.
            this.streamingRefused = true;
            this.opts.onState?.('listing', `streaming list ${this.opts.path} not served (${(e as Error).message}): paged lists instead`);
            continue;
          }
          // Listed, then the watch broke: resume it from the last version seen, as below.
          const gone = e instanceof WatchError && e.status === 410;
          this.setState('broken', `watch ${this.opts.path}: ${(e as Error).message}`);
          if (gone) this.resourceVersion = '';
          else await backoff();
          continue;
        }
      }
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
        const opened = Date.now();
        const events = await this.watch();
        // As client-go: a watch the server ended within a second, with nothing in it, is not a timeout but a
        // server (or a proxy) that does not keep watches: resuming at once would be a busy loop of requests.
        if (events === 0 && Date.now() - opened < SHORT_WATCH_MS) throw new Error(`very short watch: the server ended the watch of ${this.opts.path} within ${SHORT_WATCH_MS / 1000} s with no event`);
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

  /**
   * A streaming list: a watch with sendInitialEvents=true sends every object as ADDED, then a bookmark
   * annotated k8s.io/initial-events-end; the store is replaced then, and the same watch goes on.
   */
  private async streamList(): Promise<void> {
    this.setState('listing', `streaming list ${this.opts.path} (sendInitialEvents)`);
    this.listed = false;
    const items = new Map<string, T>();
    let ended = false;
    const signal = this.signal();
    const abort = this.abort;
    const query = { sendInitialEvents: 'true', resourceVersionMatch: 'NotOlderThan', allowWatchBookmarks: 'true', timeoutSeconds: String(300 + Math.floor(Math.random() * 300)) };
    let neverEnded = false;
    const endMs = this.opts.streamEndMs ?? STREAM_END_MS;
    const endTimer = setTimeout(() => {
      neverEnded = true;
      abort.abort();
    }, endMs);
    endTimer.unref();
    const idle = this.idleGuard(abort);
    try {
      await this.lw.watch(this.opts.path, query, signal, (type, object) => {
        idle();
        const rv = object?.metadata?.resourceVersion;
        if (ended && typeof rv === 'string' && rv !== '') this.resourceVersion = rv;
        if (type === 'BOOKMARK') {
          if (!ended && object?.metadata?.annotations?.[INITIAL_EVENTS_END] === 'true') {
            ended = true;
            clearTimeout(endTimer);
            if (typeof rv === 'string') this.resourceVersion = rv;
            this.opts.store.replace([...items.values()]);
            items.clear();
            this.listed = true;
            this.listMode = 'streaming';
            this.watchingSince = Date.now();
            this.setState('watching', `watching ${this.opts.path} from resourceVersion ${this.resourceVersion} (its state from a streaming list)`);
          }
          return;
        }
        const item = this.opts.transform(object);
        if (item === undefined) return;
        if (!ended) {
          const key = `${object?.metadata?.namespace ?? ''}/${object?.metadata?.name ?? ''}`;
          if (type === 'DELETED') items.delete(key);
          else items.set(key, item);
          if (this.opts.maxObjects !== undefined && items.size > this.opts.maxObjects) {
            items.clear();
            this.opts.store.replace([]);
            this.setState('too-large', `more than ${this.opts.maxObjects} objects in ${this.opts.path}: the view is off, every check reads the API`);
            abort.abort();
          }
          return;
        }
        if (type === 'DELETED') this.opts.store.remove(item);
        else this.opts.store.upsert(item);
      });
    } catch (e) {
      if (neverEnded && !ended) throw new StreamNeverEnded(`the initial events did not end within ${endMs / 1000} s (a server without WatchList)`);
      throw e;
    } finally {
      clearTimeout(endTimer);
      if (this.idleTimer) clearTimeout(this.idleTimer);
    }
    if (this.state === 'too-large') throw new Error('too large');
    if (!ended) throw new StreamNeverEnded('the watch ended before its initial events did');
  }

  private async list(): Promise<void> {
    this.setState('listing', `list ${this.opts.path} (paged)`);
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
    this.listMode = 'paged';
  }

  /** Watches until the server ends it; the events seen (bookmarks included). */
  private async watch(): Promise<number> {
    const signal = this.signal();
    // The server's own timeout, randomised as client-go does (5 to 10 minutes), so replicas do not resume together.
    const timeoutSeconds = String(300 + Math.floor(Math.random() * 300));
    const query = { allowWatchBookmarks: 'true', resourceVersion: this.resourceVersion, timeoutSeconds };
    const idle = this.idleGuard(this.abort);
    let events = 0;
    try {
      await this.lw.watch(this.opts.path, query, signal, (type, object) => {
        idle();
        events++;
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
    return events;
  }

  /** Arms the idle timer (a watch silent for WATCH_IDLE_MS is dropped); call the result on every event. */
  private idleGuard(abort: AbortController): () => void {
    const arm = () => {
      if (this.idleTimer) clearTimeout(this.idleTimer);
      this.idleTimer = setTimeout(() => abort.abort(), WATCH_IDLE_MS);
      this.idleTimer.unref();
    };
    arm();
    return arm;
  }

  /** The server answered the watch with 200: events flow from here. */
  private opened(): void {
    this.watchingSince = Date.now();
    this.setState('watching', `watching ${this.opts.path} from resourceVersion ${this.resourceVersion}`);
  }
}

/** A streaming list whose initial events never ended: the server does not offer it (paged lists instead). */
class StreamNeverEnded extends Error {}
