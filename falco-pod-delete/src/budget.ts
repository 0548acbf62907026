// The shared blast-radius budget's arithmetic, apart from the Lease I/O and the timers (coordination.ts):
// what a grant counts, what one write may reserve, and which limit binds when it cannot. Pure functions of
// the grants as read, this replica's own actions and reservation, and the time; property-tested in
// test/budget-model.test.ts with several replicas over a store that enforces resourceVersion.

/** One replica's grant, as stored in the budget Lease: used is namespace -> action times (ms), u the reservation's end. */
export interface Grant {
  t: number;
  u: number;
  k: number;
  /** Share slots reserved, by namespace; ANY may be spent in any namespace (and counts against every one). */
  n: Record<string, number>;
  used: Record<string, number[]>;
  /** Written by a replica's graceful stop: it reserves nothing more. */
  c?: 1;
}

/** The key of share slots usable in any namespace. */
export const ANY = '*';
/** A reservation is usable this long after it was written, less SKEW_MS (clocks of nodes differ a little). */
export const HOLD_MS = 30_000;
export const SKEW_MS = 2_000;

export interface Limits {
  /** ACTION_LIMIT: actions in any window across all replicas. */
  limit: number;
  /** NAMESPACE_ACTION_LIMIT as a number: actions in any window in one namespace. */
  share: number;
  window: number;
}

/** Why an action does not fit, and the figures behind it, as the 429 says them. */
export interface Refusal {
  /** 'full': the cluster-wide budget binds; 'namespace-full': the namespace's share. */
  which: 'full' | 'namespace-full';
  /** The limit that binds: ACTION_LIMIT, or the namespace's share. */
  limit: number;
  /** Actions recorded in the window (every replica's; this one's even before it wrote them), counted against that limit. */
  taken: number;
  /** Slots other replicas hold reserved, counted against that limit. */
  heldElsewhere: number;
  /** Slots this replica holds reserved for other alerts in flight, counted against that limit. */
  heldHere: number;
  /** When the oldest counted action leaves the window (ms), if any: room may come back then. */
  frees?: number;
}

/**
 * A grant's reservation counts until a window after it stops being usable (u): its holder may have spent a
 * slot of it at any time until then without writing (and died), and that action counts for a window.
 */
export function reservationCounts(g: Grant, now: number, window: number): boolean {
  return now < g.u + window;
}

/** A grant's recorded actions within the window, in `namespace` or in all. */
export function usedIn(g: Grant, namespace: string | undefined, now: number, window: number): number {
  const lists = namespace === undefined ? Object.values(g.used) : [g.used[namespace] ?? []];
  return lists.reduce((n, times) => n + times.filter((at) => now - at < window).length, 0);
}

/** What a grant holds reserved now: of the budget (no namespace), usable in `namespace` (its slots and ANY's), or of ANY only. */
export function heldIn(g: Grant, namespace: string | undefined, now: number, window: number): number {
  if (!reservationCounts(g, now, window)) return 0;
  if (namespace === undefined) return Math.max(g.k, sum(g.n));
  return (g.n[ANY] ?? 0) + (namespace === ANY ? 0 : g.n[namespace] ?? 0);
}

/** Whether a grant's holder may be reserving now: not stopped, and written within its hold (a live replica renews before it ends). */
export function active(g: Grant, now: number): boolean {
  return g.c !== 1 && now < g.u;
}

/** Whether a grant still matters to anyone: a reservation that counts, or actions in the window. */
export function live(g: Grant, now: number, window: number): boolean {
  return reservationCounts(g, now, window) || usedIn(g, undefined, now, window) > 0;
}

export function sum(r: Record<string, number> | Map<string, number>): number {
  let n = 0;
  for (const v of r instanceof Map ? r.values() : Object.values(r)) n += v;
  return n;
}

/** Everything one write's arithmetic depends on. */
export interface Ledger {
  limits: Limits;
  now: number;
  /** Every other replica's grant, as last read (this replica's own is not among them). */
  others: Record<string, Grant>;
  /** This replica's actions in the window, recorded or not yet, not given back: their namespaces and times. */
  mine: Array<{ namespace: string; at: number }>;
  /** This replica's reservation not yet spent, by key (a namespace or ANY). */
  keep: Record<string, number>;
}

