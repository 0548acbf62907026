// The one blast-radius budget across replicas, at almost no API cost on an alert's path.
//
// The budget is one Lease in the function's namespace (BUDGET_LEASE). Its annotation holds each replica's
// grant: the actions it took in the window (namespace and time), and a reservation taken at t and usable until
// u: k slots of the cluster-wide budget, and n[ns] slots of namespaces' shares (n['*']: of any namespace's). A
// replica reserves a few slots ahead with one write (an update under the Lease's resourceVersion, so two
// replicas never both spend the same slots), spends them locally with no call (one cluster slot and one share
// slot per action), and writes again only to reserve more, to record what it spent, or to give back the rest.
//
// What each grant counts, against the budget and against a namespace's share, at any moment:
// - the actions it recorded within the window;
// - its reservation, whole, while it is usable (its holder may spend it without writing);
// - a reservation whose time ran out and was never settled (its holder died between an action and its next
//   write), whole, for the window: what it spent is unknown, so all of it is counted.
// A live replica settles (records its actions, keeps at most one slot ahead) once it has been idle for
// IDLE_MS, so its unused slots go back to the others within about a second; a dead one's stay counted for a
// window. So the sum over replicas never exceeds ACTION_LIMIT, nor a namespace's NAMESPACE_ACTION_LIMIT.
//
// Exactly-once on a pod is not here: the DELETE, the eviction and the isolate patch carry uid and
// resourceVersion preconditions, so of several replicas only one can act on the version they verified.
import { Deadline } from './deadline.js';
import type { Kube, LeaseRecord, LeaseSpec } from './kube.js';

const MANAGED = { 'app.kubernetes.io/managed-by': 'falco-pod-delete' };
export const BUDGET_LEASE = 'fpd-budget';
const BUDGET_LABELS = { ...MANAGED, 'falco-pod-delete/role': 'budget' };
export const GRANTS = 'falco-pod-delete/grants';
/** A reservation is usable this long after it was written, less SKEW_MS (clocks of nodes differ a little). */
const HOLD_MS = 30_000;
const SKEW_MS = 2_000;
/** Idle this long, a replica settles: its actions recorded, its reservation back to the one slot it keeps ahead. */
export const IDLE_MS = 500;
/** An idle replica renews the slot it keeps ahead this long before its reservation ends. */
const RENEW_BEFORE_MS = SKEW_MS + 3_000;
/** Writes one reservation makes at most while other replicas keep writing the Lease first. */
const ROUNDS = 8;
/** A budget found full is believed full this long without asking again (or until a slot of it frees). */
const FULL_MEMO_MS = 1000;
/** How long a take waits for other replicas' unused reservations to come back before answering full. */
const RESERVED_WAIT_MS = 1500;

/** One replica's grant, as stored: used is namespace -> action times (ms), u the reservation's end. */
interface Grant {
  t: number;
  u: number;
  k: number;
  /** Share slots reserved, by namespace; '*' may be spent in any namespace (and counts against every one). */
  n: Record<string, number>;
  used: Record<string, number[]>;
}

const ANY = '*';

export interface CoordinationSettings {
  namespace: string;
  identity: string;
  actionLimit: number;
  actionWindowMs: number;
  namespaceActionLimit: number;
}

/** A slot as spent by one action: giveBack returns exactly it. */
export interface SlotHold {
  namespace: string;
  at: number;
  returned: boolean;
  /** The share slot it was spent from: its namespace's, or ANY. */
  from: string;
}

/** A grant's recorded actions within the window, in `namespace` or in all. */
function usedIn(g: Grant, namespace: string | undefined, now: number, window: number): number {
  const lists = namespace === undefined ? Object.values(g.used) : [g.used[namespace] ?? []];
  return lists.reduce((n, times) => n + times.filter((at) => now - at < window).length, 0);
}

