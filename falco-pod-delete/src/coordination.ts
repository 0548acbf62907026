// The one blast-radius budget across replicas, at almost no API cost on an alert's path: the Lease I/O and
// the timers. The arithmetic (what a grant counts, what a write may reserve, which limit binds) is budget.ts.
//
// The budget is one Lease in the function's namespace (BUDGET_LEASE). Its annotation holds each replica's
// grant: the actions it took in the window (namespace and time), and a reservation taken at t and usable until
// u: k slots of the cluster-wide budget, and n[ns] slots of namespaces' shares (n['*']: of any namespace's). A
// replica reserves slots with one write (an update under the Lease's resourceVersion, so two replicas never
// both spend the same slots), spends them locally with no call (one cluster slot and one share slot per
// action), and writes again only to reserve more, to record what it spent, or to give back the rest.
//
// Writes are one at a time per replica, and each carries every alert waiting then: a burst of N alerts costs
// one write for all that arrive together, reserved for exactly the namespaces they are in (plus a few slots
// ahead), so one replica's burst is never held back by a batch size. An alert is refused only on what a write
// just read under its resourceVersion: the limit that binds has no room left, counting the actions recorded in
// the window and the reservations others hold. When what binds includes other replicas' reservations, the
// alert waits (up to RESERVED_WAIT_MS of its deadline) for them to come back: a live replica settles when idle.
//
// What each grant counts, against the budget and against a namespace's share, at any moment:
// - the actions it recorded within the window;
// - its reservation, whole, while it is usable (its holder may spend it without writing);
// - a reservation whose time ran out and was never settled (its holder died between an action and its next
//   write), whole, for the window: what it spent is unknown, so all of it is counted.
// So the sum over replicas never exceeds ACTION_LIMIT, nor a namespace's NAMESPACE_ACTION_LIMIT.
//
// Exactly-once on a pod is not here: the DELETE, the eviction and the isolate patch carry uid and
// resourceVersion preconditions, so of several replicas only one can act on the version they verified.
import { ANY, type Grant, HOLD_MS, SKEW_MS, type Ledger, type Limits, type Plan, type Refusal, active, live, parseGrants, plan, settlePlan, sum, surelyFull } from './budget.js';
import type { ActionLimiter, Taken } from './bounds.js';
import { Deadline } from './deadline.js';
import { KubeError } from './kube/kube-error.js';
import type { Kube, LeaseRecord, LeaseSpec } from './kube/index.js';

export type { Refusal } from './budget.js';

const MANAGED = { 'app.kubernetes.io/managed-by': 'falco-pod-delete' };
export const BUDGET_LEASE = 'fpd-budget';
/** The Lease of the node budget (NODE_ACTION_LIMIT): cordons across replicas. */
export const NODE_BUDGET_LEASE = 'fpd-node-budget';
const BUDGET_LABELS = { ...MANAGED, 'falco-pod-delete/role': 'budget' };
export const GRANTS = 'falco-pod-delete/grants';
/** Idle this long, a replica settles: its actions recorded, its reservation back to the one slot it keeps ahead. */
export const IDLE_MS = 500;
/** An idle replica renews the slot it keeps ahead this long before its reservation ends. */
const RENEW_BEFORE_MS = SKEW_MS + 3_000;
/** Writes one reservation makes at most while other replicas keep writing the Lease first. */
const ROUNDS = 8;
/** A budget found full of recorded actions is believed full this long without asking again (or until a slot of it frees). */
const FULL_MEMO_MS = 1000;
/** How long a take waits for other replicas' unused reservations to come back before answering full. */
export const RESERVED_WAIT_MS = 1500;
/** How often a waiting take reads the Lease again for what other replicas gave back. */
const POLL_MS = 200;

export interface CoordinationSettings {
  namespace: string;
  identity: string;
  actionLimit: number;
  actionWindowMs: number;
  namespaceActionLimit: number;
  /** The Lease's name: BUDGET_LEASE for pods; the node budget has its own (NODE_BUDGET_LEASE). */
  lease?: string;
}

/** Time and timers, replaceable by a test that runs replicas in one interleaving of its choosing. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Whether idle settles and renewals run by themselves (off: the test calls settleNow). */
  timers: boolean;
}

const REAL_CLOCK: Clock = { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)), timers: true };

/** A slot as spent by one action: giveBack returns exactly it. */
export interface SlotHold {
  namespace: string;
  at: number;
  returned: boolean;
  /** The share slot it was spent from: its namespace's, or ANY. */
  from: string;
}

