// Every payload in test/data/falco (its README names each source) is acted on or declined exactly as that README says.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeApiServer, inClusterEnv, stageServiceAccount } from './support/apiserver.js';
import { type RunningFunction, fixture, startFunction } from './support/harness.js';

const TOKEN = 'fixture-token';
const hex = (prefix: string) => prefix + 'c'.repeat(64 - prefix.length);

interface Row {
  file: string;
  pods: { namespace: string; name: string; container?: string; uid?: string; nodeName?: string }[];
  expect: { status: number; decision: string; outcome: string; code?: string; namespace?: string | null; pod?: string | null };
  deletes: number;
  policy?: string;
  /** Run with AUTH_TOKEN_FILE and send the token. */
  callerToken?: boolean;
}

const rows: Row[] = [
  { file: '01-syscall-terminal-shell-falco-docs.json', pods: [{ namespace: 'default', name: 'kubecon', container: hex('ee97d9c4186f') }], expect: { status: 200, decision: 'delete', outcome: 'deleted', namespace: 'default', pod: 'kubecon' }, deletes: 1 },
  { file: '02-syscall-terminal-shell-openfaas-blog.json', pods: [{ namespace: 'default', name: 'alpine', container: hex('97c9868ea832') }], expect: { status: 200, decision: 'delete', outcome: 'deleted', namespace: 'default', pod: 'alpine' }, deletes: 1 },
  { file: '03-syscall-contact-k8s-api-from-openfaas-fn-self.json', pods: [{ namespace: 'openfaas-fn', name: 'falco-pod-delete-7dc9f5fbb8-gbfk7', container: hex('12fc4de5ccc3') }], expect: { status: 200, decision: 'skip', outcome: 'skipped', code: 'critical-namespace', namespace: 'openfaas-fn' }, deletes: 0 },
  { file: '04-syscall-null-fields-kubeless-blog.json', pods: [{ namespace: 'default', name: 'alpine', container: hex('5892b41bcf46') }], expect: { status: 200, decision: 'delete', outcome: 'deleted', namespace: 'default', pod: 'alpine' }, deletes: 1 },
  { file: '05-syscall-write-below-binary-dir-no-k8s-falcosidekick-readme.json', pods: [], expect: { status: 200, decision: 'skip', outcome: 'skipped', code: 'no-pod', pod: null }, deletes: 0 },
  { file: '06-falcosidekick-test-event-input.json', pods: [], expect: { status: 200, decision: 'skip', outcome: 'skipped', code: 'test-event' }, deletes: 0 },
  { file: '07-internal-syscall-event-drop-no-source.json', pods: [], expect: { status: 200, decision: 'skip', outcome: 'skipped', code: 'internal-event' }, deletes: 0 },
  { file: '08-k8saudit-attach-exec-pod.json', pods: [{ namespace: 'default', name: 'kubecon' }], expect: { status: 200, decision: 'skip', outcome: 'skipped', code: 'no-policy-match', namespace: 'default', pod: 'kubecon' }, deletes: 0 },
  // k8s_audit alerts carry no container id: without caller authentication they prove nothing (the README of the
  // fixtures predates that rule); with a token they are acted on.
  { file: '08-k8saudit-attach-exec-pod.json', policy: 'entries: [{name: exec, match: {rules: ["Attach/Exec Pod"]}, action: delete}]', pods: [{ namespace: 'default', name: 'kubecon' }], expect: { status: 200, decision: 'skip', outcome: 'skipped', code: 'unproven', namespace: 'default', pod: 'kubecon' }, deletes: 0 },
  { file: '08-k8saudit-attach-exec-pod.json', policy: 'entries: [{name: exec, match: {rules: ["Attach/Exec Pod"]}, action: delete}]', callerToken: true, pods: [{ namespace: 'default', name: 'kubecon' }], expect: { status: 200, decision: 'delete', outcome: 'deleted', namespace: 'default', pod: 'kubecon' }, deletes: 1 },
  { file: '09-k8saudit-serviceaccount-created.json', pods: [], expect: { status: 200, decision: 'skip', outcome: 'skipped', code: 'no-pod' }, deletes: 0 },
  { file: '10-k8saudit-cluster-scoped-no-namespace.json', pods: [], expect: { status: 200, decision: 'skip', outcome: 'skipped', code: 'no-pod' }, deletes: 0 },
  { file: '14-falcosidekick-client-test-numeric-field.json', pods: [], expect: { status: 200, decision: 'skip', outcome: 'skipped', code: 'test-event' }, deletes: 0 },
  { file: '15-DERIVED-falcosidekick-forwarded-form-of-01.json', pods: [{ namespace: 'default', name: 'kubecon', container: hex('ee97d9c4186f') }], expect: { status: 200, decision: 'delete', outcome: 'deleted', namespace: 'default', pod: 'kubecon' }, deletes: 1 },
  { file: '16-DERIVED-falcosidekick-forwarded-test-event.json', pods: [], expect: { status: 200, decision: 'skip', outcome: 'skipped', code: 'test-event' }, deletes: 0 },
  { file: '17-CONSTRUCTED-falco-0.41plus-default-no-k8s-fields.json', pods: [{ namespace: 'default', name: 'alpine', container: hex('5892b41bcf46'), nodeName: 'worker-1' }, { namespace: 'default', name: 'other', nodeName: 'worker-1' }, { namespace: 'default', name: 'elsewhere', container: hex('5892b41bcf46'), nodeName: 'worker-2' }], expect: { status: 200, decision: 'delete', outcome: 'deleted', namespace: 'default', pod: 'alpine' }, deletes: 1 },
  { file: '18-CONSTRUCTED-falco-0.41plus-append_output-k8s-and-k8smeta.json', pods: [{ namespace: 'default', name: 'alpine', container: hex('5892b41bcf46'), uid: '3e41dc6b-08a8-44db-bc2a-3724b18ab19a' }], expect: { status: 200, decision: 'delete', outcome: 'deleted', namespace: 'default', pod: 'alpine' }, deletes: 1 },
  { file: '18-CONSTRUCTED-falco-0.41plus-append_output-k8s-and-k8smeta.json', pods: [{ namespace: 'default', name: 'alpine', container: hex('5892b41bcf46'), uid: '00000000-0000-4000-8000-000000000000' }], expect: { status: 200, decision: 'delete', outcome: 'skipped', code: 'uid-mismatch', namespace: 'default', pod: 'alpine' }, deletes: 0 },
  { file: '19-CONSTRUCTED-host-event-null-k8s-fields.json', pods: [], expect: { status: 200, decision: 'skip', outcome: 'skipped', code: 'no-pod' }, deletes: 0 },
];

