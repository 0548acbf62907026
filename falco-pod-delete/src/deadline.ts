// Time budgets: one deadline per alert, a timeout per API attempt inside it, and a cap on calls in flight.
import { KubeError } from './kube/kube-error.js';

export class Deadline {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;

  /**
   * background: a write after the answer (an Event, the re-read after a timeout). It waits while
   * calls on an alert's path wait, so that in a burst those reach the API first.
   */
  constructor(readonly ms: number, readonly start = Date.now(), readonly background = false) {
    this.timer = setTimeout(() => this.controller.abort(), ms);
    this.timer.unref();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  remaining(): number {
    return Math.max(0, this.start + this.ms - Date.now());
  }

  /** A signal for one attempt: aborts after timeoutMs or at the deadline, whichever comes first. */
  attempt(timeoutMs: number): { signal: AbortSignal; done: () => void } {
    const c = new AbortController();
    const abort = () => c.abort();
    const timer = setTimeout(abort, Math.min(timeoutMs, this.remaining()));
    this.signal.addEventListener('abort', abort, { once: true });
    return {
      signal: c.signal,
      done: () => {
        clearTimeout(timer);
        this.signal.removeEventListener('abort', abort);
      },
    };
  }

  dispose(): void {
    clearTimeout(this.timer);
  }
}

/** Writes that follow the answer, each with its own background deadline: a graceful stop waits for them. */
export class AfterAnswer {
  readonly pending = new Set<Promise<void>>();

  constructor(private readonly ms: number) {}

  /** Best effort: a failure goes to onError and never to the alert's outcome. */
  run(write: (deadline: Deadline) => Promise<void>, onError: (e: unknown) => void = () => undefined): void {
    const deadline = new Deadline(this.ms, Date.now(), true);
    const p: Promise<void> = write(deadline)
      .catch(onError)
      .finally(() => {
        deadline.dispose();
        this.pending.delete(p);
      });
    this.pending.add(p);
  }
}

/**
 * A counting semaphore whose waiters give up at their deadline. Waiters are served oldest alert first (by
 * their deadline's start), so that in a burst the alerts that came first finish first instead of every alert
 * taking its turn at every step. Background callers (Deadline.background) hold at most a quarter of the
 * slots, and get one only when no foreground caller waits.
 */
type Waiter = (() => void) & { since: number };

export class Slots {
  private inUse = 0;
  private backgroundInUse = 0;
  private readonly waiting: Waiter[] = [];
  private readonly waitingBackground: Waiter[] = [];
  private readonly backgroundSize: number;

  constructor(private readonly size: number) {
    this.backgroundSize = Math.max(1, Math.floor(size / 4));
  }

  get busy(): number {
    return this.inUse;
  }

  get queued(): number {
    return this.waiting.length + this.waitingBackground.length;
  }

  private free(background: boolean): boolean {
    if (this.inUse >= this.size) return false;
    return !background || (this.waiting.length === 0 && this.backgroundInUse < this.backgroundSize);
  }

  async acquire(deadline: Deadline, what: { verb: string; resource: string; namespace: string | undefined }): Promise<() => void> {
    const background = deadline.background;
    if (this.free(background)) return this.take(background);
    const queue = background ? this.waitingBackground : this.waiting;
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = queue.indexOf(grant);
        if (i >= 0) queue.splice(i, 1);
        reject(new KubeError('timeout', what.verb, what.resource, what.namespace, `no Kubernetes API slot became free before the deadline for ${what.verb} ${what.resource}`));
      };
      const grant: Waiter = Object.assign(() => {
        deadline.signal.removeEventListener('abort', onAbort);
        this.count(background);
        resolve();
      }, { since: deadline.start });
      if (deadline.signal.aborted) return onAbort();
      deadline.signal.addEventListener('abort', onAbort, { once: true });
      // After every waiter of an alert as old or older: first come, first served among equals.
      let at = queue.length;
      while (at > 0 && queue[at - 1].since > grant.since) at--;
      queue.splice(at, 0, grant);
    });
    return this.releaser(background);
  }

  /** Counts the slot as taken: at once when free, or when a release grants it (so nobody takes it in between). */
  private count(background: boolean): void {
    this.inUse++;
    if (background) this.backgroundInUse++;
  }

  private take(background: boolean): () => void {
    this.count(background);
    return this.releaser(background);
  }

  private releaser(background: boolean): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inUse--;
      if (background) this.backgroundInUse--;
      // Foreground waiters first; a background one only when none waits and its share allows.
      if (this.waiting.length > 0) this.waiting.shift()?.();
      else if (this.waitingBackground.length > 0 && this.free(true)) this.waitingBackground.shift()?.();
    };
  }
}
