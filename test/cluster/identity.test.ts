// The function's identity as the real server sees it: least privilege checked by the server itself, a
// permission taken away, the ServiceAccount replaced under a running function, and the CE kubeconfig.
import { ACTIONS, NODE_ACTIONS } from '../../falco-pod-delete/src/actions/index.js';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { Admin, clusterState, describeCluster, inClusterEnv, rbacCopy, state } from '../support/cluster.js';
import { startLogGateway } from '../support/openfaas.js';
import { FalcoResponse } from '../../falco-pod-delete/src/core.js';
import { captureLogger, fixture, type RunningFunction, startFunction, withFields } from '../support/harness.js';

const shellIn = (namespace: string, pod: string, containerId: string) =>
  withFields(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'), { 'k8s.ns.name': namespace, 'k8s.pod.name': pod, 'container.id': containerId.slice(0, 12) });

/** Every (verb, resource) the Kubernetes seam calls, read from its source: the code is the list. */
function callsInCode(): Array<{ verb: string; resource: string }> {
  const src = readFileSync('falco-pod-delete/src/kube/client-node.ts', 'utf8');
  const seen = new Map<string, { verb: string; resource: string }>();
  // The view's reflectors list and watch the collections they are given.
  for (const m of readFileSync('falco-pod-delete/src/view.ts', 'utf8').matchAll(/path: '\/api\/v1\/([a-z]+)'/g)) {
    for (const verb of ['list', 'watch']) seen.set(`${verb} ${m[1]}`, { verb, resource: m[1] });
  }
  for (const m of src.matchAll(/verb: '([a-z]+)', resource: '([a-z/]+)'/g)) seen.set(`${m[1]} ${m[2]}`, { verb: m[1], resource: m[2] });
  // Controller reads name their resource at the call: get('replicasets', ...).
  for (const m of src.matchAll(/get\('([a-z]+)', /g)) seen.set(`get ${m[1]}`, { verb: 'get', resource: m[1] });
  return [...seen.values()];
}

const GROUP: Record<string, string> = {
  pods: '', nodes: '', 'pods/eviction': '', 'pods/log': '', namespaces: '', events: '', networkpolicies: 'networking.k8s.io', leases: 'coordination.k8s.io',
  replicasets: 'apps', deployments: 'apps', statefulsets: 'apps', daemonsets: 'apps', jobs: 'batch',
};
const NAMESPACED_IN_OWN = new Set(['leases']);

describeCluster('the ServiceAccount from rbac.yaml on a real API server', () => {
  let admin: Admin;
  let fn: RunningFunction | undefined;
  beforeAll(() => {
    admin = new Admin();
  });
  // Each test starts with no budget spent in the shared Lease (other suites acting as the ServiceAccount spend it).
  beforeEach(() => admin.leases.deleteCollectionNamespacedLease({ namespace: 'openfaas-fn' }));
  afterEach(async () => {
    await fn?.stop();
    fn = undefined;
  });

  async function rulesFor(token: string, namespace: string): Promise<Set<string>> {
    const kc = new k8s.KubeConfig();
    kc.loadFromClusterAndUser({ name: 'c', server: state().server, caFile: state().caPath, skipTLSVerify: false }, { name: 'u', token });
    const review = await kc.makeApiClient(k8s.AuthorizationV1Api).createSelfSubjectRulesReview({ body: { spec: { namespace } } });
    const granted = new Set<string>();
    for (const r of review.status?.resourceRules ?? []) {
      // What every authenticated identity may do (discovery, self reviews) is not rbac.yaml's doing.
      if ((r.resources ?? []).some((x) => x.startsWith('selfsubject'))) continue;
      for (const g of r.apiGroups ?? []) for (const res of r.resources ?? []) for (const v of r.verbs) granted.add(`${v} ${g}/${res}`);
    }
    return granted;
  }

  it('may do exactly what the code calls: the server\'s own rules review of the token, in the function\'s namespace and in another', async () => {
    const calls = callsInCode();
    expect(calls.length).toBeGreaterThanOrEqual(19);
    const want = (own: boolean) => new Set(calls.filter((c) => own || !NAMESPACED_IN_OWN.has(c.resource)).map((c) => `${c.verb} ${GROUP[c.resource]}/${c.resource}`));
    expect(await rulesFor(state().token, 'openfaas-fn')).toEqual(want(true));
    expect(await rulesFor(state().token, await admin.namespace('elsewhere'))).toEqual(want(false));
  });

  it("grants each registered action the RBAC rules it declares: the server's rules review of the token, in any namespace", async () => {
    const granted = await rulesFor(state().token, await admin.namespace('actions'));
    for (const a of [...ACTIONS, ...NODE_ACTIONS]) for (const r of a.rbac) for (const g of r.apiGroups) for (const res of r.resources) for (const v of r.verbs) {
      expect([a.name, `${v} ${g}/${res}`, granted.has(`${v} ${g}/${res}`)]).toEqual([a.name, `${v} ${g}/${res}`, true]);
    }
  });

  it('answers 403 naming the missing permission when the binding loses delete on pods, and deletes nothing', async () => {
    const id = await rbacCopy(admin, 'fpd-nodelete', (kind, rules) => (kind === 'ClusterRole' ? rules.map((r) => ({ ...r, verbs: (r.verbs as string[]).filter((v) => !((r.resources as string[]).includes('pods') && v === 'delete')) })) : rules));
    const ns = await admin.namespace('apps');
    const pod = await admin.pod(ns, 'web-0');
    const sa = inClusterEnv({ RECORD_EVENTS: 'false' }, id.token());
    writeFileSync(join(sa.env.SERVICEACCOUNT_PATH_PREFIX, 'var/run/secrets/kubernetes.io/serviceaccount/namespace'), id.namespace);
    fn = await startFunction(sa.env);
    const r = await fn.post(shellIn(ns, 'web-0', pod.containerId));
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ outcome: 'failed', code: 'forbidden' });
    expect(String(r.body.reason)).toMatch(new RegExp(`may not delete pods in namespace ${ns}`));
    expect(String(r.body.reason)).toContain(`system:serviceaccount:${id.namespace}:fpd-nodelete`);
    expect(await admin.contained(ns, 'web-0')).toBe(false);
  });

  it('keeps working when its ServiceAccount is deleted and recreated and the kubelet writes the new token', async () => {
    const id = await rbacCopy(admin, 'fpd-rotated');
    const ns = await admin.namespace('apps');
    const sa = inClusterEnv({ RECORD_EVENTS: 'false' }, id.token());
    writeFileSync(join(sa.env.SERVICEACCOUNT_PATH_PREFIX, 'var/run/secrets/kubernetes.io/serviceaccount/namespace'), id.namespace);
    fn = await startFunction(sa.env);
    const first = await admin.pod(ns, 'first');
    expect((await fn.post(shellIn(ns, 'first', first.containerId))).body).toMatchObject({ outcome: 'deleted' });
    // The old token dies with the old ServiceAccount's UID.
    await admin.core.deleteNamespacedServiceAccount({ name: id.serviceAccount, namespace: id.namespace });
    await admin.core.createNamespacedServiceAccount({ namespace: id.namespace, body: { metadata: { name: id.serviceAccount } } });
    writeFileSync(sa.tokenPath, id.token());
    const second = await admin.pod(ns, 'second');
    const r = await fn.post(shellIn(ns, 'second', second.containerId));
    expect(r.body).toMatchObject({ outcome: 'deleted', pod: 'second' });
    expect(await admin.contained(ns, 'second')).toBe(true);
  });

  const withFaasCli = (clusterState && existsSync(join(clusterState.assets, 'faas-cli'))) || process.env.FPD_REQUIRE_REAL === '1' ? it : it.skip;

  withFaasCli('make-kubeconfig.sh fails, and keeps the kubeconfig, when faas-cli cannot store the secret (faas-cli itself exits 0)', () => {
    const env = { ...process.env, PATH: `${state().assets}:${process.env.PATH ?? ''}`, KUBECONFIG: state().adminKubeconfig, OPENFAAS_URL: 'http://127.0.0.1:1', HOME: mkdtempSync(join(tmpdir(), 'fpd-home-')), TMPDIR: mkdtempSync(join(tmpdir(), 'fpd-mk-')) };
    const run = spawnSync('bash', ['scripts/make-kubeconfig.sh', '--duration', '1h', '--server', state().server], { env, encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stdout).not.toMatch(/stored as OpenFaaS secret/);
    expect(run.stderr).toMatch(/the OpenFaaS secret falco-pod-delete-kubeconfig was not stored \(faas-cli secret list: Cannot connect to OpenFaaS on URL: http:\/\/127\.0\.0\.1:1\)/);
    const kept = /the kubeconfig is kept in (\S+):/.exec(run.stderr)?.[1] as string;
    expect(readFileSync(kept, 'utf8')).toMatch(/current-context: falco-pod-delete/);
  });

  withFaasCli('make-kubeconfig.sh says the secret is stored only once faas-cli secret list shows it', async () => {
    const gateway = await startLogGateway([]);
    try {
      const env = { ...process.env, PATH: `${state().assets}:${process.env.PATH ?? ''}`, KUBECONFIG: state().adminKubeconfig, OPENFAAS_URL: gateway.url, HOME: mkdtempSync(join(tmpdir(), 'fpd-home-')) };
      const run = await new Promise<{ code: number | null; out: string }>((resolve) => execFile('bash', ['scripts/make-kubeconfig.sh', '--duration', '1h', '--server', state().server], { env }, (e, out) => resolve({ code: e ? ((e as { code?: number }).code ?? null) : 0, out })));
      expect(run).toEqual({ code: 0, out: expect.stringContaining('stored as OpenFaaS secret falco-pod-delete-kubeconfig') });
    } finally {
      await gateway.stop();
    }
  });

  it('says at start which server and identity it acts as, and warns when live with a user\'s own kubeconfig', () => {
    const started = (env: Record<string, string>) => {
      const lines: Array<Record<string, unknown>> = [];
      FalcoResponse.fromEnv({ METRICS_PORT: '0', COORDINATION: 'single', ...env }, captureLogger(lines));
      return lines[0];
    };
    // The admin's kubeconfig (a client certificate of system:masters): real deletions, not limited by rbac.yaml.
    expect(started({ KUBECONFIG: state().adminKubeconfig })).toMatchObject({ level: 'warn', server: state().server, actions: 'real', identity: expect.stringMatching(/client certificate .*CN=envtest-admin/), msg: expect.stringMatching(/^LIVE: deletions are real, against https:\/\/127\.0\.0\.1:\d+ as client certificate .* which is not a ServiceAccount/) });
    expect(started({ KUBECONFIG: state().adminKubeconfig, DRY_RUN: 'true' })).toMatchObject({ level: 'info', actions: 'dry-run', msg: expect.stringMatching(/^started in DRY_RUN mode against/) });
    // The function's ServiceAccount, in-cluster: actions are real, and said so at info.
    expect(started(inClusterEnv().env)).toMatchObject({ level: 'info', actions: 'real', identity: 'system:serviceaccount:openfaas-fn:falco-pod-delete', msg: expect.stringMatching(/^started: actions are real, against https:\/\/127\.0\.0\.1:\d+ as system:serviceaccount:openfaas-fn:falco-pod-delete$/) });
  });

  it('acts through the kubeconfig scripts/make-kubeconfig.sh writes (Community Edition), as KUBECONFIG_FILE', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'fpd-kc-')), 'kubeconfig');
    const env = { ...process.env, PATH: `${state().assets}:${process.env.PATH ?? ''}`, KUBECONFIG: state().adminKubeconfig };
    const said = execFileSync('bash', ['scripts/make-kubeconfig.sh', '--duration', '1h', '--server', state().server, '--out', out, '--no-secret'], { env, stdio: 'pipe' }).toString();
    expect(said).toContain(`kubeconfig written to ${out}`);
    const lines: Array<Record<string, unknown>> = [];
    FalcoResponse.fromEnv({ KUBECONFIG_FILE: out, METRICS_PORT: '0' }, captureLogger(lines));
    expect(lines[0]).toMatchObject({ level: 'info', actions: 'real', identity: 'system:serviceaccount:openfaas-fn:falco-pod-delete' });
    const ns = await admin.namespace('apps');
    const pod = await admin.pod(ns, 'web-0');
    fn = await startFunction({ KUBECONFIG_FILE: out, HOSTNAME: 'falco-pod-delete-7dc9f5fbb8-gbfk7', RECORD_EVENTS: 'false' });
    const r = await fn.post(shellIn(ns, 'web-0', pod.containerId));
    expect(r.body).toMatchObject({ outcome: 'deleted', pod: 'web-0', dryRun: false });
    expect(await admin.contained(ns, 'web-0')).toBe(true);
  });
});
