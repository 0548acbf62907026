// coordination.k8s.io Lease bodies as the API server accepts them, and the records the function reads back.
import type * as k8s from '@kubernetes/client-node';
import { KubeError } from './kube-error.js';
import type { LeaseRecord, LeaseSpec } from './index.js';

/**
 * A metav1.MicroTime: the API server decodes Lease times only with exactly six fractional digits, and
 * client-node would write a Date with toISOString()'s three (kubernetes-client/javascript#828).
 */
export function microTime(d: Date): Date {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as unknown as Date;
}

export function leaseBody(namespace: string, l: LeaseSpec): k8s.V1Lease {
  const now = microTime(new Date());
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: l.name, namespace, annotations: l.annotations, labels: l.labels },
    spec: { holderIdentity: l.holder, leaseDurationSeconds: l.durationSeconds, acquireTime: now, renewTime: now },
  };
}

export function leaseRecord(l: k8s.V1Lease): LeaseRecord {
  if (!l?.metadata?.name || !l.metadata.resourceVersion) throw new KubeError('bad-response', 'get', 'leases', l?.metadata?.namespace, 'the Kubernetes API answered with something that is not a Lease');
  const renew = l.spec?.renewTime as unknown;
  return {
    name: l.metadata.name,
    resourceVersion: l.metadata.resourceVersion,
    holder: l.spec?.holderIdentity,
    renewTime: renew ? new Date(renew as string) : undefined,
    durationSeconds: l.spec?.leaseDurationSeconds,
    annotations: l.metadata.annotations ?? {},
    labels: l.metadata.labels ?? {},
    created: l.metadata.creationTimestamp ? new Date(l.metadata.creationTimestamp) : undefined,
  };
}
