// The decision: a pure function of the alert, the policy and the guards. No I/O; every safety rule lives here.
import { type Alert, type PodRef, containerIdOf, field, invalidNameReason, isInternalEvent, isTestEvent, targetOf } from './alert.js';
import { type NodeActionKind, actionOf } from './actions/index.js';
import { type Config, loadConfig } from './config.js';
import { type ActionKind, type EvidenceRules, type Policy, type WorkloadRules, entryMatches, evidenceRules, loadPolicy, matchPolicy, workloadRules } from './policy.js';

export interface Guards {
  criticalNamespaces: readonly string[];
  /** The function's own pod, when known: never acted on. */
  self: { namespace: string | undefined; name: string | undefined };
  maxAlertAgeSeconds: number;
  /**
   * No caller authentication is configured: the alert itself must prove it came from Falco watching that pod,
   * with a container.id that the pod (read before acting) runs. Knowing a running container's id is what an
   * unauthenticated caller does not have for free.
   */
  requireProof: boolean;
}

/** The guards as the function and explain both build them from the configuration (and the pod's own name, when known). */
export function guardsFrom(config: { criticalNamespaces: readonly string[]; maxAlertAgeSeconds: number; authTokenFile?: string }, self: Guards['self']): Guards {
  return { criticalNamespaces: config.criticalNamespaces, self, maxAlertAgeSeconds: config.maxAlertAgeSeconds, requireProof: config.authTokenFile === undefined };
}

/** What a decision needs (the function's and explain's alike): the configuration, the policy, the guards. */
export function decisionPartsFromEnv(env: Record<string, string | undefined>, opts: { policyFile?: string; self?: Guards['self'] } = {}): { config: Config; policy: Policy; guards: Guards } {
  const config = loadConfig(env);
  const policy = opts.policyFile ? loadPolicy({ policyFile: opts.policyFile }) : loadPolicy(config);
  return { config, policy, guards: guardsFrom(config, opts.self ?? { namespace: config.podNamespace, name: undefined }) };
}

export const UNPROVEN_REASON = 'the alert carries no container.id, and no caller authentication is configured: only alerts whose container.id belongs to the pod are acted on without it. Send alerts with a token (AUTH_TOKEN_FILE and Falcosidekick\'s webhook output), or keep container.id in Falco\'s output';

export type DeclineCode =
  | 'test-event'
  | 'internal-event'
  | 'no-pod'
  | 'ambiguous'
  | 'critical-namespace'
  | 'own-pod'
  | 'own-namespace'
  | 'no-policy-match'
  | 'stale'
  | 'future'
  | 'unproven';

export type Decision =
  | { kind: 'decline'; code: DeclineCode; reason: string; pod?: PodRef; refused?: ActionKind }
  | { kind: 'reject'; code: 'invalid-name'; reason: string }
  | { kind: 'lookup'; node: string; containerId: string }
  | {
      kind: 'act';
      action: ActionKind;
      pod: PodRef;
      entry: string;
      gracePeriodSeconds: number | undefined;
      containerId: string | undefined;
      podUid: string | undefined;
      workload: WorkloadRules;
      evidence: EvidenceRules | undefined;
      /** isolate: delete instead when the isolation would not hold. */
      requireHolds: boolean;
      /** Node actions to do once the pod's is done (cordon), on the verified pod's node. */
      nodeActions: NodeActionKind[];
    };

const FUTURE_SKEW_MS = 60_000;

/** Guards no policy can override, for a pod that is known. */
export function guardPod(pod: PodRef, guards: Guards): Decision | undefined {
  if (guards.criticalNamespaces.includes(pod.namespace)) {
    return { kind: 'decline', code: 'critical-namespace', reason: `namespace ${pod.namespace} is critical: never acted on`, pod };
  }
  if (guards.self.name === pod.name && (guards.self.namespace === undefined || guards.self.namespace === pod.namespace)) {
    return { kind: 'decline', code: 'own-pod', reason: `${pod.namespace}/${pod.name} is this function's own pod`, pod };
  }
  if (guards.self.namespace === pod.namespace) {
    return { kind: 'decline', code: 'own-namespace', reason: `namespace ${pod.namespace} is this function's own namespace: never acted on`, pod };
  }
  return undefined;
}

