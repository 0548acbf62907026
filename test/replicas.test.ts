// Several replicas against one API server that enforces AlreadyExists and resourceVersion preconditions:
// exactly one action per pod, one cluster-wide blast-radius limit, and a dead replica's claim expires.
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

it('turns hundreds of identical alerts spread over three replicas into exactly one DELETE', async () => {
  api.addPod({ namespace: 'default', name: 'kubecon' });
  const rs = await startReplicas(3);
  const alert = shellFor('kubecon');
  const answers = await Promise.all(Array.from({ length: 300 }, (_, i) => rs[i % 3].post({ ...alert, uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}` })));
  expect(podDeletes()).toHaveLength(1);
  expect(answers.every((a) => a.status === 200)).toBe(true);
  expect(answers.filter((a) => a.body.outcome === 'deleted')).toHaveLength(1);
  // The rest: coalesced in a replica, claimed by another, or (a replica's first alert arriving after the
  // deletion) already gone. None acts.
  const others = answers.filter((a) => a.body.outcome !== 'deleted').map((a) => a.body.outcome);
  expect(new Set(others)).toEqual(new Set(others.filter((o) => o === 'duplicate' || o === 'already gone')));
  expect(others.filter((o) => o === 'duplicate').length).toBeGreaterThan(290);
  // The outcome is written on the claim after the answer; a replica that lost the claim gives back the budget
  // slot it took alongside, so one pod costs one slot of the cluster-wide budget however many replicas saw it.
  const leases = (prefix: string) => [...api.leases.values()].filter((l) => l.metadata.name.startsWith(prefix));
  // One slot of the cluster-wide budget and one of the namespace's share.
  await until(() => leases('fpd-claim-')[0]?.metadata.annotations['falco-pod-delete/outcome'] === 'deleted' && leases('fpd-budget-').length === 2);
  expect(leases('fpd-claim-')).toHaveLength(1);
  expect(leases('fpd-claim-')[0].metadata.annotations['falco-pod-delete/outcome']).toBe('deleted');
  expect(leases('fpd-budget-ns-')).toHaveLength(1);
  expect(leases('fpd-budget-')).toHaveLength(2);
}, 60_000);

async function until(ok: () => boolean, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; !ok() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
}

it('takes the claim and the budget slot together: the writes in flight at once, before the DELETE', async () => {
  api.addPod({ namespace: 'default', name: 'overlap' });
  const [r] = await startReplicas(1, { ACTION_LIMIT: '20' });
  // The claim and the namespace's share are the first two writes, at once; the cluster slot follows the share.
  api.fail({ kind: 'delay', ms: 1000 }, { method: 'POST', path: /\/leases$/, times: 2 });
  const started = Date.now();
  const answer = await r.post(shellFor('overlap'));
  expect(answer.body.outcome).toBe('deleted');
  const writes = api.requests.filter((q) => q.method === 'POST' && q.path.endsWith('/leases')).map((q) => (q.body as { metadata: { name: string } }).metadata.name);
  expect(writes.sort()).toEqual([expect.stringMatching(/^fpd-budget-\d+$/), expect.stringMatching(/^fpd-budget-ns-/), expect.stringMatching(/^fpd-claim-delete-/)]);
  // 1 s writes one after the other would take 2 s or more; together, one (a margin of 0.9 s for a slow machine).
  expect(Date.now() - started).toBeLessThan(1900);
  const order = api.requests.map((q) => `${q.method} ${q.path.split('/').slice(-2).join('/')}`);
  expect(order.indexOf('DELETE pods/overlap')).toBeGreaterThan(order.lastIndexOf('POST openfaas-fn/leases'));
}, 30_000);

it('acts on at most ACTION_LIMIT pods in total when 60 alerts for 60 pods are spread over three replicas', async () => {
  for (let i = 0; i < 60; i++) api.addPod({ namespace: 'default', name: `pod-${i}` });
  const rs = await startReplicas(3, { ACTION_LIMIT: '20', NAMESPACE_ACTION_LIMIT: '100%' });
  const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => rs[i % 3].post(shellFor(`pod-${i}`))));
  const deleted = answers.filter((a) => a.body.outcome === 'deleted').length;
  expect(podDeletes()).toHaveLength(deleted);
  expect(deleted).toBe(20);
  expect(answers.filter((a) => a.status === 429 && a.body.outcome === 'rate-limited')).toHaveLength(40);
  // The budget: one slot Lease per action in the window, all 20 taken.
  expect([...api.leases.values()].filter((l) => /^fpd-budget-\d+$/.test(l.metadata.name))).toHaveLength(20);
}, 60_000);

it('leaves the pod actionable again once the claim of a replica killed between claim and action expires', async () => {
  api.addPod({ namespace: 'default', name: 'kubecon' });
  const [a, b] = await startReplicas(2, { CLAIM_TTL_SECONDS: '5' });
  // Replica a claims the pod, then its DELETE never gets an answer: killed there, it never deletes.
  api.fail({ kind: 'hang' }, { method: 'DELETE', path: /\/pods\/kubecon$/ });
  const lost = a.post(shellFor('kubecon')).catch(() => undefined);
  while (podDeletes().length === 0) await new Promise((r) => setTimeout(r, 20));
  a.child.kill('SIGKILL');
  await lost;
  const early = await b.post(shellFor('kubecon'));
  expect(early.body).toMatchObject({ outcome: 'duplicate', code: 'claimed', first: { result: 'accepted' } });
  expect(String(early.body.reason)).toMatch(/claimed by replica falco-pod-delete-replica-0: in progress/);
  expect(api.pods.has('default/kubecon')).toBe(true);
  await new Promise((r) => setTimeout(r, 5500));
  const later = await b.post(shellFor('kubecon'));
  expect(later.body).toMatchObject({ outcome: 'deleted' });
  expect(podDeletes()).toHaveLength(2);
  expect(api.pods.has('default/kubecon')).toBe(false);
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

it('skips claims with COORDINATION=single', async () => {
  api.addPod({ namespace: 'default', name: 'kubecon' });
  const [r] = await startReplicas(1, { COORDINATION: 'single' });
  expect((await r.post(shellFor('kubecon'))).body).toMatchObject({ outcome: 'deleted' });
  expect(api.requests.filter((c) => c.path.startsWith('/apis/coordination.k8s.io/'))).toEqual([]);
}, 60_000);
