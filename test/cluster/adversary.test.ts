// The attacker inside the cluster, in the default configuration (no caller token, container-id proof), on the
// real API server with rbac.yaml: the pod Falco flags knows its own name, namespace and container ids, and
// can POST alerts. Each attack is sent as it would be, with a control that the real alert still acts.
import { randomBytes } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { describeCluster, withClusterFunction } from '../support/cluster.js';
import { fixture, withFields } from '../support/harness.js';

const shellIn = (namespace: string, pod: string, fields: Record<string, unknown>) =>
  withFields(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'), { 'k8s.ns.name': namespace, 'k8s.pod.name': pod, ...fields });
const real = (namespace: string, pod: string, containerId: string) => shellIn(namespace, pod, { 'container.id': containerId.slice(0, 12) });
const randomId = () => randomBytes(6).toString('hex');

// Each suite acts as its own copy of rbac.yaml's ServiceAccount, with its own Leases: no other suite spends its budget.
describeCluster('a compromised pod cannot shield itself', () => {
  const c = withClusterFunction({ RECORD_EVENTS: 'false' }, { ownIdentity: 'fpd-shield' });

  it('a forged alert with a wrong container.id, then the real one: the real one deletes', async () => {
    const pod = await c.admin.pod(c.ns, 'miner-0');
    const fn = await c.start();
    expect((await fn.post(shellIn(c.ns, 'miner-0', { 'container.id': randomId() }))).body).toMatchObject({ outcome: 'skipped', code: 'container-mismatch' });
    expect((await fn.post(real(c.ns, 'miner-0', pod.containerId))).body).toMatchObject({ outcome: 'deleted' });
    expect(await c.admin.contained(c.ns, 'miner-0')).toBe(true);
  });

  it('a forged alert with a wrong k8s.pod.uid, then the real one: the real one deletes', async () => {
    const pod = await c.admin.pod(c.ns, 'miner-0');
    const fn = await c.start();
    const forged = shellIn(c.ns, 'miner-0', { 'container.id': pod.containerId.slice(0, 12), 'k8s.pod.uid': '00000000-0000-4000-8000-000000000000' });
    expect((await fn.post(forged)).body).toMatchObject({ outcome: 'skipped', code: 'uid-mismatch' });
    expect((await fn.post(real(c.ns, 'miner-0', pod.containerId))).body).toMatchObject({ outcome: 'deleted' });
    expect(await c.admin.contained(c.ns, 'miner-0')).toBe(true);
  });

  it('fifty forged alerts sent together with the real one: the real one deletes', async () => {
    const pod = await c.admin.pod(c.ns, 'miner-0');
    const fn = await c.start();
    const forged = Array.from({ length: 50 }, (_, i) => (i % 2 ? shellIn(c.ns, 'miner-0', { 'container.id': randomId() }) : shellIn(c.ns, 'miner-0', { 'container.id': pod.containerId.slice(0, 12), 'k8s.pod.uid': `${randomId()}-uid` })));
    const answers = await Promise.all([...forged.slice(0, 25), real(c.ns, 'miner-0', pod.containerId), ...forged.slice(25)].map((a) => fn.post(a)));
    expect(answers[25].body).toMatchObject({ outcome: 'deleted' });
    expect(answers.filter((a) => a.body.outcome === 'deleted')).toHaveLength(1);
    expect(await c.admin.contained(c.ns, 'miner-0')).toBe(true);
  });

  it("a forged alert for a weaker action (isolate) does not answer for the real delete", async () => {
    const pod = await c.admin.pod(c.ns, 'miner-0');
    const fn = await c.start({ POLICY: 'entries: [{name: iso, match: {rules: ["Read sensitive file untrusted"]}, action: isolate}, {name: shell, match: {rules: ["Terminal shell in container"]}, action: delete}]' });
    const forged = { ...real(c.ns, 'miner-0', pod.containerId), rule: 'Read sensitive file untrusted' };
    expect((await fn.post(forged)).body).toMatchObject({ outcome: 'isolated' });
    expect((await fn.post(real(c.ns, 'miner-0', pod.containerId))).body).toMatchObject({ outcome: 'deleted' });
    expect(await c.admin.contained(c.ns, 'miner-0')).toBe(true);
  });

  it("a late alert about a StatefulSet pod's previous incarnation does not settle the new pod of the same name", async () => {
    const old = await c.admin.pod(c.ns, 'db-0', { node: '' });
    await c.admin.core.deleteNamespacedPod({ name: 'db-0', namespace: c.ns, body: { gracePeriodSeconds: 0 } });
    const now = await c.admin.pod(c.ns, 'db-0', { node: '' });
    const fn = await c.start();
    expect((await fn.post(real(c.ns, 'db-0', old.containerId))).body).toMatchObject({ outcome: 'skipped', code: 'container-mismatch' });
    expect((await fn.post(real(c.ns, 'db-0', now.containerId))).body).toMatchObject({ outcome: 'deleted' });
    expect(await c.admin.contained(c.ns, 'db-0')).toBe(true);
  });
});

describeCluster('a compromised pod cannot drain the budget', () => {
  const c = withClusterFunction({ RECORD_EVENTS: 'false' }, { ownIdentity: 'fpd-budget-attack' });
  let other: string;
  beforeEach(async () => {
    other = await c.admin.namespace('prod');
  });

  it('deletions the API server refuses (an admission policy of the cluster) give their slot back', async () => {
    // The cluster's own policy: pods labelled protected=true may not be deleted, by anyone.
    const name = `protect-${c.ns}`;
    const admission = c.admin.kc.makeApiClient(k8s.AdmissionregistrationV1Api);
    await admission.createValidatingAdmissionPolicy({ body: { metadata: { name }, spec: { failurePolicy: 'Fail', matchConstraints: { resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['DELETE'], resources: ['pods'] }] }, validations: [{ expression: `request.namespace != '${c.ns}' || !has(oldObject.metadata.labels) || !('protected' in oldObject.metadata.labels)`, message: 'protected pod' }] } } });
    await admission.createValidatingAdmissionPolicyBinding({ body: { metadata: { name }, spec: { policyName: name, validationActions: ['Deny'] } } });
    try {
      const victims = [];
      for (let i = 0; i < 3; i++) victims.push(await c.admin.pod(c.ns, `p-${i}`, { labels: { protected: 'true' } }));
      const target = await c.admin.pod(other, 'miner-0');
      // The binding takes effect once the server's admission has loaded it: probed with a dry run.
      for (let k = 0; k < 100; k++) {
        const denied = await c.admin.core.deleteNamespacedPod({ name: 'p-0', namespace: c.ns, dryRun: 'All' }).then(() => false, () => true);
        if (denied) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const fn = await c.start({ ACTION_LIMIT: '3', NAMESPACE_ACTION_LIMIT: '100%' });
      for (let i = 0; i < 3; i++) {
        const r = await fn.post(real(c.ns, `p-${i}`, victims[i].containerId));
        expect([r.status, r.body.code]).toEqual([422, 'guardrail']);
      }
      await fn.fn.drain();
      expect((await fn.post(real(other, 'miner-0', target.containerId))).body).toMatchObject({ outcome: 'deleted' });
      for (let i = 0; i < 3; i++) expect(await c.admin.contained(c.ns, `p-${i}`)).toBe(false);
    } finally {
      await admission.deleteValidatingAdmissionPolicyBinding({ name });
      await admission.deleteValidatingAdmissionPolicy({ name });
    }
  });

  it("a tenant's proven alerts for its own pods take at most its namespace's share: another namespace's alert still acts", async () => {
    const own = [];
    for (let i = 0; i < 4; i++) own.push(await c.admin.pod(c.ns, `sibling-${i}`));
    const target = await c.admin.pod(other, 'web-0');
    const fn = await c.start({ ACTION_LIMIT: '4' });
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await fn.post(real(c.ns, `sibling-${i}`, own[i].containerId)));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 429, 429]);
    expect(answers[2].body.reason).toMatch(/for namespace .*: 2 of the 4 actions/);
    expect((await fn.post(real(other, 'web-0', target.containerId))).body).toMatchObject({ outcome: 'deleted' });
  });

  it('once the budget is full, a rate-limited alert costs at most a pod read and a LIST of the budget (the server counts)', async () => {
    const pods = [];
    for (let i = 0; i < 12; i++) pods.push(await c.admin.pod(c.ns, `p-${i}`));
    const fn = await c.start({ ACTION_LIMIT: '2', NAMESPACE_ACTION_LIMIT: '100%' });
    for (let i = 0; i < 2; i++) expect((await fn.post(real(c.ns, `p-${i}`, pods[i].containerId))).body.outcome).toBe('deleted');
    await fn.fn.drain();
    const leases = () => c.admin.apiRequests({ resource: 'leases' });
    const before = await leases();
    for (let i = 2; i < 12; i++) expect((await fn.post(real(c.ns, `p-${i}`, pods[i].containerId))).status).toBe(429);
    await fn.fn.drain();
    const used = (await leases()) - before;
    console.log(`10 rate-limited alerts with the budget full: ${used} Lease requests on the server (apiserver_request_total)`);
    // 10 rate-limited alerts: a full budget is remembered for a second, so at most one LIST each (and no writes).
    expect(used).toBeLessThanOrEqual(10);
    expect(await c.admin.apiRequests({ resource: 'leases', verb: /^(POST|PUT|DELETE|PATCH)$/ })).toBeGreaterThan(0);
  });
});

