// Workload-aware response on the real API server: the owner chain, the availability guard, per-kind rules,
// eviction under a real PodDisruptionBudget, and evidence whose log part fails (no kubelet) without blocking.
import * as k8s from '@kubernetes/client-node';
import { describeCluster, withClusterFunction, workload } from '../support/cluster.js';
import { fixture, withFields } from '../support/harness.js';

const shellIn = (namespace: string, pod: string, containerId: string) =>
  withFields(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'), { 'k8s.ns.name': namespace, 'k8s.pod.name': pod, 'container.id': containerId.slice(0, 12) });
const policy = (extra: string) => `entries: [{name: shells, match: {rules: ["Terminal shell in container"]}, action: delete${extra}}]`;

describeCluster('workload-aware response on a real API server', () => {
  const c = withClusterFunction({ RECORD_EVENTS: 'false', COORDINATION: 'single' });

  it('names the Deployment behind a pod (through its ReplicaSet) in the answer and the audit line', async () => {
    const pods = await workload(c.admin, c.ns, 'Deployment', 'web', 3);
    await c.start();
    const r = await c.fn!.post(shellIn(c.ns, 'web-0', pods[0].containerId));
    // Its code and reason in the diff when it is not deleted.
    expect({ ...r.body, why: r.body.outcome === 'deleted' ? undefined : `${r.body.code}: ${r.body.reason}` }).toMatchObject({ outcome: 'deleted', why: undefined, workload: { kind: 'Deployment', name: 'web', replicas: 3, ready: 3, effect: expect.stringContaining('recreates it') } });
    expect(c.fn!.audits()[0]).toMatchObject({ outcome: 'deleted', workload: { kind: 'Deployment', name: 'web' } });
  });

  it('a bare pod is named as one: gone for good', async () => {
    const pod = await c.admin.pod(c.ns, 'lonely');
    await c.start();
    expect((await c.fn!.post(shellIn(c.ns, 'lonely', pod.containerId))).body).toMatchObject({ outcome: 'deleted', workload: { kind: 'none', effect: expect.stringContaining('gone for good') } });
  });

  it('by default keeps the last ready replica: deletes one of two, refuses the other', async () => {
    const pods = await workload(c.admin, c.ns, 'Deployment', 'web', 2);
    await c.start();
    expect((await c.fn!.post(shellIn(c.ns, 'web-0', pods[0].containerId))).body).toMatchObject({ outcome: 'deleted' });
    const r = await c.fn!.post(shellIn(c.ns, 'web-1', pods[1].containerId));
    expect(r.body).toMatchObject({ outcome: 'skipped', code: 'availability', workload: { kind: 'Deployment', name: 'web' } });
    expect(String(r.body.reason)).toMatch(/would leave Deployment web 0 ready of 2 replicas, below the minimum of 1/);
    expect(await c.admin.contained(c.ns, 'web-1')).toBe(false);
  });

  it('minHealthyReplicas: 0 deletes even the last ready replica', async () => {
    const pods = await workload(c.admin, c.ns, 'Deployment', 'web', 1);
    await c.start({ POLICY: policy(', minHealthyReplicas: 0') });
    expect((await c.fn!.post(shellIn(c.ns, 'web-0', pods[0].containerId))).body).toMatchObject({ outcome: 'deleted' });
    expect(await c.admin.contained(c.ns, 'web-0')).toBe(true);
  });

  it('minHealthyReplicas as a percentage: 50% of 4 keeps two ready', async () => {
    const pods = await workload(c.admin, c.ns, 'Deployment', 'web', 4);
    await c.start({ POLICY: policy(', minHealthyReplicas: "50%"') });
    const outcomes = [];
    for (const p of pods) outcomes.push((await c.fn!.post(shellIn(c.ns, p.name, p.containerId))).body.outcome);
    expect(outcomes).toEqual(['deleted', 'deleted', 'skipped', 'skipped']);
  });

  it('statefulSets: skip leaves a StatefulSet\'s pod; daemonSets: isolate isolates instead of deleting', async () => {
    const st = await workload(c.admin, c.ns, 'StatefulSet', 'db', 3);
    const ds = await workload(c.admin, c.ns, 'DaemonSet', 'agent', 2);
    await c.start({ POLICY: policy(', statefulSets: skip, daemonSets: isolate') });
    expect((await c.fn!.post(shellIn(c.ns, 'db-0', st[0].containerId))).body).toMatchObject({ outcome: 'skipped', code: 'statefulset' });
    const r = await c.fn!.post(shellIn(c.ns, 'agent-0', ds[0].containerId));
    expect(r.body).toMatchObject({ decision: 'isolate', outcome: 'isolated', workload: { kind: 'DaemonSet', name: 'agent' } });
    expect((await c.admin.readPod(c.ns, 'agent-0'))?.metadata?.labels?.['falco-pod-delete/quarantine']).toBe('true');
    expect(await c.admin.contained(c.ns, 'db-0')).toBe(false);
  });

  it('evict honours a real PodDisruptionBudget: refused while it allows no disruption, evicted when it does', async () => {
    const pods = await workload(c.admin, c.ns, 'Deployment', 'web', 3);
    const policyApi = c.admin.kc.makeApiClient(k8s.PolicyV1Api);
    await policyApi.createNamespacedPodDisruptionBudget({ namespace: c.ns, body: { metadata: { name: 'web' }, spec: { minAvailable: 3, selector: { matchLabels: { app: 'web' } } } } });
    const budget = (allowed: number) => policyApi.patchNamespacedPodDisruptionBudgetStatus({ name: 'web', namespace: c.ns, body: { status: { observedGeneration: 1, disruptionsAllowed: allowed, currentHealthy: 3, desiredHealthy: 3 - allowed, expectedPods: 3 } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    await budget(0);
    await c.start({ POLICY: 'entries: [{name: shells, match: {}, action: evict}]', COALESCE_WINDOW_SECONDS: '0' });
    const refused = await c.fn!.post(shellIn(c.ns, 'web-0', pods[0].containerId));
    expect(refused.status).toBe(200);
    expect(refused.body).toMatchObject({ decision: 'evict', outcome: 'skipped', code: 'disruption-budget' });
    expect(await c.admin.contained(c.ns, 'web-0')).toBe(false);
    await budget(1);
    expect((await c.fn!.post(shellIn(c.ns, 'web-0', pods[0].containerId))).body).toMatchObject({ decision: 'evict', outcome: 'evicted' });
    expect(await c.admin.contained(c.ns, 'web-0')).toBe(true);
  });

  it('writes the manifest as evidence before deleting; the log read fails here (no kubelet) and containment proceeds', async () => {
    const pods = await workload(c.admin, c.ns, 'Deployment', 'web', 3);
    await c.start({ POLICY: policy(', evidence: {logs: true, logLines: 50}') });
    const r = await c.fn!.post(shellIn(c.ns, 'web-0', pods[0].containerId));
    expect(r.body).toMatchObject({ outcome: 'deleted', evidence: { written: ['manifest'], missing: [expect.stringMatching(/^log:main: /)] } });
    const records = c.fn!.lines.filter((l) => l.evidence === true);
    expect(records).toEqual([expect.objectContaining({ kind: 'manifest', namespace: c.ns, pod: 'web-0', workload: expect.objectContaining({ kind: 'Deployment' }) })]);
    expect((records[0].manifest as { status: { containerStatuses: Array<{ containerID: string }> } }).status.containerStatuses[0].containerID).toBe(`containerd://${pods[0].containerId}`);
    expect(JSON.stringify(records[0]).length).toBeLessThan(48 * 1024);
    expect(await c.admin.contained(c.ns, 'web-0')).toBe(true);
  });
});
