// Nobody but Falco gets a pod deleted: on the real API server, alerts that prove nothing leave the pod running
// unless the caller authenticates, and the shipped NetworkPolicies are what the server accepts.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { Admin, describeCluster, inClusterEnv } from '../support/cluster.js';
import { fixture, type RunningFunction, startFunction, withFields } from '../support/harness.js';

const TOKEN = 'a'.repeat(64);
const tokenFile = () => {
  const path = join(mkdtempSync(join(tmpdir(), 'fpd-caller-')), 'token');
  writeFileSync(path, `${TOKEN}\n`);
  return path;
};
const shellIn = (namespace: string, pod: string, containerId: unknown) =>
  withFields(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'), { 'k8s.ns.name': namespace, 'k8s.pod.name': pod, 'container.id': containerId });
const EXEC_POLICY = 'entries: [{name: exec, match: {rules: ["Attach/Exec Pod"], source: [k8s_audit]}, action: delete}]';
const execInto = (namespace: string, pod: string) => {
  const a = fixture('08-k8saudit-attach-exec-pod.json');
  return withFields(a, { 'ka.target.namespace': namespace, 'ka.target.name': pod });
};

describeCluster('proof and caller authentication on a real API server', () => {
  let admin: Admin;
  let ns: string;
  let fn: RunningFunction | undefined;
  const start = async (extra: Record<string, string> = {}) => (fn = await startFunction(inClusterEnv({ RECORD_EVENTS: 'false', ...extra }).env));

  beforeAll(() => {
    admin = new Admin();
  });
  beforeEach(async () => {
    ns = await admin.namespace('apps');
  });
  afterEach(async () => {
    await fn?.stop();
    fn = undefined;
  });

  it.each([
    ['absent', undefined],
    ['null', null],
    ['<NA>', '<NA>'],
  ])('leaves the pod running for an alert whose container.id is %s when no caller authentication is set', async (_name, id) => {
    await admin.pod(ns, 'db-0');
    await start();
    const r = await fn!.post(shellIn(ns, 'db-0', id));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ outcome: 'skipped', code: 'unproven', pod: 'db-0' });
    expect(String(r.body.reason)).toMatch(/AUTH_TOKEN_FILE/);
    expect(await admin.contained(ns, 'db-0')).toBe(false);
  });

  it('deletes on the same name-only alert when it carries the caller token', async () => {
    await admin.pod(ns, 'db-0');
    await start({ AUTH_TOKEN_FILE: tokenFile() });
    const r = await fn!.post(shellIn(ns, 'db-0', null), { authorization: `Bearer ${TOKEN}` });
    expect(r.body).toMatchObject({ outcome: 'deleted', pod: 'db-0' });
    expect(await admin.contained(ns, 'db-0')).toBe(true);
  });

  it('leaves the pod running for an alert with another pod\'s container id', async () => {
    await admin.pod(ns, 'db-0');
    const other = await admin.pod(ns, 'web-0');
    await start();
    expect((await fn!.post(shellIn(ns, 'db-0', other.containerId.slice(0, 12)))).body).toMatchObject({ outcome: 'skipped', code: 'container-mismatch' });
    expect(await admin.contained(ns, 'db-0')).toBe(false);
  });

  it('declines a k8s_audit Attach/Exec Pod alert without authentication, and acts on it with a token', async () => {
    await admin.pod(ns, 'db-0');
    await start({ POLICY: EXEC_POLICY });
    expect((await fn!.post(execInto(ns, 'db-0'))).body).toMatchObject({ outcome: 'skipped', code: 'unproven' });
    expect(await admin.contained(ns, 'db-0')).toBe(false);
    await fn!.stop();
    await start({ POLICY: EXEC_POLICY, AUTH_TOKEN_FILE: tokenFile() });
    expect((await fn!.post(execInto(ns, 'db-0'), { authorization: `Bearer ${TOKEN}` })).body).toMatchObject({ outcome: 'deleted' });
    expect(await admin.contained(ns, 'db-0')).toBe(true);
  });

  it('answers 401 to a missing or wrong token and leaves the pod running', async () => {
    const pod = await admin.pod(ns, 'db-0');
    await start({ AUTH_TOKEN_FILE: tokenFile() });
    const alert = shellIn(ns, 'db-0', pod.containerId.slice(0, 12));
    expect((await fn!.post(alert)).status).toBe(401);
    expect((await fn!.post(alert, { authorization: 'Bearer wrong' })).status).toBe(401);
    expect(await admin.contained(ns, 'db-0')).toBe(false);
  });
});

describeCluster('the shipped NetworkPolicies', () => {
  const files = ['networkpolicy.yaml', 'deploy/knative/networkpolicy.yaml', 'deploy/kubeless/networkpolicy.yaml'];

  it('pass the real server\'s validation', async () => {
    const admin = new Admin();
    for (const name of ['falco-response', 'kubeless']) await admin.core.createNamespace({ body: { metadata: { name } } }).catch(() => undefined);
    for (const f of files) expect(admin.kubectl(['apply', '--dry-run=server', '-f', f])).toMatch(/networkpolicy.networking.k8s.io\/falco-pod-delete-ingress created \(server dry run\)/);
  });

  it('the OpenFaaS one selects only this function\'s pods and admits the gateway and the monitoring namespace on their ports', () => {
    const np = YAML.parse(readFileSync('networkpolicy.yaml', 'utf8')) as Record<string, any>;
    expect(np.metadata.namespace).toBe('openfaas-fn');
    expect(np.spec.podSelector).toEqual({ matchLabels: { faas_function: 'falco-pod-delete' } });
    expect(np.spec.policyTypes).toEqual(['Ingress']);
    expect(np.spec.ingress).toEqual([
      { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'openfaas' } } }], ports: [{ protocol: 'TCP', port: 8080 }] },
      { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [{ protocol: 'TCP', port: 9464 }] },
    ]);
  });
});
