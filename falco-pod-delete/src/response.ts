// The response stage, as its steps: read and verify the pod, resolve its workload and guard availability,
// take a slot of the budget, collect evidence, act (delete, evict, isolate) under the pod's uid and
// resourceVersion preconditions (changed meanwhile: read again, decide again), record.
import { type ActResult, type ActionContext, DRY_RUN_EVENT, ISOLATE, DELETE, actionOf } from './actions/index.js';
import { credentialsOf, detachedOnce, isolationEffect } from './actions/isolate.js';
import type { IsolationFacts } from './isolation.js';
import { codeInfo } from './codes.js';
import { loadConfig } from './config.js';
import type { Alert, PodRef } from './alert.js';
import { ActionLimiter, Coalescer } from './bounds.js';
import { BudgetSlots, type Coordinator, type Refusal, type Slot } from './coordination.js';
import { AfterAnswer, type Deadline } from './deadline.js';
import { type Decision, type Guards, decide } from './decision.js';
import { EventRecorder } from './events.js';
import { EvidenceCollector, type EvidenceSink } from './evidence.js';
import { type Kube, KubeError, type PodSnapshot } from './kube/index.js';
import { type Outcome, type OutcomeCode, type WorkloadFacts, failed } from './outcome.js';
import type { ActionKind, Policy } from './policy.js';
import { NodeLookups } from './lookup.js';
import { type NodeSettings, NodeResponder } from './nodes.js';
import { PROOF_FAILED, Verifier } from './verify.js';
import { Workloads } from './workload.js';
import type { PodView } from './view.js';

export interface ResponseSettings {
  dryRun: boolean;
  gracePeriodSeconds: number | undefined;
  optOutLabel: string;
  quarantineLabel: string;
  recordEvents: boolean;
  coalesceWindowMs: number;
  actionLimit: number;
  actionWindowMs: number;
  namespaceActionLimit: number;
  eventDeadlineMs: number;
}

type Act = Extract<Decision, { kind: 'act' }>;

/** What the response stage is built from: the Kubernetes seam (null: no cluster, dry-run answers), its settings, the policy and guards. */
export interface ResponderDeps {
  kube: Kube | null;
  settings: ResponseSettings;
  policy: Policy;
  guards: Guards;
  warn: (msg: string, extra: object) => void;
  /** Set with COORDINATION=cluster: the shared budget goes through the API. */
  coordinator?: Coordinator;
  evidenceSink?: EvidenceSink;
  /** The local view of pods and namespaces, when on: checks ask it first. */
  view?: PodView;
  /** The node's part (cordon): its guards, budget and, with COORDINATION=cluster, the node budget's Lease. */
  nodes?: Omit<NodeSettings, 'dryRun' | 'actionWindowMs'> & { coordinator?: Coordinator };
}

/** The node settings as configured by default (config.ts), for a Responder built without them (tests). */
function nodeDefaults(): NonNullable<ResponderDeps['nodes']> {
  const { criticalNodes, minSchedulableNodes, nodeActionLimit, nodeLabel } = loadConfig({});
  return { criticalNodes, minSchedulableNodes, nodeActionLimit, nodeLabel };
}

const DONE = (action: ActionKind): Outcome['result'] => actionOf(action).done;

/**
 * Outcomes remembered for the coalescing window: only what is true of the pod itself, whoever sent the alert
 * (acted on, gone, replaced, terminating, a guard on the pod's or its namespace's own state). A refusal that
 * rests on the alert's own claims (container or UID mismatch), a failure and a rate limit are never
 * remembered: the next alert decides afresh. The code registry says which (codes.ts, `remembered`).
 */
export const settles = (o: Outcome) => codeInfo(o.code)?.remembered === true;
/** Reads and decisions again after an action found the pod changed since it was verified (409/422). */
const MAX_REDECIDE = 2;
/** Errors after which the request may have reached the server and acted. */
const MAYBE_ACTED = new Set(['timeout', 'unavailable', 'bad-response']);

