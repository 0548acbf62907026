// evict: the Eviction API, so that PodDisruptionBudgets apply; a budget that forbids it now is an answer
// (skipped, disruption-budget), never retried.
import { type ActionDefinition, deletionShows, guardParameters } from './types.js';

export const evictAction = {
  name: 'evict',
  done: 'evicted',
  eventReason: 'FalcoResponseEvicted',
  removesPod: true,
  doing: 'evicting',
  acts: true,
  summary: 'evict the pod through the Eviction API (PodDisruptionBudgets apply)',
  parameters: { gracePeriodSeconds: { type: 'integer', minimum: 0, maximum: 86400 }, ...guardParameters() },
  rbac: [{ apiGroups: [''], resources: ['pods/eviction'], verbs: ['create'] }],
  act: (c) => c.kube.evictPod(c.ref, c.pod, c.gracePeriodSeconds, c.dryRun, c.deadline),
  tookEffect: (before, now) => deletionShows(before, now),
} as const satisfies ActionDefinition<'evict', 'evicted'>;
