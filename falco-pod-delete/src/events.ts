// Kubernetes Events on the pod for every action and refusal: off the answer's path, and protecting the API
// server like the kubelet's recorder does (one per pod and reason per window, and a rate cap). Actions and
// refusals have rate budgets of their own, so that a flood of refusals cannot suppress a FalcoResponseDeleted.
import { ACTION_EVENTS, DRY_RUN_EVENT } from './actions/index.js';
import type { Alert, PodRef } from './alert.js';
import type { AfterAnswer } from './deadline.js';
import type { Kube } from './kube/index.js';

const EVENT_BURST = 50;
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

  constructor(
    private readonly kube: Kube | null,
    private readonly settings: { recordEvents: boolean; coalesceWindowMs: number },
    private readonly warn: (msg: string, extra: object) => void,
    /** Where the writes go: they never delay the answer, and a graceful stop waits for them. */
    private readonly afterAnswer: AfterAnswer,
  ) {}

  /** Best effort: an Event that cannot be written is logged, and never changes the outcome. */
  record(alert: Alert, pod: PodRef, podUid: string | undefined, reason: string, what: string): void {
    const kube = this.kube;
    if (!kube || !this.settings.recordEvents) return;
    if (!this.allowed(`${reason}:${pod.namespace}/${pod.name}`, ACTION_EVENTS.has(reason) ? this.actions : this.refusals)) {
      this.suppressed++;
      return;
    }
    const note = `${what} (Falco rule "${alert.rule}", priority ${alert.priority})`;
    // Its own deadline: the alert's may end with the answer.
    this.afterAnswer.run(
      (deadline) => kube.createEvent({ pod, podUid, reason, note, type: reason === DRY_RUN_EVENT ? 'Normal' : 'Warning' }, deadline),
      (e) => this.warn('could not record a Kubernetes Event', { pod: `${pod.namespace}/${pod.name}`, reason, error: (e as Error).message }),
    );
  }

  /** An Event about the pod's node (cordon), best effort like the others. */
  recordNode(alert: Alert, pod: PodRef, node: { name: string; uid: string }, reason: string, what: string): void {
    const kube = this.kube;
    if (!kube || !this.settings.recordEvents) return;
    if (!this.allowed(`${reason}:node/${node.name}`, ACTION_EVENTS.has(reason) ? this.actions : this.refusals)) {
      this.suppressed++;
      return;
    }
    const note = `${what} (Falco rule "${alert.rule}", priority ${alert.priority}, pod ${pod.namespace}/${pod.name})`;
    this.afterAnswer.run(
      (deadline) => kube.createEvent({ pod, podUid: undefined, node, reason, note, type: 'Warning' }, deadline),
      (e) => this.warn('could not record a Kubernetes Event', { node: node.name, reason, error: (e as Error).message }),
    );
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