const describeWorkload = (w: WorkloadFacts) => (w.kind === 'none' ? w.effect : `${w.kind} ${w.name}${w.replicas !== undefined ? ` (${w.ready ?? 0}/${w.replicas} ready)` : ''}: ${w.effect}`);

export class Responder {
  readonly limiter: ActionLimiter;
  /** The pod budget: the limiter, and the shared Lease with COORDINATION=cluster. */
  private readonly slots: BudgetSlots;
  readonly coalescer: Coalescer<Outcome>;
  private readonly events: EventRecorder;
  private readonly verifier: Verifier | undefined;
  private readonly workloads: Workloads | undefined;
  private readonly evidence: EvidenceCollector | undefined;
  private readonly afterAnswer: AfterAnswer;
  readonly lookups: NodeLookups | undefined;
  readonly nodes: NodeResponder | undefined;

  private readonly kube: Kube | null;
  private readonly settings: ResponseSettings;
  private readonly policy: Policy;
  private readonly guards: Guards;
  readonly coordinator: Coordinator | undefined;
  readonly view: PodView | undefined;

  constructor(deps: ResponderDeps) {
    const { kube, settings, warn, evidenceSink = () => undefined, view } = deps;
    this.kube = kube;
    this.settings = settings;
    this.policy = deps.policy;
    this.guards = deps.guards;
    this.coordinator = deps.coordinator;
    this.view = view;
    this.limiter = new ActionLimiter(settings.actionLimit, settings.actionWindowMs, settings.namespaceActionLimit);
    this.slots = new BudgetSlots(this.limiter, this.coordinator);
    this.coalescer = new Coalescer<Outcome>(settings.coalesceWindowMs, 10_000, settles);
    this.afterAnswer = new AfterAnswer(settings.eventDeadlineMs);
    this.events = new EventRecorder(kube, settings, warn, this.afterAnswer);
    if (kube) {
      this.verifier = new Verifier(kube, settings.optOutLabel, view);
      this.workloads = new Workloads(kube, Math.max(settings.coalesceWindowMs, 1000));
      this.evidence = new EvidenceCollector(kube, evidenceSink);
      this.lookups = new NodeLookups(kube);
      const n = deps.nodes ?? nodeDefaults();
      this.nodes = new NodeResponder(kube, { ...n, dryRun: settings.dryRun, actionWindowMs: settings.actionWindowMs }, this.events, n.coordinator);
    }
  }

  /** Writes that follow the answer (Events, the re-read after a timeout): a graceful stop waits for them. */
  get pendingWrites(): Set<Promise<void>> {
    return this.afterAnswer.pending;
  }

  get eventsSuppressed(): number {
    return this.events.suppressed;
  }

  /** A caller token is configured (so this request carried it): the alert's claims are trusted. */
  private get authenticated(): boolean {
    return !this.guards.requireProof;
  }

  async respond(alert: Alert, decision: Decision, deadline: Deadline): Promise<Outcome> {
    switch (decision.kind) {
      case 'reject':
        return { decision: 'reject', result: 'rejected', code: decision.code, reason: decision.reason };
      case 'decline':
        // The pod was never read: an Event only for an authenticated caller, never about a name anyone can invent.
        if (decision.refused && decision.pod && this.authenticated) this.events.record(alert, decision.pod, undefined, 'FalcoResponseRefused', `refused to ${decision.refused}: ${decision.reason}`);
        return { decision: 'skip', result: 'skipped', code: decision.code, reason: decision.reason, pod: decision.pod };
      case 'lookup':
        return this.lookup(alert, decision, deadline);
      case 'act':
        return this.coalesced(alert, decision, deadline);
    }
  }

