// Kubernetes Events on the pod for every action and refusal: off the answer's path, and protecting the API
// server like the kubelet's recorder does (one per pod and reason per window, and a rate cap). Actions and
// refusals have rate budgets of their own, so that a flood of refusals cannot suppress a FalcoResponseDeleted.
// Written after the burst: while containments are under way, and for EVENT_QUIET_MS after the last, the Events
// wait in a queue (at most EVENT_HOLD_MAX_MS), then go one at a time in the order they were recorded, so that none delays a DELETE on
// a shared API server.
import { ACTION_EVENTS, DRY_RUN_EVENT } from './actions/index.js';
import type { Alert, PodRef } from './alert.js';
import { type AfterAnswer, Deadline } from './deadline.js';
import type { EventNote, Kube } from './kube/index.js';

const EVENT_BURST = 50;
/** The longest an Event waits for containments under way to end (a sustained incident still gets its Events). */
export const EVENT_HOLD_MAX_MS = 2000;
/** The most Events queued; beyond it they are counted as suppressed (the rate cap keeps the queue far below). */
const QUEUE_MAX = 1000;

/**
 * After the last containment ends, how long no other may start before the Events go: alerts one at a time
 * (Falcosidekick's default) arrive a few ms apart, and an Event written between them delays the next DELETE.
 */
export const EVENT_QUIET_MS = 50;

/** Containments under way: Events wait until there are none and have been none for EVENT_QUIET_MS (or EVENT_HOLD_MAX_MS). */
export class Busy {
  private count = 0;
  private lastLeft = 0;
  private waiters: Array<() => void> = [];

  enter(): void {
    this.count++;
  }

  leave(): void {
    this.count = Math.max(0, this.count - 1);
    this.lastLeft = Date.now();
    if (this.count === 0) for (const w of this.waiters.splice(0)) w();
  }

  get idle(): boolean {
    return this.count === 0;
  }

  /** Resolves once nothing has been under way for `quietMs`, or after `ms` whatever happens. */
  async whenIdle(ms: number, quietMs = EVENT_QUIET_MS): Promise<void> {
    const until = Date.now() + ms;
    for (;;) {
      const now = Date.now();
      const left = until - now;
      if (left <= 0) return;
      const quietFor = this.count === 0 ? now - this.lastLeft : -1;
      if (quietFor >= quietMs) return;
      // Idle but not quiet yet: wait out the rest; busy: wait for the last to leave. Both within `left`.
      const wait = quietFor >= 0 ? Math.min(left, quietMs - quietFor) : left;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, wait);
        timer.unref();
        const waiters = this.waiters;
        function done() {
          clearTimeout(timer);
          const i = waiters.indexOf(done);
          if (i >= 0) waiters.splice(i, 1);
          resolve();
        }
        if (quietFor < 0) this.waiters.push(done);
      });
    }
  }
}
const EVENTS_PER_SECOND = 20;

/** A token bucket: EVENTS_PER_SECOND, bursts of EVENT_BURST. */
class Budget {
  private tokens = EVENT_BURST;
  private at = Date.now();

  take(now: number): boolean {
    this.tokens = Math.min(EVENT_BURST, this.tokens + ((now - this.at) / 1000) * EVENTS_PER_SECOND);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}

export class EventRecorder {
  /** Events not written because of the dedup window or the rate cap. */
  suppressed = 0;
  private readonly recent = new Map<string, number>();
  private readonly actions = new Budget();
  private readonly refusals = new Budget();
  private readonly queue: Array<{ event: EventNote; at: number; what: object }> = [];
  private pumping = false;

  constructor(
    private readonly kube: Kube | null,
    private readonly settings: { recordEvents: boolean; coalesceWindowMs: number; eventDeadlineMs?: number },
    private readonly warn: (msg: string, extra: object) => void,
    /** Where the writes go: they never delay the answer, and a graceful stop waits for them. */
    private readonly afterAnswer: AfterAnswer,
    /** Containments under way: Events wait for them. */
    readonly busy: Busy = new Busy(),
  ) {}

  /** In order, one at a time, once no containment has been under way for EVENT_QUIET_MS (or the oldest has waited EVENT_HOLD_MAX_MS). */
  private enqueue(event: EventNote, what: object): void {
    const kube = this.kube;
    if (!kube) return;
    if (this.queue.length >= QUEUE_MAX) {
      this.suppressed++;
      return;
    }
    this.queue.push({ event, at: Date.now(), what });
    if (this.pumping) return;
    this.pumping = true;
    this.afterAnswer.run(async () => {
      try {
        while (this.queue.length > 0) {
          await this.busy.whenIdle(this.queue[0].at + EVENT_HOLD_MAX_MS - Date.now());
          const next = this.queue.shift() as { event: EventNote; what: object };
          const deadline = new Deadline(this.settings.eventDeadlineMs ?? 10_000, Date.now(), true);
          try {
            await kube.createEvent(next.event, deadline);
          } catch (e) {
            this.warn('could not record a Kubernetes Event', { ...next.what, reason: next.event.reason, error: (e as Error).message });
          } finally {
            deadline.dispose();
          }
        }
      } finally {
        this.pumping = false;
      }
    });
  }

  /** Best effort: an Event that cannot be written is logged, and never changes the outcome. */
  record(alert: Alert, pod: PodRef, podUid: string | undefined, reason: string, what: string): void {
    this.write(`${reason}:${pod.namespace}/${pod.name}`, { pod, podUid, reason, note: `${what} (Falco rule "${alert.rule}", priority ${alert.priority})`, type: reason === DRY_RUN_EVENT ? 'Normal' : 'Warning' }, { pod: `${pod.namespace}/${pod.name}` });
  }

  /** An Event about the pod's node (cordon), best effort like the others. */
  recordNode(alert: Alert, pod: PodRef, node: { name: string; uid: string }, reason: string, what: string): void {
    const note = `${what} (Falco rule "${alert.rule}", priority ${alert.priority}, pod ${pod.namespace}/${pod.name})`;
    this.write(`${reason}:node/${node.name}`, { pod, podUid: undefined, node, reason, note, type: 'Warning' }, { node: node.name });
  }

  /** Within the dedup window and the rate budgets (actions apart from refusals), queued; else counted as suppressed. */
  private write(key: string, event: EventNote, what: object): void {
    if (!this.kube || !this.settings.recordEvents) return;
    if (!this.allowed(key, ACTION_EVENTS.has(event.reason) ? this.actions : this.refusals)) {
      this.suppressed++;
      return;
    }
    // Its own deadline when it is written: the alert's may end with the answer.
    this.enqueue(event, what);
  }

  private allowed(key: string, budget: Budget): boolean {
    const now = Date.now();
    const last = this.recent.get(key);
    if (last !== undefined && now - last < Math.max(this.settings.coalesceWindowMs, 1000)) return false;
    if (!budget.take(now)) return false;
    if (this.recent.size >= 10_000) this.recent.clear();
    this.recent.set(key, now);
    return true;
  }
}
