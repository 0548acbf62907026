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