let api: FakeApiServer;
let fn: RunningFunction;

afterEach(async () => {
  await fn?.stop();
  await api?.stop();
});

describe.each(rows)('fixture $file', (row) => {
  it(`gives ${row.expect.outcome}${row.expect.code ? ` (${row.expect.code})` : ''}${row.policy ? ' under a policy naming its rule' : ''}`, async () => {
    api = await new FakeApiServer(TOKEN).start();
    for (const p of row.pods) api.addPod({ namespace: p.namespace, name: p.name, uid: p.uid, nodeName: p.nodeName, containerIds: p.container ? [p.container] : undefined });
    const sa = stageServiceAccount(TOKEN);
    const extra: Record<string, string> = row.policy ? { POLICY: row.policy } : {};
    if (row.callerToken) {
      extra.AUTH_TOKEN_FILE = join(mkdtempSync(join(tmpdir(), 'fpd-caller-')), 'token');
      writeFileSync(extra.AUTH_TOKEN_FILE, 'caller-s3cr3t\n');
    }
    fn = await startFunction(inClusterEnv(api, sa.prefix, extra));
    const r = await fn.post(fixture(row.file), row.callerToken ? { authorization: 'Bearer caller-s3cr3t' } : {});
    expect(r.status).toBe(row.expect.status);
    const { status: _status, ...body } = row.expect;
    expect(r.body).toMatchObject(body);
    expect(api.calls('DELETE')).toHaveLength(row.deletes);
    if (row.expect.decision === 'skip') expect(api.workloadCalls).toEqual([]);
    expect(fn.audits()).toHaveLength(1);
  });
});

it('declines fixture 15 as stale when its historical timestamp is kept', async () => {
  api = await new FakeApiServer(TOKEN).start();
  api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [hex('ee97d9c4186f')] });
  fn = await startFunction(inClusterEnv(api, stageServiceAccount(TOKEN).prefix));
  const r = await fn.post(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json', { fresh: false }));
  expect(r.body).toMatchObject({ outcome: 'skipped', code: 'stale' });
  expect(api.requests).toEqual([]);
});
