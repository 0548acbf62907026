// Correct at any replica count: the Kubernetes API arbitrates which replica acts on a pod (a Lease created
// under a name derived from the pod's UID; AlreadyExists means another replica has it) and holds the one
// cluster-wide blast-radius budget (ACTION_LIMIT slot Leases, each held for the window once taken). Both live
// in the function's own namespace.
import type { Deadline } from './deadline.js';
import type { Kube, LeaseRecord, LeaseSpec, PodSnapshot } from './kube.js';
import type { Result } from './outcome.js';

const MANAGED = { 'app.kubernetes.io/managed-by': 'falco-pod-delete' };
const CLAIM_LABELS = { ...MANAGED, 'falco-pod-delete/role': 'claim' };
const OUTCOME = 'falco-pod-delete/outcome';
const REASON = 'falco-pod-delete/reason';
const POD = 'falco-pod-delete/pod';
/** The budget's slot Leases are named BUDGET_SLOT + 0 .. ACTION_LIMIT - 1. */
export const BUDGET_SLOT = 'fpd-budget-';

export type Claim =
  | { won: true; lease: LeaseRecord }
  | { won: false; holder: string; outcome?: { result: Result; reason: string } };

export interface CoordinationSettings {
  namespace: string;
  identity: string;
  claimTtlSeconds: number;
  actionLimit: number;
  actionWindowMs: number;
}

export function claimName(pod: PodSnapshot): string {
  return `fpd-claim-${pod.uid}`.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 253);
}

export class Coordinator {
  private lastSweep = 0;

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
  async claim(pod: PodSnapshot, deadline: Deadline): Promise<Claim> {
    this.sweep(deadline);
    const name = claimName(pod);
    const spec = this.spec(name, { [POD]: `${pod.namespace}/${pod.name}` }, CLAIM_LABELS);
    const created = await this.kube.createLease(this.settings.namespace, spec, deadline);
    if (created !== 'exists') return { won: true, lease: created };
    const existing = await this.kube.readLease(this.settings.namespace, name, deadline);
    if (!existing) return this.claim(pod, deadline); // released between our create and read: try again
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

  /** Gives the claim up (the action failed or was refused), so the next alert can act. */
  async release(claim: LeaseRecord, deadline: Deadline): Promise<void> {
    await this.kube.deleteLease(this.settings.namespace, claim.name, deadline);
  }

  /**
   * One slot of the cluster-wide budget: the Lease taken (undefined when there is no limit), or 'full' when the
   * window is full. The budget is ACTION_LIMIT slot Leases (fpd-budget-0 .. N-1), each held for the window from
   * its renewTime: taking a free slot is one create (AlreadyExists: taken), an expired one is taken over under a
   * resourceVersion precondition. Concurrent actions start at different slots, so they do not take turns on one object.
   */
  async takeSlot(deadline: Deadline): Promise<LeaseRecord | undefined | 'full'> {
    const { namespace, actionLimit, actionWindowMs } = this.settings;
    if (actionLimit === 0) return undefined;
    const start = Math.floor(Math.random() * actionLimit);
    const spec = (name: string) => ({ ...this.spec(name, {}, { ...MANAGED, 'falco-pod-delete/role': 'budget' }), durationSeconds: Math.ceil(actionWindowMs / 1000) });
    for (let i = 0; i < actionLimit; i++) {
      const name = `${BUDGET_SLOT}${(start + i) % actionLimit}`;
      const created = await this.kube.createLease(namespace, spec(name), deadline);
      if (created !== 'exists') return created;
      const held = await this.kube.readLease(namespace, name, deadline);
      if (!held) {
        const again = await this.kube.createLease(namespace, spec(name), deadline);
        if (again !== 'exists') return again;
        continue;
      }
      const renewed = held.renewTime?.getTime() ?? held.created?.getTime() ?? Date.now();
      if (Date.now() - renewed < actionWindowMs) continue;
      const taken = await this.kube.replaceLease(namespace, held.resourceVersion, spec(name), deadline);
      if (taken !== 'conflict' && taken !== 'gone') return taken;
    }
    return 'full';
  }

  /**
   * Gives a slot back when no action followed (the claim was lost, or failed). Only the replica that took it
   * within the window deletes it: nobody else may take it over before the window ends.
   */
  async giveBackSlot(slot: LeaseRecord, deadline: Deadline): Promise<void> {
    await this.kube.deleteLease(this.settings.namespace, slot.name, deadline);
  }

  /** Best effort, at most once a minute: deletes settled claims well past their time. */
  private sweep(deadline: Deadline): void {
    const now = Date.now();
    if (now - this.lastSweep < 60_000) return;
    this.lastSweep = now;
    const { namespace } = this.settings;
    const selector = Object.entries(CLAIM_LABELS).map(([k, v]) => `${k}=${v}`).join(',');
    void this.kube
      .listLeases(namespace, selector, deadline)
      .then((leases) => Promise.all(leases.filter((l) => this.expired(l, now - 10 * this.settings.claimTtlSeconds * 1000)).map((l) => this.kube.deleteLease(namespace, l.name, deadline))))
      .catch(() => undefined);
  }
}
