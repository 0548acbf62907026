// Safe, verified, bounded response: verification, coalescing, blast radius, guards, shared secret, policy actions.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FalcoResponse } from '../falco-pod-delete/src/core.js';
import { PolicyError } from '../falco-pod-delete/src/policy.js';
import { containerId } from './support/apiserver.js';
import { captureLogger, fixture, withFields, withStandIn } from './support/harness.js';

const TOKEN = 'safety-token';
const CONTAINER = 'ee97d9c4186f' + 'd'.repeat(52);
const shell = () => fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json');
const shellFor = (name: string) => withFields(shell(), { 'k8s.pod.name': name, 'container.id': containerId(`default/${name}`).slice(0, 12) });

const t = withStandIn(TOKEN);
/** A caller token file holding s3cr3t-value. */
function secretFile(): string {
  const path = join(tmpdir(), `fpd-secret-${process.pid}-${Math.random()}`);
  writeFileSync(path, 's3cr3t-value\n');
  return path;
}
const start = t.start;

describe('verification before acting', () => {
  it('declines an alert whose container is not in the pod, and writes no Event about it (the proof failed)', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: ['0123456789ab' + 'e'.repeat(52)] });
    await start();
    const r = await t.fn.post(shell());
    expect(r.body).toMatchObject({ outcome: 'skipped', code: 'container-mismatch' });
    expect(t.api.calls('DELETE')).toHaveLength(0);
    await t.fn?.fn.drain();
    expect(t.api.events).toEqual([]);
  });

  it('finds the container among init and ephemeral container statuses too', async () => {
    const pod = t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: ['0123456789ab' + 'e'.repeat(52)] });
    (pod.status as Record<string, unknown>).ephemeralContainerStatuses = [{ ...pod.status.containerStatuses[0], name: 'debugger', containerID: `cri-o://${CONTAINER}` }];
    await start();
    expect((await t.fn.post(shell())).body).toMatchObject({ outcome: 'deleted' });
  });

  it('does not act on a pod that is already terminating', async () => {
    const pod = t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    (pod.metadata as Record<string, unknown>).deletionTimestamp = new Date().toISOString();
    await start();
    expect((await t.fn.post(shell())).body).toMatchObject({ outcome: 'skipped', code: 'terminating' });
    expect(t.api.calls('DELETE')).toHaveLength(0);
  });
});

describe('coalescing', () => {
  it('turns a storm of 300 identical alerts into one DELETE, answering the rest as duplicates', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    await start();
    const answers = await Promise.all(Array.from({ length: 300 }, () => t.fn.post({ ...shell(), uuid: randomUUID() })));
    expect(t.api.calls('DELETE')).toHaveLength(1);
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(answers.filter((a) => a.body.outcome === 'deleted')).toHaveLength(1);
    expect(answers.filter((a) => a.body.outcome === 'duplicate')).toHaveLength(299);
    expect(answers.find((a) => a.body.outcome === 'duplicate')?.body.first).toMatchObject({ result: 'deleted' });
    expect(t.fn.audits()).toHaveLength(300);
    expect(t.fn.audits().filter((l) => l.outcome === 'duplicate')).toHaveLength(299);
  });

  it('answers a later alert within the window with the first outcome, without calling the API', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    await start();
    await t.fn.post(shell());
    await t.fn.fn.drain();
    const before = t.api.requests.length;
    expect((await t.fn.post(shell())).body).toMatchObject({ outcome: 'duplicate', first: { result: 'deleted' } });
    expect(t.api.requests.length).toBe(before);
  });

  it('lets the next alert try again after a failure', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    t.api.forbidden.add('delete:pods');
    await start();
    expect((await t.fn.post(shell())).status).toBe(403);
    t.api.forbidden.clear();
    expect((await t.fn.post(shell())).body).toMatchObject({ outcome: 'deleted' });
  });
});

