// log: record only. The alert's audit line is the whole response: no pod read, no budget slot, no call.
import type { ActionDefinition } from './types.js';

export const logAction = {
  name: 'log',
  done: 'logged',
  eventReason: 'FalcoResponseLogged',
  removesPod: false,
  doing: 'logging',
  acts: false,
  summary: 'record only: the audit line, no Kubernetes call',
  parameters: {},
  rbac: [],
} as const satisfies ActionDefinition<'log', 'logged'>;
