// Correct at any replica count: the Kubernetes API arbitrates which replica acts on a pod (a Lease created
// under a name derived from the action and the pod's UID; AlreadyExists means another replica has it) and
// holds the one cluster-wide blast-radius budget (ACTION_LIMIT slot Leases, each held for the window once
// taken, and NAMESPACE_ACTION_LIMIT slot Leases per namespace). All live in the function's own namespace.
import { createHash } from 'node:crypto';
import type { Deadline } from './deadline.js';
import type { Kube, LeaseRecord, LeaseSpec, PodSnapshot } from './kube.js';
import type { Result } from './outcome.js';

const MANAGED = { 'app.kubernetes.io/managed-by': 'falco-pod-delete' };
const CLAIM_LABELS = { ...MANAGED, 'falco-pod-delete/role': 'claim' };
const OUTCOME = 'falco-pod-delete/outcome';
const REASON = 'falco-pod-delete/reason';
const POD = 'falco-pod-delete/pod';
/** The budget's slot Leases are named BUDGET_SLOT + 0 .. ACTION_LIMIT - 1, a namespace's BUDGET_SLOT + ns-<hash>- + 0 .. share - 1. */
export const BUDGET_SLOT = 'fpd-budget-';
const BUDGET_LABELS = { ...MANAGED, 'falco-pod-delete/role': 'budget' };
const SLOT_NAMESPACE = 'falco-pod-delete/namespace';
/** A budget found full is believed full this long (or until its first slot expires) without asking again. */
const FULL_MEMO_MS = 1000;
/** LISTs one slot search makes at most: the first, and more only while other replicas take every free slot it saw. */
const SLOT_ROUNDS = 4;

/** A slot of the shared budget as held: the cluster-wide one and the namespace's. */
export interface SlotHold {
  cluster: LeaseRecord;
  namespace: LeaseRecord;
}

export type Claim =
  | { won: true; lease: LeaseRecord }
  | { won: false; holder: string; outcome?: { result: Result; reason: string } };

export interface CoordinationSettings {
  namespace: string;
  identity: string;
  claimTtlSeconds: number;
  actionLimit: number;
  actionWindowMs: number;
  namespaceActionLimit: number;
}

/** One claim per action and pod: an alert for a weaker action (isolate) never answers for a delete. */
export function claimName(pod: PodSnapshot, action: string): string {
  return `fpd-claim-${action}-${pod.uid}`.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 253);
}

function namespacePool(namespace: string): string {
  return `${BUDGET_SLOT}ns-${createHash('sha256').update(namespace).digest('hex').slice(0, 16)}-`;
}

export class Coordinator {
  private lastSweep = 0;
  /** Until when the budget (key '') or a namespace's share (key: the namespace) was last found full. */
  private readonly fullUntil = new Map<string, number>();

  constructor(private readonly kube: Kube, readonly settings: CoordinationSettings) {}

  private spec(name: string, annotations: Record<string, string>, labels: Record<string, string>): LeaseSpec {
    return { name, holder: this.settings.identity, durationSeconds: this.settings.claimTtlSeconds, annotations, labels };
  }

  private expired(lease: LeaseRecord, now: number): boolean {
    const renewed = lease.renewTime?.getTime() ?? lease.created?.getTime() ?? 0;
    return now > renewed + (lease.durationSeconds ?? this.settings.claimTtlSeconds) * 1000;
  }

  private lost(lease: LeaseRecord): Claim {
    const result = lease.annotations[OUTCOME] as Result | undefined;
    return { won: false, holder: lease.holder ?? 'another replica', outcome: result ? { result, reason: lease.annotations[REASON] ?? '' } : undefined };
  }

