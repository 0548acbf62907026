// cordon: a node response, off unless a policy entry lists it after a pod action (actions: [isolate, cordon]).
// The node is the verified pod's own spec.nodeName, never the alert's hostname. It sets spec.unschedulable and
// a label saying when, under the node's uid and resourceVersion; it evicts nothing. There is no drain: draining
// evicts every pod of the node, the blast radius of a whole node chosen by one alert.
import type { RbacRule } from './types.js';

export interface NodeActionDefinition<Name extends string = string> {
  name: Name;
  done: string;
  eventReason: string;
  summary: string;
  rbac: RbacRule[];
}

export const cordonAction = {
  name: 'cordon',
  done: 'cordoned',
  eventReason: 'FalcoResponseCordoned',
  summary: "cordon the pod's node (spec.unschedulable, and NODE_LABEL saying when): nothing new is scheduled there, nothing is evicted",
  rbac: [
    { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'patch'] },
  ],
} as const satisfies NodeActionDefinition<'cordon'>;

/** The label value for a time: 20261207T013152Z (a label value allows no colon). */
export function labelTime(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '');
}

/** The time back from a label value, or undefined. */
export function parseLabelTime(v: string | undefined): Date | undefined {
  const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(v ?? '');
  return m ? new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`) : undefined;
}
