// The OpenFaaS path end to end: template server + handler, real client-node over TLS to the stand-in API.
import { fixture, withFields, withStandIn } from './support/harness.js';

const TOKEN = 'sa-token-1';
const KUBECON_CONTAINER = 'ee97d9c4186f' + 'a'.repeat(52);

const t = withStandIn(TOKEN);
const start = t.start;

describe('a Falcosidekick alert for a pod in default', () => {
  it('deletes the pod with one DELETE carrying the service-account token and a UID precondition', async () => {
    const pod = t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [KUBECON_CONTAINER] });
    await start();
    const r = await t.fn.post(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ decision: 'delete', outcome: 'deleted', namespace: 'default', pod: 'kubecon', dryRun: false });
    const deletes = t.api.calls('DELETE');
    expect(deletes).toHaveLength(1);
    expect(deletes[0]).toMatchObject({
      method: 'DELETE',
      path: '/api/v1/namespaces/default/pods/kubecon',
      authorization: `Bearer ${TOKEN}`,
      body: { preconditions: { uid: pod.metadata.uid } },
    });
    expect(t.api.pods.has('default/kubecon')).toBe(false);
    // The pod and its namespace are read together (either may arrive first), then the DELETE.
    const calls = t.api.workloadCalls.map((c) => `${c.method} ${c.path}`);
    expect(calls.slice(0, 2).sort()).toEqual(['GET /api/v1/namespaces/default', 'GET /api/v1/namespaces/default/pods/kubecon']);
    expect(calls.slice(2)).toEqual(['DELETE /api/v1/namespaces/default/pods/kubecon']);
    for (const c of t.api.requests) expect(c.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it('writes exactly one audit line naming rule, priority, pod, decision, outcome, uuid and duration', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [KUBECON_CONTAINER] });
    await start();
    const alert = fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json');
    await t.fn.post(alert);
    const audits = t.fn.audits();
    expect(audits).toHaveLength(1);
    expect(audits[0]).toMatchObject({
      level: 'info',
      rule: 'Terminal shell in container',
      priority: 'critical',
      namespace: 'default',
      pod: 'kubecon',
      decision: 'delete',
      outcome: 'deleted',
      uuid: alert.uuid,
      status: 200,
    });
    expect(typeof audits[0].time).toBe('string');
    expect(typeof audits[0].durationMs).toBe('number');
    expect(typeof audits[0].reason).toBe('string');
  });

  it("accepts Falco's own http_output form (no uuid) and older Falco without hostname, source and tags", async () => {
    t.api.addPod({ namespace: 'default', name: 'alpine', containerIds: ['97c9868ea832' + 'b'.repeat(52)] });
    await start();
    const r = await t.fn.post(fixture('02-syscall-terminal-shell-openfaas-blog.json'));
    expect(r.body).toMatchObject({ outcome: 'deleted', pod: 'alpine', uuid: null });
    expect(t.api.calls('DELETE')).toHaveLength(1);
  });

  it('answers "already gone" when the API says 404, with no DELETE', async () => {
    await start();
    const r = await t.fn.post(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ decision: 'delete', outcome: 'already gone' });
    expect(t.api.calls('DELETE')).toHaveLength(0);
  });
});

