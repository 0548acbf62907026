// Finding the pod of an alert that names none (k8s.* fields null): the pods on the alert's node, by container
// id. Such an alert proves nothing by itself, and anyone who can reach the function can send one with any
// hostname, so the LISTs it costs the API server are bounded:
// - one LIST per node at a time, its result shared by every lookup for that node and kept NODE_LIST_TTL_MS;
// - nodes the function has not seen run a pod share a small rate (UNKNOWN_NODE_LISTS_PER_SECOND), so that a
//   flood of invented node names costs a few LISTs, and lookups on real nodes go on meanwhile.
// The LIST is a consistent read (no resourceVersion): a pod that started a moment ago, as a compromised one
// often has, is in it. resourceVersion=0 would be served from the watch cache, possibly stale, and miss it;
// the bounds above keep what consistent reads cost etcd (before ConsistentListFromCache, 1.31) small.
import type { Deadline } from './deadline.js';
import type { Kube, PodSnapshot } from './kube/index.js';

export const NODE_LIST_TTL_MS = 2000;
export const UNKNOWN_NODE_LISTS_PER_SECOND = 1;
export const UNKNOWN_NODE_LISTS_BURST = 3;
const KNOWN_NODE_MS = 3_600_000;
const MAX_NODES = 10_000;

export type NodePods = { pods: PodSnapshot[] } | { throttled: true };

export class NodeLookups {
  private readonly listings = new Map<string, { pods: Promise<PodSnapshot[]>; at: number }>();
  /** Nodes seen running a pod (from a LIST or a pod read), and when. */
  private readonly known = new Map<string, number>();
  private tokens = UNKNOWN_NODE_LISTS_BURST;
  private tokensAt = Date.now();
  /** LISTs made: for the tests and the bench, which count what the function asks of the API server. */
  lists = 0;

  constructor(private readonly kube: Kube) {}

  /** A node the function has seen run a pod (readPod results report here). */
  seen(node: string | undefined, now = Date.now()): void {
    if (!node) return;
    if (this.known.size >= MAX_NODES && !this.known.has(node)) this.known.clear();
    this.known.set(node, now);
  }

  podsOn(node: string, deadline: Deadline): Promise<NodePods> {
    const now = Date.now();
    const cached = this.listings.get(node);
    if (cached && now - cached.at < NODE_LIST_TTL_MS) return cached.pods.then((pods) => ({ pods }));
    if (!this.isKnown(node, now) && !this.takeToken(now)) return Promise.resolve({ throttled: true });
    this.lists++;
    const pods = this.kube.listPodsOnNode(node, deadline);
    if (this.listings.size >= MAX_NODES) this.listings.clear();
    const entry = { pods, at: now };
    this.listings.set(node, entry);
    pods.then(
      (found) => {
        for (const p of found) this.seen(p.nodeName);
      },
      () => {
        // A failed LIST is not kept: the next lookup asks again.
        if (this.listings.get(node) === entry) this.listings.delete(node);
      },
    );
    return pods.then((found) => ({ pods: found }));
  }

  private isKnown(node: string, now: number): boolean {
    const at = this.known.get(node);
    return at !== undefined && now - at < KNOWN_NODE_MS;
  }

  private takeToken(now: number): boolean {
    this.tokens = Math.min(UNKNOWN_NODE_LISTS_BURST, this.tokens + ((now - this.tokensAt) / 1000) * UNKNOWN_NODE_LISTS_PER_SECOND);
    this.tokensAt = now;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}
