// Property-based tests over the alert and every envelope: random and mutated inputs never produce a 5xx
// without an API fault, never throw, never reach the API for an invalid or guarded name, and never pollute
// prototypes. fast-check prints the seed and the shrunk counterexample on failure.
import { Writable } from 'node:stream';
import fc from 'fast-check';
import type { PodRef } from '../falco-pod-delete/src/alert.js';
import { createLogger } from '../falco-pod-delete/src/audit.js';
import { loadConfig } from '../falco-pod-delete/src/config.js';
import { FalcoResponse } from '../falco-pod-delete/src/core.js';
import type { PodSnapshot } from '../falco-pod-delete/src/kube/index.js';
import { StubKube } from './support/stub-kube.js';
import { DEFAULT_POLICY } from '../falco-pod-delete/src/policy.js';
import { FakeApiServer, inClusterEnv, stageServiceAccount } from './support/apiserver.js';
import { type RunningFunction, fixture, startFunction } from './support/harness.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 10_000);
const CRITICAL = ['kube-system', 'kube-public', 'kube-node-lease', 'falco', 'openfaas', 'openfaas-fn'];
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Records every pod the pipeline asks about and never fails. */
class RecordingKube extends StubKube {
  protected pod(p: PodRef): PodSnapshot {
    return { ...p, uid: 'uid-1', resourceVersion: '1', nodeName: 'worker-1', labels: {}, containerIds: [`ee97d9c4186f${'0'.repeat(52)}`], deleting: false, owner: undefined, ready: true, containers: ['main'], manifest: {} };
  }
}

function pipeline() {
  const kube = new RecordingKube();
  let audits = 0;
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      audits += chunk.toString().split('\n').filter((l) => l.includes('"audit":true')).length;
      cb();
    },
  });
  const config = { ...loadConfig({ ACTION_LIMIT: '0', COALESCE_WINDOW_SECONDS: '0' }), podName: 'falco-pod-delete-abc' };
  const fn = new FalcoResponse({ config, policy: DEFAULT_POLICY, kube, logger: createLogger('silent', sink as unknown as Parameters<typeof createLogger>[1]), namespace: 'openfaas-fn', cluster: 'in-cluster' });
  return { fn, kube, audits: () => audits };
}

