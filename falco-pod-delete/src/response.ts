// The action stage: turns a decision into Kubernetes calls (verify, then act) and returns the outcome.
import type { Alert, PodRef } from './alert.js';
import { ActionLimiter, Coalescer } from './bounds.js';
import { Deadline } from './deadline.js';
import { type Decision, type Guards, decide } from './decision.js';
import { type Kube, KubeError, type LeaseRecord, type PodSnapshot } from './kube.js';
import type { Coordinator } from './coordination.js';
import { type Outcome, failed } from './outcome.js';
import type { ActionKind, Policy } from './policy.js';

export interface ResponseSettings {
  dryRun: boolean;
  gracePeriodSeconds: number | undefined;
  optOutLabel: string;
  quarantineLabel: string;
  recordEvents: boolean;
  coalesceWindowMs: number;
  actionLimit: number;
  actionWindowMs: number;
  eventDeadlineMs: number;
}

type Act = Extract<Decision, { kind: 'act' }>;

const DONE: Record<ActionKind, Outcome['result']> = { delete: 'deleted', isolate: 'isolated', log: 'logged' };

/** Outcomes worth remembering for the coalescing window: a failure lets the next alert try again. */
const SETTLED = new Set<Outcome['result']>(['deleted', 'isolated', 'dry-run', 'already gone', 'replaced', 'skipped']);

const NAMESPACE_TTL_MS = 10_000;
/** Events protect the API server like the kubelet's recorder does: one per pod and reason per window, and a rate cap. */
const EVENT_BURST = 50;
const EVENTS_PER_SECOND = 20;

export class Responder {
  readonly limiter: ActionLimiter;
  readonly coalescer: Coalescer<Outcome>;
  /** Event writes still under way: they never delay the answer, and a graceful stop waits for them. */
  readonly pendingEvents = new Set<Promise<void>>();
  private readonly recentEvents = new Map<string, number>();
  private eventTokens = EVENT_BURST;
  private eventTokensAt = Date.now();
  /** Events not written because of the dedup window or the rate cap. */
  eventsSuppressed = 0;
  /** Namespace labels for the opt-out check, kept briefly so a burst costs one read per namespace. */
  private readonly namespaces = new Map<string, { labels: Record<string, string> | null; at: number }>();

  constructor(
    private readonly kube: Kube | null,
    private readonly settings: ResponseSettings,
    private readonly policy: Policy,
    private readonly guards: Guards,
    private readonly warn: (msg: string, extra: object) => void,
    /** Set for several replicas: claims and the shared budget go through the API. */
    private readonly coordinator?: Coordinator,
  ) {
    this.limiter = new ActionLimiter(settings.actionLimit, settings.actionWindowMs);
    this.coalescer = new Coalescer<Outcome>(settings.coalesceWindowMs, 10_000, (o) => SETTLED.has(o.result));
  }

  async respond(alert: Alert, decision: Decision, deadline: Deadline): Promise<Outcome> {
    switch (decision.kind) {
      case 'reject':
        return { decision: 'reject', result: 'rejected', code: decision.code, reason: decision.reason };
      case 'decline':
        if (decision.refused && decision.pod) this.recordEvent(alert, decision.pod, undefined, 'FalcoResponseRefused', `refused to ${decision.refused}: ${decision.reason}`);
        return { decision: 'skip', result: 'skipped', code: decision.code, reason: decision.reason, pod: decision.pod };
      case 'lookup':
        return this.lookup(alert, decision, deadline);
      case 'act':
        return this.coalesced(alert, decision, deadline);
    }
  }

  private async lookup(alert: Alert, d: Extract<Decision, { kind: 'lookup' }>, deadline: Deadline): Promise<Outcome> {
    const skip = (code: string, reason: string): Outcome => ({ decision: 'skip', result: 'skipped', code, reason });
    if (!this.kube) return skip('no-cluster', `would look for container ${d.containerId} among the pods on node ${d.node}, but no cluster is configured`);
    let pods: PodSnapshot[];
    try {
      pods = await this.kube.listPodsOnNode(d.node, deadline);
    } catch (e) {
      return failed('skip', e);
    }
    const matches = pods.filter((p) => p.containerIds.some((id) => id.startsWith(d.containerId)));
    if (matches.length === 0) return skip('no-pod', `no pod on node ${d.node} runs container ${d.containerId}`);
    if (matches.length > 1) return skip('ambiguous', `${matches.length} pods on node ${d.node} run a container whose id starts with ${d.containerId}`);
    const pod = { namespace: matches[0].namespace, name: matches[0].name };
    const second = decide(alert, this.policy, this.guards, Date.now(), pod);
    if (second.kind === 'lookup') return skip('ambiguous', 'pod lookup did not settle');
    return this.respond(alert, second, deadline);
  }

