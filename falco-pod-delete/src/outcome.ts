// What happened to an alert, and the one place that maps it to an HTTP status.
import type { PodRef } from './alert.js';
import type { ActionKind } from './actions/index.js';
import type { OutcomeCode, Result } from './codes.js';
import type { IsolationFacts } from './isolation.js';
import { KubeError } from './kube/kube-error.js';

export type DecisionName = ActionKind | 'skip' | 'reject';

/** The workload a pod belonged to, as the answer, the audit line and the Event name it. */
export interface WorkloadFacts {
  kind: string;
  name?: string;
  replicas?: number;
  ready?: number;
  /** What the action means for it: recreated by its controller, or gone for good. */
  effect: string;
}

export type { OutcomeCode, Result } from './codes.js';

export interface Outcome {
  decision: DecisionName;
  result: Result;
  /** Machine-readable reason: one of the code registry's (codes.ts): a decline code, a Kubernetes error code, or the action's name. */
  code: OutcomeCode;
  reason: string;
  pod?: PodRef;
  workload?: WorkloadFacts;
  /** Evidence records written before the action (their kinds), and what could not be collected, with why. */
  evidence?: { written: string[]; missing: string[] };
  /** For rejected input: the 4xx to answer with. */
  rejectStatus?: 400 | 401 | 413 | 415;
  error?: { code: string; permission?: string; policy?: string; apiStatus?: number };
  retryAfterSeconds?: number;
  /** For an isolation: whether it holds, which other NetworkPolicies still allow traffic, whether the pod was detached. */
  isolation?: IsolationFacts;
  /** For an isolation: the pod's ServiceAccount, whether its token is mounted, and that it stays valid while the pod lives. */
  credentials?: { serviceAccount: string; tokenMounted: boolean; note: string };
  /** For a policy entry with a node action (actions: [isolate, cordon]): what was done to the pod's node, and why. */
  node?: NodeOutcome;
  /** For a rate-limited alert: the limit that binds (its name and value), and what fills it, as counted. */
  budget?: { limit: 'ACTION_LIMIT' | 'NAMESPACE_ACTION_LIMIT'; of: number; taken: number; reservedElsewhere: number; reservedHere: number };
  /** For a duplicate: the outcome of the alert it was coalesced into. */
  first?: { result: Result; reason: string };
}

export interface NodeOutcome {
  name: string;
  outcome: 'cordoned' | 'skipped';
  code: string;
  reason: string;
}

export function failed(decision: DecisionName, e: unknown, pod?: PodRef): Outcome {
  if (e instanceof KubeError) {
    return {
      decision,
      result: 'failed',
      code: e.code,
      reason: e.message,
      pod,
      error: { code: e.code, permission: e.code === 'forbidden' ? e.permission : undefined, policy: e.policy, apiStatus: e.status },
      retryAfterSeconds: e.retryAfterSeconds,
    };
  }
  return { decision, result: 'failed', code: 'internal', reason: `internal error: ${(e as Error)?.message ?? String(e)}`, pod };
}

const KUBE_STATUS: Record<string, number> = {
  forbidden: 403, // passed through so the caller's log shows the RBAC problem for what it is
  guardrail: 422, // the server's admission policy refused: not an RBAC gap, and nothing to retry
  unauthorized: 502,
  'rate-limited': 503,
  unavailable: 503,
  timeout: 504,
  'bad-response': 502,
  rejected: 502,
  'quarantine-policy-altered': 409, // a state of the cluster a human must look at, not a failure to retry
};

export function httpStatus(o: Outcome): number {
  switch (o.result) {
    case 'rejected':
      return o.rejectStatus ?? 400;
    case 'rate-limited':
      return 429;
    case 'accepted':
      return 202;
    case 'failed':
      return KUBE_STATUS[o.code] ?? 500;
    case 'duplicate':
      return o.first && (o.first.result === 'failed' || o.first.result === 'rate-limited') ? 503 : 200;
    default:
      return 200;
  }
}
