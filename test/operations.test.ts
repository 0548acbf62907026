// Operability: Prometheus metrics on their own port after a scripted sequence of alerts, and the explain
// command, which uses the function's own decision code and agrees with it on every fixture.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type PodRef } from '../falco-pod-delete/src/alert.js';
import { createLogger } from '../falco-pod-delete/src/audit.js';
import { loadConfig } from '../falco-pod-delete/src/config.js';
import { FalcoResponse } from '../falco-pod-delete/src/core.js';
import { explain } from '../falco-pod-delete/src/explain.js';
import type { PodSnapshot } from '../falco-pod-delete/src/kube/index.js';
import { StubKube } from './support/stub-kube.js';
import { DEFAULT_POLICY } from '../falco-pod-delete/src/policy.js';
import { freePort } from './support/process.js';
import { FakeApiServer, inClusterEnv, stageServiceAccount } from './support/apiserver.js';
import { type RunningFunction, fixture, startFunction, withFields } from './support/harness.js';

const FIXTURES = join(process.cwd(), 'test', 'data', 'falco');
const JSON_FIXTURES = readdirSync(FIXTURES).filter((f) => f.endsWith('.json')).sort();

describe('Prometheus metrics', () => {
  let api: FakeApiServer;
  let fn: RunningFunction;
  let port: number;
  beforeAll(async () => {
    api = await new FakeApiServer('m').start();
    port = await freePort();
    fn = await startFunction(inClusterEnv(api, stageServiceAccount('m').prefix, { METRICS_PORT: String(port) }));
  });
  afterAll(async () => {
    await fn.stop();
    await api.stop();
  });

  const scrape = async () => (await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
  const value = (text: string, series: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.split(' ')[1]);
  };

  it('counts alerts, decisions, API calls and latencies after a scripted sequence', async () => {
    const shell = fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json');
    api.addPod({ namespace: 'default', name: 'kubecon', containerIds: ['ee97d9c4186f' + '4'.repeat(52)] });
    api.addPod({ namespace: 'team-a', name: 'web' });
    api.forbidden.add('get:namespaces');
    expect((await fn.post(shell)).status).toBe(403); // failed: forbidden get namespaces
    api.forbidden.clear();
    expect((await fn.post(shell)).body.outcome).toBe('deleted');
    expect((await fn.post(shell)).body.outcome).toBe('duplicate');
    expect((await fn.post(withFields(shell, { 'k8s.ns.name': 'kube-system' }))).body.code).toBe('critical-namespace');
    expect((await fn.post('{nope')).status).toBe(400);
    expect((await fn.post(fixture('06-falcosidekick-test-event-input.json'))).body.code).toBe('test-event');
    await fn.fn.drain();

    const text = await scrape();
    expect(value(text, 'falco_pod_delete_alerts_total{envelope="plain"}')).toBe(5);
    expect(value(text, 'falco_pod_delete_alerts_total{envelope="unknown"}')).toBe(1);
    expect(value(text, 'falco_pod_delete_decisions_total{decision="delete",outcome="deleted",code="delete"}')).toBe(1);
    expect(value(text, 'falco_pod_delete_decisions_total{decision="delete",outcome="duplicate",code="duplicate"}')).toBe(1);
    expect(value(text, 'falco_pod_delete_decisions_total{decision="delete",outcome="failed",code="forbidden"}')).toBe(1);
    expect(value(text, 'falco_pod_delete_decisions_total{decision="skip",outcome="skipped",code="critical-namespace"}')).toBe(1);
    expect(value(text, 'falco_pod_delete_decisions_total{decision="skip",outcome="skipped",code="test-event"}')).toBe(1);
    expect(value(text, 'falco_pod_delete_decisions_total{decision="reject",outcome="rejected",code="unparseable"}')).toBe(1);
    expect(value(text, 'falco_pod_delete_kube_requests_total{verb="delete",resource="pods",code="2xx"}')).toBe(1);
    expect(value(text, 'falco_pod_delete_kube_requests_total{verb="get",resource="namespaces",code="403"}')).toBe(1);
    expect(value(text, 'falco_pod_delete_kube_requests_total{verb="get",resource="pods",code="2xx"}')).toBe(2);
    // The deletion's Event; the critical-namespace refusal of an unauthenticated alert writes none (the pod was never read).
    expect(value(text, 'falco_pod_delete_kube_requests_total{verb="create",resource="events",code="2xx"}')).toBe(1);
    expect(value(text, 'falco_pod_delete_kube_request_duration_seconds_count{verb="delete",resource="pods"}')).toBe(1);
    expect(value(text, 'falco_pod_delete_alert_duration_seconds_count{decision="delete"}')).toBe(3);
    expect(value(text, 'falco_pod_delete_coalescing_entries')).toBe(1);
    expect(value(text, 'falco_pod_delete_actions_in_window')).toBe(1);
    expect(value(text, 'falco_pod_delete_action_limit')).toBe(20);
    expect(text).toMatch(/^falco_pod_delete_process_resident_memory_bytes \d+/m);
  });

  it('serves metrics only on their own port, not through the function port the gateway exposes', async () => {
    expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    const viaFunction = await fetch(`${fn.url}metrics`);
    expect(viaFunction.status).toBe(405);
    expect(await viaFunction.text()).not.toMatch(/falco_pod_delete_/);
  });
});

