// Faults and hostile conditions: retries, deadlines, the in-flight cap, an unreachable API, async mode,
// draining on SIGTERM, and bounded memory.
import { type ChildProcess, execFileSync } from 'node:child_process';
import { spawnFunction } from './support/process.js';
import { createServer } from 'node:net';
import { containerId, inClusterEnv, stageServiceAccount } from './support/apiserver.js';
import { Writable } from 'node:stream';
import { fixture, startFunction, withFields, withStandIn } from './support/harness.js';
import { createLogger } from '../falco-pod-delete/src/audit.js';
import { FalcoResponse } from '../falco-pod-delete/src/core.js';

const TOKEN = 'reliability-token';
const CONTAINER = 'ee97d9c4186f' + '3'.repeat(52);
const shell = () => fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json');
const shellFor = (name: string) => withFields(shell(), { 'k8s.pod.name': name, 'container.id': containerId(`default/${name}`).slice(0, 12) });

const t = withStandIn(TOKEN);

/** A loopback port nothing listens on (an API server that cannot be reached). */
async function closedPort(): Promise<number> {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as { port: number }).port;
  await new Promise((r) => closed.close(r));
  return port;
}
const start = t.start;

describe('retries within the deadline', () => {
  it('retries a burst of 503s and then deletes, keeping the UID precondition on every attempt', async () => {
    const pod = t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    t.api.fail({ kind: 'status', code: 503 }, { method: 'DELETE', times: 3 });
    const f = await start();
    expect((await f.post(shell())).body).toMatchObject({ outcome: 'deleted' });
    const deletes = t.api.calls('DELETE');
    expect(deletes).toHaveLength(4);
    for (const d of deletes) expect(d.body).toMatchObject({ preconditions: { uid: pod.metadata.uid } });
  });

  it('retries after a connection reset', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    t.api.fail({ kind: 'reset' }, { method: 'GET', path: /\/pods\// });
    const f = await start();
    expect((await f.post(shell())).body).toMatchObject({ outcome: 'deleted' });
    expect(t.api.calls('GET', '/api/v1/namespaces/default/pods/').length).toBe(2);
  });

  it.each([400, 403, 404, 422])('does not retry a %i', async (code) => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    t.api.fail({ kind: 'status', code }, { method: 'DELETE', times: 5 });
    const f = await start();
    await f.post(shell());
    expect(t.api.calls('DELETE', '/api/v1/')).toHaveLength(1);
  });

  it('after a 409 (not the version verified), reads the pod and decides again, at most three DELETEs in all, then fails with conflict', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    t.api.fail({ kind: 'status', code: 409, reason: 'Conflict', message: 'the ResourceVersion in the precondition (1) does not match the ResourceVersion in record (2)' }, { method: 'DELETE', times: 5 });
    const f = await start();
    const r = await f.post(shell());
    expect(r.body).toMatchObject({ outcome: 'failed', code: 'conflict' });
    expect(t.api.calls('DELETE', '/api/v1/')).toHaveLength(3);
    expect(t.api.calls('GET', '/api/v1/namespaces/default/pods/')).toHaveLength(3);
  });

  it('answers 502 for a truncated body, and serves the next alert', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    t.api.fail({ kind: 'garbage', code: 200, text: '{"kind":"Pod","apiVersion":"v1","metadata":{"name":"kub' }, { method: 'GET', path: /\/pods\// });
    const f = await start();
    const r = await f.post(shell());
    expect(r.status).toBe(502);
    expect(t.api.calls('DELETE')).toHaveLength(0);
    expect((await f.post(shell())).body).toMatchObject({ outcome: 'deleted' });
  });

  it('answers 503 within the deadline when the API cannot be reached at all, and keeps serving', async () => {
    const port = await closedPort();
    t.fn = await startFunction({ ...inClusterEnv(t.api, t.sa.prefix), KUBERNETES_SERVICE_PORT: String(port), ALERT_DEADLINE_MS: '1500' });
    const started = Date.now();
    const r = await t.fn.post(shell());
    expect(r.status).toBe(503);
    expect(r.body).toMatchObject({ outcome: 'failed', code: 'unavailable', reason: expect.stringMatching(/cannot be reached: ECONNREFUSED/) });
    expect(Date.now() - started).toBeLessThan(3000);
    expect((await t.fn.post(withFields(shell(), { 'k8s.ns.name': 'kube-system' }))).status).toBe(200);
  });

  it('keeps at most MAX_INFLIGHT_API_CALLS calls in flight; the rest wait their turn', async () => {
    for (let i = 0; i < 6; i++) t.api.addPod({ namespace: 'default', name: `p${i}` });
    t.api.fail({ kind: 'delay', ms: 100 }, { times: 100 });
    const f = await start({ MAX_INFLIGHT_API_CALLS: '2', RECORD_EVENTS: 'false' });
    const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => f.post(shellFor(`p${i}`))));
    expect(answers.map((a) => a.body.outcome)).toEqual(Array(6).fill('deleted'));
    expect(t.api.maxInFlight).toBe(2);
  });
});

