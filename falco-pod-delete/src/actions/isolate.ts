// isolate: the namespace's deny-all quarantine NetworkPolicy (created if missing, checked if present), and the
// pod detached: its labels replaced by the quarantine label alone, the old ones kept in one annotation, under
// its resourceVersion. Its Services' EndpointSlices drop it and its ReplicaSet (or DaemonSet, Job) releases it
// and starts a replacement, while the pod stays for forensics, cut off. A StatefulSet's pod keeps its labels:
// its controller would want to recreate it under the same name, which the kept pod holds.
import { isolationOf } from '../isolation.js';
import type { PodSnapshot } from '../kube/index.js';
import { ISOLATION_ANNOTATION, type IsolationRecord, QUARANTINE_POLICY } from '../kube/quarantine.js';
import { type ActionContext, type ActionDefinition, guardParameters } from './types.js';

/** Whether isolating this pod replaces its labels: every pod but a StatefulSet's. */
export const detaches = (pod: PodSnapshot): boolean => pod.owner?.kind !== 'StatefulSet';

/**
 * Already quarantined: the pod carries the quarantine label. Its labels and record are left as they are (a
 * second alert never overwrites the record of the labels release puts back); the deny-all is still ensured.
 */
const quarantined = (pod: PodSnapshot, label: string): boolean => pod.labels[label] === 'true';

/** The labels the pod has once isolated. */
export function isolatedLabels(pod: PodSnapshot, label: string): Record<string, string> {
  if (quarantined(pod, label)) return pod.labels;
  return detaches(pod) ? { [label]: 'true' } : { ...pod.labels, [label]: 'true' };
}

/** Whether the pod, once isolated, has no label but the quarantine one: out of its Services and controller. */
export const detachedOnce = (pod: PodSnapshot, label: string): boolean => {
  const labels = Object.keys(isolatedLabels(pod, label));
  return labels.length === 1 && labels[0] === label;
};

function record(c: ActionContext): IsolationRecord {
  return {
    labels: c.pod.labels,
    detached: detaches(c.pod),
    since: c.now.toISOString(),
    rule: c.rule.slice(0, 200),
    entry: c.entry,
    owner: c.pod.owner ? `${c.pod.owner.kind}/${c.pod.owner.name}` : undefined,
  };
}

export const isolateAction = {
  name: 'isolate',
  done: 'isolated',
  eventReason: 'FalcoResponseIsolated',
  removesPod: false,
  doing: 'isolating',
  acts: true,
  summary: "replace the pod's labels by the quarantine label (out of its Services and its ReplicaSet, which replaces it), cut it off with the namespace's deny-all NetworkPolicy, and keep it for forensics",
  parameters: {
    ...guardParameters(),
    // An isolation that would not hold (another NetworkPolicy still allows the pod's traffic) deletes the pod instead.
    requireHolds: { type: 'boolean' },
  },
  rbac: [
    { apiGroups: [''], resources: ['pods'], verbs: ['patch'] },
    { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: ['get', 'create', 'list'] },
  ],
  async act(c) {
    await c.kube.ensureQuarantinePolicy(c.ref.namespace, c.quarantineLabel, c.dryRun, c.deadline);
    if (quarantined(c.pod, c.quarantineLabel)) return 'done';
    const change = { label: c.quarantineLabel, detach: detaches(c.pod), annotation: ISOLATION_ANNOTATION, record: JSON.stringify(record(c)) };
    return c.kube.isolatePod(c.ref, c.pod, change, c.dryRun, c.deadline);
  },
  // NetworkPolicies add up: the isolation holds only if no other policy that selects the pod allows traffic.
  async report(c) {
    const detached = detachedOnce(c.pod, c.quarantineLabel);
    try {
      return { isolation: isolationOf(await c.kube.listNetworkPolicies(c.ref.namespace, c.deadline), isolatedLabels(c.pod, c.quarantineLabel), QUARANTINE_POLICY, detached) };
    } catch (e) {
      return { isolation: { holds: false, allowedBy: [], detached, unchecked: `the NetworkPolicies of ${c.ref.namespace} could not be read: ${(e as Error).message}` } };
    }
  },
  // A pod gone or replaced was not isolated.
  tookEffect: (before, now, label) => Boolean(now && now.uid === before.uid && now.labels[label] === 'true'),
} as const satisfies ActionDefinition<'isolate', 'isolated'>;

/** What an isolation does to the pod's workload, as the answer's `workload.effect` says it. */
export function isolationEffect(kind: string, name: string | undefined, detached: boolean, owner?: { kind: string; name: string }): string {
  const it = name ? `${kind} ${name}` : kind;
  // The pod's own controller releases it: a Deployment's pods belong to its ReplicaSet.
  const releaser = owner && owner.kind !== kind ? `${owner.kind} ${owner.name} (${it})` : it;
  if (!detached && kind !== 'StatefulSet') return 'it carried the quarantine label already: its labels were left as they are, and the deny-all checked';
  if (!detached) {
    return `its labels are kept (a StatefulSet's pod): ${it} still counts it and its Services still send it traffic, which the deny-all drops; no replacement starts while it holds its name. Delete it when the inspection is done, and ${it} recreates it`;
  }
  switch (kind) {
    case 'none':
      return 'a bare pod: out of its Services and kept for forensics; nothing replaces it';
    case 'Deployment':
    case 'ReplicaSet':
      return `out of its Services; ${releaser} releases it and starts a replacement, so capacity comes back while this pod stays for forensics`;
    case 'DaemonSet':
      return `out of its Services; ${it} releases it and starts a replacement on the same node`;
    case 'Job':
    case 'CronJob':
      return `${it} releases it and may start a replacement`;
    default:
      return `out of its Services; its ${kind} may release it and start a replacement`;
  }
}

/** The pod's credentials after an isolation: its token stays valid while the pod object exists. */
export function credentialsOf(pod: PodSnapshot): { serviceAccount: string; tokenMounted: boolean; note: string } {
  const sa = pod.serviceAccount ?? 'default';
  const tokenMounted = pod.tokenMounted === true;
  return {
    serviceAccount: sa,
    tokenMounted,
    note: tokenMounted
      ? `a token of ServiceAccount ${sa} is mounted: it stays valid for as long as the pod exists, from anywhere that reaches the API server; isolating does not revoke it, delete does (once the pod object is gone)`
      : `no ServiceAccount token is mounted in its containers (ServiceAccount ${sa}); a token already read elsewhere stays valid while the pod exists`,
  };
}