export class Coordinator {
  private lease: LeaseRecord | undefined;
  /** The grants as last read or written, this replica's among them. */
  private known: Record<string, Grant> = {};
  /** This replica's reservation as last written, less what it spent since: by key (a namespace, or ANY). */
  private unspent = new Map<string, number>();
  private grantUntil = 0;
  /** Actions spent since the last write (not in the Lease yet), and the ones the last write recorded. */
  private spent: SlotHold[] = [];
  private recorded: SlotHold[] = [];
  /** Takes waiting for a write, by namespace; namespaces whose next write should reserve ahead. */
  private readonly demand = new Map<string, number>();
  private readonly hints = new Set<string>();
  /** The writes of this replica, one after another; the reserve queued and not started yet (it takes every waiter). */
  private chain: Promise<unknown> = Promise.resolve();
  private writing = 0;
  /** Takes waiting for other replicas' reservations to come back. */
  private polling = 0;
  /** Writes that landed: a read issued before one of them is older than what it wrote. */
  private writes = 0;
  private queued: Promise<Plan | undefined> | undefined;
  private reading: Promise<void> | undefined;
  /** Until when the grants known are as fresh as a read: the last read or write of the Lease, moments ago. */
  private freshUntil = 0;
  /** Refusals believed for a moment with no API call: '' for the whole budget, else by namespace. */
  private readonly memo = new Map<string, Refusal & { until: number }>();
  private idleTimer: NodeJS.Timeout | undefined;
  private lastTake = 0;
  private renewTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly kube: Kube, readonly settings: CoordinationSettings, private readonly clock: Clock = REAL_CLOCK) {}

  private get leaseName(): string {
    return this.settings.lease ?? BUDGET_LEASE;
  }

  private get limits(): Limits {
    return { limit: this.settings.actionLimit, share: this.settings.namespaceActionLimit, window: this.settings.actionWindowMs };
  }

  /** A refusal remembered moments ago for `namespace` (answered with no API call), unless a slot is at hand. */
  knownFull(namespace: string, now = this.clock.now()): Refusal | undefined {
    if (this.usable(namespace, now) !== undefined) return undefined;
    for (const key of ['', namespace]) {
      const m = this.memo.get(key);
      if (m && m.until > now) {
        const { until: _, ...refusal } = m;
        return refusal;
      }
    }
    return undefined;
  }

  /** Reserves ahead at start (which also opens the connection to the API server): the first alert finds slots. */
  async warm(deadline: Deadline): Promise<void> {
    if (this.settings.actionLimit === 0) return;
    await this.settleNow(deadline);
  }

  /**
   * Slots a write reserves ahead for a namespace with alerts, beyond those waiting: an eighth of the budget
   * while no other replica is active (so that the next alerts, in a burst or one at a time, find slots with
   * no write); none beside active replicas, whose bursts would have to wait for slots held unused here.
   */
  private ahead(): number {
    return this.othersLive() ? 0 : Math.max(1, Math.min(64, Math.ceil(this.settings.actionLimit / 8)));
  }

  /** Other replicas that may be reserving now (not stopped, written within their hold): what this one holds unused, they would wait for. */
  private othersLive(): boolean {
    const now = this.clock.now();
    return Object.entries(this.known).some(([holder, g]) => holder !== this.settings.identity && active(g, now));
  }

  /**
   * The slot an idle replica keeps ahead, so that the first alert after a quiet spell finds one: one while it is
   * the only replica with a grant in the Lease (and ACTION_LIMIT is 4 or more). With others, none: an idle
   * replica's slot would be a reservation nobody uses that another replica's burst must count.
   */
  private idleAhead(): number {
    return !this.closed && !this.othersLive() && this.settings.actionLimit >= 4 ? 1 : 0;
  }

  /**
   * A slot of the shared budget for an action in `namespace` (undefined when there is no limit), or the
   * refusal: which limit binds, with its figures. With slots reserved, no API call.
   */
  async takeSlot(namespace: string, deadline: Deadline): Promise<SlotHold | undefined | Refusal> {
    if (this.settings.actionLimit === 0) return undefined;
    const waitUntil = this.clock.now() + Math.min(RESERVED_WAIT_MS, Math.max(0, deadline.remaining() - 500));
    // A take is activity (it holds off the idle settle) when it comes, not while it waits for other replicas.
    this.lastTake = this.clock.now();
    this.scheduleSettle();
    for (;;) {
      const now = this.clock.now();
      const local = this.takeLocal(namespace, now);
      if (local?.kind === 'slot') return local.hold;
      if (local) {
        // Recorded actions fill a limit: believed as read moments ago, else read again (another replica may have given some back).
        if (now < this.freshUntil) return this.remember(namespace, local.refusal);
        await this.refresh(deadline);
        if (this.clock.now() < this.freshUntil) continue;
      }
      const known = this.knownFull(namespace, now);
      if (known) return known;
      if (deadline.remaining() <= 0) throw new KubeError('timeout', 'update', 'leases', this.settings.namespace, `no slot of the shared budget (Lease ${this.settings.namespace}/${this.leaseName}) could be reserved before the alert's deadline`);
      // The Lease as just read or written, and nothing reserved here that a write would give up: when it has
      // no room for this alert, no write can make any.
      const ledger = this.ledger(now);
      let short = now < this.freshUntil && sum(ledger.keep) === 0 ? plan(ledger, new Map([[namespace, 1]]), 0).short[namespace] : undefined;
      if (!short) {
        this.demand.set(namespace, (this.demand.get(namespace) ?? 0) + 1);
        let result: Plan | undefined;
        try {
          result = await this.reserve(deadline);
        } finally {
          const left = (this.demand.get(namespace) ?? 1) - 1;
          if (left > 0) this.demand.set(namespace, left);
          else this.demand.delete(namespace);
        }
        const after = this.takeLocal(namespace, this.clock.now());
        if (after) return after.kind === 'slot' ? after.hold : this.remember(namespace, after.refusal);
        short = result?.short[namespace];
        // Room was there, but the slots went to alerts that came first (or the write landed too late to be
        // spent, or never did): write again for this one.
        if (!short || this.clock.now() >= this.grantUntil) continue;
      }
      // Short only for reservations other replicas hold: they settle when idle, so wait a little and read again.
      const waiting = short.heldElsewhere > 0;
      if (waiting && this.clock.now() < waitUntil) {
        // While it waits, this replica reserves nothing ahead (refill): what others give back goes to alerts.
        this.polling++;
        try {
          await this.clock.sleep(POLL_MS);
          await this.refresh(deadline);
        } finally {
          this.polling--;
        }
        continue;
      }
      return this.remember(namespace, short, waiting);
    }
  }

  /** The Lease as read: its resourceVersion for the next write, its grants as known. */
  private adopt(lease: LeaseRecord | null): void {
    this.lease = lease ?? undefined;
    this.known = parseGrants(this.lease?.annotations[GRANTS], this.clock.now());
  }

  /** Reads the Lease again (one read for all the takes waiting at once). */
  private refresh(deadline: Deadline): Promise<void> {
    const writes = this.writes;
    this.reading ??= this.kube.readLease(this.settings.namespace, this.leaseName, deadline).then((lease) => {
      // A write under way, or one that landed meanwhile, is newer than this read: keep what it wrote.
      if (this.writing > 0 || this.writes !== writes) return;
      this.adopt(lease);
      this.freshUntil = this.clock.now() + POLL_MS;
    }).finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  /**
   * A refusal, remembered for a moment: when only recorded actions fill the limit (they cannot come back before
   * they leave the window), or when this take already waited for the reservations others hold.
   */
  private remember(namespace: string, r: Refusal, waited = false): Refusal {
    if (r.heldElsewhere === 0 || waited) {
      if (this.memo.size > 1000) this.memo.clear();
      const now = this.clock.now();
      this.memo.set(r.which === 'full' ? '' : namespace, { ...r, until: Math.min(now + FULL_MEMO_MS, r.frees ?? Infinity) });
    }
    return r;
  }

  /** Which key of this replica's reservation an action in `namespace` may be spent from now. */
  private usable(namespace: string, now: number): string | undefined {
    if (now >= this.grantUntil) return undefined;
    if ((this.unspent.get(namespace) ?? 0) > 0) return namespace;
    if ((this.unspent.get(ANY) ?? 0) > 0) return ANY;
    return undefined;
  }

  /** A slot from this replica's reservation; a refusal when recorded actions alone fill a limit; else undefined (a write is needed). */
  private takeLocal(namespace: string, now: number): { kind: 'slot'; hold: SlotHold } | { kind: 'full'; refusal: Refusal } | undefined {
    const from = this.usable(namespace, now);
    if (from !== undefined) {
      this.unspent.set(from, (this.unspent.get(from) ?? 0) - 1);
      const hold = { namespace, at: now, returned: false, from };
      this.spent.push(hold);
      return { kind: 'slot', hold };
    }
    const refusal = surelyFull(this.ledger(now), namespace);
    return refusal ? { kind: 'full', refusal } : undefined;
  }

  /** The arithmetic's view of now: others' grants as known, this replica's actions in the window and what it keeps. */
  private ledger(now: number): Ledger {
    const others: Record<string, Grant> = {};
    for (const [holder, g] of Object.entries(this.known)) if (holder !== this.settings.identity && live(g, now, this.settings.actionWindowMs)) others[holder] = g;
    const keep: Record<string, number> = {};
    if (now < this.grantUntil) for (const [key, m] of this.unspent) if (m > 0) keep[key] = m;
    return { limits: this.limits, now, others, mine: this.mine(now), keep };
  }

  /** This replica's actions in the window, recorded or not, not given back. */
  private mine(now: number): SlotHold[] {
    return [...this.recorded, ...this.spent].filter((h) => !h.returned && now - h.at < this.settings.actionWindowMs);
  }

  /**
   * Called once an action's request has gone: with its last reserved slot spent, this replica reserves more
   * for that namespace now, off the path (before the next alert of a burst needs a slot).
   */
  refill(): void {
    if (sum(this.unspent) > 0 || this.writing > 0 || this.polling > 0 || this.closed || this.settings.actionLimit === 0) return;
    const last = this.spent.at(-1)?.namespace;
    if (last !== undefined) this.hints.add(last);
    // Its own deadline: the alert's ends with its answer.
    const own = new Deadline(5000);
    void this.reserve(own).catch(() => undefined).finally(() => own.dispose());
  }

  /** Gives back a slot whose action did not happen. */
  giveBackSlot(slot: SlotHold): void {
    if (slot.returned) return;
    slot.returned = true;
    const i = this.spent.indexOf(slot);
    if (i >= 0) {
      this.spent.splice(i, 1);
      if (this.clock.now() < this.grantUntil) this.unspent.set(slot.from, (this.unspent.get(slot.from) ?? 0) + 1);
    }
    this.memo.clear();
    this.scheduleSettle();
  }

  /** The next reservation write: the one queued and not started yet (it will carry this take's demand), or a new one. */
  private reserve(deadline: Deadline): Promise<Plan | undefined> {
    if (this.queued) return this.queued;
    const p: Promise<Plan | undefined> = this.chain.then(() => {
      if (this.queued === p) this.queued = undefined;
      return this.write('reserve', deadline);
    });
    this.queued = p;
    this.chain = p.catch(() => undefined);
    return p;
  }

  /**
   * Writes this replica's grant: every action spent so far recorded, and the reservation as planned (a settle
   * keeps at most the slot ahead). Under the Lease's resourceVersion; on a conflict, reads and plans again.
   * Undefined when other replicas kept writing first for ROUNDS rounds.
   */
  private async write(kind: 'reserve' | 'settle', deadline: Deadline): Promise<Plan | undefined> {
    this.writing++;
    try {
      const { namespace, identity } = this.settings;
      for (let round = 0; round < ROUNDS; round++) {
        if (!this.lease) {
          this.adopt(await this.kube.readLease(namespace, this.leaseName, deadline));
        }
        const now = this.clock.now();
        this.freshUntil = 0;
        if (now >= this.grantUntil) this.unspent.clear();
        let planned: Plan;
        if (kind === 'settle' && this.demand.size === 0) {
          // What is not spent by now is given back: nothing more may be spent from it while the write is under way.
          this.unspent.clear();
          planned = { n: settlePlan(this.ledger(now), this.idleAhead()), trimmed: {}, short: {} };
        } else {
          const demand = new Map(this.demand);
          for (const ns of this.hints) if (!demand.has(ns)) demand.set(ns, 0);
          this.hints.clear();
          planned = plan(this.ledger(now), demand, this.ahead());
          // Given up before the write: no longer spendable here.
          for (const [key, m] of Object.entries(planned.trimmed)) this.unspent.set(key, (this.unspent.get(key) ?? 0) - m);
        }
        const { n } = planned;
        const written = this.mine(now);
        const used: Record<string, number[]> = {};
        for (const h of written) (used[h.namespace] ??= []).push(h.at);
        // Grants with nothing left in the window are dropped: a replica long gone leaves no trace.
        const next: Record<string, Grant> = { ...this.ledger(now).others, [identity]: { t: now, u: now + HOLD_MS, k: sum(n), n, used, ...(this.closed ? { c: 1 as const } : {}) } };
        const spec: LeaseSpec = { name: this.leaseName, holder: identity, durationSeconds: Math.ceil(this.settings.actionWindowMs / 1000), annotations: { [GRANTS]: JSON.stringify(next) }, labels: BUDGET_LABELS };
        const before = new Set(this.spent);
        const result = this.lease
          ? await this.kube.replaceLease(namespace, this.lease.resourceVersion, spec, deadline)
          : await this.kube.createLease(namespace, spec, deadline);
        if (result === 'conflict' || result === 'gone' || result === 'exists') {
          this.lease = undefined;
          continue;
        }
        this.lease = result;
        this.known = next;
        this.writes++;
        // Written: what was spent before the write is recorded; what was spent during it came from the kept
        // reservation, which the new grant still holds.
        const inFlight = this.spent.filter((h) => !before.has(h));
        this.recorded = written;
        this.spent = inFlight;
        this.unspent = new Map(Object.entries(n));
        for (const h of inFlight) this.unspent.set(h.from, Math.max(0, (this.unspent.get(h.from) ?? 0) - 1));
        this.grantUntil = now + HOLD_MS - SKEW_MS;
        this.freshUntil = this.clock.now() + POLL_MS;
        this.scheduleRenew(sum(n) > 0);
        return planned;
      }
      return undefined;
    } finally {
      this.writing--;
    }
  }

  /** After IDLE_MS with no take, records what was spent and gives the rest back: one write per idle period. */
  private scheduleSettle(): void {
    if (this.idleTimer || !this.clock.timers) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.clock.now() - this.lastTake < IDLE_MS || this.demand.size > 0) return this.scheduleSettle();
      void this.settleNow().catch(() => this.scheduleSettle());
    }, IDLE_MS);
    this.idleTimer.unref();
  }

  /** Before a reservation runs out, it is renewed (what was spent recorded, the slot ahead kept): idle, one write a HOLD_MS. */
  private scheduleRenew(reserved: boolean): void {
    if (this.renewTimer) clearTimeout(this.renewTimer);
    this.renewTimer = undefined;
    if (!reserved || this.closed || !this.clock.timers) return;
    this.renewTimer = setTimeout(() => {
      this.renewTimer = undefined;
      void this.settleNow().catch(() => undefined);
    }, HOLD_MS - RENEW_BEFORE_MS);
    this.renewTimer.unref();
  }

  /** Records every action spent and keeps only the slot ahead (none on close): a graceful stop gives all back. */
  async settleNow(deadline?: Deadline): Promise<void> {
    if (this.settings.actionLimit === 0) return;
    await this.chain;
    const ahead = this.idleAhead();
    const mine = this.known[this.settings.identity];
    const nothingToWrite = this.spent.length === 0 && !this.recorded.some((h) => h.returned) && (mine ? sum(mine.n) : 0) === ahead && this.clock.now() < this.grantUntil - RENEW_BEFORE_MS;
    if (nothingToWrite || (this.closed && !mine) || this.demand.size > 0) return;
    const own = deadline ?? new Deadline(5000);
    try {
      const p = this.chain.then(() => this.write('settle', own));
      this.chain = p.catch(() => undefined);
      await p;
    } finally {
      if (!deadline) own.dispose();
    }
  }

  /** The graceful stop: every action recorded, every unspent slot given back, no more renewals. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.renewTimer) clearTimeout(this.renewTimer);
    if (this.settings.actionLimit === 0 || !this.lease) return;
    await this.settleNow();
  }
}

/** A slot of the budget as taken: the local limiter's, and the shared Lease's (several replicas). */
export interface Slot {
  local: Taken | undefined;
  held: SlotHold | undefined;
}

