// The response stage, as its steps: read and verify the pod, resolve its workload and guard availability,
// claim it and take a slot of the budget, collect evidence, act (delete, evict, isolate), record.
import type { Alert, PodRef } from './alert.js';
import { ActionLimiter, Coalescer } from './bounds.js';
import type { Coordinator } from './coordination.js';
import { AfterAnswer, type Deadline } from './deadline.js';
import { type Decision, type Guards, decide } from './decision.js';
import { EventRecorder } from './events.js';
import { EvidenceCollector, type EvidenceSink } from './evidence.js';
import { type Kube, KubeError, type MutationResult, type PodSnapshot } from './kube.js';
import { type Outcome, type WorkloadFacts, failed } from './outcome.js';
import type { ActionKind, Policy } from './policy.js';
import { Verifier } from './verify.js';
import { Workloads } from './workload.js';

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

const DONE: Record<ActionKind, Outcome['result']> = { delete: 'deleted', evict: 'evicted', isolate: 'isolated', log: 'logged' };
const EVENT: Record<ActionKind, string> = { delete: 'FalcoResponseDeleted', evict: 'FalcoResponseEvicted', isolate: 'FalcoResponseIsolated', log: 'FalcoResponseLogged' };

/** Outcomes worth remembering for the coalescing window: a failure lets the next alert try again. */
const SETTLED = new Set<Outcome['result']>(['deleted', 'evicted', 'isolated', 'dry-run', 'already gone', 'replaced', 'skipped']);

const describeWorkload = (w: WorkloadFacts) => (w.kind === 'none' ? w.effect : `${w.kind} ${w.name}${w.replicas !== undefined ? ` (${w.ready ?? 0}/${w.replicas} ready)` : ''}: ${w.effect}`);

export class Responder {
  readonly limiter: ActionLimiter;
  readonly coalescer: Coalescer<Outcome>;
  private readonly events: EventRecorder;
  private readonly verifier: Verifier | undefined;
  private readonly workloads: Workloads | undefined;
  private readonly evidence: EvidenceCollector | undefined;
  private readonly afterAnswer: AfterAnswer;

  constructor(
    private readonly kube: Kube | null,
    private readonly settings: ResponseSettings,
    private readonly policy: Policy,
    private readonly guards: Guards,
    warn: (msg: string, extra: object) => void,
    /** Set for several replicas: claims and the shared budget go through the API. */
    private readonly coordinator?: Coordinator,
    evidenceSink: EvidenceSink = () => undefined,
  ) {
    this.limiter = new ActionLimiter(settings.actionLimit, settings.actionWindowMs);
    this.coalescer = new Coalescer<Outcome>(settings.coalesceWindowMs, 10_000, (o) => SETTLED.has(o.result));
    this.afterAnswer = new AfterAnswer(settings.eventDeadlineMs);
    this.events = new EventRecorder(kube, settings, warn, this.afterAnswer);
    if (kube) {
      this.verifier = new Verifier(kube, settings.optOutLabel);
      this.workloads = new Workloads(kube, Math.max(settings.coalesceWindowMs, 1000));
      this.evidence = new EvidenceCollector(kube, evidenceSink);
    }
  }

  /** Writes that follow the answer (Events, a claim's outcome, a slot given back): a graceful stop waits for them. */
  get pendingWrites(): Set<Promise<void>> {
    return this.afterAnswer.pending;
  }

  get eventsSuppressed(): number {
    return this.events.suppressed;
  }

  async respond(alert: Alert, decision: Decision, deadline: Deadline): Promise<Outcome> {
    switch (decision.kind) {
      case 'reject':
        return { decision: 'reject', result: 'rejected', code: decision.code, reason: decision.reason };
      case 'decline':
        if (decision.refused && decision.pod) this.events.record(alert, decision.pod, undefined, 'FalcoResponseRefused', `refused to ${decision.refused}: ${decision.reason}`);
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
      workload: outcome.workload,
      first: { result: outcome.result, reason: outcome.reason },
    };
  }

