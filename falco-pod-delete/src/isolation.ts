// Whether an isolation holds: NetworkPolicies add up, so the quarantine deny-all cuts a pod off only if no
// other policy that selects it allows traffic. Evaluated as the API server's NetworkPolicy semantics say:
// a policy selects the pods its podSelector matches (an empty selector: every pod of the namespace); it
// governs ingress unless policyTypes leaves Ingress out, egress when policyTypes names Egress (or, with no
// policyTypes, when it has egress rules); a governed direction with at least one rule allows some traffic.
// Pure: the policies come from the Kubernetes seam, the labels from the pod as isolated.

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
}

/** A NetworkPolicy as the check needs it. */
export interface PolicyFacts {
  name: string;
  podSelector: LabelSelector;
  policyTypes: string[] | undefined;
  ingressRules: number;
  egressRules: number;
}

export interface IsolationFacts {
  /** No policy but the quarantine one selects the pod with an ingress or egress rule. */
  holds: boolean;
  /** The other policies that select the pod and allow some traffic, in name order. */
  allowedBy: string[];
  /** Whether the pod was taken out of its Services and controller (its labels replaced). */
  detached: boolean;
  /** Why the policies could not be read (then holds is false: never a silent pass). */
  unchecked?: string;
}

/** Whether a label selector matches labels (metav1.LabelSelector: every term must hold; an empty selector matches all). */
export function selects(selector: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(labels[e.key])) return false;
        break;
      case 'NotIn':
        if (has && values.includes(labels[e.key])) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        // An operator this code does not know: assume it selects (the answer then says the isolation may not hold).
        break;
    }
  }
  return true;
}

/** Whether the policy allows some traffic to or from the pods it selects. */
export function allowsTraffic(p: PolicyFacts): boolean {
  const ingress = p.policyTypes ? p.policyTypes.includes('Ingress') : true;
  const egress = p.policyTypes ? p.policyTypes.includes('Egress') : p.egressRules > 0;
  return (ingress && p.ingressRules > 0) || (egress && p.egressRules > 0);
}

/** The isolation of a pod with `labels` (as they are once isolated), given its namespace's policies. */
export function isolationOf(policies: PolicyFacts[], labels: Record<string, string>, quarantinePolicy: string, detached: boolean): IsolationFacts {
  const allowedBy = policies
    .filter((p) => p.name !== quarantinePolicy && selects(p.podSelector, labels) && allowsTraffic(p))
    .map((p) => p.name)
    .sort();
  return { holds: allowedBy.length === 0, allowedBy, detached };
}