describe('critical namespaces', () => {
  it.each(['kube-system', 'kube-public', 'kube-node-lease', 'falco', 'openfaas', 'openfaas-fn'])('never deletes anything in %s', async (ns) => {
    t.api.addPod({ namespace: ns, name: 'kubecon', containerIds: [KUBECON_CONTAINER] });
    await start();
    const r = await t.fn.post(withFields(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'), { 'k8s.ns.name': ns }));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ decision: 'skip', outcome: 'skipped', code: 'critical-namespace', namespace: ns });
    expect(t.api.workloadCalls).toEqual([]);
    expect(t.api.pods.has(`${ns}/kubecon`)).toBe(true);
  });

  it('takes its list from CRITICAL_NAMESPACES', async () => {
    t.api.addPod({ namespace: 'payments', name: 'kubecon', containerIds: [KUBECON_CONTAINER] });
    await start({ CRITICAL_NAMESPACES: 'payments,kube-system' });
    const r = await t.fn.post(withFields(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'), { 'k8s.ns.name': 'payments' }));
    expect(r.body).toMatchObject({ code: 'critical-namespace' });
    expect(t.api.calls('DELETE')).toHaveLength(0);
  });
});

describe('bad input gets a 4xx that says what is wrong, and no API call', () => {
  const alert = () => fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json');
  const cases: [string, () => unknown, RegExp][] = [
    ['unparseable JSON', () => '{"rule": ', /not valid JSON/],
    ['a JSON array', () => [alert()], /must be a JSON object/],
    ['a JSON string', () => '"hello"', /must be a JSON object/],
    ['no rule', () => ({ ...alert(), rule: undefined }), /missing "rule"/],
    ['a numeric priority', () => ({ ...alert(), priority: 5 }), /priority must be string/],
    ['an unknown priority', () => ({ ...alert(), priority: 'Severe' }), /not a Falco priority/],
    ['a time that is not RFC 3339', () => ({ ...alert(), time: 'yesterday' }), /not an RFC 3339 timestamp/],
    ['output_fields that is a list', () => ({ ...alert(), output_fields: [1] }), /output_fields must be object,null/],
    ['an uppercase pod name', () => withFields(alert(), { 'k8s.pod.name': 'KubeCon' }), /pod name "KubeCon" is not a valid/],
    ['a pod name with a slash', () => withFields(alert(), { 'k8s.pod.name': 'a/../b' }), /not a valid Kubernetes pod name/],
    ['a pod name with %2F', () => withFields(alert(), { 'k8s.pod.name': 'a%2Fb' }), /not a valid Kubernetes pod name/],
    ['a pod name of 254 characters', () => withFields(alert(), { 'k8s.pod.name': 'a'.repeat(254) }), /not a valid Kubernetes pod name/],
    ['a namespace with a dot', () => withFields(alert(), { 'k8s.ns.name': 'kube-system.evil' }), /not a valid Kubernetes namespace name/],
    ['a namespace of ..', () => withFields(alert(), { 'k8s.ns.name': '..' }), /not a valid Kubernetes namespace name/],
  ];
  it.each(cases)('rejects %s', async (_name, body, message) => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [KUBECON_CONTAINER] });
    await start();
    const r = await t.fn.post(body());
    expect(r.status).toBe(400);
    expect(r.body.outcome).toBe('rejected');
    expect(String(r.body.reason)).toMatch(message);
    expect(t.api.requests).toEqual([]);
    expect(t.fn.audits()).toHaveLength(1);
    expect(t.fn.audits()[0]).toMatchObject({ decision: 'reject', outcome: 'rejected', status: 400 });
  });

  it('answers 413 to an oversized body', async () => {
    await start();
    const big = { ...alert(), output: 'x'.repeat(600 * 1024) };
    const r = await t.fn.post(big);
    expect(r.status).toBe(413);
    expect(String(r.body.reason)).toMatch(/too large/);
    expect(t.api.requests).toEqual([]);
    expect(t.fn.audits()[0]).toMatchObject({ outcome: 'rejected', status: 413 });
  });

  it('answers 405 to a GET and 200 on the health path', async () => {
    await start();
    expect((await fetch(t.fn.url)).status).toBe(405);
    const health = await fetch(`${t.fn.url}_/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
  });
});

describe('when the Kubernetes API refuses or fails', () => {
  it('answers 403 naming the missing permission when RBAC forbids the DELETE', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [KUBECON_CONTAINER] });
    t.api.forbidden.add('delete:pods');
    await start();
    const r = await t.fn.post(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'));
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ outcome: 'failed', code: 'forbidden', error: { code: 'forbidden', permission: 'delete pods in namespace default', apiStatus: 403 } });
    expect(String(r.body.reason)).toMatch(/may not delete pods in namespace default/);
    expect(t.fn.audits()[0]).toMatchObject({ level: 'error', outcome: 'failed', status: 403 });
  });

  it('after a 409 on the preconditions, reads the pod again and deletes the version it finds (two DELETEs, both under preconditions)', async () => {
    const pod = t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [KUBECON_CONTAINER] });
    t.api.fail({ kind: 'status', code: 409, reason: 'Conflict', message: 'Precondition failed: the ResourceVersion in the precondition (1) does not match the ResourceVersion in record (2)' }, { method: 'DELETE' });
    await start();
    const r = await t.fn.post(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ outcome: 'deleted' });
    const deletes = t.api.calls('DELETE', '/api/v1/');
    expect(deletes.map((d) => d.body)).toEqual([1, 2].map(() => expect.objectContaining({ preconditions: { uid: pod.metadata.uid, resourceVersion: pod.metadata.resourceVersion } })));
    expect(t.api.calls('GET', '/api/v1/namespaces/default/pods/')).toHaveLength(2);
  });

  it('retries a 429 after Retry-After and then deletes', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [KUBECON_CONTAINER] });
    t.api.fail({ kind: 'status', code: 429, headers: { 'retry-after': '1' } }, { method: 'DELETE' });
    await start();
    const started = Date.now();
    const r = await t.fn.post(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'));
    expect(r.body).toMatchObject({ outcome: 'deleted' });
    expect(t.api.calls('DELETE')).toHaveLength(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('answers 503 when the API keeps failing with 5xx until the deadline', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [KUBECON_CONTAINER] });
    t.api.fail({ kind: 'status', code: 503 }, { method: 'DELETE', times: 1000 });
    await start({ ALERT_DEADLINE_MS: '1500' });
    const r = await t.fn.post(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'));
    expect(r.status).toBe(503);
    expect(r.body).toMatchObject({ outcome: 'failed', code: 'unavailable' });
    expect(t.api.calls('DELETE').length).toBeGreaterThan(1);
    expect(t.api.pods.has('default/kubecon')).toBe(true);
  });

  it('answers 504 within the deadline when the API hangs', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [KUBECON_CONTAINER] });
    t.api.fail({ kind: 'hang' }, { method: 'GET', times: 100 });
    await start({ ALERT_DEADLINE_MS: '1200', API_TIMEOUT_MS: '400' });
    const started = Date.now();
    const r = await t.fn.post(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'));
    expect(r.status).toBe(504);
    expect(r.body).toMatchObject({ outcome: 'failed', code: 'timeout' });
    expect(Date.now() - started).toBeLessThan(3000);
    expect(t.api.calls('DELETE')).toHaveLength(0);
  });

  it('answers 502 when the API sends an HTML page instead of a Pod, and keeps serving', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [KUBECON_CONTAINER] });
    t.api.fail({ kind: 'garbage', code: 200, contentType: 'text/html', text: '<html><body>502 Bad Gateway</body></html>' }, { method: 'GET', path: /\/pods\// });
    await start();
    const r = await t.fn.post(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'));
    expect(r.status).toBe(502);
    expect(r.body).toMatchObject({ outcome: 'failed', code: 'bad-response' });
    expect(t.api.calls('DELETE')).toHaveLength(0);
    const again = await t.fn.post(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'));
    expect(again.body).toMatchObject({ outcome: 'deleted' });
  });

  it('answers 502 and deletes nothing when the namespace read (its opt-out label) comes back as something else', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [KUBECON_CONTAINER] });
    t.api.fail({ kind: 'garbage', code: 200, contentType: 'application/json', text: '{"kind":"Status","items":[]}' }, { method: 'GET', path: /\/namespaces\/default$/ });
    await start();
    const r = await t.fn.post(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'));
    expect(r.status).toBe(502);
    expect(r.body).toMatchObject({ outcome: 'failed', code: 'bad-response' });
    expect(r.body.reason).toContain('get namespaces default');
    expect(t.api.calls('DELETE')).toHaveLength(0);
  });
});
