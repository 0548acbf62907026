// Several replicas against one API server that enforces AlreadyExists and resourceVersion preconditions:
// exactly one action per pod (the preconditions), one cluster-wide blast-radius limit (one budget Lease), and a
// dead replica's reservation stays counted.
import { execFileSync } from 'node:child_process';
import { FakeApiServer, containerId, inClusterEnv, stageServiceAccount } from './support/apiserver.js';
import { fixture, withFields } from './support/harness.js';
import { type FunctionProcess, spawnFunction } from './support/process.js';

const TOKEN = 'replica-token';
let api: FakeApiServer;
let replicas: FunctionProcess[] = [];

beforeAll(() => {
  execFileSync('npm', ['run', '-s', 'build'], { stdio: 'ignore' });
}, 120_000);
beforeEach(async () => {
  api = await new FakeApiServer(TOKEN).start();
});
afterEach(async () => {
  for (const r of replicas) r.child.kill('SIGKILL');
  await Promise.all(replicas.map((r) => r.exited));
  replicas = [];
  await api.stop();
});

async function startReplicas(n: number, extra: Record<string, string> = {}): Promise<FunctionProcess[]> {
  const sa = stageServiceAccount(TOKEN);
  replicas = await Promise.all(Array.from({ length: n }, (_, i) =>
    spawnFunction(['dist/index.mjs'], { ...inClusterEnv(api, sa.prefix), HOSTNAME: `falco-pod-delete-replica-${i}`, RECORD_EVENTS: 'false', ...extra })));
  return replicas;
}