/** A cluster in which every named pod exists, runs the alert's container and has the alert's UID. */
class AgreeableKube extends StubKube {
  private alert: Record<string, unknown> = {};
  use(alert: Record<string, unknown>) {
    this.alert = alert;
  }
  protected pod(p: PodRef): PodSnapshot {
    const f = (this.alert.output_fields ?? {}) as Record<string, unknown>;
    const id = typeof f['container.id'] === 'string' ? f['container.id'] : '';
    return { ...p, uid: typeof f['k8s.pod.uid'] === 'string' ? f['k8s.pod.uid'] : 'uid', resourceVersion: '1', nodeName: 'worker-1', labels: {}, containerIds: [`${id}${'0'.repeat(64 - id.length)}`], deleting: false, owner: undefined, ready: true, containers: ['main'], manifest: {} };
  }
}

describe('explain', () => {
  const config = loadConfig({});
  const guards = { criticalNamespaces: config.criticalNamespaces, self: { namespace: undefined, name: undefined }, maxAlertAgeSeconds: config.maxAlertAgeSeconds, requireProof: config.authTokenFile === undefined };

  it.each(JSON_FIXTURES)('agrees with the function on %s', async (file) => {
    const alert = fixture(file);
    const kube = new AgreeableKube();
    kube.use(alert);
    const discard = new Writable({ write: (_c, _e, cb) => cb() });
    const fn = new FalcoResponse({ config, policy: DEFAULT_POLICY, kube, logger: createLogger('silent', discard as unknown as Parameters<typeof createLogger>[1]), namespace: 'openfaas-fn', cluster: 'in-cluster' });
    const answer = await fn.handle({ headers: { 'content-type': 'application/json' }, body: alert });
    const e = await explain(alert, DEFAULT_POLICY, guards);
    expect(e.decision).toBe(answer.body.decision);
    if (e.verdict === 'act') expect(answer.body.outcome).toBe('deleted');
    else expect(answer.body.code).toBe(e.code);
  });

  describe('the command', () => {
    const run = (args: string[], input: string, env: Record<string, string> = {}) =>
      spawnSync(process.execPath, ['bin/falco-pod-delete.mjs', 'explain', ...args], { input, env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' });
    beforeAll(() => {
      execFileSync(process.execPath, ['bin/falco-pod-delete.mjs', 'explain'], { input: '' });
    }, 60_000);

    it('exits 1 and says why when an alert would be acted on', () => {
      const r = run([], JSON.stringify(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json')));
      expect(r.status).toBe(1);
      expect(r.stdout).toMatch(/#1 Terminal shell in container \[critical\] default\/kubecon: DELETE \(delete\)/);
      expect(r.stdout).toMatch(/policy entry "terminal-shell" matches/);
      expect(r.stdout).toMatch(/container ee97d9c4186f belongs to the pod/);
    });

    it('exits 0 for a file of alerts none of which would be acted on, naming each reason', () => {
      const lines = ['05-syscall-write-below-binary-dir-no-k8s-falcosidekick-readme.json', '06-falcosidekick-test-event-input.json', '03-syscall-contact-k8s-api-from-openfaas-fn-self.json'].map((f) => JSON.stringify(fixture(f))).join('\n');
      const r = run(['--json'], lines);
      expect(r.status).toBe(0);
      expect(r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { code: string }).code)).toEqual(['no-pod', 'test-event', 'critical-namespace']);
    });

    it('takes the policy to test as an argument, and reports the entry that matched', () => {
      const path = join(process.cwd(), 'test', 'data', 'exec-policy.yaml');
      // k8s_audit alerts carry no container id: acted on only when callers authenticate.
      const token = join(mkdtempSync(join(tmpdir(), 'fpd-tok-')), 'token');
      writeFileSync(token, 's3cr3t');
      const r = run([path, '--json'], JSON.stringify(fixture('08-k8saudit-attach-exec-pod.json')), { AUTH_TOKEN_FILE: token });
      expect(r.status).toBe(1);
      expect(JSON.parse(r.stdout)).toMatchObject({ verdict: 'act', decision: 'isolate', entry: 'exec-into-pods', pod: 'default/kubecon' });
    });

    it('names an unproven alert as the function would decline it without caller authentication', () => {
      const path = join(process.cwd(), 'test', 'data', 'exec-policy.yaml');
      const r = run([path, '--json'], JSON.stringify(fixture('08-k8saudit-attach-exec-pod.json')));
      expect(r.status).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ verdict: 'decline', code: 'unproven', pod: 'default/kubecon' });
    });

    it('uses --now for historical fixtures, and declines them as stale without it', () => {
      const alert = JSON.stringify(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json', { fresh: false }));
      expect(run([], alert).stdout).toMatch(/DECLINE \(stale\)/);
      expect(run(['--now'], alert).status).toBe(1);
    });

    it('exits 2 naming the problem for a bad policy or input', () => {
      const bad = run([], 'x', { POLICY: 'entries: [{name: a, match: {}, action: nuke}]' });
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/\/entries\/0\/action: must be one of delete, evict, isolate, log/);
      const notJson = run([], '{"rule":\n{');
      expect(notJson.status).toBe(2);
      expect(notJson.stderr).toMatch(/line 1 is not JSON/);
    });
  });
});

describe('monitoring shipped in deploy/monitoring', () => {
  const names = (text: string) => new Set([...text.matchAll(/\bfalco_pod_delete_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')));

  it('the alerting rules and the dashboard name only metrics a live /metrics exports', async () => {
    const port = await freePort();
    const api = await new FakeApiServer('mon').start();
    const fn = await startFunction(inClusterEnv(api, stageServiceAccount('mon').prefix, { METRICS_PORT: String(port), AUTH_TOKEN_FILE: '' }));
    try {
      api.addPod({ namespace: 'default', name: 'kubecon', containerIds: ['ee97d9c4186f' + 'a'.repeat(52)] });
      await fn.post(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'));
      await fn.post('{not json');
      // The metrics server listens a moment after the function's port (its own listen): ask until it answers.
      let live = '';
      for (let i = 0; i < 50 && live === ''; i++) {
        live = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), async () => {
          await new Promise((r) => setTimeout(r, 100));
          return '';
        });
      }
      const exported = new Set([...live.matchAll(/^# TYPE (falco_pod_delete_[a-z_]+) /gm)].map((m) => m[1]));
      const used = new Set([...names(readFileSync('deploy/monitoring/alerts.yaml', 'utf8')), ...names(readFileSync('deploy/monitoring/dashboard.json', 'utf8'))]);
      expect(used.size).toBeGreaterThanOrEqual(7);
      expect([...used].filter((n) => !exported.has(n))).toEqual([]);
    } finally {
      await fn.stop();
      await api.stop();
    }
  });

  const promtool = spawnSync('promtool', ['--version']).status === 0;
  if (!promtool) process.stderr.write('promtool checks skipped: install Prometheus\'s promtool (Debian: apt-get install prometheus)\n');
  (promtool || process.env.FPD_REQUIRE_REAL === '1' ? it : it.skip)('promtool checks the rules and its unit tests fire each alert', () => {
    const check = spawnSync('promtool', ['check', 'rules', 'deploy/monitoring/alerts.yaml'], { encoding: 'utf8' });
    expect([check.status, check.stdout]).toEqual([0, expect.stringContaining('SUCCESS: 4 rules found')]);
    const tests = spawnSync('promtool', ['test', 'rules', 'alerts.test.yaml'], { cwd: 'test/data/monitoring', encoding: 'utf8' });
    expect([tests.status, tests.stdout + tests.stderr]).toEqual([0, expect.stringContaining('SUCCESS')]);
  });
});
