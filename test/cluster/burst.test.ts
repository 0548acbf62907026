// An incident's burst on the real API server, with rbac.yaml's ServiceAccount (its own copy: a budget Lease no
// other suite spends) and the default limits unless a case says otherwise (ACTION_LIMIT=20,
// NAMESPACE_ACTION_LIMIT=50%, COORDINATION=cluster): every alert is answered, the pods contained are exactly
// what the limits allow, and each 429 says which limit binds and what fills it, as the Lease shows.
import { execFileSync } from 'node:child_process';
import { Admin, type Identity, budgetActions, describeCluster, inClusterEnv, rbacCopy } from '../support/cluster.js';
import { type RunningFunction, fixture, startFunction, withFields } from '../support/harness.js';
import { type FunctionProcess, spawnFunction } from '../support/process.js';

const shellIn = (namespace: string, pod: string, containerId: string) =>
  withFields(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'), { 'k8s.ns.name': namespace, 'k8s.pod.name': pod, 'container.id': containerId.slice(0, 12) });

type Answer = { status: number; body: Record<string, unknown> };

/** Actions the budget Lease records, by namespace, over every replica's grant. */
async function recorded(admin: Admin, identity: Identity): Promise<Record<string, number>> {
  return budgetActions(await admin.leases.readNamespacedLease({ name: 'fpd-budget', namespace: identity.namespace }));
}

const count = (answers: Answer[], outcome: string) => answers.filter((a) => a.body.outcome === outcome).length;

/** Every refusal is a 429 that says what fills the limit it names: no refusal while room remained. */
function expectTruthfulRefusals(answers: Answer[], limits: { ACTION_LIMIT: number; NAMESPACE_ACTION_LIMIT: number }) {
  for (const a of answers.filter((x) => x.body.outcome === 'rate-limited')) {
    expect(a.status).toBe(429);
    const budget = a.body.budget as { limit: keyof typeof limits; of: number; taken: number; reservedElsewhere: number; reservedHere: number };
    expect(a.body.code).toBe(budget.limit === 'ACTION_LIMIT' ? 'rate-limited' : 'namespace-rate-limited');
    expect(budget.of).toBe(limits[budget.limit]);
    expect(budget.taken + budget.reservedElsewhere + budget.reservedHere).toBeGreaterThanOrEqual(budget.of);
    expect(a.body.reason).toContain(`${budget.taken} taken in the window`);
  }
}

describeCluster('a burst of alerts on the real API server', () => {
  let admin: Admin;
  let identity: Identity;
  let single: RunningFunction | undefined;
  let replicas: FunctionProcess[] = [];

  beforeAll(async () => {
    execFileSync('npm', ['run', '-s', 'build'], { stdio: 'ignore' });
    admin = new Admin();
    identity = await rbacCopy(admin, 'fpd-burst');
  }, 120_000);
  beforeEach(async () => {
    // Each test starts with no budget spent.
    await admin.leases.deleteCollectionNamespacedLease({ namespace: identity.namespace });
  });
  afterEach(async () => {
    await single?.fn.drain();
    await single?.stop();
    single = undefined;
    for (const r of replicas) r.child.kill('SIGKILL');
    await Promise.all(replicas.map((r) => r.exited));
    replicas = [];
  });

  const env = (extra: Record<string, string> = {}) => inClusterEnv(extra, identity.token(), identity.namespace).env;
  const startOne = async (extra: Record<string, string> = {}) => (single = await startFunction(env(extra)));
  const startThree = async (extra: Record<string, string> = {}) => {
    const e = env(extra);
    replicas = await Promise.all([0, 1, 2].map((i) => spawnFunction(['dist/index.mjs'], { ...e, HOSTNAME: `fpd-burst-replica-${i}` })));
    return replicas;
  };
  const pods = (ns: string, prefix: string, n: number) => Promise.all(Array.from({ length: n }, (_, i) => admin.pod(ns, `${prefix}-${i}`)));
  const containedIn = async (ns: string, prefix: string, n: number) => (await Promise.all(Array.from({ length: n }, (_, i) => admin.contained(ns, `${prefix}-${i}`)))).filter(Boolean).length;

  it('one replica: 10 at once in a fresh namespace are all deleted; then 15 at once in another, exactly the rest of the 20', async () => {
    const [a, b] = [await admin.namespace('burst'), await admin.namespace('burst')];
    const [inA, inB] = [await pods(a, 'worm', 10), await pods(b, 'worm', 15)];
    const fn = await startOne();
    const first = await Promise.all(inA.map((p, i) => fn.post(shellIn(a, `worm-${i}`, p.containerId))));
    console.log(`one replica, 10 at once in a fresh namespace: ${count(first, 'deleted')} of 10 deleted`);
    expect(first.map((x) => [x.status, x.body.outcome])).toEqual(first.map(() => [200, 'deleted']));
    expect(await containedIn(a, 'worm', 10)).toBe(10);
    const second = await Promise.all(inB.map((p, i) => fn.post(shellIn(b, `worm-${i}`, p.containerId))));
    console.log(`then 15 at once in another namespace: ${count(second, 'deleted')} of 15 deleted, ${count(second, 'rate-limited')} refused`);
    expect(count(second, 'deleted')).toBe(10);
    expect(second.filter((x) => x.status === 429)).toHaveLength(5);
    expect(await containedIn(b, 'worm', 15)).toBe(10);
    // Both limits are reached at once here (20 in all, 10 in b): the answer names the cluster-wide one.
    expectTruthfulRefusals(second, { ACTION_LIMIT: 20, NAMESPACE_ACTION_LIMIT: 10 });
    const refused = second.find((x) => x.status === 429)!;
    expect(refused.body.reason).toMatch(/^blast-radius limit reached: 20 actions per 60 s across all replicas \(ACTION_LIMIT\): \d+ taken in the window, 0 reserved by other replicas/);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(50);
    // The audit line says the same, and the Lease records the 20.
    const audit = fn.audits().find((l) => l.outcome === 'rate-limited')!;
    expect(audit).toMatchObject({ level: 'error', code: 'rate-limited', budget: refused.body.budget, reason: refused.body.reason });
    await fn.fn.drain();
    await single!.stop();
    single = undefined;
    expect(await recorded(admin, identity)).toEqual({ [a]: 10, [b]: 10 });
  }, 90_000);

  it("one replica: a namespace's 14 at once get exactly its share, and each refusal names the share", async () => {
    const ns = await admin.namespace('burst');
    const own = await pods(ns, 'worm', 14);
    const fn = await startOne();
    const answers = await Promise.all(own.map((p, i) => fn.post(shellIn(ns, `worm-${i}`, p.containerId))));
    console.log(`one namespace, 14 at once: ${count(answers, 'deleted')} of 14 deleted (its share is 10)`);
    expect(count(answers, 'deleted')).toBe(10);
    expect(answers.filter((x) => x.status === 429 && x.body.code === 'namespace-rate-limited')).toHaveLength(4);
    expectTruthfulRefusals(answers, { ACTION_LIMIT: 20, NAMESPACE_ACTION_LIMIT: 10 });
    expect(answers.find((x) => x.status === 429)!.body.reason).toMatch(new RegExp(`^blast-radius limit reached for namespace ${ns}: 10 of the 20 actions per 60 s across all replicas \\(NAMESPACE_ACTION_LIMIT\\): \\d+ taken in the window there`));
    expect(await containedIn(ns, 'worm', 14)).toBe(10);
    // The rest of the budget is still there for another namespace.
    const other = await admin.namespace('burst');
    const [p] = await pods(other, 'web', 1);
    expect((await fn.post(shellIn(other, 'web-0', p.containerId))).body).toMatchObject({ outcome: 'deleted' });
  }, 90_000);

  it('a window that ends gives the budget back: ACTION_LIMIT=4 in a 5 s window, 6 at once, then 4 at once after it', async () => {
    const ns = await admin.namespace('burst');
    const own = await pods(ns, 'worm', 10);
    const fn = await startOne({ ACTION_LIMIT: '4', NAMESPACE_ACTION_LIMIT: '100%', ACTION_WINDOW_SECONDS: '5' });
    const first = await Promise.all(own.slice(0, 6).map((p, i) => fn.post(shellIn(ns, `worm-${i}`, p.containerId))));
    expect(count(first, 'deleted')).toBe(4);
    expectTruthfulRefusals(first, { ACTION_LIMIT: 4, NAMESPACE_ACTION_LIMIT: 4 });
    const refused = first.find((x) => x.status === 429)!;
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(5);
    // As a user would: wait what Retry-After says, and a little more.
    await new Promise((r) => setTimeout(r, retryAfter * 1000 + 500));
    const second = await Promise.all(own.slice(6).map((p, i) => fn.post(shellIn(ns, `worm-${i + 6}`, p.containerId))));
    console.log(`ACTION_LIMIT=4 in 5 s: 6 at once, ${count(first, 'deleted')} deleted; after the window, 4 at once, ${count(second, 'deleted')} deleted`);
    expect(second.map((x) => x.body.outcome)).toEqual(['deleted', 'deleted', 'deleted', 'deleted']);
  }, 90_000);

  it('three replicas over four namespaces: exactly ACTION_LIMIT deleted in all, the Lease records each', async () => {
    const namespaces = await Promise.all([0, 1, 2, 3].map(() => admin.namespace('burst')));
    const all = (await Promise.all(namespaces.map(async (ns) => (await pods(ns, 'worm', 6)).map((p, i) => ({ ns, name: `worm-${i}`, containerId: p.containerId }))))).flat();
    const rs = await startThree();
    const answers = await Promise.all(all.map((p, i) => rs[i % 3].post(shellIn(p.ns, p.name, p.containerId))));
    console.log(`three replicas, 24 alerts over four namespaces at once: ${count(answers, 'deleted')} deleted, ${count(answers, 'rate-limited')} refused`);
    expect(count(answers, 'deleted')).toBe(20);
    expect(answers.filter((a) => a.status === 429)).toHaveLength(4);
    expectTruthfulRefusals(answers, { ACTION_LIMIT: 20, NAMESPACE_ACTION_LIMIT: 10 });
    const contained = (await Promise.all(all.map((p) => admin.contained(p.ns, p.name)))).filter(Boolean).length;
    expect(contained).toBe(20);
    // Once the replicas settle (0.5 s idle), the Lease records the 20.
    await new Promise((r) => setTimeout(r, 1500));
    expect(Object.values(await recorded(admin, identity)).reduce((n, x) => n + x, 0)).toBe(20);
  }, 120_000);

  it('a replica killed with SIGKILL mid-burst: the others answer every alert, and the total stays within the limit', async () => {
    const namespaces = await Promise.all([0, 1, 2, 3].map(() => admin.namespace('burst')));
    const all = (await Promise.all(namespaces.map(async (ns) => (await pods(ns, 'worm', 8)).map((p, i) => ({ ns, name: `worm-${i}`, containerId: p.containerId }))))).flat();
    const rs = await startThree();
    const sent = all.map((p, i) => ({ replica: i % 3, answer: rs[i % 3].post(shellIn(p.ns, p.name, p.containerId)).catch(() => undefined) }));
    // Killed as soon as its first answer is out: it holds a reservation, and may have acts under way.
    await Promise.race(sent.filter((s) => s.replica === 0).map((s) => s.answer));
    rs[0].child.kill('SIGKILL');
    const survivors = (await Promise.all(sent.filter((s) => s.replica !== 0).map((s) => s.answer))) as Answer[];
    expect(survivors.every((a) => a !== undefined && [200, 429].includes(a.status))).toBe(true);
    const deletedBySurvivors = count(survivors, 'deleted');
    expectTruthfulRefusals(survivors, { ACTION_LIMIT: 20, NAMESPACE_ACTION_LIMIT: 10 });
    // The others go on: another alert to a survivor still acts while the budget has room.
    const left = [];
    for (const p of all) if (!(await admin.contained(p.ns, p.name))) left.push(p);
    const contained = all.length - left.length;
    console.log(`SIGKILL mid-burst: ${contained} of 32 pods contained in all (limit 20), ${deletedBySurvivors} by the two survivors`);
    expect(contained).toBeLessThanOrEqual(20);
    expect(deletedBySurvivors).toBeGreaterThan(0);
    if (left.length > 0) {
      const late = await rs[1].post(shellIn(left[0].ns, left[0].name, left[0].containerId));
      expect([200, 429]).toContain(late.status);
      if (late.status === 429) expectTruthfulRefusals([late], { ACTION_LIMIT: 20, NAMESPACE_ACTION_LIMIT: 10 });
    }
    const total = (await Promise.all(all.map((p) => admin.contained(p.ns, p.name)))).filter(Boolean).length;
    expect(total).toBeLessThanOrEqual(20);
  }, 120_000);
});
