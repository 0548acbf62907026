// A ListWatch between the local view and the API server (the seam partsFromEnv takes), for the tests of the
// view: it counts lists and watches as the reflector makes them, ends the open watch as a broken connection
// would, and can make the next watch resume from an older resourceVersion (for the server's own 410).
import { type ListWatch, WatchError } from '../../falco-pod-delete/src/kube/client-node.js';

export class ListWatchProbe implements ListWatch {
  /** lists: paged LISTs; streams: streaming lists (watches with sendInitialEvents), each a relist too. */
  readonly counts = { lists: 0, watches: 0, streams: 0, gone: 0 };
  /** The resourceVersion each watch asked to resume from, in order. */
  readonly resumedFrom: string[] = [];
  private current: AbortController | undefined;
  private nextFrom: string | undefined;

  constructor(private readonly real: ListWatch, private readonly path = '/api/v1/pods') {}

  async list(path: string, query: Record<string, string>, signal: AbortSignal) {
    if (path === this.path) this.counts.lists++;
    return this.real.list(path, query, signal);
  }

  async watch(path: string, query: Record<string, string>, signal: AbortSignal, onEvent: (type: string, object: Record<string, any>) => void, onOpen?: () => void) {
    if (path !== this.path) return this.real.watch(path, query, signal, onEvent, onOpen);
    this.counts.watches++;
    if (query.sendInitialEvents === 'true') this.counts.streams++;
    const q = this.nextFrom !== undefined ? { ...query, resourceVersion: this.nextFrom } : query;
    this.nextFrom = undefined;
    this.resumedFrom.push(q.resourceVersion);
    const mine = new AbortController();
    const follow = () => mine.abort();
    signal.addEventListener('abort', follow, { once: true });
    this.current = mine;
    try {
      return await this.real.watch(path, q, mine.signal, onEvent, onOpen);
    } catch (e) {
      if (e instanceof WatchError && e.status === 410) this.counts.gone++;
      throw e;
    } finally {
      signal.removeEventListener('abort', follow);
    }
  }

  /** The version the open watch resumed from (or listed at). */
  get lastFrom(): string | undefined {
    return this.resumedFrom.at(-1);
  }

  /** The next watch resumes from `rv` instead of where the reflector is. */
  resumeNextFrom(rv: string): void {
    this.nextFrom = rv;
  }

  /** Ends the open watch as a broken connection would: the reflector resumes by itself. */
  dropWatch(): void {
    this.current?.abort();
  }
}
