// Every outcome code the function can answer, in one table: the outcome (result) and HTTP status it comes
// with, whether the outcome is remembered for the coalescing window, which Event it writes, and what it means.
// `Outcome.code` is typed from it; README's "Outcome codes" table is checked against it (test/codes.test.ts).
// It sits low in the import graph: the action registry and nothing else.
import { ACTIONS, type ActionDone, DRY_RUN_EVENT } from './actions/index.js';
import { deleteAction } from './actions/delete.js';

export type Result =
  | ActionDone
  | 'dry-run'
  | 'already gone'
  | 'replaced'
  | 'skipped'
  | 'duplicate'
  | 'rate-limited'
  | 'rejected'
  | 'failed'
  /** RESPONSE_MODE=async: decided, acting in the background; the final outcome goes to the audit line. */
  | 'accepted';

export interface CodeInfo {
  /** The outcomes (and HTTP statuses) it is answered with: most codes have one. */
  uses: ReadonlyArray<{ result: Result; status: number }>;
  /** Remembered for the coalescing window: true of the pod itself, whoever sent the alert. */
  remembered: boolean;
  /** The Kubernetes Event it writes on the pod, if any ("refused, authenticated": only for an authenticated caller). */
  event?: string;
  meaning: string;
}

const REFUSED = 'FalcoResponseRefused';
const REFUSED_AUTHENTICATED = 'FalcoResponseRefused (authenticated callers only)';
const skipped = (remembered: boolean, meaning: string, event?: string): CodeInfo => ({ uses: [{ result: 'skipped', status: 200 }], remembered, event, meaning });
const rejected = (status: number, meaning: string): CodeInfo => ({ uses: [{ result: 'rejected', status }], remembered: false, meaning });
const failed = (status: number, meaning: string, event?: string): CodeInfo => ({ uses: [{ result: 'failed', status }], remembered: false, event, meaning });

/** Each action's own code: its name, answered with its word when it is done. */
const ACTION_CODES = Object.fromEntries(
  ACTIONS.map((a) => [a.name, { uses: [{ result: a.done, status: 200 }], remembered: a.acts, event: a.acts ? a.eventReason : undefined, meaning: a.summary } satisfies CodeInfo]),
) as unknown as Record<(typeof ACTIONS)[number]['name'], CodeInfo>;

