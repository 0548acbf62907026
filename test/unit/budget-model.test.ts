// The shared budget as a model checker would see it (fast-check, its scheduler choosing every interleaving):
// several replicas over one in-memory Lease store that enforces resourceVersion as the API server does (a
// write under a stale one is a 409), bursts of takes across namespaces, settles, renewals, give-backs, a
// foreign writer that makes conflicts, time passing beyond the window, and a replica that dies mid-burst.
// Asserted at every step and at the end:
// - never over the limits: actions in any window across replicas at most ACTION_LIMIT, in a namespace at most
//   its share; and each replica's actions covered by what its grant in the Lease counts;
// - never a refusal while room remains: a refusal of the whole budget (or of a namespace's share) is borne out
//   by a version of the Lease current at most a memo's time (1 s) before the take began, or during it, whose
//   recorded actions and reservations fill that limit; on one replica, a burst gets exactly what the limits allow;
// - every slot accounted for: once the live replicas close, the Lease records exactly their actions, and holds
//   no reservation of theirs.
import fc from 'fast-check';
import { type Grant, heldIn, parseGrants, usedIn } from '../../falco-pod-delete/src/budget.js';
import { BUDGET_LEASE, type Clock, Coordinator, GRANTS, type Refusal, type SlotHold } from '../../falco-pod-delete/src/coordination.js';
import { Deadline } from '../../falco-pod-delete/src/deadline.js';
import type { Kube, LeaseRecord, LeaseSpec } from '../../falco-pod-delete/src/kube/index.js';

const WINDOW = 60_000;
const TOLERANCE_MS = 1000;

/** A virtual clock: each request the store serves takes 1 ms, a sleep its length, and the test may jump. */
class VirtualClock implements Clock {
  t = 1_800_000_000_000;
  timers = false;
  constructor(private readonly s: fc.Scheduler) {}
  now() {
    return this.t;
  }
  async sleep(ms: number) {
    this.t += ms;
    await this.s.schedule(Promise.resolve(), 'sleep');
  }
}

interface Version {
  rv: number;
  at: number;
  grants: Record<string, Grant>;
}

/** One Lease, as the API server keeps it: create refuses an existing one, replace refuses a stale resourceVersion. */
class LeaseStore {
  private current: LeaseRecord | undefined;
  readonly history: Version[] = [];
  private rv = 0;
  constructor(private readonly clock: VirtualClock, private readonly ignoreResourceVersion = false) {}

  private put(l: LeaseSpec): LeaseRecord {
    this.current = { name: l.name, resourceVersion: String(++this.rv), holder: l.holder, renewTime: new Date(this.clock.t), durationSeconds: l.durationSeconds, annotations: { ...l.annotations }, labels: l.labels, created: new Date(this.clock.t) };
    this.history.push({ rv: this.rv, at: this.clock.t, grants: this.grants() });
    return this.current;
  }
  grants(): Record<string, Grant> {
    return parseGrants(this.current?.annotations[GRANTS], this.clock.t);
  }
  read(): LeaseRecord | null {
    return this.current ? { ...this.current } : null;
  }
  create(l: LeaseSpec): LeaseRecord | 'exists' {
    return this.current ? 'exists' : this.put(l);
  }
  replace(rv: string, l: LeaseSpec): LeaseRecord | 'conflict' | 'gone' {
    if (!this.current) return 'gone';
    if (this.current.resourceVersion !== rv && !this.ignoreResourceVersion) return 'conflict';
    return this.put(l);
  }
  /** Another writer (an admin's kubectl, an older replica) rewrites the Lease as it is: every replica's next write is a 409. */
  bump(): void {
    if (this.current) this.put({ name: BUDGET_LEASE, holder: this.current.holder ?? '', durationSeconds: 60, annotations: this.current.annotations, labels: this.current.labels });
  }
}

class Dead extends Error {}