  private async lookup(alert: Alert, d: Extract<Decision, { kind: 'lookup' }>, deadline: Deadline): Promise<Outcome> {
    const skip = (code: OutcomeCode, reason: string): Outcome => ({ decision: 'skip', result: 'skipped', code, reason });
    if (!this.lookups) return skip('no-cluster', `would look for container ${d.containerId} among the pods on node ${d.node}, but no cluster is configured`);
    let pods: PodSnapshot[];
    // The view's container index answers with no call; a miss (a container started a moment ago) asks the API.
    const viewed = this.view?.podsWithContainer(d.node, d.containerId);
    if (viewed && viewed.length > 0) return this.lookedUp(alert, d, viewed, deadline);
    try {
      const found = await this.lookups.podsOn(d.node, deadline);
      if ('throttled' in found) return skip('lookup-throttled', `node ${d.node} is not known to run pods, and lookups on unknown nodes are over their rate: not looked up (send alerts with k8s.pod.name and k8s.ns.name, which Falco's container plugin adds)`);
      pods = found.pods;
    } catch (e) {
      return failed('skip', e);
    }
    return this.lookedUp(alert, d, pods, deadline);
  }

  private lookedUp(alert: Alert, d: Extract<Decision, { kind: 'lookup' }>, pods: PodSnapshot[], deadline: Deadline): Promise<Outcome> | Outcome {
    const skip = (code: OutcomeCode, reason: string): Outcome => ({ decision: 'skip', result: 'skipped', code, reason });
    const matches = pods.filter((p) => p.containerIds.some((id) => id.startsWith(d.containerId)));
    if (matches.length === 0) return skip('no-pod', `no pod on node ${d.node} runs container ${d.containerId}`);
    if (matches.length > 1) return skip('ambiguous', `${matches.length} pods on node ${d.node} run a container whose id starts with ${d.containerId}`);
    const pod = { namespace: matches[0].namespace, name: matches[0].name };
    const second = decide(alert, this.policy, this.guards, Date.now(), pod);
    if (second.kind === 'lookup') return skip('ambiguous', 'pod lookup did not settle');
    return this.respond(alert, second, deadline);
  }

  private async coalesced(alert: Alert, d: Act, deadline: Deadline): Promise<Outcome> {
    // Alerts share an outcome only when they claim the same: a forged alert with another container id or UID
    // for the same pod never answers for the real one, in flight or afterwards.
    const key = `${d.action}:${d.pod.namespace}/${d.pod.name}:${d.containerId ?? ''}:${d.podUid ?? ''}`;
    // While it is under way, Events wait (events.ts): none delays a containment on the API server.
    const { promise, first } = this.coalescer.run(key, async () => {
      this.events.busy.enter();
      try {
        return await this.act(alert, d, deadline);
      } finally {
        this.events.busy.leave();
      }
    });
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
    if (!actionOf(d.action).acts) return { ...base, result: DONE(d.action), code: d.action, reason: `policy entry "${d.entry}": record only` };
    if (!this.kube || !this.verifier || !this.workloads) {
      return { ...base, result: 'dry-run', code: 'no-cluster', reason: `dry-run (no cluster configured): would ${d.action} ${d.pod.namespace}/${d.pod.name} (policy entry "${d.entry}")` };
    }
    const kube = this.kube;
    let slot: Slot | undefined;
    const giveBack = () => {
      this.slots.giveBack(slot);
      slot = undefined;
    };
    try {
      // From the local view when it has the pod (no call); evidence needs the whole pod, so a read then.
      let pod: PodSnapshot | null | undefined = d.evidence ? undefined : this.view?.pod(d.pod);
      let fromView = pod !== undefined;
      let namespaceLabels = this.verifier.namespaceLabels(d.pod.namespace, deadline);
      if (!fromView) pod = await kube.readPod(d.pod, deadline);
      /** The pod and its namespace's labels from the API, not the view nor a cache. */
      const verifier = this.verifier;
      const readAgain = () => {
        fromView = false;
        namespaceLabels = verifier.namespaceLabels(d.pod.namespace, deadline, true);
        return kube.readPod(d.pod, deadline);
      };
      let verifiedUid: string | undefined;
      for (let attempt = 0; ; attempt++) {
        this.lookups?.seen(pod?.nodeName);
        if (!pod) {
          giveBack();
          return { ...base, result: 'already gone', code: 'not-found', reason: `pod ${d.pod.namespace}/${d.pod.name} does not exist${attempt > 0 ? ' (gone before the action)' : ''}` };
        }
        if (verifiedUid !== undefined && pod.uid !== verifiedUid) {
          giveBack();
          return { ...base, result: 'replaced', code: 'uid-precondition', reason: `pod replaced, not ${DONE(d.action)}: ${d.pod.namespace}/${d.pod.name} now has another UID` };
        }
        const refusal = await this.verifier.verify(d, pod, namespaceLabels);
        if (refusal && fromView) {
          // The view may lag: a refusal is confirmed against the API before it is answered (or remembered).
          pod = await readAgain();
          continue;
        }
        if (refusal) {
          giveBack();
          return this.refused(alert, d, d.action, pod, refusal);
        }
        const workload = await this.workloads.resolve(pod, deadline);
        const verdict = this.workloads.guard(workload, pod, d.action, d.workload);
        if ('refuse' in verdict) {
          giveBack();
          return { ...this.refused(alert, d, d.action, pod, verdict.refuse), workload };
        }
        const action = verdict.proceed;
        if (!slot) {
          const taken = await this.slots.take(d.pod.namespace, deadline);
          if ('which' in taken) return { ...this.rateLimited(alert, d, action, pod, taken), workload };
          slot = taken;
        }
        verifiedUid = pod.uid;
        const outcome = await this.actVerified(alert, d, action, pod, workload, giveBack, deadline);
        if (outcome !== 'changed') return this.withNode(alert, d, pod, { workload, ...outcome }, deadline);
        // Not the version verified (changed meanwhile, replaced, or acted on by another replica): read it and decide again.
        if (attempt >= MAX_REDECIDE) {
          giveBack();
          return { ...base, result: 'failed', code: 'conflict', reason: `pod ${d.pod.namespace}/${d.pod.name} kept changing between verification and ${action} (${attempt + 1} tries): not ${DONE(action)}`, workload };
        }
        pod = await readAgain();
      }
    } catch (e) {
      giveBack();
      return failed(d.action, e, d.pod);
    }
  }

