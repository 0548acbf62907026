// The way back, as an operator meets it: the falco-pod-delete command (bin/) run as a process with the admin
// kubeconfig against the real API server, after the function (rbac.yaml's ServiceAccount) isolated a pod or
// cordoned a node. Every command prints one JSON line, writes an Event, and exits 0, 1 or 2.
import * as k8s from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Admin, describeCluster, inClusterEnv, state, workload } from '../support/cluster.js';
import { type RunningFunction, fixture, startFunction, withFields } from '../support/harness.js';

const shellIn = (namespace: string, pod: string, containerId: string) =>
  withFields(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'), { 'k8s.ns.name': namespace, 'k8s.pod.name': pod, 'container.id': containerId.slice(0, 12) });
const POLICY = 'entries: [{name: inspect, match: {rules: ["Terminal shell*"]}, actions: [isolate, cordon]}]';

interface Run {
  code: number;
  line: Record<string, unknown> | undefined;
  stdout: string;
  stderr: string;
}

/** The command as a user runs it: bin/falco-pod-delete.mjs, a process, with the kubeconfig given. */
function cli(args: string[], kubeconfig: string = state().adminKubeconfig): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['bin/falco-pod-delete.mjs', ...args], { env: { PATH: process.env.PATH, HOME: tmpdir(), KUBECONFIG: kubeconfig }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      const first = stdout.split('\n').find((l) => l.startsWith('{'));
      resolve({ code: typeof code === 'number' ? code : 1, line: first ? (JSON.parse(first) as Record<string, unknown>) : undefined, stdout, stderr });
    });
  });
}