  /** Wins the right to act on this pod, or says who has it (and what they did, once done). */
  async claim(pod: PodSnapshot, action: string, deadline: Deadline): Promise<Claim> {
    this.sweep(deadline);
    const name = claimName(pod, action);
    const spec = this.spec(name, { [POD]: `${pod.namespace}/${pod.name}` }, CLAIM_LABELS);
    const created = await this.kube.createLease(this.settings.namespace, spec, deadline);
    if (created !== 'exists') return { won: true, lease: created };
    const existing = await this.kube.readLease(this.settings.namespace, name, deadline);
    if (!existing) return this.claim(pod, action, deadline); // released between our create and read: try again
    if (existing.annotations[OUTCOME] || !this.expired(existing, Date.now())) return this.lost(existing);
    // The holder died between claim and action: take the claim over, unless another replica does first.
    const taken = await this.kube.replaceLease(this.settings.namespace, existing.resourceVersion, spec, deadline);
    if (taken === 'conflict' || taken === 'gone') {
      const now = await this.kube.readLease(this.settings.namespace, name, deadline);
      return now ? this.lost(now) : { won: false, holder: 'another replica' };
    }
    return { won: true, lease: taken };
  }

  /** Records the outcome on the claim, so replicas that lost it answer with it. */
  async settle(claim: LeaseRecord, result: Result, reason: string, deadline: Deadline): Promise<void> {
    const spec = this.spec(claim.name, { ...claim.annotations, [OUTCOME]: result, [REASON]: reason.slice(0, 1000) }, CLAIM_LABELS);
    await this.kube.replaceLease(this.settings.namespace, claim.resourceVersion, spec, deadline);
  }

  /** Gives the claim up (nothing was done: failed, refused, pod gone), so the next alert on any replica decides afresh. */
  async release(claim: LeaseRecord, deadline: Deadline): Promise<void> {
    await this.kube.deleteLease(this.settings.namespace, claim.name, claim.resourceVersion, deadline);
  }

  /** Whether the budget, or this namespace's share, was found full moments ago: answered with no API call. */
  knownFull(namespace: string, now = Date.now()): 'full' | 'namespace-full' | undefined {
    if ((this.fullUntil.get('') ?? 0) > now) return 'full';
    if ((this.fullUntil.get(namespace) ?? 0) > now) return 'namespace-full';
    return undefined;
  }

  /**
   * One slot of the cluster-wide budget and one of the namespace's share (undefined when there is no limit),
   * or which is full. One LIST of the budget's Leases shows which slots are free or expired; a free one is
   * taken by create (AlreadyExists: another replica was first), an expired one by an update under its
   * resourceVersion. A budget found full is remembered for a moment, so that a flood of rate-limited alerts
   * costs at most one LIST a second.
   */
  async takeSlot(namespace: string, deadline: Deadline): Promise<SlotHold | undefined | 'full' | 'namespace-full'> {
    const { actionLimit, namespaceActionLimit } = this.settings;
    if (actionLimit === 0) return undefined;
    const known = this.knownFull(namespace);
    if (known) return known;
    const pool = namespacePool(namespace);
    const clusterNames = Array.from({ length: actionLimit }, (_, i) => `${BUDGET_SLOT}${i}`);
    const namespaceNames = Array.from({ length: namespaceActionLimit }, (_, i) => `${pool}${i}`);
    const labels = { ...BUDGET_LABELS, [SLOT_NAMESPACE]: namespace.slice(0, 63) };
    // The namespace's share first, then the cluster's slot: a namespace slot held for a moment (its cluster slot
    // turned out full) only ever turns away alerts of that namespace, never the budget's other users.
    let held = await this.kube.listLeases(this.settings.namespace, labelSelector(BUDGET_LABELS), deadline);
    const take = async (names: string[], labels: Record<string, string>, memo: string): Promise<LeaseRecord | 'full'> => {
      for (let round = 0; ; round++) {
        const taken = await this.takeOne(names, held, labels, memo, deadline);
        if (taken !== 'contended') return taken;
        if (round + 1 >= SLOT_ROUNDS) return 'full';
        held = await this.kube.listLeases(this.settings.namespace, labelSelector(BUDGET_LABELS), deadline);
      }
    };
    const own = await take(namespaceNames, labels, namespace);
    if (own === 'full') return 'namespace-full';
    const cluster = await take(clusterNames, BUDGET_LABELS, '');
    if (cluster !== 'full') return { cluster, namespace: own };
    // Without the cluster's slot the namespace's is no slot: back at once.
    await this.kube.deleteLease(this.settings.namespace, own.name, own.resourceVersion, deadline).catch(() => undefined);
    return 'full';
  }