describe('blast-radius limit', () => {
  it('acts at most ACTION_LIMIT times per window, then answers 429 and audits the limit', async () => {
    for (const n of ['a', 'b', 'c']) t.api.addPod({ namespace: 'default', name: n });
    await start({ ACTION_LIMIT: '2', ACTION_WINDOW_SECONDS: '60', NAMESPACE_ACTION_LIMIT: '100%' });
    const results = [];
    for (const n of ['a', 'b', 'c']) results.push(await t.fn.post(shellFor(n)));
    expect(results.map((r) => r.status)).toEqual([200, 200, 429]);
    expect(results[2].body).toMatchObject({ outcome: 'rate-limited', code: 'rate-limited', budget: { limit: 'ACTION_LIMIT', of: 2, taken: 2 } });
    expect(results[2].headers.get('retry-after')).toBe('60');
    expect(t.api.calls('DELETE', '/api/v1/').map((c) => c.path)).toEqual(['/api/v1/namespaces/default/pods/a', '/api/v1/namespaces/default/pods/b']);
    expect(t.fn.audits()[2]).toMatchObject({ level: 'error', outcome: 'rate-limited', reason: expect.stringMatching(/blast-radius limit reached: 2 actions per 60 s/) });
  });

  it('lets one namespace take at most NAMESPACE_ACTION_LIMIT of the budget (default 50%), and another namespace still acts', async () => {
    for (const n of ['a', 'b', 'c']) t.api.addPod({ namespace: 'default', name: n });
    t.api.addPod({ namespace: 'prod', name: 'web' });
    await start({ ACTION_LIMIT: '4', ACTION_WINDOW_SECONDS: '60' });
    const results = [];
    for (const n of ['a', 'b', 'c']) results.push(await t.fn.post(shellFor(n)));
    results.push(await t.fn.post(withFields(shell(), { 'k8s.ns.name': 'prod', 'k8s.pod.name': 'web', 'container.id': containerId('prod/web').slice(0, 12) })));
    expect(results.map((r) => [r.status, r.body.outcome])).toEqual([[200, 'deleted'], [200, 'deleted'], [429, 'rate-limited'], [200, 'deleted']]);
    expect(results[2].body.reason).toMatch(/blast-radius limit reached for namespace default: 2 of the 4 actions per 60 s across all replicas \(NAMESPACE_ACTION_LIMIT\)/);
    // The code and the figures tell the namespace's share from the cluster-wide budget.
    expect(results[2].body).toMatchObject({ code: 'namespace-rate-limited', budget: { limit: 'NAMESPACE_ACTION_LIMIT', of: 2, taken: 2, reservedElsewhere: 0 } });
    expect(results[2].body.reason).toMatch(/\(NAMESPACE_ACTION_LIMIT\): 2 taken in the window there, 0 reserved by other replicas$/);
    expect(t.api.calls('DELETE', '/api/v1/').map((c) => c.path)).toEqual(['/api/v1/namespaces/default/pods/a', '/api/v1/namespaces/default/pods/b', '/api/v1/namespaces/prod/pods/web']);
  });

  it('gives the slot back when the API server refuses the deletion, so refused deletions never use up the budget', async () => {
    for (const n of ['a', 'b', 'c', 'd']) t.api.addPod({ namespace: 'default', name: n });
    t.api.forbidden.add('delete:pods');
    await start({ ACTION_LIMIT: '2', NAMESPACE_ACTION_LIMIT: '100%' });
    for (const n of ['a', 'b', 'c']) expect((await t.fn.post(shellFor(n))).status).toBe(403);
    await t.fn.fn.drain();
    t.api.forbidden.clear();
    expect((await t.fn.post(shellFor('d'))).body).toMatchObject({ outcome: 'deleted' });
    await t.fn.fn.drain();
    // The shared budget records the one deletion that happened, and none of the three refused.
    await t.fn.fn.responder.coordinator?.settleNow();
    const grants = JSON.parse(t.api.leases.get('openfaas-fn/fpd-budget')?.metadata.annotations['falco-pod-delete/grants'] ?? '{}') as Record<string, { k: number; used: Record<string, number[]> }>;
    expect(Object.values(grants).map((g) => [g.k, Object.values(g.used).flat().length])).toEqual([[0, 1]]);
  });

  it('after a timeout, reads the pod: the slot comes back when the deletion did not happen', async () => {
    for (const n of ['a', 'b']) t.api.addPod({ namespace: 'default', name: n });
    t.api.fail({ kind: 'hang' }, { method: 'DELETE', path: /\/pods\/a$/, times: 50 });
    await start({ ACTION_LIMIT: '1', NAMESPACE_ACTION_LIMIT: '100%', COORDINATION: 'single', API_TIMEOUT_MS: '200', ALERT_DEADLINE_MS: '1000' });
    expect((await t.fn.post(shellFor('a'))).status).toBe(504);
    await t.fn.fn.drain();
    expect(t.api.calls('GET', '/api/v1/namespaces/default/pods/a').length).toBe(2); // before acting, and after the timeout
    expect((await t.fn.post(shellFor('b'))).body).toMatchObject({ outcome: 'deleted' });
  });

  it('after a timeout, keeps the slot when the pod shows the deletion took effect all the same', async () => {
    for (const n of ['a', 'b']) t.api.addPod({ namespace: 'default', name: n });
    t.api.fail({ kind: 'hang' }, { method: 'DELETE', path: /\/pods\/a$/, times: 50 });
    await start({ ACTION_LIMIT: '1', NAMESPACE_ACTION_LIMIT: '100%', COORDINATION: 'single', API_TIMEOUT_MS: '200', ALERT_DEADLINE_MS: '1000' });
    const answer = t.fn.post(shellFor('a'));
    // The DELETE reached the server and acted; only its answer was lost.
    while (t.api.calls('DELETE').length === 0) await new Promise((r) => setTimeout(r, 10));
    (t.api.pods.get('default/a')?.metadata as Record<string, unknown>).deletionTimestamp = new Date().toISOString();
    expect((await answer).status).toBe(504);
    await t.fn.fn.drain();
    expect((await t.fn.post(shellFor('b'))).status).toBe(429);
  });

  it('is off at ACTION_LIMIT=0', async () => {
    for (const n of ['a', 'b', 'c']) t.api.addPod({ namespace: 'default', name: n });
    await start({ ACTION_LIMIT: '0' });
    for (const n of ['a', 'b', 'c']) await t.fn.post(shellFor(n));
    expect(t.api.calls('DELETE')).toHaveLength(3);
  });
});