describeCluster('forged lookups cannot make the function hammer the API server', () => {
  const c = withClusterFunction({ RECORD_EVENTS: 'false' }, { ownIdentity: 'fpd-lookups' });

  it('200 forged lookups (null k8s fields, random container ids) make at most 10 pod LISTs, and a real alert among them acts', async () => {
    const node = `node-${randomId()}`;
    const pod = await c.admin.pod(c.ns, 'miner-0', { node });
    const victim = await c.admin.pod(c.ns, 'web-0', { node });
    const fn = await c.start();
    const lookup = (hostname: string, containerId: string) => ({ ...fixture('17-CONSTRUCTED-falco-0.41plus-default-no-k8s-fields.json'), hostname, output_fields: { 'container.id': containerId, 'k8s.ns.name': null, 'k8s.pod.name': null, 'proc.name': 'bash' } });
    const lists = () => c.admin.apiRequests({ verb: 'LIST', resource: 'pods', scope: 'cluster' });
    const before = await lists();
    const answers = [];
    for (let i = 0; i < 200; i++) {
      // Half on the attacker's own node, half on invented ones.
      answers.push(await fn.post(lookup(i % 2 ? node : `node-${randomId()}`, randomId())));
      if (i === 100) answers.push(await fn.post(lookup(node, pod.containerId.slice(0, 12))));
      if (i === 150) answers.push(await fn.post(real(c.ns, 'web-0', victim.containerId)));
    }
    const made = (await lists()) - before;
    console.log(`200 forged lookups and 2 real alerts: ${made} cluster-wide pod LISTs on the server (apiserver_request_total)`);
    expect(made).toBeLessThanOrEqual(10);
    expect(answers[101].body).toMatchObject({ outcome: 'deleted', pod: 'miner-0' });
    expect(answers[152].body).toMatchObject({ outcome: 'deleted', pod: 'web-0' });
    expect(answers.filter((a) => a.body.outcome === 'deleted')).toHaveLength(2);
    expect(answers.every((a) => a.status < 500)).toBe(true);
  }, 60_000);
});

