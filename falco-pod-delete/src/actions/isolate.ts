// isolate: the namespace's deny-all quarantine NetworkPolicy (created if missing, checked if present) and
// the quarantine label on the pod, under its resourceVersion: the pod stays for forensics, cut off.
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
    { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: ['get', 'create'] },
  ],
  async act(c) {
    await c.kube.ensureQuarantinePolicy(c.ref.namespace, c.quarantineLabel, c.dryRun, c.deadline);
    return c.kube.labelPod(c.ref, c.pod, c.quarantineLabel, Object.keys(c.pod.labels).length > 0, c.dryRun, c.deadline);
  },
  // A pod gone or replaced was not isolated.
  tookEffect: (before, now, label) => Boolean(now && now.uid === before.uid && now.labels[label] === 'true'),
} as const satisfies ActionDefinition<'isolate', 'isolated'>;