const hostileName = fc.oneof(
  fc.constantFrom('kubecon', 'alpine', 'web-7d4b9c-x2x1z', 'a.b', 'falco-pod-delete-abc', '/', '..', 'a/../b', '%2F', 'a%2Fb', 'KubeCon', 'a'.repeat(254), 'a'.repeat(63), '__proto__', 'constructor', 'prototype', '', '<NA>', ' kubecon', 'kube-system', 'default', 'openfaas-fn', 'ns\u0000x', 'ünïcode', '-x', 'x-'),
  fc.string({ maxLength: 300 }),
  fc.stringMatching(/^[a-z0-9]([-a-z0-9.]{0,20}[a-z0-9])?$/),
);
const fieldValue = fc.oneof(hostileName, fc.constant(null), fc.integer(), fc.double(), fc.boolean(), fc.array(fc.string(), { maxLength: 3 }), fc.object({ maxDepth: 2 }));
const fieldKey = fc.oneof(fc.constantFrom('k8s.pod.name', 'k8s.ns.name', 'k8smeta.pod.name', 'k8smeta.ns.name', 'ka.target.name', 'ka.target.namespace', 'ka.target.resource', 'container.id', 'k8s.pod.uid', '__proto__', 'constructor', 'toString', 'hasOwnProperty'), fc.string({ maxLength: 20 }));
const rarely = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ arbitrary: fc.constant(undefined), weight: 6 }, { arbitrary: arb, weight: 1 });
/** Mostly the well-formed value, sometimes anything: enough valid alerts get through to exercise the API path. */
const maybe = <T>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<unknown>) => fc.oneof({ arbitrary: good as fc.Arbitrary<unknown>, weight: 20 }, { arbitrary: bad, weight: 1 });
const goodName = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/);
const outputFields = maybe(
  fc.record(
    {
      'k8s.pod.name': fc.oneof({ arbitrary: goodName, weight: 6 }, { arbitrary: hostileName, weight: 1 }),
      'k8s.ns.name': maybe(fc.constantFrom('default', 'team-a', 'payments', 'kube-system', 'openfaas-fn', 'falco'), hostileName),
      'container.id': maybe(fc.oneof({ arbitrary: fc.constant('ee97d9c4186f'), weight: 4 }, fc.constantFrom('host', '0123456789ab')), fieldValue),
      'k8s.pod.uid': fc.constantFrom('uid-1', 'uid-2'),
    },
    { requiredKeys: ['k8s.pod.name', 'k8s.ns.name', 'container.id'] },
  ).chain((f) => rarely(fc.record({ 'k8smeta.pod.name': hostileName, 'k8smeta.ns.name': hostileName, __proto__: fc.object({ maxDepth: 1 }) }, { requiredKeys: [] })).map((x) => ({ ...f, ...(x ?? {}) }))),
  fc.oneof(fc.dictionary(fieldKey, fieldValue, { maxKeys: 12 }), fc.anything({ maxDepth: 3 })),
);
const alertArb = fc.record(
  {
    uuid: maybe(fc.uuid(), fc.anything({ maxDepth: 1 })),
    rule: maybe(fc.oneof({ arbitrary: fc.constant('Terminal shell in container'), weight: 8 }, fc.constantFrom('Test rule', 'Falco internal: syscall event drop', 'Attach/Exec Pod')), fc.oneof(fc.string({ maxLength: 2000 }), fc.anything({ maxDepth: 1 }))),
    priority: maybe(fc.constantFrom('Critical', 'CRITICAL', 'info', 'Info', 'warning', 'Debug', 'emergency'), fc.oneof(fc.constantFrom('severe', ''), fc.anything({ maxDepth: 1 }))),
    time: maybe(fc.constant('NOW'), fc.oneof(fc.constantFrom('2023-05-25T13:44:05.478445995Z', 'yesterday', '2026-13-45T99:99:99Z', ''), fc.anything({ maxDepth: 1 }))),
    output: maybe(fc.string({ maxLength: 500 }), fc.anything({ maxDepth: 1 })),
    source: maybe(fc.oneof({ arbitrary: fc.constant('syscall'), weight: 8 }, fc.constantFrom('k8s_audit', 'internal')), fc.anything({ maxDepth: 1 })),
    hostname: maybe(fc.constantFrom('worker-1', 'falco-xczjd'), fc.oneof(hostileName, fc.anything({ maxDepth: 1 }))),
    tags: maybe(fc.array(fc.string(), { maxLength: 5 }), fc.anything({ maxDepth: 2 })),
    output_fields: outputFields,
  },
  { requiredKeys: ['rule', 'priority', 'time', 'output', 'output_fields'] },
);
/** Now and then, keys that target prototypes or envelopes. */
const hostileKeys = rarely(fc.record({ __proto__: fc.object({ maxDepth: 2 }), constructor: fc.anything({ maxDepth: 2 }), data: fc.anything({ maxDepth: 2 }) }, { requiredKeys: [] }));
const alertWithExtras = fc.tuple(alertArb, hostileKeys).map(([a, extra]) => ({ ...a, ...(extra ?? {}) }));

/** Puts the body on the wire and back (as JSON.parse makes it: `__proto__` is an own key then). */
function wire(x: unknown): unknown {
  const text = JSON.stringify(x, (_k, v: unknown) => (v === 'NOW' ? new Date().toISOString() : v));
  return text === undefined ? undefined : JSON.parse(text);
}

const envelopes = fc.constantFrom('plain', 'kubeless-headers', 'kubeless-envelope', 'ce-binary', 'ce-structured', 'ce-bad');
function deliver(kind: string, body: unknown): { headers: Record<string, string>; body: unknown } {
  const ce = { 'ce-specversion': '1.0', 'ce-id': 'x1', 'ce-source': 'https://falco.org', 'ce-type': 'falco.rule.output.v1', 'content-type': 'application/json' };
  switch (kind) {
    case 'kubeless-headers':
      return { headers: { 'event-type': 'falco', 'event-id': 'k1' }, body };
    case 'kubeless-envelope':
      return { headers: {}, body: { data: body, 'event-id': 'k2' } };
    case 'ce-binary':
      return { headers: ce, body };
    case 'ce-structured':
      return { headers: { 'content-type': 'application/cloudevents+json' }, body: { specversion: '1.0', id: 's1', source: 'https://falco.org', type: 'falco.rule.output.v1', data: body } };
    case 'ce-bad':
      return { headers: { ...ce, 'ce-type': 'x', 'ce-specversion': '0.3' }, body };
    default:
      return { headers: { 'content-type': 'application/json' }, body };
  }
}

function checkTouched(kube: RecordingKube): void {
  for (const p of kube.touched) {
    if (!DNS_LABEL.test(p.namespace) || p.namespace.length > 63) throw new Error(`API reached with namespace ${JSON.stringify(p.namespace)}`);
    if (p.name.length > 253 || !p.name.split('.').every((l) => DNS_LABEL.test(l) && l.length <= 63)) throw new Error(`API reached with pod ${JSON.stringify(p.name)}`);
    if (CRITICAL.includes(p.namespace)) throw new Error(`API reached for critical namespace ${p.namespace}`);
    if (p.namespace === 'openfaas-fn' && p.name === 'falco-pod-delete-abc') throw new Error('API reached for the function itself');
  }
}

