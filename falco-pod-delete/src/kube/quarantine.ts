// The quarantine NetworkPolicy: the one spec isolate writes, and what makes another one not it.
import type * as k8s from '@kubernetes/client-node';

export const QUARANTINE_POLICY = 'falco-pod-delete-quarantine';

/** Deny all traffic to and from the pods carrying the quarantine label: no ingress rule, no egress rule. */
export function quarantineSpec(label: string): k8s.V1NetworkPolicySpec {
  return { podSelector: { matchLabels: { [label]: 'true' } }, policyTypes: ['Ingress', 'Egress'] };
}

/** Why a NetworkPolicy's spec is not exactly the deny-all quarantine spec, or undefined when it is. */
export function quarantineSpecProblem(spec: k8s.V1NetworkPolicySpec | undefined, label: string): string | undefined {
  const selector = spec?.podSelector;
  const labels = selector?.matchLabels ?? {};
  if (Object.keys(labels).length !== 1 || labels[label] !== 'true' || (selector?.matchExpressions ?? []).length > 0) return `it selects ${JSON.stringify(selector ?? {})}, not only ${label}=true`;
  const types = [...(spec?.policyTypes ?? [])].sort();
  if (types.join(',') !== 'Egress,Ingress') return `its policyTypes are ${JSON.stringify(spec?.policyTypes ?? [])}, not Ingress and Egress`;
  if ((spec?.ingress ?? []).length > 0) return 'it admits ingress traffic';
  if ((spec?.egress ?? []).length > 0) return 'it admits egress traffic';
  return undefined;
}

/** The one annotation isolate writes: the pod's labels before it, and when, by which rule and entry (IsolationRecord). */
export const ISOLATION_ANNOTATION = 'falco-pod-delete/isolation';

/** What the isolation annotation holds: enough for `release` to put the pod back and for `list` to say since when and why. */
export interface IsolationRecord {
  /** The pod's labels before the isolation (without the quarantine label). */
  labels: Record<string, string>;
  /** Whether the labels were replaced by the quarantine label alone (false: a StatefulSet's pod keeps them). */
  detached: boolean;
  /** When, as an ISO time. */
  since: string;
  /** The Falco rule and the policy entry that isolated it. */
  rule: string;
  entry: string;
  /** The controller that owned the pod then ("ReplicaSet/web-7d4b9c"), if any: a detached pod has left it. */
  owner?: string;
}

/** The record read back from a pod's annotation, or undefined when it is missing or not one. */
export function parseIsolationRecord(value: string | undefined): IsolationRecord | undefined {
  if (value === undefined) return undefined;
  try {
    const r = JSON.parse(value) as Partial<IsolationRecord>;
    if (typeof r !== 'object' || r === null || typeof r.labels !== 'object' || r.labels === null || Array.isArray(r.labels)) return undefined;
    if (!Object.values(r.labels).every((v) => typeof v === 'string')) return undefined;
    return { labels: r.labels, detached: r.detached === true, since: String(r.since ?? ''), rule: String(r.rule ?? ''), entry: String(r.entry ?? ''), owner: typeof r.owner === 'string' ? r.owner : undefined };
  } catch {
    return undefined;
  }
}