describeCluster('release and list, with an operator\'s kubeconfig', () => {
  let admin: Admin;
  let ns: string;
  let fn: RunningFunction | undefined;
  const nodes: string[] = [];

  beforeAll(async () => {
    admin = new Admin();
    // The command bundles itself on first use: once here, not inside a test's time.
    await cli(['--help']);
  }, 120_000);
  beforeEach(async () => {
    ns = await admin.namespace('apps');
  });
  afterEach(async () => {
    await fn?.fn.drain();
    await fn?.stop();
    fn = undefined;
  });
  afterAll(async () => {
    for (const name of nodes) await admin.core.deleteNode({ name }).catch(() => undefined);
  });

  const isolate = async (pod: string, containerId: string) => {
    fn ??= await startFunction(inClusterEnv({ POLICY, MIN_SCHEDULABLE_NODES: '0', COORDINATION: 'single' }).env);
    const r = await fn.post(shellIn(ns, pod, containerId));
    expect(r.body.outcome).toBe('isolated');
    await fn.fn.drain();
    return r;
  };
  const node = async () => {
    const name = `worker-${randomBytes(3).toString('hex')}`;
    await admin.core.createNode({ body: { metadata: { name } } });
    nodes.push(name);
    return name;
  };
  const released = async (namespace: string) => (await admin.events(namespace)).filter((e) => e.reason === 'FalcoResponseReleased');

  it('a bare pod: list shows it, --dry-run changes nothing, release puts its labels back; a second release is bad input', async () => {
    const worker = await node();
    const p = await admin.pod(ns, 'web-0', { node: worker, labels: { app: 'web', tier: 'front' } });
    await isolate('web-0', p.containerId);
    expect((await admin.readPod(ns, 'web-0'))?.metadata?.labels).toEqual({ 'falco-pod-delete/quarantine': 'true' });

    const list = await cli(['list']);
    expect(list.code).toBe(0);
    const listed = (list.line?.pods as Array<Record<string, unknown>>).find((x) => x.namespace === ns);
    expect(listed).toMatchObject({ pod: 'web-0', rule: 'Terminal shell in container', entry: 'inspect', detached: true, node: worker, since: expect.stringMatching(/^\d{4}-/) });
    expect((list.line?.nodes as Array<Record<string, unknown>>).find((x) => x.node === worker)).toMatchObject({ rule: 'Terminal shell in container', unschedulable: true, since: expect.stringMatching(/^\d{4}-/) });

    const dry = await cli(['release', `${ns}/web-0`, '--dry-run']);
    expect([dry.code, dry.line?.outcome, dry.line?.dryRun]).toEqual([0, 'released', true]);
    expect((await admin.readPod(ns, 'web-0'))?.metadata?.labels).toEqual({ 'falco-pod-delete/quarantine': 'true' });
    expect(await released(ns)).toEqual([]);

    const r = await cli(['release', `${ns}/web-0`]);
    expect(r.code).toBe(0);
    expect(r.line).toMatchObject({ command: 'release', target: 'pod', namespace: ns, pod: 'web-0', outcome: 'released', labels: { app: 'web', tier: 'front' }, dryRun: false, by: 'envtest-admin', rule: 'Terminal shell in container' });
    const after = await admin.readPod(ns, 'web-0');
    expect(after?.metadata?.labels).toEqual({ app: 'web', tier: 'front' });
    expect(after?.metadata?.annotations?.['falco-pod-delete/isolation']).toBeUndefined();
    expect((await released(ns)).map((e) => [e.involvedObject.name, e.type])).toEqual([['web-0', 'Normal']]);

    const again = await cli(['release', `${ns}/web-0`]);
    expect([again.code, again.stdout, again.stderr.trim()]).toEqual([2, '', `falco-pod-delete: pod ${ns}/web-0 is not isolated: it has no falco-pod-delete/quarantine=true label`]);
  });

  it("a pod that left its ReplicaSet stays as it is (its replacement runs) until --delete", async () => {
    const [p] = await workload(admin, ns, 'Deployment', 'web', 2);
    await isolate(p.name, p.containerId);
    const r = await cli(['release', `${ns}/${p.name}`]);
    expect(r.code).toBe(1);
    expect(r.line).toMatchObject({ outcome: 'kept', code: 'left-its-controller', owner: 'ReplicaSet web-7d4b9c' });
    expect(r.line?.reason).toContain('its replacement runs; restoring its labels would hand it back to ReplicaSet web-7d4b9c, which would then remove one pod');
    expect((await admin.readPod(ns, p.name))?.metadata?.labels).toEqual({ 'falco-pod-delete/quarantine': 'true' });
    const d = await cli(['release', `${ns}/${p.name}`, '--delete']);
    expect([d.code, d.line?.outcome]).toEqual([0, 'deleted']);
    expect(await admin.contained(ns, p.name)).toBe(true);
  });

  it("a StatefulSet's pod, which kept its labels: release removes the quarantine label and the record", async () => {
    const [p] = await workload(admin, ns, 'StatefulSet', 'db', 1);
    await isolate(p.name, p.containerId);
    expect((await admin.readPod(ns, p.name))?.metadata?.labels).toEqual({ app: 'db', 'falco-pod-delete/quarantine': 'true' });
    const r = await cli(['release', `${ns}/${p.name}`]);
    expect([r.code, r.line?.outcome]).toEqual([0, 'released']);
    const after = await admin.readPod(ns, p.name);
    expect(after?.metadata?.labels).toEqual({ app: 'db' });
    expect(after?.metadata?.annotations?.['falco-pod-delete/isolation']).toBeUndefined();
  });

  it("release node/NAME uncordons a node the function cordoned, and leaves one someone else cordoned", async () => {
    const worker = await node();
    const p = await admin.pod(ns, 'web-0', { node: worker });
    const r0 = await isolate('web-0', p.containerId);
    expect(r0.body.node).toMatchObject({ name: worker, outcome: 'cordoned' });
    const dry = await cli(['release', `node/${worker}`, '--dry-run']);
    expect([dry.code, dry.line?.outcome]).toEqual([0, 'released']);
    expect((await admin.core.readNode({ name: worker })).spec?.unschedulable).toBe(true);
    const r = await cli(['release', `node/${worker}`]);
    expect(r.code).toBe(0);
    expect(r.line).toMatchObject({ target: 'node', node: worker, outcome: 'released', cordonedSince: expect.stringMatching(/^\d{4}-/) });
    const after = await admin.core.readNode({ name: worker });
    expect(after.spec?.unschedulable).toBeUndefined();
    expect(after.metadata?.labels?.['falco-pod-delete/cordoned']).toBeUndefined();
    const events = (await admin.core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.name=${worker}` })).items.map((e) => e.reason).sort();
    expect(events).toEqual(['FalcoResponseCordoned', 'FalcoResponseReleased']);

    const theirs = await node();
    await admin.core.patchNode({ name: theirs, body: { spec: { unschedulable: true } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    const kept = await cli(['release', `node/${theirs}`]);
    expect([kept.code, kept.line?.outcome, kept.line?.code]).toEqual([1, 'kept', 'cordoned-by-someone-else']);
    expect((await admin.core.readNode({ name: theirs })).spec?.unschedulable).toBe(true);
    const plain = await cli(['release', `node/${worker}`]);
    expect([plain.code, plain.stderr.trim()]).toEqual([2, `falco-pod-delete: node ${worker} is not cordoned`]);
  });

  it('bad input gets one line and exit 2: no such pod, a bad target, no kubeconfig, the function\'s own token', async () => {
    const cases: Array<[string[], string | undefined, RegExp]> = [
      [['release', `${ns}/nope`], undefined, new RegExp(`^falco-pod-delete: no pod ${ns}/nope$`)],
      [['release', 'Not_A/Name'], undefined, /is not NAMESPACE\/POD nor node\/NAME/],
      [['release'], undefined, /release takes one target/],
      [['release', 'node/x', '--delete'], undefined, /--delete is for a pod/],
      [['list', '--force'], undefined, /unknown option --force/],
      [['list'], '/nonexistent/kubeconfig', /no kubeconfig: \/nonexistent\/kubeconfig does not exist/],
    ];
    const dir = mkdtempSync(join(tmpdir(), 'fpd-kc-'));
    const own = join(dir, 'function.kubeconfig');
    const s = state();
    writeFileSync(own, JSON.stringify({ apiVersion: 'v1', kind: 'Config', clusters: [{ name: 'c', cluster: { server: s.server, 'certificate-authority': s.caPath } }], users: [{ name: 'fn', user: { token: s.token } }], contexts: [{ name: 'c', context: { cluster: 'c', user: 'fn' } }], 'current-context': 'c' }));
    cases.push([['list'], own, /the kubeconfig is the function's own ServiceAccount \(system:serviceaccount:openfaas-fn:falco-pod-delete\): release is for people/]);
    for (const [args, kubeconfig, message] of cases) {
      const r = await cli(args, kubeconfig);
      expect([args.join(' '), r.code, r.stdout]).toEqual([args.join(' '), 2, '']);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr.trim()).toMatch(message);
    }
  });
});
