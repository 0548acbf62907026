// Three replica processes on a real API server: exactly one action per pod (the DELETE's uid and
// resourceVersion preconditions), one shared blast-radius budget (one Lease), and resourceVersion conflicts
// resolved by the server, not by a stand-in's belief.
import { execFileSync } from 'node:child_process';
import type * as k8s from '@kubernetes/client-node';
import { Admin, budgetActions, describeCluster, inClusterEnv } from '../support/cluster.js';
import { fixture, withFields } from '../support/harness.js';
import { type FunctionProcess, spawnFunction } from '../support/process.js';

const shellIn = (namespace: string, pod: string, containerId: string) =>
  withFields(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'), { 'k8s.ns.name': namespace, 'k8s.pod.name': pod, 'container.id': containerId.slice(0, 12) });

/** Actions the budget Lease records (in one namespace, or all): the grants of every replica. */
function spent(lease: k8s.V1Lease, namespace?: string): number {
  const by = budgetActions(lease);
  return namespace ? by[namespace] ?? 0 : Object.values(by).reduce((n, x) => n + x, 0);
}

describeCluster('three replicas on a real API server', () => {
  let admin: Admin;
  let ns: string;
  let replicas: FunctionProcess[] = [];

  beforeAll(() => {
    execFileSync('npm', ['run', '-s', 'build'], { stdio: 'ignore' });
    admin = new Admin();
  }, 120_000);
  beforeEach(async () => {
    ns = await admin.namespace('apps');
    // Each test starts with no budget spent.
    await admin.leases.deleteCollectionNamespacedLease({ namespace: 'openfaas-fn' });
  });
  afterEach(async () => {
    for (const r of replicas) r.child.kill('SIGKILL');
    await Promise.all(replicas.map((r) => r.exited));
    replicas = [];
  });

  const start = async (extra: Record<string, string> = {}) => {
    const { env } = inClusterEnv({ RECORD_EVENTS: 'false', ...extra });
    replicas = await Promise.all([0, 1, 2].map((i) => spawnFunction(['dist/index.mjs'], { ...env, HOSTNAME: `falco-pod-delete-replica-${i}` })));
    return replicas;
  };

  it('turns 150 alerts for one pod spread over three replicas into exactly one deletion', async () => {
    const pod = await admin.pod(ns, 'web-0');
    const rs = await start();
    const alert = shellIn(ns, 'web-0', pod.containerId);
    const answers = await Promise.all(Array.from({ length: 150 }, (_, i) => rs[i % 3].post({ ...alert, uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}` })));
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
    expect(answers.filter((a) => a.body.outcome === 'deleted')).toHaveLength(1);
    // The rest were coalesced in their replica, or found the pod already Terminating: from their view, or
    // after their DELETE's resourceVersion precondition failed (409) and they read it again. None acts.
    const others = new Set(answers.filter((a) => a.body.outcome !== 'deleted').map((a) => `${a.body.outcome}/${a.body.code}`));
    expect([...others].filter((o) => !['duplicate/duplicate', 'skipped/terminating'].includes(o))).toEqual([]);
    expect(await admin.contained(ns, 'web-0')).toBe(true);
    // No claim Lease: the one Lease is the budget, and once the replicas settled it records one action.
    await new Promise((r) => setTimeout(r, 1500));
    const leases = (await admin.leases.listNamespacedLease({ namespace: 'openfaas-fn' })).items;
    expect(leases.map((l) => l.metadata?.name)).toEqual(['fpd-budget']);
    expect(spent(leases[0])).toBe(1);
  }, 60_000);

  it('acts on exactly ACTION_LIMIT pods in all when 15 alerts for 15 pods arrive at three replicas at once', async () => {
    const pods = await Promise.all(Array.from({ length: 15 }, (_, i) => admin.pod(ns, `pod-${i}`)));
    const rs = await start({ ACTION_LIMIT: '6', NAMESPACE_ACTION_LIMIT: '100%' });
    const answers = await Promise.all(pods.map((p, i) => rs[i % 3].post(shellIn(ns, `pod-${i}`, p.containerId))));
    const deleted = answers.map((a, i) => (a.body.outcome === 'deleted' ? i : -1)).filter((i) => i >= 0);
    expect(deleted).toHaveLength(6);
    expect(answers.filter((a) => a.status === 429 && a.body.outcome === 'rate-limited')).toHaveLength(9);
    const contained = await Promise.all(pods.map((_, i) => admin.contained(ns, `pod-${i}`)));
    expect(contained.map((c, i) => (c ? i : -1)).filter((i) => i >= 0)).toEqual(deleted);
    // The budget, as the real server stores it: one Lease whose grants record the six actions, in this namespace.
    await new Promise((r) => setTimeout(r, 1500));
    const budget = await admin.leases.readNamespacedLease({ name: 'fpd-budget', namespace: 'openfaas-fn' });
    expect(spent(budget)).toBe(6);
    expect(spent(budget, ns)).toBe(6);
  }, 60_000);
});