/** A replica's client: each request is served, and its answer delivered, when the scheduler says; a dead replica's requests never land. */
function client(store: LeaseStore, clock: VirtualClock, s: fc.Scheduler, replica: { dead: boolean }): Kube {
  const call = async <T>(label: string, serve: () => T): Promise<T> => {
    await s.schedule(Promise.resolve(), `${label} sent`);
    if (replica.dead) throw new Dead();
    clock.t += 1;
    const answer = serve();
    await s.schedule(Promise.resolve(), `${label} answered`);
    if (replica.dead) throw new Dead();
    return answer;
  };
  const only = () => {
    throw new Error('the budget uses only Leases');
  };
  return {
    readLease: () => call('GET', () => store.read()),
    createLease: (_ns: string, l: LeaseSpec) => call('POST', () => store.create(l)),
    replaceLease: (_ns: string, rv: string, l: LeaseSpec) => call('PUT', () => store.replace(rv, l)),
    readPod: only, listPodsOnNode: only, readNamespaceLabels: only, deletePod: only, evictPod: only, readController: only, readPodLog: only, ensureQuarantinePolicy: only, isolatePod: only, createEvent: only,
  } as unknown as Kube;
}

interface Action {
  replica: number;
  hold: SlotHold;
}

/** What a version of the Lease counts against a limit at its own time: recorded actions and reservations. */
function counted(v: Version, namespace: string | undefined): number {
  return Object.values(v.grants).reduce((n, g) => n + usedIn(g, namespace, v.at, WINDOW) + heldIn(g, namespace, v.at, WINDOW), 0);
}

const NAMESPACES = ['tenant-a', 'tenant-b', 'prod'];

type Command =
  | { kind: 'burst'; replica: number; ns: number; n: number }
  | { kind: 'settle'; replica: number }
  | { kind: 'refill'; replica: number }
  | { kind: 'giveBack'; replica: number; which: number }
  | { kind: 'bump' }
  | { kind: 'advance'; ms: number }
  | { kind: 'kill'; replica: number }
  | { kind: 'run'; steps: number };

const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('burst' as const), replica: fc.nat(2), ns: fc.nat(2), n: fc.integer({ min: 1, max: 8 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('settle' as const), replica: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('refill' as const), replica: fc.nat(2) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('giveBack' as const), replica: fc.nat(2), which: fc.nat(20) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('bump' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.oneof(fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 25_000, max: 70_000 })) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('kill' as const), replica: fc.nat(2) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('run' as const), steps: fc.integer({ min: 1, max: 12 }) }) },
);

