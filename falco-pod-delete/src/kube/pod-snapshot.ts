// The facts the function keeps of a pod, from the API's V1Pod.
import type * as k8s from '@kubernetes/client-node';
import type { PodSnapshot, WorkloadRef } from './index.js';
import { ISOLATION_ANNOTATION } from './quarantine.js';

/** The facts of a pod; `manifest` (for evidence) only when asked, since the local view keeps thousands. */
export function snapshot(pod: k8s.V1Pod, withManifest = true): PodSnapshot {
  if (typeof pod !== 'object' || pod === null) return { namespace: '', name: '', uid: '', resourceVersion: '', nodeName: undefined, labels: {}, containerIds: [], deleting: false, owner: undefined, ready: false, containers: [], manifest: {} };
  const statuses = [
    ...(pod.status?.containerStatuses ?? []),
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.ephemeralContainerStatuses ?? []),
  ];
  const containerIds = statuses
    .map((s) => s.containerID ?? '')
    .map((id) => id.replace(/^[a-z0-9-]+:\/\//, ''))
    .filter((id) => id !== '');
  return {
    namespace: pod.metadata?.namespace ?? '',
    name: pod.metadata?.name ?? '',
    uid: pod.metadata?.uid ?? '',
    resourceVersion: pod.metadata?.resourceVersion ?? '',
    nodeName: pod.spec?.nodeName,
    labels: pod.metadata?.labels ?? {},
    containerIds,
    deleting: pod.metadata?.deletionTimestamp !== undefined,
    owner: controllerOf(pod.metadata?.ownerReferences),
    ready: (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
    containers: (pod.spec?.containers ?? []).map((c) => c.name),
    annotated: Object.keys(pod.metadata?.annotations ?? {}).length > 0,
    isolationRecord: pod.metadata?.annotations?.[ISOLATION_ANNOTATION],
    serviceAccount: pod.spec?.serviceAccountName,
    tokenMounted: tokenMounted(pod),
    manifest: !withManifest ? {} : {
      metadata: { name: pod.metadata?.name, namespace: pod.metadata?.namespace, uid: pod.metadata?.uid, labels: pod.metadata?.labels, ownerReferences: pod.metadata?.ownerReferences, creationTimestamp: pod.metadata?.creationTimestamp },
      spec: {
        nodeName: pod.spec?.nodeName,
        serviceAccountName: pod.spec?.serviceAccountName,
        containers: (pod.spec?.containers ?? []).map((c) => ({ name: c.name, image: c.image, command: c.command, args: c.args, securityContext: c.securityContext })),
      },
      status: {
        phase: pod.status?.phase,
        podIP: pod.status?.podIP,
        hostIP: pod.status?.hostIP,
        startTime: pod.status?.startTime,
        containerStatuses: statuses.map((st) => ({ name: st.name, image: st.image, imageID: st.imageID, containerID: st.containerID, restartCount: st.restartCount })),
      },
    },
  };
}

export function controllerOf(refs: k8s.V1OwnerReference[] | undefined): WorkloadRef | undefined {
  const c = (refs ?? []).find((r) => r.controller === true);
  return c ? { kind: c.kind, name: c.name } : undefined;
}

/** Whether a container mounts a volume that carries a ServiceAccount token (the admission plugin's projected one, or a token Secret). */
function tokenMounted(pod: k8s.V1Pod): boolean {
  const tokenVolumes = new Set((pod.spec?.volumes ?? [])
    .filter((v) => (v.projected?.sources ?? []).some((s) => s.serviceAccountToken) || v.secret?.secretName?.includes('-token-'))
    .map((v) => v.name));
  if (tokenVolumes.size === 0) return false;
  return [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].some((c) => (c.volumeMounts ?? []).some((m) => tokenVolumes.has(m.name)));
}
