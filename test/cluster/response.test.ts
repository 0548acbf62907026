// The function against a real kube-apiserver (RBAC on, the project's rbac.yaml, the ServiceAccount's own
// token from the TokenRequest API), in-cluster style as in a pod: every path that acts or refuses to.
import type { Kube } from '../../falco-pod-delete/src/kube/index.js';
import * as k8s from '@kubernetes/client-node';
import { describeCluster, withClusterFunction, withRacingKube, workload } from '../support/cluster.js';
import { fixture, withFields } from '../support/harness.js';

const shellIn = (namespace: string, pod: string, containerId: string) =>
  withFields(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'), { 'k8s.ns.name': namespace, 'k8s.pod.name': pod, 'container.id': containerId.slice(0, 12) });

describeCluster('on a real API server', () => {
  const c = withClusterFunction();

  it('deletes the pod an alert names when its container is in the pod, with the default COORDINATION=cluster', async () => {
    const pod = await c.admin.pod(c.ns, 'web-0');
    await c.start();
    const r = await c.fn!.post(shellIn(c.ns, 'web-0', pod.containerId));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ decision: 'delete', outcome: 'deleted', namespace: c.ns, pod: 'web-0', dryRun: false });
    // Terminating with a 1 s grace period (GRACE_PERIOD_SECONDS' default), not the pod's own 30 s: the kubelet
    // stops the attacker's shell a second after it sees the deletion.
    const after = await c.admin.readPod(c.ns, 'web-0');
    expect(after?.metadata?.deletionTimestamp).toBeDefined();
    expect(after?.metadata?.deletionGracePeriodSeconds).toBe(1);
    // The budget is a real Lease, written with MicroTime timestamps the server accepted.
    const budget = await c.admin.leases.readNamespacedLease({ name: 'fpd-budget', namespace: 'openfaas-fn' });
    expect(String(budget.spec?.renewTime)).toMatch(/\.\d{6}Z$/);
    expect(c.fn!.audits()).toEqual([expect.objectContaining({ outcome: 'deleted', namespace: c.ns, pod: 'web-0', status: 200 })]);
  });

  it('records the deletion as an Event on the pod', async () => {
    const pod = await c.admin.pod(c.ns, 'web-0');
    await c.start();
    await c.fn!.post(shellIn(c.ns, 'web-0', pod.containerId));
    await c.fn!.fn.drain();
    const events = await c.admin.events(c.ns);
    expect(events).toEqual([expect.objectContaining({ reason: 'FalcoResponseDeleted', type: 'Warning', involvedObject: expect.objectContaining({ kind: 'Pod', name: 'web-0', uid: pod.uid }) })]);
  });

  it('declines an alert whose container is not in the pod, leaves the pod, and writes no Event (its proof failed)', async () => {
    await c.admin.pod(c.ns, 'web-0');
    await c.start();
    const r = await c.fn!.post(shellIn(c.ns, 'web-0', 'aa'.repeat(32)));
    expect(r.body).toMatchObject({ outcome: 'skipped', code: 'container-mismatch' });
    expect(await c.admin.contained(c.ns, 'web-0')).toBe(false);
    await c.fn!.fn.drain();
    expect((await c.admin.events(c.ns)).map((e) => e.reason)).toEqual([]);
  });

  it('never acts in a critical namespace', async () => {
    const pod = await c.admin.pod('kube-system', `coredns-${c.ns}`).catch(async () => {
      await c.admin.core.createNamespacedServiceAccount({ namespace: 'kube-system', body: { metadata: { name: 'default' } } });
      return c.admin.pod('kube-system', `coredns-${c.ns}`);
    });
    await c.start();
    const r = await c.fn!.post(shellIn('kube-system', `coredns-${c.ns}`, pod.containerId));
    expect(r.body).toMatchObject({ outcome: 'skipped', code: 'critical-namespace' });
    expect(await c.admin.contained('kube-system', `coredns-${c.ns}`)).toBe(false);
  });

  it('finds the pod of a Falco 0.41+ alert (no k8s fields) by container id among the node\'s pods', async () => {
    const node = `worker-${c.ns}`;
    await c.admin.pod(c.ns, 'decoy', { node });
    const pod = await c.admin.pod(c.ns, 'shell-here', { node });
    await c.start();
    const alert = { ...fixture('17-CONSTRUCTED-falco-0.41plus-default-no-k8s-fields.json'), hostname: node };
    const r = await c.fn!.post(withFields(alert, { 'container.id': pod.containerId.slice(0, 12) }));
    expect(r.body).toMatchObject({ outcome: 'deleted', namespace: c.ns, pod: 'shell-here' });
    expect(await c.admin.contained(c.ns, 'shell-here')).toBe(true);
    expect(await c.admin.contained(c.ns, 'decoy')).toBe(false);
  });

  it('DRY_RUN=true: the server runs the deletion as a dry run and the pod stays', async () => {
    const pod = await c.admin.pod(c.ns, 'web-0');
    await c.start({ DRY_RUN: 'true' });
    const r = await c.fn!.post(shellIn(c.ns, 'web-0', pod.containerId));
    expect(r.body).toMatchObject({ outcome: 'dry-run', code: 'dry-run', dryRun: true });
    expect(await c.admin.contained(c.ns, 'web-0')).toBe(false);
  });

  const ISOLATE = 'entries: [{name: keep-for-forensics, match: {rules: ["Terminal shell*"]}, action: isolate}]';
  const np = (name: string, spec: Record<string, unknown>) => c.admin.net.createNamespacedNetworkPolicy({ namespace: c.ns, body: { metadata: { name }, spec } as never });
  const webPolicies = async () => {
    await np('allow-web', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{}] });
    await np('allow-same-namespace', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] });
    await np('default-deny-egress', { podSelector: {}, policyTypes: ['Egress'] });
    await np('allow-db', { podSelector: { matchLabels: { app: 'db' } }, ingress: [{}] });
  };
  const selectorMatches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);

  it("isolate, a ReplicaSet's pod behind a Service: detached from both, cut off, its old labels kept; the answer names what still allows traffic", async () => {
    const [pod] = await workload(c.admin, c.ns, 'Deployment', 'web', 2);
    await c.admin.core.createNamespacedService({ namespace: c.ns, body: { metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ port: 80 }] } } });
    await webPolicies();
    await c.start({ POLICY: ISOLATE, RECORD_EVENTS: 'true' });
    const r = await c.fn!.post(shellIn(c.ns, pod.name, pod.containerId));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ decision: 'isolate', outcome: 'isolated', code: 'isolate' });
    // The quarantine label alone: neither the Service's selector nor the ReplicaSet's matches it any more.
    const after = await c.admin.readPod(c.ns, pod.name);
    expect(after?.metadata?.labels).toEqual({ 'falco-pod-delete/quarantine': 'true' });
    expect(after?.metadata?.deletionTimestamp).toBeUndefined();
    const service = await c.admin.core.readNamespacedService({ name: 'web', namespace: c.ns });
    expect(selectorMatches(service.spec!.selector!, after!.metadata!.labels!)).toBe(false);
    const rs = await c.admin.kc.makeApiClient(k8s.AppsV1Api).readNamespacedReplicaSet({ name: 'web-7d4b9c', namespace: c.ns });
    expect(selectorMatches(rs.spec!.selector.matchLabels!, after!.metadata!.labels!)).toBe(false);
    expect(JSON.parse(after!.metadata!.annotations!['falco-pod-delete/isolation'])).toEqual({
      labels: { app: 'web' }, detached: true, since: expect.stringMatching(/^\d{4}-/), rule: 'Terminal shell in container', entry: 'keep-for-forensics', owner: 'ReplicaSet/web-7d4b9c',
    });
    const quarantine = await c.admin.net.readNamespacedNetworkPolicy({ name: 'falco-pod-delete-quarantine', namespace: c.ns });
    expect(quarantine.spec).toMatchObject({ podSelector: { matchLabels: { 'falco-pod-delete/quarantine': 'true' } }, policyTypes: ['Ingress', 'Egress'] });
    // allow-web no longer selects it; the namespace-wide allow-same-namespace still does, and the answer says so.
    expect(r.body.isolation).toEqual({ holds: false, allowedBy: ['allow-same-namespace'], detached: true });
    expect(r.body.workload).toMatchObject({ kind: 'Deployment', name: 'web', effect: expect.stringContaining('ReplicaSet') });
    expect((r.body.workload as { effect: string }).effect).toMatch(/out of its Services; .* releases it and starts a replacement/);
    expect(r.body.credentials).toEqual({ serviceAccount: 'default', tokenMounted: true, note: expect.stringContaining('stays valid for as long as the pod exists') });
    expect((r.body.credentials as { note: string }).note).toContain('delete does');
    expect(c.fn!.audits()[0]).toMatchObject({ outcome: 'isolated', isolation: r.body.isolation, credentials: r.body.credentials });
    await c.fn!.fn.drain();
    const events = (await c.admin.events(c.ns)).filter((e) => e.reason === 'FalcoResponseIsolated');
    expect(events.map((e) => e.message)).toEqual([expect.stringContaining('the isolation does not hold: NetworkPolicies allow-same-namespace still allow traffic')]);
    const metric = await c.fn!.fn.metrics.isolations.get();
    expect(metric.values.map((v) => [v.labels.holds, v.value])).toEqual([['false', 1]]);
  });

  it('isolate, a bare pod: detached, and the isolation holds when only policies on its old labels select it', async () => {
    const pod = await c.admin.pod(c.ns, 'web-0', { labels: { app: 'web' } });
    await np('allow-web', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{}] });
    await c.start({ POLICY: ISOLATE });
    const r = await c.fn!.post(shellIn(c.ns, 'web-0', pod.containerId));
    expect(r.body).toMatchObject({ outcome: 'isolated', isolation: { holds: true, allowedBy: [], detached: true } });
    expect(r.body.workload).toEqual({ kind: 'none', effect: 'a bare pod: out of its Services and kept for forensics; nothing replaces it' });
    expect((await c.admin.readPod(c.ns, 'web-0'))?.metadata?.labels).toEqual({ 'falco-pod-delete/quarantine': 'true' });
    // A second alert for the isolated pod leaves it and its record as they are.
    const before = await c.admin.readPod(c.ns, 'web-0');
    await c.fn!.fn.drain();
    await c.fn!.stop();
    await c.start({ POLICY: ISOLATE });
    expect((await c.fn!.post(shellIn(c.ns, 'web-0', pod.containerId))).body).toMatchObject({ outcome: 'isolated', isolation: { holds: true, detached: true } });
    const again = await c.admin.readPod(c.ns, 'web-0');
    expect(again?.metadata?.annotations).toEqual(before?.metadata?.annotations);
    expect(again?.metadata?.resourceVersion).toBe(before?.metadata?.resourceVersion);
  });

  it("isolate, a StatefulSet's pod: keeps its labels, so the policies on them still allow traffic; the answer says what that leaves", async () => {
    const [pod] = await workload(c.admin, c.ns, 'StatefulSet', 'web', 2);
    await webPolicies();
    await c.start({ POLICY: ISOLATE });
    const r = await c.fn!.post(shellIn(c.ns, pod.name, pod.containerId));
    expect(r.body).toMatchObject({ outcome: 'isolated', isolation: { holds: false, allowedBy: ['allow-same-namespace', 'allow-web'], detached: false } });
    expect((await c.admin.readPod(c.ns, pod.name))?.metadata?.labels).toEqual({ app: 'web', 'falco-pod-delete/quarantine': 'true' });
    expect((r.body.workload as { effect: string }).effect).toMatch(/^its labels are kept \(a StatefulSet's pod\): StatefulSet web still counts it and its Services still send it traffic, which the deny-all drops; no replacement starts/);
  });

  it('isolate with requireHolds: an isolation that would not hold deletes the pod instead; one that holds is made', async () => {
    const policy = 'entries: [{name: contain, match: {rules: ["Terminal shell*"]}, action: isolate, requireHolds: true}]';
    const leaky = await c.admin.pod(c.ns, 'leaky', { labels: { app: 'web' } });
    await np('allow-same-namespace', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] });
    await c.start({ POLICY: policy });
    const r = await c.fn!.post(shellIn(c.ns, 'leaky', leaky.containerId));
    expect(r.body).toMatchObject({ decision: 'delete', outcome: 'deleted', code: 'isolation-would-not-hold', isolation: { holds: false, allowedBy: ['allow-same-namespace'], detached: true } });
    expect(r.body.reason).toContain('deleted instead of isolated by policy entry "contain" (requireHolds)');
    expect(await c.admin.contained(c.ns, 'leaky')).toBe(true);
    expect((await c.admin.readPod(c.ns, 'leaky'))?.metadata?.labels).toEqual({ app: 'web' });
    const other = await c.admin.namespace('apps');
    const tight = await c.admin.pod(other, 'tight', { labels: { app: 'web' } });
    const r2 = await c.fn!.post(shellIn(other, 'tight', tight.containerId));
    expect(r2.body).toMatchObject({ outcome: 'isolated', isolation: { holds: true } });
    expect(await c.admin.contained(other, 'tight')).toBe(false);
  });

  it('leaves a pod that carries the opt-out label', async () => {
    const pod = await c.admin.pod(c.ns, 'web-0', { labels: { 'falco-pod-delete/exempt': 'true' } });
    await c.start();
    expect((await c.fn!.post(shellIn(c.ns, 'web-0', pod.containerId))).body).toMatchObject({ outcome: 'skipped', code: 'opt-out' });
    expect(await c.admin.contained(c.ns, 'web-0')).toBe(false);
  });

  it('leaves every pod of a namespace that carries the opt-out label', async () => {
    const exempt = await c.admin.namespace('exempt', { 'falco-pod-delete/exempt': 'true' });
    const pod = await c.admin.pod(exempt, 'web-0');
    await c.start();
    const r = await c.fn!.post(shellIn(exempt, 'web-0', pod.containerId));
    expect(r.body).toMatchObject({ outcome: 'skipped', code: 'opt-out', reason: expect.stringContaining(`namespace ${exempt}`) });
    expect(await c.admin.contained(exempt, 'web-0')).toBe(false);
  });

  it('the UID precondition: a pod replaced under the same name between read and delete is not deleted', async () => {
    await c.admin.pod(c.ns, 'web-0', { containerId: 'cc'.repeat(32) });
    // Between the function's read and its DELETE, the workload's controller recreates the pod.
    const fn = await withRacingKube({ COORDINATION: 'single', RECORD_EVENTS: 'false' }, (real) => ({
      readPod: async (...args: Parameters<Kube['readPod']>) => {
        const seen = await real.readPod(...args);
        await c.admin.core.deleteNamespacedPod({ name: 'web-0', namespace: c.ns, body: { gracePeriodSeconds: 0 } });
        await c.admin.pod(c.ns, 'web-0', { containerId: 'cc'.repeat(32) });
        return seen;
      },
    }));
    try {
      expect(await fn.post(shellIn(c.ns, 'web-0', 'cc'.repeat(32)))).toMatchObject({ outcome: 'replaced', code: 'uid-precondition' });
      expect(await c.admin.contained(c.ns, 'web-0')).toBe(false);
    } finally {
      await fn.stop();
    }
  });
});