describe('guards no policy can override', () => {
  it('leaves pods labelled falco-pod-delete/exempt=true alone', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER], labels: { 'falco-pod-delete/exempt': 'true' } });
    await start();
    expect((await t.fn.post(shell())).body).toMatchObject({ outcome: 'skipped', code: 'opt-out' });
    expect(t.api.calls('DELETE')).toHaveLength(0);
  });

  it('leaves pods in namespaces labelled falco-pod-delete/exempt=true alone', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    t.api.namespaces.set('default', { 'falco-pod-delete/exempt': 'true' });
    await start();
    expect((await t.fn.post(shell())).body).toMatchObject({ outcome: 'skipped', code: 'opt-out', reason: expect.stringMatching(/namespace default/) });
    expect(t.api.calls('DELETE')).toHaveLength(0);
  });

  it("never acts on the function's own pod, even outside the critical namespaces", async () => {
    await start({ CRITICAL_NAMESPACES: 'kube-system', POLICY: 'entries: [{name: all, match: {}, action: delete}]' });
    const r = await t.fn.post(withFields(shell(), { 'k8s.ns.name': 'openfaas-fn', 'k8s.pod.name': 'falco-pod-delete-7dc9f5fbb8-gbfk7' }));
    expect(r.body).toMatchObject({ outcome: 'skipped', code: 'own-pod' });
    expect(t.api.workloadCalls).toEqual([]);
  });

  it('writes no Event about a pod it never read for an unauthenticated alert (an invented name in kube-system)', async () => {
    await start();
    expect((await t.fn.post(withFields(shell(), { 'k8s.ns.name': 'kube-system', 'k8s.pod.name': 'invented' }))).body).toMatchObject({ outcome: 'skipped', code: 'critical-namespace' });
    await t.fn?.fn.drain();
    expect(t.api.events).toEqual([]);
    expect(t.api.requests).toEqual([]);
  });

  it('records an Event when a guard refuses what an authenticated alert asked for', async () => {
    await start({ AUTH_TOKEN_FILE: secretFile() });
    await t.fn.post(withFields(shell(), { 'k8s.ns.name': 'kube-system' }), { authorization: 'Bearer s3cr3t-value' });
    expect(t.api.calls('DELETE')).toHaveLength(0);
    await t.fn?.fn.drain();
    expect(t.api.events).toHaveLength(1);
    expect(t.api.events[0]).toMatchObject({ reason: 'FalcoResponseRefused', type: 'Warning', involvedObject: { namespace: 'kube-system', name: 'kubecon' } });
    expect(String(t.api.events[0].message)).toMatch(/refused to delete: namespace kube-system is critical.*Terminal shell in container.*critical/);
  });
});

