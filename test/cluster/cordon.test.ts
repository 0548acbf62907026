// cordon on the real API server, with rbac.yaml's ServiceAccount (its own copy: budget Leases no other suite
// spends) and Node objects made by the test (no kubelet runs: their Ready condition is written by hand). Every
// guard is met as a user would meet it: the answer's `node` part, the Node as the server keeps it, the Event.
import * as k8s from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { Admin, type Identity, describeCluster, inClusterEnv, rbacCopy } from '../support/cluster.js';
import { type RunningFunction, fixture, startFunction, withFields } from '../support/harness.js';

const shellIn = (namespace: string, pod: string, containerId: string, extra: Record<string, unknown> = {}) =>
  withFields(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'), { 'k8s.ns.name': namespace, 'k8s.pod.name': pod, 'container.id': containerId.slice(0, 12), ...extra });
const ISOLATE_AND_CORDON = 'entries: [{name: escape, match: {rules: ["Terminal shell*"]}, actions: [isolate, cordon]}]';
const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

describeCluster('cordon on a real API server', () => {
  let admin: Admin;
  let identity: Identity;
  let ns: string;
  const made: string[] = [];
  let fns: RunningFunction[] = [];

  beforeAll(async () => {
    admin = new Admin();
    identity = await rbacCopy(admin, 'fpd-cordon');
  });
  beforeEach(async () => {
    ns = await admin.namespace('apps');
    await admin.leases.deleteCollectionNamespacedLease({ namespace: identity.namespace });
  });
  afterEach(async () => {
    for (const f of fns) {
      await f.fn.drain();
      await f.stop();
    }
    fns = [];
  });
  afterAll(async () => {
    // Nodes are the cluster's: the next suite must not count these.
    for (const name of made) await admin.core.deleteNode({ name }).catch(() => undefined);
  });

  /** A Node as a kubelet would leave it: Ready, schedulable, with the labels given. */
  async function node(prefix: string, labels: Record<string, string> = {}, ready = true): Promise<string> {
    const name = `${prefix}-${randomBytes(3).toString('hex')}`;
    await admin.core.createNode({ body: { metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } } } });
    made.push(name);
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    await admin.core.patchNodeStatus({ name, body: { status: { conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', reason: 'KubeletReady', message: 'test', lastHeartbeatTime: now, lastTransitionTime: now }] } } }, merge);
    return name;
  }
  const readNode = (name: string) => admin.core.readNode({ name });
  /** Schedulable Ready worker nodes now, but `except`: what the floor counts. */
  async function schedulableBut(except: string): Promise<number> {
    const nodes = (await admin.core.listNode()).items;
    return nodes.filter((n) => n.metadata?.name !== except && !n.spec?.unschedulable && !Object.keys(n.metadata?.labels ?? {}).some((l) => l.startsWith('node-role.kubernetes.io/control-plane') || l === 'node-role.kubernetes.io/master')
      && (n.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')).length;
  }
  const start = async (extra: Record<string, string> = {}) => {
    const f = await startFunction(inClusterEnv({ POLICY: ISOLATE_AND_CORDON, MIN_SCHEDULABLE_NODES: '0', ...extra }, identity.token(), identity.namespace).env);
    fns.push(f);
    return f;
  };

  it("cordons the verified pod's node after isolating the pod: unschedulable, labelled, an Event on the Node, nothing evicted", async () => {
    const worker = await node('worker');
    const bystander = await admin.pod(ns, 'bystander', { node: worker });
    const pod = await admin.pod(ns, 'web-0', { node: worker });
    const taints = (await readNode(worker)).spec?.taints;
    const fn = await start();
    const r = await fn.post(shellIn(ns, 'web-0', pod.containerId));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ outcome: 'isolated', node: { name: worker, outcome: 'cordoned', code: 'cordon' } });
    const after = await readNode(worker);
    expect(after.spec?.unschedulable).toBe(true);
    expect(after.metadata?.labels?.['falco-pod-delete/cordoned']).toMatch(/^\d{8}T\d{6}Z$/);
    expect(after.spec?.taints).toEqual(taints); // the server's own admission taints a new node not-ready; cordon adds none
    expect(await admin.contained(ns, 'bystander')).toBe(false);
    expect(bystander.uid).toBeDefined();
    expect(fn.audits()[0]).toMatchObject({ outcome: 'isolated', node: { name: worker, outcome: 'cordoned' } });
    const metric = await fn.fn.metrics.nodeActions.get();
    expect(metric.values.map((v) => [v.labels.outcome, v.labels.code, v.value])).toEqual([['cordoned', 'cordon', 1]]);
    await fn.fn.drain();
    const events = (await admin.core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.name=${worker}` })).items;
    expect(events.map((e) => [e.reason, e.involvedObject.kind])).toEqual([['FalcoResponseCordoned', 'Node']]);
    expect(events[0].message).toContain('policy entry "escape"');
  });

  it('never cordons a control-plane node, nor one CRITICAL_NODES names; the pod is isolated all the same', async () => {
    const control = await node('control', { 'node-role.kubernetes.io/control-plane': '' });
    const infra = await node('infra');
    const a = await admin.pod(ns, 'on-control', { node: control });
    const b = await admin.pod(ns, 'on-infra', { node: infra });
    const fn = await start({ CRITICAL_NODES: 'gpu-*, infra-*' });
    const ra = await fn.post(shellIn(ns, 'on-control', a.containerId));
    expect(ra.body).toMatchObject({ outcome: 'isolated', node: { name: control, outcome: 'skipped', code: 'control-plane-node' } });
    const rb = await fn.post(shellIn(ns, 'on-infra', b.containerId));
    expect(rb.body).toMatchObject({ outcome: 'isolated', node: { name: infra, outcome: 'skipped', code: 'critical-node', reason: expect.stringContaining('infra-*') } });
    for (const n of [control, infra]) expect((await readNode(n)).spec?.unschedulable).toBeUndefined();
  });

  it('keeps MIN_SCHEDULABLE_NODES schedulable Ready worker nodes: at the floor it leaves the node, one below it cordons', async () => {
    const worker = await node('worker');
    await node('spare');
    await node('not-ready', {}, false);
    const pod = await admin.pod(ns, 'web-0', { node: worker });
    const others = await schedulableBut(worker);
    const fn = await start({ MIN_SCHEDULABLE_NODES: String(others + 1) });
    const r = await fn.post(shellIn(ns, 'web-0', pod.containerId));
    expect(r.body).toMatchObject({ outcome: 'isolated', node: { name: worker, outcome: 'skipped', code: 'node-floor' } });
    expect((r.body.node as { reason: string }).reason).toContain(`would leave ${others} schedulable Ready worker node`);
    expect((await readNode(worker)).spec?.unschedulable).toBeUndefined();
    const second = await admin.namespace('apps');
    const pod2 = await admin.pod(second, 'web-0', { node: worker });
    const fn2 = await start({ MIN_SCHEDULABLE_NODES: String(others) });
    expect((await fn2.post(shellIn(second, 'web-0', pod2.containerId))).body).toMatchObject({ node: { name: worker, outcome: 'cordoned' } });
    expect((await readNode(worker)).spec?.unschedulable).toBe(true);
  });

  it('NODE_ACTION_LIMIT=1 across two replicas: alerts on two nodes at once cordon exactly one', async () => {
    const nodes = [await node('worker'), await node('worker')];
    const pods = await Promise.all(nodes.map((n, i) => admin.pod(ns, `web-${i}`, { node: n })));
    const [a, b] = [await start(), await start()];
    const answers = await Promise.all([a.post(shellIn(ns, 'web-0', pods[0].containerId)), b.post(shellIn(ns, 'web-1', pods[1].containerId))]);
    expect(answers.map((r) => r.body.outcome)).toEqual(['isolated', 'isolated']);
    const parts = answers.map((r) => r.body.node as { name: string; outcome: string; code: string; reason: string });
    expect(parts.map((p) => p.code).sort()).toEqual(['cordon', 'node-rate-limited']);
    expect(parts.find((p) => p.code === 'node-rate-limited')?.reason).toContain('NODE_ACTION_LIMIT=1 per 60 s across all replicas');
    const cordoned = await Promise.all(nodes.map(async (n) => (await readNode(n)).spec?.unschedulable === true));
    expect(cordoned.filter(Boolean)).toHaveLength(1);
    // The node budget is a Lease of its own beside the pod budget.
    const lease = await admin.leases.readNamespacedLease({ name: 'fpd-node-budget', namespace: identity.namespace });
    expect(Object.values(JSON.parse(lease.metadata!.annotations!['falco-pod-delete/grants']) as Record<string, { used: Record<string, number[]> }>).flatMap((g) => Object.values(g.used).flat())).toHaveLength(1);
  });

  it("a forged alert cannot choose the node: the alert's hostname is ignored, and an unproven alert reaches no node", async () => {
    const worker = await node('worker');
    const target = await node('target');
    const pod = await admin.pod(ns, 'web-0', { node: worker });
    const fn = await start();
    // The wrong container id: the proof fails, nothing is done to the pod nor to any node.
    const forged = await fn.post(shellIn(ns, 'web-0', 'ab'.repeat(32), { hostname: target }));
    expect(forged.body).toMatchObject({ outcome: 'skipped', code: 'container-mismatch' });
    expect(forged.body.node).toBeUndefined();
    // A proven alert claiming another node: the pod's own node is cordoned, never the claimed one.
    const r = await fn.post({ ...shellIn(ns, 'web-0', pod.containerId), hostname: target });
    expect(r.body).toMatchObject({ outcome: 'isolated', node: { name: worker, outcome: 'cordoned' } });
    expect((await readNode(target)).spec?.unschedulable).toBeUndefined();
    expect((await readNode(worker)).spec?.unschedulable).toBe(true);
  });

  it('leaves a node cordoned by someone else as it is, and says so; DRY_RUN cordons nothing', async () => {
    const worker = await node('worker');
    await admin.core.patchNode({ name: worker, body: { spec: { unschedulable: true } } }, merge);
    const pod = await admin.pod(ns, 'web-0', { node: worker });
    const fn = await start();
    expect((await fn.post(shellIn(ns, 'web-0', pod.containerId))).body).toMatchObject({ node: { outcome: 'skipped', code: 'already-cordoned', reason: expect.stringContaining('by someone else') } });
    expect((await readNode(worker)).metadata?.labels?.['falco-pod-delete/cordoned']).toBeUndefined();
    const fresh = await node('worker');
    const second = await admin.namespace('apps');
    const pod2 = await admin.pod(second, 'web-0', { node: fresh });
    const dry = await start({ DRY_RUN: 'true' });
    expect((await dry.post(shellIn(second, 'web-0', pod2.containerId))).body).toMatchObject({ outcome: 'dry-run', node: { name: fresh, outcome: 'skipped', code: 'dry-run' } });
    expect((await readNode(fresh)).spec?.unschedulable).toBeUndefined();
  });
});