  private async act(alert: Alert, d: Act, deadline: Deadline): Promise<Outcome> {
    const base = { decision: d.action, pod: d.pod } as const;
    if (d.action === 'log') return { ...base, result: 'logged', code: 'log', reason: `policy entry "${d.entry}": record only` };
    if (!this.kube || !this.verifier || !this.workloads) {
      return { ...base, result: 'dry-run', code: 'no-cluster', reason: `dry-run (no cluster configured): would ${d.action} ${d.pod.namespace}/${d.pod.name} (policy entry "${d.entry}")` };
    }
    try {
      const namespaceLabels = this.verifier.namespaceLabels(d.pod.namespace, deadline);
      const pod = await this.kube.readPod(d.pod, deadline);
      if (!pod) return { ...base, result: 'already gone', code: 'not-found', reason: `pod ${d.pod.namespace}/${d.pod.name} does not exist` };
      const refusal = await this.verifier.verify(d, pod, namespaceLabels);
      if (refusal) return this.refused(alert, d, d.action, pod, refusal);
      const workload = await this.workloads.resolve(pod, deadline);
      const verdict = this.workloads.guard(workload, pod, d.action, d.workload);
      if ('refuse' in verdict) return { ...this.refused(alert, d, d.action, pod, verdict.refuse), workload };
      const action = verdict.proceed;
      if (!this.limiter.tryTake()) return { ...this.rateLimited(alert, d, action, pod), workload };
      // The claim (exactly once across replicas) and a slot of the cluster-wide budget: both must be held before
      // acting, and each is one write, so they are taken together; what turns out not to be needed is given back.
      const coordinator = this.coordinator;
      const [claimed, slot] = coordinator
        ? await Promise.allSettled([coordinator.claim(pod, deadline), coordinator.takeSlot(deadline)])
        : [undefined, undefined];
      const slotLease = slot?.status === 'fulfilled' && typeof slot.value === 'object' ? slot.value : undefined;
      const claim = claimed?.status === 'fulfilled' && claimed.value.won ? claimed.value.lease : undefined;
      const giveBack = () => {
        this.limiter.giveBack();
        if (slotLease && coordinator) this.afterAnswer.run((dl) => coordinator.giveBackSlot(slotLease, dl));
      };
      const releaseClaim = () => {
        if (claim && coordinator) this.afterAnswer.run((dl) => coordinator.release(claim, dl));
      };
      if (claimed?.status === 'rejected' || (claimed && !claim)) {
        giveBack();
        if (claimed.status === 'rejected') throw claimed.reason;
        const lost = claimed.value as Extract<Awaited<ReturnType<Coordinator['claim']>>, { won: false }>;
        const first = lost.outcome ?? { result: 'accepted' as const, reason: `being handled by replica ${lost.holder}` };
        return { ...base, result: 'duplicate', code: 'claimed', reason: `claimed by replica ${lost.holder}: ${lost.outcome ? lost.outcome.result : 'in progress'}`, workload, first };
      }
      if (slot?.status === 'rejected' || slot?.value === 'full') {
        this.limiter.giveBack();
        releaseClaim();
        if (slot.status === 'rejected') throw slot.reason;
        return { ...this.rateLimited(alert, d, action, pod), workload };
      }
      const outcome = { ...(await this.actClaimed(alert, d, action, pod, workload, giveBack, deadline)), workload };
      if (claim && coordinator) {
        // After the answer. A failure gives the claim up, so that the next alert can act; anything else is
        // recorded on it, so that replicas that lost it answer with what happened.
        if (outcome.result === 'failed') releaseClaim();
        else this.afterAnswer.run((dl) => coordinator.settle(claim, outcome.result, outcome.reason, dl));
      }
      return outcome;
    } catch (e) {
      return failed(d.action, e, d.pod);
    }
  }

  private rateLimited(alert: Alert, d: Act, action: ActionKind, pod: PodSnapshot): Outcome {
    const reason = `blast-radius limit reached: ${this.settings.actionLimit} actions per ${this.settings.actionWindowMs / 1000} s${this.coordinator ? ' across all replicas' : ''}`;
    this.events.record(alert, d.pod, pod.uid, 'FalcoResponseRateLimited', `not ${DONE[action]}: ${reason}`);
    return { decision: action, pod: d.pod, result: 'rate-limited', code: 'rate-limited', reason };
  }