  /**
   * The node's part (cordon) once the pod's action is done: on the node of the pod as verified, never the
   * alert's hostname. A pod action not done leaves the node as it is, and the answer says so.
   */
  private async withNode(alert: Alert, d: Act, pod: PodSnapshot, outcome: Outcome, deadline: Deadline): Promise<Outcome> {
    if (d.nodeActions.length === 0 || !this.nodes) return outcome;
    const contained = outcome.result === 'dry-run' || outcome.result === actionOf(outcome.decision as ActionKind)?.done;
    const node = contained ? await this.nodes.cordon(alert, d.pod, pod, d.entry, deadline) : NodeResponder.notContained(pod, `${outcome.result}: ${outcome.code}`);
    return { ...outcome, node };
  }

  /** The 429: the limit that binds, the actions taken in the window and what is held reserved, as counted. */
  private rateLimited(alert: Alert, d: Act, action: ActionKind, pod: PodSnapshot, r: Refusal): Outcome {
    const shared = this.coordinator !== undefined;
    const window = `per ${this.settings.actionWindowMs / 1000} s${shared ? ' across all replicas' : ''}`;
    const held = [
      ...(shared ? [`${r.heldElsewhere} reserved by other replicas`] : []),
      ...(r.heldHere > 0 ? [`${r.heldHere} reserved by this replica for alerts in flight`] : []),
    ];
    const counted = [`${r.taken} taken in the window${r.which === 'full' ? '' : ' there'}`, ...held].join(', ');
    const reason = r.which === 'full'
      ? `blast-radius limit reached: ${this.settings.actionLimit} actions ${window} (ACTION_LIMIT): ${counted}`
      : `blast-radius limit reached for namespace ${d.pod.namespace}: ${this.settings.namespaceActionLimit} of the ${this.settings.actionLimit} actions ${window} (NAMESPACE_ACTION_LIMIT): ${counted}`;
    this.events.record(alert, d.pod, pod.uid, 'FalcoResponseRateLimited', `not ${DONE(action)}: ${reason}`);
    return {
      decision: action,
      pod: d.pod,
      result: 'rate-limited',
      code: r.which === 'full' ? 'rate-limited' : 'namespace-rate-limited',
      reason,
      budget: { limit: r.which === 'full' ? 'ACTION_LIMIT' : 'NAMESPACE_ACTION_LIMIT', of: r.limit, taken: r.taken, reservedElsewhere: r.heldElsewhere, reservedHere: r.heldHere },
      // Retry-After: when the oldest counted action leaves the window; reservations come back sooner.
      retryAfterSeconds: r.heldElsewhere + r.heldHere > 0 ? 1 : r.frees !== undefined ? Math.max(1, Math.ceil((r.frees - Date.now()) / 1000)) : undefined,
    };
  }

