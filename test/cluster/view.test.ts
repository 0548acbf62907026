// The local view on the real API server: checks answered from it (no pod read, no node LIST), actions under
// uid and resourceVersion preconditions (a pod changed after verification is read again, and not deleted
// when it now opts out), a watch that breaks and resumes, a relist after the server's own 410 (on a control
// plane that compacts etcd every 2 s), a cache miss, and the ceiling above which the view turns itself off.
import { Deadline } from '../../falco-pod-delete/src/deadline.js';
import type { Kube } from '../../falco-pod-delete/src/kube/index.js';
import { PodView } from '../../falco-pod-delete/src/view.js';
import * as k8s from '@kubernetes/client-node';
import { Admin, type ClusterState, describeCluster, ownControlPlane, serviceAccountFiles, withClusterFunction, withRacingKube } from '../support/cluster.js';
import { fixture, type RunningFunction, startFunction, withFields } from '../support/harness.js';
import { ListWatchProbe } from '../support/list-watch-probe.js';

const shellIn = (namespace: string, pod: string, containerId: string) =>
  withFields(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'), { 'k8s.ns.name': namespace, 'k8s.pod.name': pod, 'container.id': containerId.slice(0, 12) });

async function until(ok: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The function's own count of its API calls (falco_pod_delete_kube_requests_total), by verb and resource. */
async function callsOf(fn: RunningFunction, verb: string, resource: string): Promise<number> {
  const metric = await fn.fn.metrics.kubeRequests.get();
  return metric.values.filter((v) => v.labels.verb === verb && v.labels.resource === resource).reduce((n, v) => n + v.value, 0);
}

const view = (fn: RunningFunction) => fn.fn.parts.view as PodView;

describeCluster('the local view of pods and namespaces', () => {
  const c = withClusterFunction({ RECORD_EVENTS: 'false' }, { ownIdentity: 'fpd-view' });

  it('once synced, verifies from the view: the alert makes no pod or namespace read, and deletes under uid and resourceVersion preconditions', async () => {
    const pod = await c.admin.pod(c.ns, 'web-0');
    const fn = await c.start();
    await until(() => view(fn).synced && view(fn).pod({ namespace: c.ns, name: 'web-0' })?.containerIds.length === 1);
    const rv = view(fn).pod({ namespace: c.ns, name: 'web-0' })?.resourceVersion;
    // Which way the state came, said in its log: this control plane's etcd lacks RequestWatchProgress, so the
    // server ends the streaming list with an ERROR at once, and the view lists in pages instead.
    const mode = view(fn).listMode;
    expect(fn.lines.map((l) => String(l.msg)).filter((m) => m.startsWith('view of pods'))).toContainEqual(mode === 'paged' ? expect.stringMatching(/streaming list \/api\/v1\/pods not served \(.*\): paged lists instead/) : expect.stringContaining('its state from a streaming list'));
    // ... and in its metrics, for an operator (and the bench) to read.
    const metrics = await fn.fn.metrics.registry.metrics();
    expect(metrics).toContain(`falco_pod_delete_view_list_mode{mode="${mode}"} 1`);
    expect(metrics).toContain(`falco_pod_delete_view_list_mode{mode="${mode === 'paged' ? 'streaming' : 'paged'}"} 0`);
    const r = await fn.post(shellIn(c.ns, 'web-0', pod.containerId));
    expect(r.body).toMatchObject({ outcome: 'deleted' });
    expect(await callsOf(fn, 'get', 'pods')).toBe(0);
    expect(await callsOf(fn, 'get', 'namespaces')).toBe(0);
    expect(await callsOf(fn, 'delete', 'pods')).toBe(1);
    const after = await c.admin.readPod(c.ns, 'web-0');
    expect(after?.metadata?.deletionTimestamp).toBeDefined();
    expect(Number(after?.metadata?.resourceVersion)).toBeGreaterThan(Number(rv));
  });

  it('says ready (/_/ready 200) only once the view has its state, within VIEW_READY_WAIT_MS', async () => {
    await c.admin.pod(c.ns, 'ready-0');
    const fn = await c.start({ VIEW_READY_WAIT_MS: '20000' });
    let first: { status: number; synced: boolean } | undefined;
    for (let i = 0; i < 4000 && first?.status !== 200; i++) {
      const status = (await fetch(`${fn.url}_/ready`)).status;
      first = { status, synced: view(fn).synced };
      if (status !== 200) await new Promise((r) => setTimeout(r, 5));
    }
    expect(first).toEqual({ status: 200, synced: true });
    expect((await fetch(`${fn.url}_/health`)).status).toBe(200);
  });

  it('with VIEW_LIST=paged, lists in pages without asking for a streaming list, and says so in its metrics', async () => {
    const pod = await c.admin.pod(c.ns, 'paged-0');
    const fn = await c.start({ VIEW_LIST: 'paged' });
    await until(() => view(fn).synced && view(fn).pod({ namespace: c.ns, name: 'paged-0' })?.containerIds.length === 1);
    expect(view(fn).listMode).toBe('paged');
    const messages = fn.lines.map((l) => String(l.msg)).filter((m) => m.startsWith('view of pods'));
    expect(messages).toContainEqual(expect.stringMatching(/^view of pods: watching \/api\/v1\/pods from resourceVersion \d+$/));
    expect(messages.filter((m) => m.includes('streaming'))).toEqual([]);
    expect(await fn.fn.metrics.registry.metrics()).toContain('falco_pod_delete_view_list_mode{mode="paged"} 1');
    expect((await fn.post(shellIn(c.ns, 'paged-0', pod.containerId))).body).toMatchObject({ outcome: 'deleted' });
    expect(await callsOf(fn, 'get', 'pods')).toBe(0);
  });

  it('finds the pod of a lookup (no k8s fields) in its container index: no LIST', async () => {
    const node = `node-${c.ns}`;
    const pod = await c.admin.pod(c.ns, 'miner-0', { node });
    const fn = await c.start();
    await until(() => view(fn).synced && (view(fn).podsWithContainer(node, pod.containerId.slice(0, 12))?.length ?? 0) === 1);
    const lookup = { ...fixture('17-CONSTRUCTED-falco-0.41plus-default-no-k8s-fields.json'), hostname: node, output_fields: { 'container.id': pod.containerId.slice(0, 12), 'k8s.ns.name': null, 'k8s.pod.name': null, 'proc.name': 'bash' } };
    expect((await fn.post(lookup)).body).toMatchObject({ outcome: 'deleted', pod: 'miner-0' });
    expect(await callsOf(fn, 'list', 'pods')).toBe(0);
  });

  it('a cache miss (no entry in the view) reads the pod, and acts', async () => {
    const pod = await c.admin.pod(c.ns, 'web-0');
    const fn = await c.start();
    await until(() => view(fn).synced && view(fn).pod({ namespace: c.ns, name: 'web-0' }) !== undefined);
    // As if the watch had not delivered it yet.
    view(fn).pods.remove(view(fn).pod({ namespace: c.ns, name: 'web-0' })!);
    expect((await fn.post(shellIn(c.ns, 'web-0', pod.containerId))).body).toMatchObject({ outcome: 'deleted' });
    expect(await callsOf(fn, 'get', 'pods')).toBe(1);
  });

  it('a refusal found on the view is confirmed by a read: a view that lags behind a removed opt-out label does not shield the pod', async () => {
    const pod = await c.admin.pod(c.ns, 'web-0');
    const fn = await c.start();
    await until(() => view(fn).synced && view(fn).pod({ namespace: c.ns, name: 'web-0' })?.containerIds.length === 1);
    const seen = view(fn).pod({ namespace: c.ns, name: 'web-0' })!;
    // The view says opted out (as a stale one would); the pod is not.
    view(fn).pods.upsert({ ...seen, labels: { ...seen.labels, 'falco-pod-delete/exempt': 'true' } });
    expect((await fn.post(shellIn(c.ns, 'web-0', pod.containerId))).body).toMatchObject({ outcome: 'deleted' });
  });

  it('a watch that breaks is resumed from where it was, and what changed meanwhile reaches the view', async () => {
    let probe: ListWatchProbe | undefined;
    const fn = await c.start({}, { listWatch: (real) => (probe = new ListWatchProbe(real)) });
    await until(() => view(fn).synced);
    const lists = probe!.counts.lists;
    probe!.dropWatch();
    const pod = await c.admin.pod(c.ns, 'late-0');
    await until(() => view(fn).pod({ namespace: c.ns, name: 'late-0' })?.containerIds[0] === pod.containerId);
    expect(probe!.counts.watches).toBeGreaterThanOrEqual(2);
    expect(probe!.counts.lists).toBe(lists);
    expect(probe!.counts.gone).toBe(0);
    expect((await fn.post(shellIn(c.ns, 'late-0', pod.containerId))).body).toMatchObject({ outcome: 'deleted' });
  });

  it('above VIEW_MAX_PODS the view turns itself off, says so, and every check reads the API', async () => {
    const pods = await Promise.all([0, 1, 2].map((i) => c.admin.pod(c.ns, `p-${i}`)));
    const fn = await c.start({ VIEW_MAX_PODS: '2' });
    await until(() => view(fn).podReflector.state === 'too-large');
    expect(fn.lines.some((l) => l.level === 'warn' && /more than 2 objects in \/api\/v1\/pods: the view is off/.test(String(l.msg)))).toBe(true);
    expect(view(fn).synced).toBe(false);
    expect((await fn.post(shellIn(c.ns, 'p-0', pods[0].containerId))).body).toMatchObject({ outcome: 'deleted' });
    expect(await callsOf(fn, 'get', 'pods')).toBe(1);
  });
});

describeCluster('the view after its resourceVersion was compacted away (a control plane of its own)', () => {
  // Pods served from etcd (no watch cache for them) and etcd compacted every 2 s: a watch resumed from a
  // version before the last compaction gets the server's own 410 Gone.
  let plane: { state: ClusterState; stop: () => Promise<void> };
  let admin: Admin;
  let fn: RunningFunction | undefined;
  beforeAll(async () => {
    plane = await ownControlPlane(['--watch-cache-sizes=pods#0', '--etcd-compaction-interval=2s']);
    admin = new Admin(plane.state);
  }, 120_000);
  afterAll(async () => {
    await fn?.stop();
    await plane?.stop();
  });

  it('after a 410 Gone on a resumed watch, lists again and serves the pods made meanwhile', async () => {
    const ns = await admin.namespace('apps');
    const prefix = serviceAccountFiles(plane.state);
    let probe: ListWatchProbe | undefined;
    fn = await startFunction({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(plane.state.port), SERVICEACCOUNT_PATH_PREFIX: prefix, HOSTNAME: 'falco-pod-delete-410', RECORD_EVENTS: 'false' }, { listWatch: (real) => (probe = new ListWatchProbe(real)) });
    await until(() => view(fn!).synced);
    // Its state may have come from a streaming list (which names no resourceVersion): a resumed watch names one.
    const watches = probe!.counts.watches;
    probe!.dropWatch();
    await until(() => probe!.counts.watches > watches && probe!.lastFrom !== undefined && probe!.lastFrom !== '');
    const from = probe!.lastFrom as string;
    const relists = probe!.counts.lists + probe!.counts.streams;
    // Writes, then two compactions past them: the version the view has is no longer in etcd.
    for (let i = 0; i < 3; i++) await admin.pod(ns, `before-${i}`);
    await new Promise((r) => setTimeout(r, 5000));
    probe!.resumeNextFrom(from);
    probe!.dropWatch();
    const pod = await admin.pod(ns, 'after-410');
    await until(() => probe!.counts.gone >= 1 && view(fn!).pod({ namespace: ns, name: 'after-410' })?.containerIds[0] === pod.containerId, 20_000);
    expect(probe!.counts.lists + probe!.counts.streams).toBeGreaterThan(relists);
    expect(fn.lines.some((l) => String(l.msg).includes('is too old (410): listing again'))).toBe(true);
    expect(view(fn).pod({ namespace: ns, name: 'before-2' })).toBeDefined();
    expect((await fn.post(shellIn(ns, 'after-410', pod.containerId))).body).toMatchObject({ outcome: 'deleted' });
  }, 60_000);
});

describeCluster('acting on what was verified', () => {
  const c = withClusterFunction({ RECORD_EVENTS: 'false' }, { ownIdentity: 'fpd-verified' });

  it('a pod that gains the opt-out label between verification and the DELETE is not deleted: 409 on the resourceVersion, read again, refused', async () => {
    const pod = await c.admin.pod(c.ns, 'web-0');
    const deletes: Array<Record<string, unknown>> = [];
    // Between the function's verification and its DELETE, someone labels the pod exempt.
    const fn = await withRacingKube({ COORDINATION: 'single' }, (real) => ({
      deletePod: async (...args: Parameters<Kube['deletePod']>) => {
        deletes.push({ ...args[1] });
        if (deletes.length === 1) {
          await c.admin.core.patchNamespacedPod({ name: 'web-0', namespace: c.ns, body: { metadata: { labels: { 'falco-pod-delete/exempt': 'true' } } } }, k8s.setHeaderOptions('Content-Type', 'application/merge-patch+json'));
        }
        return real.deletePod(...args);
      },
    }));
    try {
      expect(await fn.post(shellIn(c.ns, 'web-0', pod.containerId))).toMatchObject({ outcome: 'skipped', code: 'opt-out' });
      expect(await c.admin.contained(c.ns, 'web-0')).toBe(false);
      // One DELETE, under the version verified; the server refused it (409), and the read that followed found the label.
      expect(deletes).toEqual([{ uid: pod.uid, resourceVersion: expect.stringMatching(/^\d+$/) }].map((v) => expect.objectContaining(v)));
    } finally {
      await fn.stop();
    }
  });

  it('isolate under the preconditions: a second replica with the same stale version is refused by the server, and the pod is labelled once', async () => {
    const pod = await c.admin.pod(c.ns, 'web-0');
    const policy = 'entries: [{name: iso, match: {rules: ["Terminal shell*"]}, action: isolate}]';
    const a = await c.start({ POLICY: policy, COORDINATION: 'single', POD_VIEW: 'off' });
    const before = await c.admin.readPod(c.ns, 'web-0');
    expect((await a.post(shellIn(c.ns, 'web-0', pod.containerId))).body).toMatchObject({ outcome: 'isolated' });
    const kube = a.fn.parts.kube as Kube;
    // The same patch under the version read before the isolation: the server's test of resourceVersion fails.
    const again = await kube.isolatePod({ namespace: c.ns, name: 'web-0' }, { uid: pod.uid, resourceVersion: before!.metadata!.resourceVersion!, labels: { app: 'web-0' } }, { label: 'falco-pod-delete/quarantine', detach: true, annotation: 'falco-pod-delete/isolation', record: '{}' }, false, new Deadline(5000));
    expect(again).toBe('changed');
    expect((await c.admin.readPod(c.ns, 'web-0'))?.metadata?.labels?.['falco-pod-delete/quarantine']).toBe('true');
  });
});