  private async coalesced(alert: Alert, d: Act, deadline: Deadline): Promise<Outcome> {
    const key = `${d.action}:${d.pod.namespace}/${d.pod.name}`;
    const { promise, first } = this.coalescer.run(key, () => this.act(alert, d, deadline));
    const outcome = await promise;
    if (first) return outcome;
    return {
      decision: outcome.decision,
      result: 'duplicate',
      code: 'duplicate',
      reason: `coalesced with an earlier alert for ${d.pod.namespace}/${d.pod.name}: ${outcome.result}`,
      pod: d.pod,
      first: { result: outcome.result, reason: outcome.reason },
    };
  }

  private async act(alert: Alert, d: Act, deadline: Deadline): Promise<Outcome> {
    const decision = d.action;
    const base = { decision, pod: d.pod } as const;
    if (decision === 'log') return { ...base, result: 'logged', code: 'log', reason: `policy entry "${d.entry}": record only` };
    if (!this.kube) {
      return { ...base, result: 'dry-run', code: 'no-cluster', reason: `dry-run (no cluster configured): would ${decision} ${d.pod.namespace}/${d.pod.name} (policy entry "${d.entry}")` };
    }
    try {
      const pod = await this.kube.readPod(d.pod, deadline);
      if (!pod) return { ...base, result: 'already gone', code: 'not-found', reason: `pod ${d.pod.namespace}/${d.pod.name} does not exist` };
      const refusal = await this.verify(d, pod, deadline);
      if (refusal) {
        this.recordEvent(alert, d.pod, pod.uid, 'FalcoResponseRefused', `refused to ${decision}: ${refusal.reason}`);
        return { ...base, result: 'skipped', ...refusal };
      }
      let claim: LeaseRecord | undefined;
      if (this.coordinator) {
        const c = await this.coordinator.claim(pod, deadline);
        if (!c.won) {
          const first = c.outcome ?? { result: 'accepted' as const, reason: `being handled by replica ${c.holder}` };
          return { ...base, result: 'duplicate', code: 'claimed', reason: `claimed by replica ${c.holder}: ${c.outcome ? c.outcome.result : 'in progress'}`, first };
        }
        claim = c.lease;
      }
      const outcome = await this.actClaimed(alert, d, pod, deadline);
      if (claim && this.coordinator) {
        const coordinator = this.coordinator;
        // A failure or a refused action gives the claim up, so that the next alert can act.
        if (outcome.result === 'failed' || outcome.result === 'rate-limited') await coordinator.release(claim, deadline).catch(() => undefined);
        else await coordinator.settle(claim, outcome.result, outcome.reason, deadline).catch(() => undefined);
      }
      return outcome;
    } catch (e) {
      return failed(decision, e, d.pod);
    }
  }

  /** The action itself, once this replica holds the pod (or is the only replica). */
  private async actClaimed(alert: Alert, d: Act, pod: PodSnapshot, deadline: Deadline): Promise<Outcome> {
    const kube = this.kube as Kube;
    const decision = d.action;
    const base = { decision, pod: d.pod } as const;
    try {
      let allowed = this.limiter.tryTake();
      if (allowed && this.coordinator && !(await this.coordinator.takeSlot(deadline))) {
        this.limiter.giveBack();
        allowed = false;
      }
      if (!allowed) {
        const reason = `blast-radius limit reached: ${this.settings.actionLimit} actions per ${this.settings.actionWindowMs / 1000} s${this.coordinator ? ' across all replicas' : ''}`;
        this.recordEvent(alert, d.pod, pod.uid, 'FalcoResponseRateLimited', `not ${decision === 'delete' ? 'deleted' : 'isolated'}: ${reason}`);
        return { ...base, result: 'rate-limited', code: 'rate-limited', reason };
      }
      const result = decision === 'delete'
        ? await kube.deletePod(d.pod, pod.uid, d.gracePeriodSeconds ?? this.settings.gracePeriodSeconds, this.settings.dryRun, deadline)
        : await this.isolate(d.pod, pod, deadline);
      if (result === 'gone') {
        this.limiter.giveBack();
        return { ...base, result: 'already gone', code: 'not-found', reason: `pod ${d.pod.namespace}/${d.pod.name} was gone before the ${decision}` };
      }
      if (result === 'replaced') {
        this.limiter.giveBack();
        return { ...base, result: 'replaced', code: 'uid-precondition', reason: `pod replaced, not ${decision === 'delete' ? 'deleted' : 'isolated'}: ${d.pod.namespace}/${d.pod.name} now has another UID` };
      }
      const verb = decision === 'delete' ? 'deleted' : 'isolated';
      const outcome: Outcome = this.settings.dryRun
        ? { ...base, result: 'dry-run', code: 'dry-run', reason: `dry-run: would have ${verb} ${d.pod.namespace}/${d.pod.name} (server-side dry run passed)` }
        : { ...base, result: DONE[decision], code: decision, reason: `${verb} by policy entry "${d.entry}"` };
      this.recordEvent(alert, d.pod, pod.uid, this.settings.dryRun ? 'FalcoResponseDryRun' : decision === 'delete' ? 'FalcoResponseDeleted' : 'FalcoResponseIsolated', outcome.reason);
      return outcome;
    } catch (e) {
      if (e instanceof KubeError && e.code === 'guardrail') this.recordEvent(alert, d.pod, pod.uid, 'FalcoResponseRefused', `refused to ${decision} by the API server: ${e.message}`);
      return failed(decision, e, d.pod);
    }
  }

