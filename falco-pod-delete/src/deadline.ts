// Time budgets: one deadline per alert, a timeout per API attempt inside it, and a cap on calls in flight.
import { KubeError } from './kube-error.js';

export class Deadline {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;

  constructor(readonly ms: number, private readonly start = Date.now()) {
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

/** A counting semaphore whose waiters give up at their deadline. */
export class Slots {
  private inUse = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly size: number) {}

  get busy(): number {
    return this.inUse;
  }

  get queued(): number {
    return this.waiting.length;
  }

  async acquire(deadline: Deadline, what: { verb: string; resource: string; namespace: string | undefined }): Promise<() => void> {
    if (this.inUse < this.size) {
      this.inUse++;
      return this.releaser();
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new KubeError('timeout', what.verb, what.resource, what.namespace, `no Kubernetes API slot became free before the deadline for ${what.verb} ${what.resource}`));
      };
      const grant = () => {
        deadline.signal.removeEventListener('abort', onAbort);
        resolve();
      };
      if (deadline.signal.aborted) return onAbort();
      deadline.signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(grant);
    });
    return this.releaser();
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next(); // the slot passes straight to the next waiter
      else this.inUse--;
    };
  }
}