const protoKeys = () => Object.getOwnPropertyNames(Object.prototype).join(',');

describe('fuzzing the pipeline', () => {
  it(`never crashes, never 5xx, never reaches the API with a bad or guarded name, never pollutes (${RUNS} cases)`, async () => {
    const before = protoKeys();
    let reached = 0;
    const codes = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(fc.oneof({ arbitrary: alertWithExtras, weight: 4 }, { arbitrary: fc.anything({ maxDepth: 4 }), weight: 1 }), envelopes, async (raw, envelope) => {
        const { fn, kube, audits } = pipeline();
        const { headers, body } = deliver(envelope, wire(raw));
        const answer = await fn.handle({ headers, body });
        if (answer.status >= 500) throw new Error(`status ${answer.status}: ${JSON.stringify(answer.body)}`);
        if (audits() !== 1) throw new Error(`${audits()} audit lines`);
        checkTouched(kube);
        if (kube.touched.length > 0) reached++;
        const key = `${String(answer.body.code)}${answer.body.code === "bad-envelope" || answer.body.code === "ambiguous" ? `:${envelope}:${String(answer.body.reason).slice(0, 50)}` : ""}`;
        codes.set(key, (codes.get(key) ?? 0) + 1);
        if (({} as Record<string, unknown>).polluted !== undefined || protoKeys() !== before) throw new Error('Object.prototype was changed');
      }),
      { numRuns: RUNS },
    );
    // The generators must also produce alerts that pass every check and reach the API, or the property proves little.
    console.log(`fuzz: ${reached} of ${RUNS} cases reached the Kubernetes API`, [...codes].sort((a, b) => b[1] - a[1]).slice(0, 8));
    expect(reached).toBeGreaterThan(RUNS / 10);
  }, 300_000);

  it('mutations of every fixture keep the same guarantees', async () => {
    const files = ['01-syscall-terminal-shell-falco-docs.json', '04-syscall-null-fields-kubeless-blog.json', '08-k8saudit-attach-exec-pod.json', '17-CONSTRUCTED-falco-0.41plus-default-no-k8s-fields.json', '18-CONSTRUCTED-falco-0.41plus-append_output-k8s-and-k8smeta.json'];
    const base = files.map((f) => fixture(f));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...base), fieldKey, fieldValue, fc.constantFrom('rule', 'priority', 'time', 'output', 'source', 'hostname', 'tags', 'uuid'), fc.anything({ maxDepth: 2 }), envelopes, async (alert, key, value, top, topValue, envelope) => {
        const mutated = { ...alert, [top]: topValue, output_fields: { ...(alert.output_fields as object), [key]: value } };
        const { fn, kube } = pipeline();
        const { headers, body } = deliver(envelope, wire(mutated));
        const answer = await fn.handle({ headers, body });
        if (answer.status >= 500) throw new Error(`status ${answer.status}: ${JSON.stringify(answer.body)}`);
        checkTouched(kube);
      }),
      { numRuns: Math.max(1000, RUNS / 5) },
    );
  }, 300_000);
});

describe('fuzzing over HTTP', () => {
  let api: FakeApiServer;
  let f: RunningFunction;
  beforeAll(async () => {
    api = await new FakeApiServer('fuzz').start();
    api.autoPods = true;
    f = await startFunction(inClusterEnv(api, stageServiceAccount('fuzz').prefix, { ACTION_LIMIT: '0' }));
  });
  afterAll(async () => {
    await f.stop();
    await api.stop();
  });

  it('answers raw bytes (invalid UTF-8, truncated JSON, deep nesting) with a 4xx or 2xx, never a 5xx', async () => {
    const raw = fc.oneof(
      fc.uint8Array({ maxLength: 2000 }),
      fc.constantFrom('{"rule":"\udc00"}', '\xff\xfe{', '{"a":' + '['.repeat(5000), '[' .repeat(100000), '{"__proto__":{"polluted":true},"rule":"x"}').map((s) => Buffer.from(s, 'latin1')),
      fc.json({ maxDepth: 5 }).map((s) => Buffer.from(s)),
    );
    await fc.assert(
      fc.asyncProperty(raw, async (bytes) => {
        const r = await fetch(f.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: bytes });
        await r.arrayBuffer();
        if (r.status >= 500) throw new Error(`status ${r.status}`);
      }),
      { numRuns: 500 },
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(api.calls('DELETE').filter((c) => !/^\/api\/v1\/namespaces\/[a-z0-9-]+\/pods\/[a-z0-9.-]+$/.test(c.path))).toEqual([]);
  }, 120_000);
});