describe('audit Events', () => {
  it('writes one refusal Event per pod per window, and at most a burst of 50 across pods, while auditing every alert', async () => {
    await start({ AUTH_TOKEN_FILE: secretFile(), AUDIT_DECLINES_PER_SECOND: '1000' });
    const auth = { authorization: 'Bearer s3cr3t-value' };
    for (let i = 0; i < 20; i++) await t.fn.post(withFields(shell(), { 'k8s.ns.name': 'kube-system' }), auth);
    await t.fn.fn.drain();
    expect(t.api.events).toHaveLength(1);
    const began = performance.now();
    await Promise.all(Array.from({ length: 100 }, (_, i) => t.fn.post(withFields(shell(), { 'k8s.ns.name': 'kube-system', 'k8s.pod.name': `p-${i}` }), auth)));
    const seconds = (performance.now() - began) / 1000;
    await t.fn.fn.drain();
    expect(t.api.events.length).toBeGreaterThanOrEqual(49);
    // 1 + a burst of 50 + what 20/s refills while the 100 alerts arrive (however slow this machine is today).
    expect(t.api.events.length).toBeLessThanOrEqual(Math.min(101, 51 + Math.ceil(20 * seconds) + 1));
    expect(t.fn.audits()).toHaveLength(120);
    expect(t.api.calls('DELETE')).toHaveLength(0);
  });

  it('creates an Event regarding the deleted pod naming rule, priority and action', async () => {
    const pod = t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    await start();
    await t.fn.post(shell());
    await t.fn.fn.drain();
    const post = t.api.calls('POST', '/api/v1/namespaces/default/events');
    expect(post).toHaveLength(1);
    expect(post[0].authorization).toBe(`Bearer ${TOKEN}`);
    expect(post[0].body).toMatchObject({
      reason: 'FalcoResponseDeleted',
      type: 'Warning',
      involvedObject: { apiVersion: 'v1', kind: 'Pod', name: 'kubecon', namespace: 'default', uid: pod.metadata.uid },
      source: { component: 'falco-pod-delete' },
    });
    expect(String((post[0].body as { message: string }).message)).toMatch(/deleted by policy entry "terminal-shell"; a bare pod: gone for good once deleted \(Falco rule "Terminal shell in container", priority critical\)/);
  });

  it('still answers deleted when the Event cannot be written', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    t.api.forbidden.add('create:events');
    await start();
    expect((await t.fn.post(shell())).body).toMatchObject({ outcome: 'deleted' });
    await t.fn.fn.drain();
    expect(t.fn.lines.some((l) => l.msg === 'could not record a Kubernetes Event')).toBe(true);
  });
});