function othersIn(l: Ledger, namespace: string | undefined): { used: number; held: number } {
  let used = 0;
  let held = 0;
  for (const g of Object.values(l.others)) {
    used += usedIn(g, namespace, l.now, l.limits.window);
    held += heldIn(g, namespace, l.now, l.limits.window);
  }
  return { used, held };
}

function mineIn(l: Ledger, namespace: string | undefined): number {
  return namespace === undefined ? l.mine.length : l.mine.filter((a) => a.namespace === namespace).length;
}

/** When the oldest action counted (of all, or in `namespace`) leaves the window. */
function firstFree(l: Ledger, namespace: string | undefined): number | undefined {
  let oldest = Infinity;
  for (const a of l.mine) if (namespace === undefined || a.namespace === namespace) oldest = Math.min(oldest, a.at);
  for (const g of Object.values(l.others)) {
    for (const [ns, times] of Object.entries(g.used)) {
      if (namespace !== undefined && ns !== namespace) continue;
      for (const at of times) if (l.now - at < l.limits.window) oldest = Math.min(oldest, at);
    }
  }
  return oldest === Infinity ? undefined : oldest + l.limits.window;
}

/** The refusal for `namespace` as the ledger stands, with `which` limit binding. */
export function refusal(l: Ledger, namespace: string, which: Refusal['which']): Refusal {
  const scope = which === 'full' ? undefined : namespace;
  const o = othersIn(l, scope);
  const heldHere = scope === undefined ? sum(l.keep) : (l.keep[ANY] ?? 0) + (l.keep[namespace] ?? 0);
  return { which, limit: which === 'full' ? l.limits.limit : l.limits.share, taken: o.used + mineIn(l, scope), heldElsewhere: o.held, heldHere, frees: firstFree(l, scope) };
}

/** With nothing reserved: whether actions alone (recorded anywhere, or taken here) already fill a limit for `namespace`. */
export function surelyFull(l: Ledger, namespace: string): Refusal | undefined {
  if (othersIn(l, undefined).used + mineIn(l, undefined) >= l.limits.limit) return refusal(l, namespace, 'full');
  if (othersIn(l, namespace).used + mineIn(l, namespace) >= l.limits.share) return refusal(l, namespace, 'namespace-full');
  return undefined;
}

export interface Plan {
  /** The reservation to write, by key: what is kept plus what is added. */
  n: Record<string, number>;
  /** Slots of the kept reservation given up before the write (beyond what the alerts waiting will spend, when the budget is short). */
  trimmed: Record<string, number>;
  /** For each namespace whose waiting alerts could not all be reserved for: which limit binds, with its figures. */
  short: Record<string, Refusal>;
}

/**
 * One write's reservation: what is kept, and for each namespace with alerts waiting (`demand`, in the order
 * they came) the slots they need, then up to `ahead` more for each while room remains (so that the next alerts
 * of a burst find slots with no write). Never more than the budget's room nor a share's room, counting others'
 * recorded actions and reservations, this replica's actions and what it keeps. When the budget's room is short
 * of what the waiting alerts need, this replica's own unspent slots beyond what the alerts waiting will spend
 * are given up first: its own reservation never holds back its own burst.
 */