/**
 * One budget as an action meets it: the local limiter and, with COORDINATION=cluster, the shared Lease. A
 * slot of both, or the refusal that binds; a slot given back returns to both. The pod budget and the node
 * budget (cordon) are each one.
 */
export class BudgetSlots {
  constructor(readonly limiter: ActionLimiter, readonly coordinator: Coordinator | undefined) {}

  async take(key: string, deadline: Deadline): Promise<Slot | Refusal> {
    const known = this.coordinator?.knownFull(key);
    if (known) return known;
    const local = this.limiter.tryTake(key);
    if (local === 'full' || local === 'namespace-full') {
      const full = local === 'full';
      return { which: local, limit: full ? this.limiter.limit : this.limiter.namespaceLimit, taken: full ? this.limiter.used() : this.limiter.usedIn(key), heldElsewhere: 0, heldHere: 0 };
    }
    if (!this.coordinator) return { local, held: undefined };
    try {
      const held = await this.coordinator.takeSlot(key, deadline);
      if (held && 'which' in held) {
        this.limiter.giveBack(local);
        return held;
      }
      return { local, held };
    } catch (e) {
      this.limiter.giveBack(local);
      throw e;
    }
  }

  /** The slot taken for an action that did not happen, locally and (after the answer) in the shared budget. */
  giveBack(slot: Slot | undefined): void {
    if (!slot) return;
    this.limiter.giveBack(slot.local);
    if (slot.held) this.coordinator?.giveBackSlot(slot.held);
  }
}
