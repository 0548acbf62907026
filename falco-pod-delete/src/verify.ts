// Checks against the live pod before acting: UID, container, terminating, opt-out labels on the pod or its
// namespace. A refusal means: do not act.
import type { OutcomeCode } from './codes.js';
import type { Decision } from './decision.js';
import type { Deadline } from './deadline.js';
import type { Kube, PodSnapshot } from './kube/index.js';
import type { PodView } from './view.js';

type Act = Extract<Decision, { kind: 'act' }>;
export interface Refusal {
  code: OutcomeCode;
  reason: string;
}

const NAMESPACE_TTL_MS = 10_000;

/** Refusals that rest on what the alert claims, not on the pod: never remembered, never an Event. */
export const PROOF_FAILED = new Set(['uid-mismatch', 'container-mismatch']);

export class Verifier {
  /** Namespace labels, kept briefly so that a burst costs one read per namespace. */
  private readonly namespaces = new Map<string, { labels: Promise<Record<string, string> | null>; at: number }>();

  constructor(private readonly kube: Kube, private readonly optOutLabel: string, private readonly view?: PodView) {}

  /** A refusal, or undefined. namespaceLabels: the read that namespaceLabels() started beside the pod read. */
  async verify(d: Act, pod: PodSnapshot, namespaceLabels: Promise<Record<string, string> | null>): Promise<Refusal | undefined> {
    if (d.podUid && d.podUid !== pod.uid) {
      return { code: 'uid-mismatch', reason: `the alert's k8s.pod.uid ${d.podUid} is not the uid of ${pod.namespace}/${pod.name} (${pod.uid}): stale or forged alert` };
    }
    if (d.containerId && !pod.containerIds.some((id) => id.startsWith(d.containerId as string))) {
      return { code: 'container-mismatch', reason: `container ${d.containerId} does not belong to ${pod.namespace}/${pod.name}: stale or forged alert` };
    }
    if (pod.deleting) return { code: 'terminating', reason: `${pod.namespace}/${pod.name} is already being deleted` };
    if (pod.labels[this.optOutLabel] === 'true') return { code: 'opt-out', reason: `pod carries the opt-out label ${this.optOutLabel}=true` };
    const nsLabels = await namespaceLabels;
    if (nsLabels && nsLabels[this.optOutLabel] === 'true') {
      return { code: 'opt-out', reason: `namespace ${pod.namespace} carries the opt-out label ${this.optOutLabel}=true` };
    }
    return undefined;
  }

  /**
   * The namespace's labels, read beside the pod read (both need only the alert's namespace): one round trip
   * instead of two when the cache is cold. One read per namespace at a time: concurrent alerts for one
   * namespace share the read under way. A failure surfaces where verify awaits it, or nowhere. `fresh`: from
   * the API, neither the view nor the cache (to confirm a refusal, or after the pod changed).
   */
  namespaceLabels(namespace: string, deadline: Deadline, fresh = false): Promise<Record<string, string> | null> {
    const viewed = fresh ? undefined : this.view?.namespaceLabels(namespace);
    if (viewed) return Promise.resolve(viewed);
    const cached = this.namespaces.get(namespace);
    if (!fresh && cached && Date.now() - cached.at < NAMESPACE_TTL_MS) return cached.labels;
    const labels = this.kube.readNamespaceLabels(namespace, deadline);
    if (this.namespaces.size >= 1000) this.namespaces.clear();
    const entry = { labels, at: Date.now() };
    this.namespaces.set(namespace, entry);
    // A failed read is not kept: the next alert asks again.
    labels.catch(() => {
      if (this.namespaces.get(namespace) === entry) this.namespaces.delete(namespace);
    });
    return labels;
  }
}