async function runModel(s: fc.Scheduler, replicas: number, limit: number, share: number, commands: Command[], opts: { ignoreResourceVersion?: boolean } = {}) {
  const clock = new VirtualClock(s);
  const store = new LeaseStore(clock, opts.ignoreResourceVersion);
  const state = Array.from({ length: replicas }, () => ({ dead: false }));
  const rs = state.map((st, i) => new Coordinator(client(store, clock, s, st), { namespace: 'openfaas-fn', identity: `r${i}`, actionLimit: limit, actionWindowMs: WINDOW, namespaceActionLimit: share }, clock));
  const actions: Action[] = [];
  const problems: string[] = [];
  let refusals = 0;
  const pending: Promise<unknown>[] = [];
  const inWindow = (a: Action) => !a.hold.returned && clock.t - a.hold.at < WINDOW;

  const check = (when: string) => {
    const live = actions.filter(inWindow);
    if (live.length > limit) problems.push(`${when}: ${live.length} actions in the window, over ACTION_LIMIT ${limit}`);
    for (const ns of NAMESPACES) {
      const n = live.filter((a) => a.hold.namespace === ns).length;
      if (n > share) problems.push(`${when}: ${n} actions in ${ns}, over its share ${share}`);
    }
    // Each replica's actions are covered by what its grant counts (recorded, or reserved): the sum over grants is what keeps the limit.
    const grants = store.grants();
    for (let i = 0; i < replicas; i++) {
      const g = grants[`r${i}`];
      for (const ns of [undefined, ...NAMESPACES]) {
        const mine = live.filter((a) => a.replica === i && (ns === undefined || a.hold.namespace === ns)).length;
        const covered = g ? usedIn(g, ns, clock.t, WINDOW) + heldIn(g, ns, clock.t, WINDOW) : 0;
        if (mine > covered) problems.push(`${when}: r${i} has ${mine} actions${ns ? ` in ${ns}` : ''}, its grant covers ${covered}`);
      }
    }
  };

  const take = (i: number, ns: string) => {
    const start = clock.t;
    const deadline = new Deadline(60_000);
    const p = rs[i].takeSlot(ns, deadline).then(
      (r) => {
        deadline.dispose();
        if (r === undefined) return problems.push('a take with a limit answered no slot and no refusal');
        if ('from' in r) return void actions.push({ replica: i, hold: r });
        const refusal = r as Refusal;
        refusals++;
        const scope = refusal.which === 'full' ? undefined : ns;
        const bound = refusal.which === 'full' ? limit : share;
        // Borne out by a version current at some moment from TOLERANCE_MS before the take to its answer.
        const versions = store.history.filter((v, k) => {
          const until = store.history[k + 1]?.at ?? Infinity;
          return until >= start - TOLERANCE_MS && v.at <= clock.t;
        });
        if (!versions.some((v) => counted(v, scope) >= bound)) {
          problems.push(`r${i} refused ${ns} (${refusal.which}: ${JSON.stringify(refusal)}) while every Lease version since the take began had room: ${versions.map((v) => counted(v, scope)).join(',')} of ${bound}`);
        }
      },
      (e: unknown) => {
        deadline.dispose();
        if (!(e instanceof Dead)) problems.push(`r${i}'s take threw ${(e as Error).message}`);
      },
    );
    pending.push(p);
  };

  for (const c of commands) {
    const alive = (i: number) => i < replicas && !state[i].dead;
    switch (c.kind) {
      case 'burst':
        if (alive(c.replica)) for (let k = 0; k < c.n; k++) take(c.replica, NAMESPACES[c.ns]);
        break;
      case 'settle':
        if (alive(c.replica)) pending.push(rs[c.replica].settleNow().catch((e: unknown) => (e instanceof Dead ? undefined : problems.push(`settle threw ${(e as Error).message}`))));
        break;
      case 'refill':
        if (alive(c.replica)) rs[c.replica].refill();
        break;
      case 'giveBack': {
        if (!alive(c.replica)) break;
        const held = actions.filter((a) => a.replica === c.replica && !a.hold.returned);
        if (held.length === 0) break;
        const a = held[c.which % held.length];
        rs[c.replica].giveBackSlot(a.hold);
        break;
      }
      case 'bump':
        store.bump();
        break;
      case 'advance':
        clock.t += c.ms;
        break;
      case 'kill':
        // Never the last one alive: someone must go on.
        if (alive(c.replica) && state.filter((st) => !st.dead).length > 1) state[c.replica].dead = true;
        break;
      case 'run':
        for (let k = 0; k < c.steps; k++) {
          // What the replicas do until their next request is not a step: let it happen first.
          await new Promise((r) => setImmediate(r));
          if (s.count() === 0) break;
          await s.waitNext(1);
          check(`after a step of ${c.kind}`);
        }
        break;
    }
    check(`after ${c.kind}`);
  }
  await s.waitIdle();
  await Promise.all(pending);
  check('at the end');
  // The live replicas stop gracefully: every action recorded, every reservation given back.
  const closing = rs.map((r, i) => (state[i].dead ? Promise.resolve() : r.close()));
  await s.waitIdle();
  await Promise.all(closing);
  const grants = store.grants();
  for (let i = 0; i < replicas; i++) {
    if (state[i].dead) continue;
    const g = grants[`r${i}`];
    const mine = actions.filter((a) => a.replica === i && inWindow(a)).length;
    const recorded = g ? usedIn(g, undefined, clock.t, WINDOW) : 0;
    if (recorded !== mine) problems.push(`after close, r${i}'s grant records ${recorded} actions; it took ${mine}`);
    if (g && heldIn(g, undefined, clock.t, WINDOW) !== 0) problems.push(`after close, r${i} still holds ${heldIn(g, undefined, clock.t, WINDOW)} slots`);
  }
  if (process.env.FPD_MODEL_DEBUG) process.stderr.write(`replicas ${replicas} limit ${limit}/${share}: ${commands.length} commands, ${actions.length} actions, ${store.history.length} versions, ${refusals} refusals\n`);
  return { problems, actions, store };
}

const limits = fc.integer({ min: 1, max: 12 }).chain((limit) => fc.tuple(fc.constant(limit), fc.integer({ min: 1, max: limit })));