describe('audit lines under attack', () => {
  it('say whether the request was authenticated and which peer sent it', async () => {
    await start();
    await t.fn.post(shell(), { 'x-forwarded-for': '10.1.2.3' });
    expect(t.fn.audits()[0]).toMatchObject({ authenticated: false, peer: expect.stringMatching(/127\.0\.0\.1$/), forwardedFor: '10.1.2.3' });
    await t.fn.stop();
    await start({ AUTH_TOKEN_FILE: secretFile() });
    await t.fn.post(shell(), { authorization: 'Bearer s3cr3t-value' });
    expect(t.fn.audits()[0]).toMatchObject({ authenticated: true });
  });

  it('bound declined and rejected lines, and summarise the rest by code, so a flood cannot rotate out the real lines', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    await start({ AUDIT_DECLINES_PER_SECOND: '5' });
    const began = performance.now();
    for (let i = 0; i < 100; i++) await t.fn.post(i % 2 ? '{nope' : withFields(shell(), { 'container.id': null }));
    const seconds = (performance.now() - began) / 1000;
    expect((await t.fn.post(shell())).body).toMatchObject({ outcome: 'deleted' });
    await new Promise((r) => setTimeout(r, 1200));
    const lines = t.fn.audits();
    const own = lines.filter((l) => l.outcome === 'skipped' || l.outcome === 'rejected');
    const summaries = lines.filter((l) => l.outcome === 'suppressed');
    // A burst of 10, then 5 a second while the flood lasted.
    expect(own.length).toBeLessThanOrEqual(10 + Math.ceil(5 * seconds) + 1);
    const codes: Record<string, number> = {};
    for (const s of summaries) for (const [k, v] of Object.entries(s.codes as Record<string, number>)) codes[k] = (codes[k] ?? 0) + v;
    for (const l of own) codes[l.code as string] = (codes[l.code as string] ?? 0) + 1;
    expect(codes).toEqual({ unproven: 50, unparseable: 50 });
    expect(lines.filter((l) => l.outcome === 'deleted')).toHaveLength(1);
  });
});

describe('shared secret', () => {
  const secret = secretFile;

  it('answers 401 without the token or with a wrong one, and never calls the API', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    await start({ AUTH_TOKEN_FILE: secret() });
    const none = await t.fn.post(shell());
    const wrong = await t.fn.post(shell(), { authorization: 'Bearer s3cr3t-valuE' });
    expect([none.status, wrong.status]).toEqual([401, 401]);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    expect(none.body).toMatchObject({ outcome: 'rejected', code: 'unauthorized' });
    expect(t.api.requests).toEqual([]);
    expect(t.fn.audits().map((l) => l.status)).toEqual([401, 401]);
  });

  it('says nothing about the secret in its 401: the same answer without a token and with a wrong one', async () => {
    await start({ AUTH_TOKEN_FILE: secret() });
    const none = await t.fn.post(shell());
    const wrong = await t.fn.post(shell(), { authorization: 'Bearer nope' });
    expect(none.body).toEqual(wrong.body);
    expect(none.body.reason).toBe('authentication required');
  });

  it('bounds the audit lines a flood of unauthenticated requests writes, counts every one, and summarises the rest', async () => {
    await start({ AUTH_TOKEN_FILE: secret(), METRICS_PORT: '0' });
    const began = performance.now();
    const answers = await Promise.all(Array.from({ length: 200 }, () => t.fn.post(shell(), { authorization: 'Bearer nope' })));
    const seconds = (performance.now() - began) / 1000;
    expect(answers.every((a) => a.status === 401)).toBe(true);
    const lines = () => t.fn.audits().filter((l) => l.code === 'unauthorized');
    // A burst of 20, then 10 a second for as long as the flood lasted (plus the summaries in between).
    expect(lines().length).toBeLessThanOrEqual(2 * (20 + Math.ceil(10 * seconds)) + 1);
    expect(lines().length).toBeLessThan(200);
    await new Promise((r) => setTimeout(r, 1200));
    const summary = lines().filter((l) => typeof l.suppressed === 'number');
    expect(summary.reduce((n, l) => n + (l.suppressed as number), 0) + lines().length - summary.length).toBe(200);
    const metrics = await t.fn.fn.metrics.registry.metrics();
    expect(metrics).toMatch(/falco_pod_delete_unauthorized_requests_total 200/);
  });

  it('acts when the token is right', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    await start({ AUTH_TOKEN_FILE: secret() });
    expect((await t.fn.post(shell(), { authorization: 'Bearer s3cr3t-value' })).body).toMatchObject({ outcome: 'deleted' });
  });
});

