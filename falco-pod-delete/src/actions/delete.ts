// delete: the pod is deleted under its uid and resourceVersion preconditions; its controller, if any,
// starts a clean replacement. The default action.
import { type ActionDefinition, deletionShows, guardParameters } from './types.js';

export const deleteAction = {
  name: 'delete',
  done: 'deleted',
  eventReason: 'FalcoResponseDeleted',
  removesPod: true,
  doing: 'deleting',
  acts: true,
  summary: 'delete the pod (its controller, if any, starts a clean one)',
  parameters: { gracePeriodSeconds: { type: 'integer', minimum: 0, maximum: 86400 }, ...guardParameters() },
  rbac: [{ apiGroups: [''], resources: ['pods'], verbs: ['delete'] }],
  act: (c) => c.kube.deletePod(c.ref, c.pod, c.gracePeriodSeconds, c.dryRun, c.deadline),
  tookEffect: (before, now) => deletionShows(before, now),
} as const satisfies ActionDefinition<'delete', 'deleted'>;
