// The other ways Falco alerts reach the function: Knative (CloudEvents), Kubeless, Google Cloud Functions.
// Each runs the real SDK or runtime where the registry has one, against the stand-in Kubernetes API.
import { track } from './support/children.js';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire, Module } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import vm from 'node:vm';
import { CloudEvent, HTTP, emitterFor, httpTransport } from 'cloudevents';
import { freePort } from './support/process.js';
import { FakeApiServer, inClusterEnv, stageServiceAccount, tlsFiles } from './support/apiserver.js';
import { type RunningFunction, fixture, startFunction } from './support/harness.js';

const TOKEN = 'platform-token';
const KUBECON = 'ee97d9c4186f' + '1'.repeat(52);
const MYSQL = 'f29b261f8831' + '2'.repeat(52);

let api: FakeApiServer;
beforeEach(async () => {
  api = await new FakeApiServer(TOKEN).start();
});
afterEach(async () => {
  await api.stop();
});

function falcoEvent(alert: Record<string, unknown>, over: Record<string, unknown> = {}) {
  return new CloudEvent({
    type: 'falco.rule.output.v1',
    source: 'https://falco.org',
    datacontenttype: 'application/json',
    data: alert,
    priority: String(alert.priority),
    rule: String(alert.rule),
    eventsource: 'syscall',
    hostname: 'falco-xczjd',
    knativearrivaltime: new Date().toISOString(),
    ...over,
  });
}

/** The alert and context of test/data/falco/21 (a CloudEvent as the Knative broker delivered it in 2021). */
function legacyFalcoDrop(): { alert: Record<string, unknown>; source: string; extensions: Record<string, string> } {
  const text = readFileSync(join(process.cwd(), 'test', 'data', 'falco', '21-cloudevent-legacy-falco-drop.txt'), 'utf8');
  const alert = JSON.parse(text.slice(text.indexOf('{'))) as Record<string, unknown>;
  alert.time = new Date().toISOString();
  const source = /^\s+source: (\S+)$/m.exec(text)?.[1] ?? '';
  return { alert, source, extensions: { foo: 'bar', priority: 'Notice', rule: 'Terminal shell in container' } };
}

describe('Knative Eventing (CloudEvents through a Broker and Trigger)', () => {
  let fn: RunningFunction;
  afterEach(async () => fn?.stop());
  const start = async () => (fn = await startFunction(inClusterEnv(api, stageServiceAccount(TOKEN).prefix)));

  async function send(message: { headers: Record<string, unknown>; body: unknown }) {
    const r = await fetch(fn.url, { method: 'POST', headers: message.headers as Record<string, string>, body: message.body as string });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  }

  it('deletes the pod for a binary-mode event as Falcosidekick sends it', async () => {
    const pod = api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [KUBECON] });
    await start();
    const event = falcoEvent(fixture('01-syscall-terminal-shell-falco-docs.json'));
    const r = await send(HTTP.binary(event));
    expect(r).toMatchObject({ status: 200, body: { outcome: 'deleted', pod: 'kubecon', uuid: event.id } });
    expect(api.calls('DELETE')).toEqual([expect.objectContaining({ path: '/api/v1/namespaces/default/pods/kubecon', authorization: `Bearer ${TOKEN}`, body: expect.objectContaining({ preconditions: { uid: pod.metadata.uid, resourceVersion: pod.metadata.resourceVersion } }) })]);
    expect(fn.audits()[0]).toMatchObject({ envelope: 'cloudevent', outcome: 'deleted', uuid: event.id });
  });

  it('deletes the pod for a structured-mode event', async () => {
    api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [KUBECON] });
    await start();
    const r = await send(HTTP.structured(falcoEvent(fixture('01-syscall-terminal-shell-falco-docs.json'))));
    expect(r.body).toMatchObject({ outcome: 'deleted' });
    expect(api.calls('DELETE')).toHaveLength(1);
  });

  it('accepts the pre-2023 source falco.org (fixture 21, as the broker delivered it)', async () => {
    api.addPod({ namespace: 'default', name: 'mysql-db-7d59548d75-wh44s', containerIds: [MYSQL] });
    await start();
    const { alert, source, extensions } = legacyFalcoDrop();
    expect(source).toBe('falco.org');
    const event = new CloudEvent({ type: 'falco.rule.output.v1', source, id: 'f7628198-3822-4c98-ac3f-71770e272a16', datacontenttype: 'application/json', data: alert, ...extensions });
    const r = await send(HTTP.binary(event));
    expect(r.body).toMatchObject({ outcome: 'deleted', pod: 'mysql-db-7d59548d75-wh44s' });
  });

  it("is reached by the SDK's own HTTP emitter", async () => {
    api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [KUBECON] });
    await start();
    await emitterFor(httpTransport(fn.url))(falcoEvent(fixture('01-syscall-terminal-shell-falco-docs.json')));
    expect(api.calls('DELETE')).toHaveLength(1);
  });

  it.each([
    ['another event type', () => HTTP.binary(falcoEvent(fixture('01-syscall-terminal-shell-falco-docs.json'), { type: 'dev.knative.sources.ping' })), /not falco.rule.output.v1/],
    ['a source that is not Falcosidekick', () => HTTP.binary(falcoEvent(fixture('01-syscall-terminal-shell-falco-docs.json'), { source: 'https://example.com' })), /source "https:\/\/example.com"/],
    ['an event without data', () => HTTP.binary(new CloudEvent({ type: 'falco.rule.output.v1', source: 'https://falco.org' })), /no alert in its data|the alert is missing "rule"/],
    ['data that is not an alert', () => HTTP.binary(falcoEvent({ hello: 'world' })), /invalid alert/],
    ['a structured event that is not JSON', () => ({ headers: { 'content-type': 'application/cloudevents+json' }, body: '{"specversion":' }), /not valid JSON/],
  ])('declines %s with a 400 and no API call', async (_name, message, reason) => {
    api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [KUBECON] });
    await start();
    const r = await send(message() as { headers: Record<string, unknown>; body: unknown });
    expect(r.status).toBe(400);
    expect(String(r.body.reason)).toMatch(reason);
    expect(api.requests).toEqual([]);
    expect(fn.audits()).toHaveLength(1);
  });
});

