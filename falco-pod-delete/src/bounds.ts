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

/** At most `limit` actions in any `windowMs` (sliding window); limit 0 means unlimited. */
export class ActionLimiter {
  private readonly taken: number[] = [];

  constructor(readonly limit: number, readonly windowMs: number) {}

  tryTake(now = Date.now()): boolean {
    if (this.limit === 0) return true;
    while (this.taken.length > 0 && now - this.taken[0] >= this.windowMs) this.taken.shift();
    if (this.taken.length >= this.limit) return false;
    this.taken.push(now);
    return true;
  }

  /** Gives a slot back when the action it was taken for did nothing (pod gone or replaced). */
  giveBack(): void {
    this.taken.pop();
  }

  used(now = Date.now()): number {
    return this.taken.filter((t) => now - t < this.windowMs).length;
  }
}