  private refused(alert: Alert, d: Act, action: ActionKind, pod: PodSnapshot, r: { code: string; reason: string }): Outcome {
    this.events.record(alert, d.pod, pod.uid, 'FalcoResponseRefused', `refused to ${action}: ${r.reason}`);
    return { decision: d.action, pod: d.pod, result: 'skipped', ...r };
  }

  /** Once this replica holds the pod (or is the only replica) and a slot of the budget: the evidence, the action. */
  private async actClaimed(alert: Alert, d: Act, action: ActionKind, pod: PodSnapshot, workload: WorkloadFacts, giveBack: () => void, deadline: Deadline): Promise<Outcome> {
    const base = { decision: action, pod: d.pod } as const;
    try {
      const evidence = d.evidence && this.evidence ? await this.evidence.collect(pod, workload, d.evidence, alert.uuid, deadline) : undefined;
      const result = await this.perform(action, d, pod, deadline);
      if (result !== 'done') giveBack();
      if (result === 'gone') return { ...base, evidence, result: 'already gone', code: 'not-found', reason: `pod ${d.pod.namespace}/${d.pod.name} was gone before the ${action}` };
      if (result === 'replaced') return { ...base, evidence, result: 'replaced', code: 'uid-precondition', reason: `pod replaced, not ${DONE[action]}: ${d.pod.namespace}/${d.pod.name} now has another UID` };
      if (typeof result === 'object') {
        const reason = `not evicted: a PodDisruptionBudget forbids it now (${result.blocked.slice(0, 300)})`;
        this.events.record(alert, d.pod, pod.uid, 'FalcoResponseRefused', reason);
        return { ...base, evidence, result: 'skipped', code: 'disruption-budget', reason };
      }
      this.workloads?.record(workload, pod);
      const instead = action !== d.action ? ` instead of ${d.action} (${workload.kind} rule)` : '';
      const outcome: Outcome = this.settings.dryRun
        ? { ...base, evidence, result: 'dry-run', code: 'dry-run', reason: `dry-run: would have ${DONE[action]} ${d.pod.namespace}/${d.pod.name}${instead} (server-side dry run passed)` }
        : { ...base, evidence, result: DONE[action], code: action, reason: `${DONE[action]} by policy entry "${d.entry}"${instead}` };
      this.events.record(alert, d.pod, pod.uid, this.settings.dryRun ? 'FalcoResponseDryRun' : EVENT[action], `${outcome.reason}; ${describeWorkload(workload)}`);
      return outcome;
    } catch (e) {
      if (e instanceof KubeError && e.code === 'guardrail') this.events.record(alert, d.pod, pod.uid, 'FalcoResponseRefused', `refused to ${action} by the API server: ${e.message}`);
      return failed(action, e, d.pod);
    }
  }

  private perform(action: ActionKind, d: Act, pod: PodSnapshot, deadline: Deadline): Promise<MutationResult | { blocked: string }> {
    const kube = this.kube as Kube;
    const grace = d.gracePeriodSeconds ?? this.settings.gracePeriodSeconds;
    if (action === 'delete') return kube.deletePod(d.pod, pod.uid, grace, this.settings.dryRun, deadline);
    if (action === 'evict') return kube.evictPod(d.pod, pod.uid, grace, this.settings.dryRun, deadline);
    return this.isolate(d.pod, pod, deadline);
  }

  private async isolate(ref: PodRef, pod: PodSnapshot, deadline: Deadline): Promise<MutationResult> {
    const kube = this.kube as Kube;
    await kube.ensureQuarantinePolicy(ref.namespace, this.settings.quarantineLabel, this.settings.dryRun, deadline);
    return kube.labelPod(ref, pod.uid, this.settings.quarantineLabel, Object.keys(pod.labels).length > 0, this.settings.dryRun, deadline);
  }
}