function ageDecision(alert: Alert, guards: Guards, now: number, pod?: PodRef): Decision | undefined {
  const age = now - alert.time.getTime();
  if (age > guards.maxAlertAgeSeconds * 1000) {
    return { kind: 'decline', code: 'stale', reason: `alert is ${Math.round(age / 1000)} s old, older than the ${guards.maxAlertAgeSeconds} s limit`, pod };
  }
  if (age < -FUTURE_SKEW_MS) {
    return { kind: 'decline', code: 'future', reason: `alert time ${alert.time.toISOString()} is in the future`, pod };
  }
  return undefined;
}

/**
 * What to do about an alert. `resolved` is the pod found through the node's pods when the alert named none
 * (the second pass after a `lookup`); the same guards and policy apply to it.
 */
export function decide(alert: Alert, policy: Policy, guards: Guards, now: number, resolved?: PodRef): Decision {
  if (isTestEvent(alert)) return { kind: 'decline', code: 'test-event', reason: 'Falcosidekick test event: acknowledged, never acted on' };
  if (isInternalEvent(alert)) return { kind: 'decline', code: 'internal-event', reason: 'Falco internal event: acknowledged, never acted on' };

  const target = resolved ? { kind: 'pod' as const, pod: resolved } : targetOf(alert);
  if (target.kind === 'ambiguous') return { kind: 'decline', code: 'ambiguous', reason: `ambiguous pod reference: ${target.reason}` };
  const containerId = containerIdOf(alert);

  if (target.kind === 'none') {
    const node = alert.hostname;
    const couldMatch = policy.entries.some((e) => actionOf(e.action).acts && entryMatches({ ...e, match: { ...e.match, namespaces: undefined } }, alert, undefined));
    if (containerId && node && couldMatch && invalidNodeName(node) === undefined) {
      return ageDecision(alert, guards, now) ?? { kind: 'lookup', node, containerId };
    }
    return { kind: 'decline', code: 'no-pod', reason: target.reason };
  }

  const pod = target.pod;
  const invalid = invalidNameReason(pod);
  if (invalid) return { kind: 'reject', code: 'invalid-name', reason: invalid };
  const matched = matchPolicy(policy, alert, pod);
  const guarded = guardPod(pod, guards);
  // A guard that stops what the policy would have done is recorded as a refusal (and gets an Event).
  if (guarded) return matched && guarded.kind === 'decline' ? { ...guarded, refused: matched.entry.action } : guarded;

  if (!matched) return { kind: 'decline', code: 'no-policy-match', reason: `no policy entry matches rule "${alert.rule}"`, pod };
  const stale = ageDecision(alert, guards, now, pod);
  if (stale) return stale;

  if (guards.requireProof && !containerId && actionOf(matched.entry.action).acts) {
    return { kind: 'decline', code: 'unproven', reason: UNPROVEN_REASON, pod, refused: matched.entry.action };
  }

  const uid = field(alert, 'k8s.pod.uid');
  return {
    kind: 'act',
    action: matched.entry.action,
    pod,
    entry: matched.entry.name,
    gracePeriodSeconds: matched.entry.gracePeriodSeconds,
    containerId,
    podUid: typeof uid === 'string' ? uid : undefined,
    workload: workloadRules(matched.entry),
    evidence: evidenceRules(matched.entry),
    requireHolds: matched.entry.requireHolds === true,
    nodeActions: matched.entry.nodeActions ?? [],
  };
}

function invalidNodeName(node: string): string | undefined {
  return invalidNameReason({ namespace: 'x', name: node });
}
