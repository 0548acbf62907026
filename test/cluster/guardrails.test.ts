// guardrails.yaml on the real API server: with the function's own checks switched off or bypassed (its token
// used directly), the server itself refuses, and everything the function legitimately does still passes.
import * as k8s from '@kubernetes/client-node';
import { Admin, describeCluster, inClusterEnv, state } from '../support/cluster.js';
import { fixture, type RunningFunction, startFunction, withFields } from '../support/harness.js';

const shellIn = (namespace: string, pod: string, containerId: string) =>
  withFields(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'), { 'k8s.ns.name': namespace, 'k8s.pod.name': pod, 'container.id': containerId.slice(0, 12) });
const POLICY = 'falco-pod-delete-guardrails';

describeCluster('the API server\'s guardrails (guardrails.yaml)', () => {
  let admin: Admin;
  let asFunction: { core: k8s.CoreV1Api; net: k8s.NetworkingV1Api };
  let fn: RunningFunction | undefined;

  beforeAll(async () => {
    admin = new Admin();
    admin.kubectl(['apply', '-f', 'guardrails.yaml']);
    for (const namespace of ['kube-system', 'openfaas-fn']) await admin.core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'default' } } }).catch(() => undefined);
    const kc = new k8s.KubeConfig();
    kc.loadFromClusterAndUser({ name: 'c', server: state().server, caFile: state().caPath, skipTLSVerify: false }, { name: 'u', token: state().token });
    asFunction = { core: kc.makeApiClient(k8s.CoreV1Api), net: kc.makeApiClient(k8s.NetworkingV1Api) };
    // Policies take effect once the server's admission has loaded them.
    const probe = `probe-${Date.now()}`;
    await admin.pod('kube-system', probe);
    for (let i = 0; i < 100; i++) {
      const denied = await asFunction.core.deleteNamespacedPod({ name: probe, namespace: 'kube-system', dryRun: 'All' }).then(() => false, (e: unknown) => /ValidatingAdmissionPolicy/.test(String((e as k8s.ApiException<string>).body)));
      if (denied) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 60_000);
  afterAll(async () => {
    admin.kubectl(['delete', '-f', 'guardrails.yaml', '--wait=true']);
    // The server's admission drops the policy a moment after its objects are gone, and meanwhile a binding
    // whose params are gone denies everything it matches: wait until the function's token passes again, so
    // that the next suite does not meet a guardrail that is no longer there.
    const probe = `probe-after-${Date.now()}`;
    await admin.pod('kube-system', probe);
    for (let i = 0; i < 200; i++) {
      const denied = await asFunction.core.deleteNamespacedPod({ name: probe, namespace: 'kube-system', dryRun: 'All' }).then(() => false, (e: unknown) => /ValidatingAdmissionPolicy/.test(String((e as k8s.ApiException<string>).body)));
      if (!denied) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await admin.core.deleteNamespacedPod({ name: probe, namespace: 'kube-system', body: { gracePeriodSeconds: 0 } }).catch(() => undefined);
  }, 60_000);
  // Each test starts with no budget spent in the shared Lease (other suites acting as the ServiceAccount spend it).
  beforeEach(() => admin.leases.deleteCollectionNamespacedLease({ namespace: 'openfaas-fn' }));
  afterEach(async () => {
    await fn?.fn.drain();
    await fn?.stop();
    fn = undefined;
  });

  const refusal = async (call: () => Promise<unknown>) => {
    try {
      await call();
      return 'allowed';
    } catch (e) {
      const body = String((e as k8s.ApiException<string>).body);
      return /ValidatingAdmissionPolicy .falco-pod-delete-guardrails./.test(body) ? /guardrail ([a-z-]+)/.exec(body)?.[1] ?? `unnamed: ${body.slice(0, 400)}` : `other: ${body.slice(0, 200)}`;
    }
  };

  it('refuses the deletion of a kube-system pod when CRITICAL_NAMESPACES is emptied, and the function says the server refused it', async () => {
    const victim = `coredns-${Date.now()}`;
    const pod = await admin.pod('kube-system', victim);
    fn = await startFunction(inClusterEnv({ CRITICAL_NAMESPACES: '' }).env);
    const r = await fn.post(shellIn('kube-system', victim, pod.containerId));
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({ outcome: 'failed', code: 'guardrail', error: { code: 'guardrail', policy: POLICY } });
    expect(String(r.body.reason)).toMatch(/the API server's guardrail falco-pod-delete-guardrails refused delete pods in namespace kube-system: .*critical-namespace/);
    expect(fn.audits()).toEqual([expect.objectContaining({ code: 'guardrail', status: 422 })]);
    expect(await admin.contained('kube-system', victim)).toBe(false);
    await fn.fn.drain();
    expect((await admin.events('kube-system')).filter((e) => e.involvedObject.name === victim).map((e) => e.reason)).toEqual(['FalcoResponseRefused']);
  });

  it('refuses each guard to the function\'s token used directly', async () => {
    const apps = await admin.namespace('apps');
    const exemptNs = await admin.namespace('exempt', { 'falco-pod-delete/exempt': 'true' });
    await admin.pod(apps, 'exempt-pod', { labels: { 'falco-pod-delete/exempt': 'true' } });
    await admin.pod(apps, 'plain');
    await admin.pod(exemptNs, 'inside');
    await admin.pod('openfaas-fn', `own-${apps}`);
    const del = (namespace: string, name: string) => () => asFunction.core.deleteNamespacedPod({ name, namespace });
    expect(await refusal(del('openfaas-fn', `own-${apps}`))).toBe('critical-namespace');
    // The own-namespace guard holds even where the critical list forgets the function's namespace.
    const params = admin.kubectl(['get', 'configmap', '-n', 'openfaas-fn', 'falco-pod-delete-guardrails', '-o', 'jsonpath={.data.criticalNamespaces}']);
    admin.kubectl(['patch', 'configmap', '-n', 'openfaas-fn', 'falco-pod-delete-guardrails', '--type=merge', '-p', JSON.stringify({ data: { criticalNamespaces: 'kube-system' } })]);
    try {
      let seen: string | undefined;
      for (let i = 0; i < 50 && seen !== 'own-namespace'; i++) {
        seen = await refusal(() => asFunction.core.deleteNamespacedPod({ name: `own-${apps}`, namespace: 'openfaas-fn', dryRun: 'All' }));
        if (seen !== 'own-namespace') await new Promise((r) => setTimeout(r, 100));
      }
      expect(seen).toBe('own-namespace');
    } finally {
      admin.kubectl(['patch', 'configmap', '-n', 'openfaas-fn', 'falco-pod-delete-guardrails', '--type=merge', '-p', JSON.stringify({ data: { criticalNamespaces: params } })]);
    }
    expect(await refusal(del(apps, 'exempt-pod'))).toBe('opt-out');
    expect(await refusal(del(exemptNs, 'inside'))).toBe('opt-out');
    const patch = (body: unknown) => () => asFunction.core.patchNamespacedPod({ name: 'plain', namespace: apps, body }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch));
    expect(await refusal(patch([{ op: 'replace', path: '/spec/containers/0/image', value: 'evil:latest' }]))).toBe('quarantine-only');
    expect(await refusal(patch([{ op: 'add', path: '/metadata/labels/app', value: 'other' }]))).toBe('quarantine-only');
    expect(await refusal(() => asFunction.net.createNamespacedNetworkPolicy({ namespace: apps, body: { metadata: { name: 'allow-all' }, spec: { podSelector: {}, ingress: [{}] } } }))).toBe('quarantine-only');
    for (const [ns, name] of [['openfaas-fn', `own-${apps}`], [apps, 'exempt-pod'], [exemptNs, 'inside'], [apps, 'plain']]) expect(await admin.contained(ns, name)).toBe(false);
    expect((await admin.readPod(apps, 'plain'))?.spec?.containers[0].image).toBe('docker.io/library/alpine:3.20');
  });

  it("refuses every pod change but setting the quarantine label to true, each beside a control the server allows", async () => {
    const apps = await admin.namespace('apps');
    await admin.pod(apps, 'plain');
    await admin.pod(apps, 'isolated', { labels: { app: 'isolated', 'falco-pod-delete/quarantine': 'true' } });
    const patch = (pod: string, body: unknown) => () => asFunction.core.patchNamespacedPod({ name: pod, namespace: apps, body, dryRun: 'All' }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch));
    // Control: what the isolate action sends passes.
    expect(await refusal(patch('plain', [{ op: 'add', path: '/metadata/labels/falco-pod-delete~1quarantine', value: 'true' }]))).toBe('allowed');
    expect(await refusal(patch('plain', [{ op: 'add', path: '/metadata/finalizers', value: ['example.com/keep'] }]))).toBe('quarantine-only');
    expect(await refusal(patch('plain', [{ op: 'add', path: '/metadata/ownerReferences', value: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'gone', uid: '00000000-0000-4000-8000-000000000000' }] }]))).toBe('quarantine-only');
    expect(await refusal(patch('plain', [{ op: 'add', path: '/metadata/annotations', value: { 'example.com/x': 'y' } }]))).toBe('quarantine-only');
    expect(await refusal(patch('plain', [{ op: 'add', path: '/metadata/labels/falco-pod-delete~1quarantine', value: 'false' }]))).toBe('quarantine-only');
    expect(await refusal(patch('isolated', [{ op: 'replace', path: '/metadata/labels/falco-pod-delete~1quarantine', value: 'false' }]))).toBe('quarantine-only');
    expect(await refusal(patch('isolated', [{ op: 'remove', path: '/metadata/labels/falco-pod-delete~1quarantine' }]))).toBe('quarantine-only');
    expect((await admin.readPod(apps, 'isolated'))?.metadata?.labels?.['falco-pod-delete/quarantine']).toBe('true');
  });

  it('lets the token replace a pod\'s labels with exactly the quarantine label and add the record annotation, and nothing more', async () => {
    const apps = await admin.namespace('apps');
    await admin.pod(apps, 'plain', { labels: { app: 'web', tier: 'front' } });
    await admin.core.patchNamespacedPod({ name: 'plain', namespace: apps, body: { metadata: { annotations: { 'example.com/owner': 'team-a' } } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    await admin.pod(apps, 'isolated', { labels: { 'falco-pod-delete/quarantine': 'true' } });
    const patch = (pod: string, body: unknown) => () => asFunction.core.patchNamespacedPod({ name: pod, namespace: apps, body, dryRun: 'All' }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch));
    const record = { op: 'add', path: '/metadata/annotations/falco-pod-delete~1isolation', value: '{"labels":{"app":"web","tier":"front"}}' };
    const quarantineOnly = { op: 'add', path: '/metadata/labels', value: { 'falco-pod-delete/quarantine': 'true' } };
    // Controls: what isolate sends for a detached pod, and for a StatefulSet's pod (the label added), pass.
    expect(await refusal(patch('plain', [quarantineOnly, record]))).toBe('allowed');
    expect(await refusal(patch('plain', [{ op: 'add', path: '/metadata/labels/falco-pod-delete~1quarantine', value: 'true' }, record]))).toBe('allowed');
    // Other labels instead (into another Service), none, the quarantine label with another, or false.
    expect(await refusal(patch('plain', [{ op: 'add', path: '/metadata/labels', value: { app: 'payments' } }]))).toBe('quarantine-only');
    expect(await refusal(patch('plain', [{ op: 'add', path: '/metadata/labels', value: {} }]))).toBe('quarantine-only');
    expect(await refusal(patch('plain', [{ op: 'add', path: '/metadata/labels', value: { 'falco-pod-delete/quarantine': 'true', app: 'payments' } }]))).toBe('quarantine-only');
    expect(await refusal(patch('plain', [{ op: 'add', path: '/metadata/labels', value: { 'falco-pod-delete/quarantine': 'false' } }]))).toBe('quarantine-only');
    // Another annotation beside the record, one changed, one removed.
    expect(await refusal(patch('plain', [quarantineOnly, record, { op: 'add', path: '/metadata/annotations/example.com~1x', value: 'y' }]))).toBe('quarantine-only');
    expect(await refusal(patch('plain', [quarantineOnly, record, { op: 'replace', path: '/metadata/annotations/example.com~1owner', value: 'team-b' }]))).toBe('quarantine-only');
    expect(await refusal(patch('plain', [quarantineOnly, { op: 'add', path: '/metadata/annotations', value: { 'falco-pod-delete/isolation': '{}' } }]))).toBe('quarantine-only');
    // The record of a pod already isolated is not rewritten (it is what release puts back); its labels are not given back.
    expect(await refusal(patch('isolated', [{ op: 'add', path: '/metadata/annotations', value: { 'falco-pod-delete/isolation': '{"labels":{"app":"payments"}}' } }]))).toBe('quarantine-only');
    expect(await refusal(patch('isolated', [{ op: 'add', path: '/metadata/labels', value: { app: 'isolated' } }]))).toBe('quarantine-only');
    expect((await admin.readPod(apps, 'plain'))?.metadata?.labels).toEqual({ app: 'web', tier: 'front' });
  });

  it('lets the token only make a node unschedulable and add its cordon label: never uncordon, never taints or other fields', async () => {
    const name = `worker-guard-${Date.now()}`;
    await admin.core.createNode({ body: { metadata: { name, labels: { 'kubernetes.io/hostname': name }, annotations: { 'example.com/rack': 'r1' } } } });
    const cordoned = `worker-guard-cordoned-${Date.now()}`;
    await admin.core.createNode({ body: { metadata: { name: cordoned, labels: { 'falco-pod-delete/cordoned': '20261207T013152Z' } }, spec: { unschedulable: true } } });
    const asFn = (() => {
      const kc = new k8s.KubeConfig();
      kc.loadFromClusterAndUser({ name: 'c', server: state().server, caFile: state().caPath, skipTLSVerify: false }, { name: 'u', token: state().token });
      return kc.makeApiClient(k8s.CoreV1Api);
    })();
    const patch = (node: string, body: unknown) => () => asFn.patchNode({ name: node, body, dryRun: 'All' }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch));
    const cordon = [{ op: 'add', path: '/spec/unschedulable', value: true }, { op: 'add', path: '/metadata/labels/falco-pod-delete~1cordoned', value: '20261207T013152Z' }];
    try {
      // Control: what cordon sends passes.
      expect(await refusal(patch(name, cordon))).toBe('allowed');
      // Uncordon, even a node the function cordoned; its label removed; a taint; another label; an annotation.
      expect(await refusal(patch(cordoned, [{ op: 'replace', path: '/spec/unschedulable', value: false }]))).toBe('cordon-only');
      expect(await refusal(patch(cordoned, [{ op: 'remove', path: '/metadata/labels/falco-pod-delete~1cordoned' }]))).toBe('cordon-only');
      expect(await refusal(patch(name, [...cordon, { op: 'add', path: '/spec/taints', value: [{ key: 'example.com/evil', effect: 'NoExecute' }] }]))).toBe('cordon-only');
      expect(await refusal(patch(name, [...cordon, { op: 'add', path: '/metadata/labels/node-role.kubernetes.io~1control-plane', value: '' }]))).toBe('cordon-only');
      expect(await refusal(patch(name, [...cordon, { op: 'replace', path: '/metadata/annotations/example.com~1rack', value: 'r2' }]))).toBe('cordon-only');
      expect(await refusal(patch(name, [{ op: 'add', path: '/metadata/labels/falco-pod-delete~1cordoned', value: 'x' }]))).toBe('cordon-only');
      expect((await admin.core.readNode({ name })).spec?.unschedulable).toBeUndefined();
    } finally {
      for (const n of [name, cordoned]) await admin.core.deleteNode({ name: n }).catch(() => undefined);
    }
  });

  it('refuses a quarantine NetworkPolicy that is not exactly deny-all, and allows the deny-all one', async () => {
    const apps = await admin.namespace('apps');
    const create = (spec: k8s.V1NetworkPolicySpec) => () => asFunction.net.createNamespacedNetworkPolicy({ namespace: apps, dryRun: 'All', body: { metadata: { name: 'falco-pod-delete-quarantine' }, spec } });
    const label = { matchLabels: { 'falco-pod-delete/quarantine': 'true' } };
    expect(await refusal(create({ podSelector: label, policyTypes: ['Ingress', 'Egress'] }))).toBe('allowed');
    expect(await refusal(create({ podSelector: label, policyTypes: ['Ingress', 'Egress'], ingress: [{}], egress: [{}] }))).toBe('quarantine-deny-all');
    expect(await refusal(create({ podSelector: label, policyTypes: ['Ingress'] }))).toBe('quarantine-deny-all');
    expect(await refusal(create({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] }))).toBe('quarantine-deny-all');
    expect(await refusal(create({ podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Ingress', 'Egress'] }))).toBe('quarantine-deny-all');
  });

  it('trims the lists: a critical namespace written after a comma and a space is still guarded', async () => {
    const params = admin.kubectl(['get', 'configmap', '-n', 'openfaas-fn', 'falco-pod-delete-guardrails', '-o', 'jsonpath={.data.criticalNamespaces}']);
    const spaced = await admin.namespace('spaced');
    await admin.pod(spaced, 'victim');
    // Control: before the edit, the namespace is not critical and a dry-run deletion passes.
    expect(await refusal(() => asFunction.core.deleteNamespacedPod({ name: 'victim', namespace: spaced, dryRun: 'All' }))).toBe('allowed');
    admin.kubectl(['patch', 'configmap', '-n', 'openfaas-fn', 'falco-pod-delete-guardrails', '--type=merge', '-p', JSON.stringify({ data: { criticalNamespaces: `kube-system, ${spaced} ,openfaas-fn` } })]);
    try {
      let seen: string | undefined;
      for (let i = 0; i < 50 && seen !== 'critical-namespace'; i++) {
        seen = await refusal(() => asFunction.core.deleteNamespacedPod({ name: 'victim', namespace: spaced, dryRun: 'All' }));
        if (seen !== 'critical-namespace') await new Promise((r) => setTimeout(r, 100));
      }
      expect(seen).toBe('critical-namespace');
    } finally {
      admin.kubectl(['patch', 'configmap', '-n', 'openfaas-fn', 'falco-pod-delete-guardrails', '--type=merge', '-p', JSON.stringify({ data: { criticalNamespaces: params } })]);
    }
  });

  it('lets everything the function legitimately does pass: delete, isolate, dry-run, Events, Leases', async () => {
    const apps = await admin.namespace('apps');
    const a = await admin.pod(apps, 'to-delete');
    const b = await admin.pod(apps, 'to-isolate');
    const c = await admin.pod(apps, 'to-dry-run');
    fn = await startFunction(inClusterEnv().env);
    const deleted = await fn.post(shellIn(apps, 'to-delete', a.containerId));
    expect([deleted.body.outcome, deleted.body.reason]).toEqual(['deleted', 'deleted by policy entry "terminal-shell"']);
    await fn.fn.drain();
    await fn.stop();
    fn = await startFunction(inClusterEnv({ POLICY: 'entries: [{name: iso, match: {}, action: isolate}]' }).env);
    expect((await fn.post(shellIn(apps, 'to-isolate', b.containerId))).body).toMatchObject({ outcome: 'isolated' });
    await fn.fn.drain();
    await fn.stop();
    fn = await startFunction(inClusterEnv({ DRY_RUN: 'true' }).env);
    expect((await fn.post(shellIn(apps, 'to-dry-run', c.containerId))).body).toMatchObject({ outcome: 'dry-run' });
    await fn.fn.drain();
    expect(await admin.contained(apps, 'to-delete')).toBe(true);
    expect((await admin.readPod(apps, 'to-isolate'))?.metadata?.labels?.['falco-pod-delete/quarantine']).toBe('true');
    expect(await admin.contained(apps, 'to-dry-run')).toBe(false);
    expect((await admin.events(apps)).map((e) => e.reason).sort()).toEqual(['FalcoResponseDeleted', 'FalcoResponseDryRun', 'FalcoResponseIsolated']);
  });

  it('lets the function isolate (detached) and cordon the pod\'s node under the guardrails', async () => {
    const apps = await admin.namespace('apps');
    const node = `worker-legit-${Date.now()}`;
    await admin.core.createNode({ body: { metadata: { name: node } } });
    try {
      const p = await admin.pod(apps, 'escaped', { node, labels: { app: 'web', tier: 'front' } });
      fn = await startFunction(inClusterEnv({ POLICY: 'entries: [{name: escape, match: {}, actions: [isolate, cordon]}]', MIN_SCHEDULABLE_NODES: '0' }).env);
      const r = await fn.post(shellIn(apps, 'escaped', p.containerId));
      expect(r.body).toMatchObject({ outcome: 'isolated', isolation: { detached: true }, node: { name: node, outcome: 'cordoned' } });
      expect((await admin.readPod(apps, 'escaped'))?.metadata?.labels).toEqual({ 'falco-pod-delete/quarantine': 'true' });
      expect((await admin.core.readNode({ name: node })).spec?.unschedulable).toBe(true);
    } finally {
      await admin.core.deleteNode({ name: node }).catch(() => undefined);
    }
  });
});
