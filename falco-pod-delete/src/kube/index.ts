// The Kubernetes seam: what the response stage asks of the API, as a small interface and the shapes it trades in.
// Its rooms, beside this file in src/kube/: cluster.ts (which cluster, as whom), kube-error.ts (what a failure means), pod-snapshot.ts (the
// facts kept of a pod), leases.ts (Lease bodies), quarantine.ts, client-node.ts (the implementation); ../view.ts is the local view.
import type { PodRef } from '../alert.js';
import type { PolicyFacts } from '../isolation.js';
import type { Deadline } from '../deadline.js';

export { KubeError } from './kube-error.js';

/** A key as one JSON Pointer segment (RFC 6901): `~` and `/` escaped, as a JSON patch path needs a label's key. */
export function pointerKey(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

export interface PodSnapshot {
  namespace: string;
  name: string;
  uid: string;
  /** The version read: an action carries it as a precondition, so it acts only on exactly what was verified. */
  resourceVersion: string;
  nodeName: string | undefined;
  labels: Record<string, string>;
  /** Container ids without the runtime scheme, from container, init and ephemeral statuses. */
  containerIds: string[];
  deleting: boolean;
  /** The controller named in ownerReferences (controller: true), if any. */
  owner: WorkloadRef | undefined;
  /** The pod's Ready condition. */
  ready: boolean;
  /** Container names, for log evidence. */
  containers: string[];
  /** The facts evidence keeps of the pod: identity, owner, node, images and their digests, status. */
  manifest: Record<string, unknown>;
  /** Whether the pod has any annotation (a JSON patch adds the map, or a key to it). */
  annotated?: boolean;
  /** The isolation record isolate wrote on the pod (its annotation's value), if any. */
  isolationRecord?: string;
  /** The pod's ServiceAccount (spec.serviceAccountName). */
  serviceAccount?: string;
  /** Whether a container mounts a ServiceAccount token (a projected serviceAccountToken, or a token Secret). */
  tokenMounted?: boolean;
}

export interface WorkloadRef {
  kind: string;
  name: string;
}

/** A controller as read from the API: desired and ready replicas where the kind has them, and its own owner. */
export interface ControllerStatus {
  kind: string;
  name: string;
  replicas: number | undefined;
  ready: number | undefined;
  owner: WorkloadRef | undefined;
}

/** The kinds whose controllers the function reads (RBAC grants get on exactly these). */
export const CONTROLLER_KINDS = ['ReplicaSet', 'Deployment', 'StatefulSet', 'DaemonSet', 'Job'] as const;

/**
 * done; or the pod is gone (404); or it is no longer the version that was verified (409 or 422 on the uid and
 * resourceVersion preconditions: changed, replaced, or acted on by another replica): read it and decide again.
 */
export type MutationResult = 'done' | 'gone' | 'changed';

/** The pod as verified: the action's preconditions. */
export interface Verified {
  uid: string;
  resourceVersion: string;
}

/** What isolate writes on a pod: the quarantine label, and its record in one annotation. */
export interface IsolationChange {
  label: string;
  /** Replace every label with the quarantine label (out of its Services and controller), or add it to them. */
  detach: boolean;
  annotation: string;
  /** The annotation's value: the old labels and when, why, by which rule (quarantine.ts, IsolationRecord). */
  record: string;
}

/** A Node as cordon needs it. */
export interface NodeSnapshot {
  name: string;
  uid: string;
  resourceVersion: string;
  labels: Record<string, string>;
  unschedulable: boolean;
  ready: boolean;
}

export interface EventNote {
  pod: PodRef;
  /** The Event is about this node instead of the pod (written in the pod's namespace). */
  node?: { name: string; uid: string };
  podUid: string | undefined;
  reason: string;
  note: string;
  type: 'Normal' | 'Warning';
}

export interface LeaseRecord {
  name: string;
  resourceVersion: string;
  holder: string | undefined;
  renewTime: Date | undefined;
  durationSeconds: number | undefined;
  annotations: Record<string, string>;
  labels: Record<string, string>;
  created: Date | undefined;
}

export interface LeaseSpec {
  name: string;
  holder: string;
  durationSeconds: number;
  annotations: Record<string, string>;
  labels: Record<string, string>;
}

export interface Kube {
  readPod(pod: PodRef, deadline: Deadline): Promise<PodSnapshot | null>;
  listPodsOnNode(node: string, deadline: Deadline): Promise<PodSnapshot[]>;
  readNamespaceLabels(namespace: string, deadline: Deadline): Promise<Record<string, string> | null>;
  deletePod(pod: PodRef, verified: Verified, gracePeriodSeconds: number | undefined, dryRun: boolean, deadline: Deadline): Promise<MutationResult>;
  /** The Eviction API: PodDisruptionBudgets apply. A budget's 429 comes back as blocked, never retried. */
  evictPod(pod: PodRef, verified: Verified, gracePeriodSeconds: number | undefined, dryRun: boolean, deadline: Deadline): Promise<MutationResult | { blocked: string }>;
  readController(namespace: string, ref: WorkloadRef, deadline: Deadline): Promise<ControllerStatus | null>;
  readPodLog(pod: PodRef, container: string, tailLines: number, limitBytes: number, deadline: Deadline): Promise<string>;
  ensureQuarantinePolicy(namespace: string, label: string, dryRun: boolean, deadline: Deadline): Promise<void>;
  /** The namespace's NetworkPolicies, as the isolation check reads them. */
  listNetworkPolicies(namespace: string, deadline: Deadline): Promise<PolicyFacts[]>;
  /**
   * The quarantine label on the pod and the isolation record in its annotation, under the preconditions.
   * Detached: the labels become the quarantine label alone (the record keeps the old ones).
   */
  isolatePod(pod: PodRef, verified: Verified & { annotated?: boolean; labels?: Record<string, string> }, change: IsolationChange, dryRun: boolean, deadline: Deadline): Promise<MutationResult>;
  createEvent(event: EventNote, deadline: Deadline): Promise<void>;
  readNode(name: string, deadline: Deadline): Promise<NodeSnapshot | null>;
  listNodes(deadline: Deadline): Promise<NodeSnapshot[]>;
  /** spec.unschedulable true and the label, under the node's uid and resourceVersion (JSON patch tests). */
  cordonNode(node: NodeSnapshot, label: string, value: string, dryRun: boolean, deadline: Deadline): Promise<MutationResult>;
  /** coordination.k8s.io Leases in the function's own namespace: the shared action budget. */
  createLease(namespace: string, lease: LeaseSpec, deadline: Deadline): Promise<LeaseRecord | 'exists'>;
  readLease(namespace: string, name: string, deadline: Deadline): Promise<LeaseRecord | null>;
  /** Replaces a lease only if it is still at `resourceVersion` (optimistic concurrency). */
  replaceLease(namespace: string, resourceVersion: string, lease: LeaseSpec, deadline: Deadline): Promise<LeaseRecord | 'conflict' | 'gone'>;
}
