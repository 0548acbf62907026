// "What would the function do with this alert, and why?" The same parsing and decision code as the function,
// without any Kubernetes call.
import { LOOKUP_ACTION, actionOf } from './actions/index.js';
import type { Alert } from './alert.js';
import type { DecisionName } from './outcome.js';
import { type Decision, type Guards, decide } from './decision.js';
import { intake } from './intake.js';
import type { Policy } from './policy.js';

export interface Explanation {
  /** act: the policy's action would be taken, subject to the checks against the live pod (listed, never made here). */
  verdict: 'act' | 'decline' | 'reject';
  decision: DecisionName;
  code: string;
  reason: string;
  rule?: string;
  priority?: string;
  pod?: string;
  entry?: string;
  checks?: string[];
}

function describeAct(d: Extract<Decision, { kind: 'act' }>): Explanation {
  const acts = actionOf(d.action).acts;
  const checks = acts ? ['that the pod exists and is not terminating', 'that neither the pod nor its namespace has the opt-out label'] : [];
  if (d.containerId) checks.push(`that container ${d.containerId} belongs to the pod`);
  if (d.podUid) checks.push(`that the pod's UID is ${d.podUid}`);
  if (acts) {
    const w = d.workload;
    checks.push(`that its workload allows it: at least ${w.minHealthyReplicas} ready replica(s) remain; DaemonSet pods: ${w.daemonSets}; StatefulSet pods: ${w.statefulSets}`);
    checks.push('that the blast-radius limit (and the namespace\'s share) is not reached');
    if (d.evidence) checks.push(`evidence first: the pod's manifest${d.evidence.logs ? ` and the last ${d.evidence.logLines} log lines of each container` : ''}`);
    if (d.requireHolds) checks.push("that the isolation would hold (no other NetworkPolicy allows the pod's traffic), else delete instead (requireHolds)");
    for (const n of d.nodeActions) {
      checks.push(`then ${n} the pod's own node (spec.nodeName, never the alert's hostname) unless it is a control-plane node, matches CRITICAL_NODES, would leave fewer than MIN_SCHEDULABLE_NODES schedulable, or the node budget (NODE_ACTION_LIMIT) is spent`);
    }
  }
  return {
    verdict: acts ? 'act' : 'decline',
    decision: d.action,
    code: d.action,
    entry: d.entry,
    pod: `${d.pod.namespace}/${d.pod.name}`,
    reason: `policy entry "${d.entry}" matches: ${[d.action, ...d.nodeActions].join(', then ')}${d.gracePeriodSeconds !== undefined ? ` (grace period ${d.gracePeriodSeconds} s)` : ''}`,
    checks,
  };
}

export function explainDecision(alert: Alert, d: Decision): Explanation {
  const base = { rule: alert.rule, priority: alert.priority };
  switch (d.kind) {
    case 'act':
      return { ...base, ...describeAct(d) };
    case 'lookup':
      return { ...base, verdict: 'act', decision: LOOKUP_ACTION, code: 'lookup', reason: `no pod named: the pod running container ${d.containerId} on node ${d.node} would be looked up, then the policy and guards applied to it`, checks: ['that exactly one pod on the node runs that container'] };
    case 'reject':
      return { ...base, verdict: 'reject', decision: 'reject', code: d.code, reason: d.reason };
    case 'decline':
      return { ...base, verdict: 'decline', decision: 'skip', code: d.code, reason: d.reason, pod: d.pod ? `${d.pod.namespace}/${d.pod.name}` : undefined };
  }
}

/** One delivery body (any envelope) explained; never throws. */
export async function explain(body: unknown, policy: Policy, guards: Guards, now = Date.now(), headers: Record<string, string> = {}): Promise<Explanation> {
  const input = await intake(headers, body);
  if (!input.ok) return { verdict: 'reject', decision: 'reject', code: input.code, reason: input.reason };
  const alert = input.alert;
  return explainDecision(alert, decide(alert, policy, guards, now));
}
