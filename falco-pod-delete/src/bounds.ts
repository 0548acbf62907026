// Bounds on what the function does: coalescing per pod, and a blast-radius limit per window. Both size-capped.

/** Alerts for the same key share one response while it runs and for `windowMs` after it succeeded. */
export class Coalescer<T> {
  private readonly entries = new Map<string, { promise: Promise<T>; settledAt: number | undefined }>();

  constructor(private readonly windowMs: number, private readonly maxEntries = 10_000, private readonly keep: (value: T) => boolean = () => true) {}

  get size(): number {
    return this.entries.size;
  }

  /** Runs `work` unless the same key is in flight or recently done; `first` tells which happened. */
  run(key: string, work: () => Promise<T>, now = Date.now()): { promise: Promise<T>; first: boolean } {
    const existing = this.entries.get(key);
    if (existing && (existing.settledAt === undefined || now - existing.settledAt < this.windowMs)) {
      return { promise: existing.promise, first: false };
    }
    this.evict(now);
    const entry: { promise: Promise<T>; settledAt: number | undefined } = { promise: Promise.resolve(undefined as T), settledAt: undefined };
    entry.promise = work().then(
      (value) => {
        if (this.keep(value) && this.windowMs > 0) entry.settledAt = Date.now();
        else if (this.entries.get(key) === entry) this.entries.delete(key);
        return value;
      },
      (error: unknown) => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
        throw error;
      },
    );
    this.entries.set(key, entry);
    return { promise: entry.promise, first: true };
  }

  private evict(now: number): void {
    // Oldest first; in-flight entries are never evicted (their number is bounded by the requests in flight).
    for (const [key, e] of this.entries) {
      if (e.settledAt === undefined) continue;
      const expired = now - e.settledAt >= this.windowMs;
      if (!expired && this.entries.size < this.maxEntries) break;
      this.entries.delete(key);
    }
  }
}

/** A slot of the local budget, as taken: giveBack returns exactly this one. */
export interface Taken {
  at: number;
  namespace: string;
}

/**
 * At most `limit` actions in any `windowMs` (sliding window), of which at most `namespaceLimit` in any one
 * namespace, so that one tenant's alerts cannot spend everyone's budget. limit 0 means unlimited.
 */
export class ActionLimiter {
  private taken: Taken[] = [];

  constructor(readonly limit: number, readonly windowMs: number, readonly namespaceLimit = limit) {}

  /** A slot for an action in `namespace`, or why there is none. */
  tryTake(namespace: string, now = Date.now()): Taken | 'full' | 'namespace-full' | undefined {
    if (this.limit === 0) return undefined;
    this.taken = this.taken.filter((t) => now - t.at < this.windowMs);
    if (this.taken.length >= this.limit) return 'full';
    if (this.taken.filter((t) => t.namespace === namespace).length >= this.namespaceLimit) return 'namespace-full';
    const slot = { at: now, namespace };
    this.taken.push(slot);
    return slot;
  }

  /** Gives back the slot taken for an action that did not happen. */
  giveBack(slot: Taken | undefined): void {
    if (!slot) return;
    const i = this.taken.indexOf(slot);
    if (i >= 0) this.taken.splice(i, 1);
  }

  used(now = Date.now()): number {
    return this.taken.filter((t) => now - t.at < this.windowMs).length;
  }

  usedIn(namespace: string, now = Date.now()): number {
    return this.taken.filter((t) => t.namespace === namespace && now - t.at < this.windowMs).length;
  }
}

/** The most actions one namespace may take in a window: a number, or a percentage of ACTION_LIMIT (rounded up, at least 1). */
export function namespaceShare(rule: string, limit: number): number {
  if (limit === 0) return 0;
  const n = rule.endsWith('%') ? Math.ceil((Number(rule.slice(0, -1)) / 100) * limit) : Number(rule);
  return Math.max(1, Math.min(limit, n));
}