describe('policy actions', () => {
  it('isolate: ensures the deny-all NetworkPolicy, then detaches the pod under uid and resourceVersion tests', async () => {
    const pod = t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    await start({ POLICY: 'entries: [{name: keep-for-forensics, match: {rules: ["Terminal shell*"]}, action: isolate}]' });
    const r = await t.fn.post(shell());
    expect(r.body).toMatchObject({ decision: 'isolate', outcome: 'isolated' });
    expect(t.api.calls('DELETE')).toHaveLength(0);
    const np = t.api.calls('POST', '/apis/networking.k8s.io/v1/namespaces/default/networkpolicies');
    expect(np).toHaveLength(1);
    expect(np[0].body).toMatchObject({ metadata: { name: 'falco-pod-delete-quarantine' }, spec: { podSelector: { matchLabels: { 'falco-pod-delete/quarantine': 'true' } }, policyTypes: ['Ingress', 'Egress'] } });
    expect((np[0].body as { spec: Record<string, unknown> }).spec.ingress).toBeUndefined();
    const patch = t.api.calls('PATCH');
    expect(patch).toHaveLength(1);
    expect(patch[0].contentType).toBe('application/json-patch+json');
    expect(patch[0].body).toEqual([
      { op: 'test', path: '/metadata/uid', value: pod.metadata.uid },
      { op: 'test', path: '/metadata/resourceVersion', value: pod.metadata.resourceVersion },
      // Detached: the labels replaced by the quarantine label alone, the old ones kept in one annotation.
      { op: 'add', path: '/metadata/labels', value: { 'falco-pod-delete/quarantine': 'true' } },
      { op: 'add', path: '/metadata/annotations', value: { 'falco-pod-delete/isolation': expect.any(String) } },
    ]);
    const after = t.api.pods.get('default/kubecon')?.metadata as unknown as { labels: Record<string, string>; annotations: Record<string, string> };
    expect(after.labels).toEqual({ 'falco-pod-delete/quarantine': 'true' });
    expect(JSON.parse(after.annotations['falco-pod-delete/isolation'])).toEqual({ labels: { app: 'kubecon' }, detached: true, since: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), rule: 'Terminal shell in container', entry: 'keep-for-forensics' });
  });

  it('isolate: reuses an existing quarantine NetworkPolicy', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    t.api.networkPolicies.set('default/falco-pod-delete-quarantine', { metadata: { name: 'falco-pod-delete-quarantine', namespace: 'default' }, spec: { podSelector: { matchLabels: { 'falco-pod-delete/quarantine': 'true' } }, policyTypes: ['Egress', 'Ingress'] } });
    await start({ POLICY: 'entries: [{name: iso, match: {}, action: isolate}]' });
    await t.fn.post(shell());
    expect(t.api.calls('POST', '/apis/networking.k8s.io/')).toHaveLength(0);
    expect(t.api.calls('PATCH')).toHaveLength(1);
  });

  it('log: records only, with no Kubernetes call', async () => {
    await start({ POLICY: 'entries: [{name: watch, match: {}, action: log}]' });
    expect((await t.fn.post(shell())).body).toMatchObject({ decision: 'log', outcome: 'logged' });
    expect(t.api.requests).toEqual([]);
  });

  it('DRY_RUN: uses the server-side dry run and leaves the pod in place', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    await start({ DRY_RUN: 'true' });
    const r = await t.fn.post(shell());
    expect(r.body).toMatchObject({ decision: 'delete', outcome: 'dry-run', dryRun: true });
    expect(t.api.calls('DELETE')[0].body).toMatchObject({ dryRun: ['All'] });
    expect(t.api.pods.has('default/kubecon')).toBe(true);
  });

  it('GRACE_PERIOD_SECONDS and a policy entry grace period reach the DELETE body', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    await start({ GRACE_PERIOD_SECONDS: '5' });
    await t.fn.post(shell());
    expect(t.api.calls('DELETE')[0].body).toMatchObject({ gracePeriodSeconds: 5 });
  });

  it('an invalid policy stops the function at startup with the path of the bad field', () => {
    const env = { POLICY: 'entries: [{name: x, match: {}, action: explode}]' };
    expect(() => FalcoResponse.fromEnv(env, captureLogger([]))).toThrow(PolicyError);
    expect(() => FalcoResponse.fromEnv(env, captureLogger([]))).toThrow('/entries/0/action: must be one of delete, evict, isolate, log');
  });

  it('POLICY_FILE loads a mounted ConfigMap file', async () => {
    const path = join(tmpdir(), `fpd-policy-${process.pid}.yaml`);
    writeFileSync(path, 'entries:\n  - name: watch\n    match: {}\n    action: log\n');
    await start({ POLICY_FILE: path });
    expect((await t.fn.post(shell())).body).toMatchObject({ outcome: 'logged' });
  });
});

