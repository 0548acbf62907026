// The shared budget's arithmetic, with replicas sharing one Lease store that enforces resourceVersion
// preconditions like the API server (test/support/stub-kube.ts): never more actions than ACTION_LIMIT, the
// namespace's share held across replicas, reservations given back when idle, a dead replica's counted.
import type { PodRef } from '../../falco-pod-delete/src/alert.js';
import { BUDGET_LEASE, type Clock, Coordinator, GRANTS, IDLE_MS, type SlotHold } from '../../falco-pod-delete/src/coordination.js';
import { Deadline } from '../../falco-pod-delete/src/deadline.js';
import type { PodSnapshot } from '../../falco-pod-delete/src/kube/index.js';
import { StubKube } from '../support/stub-kube.js';

class Leases extends StubKube {
  writes = 0;
  protected pod(p: PodRef): PodSnapshot {
    return { ...p, uid: 'u', resourceVersion: '1', nodeName: 'n', labels: {}, containerIds: [], deleting: false, owner: undefined, ready: true, containers: [], manifest: {} };
  }
  override async createLease(...args: Parameters<StubKube['createLease']>) {
    this.writes++;
    return super.createLease(...args);
  }
  override async replaceLease(...args: Parameters<StubKube['replaceLease']>) {
    this.writes++;
    return super.replaceLease(...args);
  }
}

const replica = (kube: Leases, identity: string, actionLimit: number, namespaceActionLimit = actionLimit, clock?: Clock) =>
  new Coordinator(kube, { namespace: 'openfaas-fn', identity, actionLimit, actionWindowMs: 60_000, namespaceActionLimit }, clock);
/** A replica that dies after its last call returns: no timer of it ever runs (no settle, no renewal). */
const dies: Clock = { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)), timers: false };
const deadline = () => new Deadline(5000);
/** What a take answered: a slot, or which limit binds. */
const what = (t: Awaited<ReturnType<Coordinator['takeSlot']>>) => (t === undefined ? 'none' : 'which' in t ? t.which : 'slot');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function grants(kube: Leases): Promise<Record<string, { k: number; used: Record<string, number[]> }>> {
  const lease = await kube.readLease('openfaas-fn', BUDGET_LEASE);
  return JSON.parse(lease?.annotations[GRANTS] ?? '{}');
}

it('three replicas taking 30 slots at once from a budget of 10 get exactly 10, and the Lease records them', async () => {
  const kube = new Leases();
  const rs = ['a', 'b', 'c'].map((id) => replica(kube, id, 10));
  const taken = await Promise.all(Array.from({ length: 30 }, (_, i) => rs[i % 3].takeSlot('default', deadline())));
  expect(taken.filter((t) => what(t) === 'slot')).toHaveLength(10);
  expect(taken.filter((t) => what(t) === 'full')).toHaveLength(20);
  await Promise.all(rs.map((r) => r.close()));
  const g = await grants(kube);
  expect(Object.values(g).reduce((n, x) => n + (x.used.default?.length ?? 0), 0)).toBe(10);
  expect(Object.values(g).every((x) => x.k === 0)).toBe(true);
}, 20_000);

it('spends reserved slots with no write: 8 actions of one replica cost at most 4 Lease writes', async () => {
  const kube = new Leases();
  const r = replica(kube, 'a', 100);
  await r.warm(deadline());
  const start = kube.writes;
  for (let i = 0; i < 8; i++) {
    expect(what(await r.takeSlot('default', deadline()))).toBe('slot');
    r.refill();
  }
  await sleep(50);
  expect(kube.writes - start).toBeLessThanOrEqual(4);
  await r.close();
});

it("holds a namespace's share across replicas: other replicas' reservations count, recorded actions count", async () => {
  const kube = new Leases();
  const [a, b] = [replica(kube, 'a', 20, 3), replica(kube, 'b', 20, 3)];
  const got = [];
  for (let i = 0; i < 6; i++) got.push(await (i % 2 ? b : a).takeSlot('tenant', deadline()));
  expect(got.filter((t) => what(t) === 'slot')).toHaveLength(3);
  expect(got.filter((t) => what(t) === 'namespace-full')).toHaveLength(3);
  // Another namespace still gets its slots.
  expect(what(await a.takeSlot('prod', deadline()))).toBe('slot');
  await Promise.all([a.close(), b.close()]);
}, 20_000);

it('gives an idle reservation back but the one slot ahead, so that another replica can take the rest of the budget', async () => {
  const kube = new Leases();
  const [a, b] = [replica(kube, 'a', 8), replica(kube, 'b', 8)];
  for (let i = 0; i < 2; i++) expect(what(await a.takeSlot('default', deadline()))).toBe('slot');
  a.refill();
  await sleep(IDLE_MS * 3);
  // a settled: its 2 actions recorded, its reservation back to the one slot it keeps ahead.
  const mine = (await grants(kube)).a;
  expect([mine.k, mine.used.default.length]).toEqual([1, 2]);
  const rest = [];
  for (let i = 0; i < 6; i++) rest.push(await b.takeSlot('default', deadline()));
  expect(rest.map(what)).toEqual(['slot', 'slot', 'slot', 'slot', 'slot', 'full']);
  await Promise.all([a.close(), b.close()]);
}, 20_000);

it("counts a dead replica's reservation in full for the window: it may have spent it", async () => {
  const kube = new Leases();
  const a = replica(kube, 'a', 40, 40, dies);
  // a reserves a batch (a tenth of the budget or so) and dies without recording what it spent.
  expect(what(await a.takeSlot('default', deadline()))).toBe('slot');
  const reserved = (await grants(kube)).a.k;
  expect(reserved).toBeGreaterThan(0);
  const b = replica(kube, 'b', 40);
  let n = 0;
  let last;
  while (what((last = await b.takeSlot('default', deadline()))) === 'slot') n++;
  expect(n).toBe(40 - reserved);
  // The refusal says what fills the budget: b's actions, and what the dead replica holds.
  expect(last).toMatchObject({ which: 'full', limit: 40, taken: 40 - reserved, heldElsewhere: reserved });
  await b.close();
}, 20_000);

it('gives a slot back that was spent on an action that did not happen', async () => {
  const kube = new Leases();
  const a = replica(kube, 'a', 2);
  const first = await a.takeSlot('default', deadline());
  const second = await a.takeSlot('default', deadline());
  expect(what(await a.takeSlot('default', deadline()))).toBe('full');
  a.giveBackSlot(second as SlotHold);
  expect(what(await a.takeSlot('default', deadline()))).toBe('slot');
  expect(what(first)).toBe('slot');
  await a.close();
});

it("a namespace whose share is spent does not make another namespace's alert wait or fail, while a refill for it is under way", async () => {
  const kube = new Leases();
  const a = replica(kube, 'a', 4, 2);
  await a.warm(deadline());
  const got = [];
  // As the response stage does: a take, then a refill right after the action's request, no waiting between.
  for (let i = 0; i < 4; i++) {
    got.push(await a.takeSlot('tenant', deadline()));
    a.refill();
  }
  const other = a.takeSlot('prod', deadline());
  expect(got.map(what)).toEqual(['slot', 'slot', 'namespace-full', 'namespace-full']);
  expect(what(await other)).toBe('slot');
  await a.close();
});
