// What an action is: everything it can do and everything it needs, in one place a reviewer can read. Each
// action is one module beside this one (delete.ts, evict.ts, isolate.ts, log.ts); index.ts is the registry.
// This module sits low in the import graph: the Kubernetes seam and nothing else.
import type { PodRef } from '../alert.js';
import type { Deadline } from '../deadline.js';
import type { IsolationFacts } from '../isolation.js';
import type { Kube, MutationResult, PodSnapshot } from '../kube/index.js';

/** One rule of a ClusterRole, as rbac.yaml writes it. */
export interface RbacRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** What an action is given to act on one verified pod. */
export interface ActionContext {
  kube: Kube;
  ref: PodRef;
  /** The pod as verified: its uid and resourceVersion go with the request as preconditions. */
  pod: PodSnapshot;
  gracePeriodSeconds: number | undefined;
  dryRun: boolean;
  quarantineLabel: string;
  deadline: Deadline;
  /** The alert's rule and the policy entry that matched: isolate records them on the pod. */
  rule: string;
  entry: string;
  now: Date;
}

/** 'done', 'gone' (404), 'changed' (the preconditions failed: read and decide again), or why it may not be done now. */
export type ActResult = MutationResult | { blocked: string };

export interface ActionDefinition<Name extends string = string, Word extends string = string> {
  /** The name a policy entry's `action` gives. */
  name: Name;
  /** The answer's outcome when it is done ("deleted"), and the `code` of that answer (the name). */
  done: Word;
  /** The Kubernetes Event's reason when it is done. */
  eventReason: string;
  /** Whether it changes the pod (and so spends a slot of the blast-radius budget, and is checked first). */
  acts: boolean;
  /** Whether it takes the pod out of its workload (the availability guard applies: minHealthyReplicas). */
  removesPod: boolean;
  /** How a refusal says it: "deleting", "evicting", ... */
  doing: string;
  /** The policy entry's parameters it reads: JSON Schema properties, merged into the policy schema. */
  parameters: Record<string, object>;
  /** The RBAC rules it needs beyond reading pods (rbac.yaml grants them; a test checks). */
  rbac: RbacRule[];
  /** The one-line meaning, as explain and the docs say it. */
  summary: string;
  /** Does it, under the pod's uid and resourceVersion preconditions. */
  act?(c: ActionContext): Promise<ActResult>;
  /** What the answer, audit line and Event report of it once done (not in dry-run), read after the action. */
  report?(c: ActionContext): Promise<{ isolation?: IsolationFacts }>;
  /** Whether it shows on the pod as read again (`now`, null when gone) after a call whose answer was lost. */
  tookEffect?(before: PodSnapshot, now: PodSnapshot | null, quarantineLabel: string): boolean;
}

/** The most log lines, and bytes, evidence may keep of a container. */
export const LOG_LINES_MAX = 1000;
export const LOG_BYTES_MAX = 32_768;

/** The policy parameters every action that changes a pod reads: the workload guard and evidence first. */
export function guardParameters(): Record<string, object> {
  return {
    minHealthyReplicas: { oneOf: [{ type: 'integer', minimum: 0, maximum: 100000 }, { type: 'string', pattern: '^(100|[1-9]?[0-9])%$' }] },
    daemonSets: { enum: ['act', 'skip', 'isolate'] },
    statefulSets: { enum: ['act', 'skip', 'isolate'] },
    evidence: {
      type: 'object',
      additionalProperties: false,
      properties: {
        logs: { type: 'boolean' },
        logLines: { type: 'integer', minimum: 1, maximum: LOG_LINES_MAX },
        logBytes: { type: 'integer', minimum: 1, maximum: LOG_BYTES_MAX },
      },
    },
  };
}

/** A deletion, or an eviction, shows as a deletionTimestamp, or as the pod gone (or replaced under its name). */
export function deletionShows(before: PodSnapshot, now: PodSnapshot | null): boolean {
  return !now || now.uid !== before.uid || now.deleting;
}