describe('readiness', () => {
  it('/_/ready says 503 starting until the first reservation of the shared budget is made; /_/health is 200 all along', async () => {
    t.api.fail({ kind: 'delay', ms: 600 }, { method: 'GET', path: /\/leases\//, times: 1 });
    t.fn = await startFunction(inClusterEnv(t.api, t.sa.prefix, {}));
    const ready = await fetch(`${t.fn.url}_/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'starting' });
    expect((await fetch(`${t.fn.url}_/health`)).status).toBe(200);
    await t.fn.fn.start();
    await new Promise((r) => setImmediate(r));
    expect((await fetch(`${t.fn.url}_/ready`)).status).toBe(200);
    expect(t.api.calls('GET').some((c) => c.path.includes('/leases/'))).toBe(true);
  });

  it('becomes ready when that reservation fails (an API that cannot be reached): alerts are answered, and say why', async () => {
    const port = await closedPort();
    t.fn = await startFunction({ ...inClusterEnv(t.api, t.sa.prefix), KUBERNETES_SERVICE_PORT: String(port), ALERT_DEADLINE_MS: '1000' });
    await t.fn.fn.start();
    await new Promise((r) => setImmediate(r));
    expect((await fetch(`${t.fn.url}_/ready`)).status).toBe(200);
    expect(t.fn.lines.map((l) => String(l.msg))).toContain('cannot reserve slots of the shared budget yet: the first alert will');
  });
});

describe('RESPONSE_MODE=async', () => {
  it('answers 202 once decided, acts in the background, and audits the final outcome once', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    t.api.fail({ kind: 'delay', ms: 400 }, { method: 'DELETE' });
    const f = await start({ RESPONSE_MODE: 'async' });
    const started = Date.now();
    const r = await f.post(shell());
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ decision: 'delete', outcome: 'accepted', pod: 'kubecon' });
    expect(Date.now() - started).toBeLessThan(350);
    expect(f.audits()).toHaveLength(0);
    await f.fn.drain();
    expect(f.audits()).toEqual([expect.objectContaining({ outcome: 'deleted', status: 200, pod: 'kubecon' })]);
    expect(t.api.calls('DELETE')).toHaveLength(1);
    expect(t.api.events).toHaveLength(1);
  });

  it('still answers declines and bad input synchronously', async () => {
    const f = await start({ RESPONSE_MODE: 'async' });
    expect((await f.post(withFields(shell(), { 'k8s.ns.name': 'kube-system' }))).status).toBe(200);
    expect((await f.post('{bad')).status).toBe(400);
  });
});

describe('SIGTERM', () => {
  let child: ChildProcess | undefined;
  beforeAll(() => {
    execFileSync('npm', ['run', '-s', 'build'], { stdio: 'ignore' });
  }, 120_000);
  afterEach(() => child?.kill('SIGKILL'));

  it('lets an alert waiting on a slow API finish, then exits 0', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    t.api.fail({ kind: 'delay', ms: 800 }, { method: 'DELETE' });
    const f = await spawnFunction(['dist/index.mjs'], inClusterEnv(t.api, stageServiceAccount(TOKEN).prefix));
    child = f.child;
    const answer = f.post(shell());
    while (t.api.calls('DELETE').length === 0) await new Promise((r) => setTimeout(r, 10));
    f.child.kill('SIGTERM');
    const r = await answer;
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ outcome: 'deleted' });
    expect(await f.exited).toBe(0);
    expect(f.stdout.join('\n')).toMatch(/"audit":true.*"outcome":"deleted"/);
    await expect(fetch(`${f.url}_/health`)).rejects.toThrow();
  });
});

describe('bounded memory', () => {
  it('keeps the coalescing map under its cap after 100,000 alerts for distinct pods', async () => {
    const discard = new Writable({ write: (_c, _e, cb) => cb() });
    const f = FalcoResponse.fromEnv({ LOG_LEVEL: 'silent' }, createLogger('silent', discard as unknown as Parameters<typeof createLogger>[1]));
    const alert = shell();
    const fields = alert.output_fields as Record<string, unknown>;
    const gc = (globalThis as { gc?: () => void }).gc;
    const heap = () => {
      gc?.();
      return process.memoryUsage().heapUsed;
    };
    const batch = async (from: number) => {
      for (let i = from; i < from + 50_000; i++) {
        fields['k8s.pod.name'] = `pod-${i}`;
        const r = await f.handle({ headers: {}, body: alert });
        if (r.status !== 200) throw new Error(`alert ${i}: ${r.status}`);
      }
    };
    await batch(0);
    const afterFirstHalf = heap();
    await batch(50_000);
    const afterSecondHalf = heap();
    expect(f.responder.coalescer.size).toBeLessThanOrEqual(10_000);
    // Flat: the second 50,000 distinct pods add (almost) nothing over the first.
    if (gc) expect(afterSecondHalf - afterFirstHalf).toBeLessThan(8 * 1024 * 1024);
  }, 120_000);
});

describe('bounded echo: what an alert repeats is capped', () => {
  const hostile = (value: string) => ({ ...shell(), uuid: 'echo-1', output_fields: { ...(shell().output_fields as Record<string, unknown>), 'k8s.ns.name': value } });

  it('rejects a 100 KB namespace with a short reason, and its audit line stays under 4 KiB', async () => {
    const f = await start();
    const r = await f.post(hostile('a'.repeat(100_000)));
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ code: 'invalid-name' });
    expect(String(r.body.reason)).toMatch(/^namespace "a{128}"… \(100000 characters\) is not a valid Kubernetes namespace name/);
    expect(t.api.requests).toHaveLength(0);
    const line = JSON.stringify(f.audits()[0]);
    expect(line.length).toBeLessThan(4096);
  });

  it('escapes control characters an alert puts in a value it repeats', async () => {
    const f = await start();
    const r = await f.post(hostile('bad\nname'));
    expect(String(r.body.reason)).toContain('namespace "bad\\nname" is not');
  });
});

describe('evidence before the action (stand-in: the real server has no kubelet to serve logs)', () => {
  const EVIDENCE = 'entries: [{name: shells, match: {rules: ["Terminal shell in container"]}, action: delete, evidence: {logs: true, logLines: 3, logBytes: 40}}]';

  it('keeps the last logLines lines, at most logBytes, in a record of its own written before the DELETE', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    t.api.logs.set('default/kubecon/main', Array.from({ length: 100 }, (_, i) => `line ${i} ${'x'.repeat(20)}`).join('\n') + '\n');
    const f = await start({ POLICY: EVIDENCE });
    const r = await f.post(shell());
    expect(r.body).toMatchObject({ outcome: 'deleted', evidence: { written: ['manifest', 'log:main'], missing: [] } });
    const log = f.lines.find((l) => l.evidence === true && l.kind === 'log') as Record<string, unknown>;
    expect(log).toMatchObject({ container: 'main', tailLines: 3, namespace: 'default', pod: 'kubecon' });
    expect(String(log.text).length).toBeLessThanOrEqual(40);
    expect(String(log.text)).toMatch(/^line 97 /);
    const logCall = t.api.requests.findIndex((c) => c.path.endsWith('/log'));
    const deleteCall = t.api.requests.findIndex((c) => c.method === 'DELETE');
    expect(t.api.requests[logCall].query).toMatchObject({ container: 'main', tailLines: '3', limitBytes: '40' });
    expect(logCall).toBeGreaterThanOrEqual(0);
    expect(deleteCall).toBeGreaterThan(logCall);
    const audit = f.audits()[0];
    expect(audit.evidence).toEqual({ written: ['manifest', 'log:main'], missing: [] });
  });

  it('contains the pod anyway when the log read hangs, and says the log is missing', async () => {
    t.api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [CONTAINER] });
    t.api.fail({ kind: 'hang' }, { method: 'GET', path: /\/log$/, times: 5 });
    const f = await start({ POLICY: EVIDENCE });
    const r = await f.post(shell());
    expect(r.body).toMatchObject({ outcome: 'deleted', evidence: { written: ['manifest'], missing: [expect.stringMatching(/^log:main: .*in time/)] } });
    expect(t.api.calls('DELETE')).toHaveLength(1);
  });
});
