// What runs the pod: the owner chain (ReplicaSet -> Deployment, StatefulSet, DaemonSet, Job -> CronJob, or none),
// and the availability guard that keeps a service up while its compromised pod goes.
import { CONTROLLER_KINDS, type ControllerStatus, type Kube, type PodSnapshot, type WorkloadRef } from './kube/index.js';
import type { Deadline } from './deadline.js';
import type { WorkloadFacts } from './outcome.js';
import { ISOLATE, actionOf } from './actions/index.js';
import type { ActionKind, WorkloadRules } from './policy.js';
import type { Refusal } from './verify.js';

const EFFECT: Record<string, string> = {
  Deployment: 'its Deployment recreates it from the same image: fix the workload',
  ReplicaSet: 'its ReplicaSet recreates it from the same image: fix the workload',
  StatefulSet: 'its StatefulSet recreates it under the same name: fix the workload',
  DaemonSet: 'its DaemonSet recreates it on the same node: fix the workload',
  Job: 'its Job may start it again (backoffLimit)',
  CronJob: "its CronJob's next run starts it again",
};

export type WorkloadVerdict = { proceed: ActionKind } | { refuse: Refusal };

/** The minimum ready replicas that must remain, from a number or a percentage of the desired replicas. */
export function minimumReady(rule: number | string, desired: number): number {
  if (typeof rule === 'number') return rule;
  return Math.ceil((Number(rule.replace('%', '')) / 100) * desired);
}

export class Workloads {
  private readonly cache = new Map<string, { value: ControllerStatus | null; at: number }>();
  /** Pods acted on per workload within the window: the status read lags behind our own actions. */
  private readonly acted = new Map<string, Map<string, number>>();

  constructor(private readonly kube: Kube, private readonly windowMs: number) {}

  async resolve(pod: PodSnapshot, deadline: Deadline): Promise<WorkloadFacts> {
    let ref: WorkloadRef | undefined = pod.owner;
    if (!ref) return { kind: 'none', effect: 'a bare pod: gone for good once deleted' };
    for (let hop = 0; hop < 3; hop++) {
      if (!(CONTROLLER_KINDS as readonly string[]).includes(ref.kind)) {
        return { kind: ref.kind, name: ref.name, effect: `owned by a ${ref.kind}, which the function does not read: its controller may recreate it` };
      }
      const status: ControllerStatus | null = await this.read(pod.namespace, ref, deadline);
      if (!status) return { kind: ref.kind, name: ref.name, effect: `its ${ref.kind} was not found` };
      const up = status.owner;
      if (up && ((ref.kind === 'ReplicaSet' && up.kind === 'Deployment') || (ref.kind === 'Job' && up.kind === 'CronJob'))) {
        if (up.kind === 'CronJob') return { kind: 'CronJob', name: up.name, effect: EFFECT.CronJob };
        ref = up;
        continue;
      }
      return { kind: status.kind, name: status.name, replicas: status.replicas, ready: status.ready, effect: EFFECT[status.kind] };
    }
    return { kind: ref.kind, name: ref.name, effect: 'an owner chain too long to follow' };
  }

  /** The entry's per-kind switch and availability minimum, for this pod of this workload. */
  guard(w: WorkloadFacts, pod: PodSnapshot, action: ActionKind, rules: WorkloadRules): WorkloadVerdict {
    let act = action;
    if (w.kind === 'DaemonSet' || w.kind === 'StatefulSet') {
      const [rule, key, code] = w.kind === 'DaemonSet' ? ([rules.daemonSets, 'daemonSets', 'daemonset'] as const) : ([rules.statefulSets, 'statefulSets', 'statefulset'] as const);
      if (rule === 'skip') return { refuse: { code, reason: `${pod.namespace}/${pod.name} belongs to ${w.kind} ${w.name}, and the policy entry says ${key}: skip` } };
      if (rule === 'isolate') act = ISOLATE;
    }
    if (actionOf(act).removesPod && w.kind !== 'DaemonSet' && w.replicas !== undefined) {
      const min = minimumReady(rules.minHealthyReplicas, w.replicas);
      const others = [...(this.recent(w, pod.namespace)?.keys() ?? [])].filter((uid) => uid !== pod.uid).length;
      const remaining = (w.ready ?? 0) - (pod.ready ? 1 : 0) - others;
      if (remaining < min) {
        return { refuse: { code: 'availability', reason: `${actionOf(act).doing} ${pod.namespace}/${pod.name} would leave ${w.kind} ${w.name} ${Math.max(remaining, 0)} ready of ${w.replicas} replicas, below the minimum of ${min} (minHealthyReplicas: ${rules.minHealthyReplicas})` } };
      }
    }
    return { proceed: act };
  }

  /** Counts an action against its workload until the window passes (or the status catches up). */
  record(w: WorkloadFacts, pod: PodSnapshot): void {
    if (w.replicas === undefined) return;
    const key = `${pod.namespace}/${w.kind}/${w.name}`;
    const uids = this.acted.get(key) ?? new Map<string, number>();
    uids.set(pod.uid, Date.now());
    if (this.acted.size >= 10_000) this.acted.clear();
    this.acted.set(key, uids);
  }

  private recent(w: WorkloadFacts, namespace: string): Map<string, number> | undefined {
    const uids = this.acted.get(`${namespace}/${w.kind}/${w.name}`);
    const now = Date.now();
    for (const [uid, at] of uids ?? []) if (now - at >= this.windowMs) uids?.delete(uid);
    return uids;
  }

  private async read(namespace: string, ref: WorkloadRef, deadline: Deadline): Promise<ControllerStatus | null> {
    const key = `${namespace}/${ref.kind}/${ref.name}`;
    const cached = this.cache.get(key);
    if (cached && Date.now() - cached.at < this.windowMs) return cached.value;
    const value = await this.kube.readController(namespace, ref, deadline);
    if (this.cache.size >= 10_000) this.cache.clear();
    this.cache.set(key, { value, at: Date.now() });
    return value;
  }
}