function parseGrants(lease: LeaseRecord | undefined): Record<string, Grant> {
  if (!lease) return {};
  try {
    const raw = JSON.parse(lease.annotations[GRANTS] ?? '{}') as Record<string, Partial<Grant>>;
    const grants: Record<string, Grant> = {};
    for (const [holder, g] of Object.entries(raw ?? {})) {
      if (typeof g !== 'object' || g === null) continue;
      const used: Record<string, number[]> = {};
      for (const [ns, times] of Object.entries(g.used ?? {})) if (Array.isArray(times)) used[ns] = times.filter((x) => typeof x === 'number');
      const n: Record<string, number> = {};
      for (const [ns, m] of Object.entries(g.n ?? {})) if (Number(m) > 0) n[ns] = Number(m);
      grants[holder] = { t: Number(g.t) || 0, u: Number(g.u) || 0, k: Math.max(0, Number(g.k) || 0), n, used };
    }
    return grants;
  } catch {
    // Unreadable: counted as a full budget by the caller (never as an empty one).
    return { '(unreadable)': { t: Date.now(), u: Date.now() + HOLD_MS, k: Number.MAX_SAFE_INTEGER, n: { [ANY]: Number.MAX_SAFE_INTEGER }, used: {} } };
  }
}

export class Coordinator {
  private lease: LeaseRecord | undefined;
  /** The grants as last read or written (kept while a conflict makes the Lease be read again). */
  private known: Record<string, Grant> = {};
  /** This replica's reservation as last written: its slots not yet spent are `remaining`. */
  private remaining = 0;
  private remainingNs = new Map<string, number>();
  private grantUntil = 0;
  /** Why the last reservation came up short: the cluster-wide budget, or the namespace's share. */
  private short: 'full' | 'namespace-full' = 'full';
  /** Actions spent since the last write (not in the Lease yet), and recorded ones given back since. */
  private spent: SlotHold[] = [];
  private recorded: SlotHold[] = [];
  private sync: Promise<void> | undefined;
  /** What the write under way does: settle, or reserve for a namespace. */
  private syncSettles = false;
  private syncNamespace: string | undefined;
  private waiting = 0;
  private fullUntil = 0;
  private readonly namespaceFullUntil = new Map<string, number>();
  private idleTimer: NodeJS.Timeout | undefined;
  private lastTake = 0;
  private renewTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly kube: Kube, readonly settings: CoordinationSettings) {}

  private get window(): number {
    return this.settings.actionWindowMs;
  }

  /** Whether the budget, or this namespace's share, was found full moments ago: answered with no API call. */
  knownFull(namespace: string, now = Date.now()): 'full' | 'namespace-full' | undefined {
    if (this.remaining > 0 && now < this.grantUntil) return undefined;
    if (this.fullUntil > now) return 'full';
    if ((this.namespaceFullUntil.get(namespace) ?? 0) > now) return 'namespace-full';
    return undefined;
  }

  /** Reserves ahead at start (which also opens the connection to the API server): the first alert finds slots. */
  async warm(deadline: Deadline): Promise<void> {
    if (this.settings.actionLimit === 0) return;
    await this.settleNow(deadline);
  }

  /** Slots one write reserves during activity: an eighth of the budget (at least those waiting), at most a quarter. */
  private batch(): number {
    const { actionLimit } = this.settings;
    return Math.max(1, Math.min(64, Math.ceil(actionLimit / 4), Math.max(Math.ceil(actionLimit / 8), this.waiting + 1)));
  }

  /**
   * The slot an idle replica keeps ahead, so that the first alert after a quiet spell finds one: one, unless the
   * budget is small for the replicas sharing it (under four slots each), when idle replicas keep none.
   */
  private idleAhead(): number {
    const holders = new Set([...Object.keys(this.known), this.settings.identity]).size;
    return !this.closed && this.settings.actionLimit >= 4 * holders ? 1 : 0;
  }

  /**
   * A slot of the shared budget for an action in `namespace` (undefined when there is no limit), or which
   * limit is reached. With slots reserved and the namespace's share clear, no API call.
   */
  async takeSlot(namespace: string, deadline: Deadline): Promise<SlotHold | undefined | 'full' | 'namespace-full'> {
    if (this.settings.actionLimit === 0) return undefined;
    const waitUntil = Date.now() + Math.min(RESERVED_WAIT_MS, Math.max(0, deadline.remaining() - 500));
    this.waiting++;
    try {
      for (let round = 0; ; round++) {
        const now = Date.now();
        this.lastTake = now;
        this.scheduleSettle();
        const local = this.takeLocal(namespace, now);
        if (typeof local === 'object') return local;
        if (local === 'namespace-full') return this.memoNamespace(namespace, now);
        if (local === 'full') return local;
        const known = this.knownFull(namespace, now);
        if (known === 'full') return known;
        // No slot reserved (or the namespace's share is unclear while other replicas hold reservations):
        // reserve more, or learn what the others gave back.
        const reserved = await this.reserve(this.batch(), deadline, undefined, namespace);
        if (!reserved && round < 5) continue;
        const after = this.takeLocal(namespace, Date.now());
        if (typeof after === 'object') return after;
        if (after === 'namespace-full') return this.memoNamespace(namespace, Date.now());
        if (after === 'full') return after;
        // Short, but for reservations other replicas have not spent: they settle when idle, so wait a little.
        if (this.othersReserved(this.short === 'full' ? undefined : namespace, Date.now()) === 0 || Date.now() >= waitUntil || round >= 5) {
          if (this.short === 'namespace-full') return this.memoNamespace(namespace, Date.now());
          this.fullUntil = Math.max(this.fullUntil, Date.now() + FULL_MEMO_MS);
          return 'full';
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    } finally {
      this.waiting--;
    }
  }

  private memoNamespace(namespace: string, now: number): 'namespace-full' {
    if (this.namespaceFullUntil.size > 1000) this.namespaceFullUntil.clear();
    this.namespaceFullUntil.set(namespace, now + FULL_MEMO_MS);
    return 'namespace-full';
  }

  /** A slot from this replica's reservation; 'full' or 'namespace-full' when surely spent; else 'none'. */
  private takeLocal(namespace: string, now: number): SlotHold | 'full' | 'namespace-full' | 'none' {
    if (this.spentIn(undefined, now) >= this.settings.actionLimit) return 'full';
    if (this.spentIn(namespace, now) >= this.settings.namespaceActionLimit) return 'namespace-full';
    if (this.remaining <= 0 || now >= this.grantUntil) return 'none';
    const from = (this.remainingNs.get(namespace) ?? 0) > 0 ? namespace : (this.remainingNs.get(ANY) ?? 0) > 0 ? ANY : undefined;
    if (from === undefined) return 'none';
    this.remaining--;
    this.remainingNs.set(from, (this.remainingNs.get(from) ?? 0) - 1);
    const hold = { namespace, at: now, returned: false, from };
    this.spent.push(hold);
    return hold;
  }

  /** Actions within the window (in `namespace`, or in all): every replica's recorded ones and this one's not yet written. */
  private spentIn(namespace: string | undefined, now: number): number {
    let n = 0;
    for (const [holder, g] of Object.entries(this.known)) {
      if (holder !== this.settings.identity) n += usedIn(g, namespace, now, this.window);
    }
    return n + this.mine(now).filter((h) => namespace === undefined || h.namespace === namespace).length;
  }

  /** This replica's actions in the window, recorded or not, given back or not. */
  private mine(now: number): SlotHold[] {
    return [...this.recorded, ...this.spent].filter((h) => !h.returned && now - h.at < this.window);
  }

  private valid(g: Grant, now: number): boolean {
    return now < g.u || now - g.t < this.window;
  }

  /** What a grant holds reserved now: of the budget (no namespace), usable in `namespace`, or of ANY only. */
  private reservedIn(g: Grant, namespace: string | undefined, now: number): number {
    if (!this.valid(g, now)) return 0;
    if (namespace === undefined) return g.k;
    return (g.n[ANY] ?? 0) + (namespace === ANY ? 0 : g.n[namespace] ?? 0);
  }

  /** What other replicas hold reserved now (of the budget, or usable in `namespace`). */
  private othersReserved(namespace: string | undefined, now: number): number {
    let n = 0;
    for (const [holder, g] of Object.entries(this.known)) if (holder !== this.settings.identity) n += this.reservedIn(g, namespace, now);
    return n;
  }

  /**
   * Called once an action's request has gone: with its last reserved slot spent, this replica reserves more
   * now, off the path (after this action, before the next alert needs a slot).
   */
  refill(): void {
    if (this.remaining > 0 || this.sync || this.closed || this.settings.actionLimit === 0) return;
    // Its own deadline: the alert's ends with its answer.
    const own = new Deadline(5000);
    void this.reserve(this.batch(), own, undefined, this.spent.at(-1)?.namespace).catch(() => undefined).finally(() => own.dispose());
  }

  /** Gives back a slot whose action did not happen. */
  giveBackSlot(slot: SlotHold): void {
    if (slot.returned) return;
    slot.returned = true;
    const i = this.spent.indexOf(slot);
    if (i >= 0) {
      this.spent.splice(i, 1);
      if (Date.now() < this.grantUntil) {
        this.remaining++;
        this.remainingNs.set(slot.from, (this.remainingNs.get(slot.from) ?? 0) + 1);
      }
    }
    this.fullUntil = 0;
    this.namespaceFullUntil.clear();
    this.scheduleSettle();
  }

  /**
   * A write of this replica's grant, or the one under way (concurrent takes share it). True when the write
   * awaited reserved for `forNamespace`; false after a settle (at most the slot ahead) or a reservation for
   * another namespace: look again.
   */
  private async reserve(want: number, deadline: Deadline, settleTo?: number, forNamespace?: string): Promise<boolean> {
    if (!this.sync) {
      this.syncSettles = settleTo !== undefined;
      this.syncNamespace = forNamespace;
      this.sync = this.write(want, deadline, settleTo, forNamespace).finally(() => {
        this.sync = undefined;
      });
    }
    // A write under way for another namespace reserved nothing of this one's share.
    const reserving = !this.syncSettles && this.syncNamespace === forNamespace;
    await this.sync;
    return reserving;
  }

  /**
   * Writes this replica's grant: every action spent so far recorded, and a reservation of up to `want` slots
   * on top of what is still reserved (0 settles). Under the Lease's resourceVersion; on a conflict, reads
   * and computes again.
   */
  private async write(want: number, deadline: Deadline, settleTo: number | undefined, forNamespace: string | undefined): Promise<void> {
    const { namespace, identity, actionLimit, namespaceActionLimit: share } = this.settings;
    for (let round = 0; round < ROUNDS; round++) {
      if (!this.lease) {
        this.lease = (await this.kube.readLease(namespace, BUDGET_LEASE, deadline)) ?? undefined;
        this.known = parseGrants(this.lease);
      }
      const now = Date.now();
      const others = Object.entries(this.known).filter(([holder, g]) => holder !== identity && (this.valid(g, now) || usedIn(g, undefined, now, this.window) > 0));
      const written = this.mine(now);
      // What others hold (recorded and reserved), of the budget and in a namespace.
      const othersIn = (ns: string | undefined) => others.reduce((n, [, g]) => n + usedIn(g, ns, now, this.window) + this.reservedIn(g, ns, now), 0);
      const mineIn = (ns: string) => written.filter((h) => h.namespace === ns).length;
      const free = Math.max(0, actionLimit - othersIn(undefined) - written.length);
      // Slots still reserved (and possibly spent while this write is in flight) are kept in the new grant.
      const valid = now < this.grantUntil;
      const keep = valid ? this.remaining : 0;
      const keepNs = valid ? new Map(this.remainingNs) : new Map<string, number>();
      let k: number;
      const n: Record<string, number> = {};
      if (settleTo !== undefined) {
        // Settling: at most the slot ahead, usable in any namespace, if every namespace's share has room for it.
        const namespaces = new Set([...others.flatMap(([, g]) => [...Object.keys(g.used), ...Object.keys(g.n)]), ...written.map((h) => h.namespace)]);
        namespaces.delete(ANY);
        const roomAny = Math.min(share - othersIn(ANY), ...[...namespaces].map((ns) => share - othersIn(ns) - mineIn(ns)));
        k = Math.max(0, Math.min(free, settleTo, roomAny));
        if (k > 0) n[ANY] = k;
      } else {
        k = Math.max(keep, Math.min(free, keep + want));
        for (const [ns, m] of keepNs) if (m > 0) n[ns] = m;
        if (forNamespace !== undefined) {
          const room = share - othersIn(forNamespace) - mineIn(forNamespace) - (n[ANY] ?? 0) - (n[forNamespace] ?? 0);
          const add = Math.max(0, Math.min(room, k - Object.values(n).reduce((x, y) => x + y, 0)));
          if (add > 0) n[forNamespace] = (n[forNamespace] ?? 0) + add;
          this.short = add === 0 && room <= 0 && free > 0 ? 'namespace-full' : 'full';
        }
        // A cluster slot is spent with a share slot: never hold more of the budget than of the shares.
        k = Math.max(keep, Math.min(k, Object.values(n).reduce((x, y) => x + y, 0)));
      }
      const used: Record<string, number[]> = {};
      for (const h of written) (used[h.namespace] ??= []).push(h.at);
      // Grants with nothing left in the window are dropped: a replica long gone leaves no trace.
      const next: Record<string, Grant> = Object.fromEntries(others);
      next[identity] = { t: now, u: now + HOLD_MS, k, n, used };
      const spec: LeaseSpec = { name: BUDGET_LEASE, holder: identity, durationSeconds: Math.ceil(this.window / 1000), annotations: { [GRANTS]: JSON.stringify(next) }, labels: BUDGET_LABELS };
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
      // Written: what was spent before the write is recorded; what was spent during it counts against the new grant.
      const inFlight = this.spent.filter((h) => !before.has(h));
      this.recorded = written;
      this.spent = inFlight;
      this.remaining = Math.max(0, k - inFlight.length);
      this.remainingNs = new Map(Object.entries(n));
      for (const h of inFlight) this.remainingNs.set(h.from, Math.max(0, (this.remainingNs.get(h.from) ?? 0) - 1));
      this.grantUntil = now + HOLD_MS - SKEW_MS;
      if (k === 0 && want > 0 && free === 0) this.fullUntil = Date.now() + FULL_MEMO_MS;
      this.scheduleRenew(k > 0);
      return;
    }
  }

  /** After IDLE_MS with no take, records what was spent and gives the rest back: one write per idle period. */
  private scheduleSettle(): void {
    if (this.idleTimer) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (Date.now() - this.lastTake < IDLE_MS) return this.scheduleSettle();
      void this.settleNow().catch(() => this.scheduleSettle());
    }, IDLE_MS);
    this.idleTimer.unref();
  }

  /** Before a reservation runs out, it is renewed (what was spent recorded, the slot ahead kept): idle, one write a HOLD_MS. */
  private scheduleRenew(reserved: boolean): void {
    if (this.renewTimer) clearTimeout(this.renewTimer);
    this.renewTimer = undefined;
    if (!reserved || this.closed) return;
    this.renewTimer = setTimeout(() => {
      this.renewTimer = undefined;
      void this.settleNow().catch(() => undefined);
    }, HOLD_MS - RENEW_BEFORE_MS);
    this.renewTimer.unref();
  }

  /** Records every action spent and keeps only the slot ahead (none on close): a graceful stop gives all back. */
  async settleNow(deadline?: Deadline): Promise<void> {
    if (this.settings.actionLimit === 0) return;
    if (this.sync) await this.sync.catch(() => undefined);
    const ahead = this.idleAhead();
    const mine = this.known[this.settings.identity];
    const nothingToWrite = this.spent.length === 0 && !this.recorded.some((h) => h.returned) && (mine?.k ?? 0) === ahead && Date.now() < this.grantUntil - RENEW_BEFORE_MS;
    if (nothingToWrite || (this.closed && !mine)) return;
    const own = deadline ?? new Deadline(5000);
    try {
      this.remaining = 0;
      this.grantUntil = 0;
      await this.reserve(0, own, ahead);
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