describe('token rotation', () => {
  it('uses a rewritten service-account token, and re-reads it after a 401', async () => {
    t.api.addPod({ namespace: 'default', name: 'a' });
    t.api.addPod({ namespace: 'default', name: 'b' });
    await start();
    await t.fn.post(shellFor('a'));
    t.api.tokens = ['rotated-token'];
    writeFileSync(t.sa.tokenPath, 'rotated-token');
    const r = await t.fn.post(shellFor('b'));
    expect(r.body).toMatchObject({ outcome: 'deleted' });
    expect(t.api.calls('DELETE').map((c) => c.authorization)).toEqual([`Bearer ${TOKEN}`, 'Bearer rotated-token']);
  });
});

describe('Events after the burst', () => {
  it('writes no Event while containments are under way: every POST events comes after the last DELETE, one per pod', async () => {
    // 10: the namespace's share of the default budget.
    const names = Array.from({ length: 10 }, (_, i) => `burst-${i}`);
    for (const name of names) t.api.addPod({ namespace: 'default', name, containerIds: [containerId(`default/${name}`)] });
    await start({ COORDINATION: 'single' });
    const answers = await Promise.all(names.map((n) => t.fn.post(shellFor(n))));
    expect(answers.map((a) => a.body.outcome)).toEqual(names.map(() => 'deleted'));
    await t.fn.fn.drain();
    const writes = t.api.requests.filter((r) => r.method === 'DELETE' || (r.method === 'POST' && r.path.endsWith('/events')));
    const lastDelete = writes.map((r) => r.method).lastIndexOf('DELETE');
    const firstEvent = writes.findIndex((r) => r.method === 'POST');
    expect(writes.filter((r) => r.method === 'POST')).toHaveLength(names.length);
    expect(firstEvent).toBeGreaterThan(lastDelete);
    // One for each pod contained.
    const deleted = writes.filter((r) => r.method === 'DELETE').map((r) => r.path.split('/').pop());
    const evented = writes.filter((r) => r.method === 'POST').map((r) => (r.body as { involvedObject: { name: string } }).involvedObject.name);
    expect([...evented].sort()).toEqual([...deleted].sort());
  });
});