  private refused(alert: Alert, d: Act, action: ActionKind, pod: PodSnapshot, r: { code: OutcomeCode; reason: string }): Outcome {
    // An alert whose proof failed gets no Event: it would let anyone write Events about any pod it can name.
    if (!PROOF_FAILED.has(r.code) || this.authenticated) this.events.record(alert, d.pod, pod.uid, 'FalcoResponseRefused', `refused to ${action}: ${r.reason}`);
    return { decision: d.action, pod: d.pod, result: 'skipped', ...r };
  }

  /** Once the pod is verified and a slot of the budget held: the evidence, the action, under the preconditions. */
  private async actVerified(alert: Alert, d: Act, chosen: ActionKind, pod: PodSnapshot, workload: WorkloadFacts, giveBack: () => void, deadline: Deadline): Promise<Outcome | 'changed'> {
    const { action, instead: insteadOf, note } = await this.requireHolds(alert, d, chosen, pod, workload, deadline);
    const base = { decision: action, pod: d.pod } as const;
    try {
      const evidence = d.evidence && this.evidence ? await this.evidence.collect(pod, workload, d.evidence, alert.uuid, deadline) : undefined;
      const result = await this.perform(action, d, pod, deadline, alert);
      this.coordinator?.refill();
      if (result === 'changed') return result;
      if (result !== 'done') giveBack();
      if (result === 'gone') return { ...base, evidence, result: 'already gone', code: 'not-found', reason: `pod ${d.pod.namespace}/${d.pod.name} was gone before the ${action}`, isolation: insteadOf?.isolation };
      if (typeof result === 'object') {
        const reason = `not evicted: a PodDisruptionBudget forbids it now (${result.blocked.slice(0, 300)})`;
        this.events.record(alert, d.pod, pod.uid, 'FalcoResponseRefused', reason);
        return { ...base, evidence, result: 'skipped', code: 'disruption-budget', reason };
      }
      this.workloads?.record(workload, pod);
      const dry = this.settings.dryRun;
      const instead = action !== d.action && !insteadOf ? ` instead of ${d.action} (${workload.kind} rule)` : '';
      const outcome: Outcome = insteadOf
        ? {
            ...base, evidence, result: dry ? 'dry-run' : DONE(action), code: dry ? 'dry-run' : 'isolation-would-not-hold', isolation: insteadOf.isolation,
            reason: `${dry ? 'dry-run: would have ' : ''}${DONE(action)} instead of isolated by policy entry "${d.entry}" (requireHolds): the isolation would not hold: ${insteadOf.why}`,
          }
        : dry
          ? { ...base, evidence, result: 'dry-run', code: 'dry-run', reason: `dry-run: would have ${DONE(action)} ${d.pod.namespace}/${d.pod.name}${instead} (server-side dry run passed)` }
          : { ...base, evidence, result: DONE(action), code: action, reason: `${DONE(action)} by policy entry "${d.entry}"${instead}${note}` };
      // What the action reports once done (an isolation: whether it holds), read after it, never in dry-run.
      const report = dry ? undefined : await actionOf(action).report?.(this.context(alert, d, pod, deadline));
      let facts = workload;
      if (action === ISOLATE) {
        const detached = detachedOnce(pod, this.settings.quarantineLabel);
        facts = { ...workload, effect: isolationEffect(workload.kind, workload.name, detached, pod.owner) };
        outcome.credentials = credentialsOf(pod);
        if (report?.isolation) outcome.isolation = report.isolation;
      }
      outcome.workload = facts;
      const holds = report?.isolation && !report.isolation.holds
        ? `; the isolation does not hold: ${report.isolation.unchecked ?? `NetworkPolicies ${report.isolation.allowedBy.join(', ')} still allow traffic to or from the pod`}`
        : '';
      this.events.record(alert, d.pod, pod.uid, dry ? DRY_RUN_EVENT : actionOf(action).eventReason, `${outcome.reason}${holds}; ${describeWorkload(facts)}`);
      return outcome;
    } catch (e) {
      if (e instanceof KubeError && e.code === 'guardrail') this.events.record(alert, d.pod, pod.uid, 'FalcoResponseRefused', `refused to ${action} by the API server: ${e.message}`);
      // Refused (403, admission, 4xx): nothing happened, the slot comes back. A timeout or a lost connection may
      // have acted all the same: the pod is read again after the answer, and the slot kept if it did (or if in doubt).
      if (e instanceof KubeError && MAYBE_ACTED.has(e.code)) this.afterAnswer.run(async (dl) => {
        if (!(await this.tookEffect(action, d.pod, pod, dl))) giveBack();
      });
      else giveBack();
      return failed(action, e, d.pod);
    }
  }