const shellFor = (name: string) => withFields(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'), { 'k8s.pod.name': name, 'container.id': containerId(`default/${name}`).slice(0, 12) });
const podDeletes = () => api.calls('DELETE', '/api/v1/namespaces/');

it('turns hundreds of identical alerts spread over three replicas into exactly one deletion: the preconditions arbitrate', async () => {
  api.addPod({ namespace: 'default', name: 'kubecon' });
  const rs = await startReplicas(3);
  const alert = shellFor('kubecon');
  const answers = await Promise.all(Array.from({ length: 300 }, (_, i) => rs[i % 3].post({ ...alert, uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}` })));
  // At most one DELETE per replica (coalesced within it), each under uid and resourceVersion preconditions:
  // one succeeds; the others find the pod gone.
  const deletes = podDeletes();
  expect(deletes.length).toBeGreaterThanOrEqual(1);
  expect(deletes.length).toBeLessThanOrEqual(3);
  expect(deletes.every((d) => (d.body as { preconditions?: { uid?: string; resourceVersion?: string } }).preconditions?.resourceVersion === '1001')).toBe(true);
  expect(answers.every((a) => a.status === 200)).toBe(true);
  expect(answers.filter((a) => a.body.outcome === 'deleted')).toHaveLength(1);
  const others = answers.filter((a) => a.body.outcome !== 'deleted').map((a) => a.body.outcome);
  expect(new Set(others)).toEqual(new Set(others.filter((o) => o === 'duplicate' || o === 'already gone')));
  expect(others.filter((o) => o === 'duplicate').length).toBeGreaterThan(290);
  // No claim Lease: only the shared budget, which records the one deletion once every replica settled.
  await Promise.all(rs.map((r) => r.post({ ...alert, rule: 'none' }).catch(() => undefined)));
  await new Promise((r) => setTimeout(r, 1500));
  expect([...api.leases.keys()]).toEqual(['openfaas-fn/fpd-budget']);
  const grants = JSON.parse(api.leases.get('openfaas-fn/fpd-budget')?.metadata.annotations['falco-pod-delete/grants'] ?? '{}') as Record<string, { k: number; used: Record<string, number[]> }>;
  expect(Object.values(grants).reduce((n, g) => n + Object.values(g.used).flat().length, 0)).toBe(1);
  // Idle replicas keep no slot ahead beside other replicas (a slot nobody uses would be one another replica's
  // burst must count): at most the one kept by the replica that was alone when it wrote, until its next write.
  expect(Object.values(grants).map((g) => g.k).reduce((n, k) => n + k, 0)).toBeLessThanOrEqual(1);
}, 60_000);

async function until(ok: () => boolean, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; !ok() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
}

it('reserves a slot of the shared budget at start: the first alert makes no Lease call before its DELETE, and more are reserved after it', async () => {
  api.addPod({ namespace: 'default', name: 'first' });
  api.addPod({ namespace: 'default', name: 'second' });
  const [r] = await startReplicas(1, { ACTION_LIMIT: '20' });
  await until(() => api.leases.has('openfaas-fn/fpd-budget'));
  const before = api.requests.length;
  const handshakes = api.handshakes;
  for (const name of ['first', 'second']) expect((await r.post(shellFor(name))).body.outcome).toBe('deleted');
  // The connection opened at start serves them: the only new one is for the namespace read that runs beside
  // the pod read (this stand-in serves no watch, so the view is off and both are read).
  expect(handshakes).toBeGreaterThan(0);
  expect(api.handshakes - handshakes).toBeLessThanOrEqual(1);
  const order = api.requests.slice(before).map((q) => `${q.method} ${q.path.split('/').slice(-2).join('/')}`);
  expect(order.filter((o) => o.startsWith('DELETE'))).toEqual(['DELETE pods/first', 'DELETE pods/second']);
  // The one write of the budget follows the first DELETE (its last reserved slot spent, it reserves more).
  expect(order.slice(0, order.indexOf('DELETE pods/first')).filter((o) => o.includes('leases'))).toEqual([]);
  expect(order.filter((o) => o.includes('leases'))).toEqual(['PUT leases/fpd-budget']);
}, 30_000);

it('acts on at most ACTION_LIMIT pods in total when 60 alerts for 60 pods are spread over three replicas', async () => {
  for (let i = 0; i < 60; i++) api.addPod({ namespace: 'default', name: `pod-${i}` });
  const rs = await startReplicas(3, { ACTION_LIMIT: '20', NAMESPACE_ACTION_LIMIT: '100%' });
  const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => rs[i % 3].post(shellFor(`pod-${i}`))));
  const deleted = answers.filter((a) => a.body.outcome === 'deleted').length;
  expect(podDeletes()).toHaveLength(deleted);
  expect(deleted).toBe(20);
  expect(answers.filter((a) => a.status === 429 && a.body.outcome === 'rate-limited')).toHaveLength(40);
  // The budget: one Lease, whose grants record the 20 actions once every replica settled.
  await new Promise((r) => setTimeout(r, 1500));
  const grants = JSON.parse(api.leases.get('openfaas-fn/fpd-budget')?.metadata.annotations['falco-pod-delete/grants'] ?? '{}') as Record<string, { used: Record<string, number[]> }>;
  expect(Object.values(grants).reduce((n, g) => n + Object.values(g.used).flat().length, 0)).toBe(20);
}, 60_000);

it('counts the unspent reservation of a replica killed after it acted, for the window: the budget never over-spends', async () => {
  for (let i = 0; i < 4; i++) api.addPod({ namespace: 'default', name: `pod-${i}` });
  const [a, b] = await startReplicas(2, { ACTION_LIMIT: '4', NAMESPACE_ACTION_LIMIT: '100%' });
  expect((await a.post(shellFor('pod-0'))).body.outcome).toBe('deleted');
  // Killed before it could record its action: what it reserved (and may have spent) stays counted.
  a.child.kill('SIGKILL');
  const answers = [];
  for (let i = 1; i < 4; i++) answers.push(await b.post(shellFor(`pod-${i}`)));
  const deleted = answers.filter((x) => x.body.outcome === 'deleted').length;
  expect(deleted).toBeLessThanOrEqual(3);
  expect(deleted + 1).toBeLessThanOrEqual(4);
  expect(answers.filter((x) => x.status === 429).length).toBe(3 - deleted);
}, 60_000);

it('declines with a clear reason when the API cannot arbitrate (Leases forbidden), and never acts blind', async () => {
  api.addPod({ namespace: 'default', name: 'kubecon' });
  api.forbidden.add('create:leases');
  const [r] = await startReplicas(1);
  const answer = await r.post(shellFor('kubecon'));
  expect(answer.status).toBe(403);
  expect(answer.body).toMatchObject({ outcome: 'failed', error: { permission: 'create leases in namespace openfaas-fn' } });
  expect(podDeletes()).toHaveLength(0);
}, 60_000);

it('keeps the budget in memory with COORDINATION=single: no Lease call at all', async () => {
  api.addPod({ namespace: 'default', name: 'kubecon' });
  const [r] = await startReplicas(1, { COORDINATION: 'single' });
  expect((await r.post(shellFor('kubecon'))).body).toMatchObject({ outcome: 'deleted' });
  expect(api.requests.filter((c) => c.path.startsWith('/apis/coordination.k8s.io/'))).toEqual([]);
}, 60_000);