export const CODES = {
  ...ACTION_CODES,
  'dry-run': { uses: [{ result: 'dry-run', status: 200 }], remembered: true, event: DRY_RUN_EVENT, meaning: 'DRY_RUN: every check passed and the server-side dry run of the action too; nothing changed' },
  'no-cluster': { uses: [{ result: 'dry-run', status: 200 }, { result: 'skipped', status: 200 }], remembered: true, meaning: 'no cluster configured (npm start on a laptop): what it would have done (skipped: a pod it would have looked up by its container)' },
  'isolation-would-not-hold': { uses: [{ result: deleteAction.done, status: 200 }], remembered: true, event: deleteAction.eventReason, meaning: 'isolate with requireHolds: another NetworkPolicy would still allow the pod\'s traffic, so the pod was deleted instead; `isolation` says which' },
  'not-found': { uses: [{ result: 'already gone', status: 200 }], remembered: true, meaning: 'the pod does not exist (API 404), or was gone before the action' },
  'uid-precondition': { uses: [{ result: 'replaced', status: 200 }], remembered: true, meaning: 'the pod was replaced between verification and action (another UID under that name): not touched' },
  duplicate: { uses: [{ result: 'duplicate', status: 200 }, { result: 'duplicate', status: 503 }], remembered: false, meaning: "coalesced with an earlier alert for the same pod and action in this replica; `first` holds its outcome (503 when that failed or was rate-limited)" },
  accepted: { uses: [{ result: 'accepted', status: 202 }], remembered: false, meaning: 'RESPONSE_MODE=async: decided, acting in the background; the audit line and the Event carry the outcome' },
  // Declined by the decision, from the alert alone: the pod is never read.
  'test-event': skipped(false, "Falcosidekick's test event"),
  'internal-event': skipped(false, "one of Falco's internal events (no container, no pod)"),
  'lookup-throttled': skipped(false, 'no pod named, the node is not known to run pods, and lookups on unknown nodes are over their rate: not looked up'),
  'no-pod': skipped(false, 'the alert names no pod, and none could be looked up by its container on its node'),
  ambiguous: skipped(false, 'the alert names two different pods (k8s.* and k8smeta.* fields disagree)'),
  'critical-namespace': skipped(false, 'the pod is in a critical namespace (CRITICAL_NAMESPACES)', REFUSED_AUTHENTICATED),
  'own-pod': skipped(false, 'the pod is the function itself', REFUSED_AUTHENTICATED),
  'own-namespace': skipped(false, "the pod is in the function's own namespace", REFUSED_AUTHENTICATED),
  'no-policy-match': skipped(false, "no policy entry matches the alert's rule"),
  stale: skipped(false, 'the alert is older than MAX_ALERT_AGE_SECONDS'),
  future: skipped(false, 'the alert is dated in the future beyond clock skew'),
  unproven: skipped(false, 'no container id to prove the alert is about that pod, and no caller token: not acted on', REFUSED_AUTHENTICATED),
  // Declined after reading the pod.
  terminating: skipped(true, 'the pod is already terminating (another replica, or its controller, got there first)', REFUSED),
  'opt-out': skipped(true, 'the pod or its namespace has the opt-out label', REFUSED),
  'container-mismatch': skipped(false, "the alert's container.id is not one of the pod's containers: a restarted pod, or a forged alert", REFUSED_AUTHENTICATED),
  'uid-mismatch': skipped(false, "the alert's k8s.pod.uid is not the pod's: a re-created pod, or a forged alert", REFUSED_AUTHENTICATED),
  availability: skipped(true, 'acting would leave its workload fewer ready replicas than minHealthyReplicas', REFUSED),
  daemonset: skipped(true, 'a DaemonSet pod, and the entry says daemonSets: skip', REFUSED),
  statefulset: skipped(true, 'a StatefulSet pod, and the entry says statefulSets: skip', REFUSED),
  'disruption-budget': skipped(true, 'evict: a PodDisruptionBudget forbids it now', REFUSED),
  // The blast-radius budget, or the API throttling.
  'rate-limited': { uses: [{ result: 'rate-limited', status: 429 }, { result: 'failed', status: 503 }], remembered: false, event: 'FalcoResponseRateLimited', meaning: 'ACTION_LIMIT reached: the reason gives the actions taken in the window and what replicas hold (429); or the API server throttled through the deadline (failed, 503)' },
  'namespace-rate-limited': { uses: [{ result: 'rate-limited', status: 429 }], remembered: false, event: 'FalcoResponseRateLimited', meaning: "the namespace's share of the budget (NAMESPACE_ACTION_LIMIT) reached, with the same figures" },
  // Rejected input: never a Kubernetes call.
  unparseable: rejected(400, 'the body is not JSON'),
  'too-large': rejected(413, 'the body is larger than max_body_size'),
  'bad-envelope': { uses: [{ result: 'rejected', status: 400 }, { result: 'rejected', status: 415 }], remembered: false, meaning: 'a wrong CloudEvent type or source, an ambiguous envelope (400), or a media type or charset not accepted (415)' },
  'invalid-alert': rejected(400, 'not a Falco alert: the reason lists every problem'),
  'invalid-name': rejected(400, 'a namespace or pod name that is not a valid Kubernetes name'),
  unauthorized: { uses: [{ result: 'rejected', status: 401 }, { result: 'failed', status: 502 }], remembered: false, meaning: 'a missing or wrong caller token (401); or the API server refused the function\'s own credentials (failed, 502)' },
  // Kubernetes failures: the answer says what failed.
  forbidden: failed(403, 'RBAC forbids a call: error.permission names it'),
  guardrail: failed(422, "the API server's admission policy (guardrails.yaml) refused the action: error.policy names it", REFUSED),
  unavailable: failed(503, 'the Kubernetes API kept failing through the deadline'),
  timeout: failed(504, 'the Kubernetes API did not answer within ALERT_DEADLINE_MS'),
  'bad-response': failed(502, 'the Kubernetes API answered with something that is not what was asked'),
  rejected: failed(502, 'the Kubernetes API rejected the request (4xx) for a reason other than the above'),
  'quarantine-policy-altered': failed(409, 'isolate: the quarantine NetworkPolicy exists but is not deny-all; a human must look'),
  conflict: failed(500, 'the pod kept changing between verification and the action (three tries): not acted on'),
  internal: failed(500, 'an internal error'),
} as const satisfies Record<string, CodeInfo>;

export type OutcomeCode = keyof typeof CODES;

/** Codes explain answers that the function itself never does (it acts or declines on the live pod instead). */
export const EXPLAIN_ONLY = { lookup: 'no pod named: the pod running the container would be looked up on its node, then the policy and guards applied' } as const;

export function codeInfo(code: string): CodeInfo | undefined {
  return (CODES as Record<string, CodeInfo>)[code];
}