export function plan(l: Ledger, demand: Map<string, number>, ahead: number): Plan {
  const { limit, share } = l.limits;
  const keep: Record<string, number> = {};
  for (const [key, m] of Object.entries(l.keep)) if (m > 0) keep[key] = m;
  const need = new Map<string, number>();
  let anyLeft = keep[ANY] ?? 0;
  for (const [ns, waiting] of demand) {
    let m = Math.max(0, waiting - (keep[ns] ?? 0));
    const fromAny = Math.min(m, anyLeft);
    anyLeft -= fromAny;
    m -= fromAny;
    if (m > 0) need.set(ns, m);
  }
  const all = othersIn(l, undefined);
  let free = limit - all.used - all.held - mineIn(l, undefined) - sum(keep);
  const trimmed: Record<string, number> = {};
  if (free < sum(need)) {
    // Slots kept beyond what the alerts waiting now will spend of them.
    const anyWanted = (keep[ANY] ?? 0) - anyLeft;
    for (const [key, m] of Object.entries(keep)) {
      const excess = m - (key === ANY ? anyWanted : demand.get(key) ?? 0);
      if (excess <= 0) continue;
      trimmed[key] = excess;
      free += excess;
      keep[key] = m - excess;
    }
  }
  free = Math.max(0, free);
  const n: Record<string, number> = { ...keep };
  const short: Record<string, Refusal> = {};
  const roomIn = (ns: string) => {
    const o = othersIn(l, ns);
    return share - o.used - o.held - mineIn(l, ns) - (n[ns] ?? 0) - (n[ANY] ?? 0);
  };
  for (const [ns, m] of need) {
    const room = Math.max(0, roomIn(ns));
    const add = Math.min(m, room, free);
    if (add > 0) n[ns] = (n[ns] ?? 0) + add;
    free -= add;
    if (add < m) short[ns] = refusal({ ...l, keep: n }, ns, room < m && room < free + add ? 'namespace-full' : 'full');
  }
  for (const ns of demand.keys()) {
    if (short[ns] || free <= 0) continue;
    const add = Math.min(ahead, Math.max(0, roomIn(ns)), free);
    if (add > 0) n[ns] = (n[ns] ?? 0) + add;
    free -= add;
  }
  for (const [key, m] of Object.entries(n)) if (m <= 0) delete n[key];
  return { n, trimmed, short };
}

/**
 * A settle's reservation: at most `ahead` slots of ANY (the slot an idle replica keeps so that the first alert
 * after a quiet spell acts with no write), if the budget and every namespace's share have room for it.
 */
export function settlePlan(l: Ledger, ahead: number): Record<string, number> {
  const { limit, share } = l.limits;
  const all = othersIn(l, undefined);
  const free = limit - all.used - all.held - mineIn(l, undefined);
  const namespaces = new Set([...Object.values(l.others).flatMap((g) => [...Object.keys(g.used), ...Object.keys(g.n)]), ...l.mine.map((a) => a.namespace)]);
  namespaces.delete(ANY);
  const anyHeld = othersIn(l, ANY);
  let room = share - anyHeld.held;
  for (const ns of namespaces) {
    const o = othersIn(l, ns);
    room = Math.min(room, share - o.used - o.held - mineIn(l, ns));
  }
  const k = Math.max(0, Math.min(free, ahead, room));
  return k > 0 ? { [ANY]: k } : {};
}

/** The grants in a budget Lease's annotation; an unreadable one counts as a full budget (never as an empty one). */
export function parseGrants(raw: string | undefined, now: number): Record<string, Grant> {
  try {
    const parsed = JSON.parse(raw ?? '{}') as Record<string, Partial<Grant>>;
    const grants: Record<string, Grant> = {};
    for (const [holder, g] of Object.entries(parsed ?? {})) {
      if (typeof g !== 'object' || g === null) continue;
      const used: Record<string, number[]> = {};
      for (const [ns, times] of Object.entries(g.used ?? {})) if (Array.isArray(times)) used[ns] = times.filter((x) => typeof x === 'number');
      const n: Record<string, number> = {};
      for (const [ns, m] of Object.entries(g.n ?? {})) if (Number(m) > 0) n[ns] = Number(m);
      grants[holder] = { t: Number(g.t) || 0, u: Number(g.u) || 0, k: Math.max(0, Number(g.k) || 0), n, used, ...(g.c === 1 ? { c: 1 as const } : {}) };
    }
    return grants;
  } catch {
    return { '(unreadable)': { t: now, u: now + HOLD_MS, k: Number.MAX_SAFE_INTEGER, n: { [ANY]: Number.MAX_SAFE_INTEGER }, used: {} } };
  }
}