describe('Kubeless', () => {
  let fn: RunningFunction;
  afterEach(async () => fn?.stop());

  it('takes Falcosidekick kubeless-output requests (event-* headers, plain alert) on the ordinary endpoint', async () => {
    api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [KUBECON] });
    fn = await startFunction(inClusterEnv(api, stageServiceAccount(TOKEN).prefix));
    const r = await fn.post(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'), { 'content-type': 'application/json', 'event-id': 'k-1', 'event-type': 'falco', 'event-namespace': 'kubeless' });
    expect(r.body).toMatchObject({ outcome: 'deleted' });
    expect(fn.audits()[0]).toMatchObject({ envelope: 'kubeless' });
  });

  it('unwraps a Kubeless event envelope posted to the ordinary endpoint', async () => {
    api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [KUBECON] });
    fn = await startFunction(inClusterEnv(api, stageServiceAccount(TOKEN).prefix));
    const r = await fn.post({ data: fixture('01-syscall-terminal-shell-falco-docs.json'), 'event-id': 'k-2', 'event-type': 'falco', 'event-namespace': 'kubeless' });
    expect(r.body).toMatchObject({ outcome: 'deleted', uuid: 'k-2' });
    expect(api.calls('DELETE')).toHaveLength(1);
  });

  it('refuses an envelope that also carries alert fields', async () => {
    fn = await startFunction(inClusterEnv(api, stageServiceAccount(TOKEN).prefix));
    const alert = fixture('01-syscall-terminal-shell-falco-docs.json');
    const r = await fn.post({ ...alert, data: alert });
    expect(r.status).toBe(400);
    expect(String(r.body.reason)).toMatch(/ambiguous/);
    expect(api.requests).toEqual([]);
  });

  describe('the bundled handler loaded the way the Kubeless Node runtime loads it', () => {
    const file = resolve('dist/kubeless/handler.js');
    beforeAll(() => {
      execFileSync(process.execPath, ['scripts/build-platforms.mjs'], { stdio: 'ignore' });
    }, 120_000);

    /** kubeless.js: run the file as a vm.Script per request, with a require that hands over the exports. */
    function invoke(event: Record<string, unknown>, env: Record<string, string>): Promise<{ status: number; body: unknown }> {
      Object.assign(process.env, env);
      const code = readFileSync(file, 'utf8');
      const script = new vm.Script(`${code}\nrequire('kubeless')(module.exports);\n`, { filename: file });
      const realRequire = createRequire(file);
      let status = 200;
      const response = { status: (c: number) => (status = c), set: () => undefined };
      return new Promise((resolveCall, reject) => {
        const sandbox = Object.assign({}, global, {
          __filename: file,
          __dirname: resolve('dist/kubeless'),
          module: new Module(file),
          require: (p: string) =>
            p === 'kubeless'
              ? (exported: { handler: (e: unknown, c: unknown) => Promise<unknown> }) =>
                  Promise.resolve(exported.handler({ ...event, extensions: { request: { headers: { 'content-type': 'application/json' } }, response } }, { 'function-name': 'handler', runtime: 'nodejs18' }))
                    .then((body) => resolveCall({ status, body }), reject)
              : realRequire(p),
        });
        script.runInNewContext(sandbox);
      });
    }

    it('deletes the pod an alert names, keeping one instance across per-request contexts', async () => {
      api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [KUBECON] });
      const env = { ...inClusterEnv(api, stageServiceAccount(TOKEN).prefix), LOG_LEVEL: 'silent' };
      const event = { data: fixture('01-syscall-terminal-shell-falco-docs.json'), 'event-id': 'k-3', 'event-type': 'falco', 'event-namespace': 'kubeless' };
      const first = await invoke(event, env);
      expect(first).toMatchObject({ status: 200, body: { outcome: 'deleted', pod: 'kubecon', uuid: 'k-3' } });
      const second = await invoke({ ...event, 'event-id': 'k-4' }, env);
      expect(second.body).toMatchObject({ outcome: 'duplicate' });
      expect(api.calls('DELETE')).toHaveLength(1);
      const bad = await invoke({ data: '{not json', 'event-type': 'falco' }, env);
      expect(bad.status).toBe(400);
      expect(api.calls('DELETE')).toHaveLength(1);
    });
  });
});