describeCluster('a compromised pod cannot write Events where it likes', () => {
  const c = withClusterFunction({}, { ownIdentity: 'fpd-events' });

  it('unproven alerts about invented pods in kube-system and elsewhere write no Event; the real deletion still gets its FalcoResponseDeleted', async () => {
    const pod = await c.admin.pod(c.ns, 'miner-0');
    const fn = await c.start();
    const eventsIn = async (ns: string) => (await c.admin.events(ns)).filter((e) => e.source?.component === 'falco-pod-delete');
    const kubeSystemBefore = (await eventsIn('kube-system')).length;
    for (let i = 0; i < 100; i++) {
      const ns = i % 2 ? 'kube-system' : c.ns;
      await fn.post(shellIn(ns, `invented-${i}`, i % 3 ? { 'container.id': null } : { 'container.id': randomId() }));
    }
    expect((await fn.post(real(c.ns, 'miner-0', pod.containerId))).body).toMatchObject({ outcome: 'deleted' });
    await fn.fn.drain();
    expect((await eventsIn('kube-system')).length).toBe(kubeSystemBefore);
    expect((await eventsIn(c.ns)).map((e) => [e.reason, e.involvedObject.name])).toEqual([['FalcoResponseDeleted', 'miner-0']]);
  });
});

describeCluster('a compromised pod cannot fake an isolation', () => {
  const c = withClusterFunction({ RECORD_EVENTS: 'false', POLICY: 'entries: [{name: iso, match: {}, action: isolate}]' }, { ownIdentity: 'fpd-isolation' });

  it('a pre-created allow-all policy under the quarantine name makes isolate fail with a clear code, never "isolated"', async () => {
    const pod = await c.admin.pod(c.ns, 'miner-0');
    await c.admin.net.createNamespacedNetworkPolicy({ namespace: c.ns, body: { metadata: { name: 'falco-pod-delete-quarantine' }, spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'], ingress: [{}], egress: [{}] } } });
    const fn = await c.start();
    const r = await fn.post(real(c.ns, 'miner-0', pod.containerId));
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ outcome: 'failed', code: 'quarantine-policy-altered' });
    expect(String(r.body.reason)).toMatch(/is not the deny-all quarantine policy/);
    expect((await c.admin.readPod(c.ns, 'miner-0'))?.metadata?.labels?.['falco-pod-delete/quarantine']).toBeUndefined();
    // Control: once the squatted policy is gone, the function creates the deny-all one and isolates.
    await c.admin.net.deleteNamespacedNetworkPolicy({ name: 'falco-pod-delete-quarantine', namespace: c.ns });
    expect((await fn.post(real(c.ns, 'miner-0', pod.containerId))).body).toMatchObject({ outcome: 'isolated' });
    const np = await c.admin.net.readNamespacedNetworkPolicy({ name: 'falco-pod-delete-quarantine', namespace: c.ns });
    expect([np.spec?.podSelector, np.spec?.ingress ?? [], np.spec?.egress ?? []]).toEqual([{ matchLabels: { 'falco-pod-delete/quarantine': 'true' } }, [], []]);
  });

  it('an edited quarantine policy (an ingress rule added) is refused the same way', async () => {
    const pod = await c.admin.pod(c.ns, 'miner-0');
    await c.admin.net.createNamespacedNetworkPolicy({ namespace: c.ns, body: { metadata: { name: 'falco-pod-delete-quarantine' }, spec: { podSelector: { matchLabels: { 'falco-pod-delete/quarantine': 'true' } }, policyTypes: ['Ingress', 'Egress'], ingress: [{ _from: [{ ipBlock: { cidr: '0.0.0.0/0' } }] }] } } });
    const fn = await c.start();
    expect((await fn.post(real(c.ns, 'miner-0', pod.containerId))).body).toMatchObject({ outcome: 'failed', code: 'quarantine-policy-altered', reason: expect.stringMatching(/admits ingress traffic/) });
  });
});