  /**
   * requireHolds: an isolation that would not hold (checked before it is made) deletes the pod instead, under the
   * same preconditions and slot, unless the workload guard forbids that deletion: then the pod is isolated all the
   * same (a partial isolation beats none), and `note` says why it was not deleted.
   */
  private async requireHolds(alert: Alert, d: Act, action: ActionKind, pod: PodSnapshot, workload: WorkloadFacts, deadline: Deadline): Promise<{ action: ActionKind; instead?: { isolation: IsolationFacts; why: string }; note: string }> {
    if (action !== ISOLATE || !d.requireHolds) return { action, note: '' };
    const isolation = (await actionOf(ISOLATE).report?.(this.context(alert, d, pod, deadline)))?.isolation;
    if (!isolation || isolation.holds) return { action, note: '' };
    const verdict = this.workloads?.guard(workload, pod, DELETE, d.workload);
    if (!verdict) return { action, note: '' };
    if ('proceed' in verdict && verdict.proceed !== ISOLATE) {
      return { action: DELETE, instead: { isolation, why: isolation.unchecked ?? `NetworkPolicies ${isolation.allowedBy.join(', ')} would still allow traffic to or from the pod` }, note: '' };
    }
    return { action, note: `; requireHolds: the isolation would not hold, but the pod was not deleted instead: ${'refuse' in verdict ? verdict.refuse.reason : `the policy entry says ${workload.kind === 'DaemonSet' ? 'daemonSets' : 'statefulSets'}: isolate`}` };
  }

  /** Whether the action shows on the pod as read again (the action's own test: a deletionTimestamp, a label). */
  private async tookEffect(action: ActionKind, ref: PodRef, before: PodSnapshot, deadline: Deadline): Promise<boolean> {
    if (this.settings.dryRun) return false;
    const now = await (this.kube as Kube).readPod(ref, deadline);
    return actionOf(action).tookEffect?.(before, now, this.settings.quarantineLabel) ?? false;
  }

  /** The action's own call, under the preconditions of the pod as verified. */
  private perform(action: ActionKind, d: Act, pod: PodSnapshot, deadline: Deadline, alert: Alert): Promise<ActResult> {
    const act = actionOf(action).act;
    if (!act) throw new Error(`action ${action} changes nothing and cannot be performed`);
    return act(this.context(alert, d, pod, deadline));
  }

  private context(alert: Alert, d: Act, pod: PodSnapshot, deadline: Deadline): ActionContext {
    return {
      kube: this.kube as Kube, ref: d.pod, pod, gracePeriodSeconds: d.gracePeriodSeconds ?? this.settings.gracePeriodSeconds, dryRun: this.settings.dryRun,
      quarantineLabel: this.settings.quarantineLabel, deadline, rule: alert.rule, entry: d.entry, now: new Date(),
    };
  }
}