describe('Google Cloud Functions (functions-framework, configured from a kubeconfig)', () => {
  let child: ChildProcess | undefined;
  afterEach(() => child?.kill('SIGKILL'));
  beforeAll(() => {
    execFileSync(process.execPath, ['scripts/build-platforms.mjs'], { stdio: 'ignore' });
  }, 120_000);

  function kubeconfig(): string {
    return [
      'apiVersion: v1', 'kind: Config', 'current-context: gke',
      'clusters:', `- name: gke`, `  cluster: { server: "${api.url}", certificate-authority: "${tlsFiles().caPath}" }`,
      'users:', '- name: falco-pod-delete', `  user: { token: "${TOKEN}" }`,
      'contexts:', '- name: gke', '  context: { cluster: gke, user: falco-pod-delete, namespace: openfaas-fn }',
    ].join('\n');
  }

  async function framework(env: Record<string, string>): Promise<string> {
    const port = await freePort();
    const main = resolve('node_modules/@google-cloud/functions-framework/build/src/main.js');
    child = track(spawn(process.execPath, [main, '--target=falcoPodDelete', '--source=dist/gcf', `--port=${port}`], { detached: true, env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', METRICS_PORT: '0', POD_VIEW: 'off', ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    for (let i = 0; i < 100; i++) {
      try {
        await fetch(`http://127.0.0.1:${port}/`, { method: 'GET' });
        return `http://127.0.0.1:${port}/`;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error(`functions-framework did not start: ${err}`);
  }

  const post = async (url: string, body: string) => {
    const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    return { status: r.status, body: (await r.json().catch(() => ({}))) as Record<string, unknown> };
  };

  it('deletes the pod with the kubeconfig from KUBECONFIG_FILE', async () => {
    const pod = api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [KUBECON] });
    const path = join(tmpdir(), `fpd-kubeconfig-${process.pid}.yaml`);
    writeFileSync(path, kubeconfig());
    const url = await framework({ KUBECONFIG_FILE: path });
    const r = await post(url, JSON.stringify(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json')));
    expect(r).toMatchObject({ status: 200, body: { outcome: 'deleted', pod: 'kubecon' } });
    // Outside the cluster, the shared budget goes to the kubeconfig context's namespace.
    expect([...api.leases.keys()]).toEqual(['openfaas-fn/fpd-budget']);
    expect(api.calls('DELETE')).toEqual([expect.objectContaining({ path: '/api/v1/namespaces/default/pods/kubecon', authorization: `Bearer ${TOKEN}`, body: expect.objectContaining({ preconditions: { uid: pod.metadata.uid, resourceVersion: pod.metadata.resourceVersion } }) })]);
  });

  it('deletes the pod with the kubeconfig from KUBECONFIG_DATA, and answers bad input with a 400 and no call', async () => {
    api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [KUBECON] });
    const url = await framework({ KUBECONFIG_DATA: kubeconfig() });
    const bad = await post(url, JSON.stringify({ rule: 'Terminal shell in container' }));
    expect(bad.status).toBe(400);
    expect(String(bad.body.reason)).toMatch(/missing "priority"/);
    // No call for the bad alert: only the shared budget's first reservation, made at start.
    expect(api.requests.filter((r) => !r.path.includes('/leases'))).toEqual([]);
    const r = await post(url, JSON.stringify(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json')));
    expect(r.body).toMatchObject({ outcome: 'deleted' });
  });
});