  /** Checks against the live pod: UID, container, opt-out labels. A refusal means: do not act. */
  private async verify(d: Act, pod: PodSnapshot, deadline: Deadline): Promise<{ code: string; reason: string } | undefined> {
    if (d.podUid && d.podUid !== pod.uid) {
      return { code: 'uid-mismatch', reason: `the alert's k8s.pod.uid ${d.podUid} is not the uid of ${pod.namespace}/${pod.name} (${pod.uid}): stale or forged alert` };
    }
    if (d.containerId && !pod.containerIds.some((id) => id.startsWith(d.containerId as string))) {
      return { code: 'container-mismatch', reason: `container ${d.containerId} does not belong to ${pod.namespace}/${pod.name}: stale or forged alert` };
    }
    if (pod.deleting) return { code: 'terminating', reason: `${pod.namespace}/${pod.name} is already being deleted` };
    if (pod.labels[this.settings.optOutLabel] === 'true') {
      return { code: 'opt-out', reason: `pod carries the opt-out label ${this.settings.optOutLabel}=true` };
    }
    const nsLabels = await this.namespaceLabels(pod.namespace, deadline);
    if (nsLabels && nsLabels[this.settings.optOutLabel] === 'true') {
      return { code: 'opt-out', reason: `namespace ${pod.namespace} carries the opt-out label ${this.settings.optOutLabel}=true` };
    }
    return undefined;
  }

  private eventAllowed(key: string): boolean {
    const now = Date.now();
    const last = this.recentEvents.get(key);
    if (last !== undefined && now - last < Math.max(this.settings.coalesceWindowMs, 1000)) return false;
    this.eventTokens = Math.min(EVENT_BURST, this.eventTokens + ((now - this.eventTokensAt) / 1000) * EVENTS_PER_SECOND);
    this.eventTokensAt = now;
    if (this.eventTokens < 1) return false;
    this.eventTokens--;
    if (this.recentEvents.size >= 10_000) this.recentEvents.clear();
    this.recentEvents.set(key, now);
    return true;
  }

  private async namespaceLabels(namespace: string, deadline: Deadline): Promise<Record<string, string> | null> {
    const cached = this.namespaces.get(namespace);
    if (cached && Date.now() - cached.at < NAMESPACE_TTL_MS) return cached.labels;
    const labels = (await this.kube?.readNamespaceLabels(namespace, deadline)) ?? null;
    if (this.namespaces.size >= 1000) this.namespaces.clear();
    this.namespaces.set(namespace, { labels, at: Date.now() });
    return labels;
  }

  private async isolate(ref: PodRef, pod: PodSnapshot, deadline: Deadline) {
    const kube = this.kube as Kube;
    await kube.ensureQuarantinePolicy(ref.namespace, this.settings.quarantineLabel, this.settings.dryRun, deadline);
    return kube.labelPod(ref, pod.uid, this.settings.quarantineLabel, Object.keys(pod.labels).length > 0, this.settings.dryRun, deadline);
  }

  /** Best effort and off the answer's path: an Event that cannot be written is logged, never changes the outcome. */
  private recordEvent(alert: Alert, pod: PodRef, podUid: string | undefined, reason: string, what: string): void {
    const kube = this.kube;
    if (!kube || !this.settings.recordEvents) return;
    if (!this.eventAllowed(`${reason}:${pod.namespace}/${pod.name}`)) {
      this.eventsSuppressed++;
      return;
    }
    const note = `${what} (Falco rule "${alert.rule}", priority ${alert.priority})`;
    // Its own deadline: the alert's may end with the answer.
    const deadline = new Deadline(this.settings.eventDeadlineMs);
    const write = kube
      .createEvent({ pod, podUid, reason, note, type: reason === 'FalcoResponseDryRun' ? 'Normal' : 'Warning' }, deadline)
      .catch((e: unknown) => this.warn('could not record a Kubernetes Event', { pod: `${pod.namespace}/${pod.name}`, reason, error: (e as Error).message }))
      .finally(() => {
        deadline.dispose();
        this.pendingEvents.delete(write);
      });
    this.pendingEvents.add(write);
  }
}