it('holds the limits, refuses only when a Lease version shows them full, and accounts for every slot, in any interleaving', async () => {
  await fc.assert(
    fc.asyncProperty(fc.scheduler(), fc.integer({ min: 1, max: 3 }), limits, fc.array(command, { minLength: 1, maxLength: 30 }), async (s, replicas, [limit, share], commands) => {
      const { problems } = await runModel(s, replicas, limit, share, commands);
      if (problems.length > 0) throw new Error(`${problems.slice(0, 5).join('\n')}\n${s.report().slice(-30).map((t) => t.label).join(' | ')}`);
    }),
    { numRuns: Number(process.env.FPD_MODEL_RUNS ?? 300) },
  );
}, 120_000);

it('on one replica, bursts across namespaces, arriving while writes are under way, get exactly what the limits allow', async () => {
  const burst = fc.record({ ns: fc.nat(2), n: fc.integer({ min: 1, max: 10 }), steps: fc.nat(6), bump: fc.boolean() });
  await fc.assert(
    fc.asyncProperty(fc.scheduler(), limits, fc.array(burst, { minLength: 1, maxLength: 5 }), async (s, [limit, share], bursts) => {
      const commands: Command[] = bursts.flatMap((b) => [
        { kind: 'burst' as const, replica: 0, ns: b.ns, n: b.n },
        ...(b.bump ? [{ kind: 'bump' as const }] : []),
        { kind: 'run' as const, steps: b.steps },
      ]);
      const { problems, actions } = await runModel(s, 1, limit, share, commands);
      if (problems.length > 0) throw new Error(problems.slice(0, 5).join('\n'));
      const sent = [0, 1, 2].map((ns) => bursts.filter((b) => b.ns === ns).reduce((n, b) => n + b.n, 0));
      // Exactly what the limits allow: nothing held back by this replica's own reservations or batch size.
      expect(actions.length).toBe(Math.min(limit, sent.reduce((n, c) => n + Math.min(c, share), 0)));
      sent.forEach((c, ns) => expect(actions.filter((a) => a.hold.namespace === NAMESPACES[ns]).length).toBeLessThanOrEqual(Math.min(c, share)));
    }),
    { numRuns: Number(process.env.FPD_MODEL_RUNS ?? 300) },
  );
}, 120_000);

it('a replica that dies mid-burst: the others go on, its reservation counts until it can no longer have been spent', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.scheduler(), limits, fc.integer({ min: 1, max: 10 }), fc.nat(8), fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 1, max: 14 }), fc.nat(2),
      async (s, [limit, share], first, stepsBeforeDeath, later, rest, ns) => {
        const commands: Command[] = [
          { kind: 'burst', replica: 0, ns, n: first },
          { kind: 'run', steps: stepsBeforeDeath },
          { kind: 'kill', replica: 0 },
          { kind: 'advance', ms: later },
          { kind: 'burst', replica: 1, ns, n: rest },
          { kind: 'burst', replica: 1, ns: (ns + 1) % 3, n: rest },
        ];
        const { problems, actions } = await runModel(s, 2, limit, share, commands);
        if (problems.length > 0) throw new Error(problems.slice(0, 5).join('\n'));
        // The survivor acted (unless the dead one's reservation may still have been spent, or there was no room for it).
        if (later > 30_000 + 60_000) expect(actions.filter((a) => a.replica === 1).length).toBe(Math.min(limit, Math.min(rest, share) * 2));
      },
    ),
    { numRuns: Number(process.env.FPD_MODEL_RUNS ?? 300) },
  );
}, 120_000);

it('is not vacuous: with the resourceVersion precondition taken away, replicas spend the same slots and the model says so', async () => {
  const out = await fc.check(
    fc.asyncProperty(fc.scheduler(), limits, fc.array(command, { minLength: 1, maxLength: 30 }), async (s, [limit, share], commands) => {
      const { problems } = await runModel(s, 3, limit, share, commands, { ignoreResourceVersion: true });
      if (problems.length > 0) throw new Error(problems[0]);
    }),
    { numRuns: 500 },
  );
  expect(out.failed).toBe(true);
}, 120_000);
