// isolate: the namespace's deny-all quarantine NetworkPolicy (created if missing, checked if present) and
// the quarantine label on the pod, under its resourceVersion: the pod stays for forensics, cut off.
import { isolationOf } from '../isolation.js';
import { QUARANTINE_POLICY } from '../kube/quarantine.js';
import { type ActionDefinition, guardParameters } from './types.js';

export const isolateAction = {
  name: 'isolate',
  done: 'isolated',
  eventReason: 'FalcoResponseIsolated',
  removesPod: false,
  doing: 'isolating',
  acts: true,
  summary: 'label the pod into the namespace\'s deny-all quarantine NetworkPolicy and keep it for forensics',
  parameters: guardParameters(),
  rbac: [
    { apiGroups: [''], resources: ['pods'], verbs: ['patch'] },
    { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: ['get', 'create', 'list'] },
  ],
  async act(c) {
    await c.kube.ensureQuarantinePolicy(c.ref.namespace, c.quarantineLabel, c.dryRun, c.deadline);
    return c.kube.labelPod(c.ref, c.pod, c.quarantineLabel, Object.keys(c.pod.labels).length > 0, c.dryRun, c.deadline);
  },
  // NetworkPolicies add up: the isolation holds only if no other policy that selects the pod allows traffic.
  async report(c) {
    const labels = { ...c.pod.labels, [c.quarantineLabel]: 'true' };
    try {
      return { isolation: isolationOf(await c.kube.listNetworkPolicies(c.ref.namespace, c.deadline), labels, QUARANTINE_POLICY, false) };
    } catch (e) {
      return { isolation: { holds: false, allowedBy: [], detached: false, unchecked: `the NetworkPolicies of ${c.ref.namespace} could not be read: ${(e as Error).message}` } };
    }
  },
  // A pod gone or replaced was not isolated.
  tookEffect: (before, now, label) => Boolean(now && now.uid === before.uid && now.labels[label] === 'true'),
} as const satisfies ActionDefinition<'isolate', 'isolated'>;