  /** A free or expired slot of `names` taken, 'full', or 'contended' when other replicas took each free one first. */
  private async takeOne(names: string[], held: LeaseRecord[], labels: Record<string, string>, memo: string, deadline: Deadline): Promise<LeaseRecord | 'full' | 'contended'> {
    const { namespace, actionWindowMs } = this.settings;
    const now = Date.now();
    const byName = new Map(held.map((l) => [l.name, l]));
    const heldUntil = (l: LeaseRecord) => (l.renewTime?.getTime() ?? l.created?.getTime() ?? now) + actionWindowMs;
    const candidates = names.filter((n) => !byName.has(n) || heldUntil(byName.get(n) as LeaseRecord) <= now);
    if (candidates.length === 0) {
      const soonest = Math.min(...names.map((n) => heldUntil(byName.get(n) as LeaseRecord)));
      this.fullUntil.set(memo, Math.min(soonest, now + FULL_MEMO_MS));
      if (this.fullUntil.size > 1000) this.fullUntil.clear();
      return 'full';
    }
    // Concurrent takers start at different free slots, so that they do not collide on one name.
    const start = Math.floor(Math.random() * candidates.length);
    const spec = (name: string) => ({ ...this.spec(name, {}, labels), durationSeconds: Math.ceil(actionWindowMs / 1000) });
    // Each write that fails means another replica took that slot: at most one try per free slot seen.
    for (let i = 0; i < candidates.length; i++) {
      const name = candidates[(start + i) % candidates.length];
      const expired = byName.get(name);
      const taken = expired
        ? await this.kube.replaceLease(namespace, expired.resourceVersion, spec(name), deadline)
        : await this.kube.createLease(namespace, spec(name), deadline);
      if (typeof taken === 'object') return taken;
    }
    return 'contended';
  }

  /**
   * Gives a slot back when no action followed. Only under the resourceVersion it was taken at: once the
   * window has passed, another replica may hold the same Lease, and that one is not ours to delete.
   */
  async giveBackSlot(slot: SlotHold, deadline: Deadline): Promise<void> {
    this.fullUntil.clear();
    await Promise.all([slot.cluster, slot.namespace].map((l) => this.kube.deleteLease(this.settings.namespace, l.name, l.resourceVersion, deadline)));
  }

  /** Best effort, at most once a minute: deletes settled claims well past their time. */
  private sweep(deadline: Deadline): void {
    const now = Date.now();
    if (now - this.lastSweep < 60_000) return;
    this.lastSweep = now;
    const { namespace } = this.settings;
    void this.kube
      .listLeases(namespace, labelSelector(CLAIM_LABELS), deadline)
      .then((leases) => Promise.all(leases.filter((l) => this.expired(l, now - 10 * this.settings.claimTtlSeconds * 1000)).map((l) => this.kube.deleteLease(namespace, l.name, l.resourceVersion, deadline))))
      .catch(() => undefined);
    // Namespaces' shares long past their window: one set per namespace that had an action, not kept for ever.
    void this.kube
      .listLeases(namespace, labelSelector(BUDGET_LABELS), deadline)
      .then((leases) => Promise.all(leases.filter((l) => l.labels[SLOT_NAMESPACE] !== undefined && (l.renewTime?.getTime() ?? 0) + 2 * this.settings.actionWindowMs < now).map((l) => this.kube.deleteLease(namespace, l.name, l.resourceVersion, deadline))))
      .catch(() => undefined);
  }
}

function labelSelector(labels: Record<string, string>): string {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');
}
