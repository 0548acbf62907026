// The response stage on its own: Responder and Verifier driven with real alerts against an in-memory API
// (test/support/stub-kube.ts) whose pods, controllers and answers each test sets. Every refusal, every
// decision taken again after a 409 on the preconditions, and which outcomes are remembered for the
// coalescing window and which are forgotten. The calls it makes are asserted as a user of the API sees them.
import type { PodRef } from '../../falco-pod-delete/src/alert.js';
import { Deadline } from '../../falco-pod-delete/src/deadline.js';
import { decide, guardsFrom } from '../../falco-pod-delete/src/decision.js';
import { intake } from '../../falco-pod-delete/src/intake.js';
import type { ControllerStatus, IsolationChange, MutationResult, PodSnapshot, Verified, WorkloadRef } from '../../falco-pod-delete/src/kube/index.js';
import type { Outcome } from '../../falco-pod-delete/src/outcome.js';
import { loadPolicy } from '../../falco-pod-delete/src/policy.js';
import { Responder, type ResponseSettings } from '../../falco-pod-delete/src/response.js';
import { StubKube } from '../support/stub-kube.js';
import { fixture, withFields } from '../support/harness.js';

const CONTAINER = 'ee97d9c4186f'.padEnd(64, 'c');

type Call = { verb: string; pod?: string; verified?: Verified; dryRun?: boolean };

/** Pods by namespace/name; each mutation answers from a queue the test fills (else 'done'), and marks the pod. */
class Api extends StubKube {
  readonly pods = new Map<string, PodSnapshot>();
  readonly namespaces = new Map<string, Record<string, string>>();
  readonly controllers = new Map<string, ControllerStatus>();
  readonly calls: Call[] = [];
  readonly answers: Array<MutationResult | { blocked: string }> = [];
  /** Run before a mutation answers: a controller or an admin acting meanwhile. */
  meanwhile: (() => void) | undefined;

  protected pod(p: PodRef): PodSnapshot {
    return this.pods.get(`${p.namespace}/${p.name}`) as PodSnapshot;
  }
  override async readPod(p: PodRef) {
    this.calls.push({ verb: 'get pod', pod: `${p.namespace}/${p.name}` });
    return this.pods.get(`${p.namespace}/${p.name}`) ?? null;
  }
  override async readNamespaceLabels(ns: string) {
    this.calls.push({ verb: 'get namespace', pod: ns });
    return this.namespaces.get(ns) ?? {};
  }
  override async readController(namespace: string, ref: WorkloadRef) {
    this.calls.push({ verb: `get ${ref.kind}`, pod: `${namespace}/${ref.name}` });
    return this.controllers.get(`${namespace}/${ref.kind}/${ref.name}`) ?? null;
  }
  private mutate(verb: string, p: PodRef, verified: Verified, dryRun: boolean, effect: (pod: PodSnapshot) => PodSnapshot) {
    this.calls.push({ verb, pod: `${p.namespace}/${p.name}`, verified: { uid: verified.uid, resourceVersion: verified.resourceVersion }, dryRun });
    this.meanwhile?.();
    const answer = this.answers.shift() ?? 'done';
    const now = this.pods.get(`${p.namespace}/${p.name}`);
    if (answer === 'done' && now && !dryRun) this.pods.set(`${p.namespace}/${p.name}`, effect(now));
    return answer;
  }
  override async deletePod(p: PodRef, verified: Verified, _grace: number | undefined, dryRun: boolean) {
    return this.mutate('delete pod', p, verified, dryRun, (pod) => ({ ...pod, deleting: true })) as MutationResult;
  }
  override async evictPod(p: PodRef, verified: Verified, _grace: number | undefined, dryRun: boolean) {
    return this.mutate('evict pod', p, verified, dryRun, (pod) => ({ ...pod, deleting: true }));
  }
  override async ensureQuarantinePolicy() {
    this.calls.push({ verb: 'ensure quarantine policy' });
  }
  override async isolatePod(p: PodRef, verified: Verified, change: IsolationChange, dryRun: boolean) {
    return this.mutate('label pod', p, verified, dryRun, (pod) => ({ ...pod, labels: change.detach ? { [change.label]: 'true' } : { ...pod.labels, [change.label]: 'true' }, isolationRecord: change.record })) as MutationResult;
  }
  mutations(): Call[] {
    return this.calls.filter((c) => /^(delete|evict|label) pod$/.test(c.verb));
  }
}

function pod(name: string, extra: Partial<PodSnapshot> = {}): PodSnapshot {
  return { namespace: 'default', name, uid: `uid-${name}`, resourceVersion: '10', nodeName: 'worker-1', labels: {}, containerIds: [CONTAINER], deleting: false, owner: undefined, ready: true, containers: ['main'], manifest: {}, ...extra };
}

const SETTINGS: ResponseSettings = {
  dryRun: false, gracePeriodSeconds: undefined, optOutLabel: 'falco-pod-delete/exempt', quarantineLabel: 'falco-pod-delete/quarantine', recordEvents: false,
  coalesceWindowMs: 60_000, actionLimit: 20, actionWindowMs: 60_000, namespaceActionLimit: 10, eventDeadlineMs: 1000,
};

function setup(opts: { policy?: string; settings?: Partial<ResponseSettings> } = {}) {
  const api = new Api();
  const policy = loadPolicy({ policy: opts.policy });
  const guards = guardsFrom({ criticalNamespaces: ['kube-system'], maxAlertAgeSeconds: 300 }, { namespace: 'openfaas-fn', name: undefined });
  const responder = new Responder({ kube: api, settings: { ...SETTINGS, ...opts.settings }, policy, guards, warn: () => undefined });
  const send = async (fields: Record<string, unknown> = {}): Promise<Outcome> => {
    const body = withFields(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'), { 'k8s.ns.name': 'default', 'k8s.pod.name': 'kubecon', 'container.id': CONTAINER.slice(0, 12), ...fields });
    const input = await intake({}, body);
    if (!input.ok) throw new Error(input.reason);
    const deadline = new Deadline(5000);
    try {
      return await responder.respond(input.alert, decide(input.alert, policy, guards, Date.now()), deadline);
    } finally {
      deadline.dispose();
    }
  };
  return { api, responder, send };
}

describe('refusals: checked against the pod as read, nothing changed', () => {
  it.each([
    ['not-found', 'already gone', (api: Api) => api.pods.clear()],
    ['terminating', 'skipped', (api: Api) => api.pods.set('default/kubecon', pod('kubecon', { deleting: true }))],
    ['opt-out', 'skipped', (api: Api) => api.pods.set('default/kubecon', pod('kubecon', { labels: { 'falco-pod-delete/exempt': 'true' } }))],
    ['opt-out', 'skipped', (api: Api) => api.namespaces.set('default', { 'falco-pod-delete/exempt': 'true' })],
    ['container-mismatch', 'skipped', (api: Api) => api.pods.set('default/kubecon', pod('kubecon', { containerIds: ['f'.repeat(64)] }))],
  ] as const)('%s (%s)', async (code, result, arrange) => {
    const { api, send } = setup();
    api.pods.set('default/kubecon', pod('kubecon'));
    arrange(api);
    expect(await send()).toMatchObject({ result, code, pod: { namespace: 'default', name: 'kubecon' } });
    expect(api.mutations()).toEqual([]);
  });

  it("uid-mismatch: the alert's k8s.pod.uid is not the pod's", async () => {
    const { api, send } = setup();
    api.pods.set('default/kubecon', pod('kubecon'));
    expect(await send({ 'k8s.pod.uid': '00000000-0000-4000-8000-000000000000' })).toMatchObject({ result: 'skipped', code: 'uid-mismatch' });
    expect(api.mutations()).toEqual([]);
  });

  it('availability: the last ready replica of a Deployment is kept', async () => {
    const { api, send } = setup();
    api.pods.set('default/kubecon', pod('kubecon', { owner: { kind: 'ReplicaSet', name: 'web-1' } }));
    api.controllers.set('default/ReplicaSet/web-1', { kind: 'ReplicaSet', name: 'web-1', replicas: 1, ready: 1, owner: { kind: 'Deployment', name: 'web' } });
    api.controllers.set('default/Deployment/web', { kind: 'Deployment', name: 'web', replicas: 1, ready: 1, owner: undefined });
    expect(await send()).toMatchObject({ result: 'skipped', code: 'availability', workload: { kind: 'Deployment', name: 'web' } });
    expect(api.mutations()).toEqual([]);
  });

  it.each([['DaemonSet', 'daemonSets', 'daemonset'], ['StatefulSet', 'statefulSets', 'statefulset']] as const)('%s pods with %s: skip', async (kind, key, code) => {
    const { api, send } = setup({ policy: `entries: [{name: shell, match: {rules: ["Terminal shell in container"]}, action: delete, ${key}: skip}]` });
    api.pods.set('default/kubecon', pod('kubecon', { owner: { kind, name: 'agent' } }));
    api.controllers.set(`default/${kind}/agent`, { kind, name: 'agent', replicas: 3, ready: 3, owner: undefined });
    expect(await send()).toMatchObject({ result: 'skipped', code });
    expect(api.mutations()).toEqual([]);
  });

  it('disruption-budget: an eviction a PodDisruptionBudget forbids now is answered, not retried', async () => {
    const { api, send } = setup({ policy: 'entries: [{name: shell, match: {rules: ["Terminal shell in container"]}, action: evict}]' });
    api.pods.set('default/kubecon', pod('kubecon'));
    api.answers.push({ blocked: 'Cannot evict pod as it would violate the pod\'s disruption budget.' });
    expect(await send()).toMatchObject({ result: 'skipped', code: 'disruption-budget' });
    expect(api.mutations().map((c) => c.verb)).toEqual(['evict pod']);
  });

  it("rate-limited and namespace-rate-limited: the limit that binds, with what fills it", async () => {
    const { api, send } = setup({ settings: { actionLimit: 3, namespaceActionLimit: 2 } });
    for (const [ns, name] of [['default', 'a'], ['default', 'b'], ['default', 'c'], ['prod', 'd'], ['prod', 'e']]) api.pods.set(`${ns}/${name}`, pod(name, { namespace: ns }));
    const out = [];
    for (const [ns, name] of [['default', 'a'], ['default', 'b'], ['default', 'c'], ['prod', 'd'], ['prod', 'e']]) out.push(await send({ 'k8s.ns.name': ns, 'k8s.pod.name': name }));
    expect(out.map((o) => o.code)).toEqual(['delete', 'delete', 'namespace-rate-limited', 'delete', 'rate-limited']);
    expect(out[2].budget).toEqual({ limit: 'NAMESPACE_ACTION_LIMIT', of: 2, taken: 2, reservedElsewhere: 0, reservedHere: 0 });
    expect(out[4].budget).toEqual({ limit: 'ACTION_LIMIT', of: 3, taken: 3, reservedElsewhere: 0, reservedHere: 0 });
    expect(api.mutations().map((c) => c.pod)).toEqual(['default/a', 'default/b', 'prod/d']);
  });
});

describe('decided again after a 409 on the preconditions', () => {
  it('acts under the uid and resourceVersion it verified', async () => {
    const { api, send } = setup();
    api.pods.set('default/kubecon', pod('kubecon', { resourceVersion: '42' }));
    expect(await send()).toMatchObject({ result: 'deleted', code: 'delete' });
    expect(api.mutations()).toEqual([{ verb: 'delete pod', pod: 'default/kubecon', verified: { uid: 'uid-kubecon', resourceVersion: '42' }, dryRun: false }]);
  });

  it('changed meanwhile, and now terminating (another replica acted): skipped, one DELETE', async () => {
    const { api, send } = setup();
    api.pods.set('default/kubecon', pod('kubecon'));
    api.answers.push('changed');
    api.meanwhile = () => api.pods.set('default/kubecon', pod('kubecon', { resourceVersion: '11', deleting: true }));
    expect(await send()).toMatchObject({ result: 'skipped', code: 'terminating' });
    expect(api.mutations()).toHaveLength(1);
  });

  it('changed meanwhile to carry the opt-out label: not deleted', async () => {
    const { api, send } = setup();
    api.pods.set('default/kubecon', pod('kubecon'));
    api.answers.push('changed');
    api.meanwhile = () => api.pods.set('default/kubecon', pod('kubecon', { resourceVersion: '11', labels: { 'falco-pod-delete/exempt': 'true' } }));
    expect(await send()).toMatchObject({ result: 'skipped', code: 'opt-out' });
    expect(api.mutations()).toHaveLength(1);
  });

  it('replaced under the same name: another UID is not touched', async () => {
    const { api, send } = setup();
    api.pods.set('default/kubecon', pod('kubecon'));
    api.answers.push('changed');
    api.meanwhile = () => api.pods.set('default/kubecon', pod('kubecon', { uid: 'uid-new', resourceVersion: '12' }));
    expect(await send()).toMatchObject({ result: 'replaced', code: 'uid-precondition' });
    expect(api.mutations()).toHaveLength(1);
  });

  it('changed again and again: at most three tries, then conflict, and the slot comes back', async () => {
    const { api, responder, send } = setup({ settings: { actionLimit: 1, namespaceActionLimit: 1 } });
    let rv = 10;
    api.pods.set('default/kubecon', pod('kubecon'));
    api.answers.push('changed', 'changed', 'changed');
    api.meanwhile = () => api.pods.set('default/kubecon', pod('kubecon', { resourceVersion: String(++rv) }));
    expect(await send()).toMatchObject({ result: 'failed', code: 'conflict' });
    expect(api.mutations().map((c) => c.verified?.resourceVersion)).toEqual(['10', '11', '12']);
    expect(responder.limiter.used()).toBe(0);
  });

  it('changed, still the same pod and still valid: acted on its new version', async () => {
    const { api, send } = setup();
    api.pods.set('default/kubecon', pod('kubecon'));
    api.answers.push('changed');
    api.meanwhile = () => {
      api.meanwhile = undefined;
      api.pods.set('default/kubecon', pod('kubecon', { resourceVersion: '13' }));
    };
    expect(await send()).toMatchObject({ result: 'deleted' });
    expect(api.mutations().map((c) => c.verified?.resourceVersion)).toEqual(['10', '13']);
  });
});

describe('remembered for the coalescing window, or forgotten', () => {
  it.each([
    ['deleted', (api: Api) => api.pods.set('default/kubecon', pod('kubecon'))],
    ['already gone', () => undefined],
    ['skipped (terminating)', (api: Api) => api.pods.set('default/kubecon', pod('kubecon', { deleting: true }))],
    ['skipped (opt-out)', (api: Api) => api.pods.set('default/kubecon', pod('kubecon', { labels: { 'falco-pod-delete/exempt': 'true' } }))],
  ] as const)('%s: the next alert shares it, with no call', async (_name, arrange) => {
    const { api, send } = setup();
    arrange(api);
    const first = await send();
    const calls = api.calls.length;
    expect(await send()).toMatchObject({ result: 'duplicate', code: 'duplicate', first: { result: first.result } });
    expect(api.calls.length).toBe(calls);
  });

  it.each([
    ['container-mismatch', (api: Api) => api.pods.set('default/kubecon', pod('kubecon', { containerIds: ['f'.repeat(64)] }))],
    ['failed', (api: Api) => {
      api.pods.set('default/kubecon', pod('kubecon'));
      api.answers.push('changed', 'changed', 'changed');
      api.meanwhile = () => api.pods.set('default/kubecon', pod('kubecon', { resourceVersion: String(Math.random()) }));
    }],
  ] as const)('%s: forgotten, the next alert decides afresh', async (_name, arrange) => {
    const { api, send } = setup();
    arrange(api);
    const first = await send();
    expect(first.result).not.toBe('duplicate');
    api.meanwhile = undefined;
    api.pods.set('default/kubecon', pod('kubecon'));
    const reads = api.calls.filter((c) => c.verb === 'get pod').length;
    expect(await send()).toMatchObject({ result: 'deleted' });
    expect(api.calls.filter((c) => c.verb === 'get pod').length).toBeGreaterThan(reads);
  });
});

describe('isolate reports whether the isolation holds', () => {
  const ISOLATE = 'entries: [{name: shell, match: {rules: ["Terminal shell in container"]}, action: isolate}]';

  const policies = [
    { name: 'allow-web', podSelector: { matchLabels: { app: 'web' } }, policyTypes: undefined, ingressRules: 1, egressRules: 0 },
    { name: 'allow-same-namespace', podSelector: {}, policyTypes: undefined, ingressRules: 1, egressRules: 0 },
    { name: 'allow-db', podSelector: { matchLabels: { app: 'db' } }, policyTypes: undefined, ingressRules: 1, egressRules: 0 },
  ];

  it('detached, a pod leaves the policies on its labels; a namespace-wide one still selects it and is named', async () => {
    const { api, send } = setup({ policy: ISOLATE });
    api.pods.set('default/kubecon', pod('kubecon', { labels: { app: 'web' } }));
    api.networkPolicies.set('default', policies);
    const o = await send();
    expect(o).toMatchObject({ result: 'isolated', isolation: { holds: false, allowedBy: ['allow-same-namespace'], detached: true } });
    expect(api.pods.get('default/kubecon')?.labels).toEqual({ 'falco-pod-delete/quarantine': 'true' });
    expect(JSON.parse(api.pods.get('default/kubecon')?.isolationRecord ?? '')).toMatchObject({ labels: { app: 'web' }, detached: true, entry: 'shell' });
    expect(o.workload?.effect).toBe('a bare pod: out of its Services and kept for forensics; nothing replaces it');
  });

  it("a StatefulSet's pod keeps its labels, so the policies on them still select it, and the answer says what that leaves", async () => {
    const { api, send } = setup({ policy: ISOLATE });
    api.pods.set('default/kubecon', pod('kubecon', { labels: { app: 'web' }, owner: { kind: 'StatefulSet', name: 'web' } }));
    api.controllers.set('default/StatefulSet/web', { kind: 'StatefulSet', name: 'web', replicas: 3, ready: 3, owner: undefined });
    api.networkPolicies.set('default', policies);
    const o = await send();
    expect(o).toMatchObject({ result: 'isolated', isolation: { holds: false, allowedBy: ['allow-same-namespace', 'allow-web'], detached: false } });
    expect(api.pods.get('default/kubecon')?.labels).toEqual({ app: 'web', 'falco-pod-delete/quarantine': 'true' });
    expect(o.workload?.effect).toMatch(/^its labels are kept \(a StatefulSet's pod\): StatefulSet web still counts it .* no replacement starts while it holds its name/);
  });

  it('requireHolds: an isolation that would not hold deletes the pod instead, and the answer says why', async () => {
    const { api, send } = setup({ policy: 'entries: [{name: shell, match: {rules: ["Terminal shell in container"]}, action: isolate, requireHolds: true}]' });
    api.pods.set('default/kubecon', pod('kubecon', { labels: { app: 'web' } }));
    api.networkPolicies.set('default', policies);
    const o = await send();
    expect(o).toMatchObject({ decision: 'delete', result: 'deleted', code: 'isolation-would-not-hold', isolation: { holds: false, allowedBy: ['allow-same-namespace'] } });
    expect(o.reason).toContain('deleted instead of isolated by policy entry "shell" (requireHolds): the isolation would not hold: NetworkPolicies allow-same-namespace');
    expect(api.mutations().map((c) => c.verb)).toEqual(['delete pod']);
  });

  it("requireHolds: when the availability guard forbids the deletion, the pod is isolated all the same and the answer says why", async () => {
    const { api, send } = setup({ policy: 'entries: [{name: shell, match: {rules: ["Terminal shell in container"]}, action: isolate, requireHolds: true}]' });
    api.pods.set('default/kubecon', pod('kubecon', { labels: { app: 'web' }, owner: { kind: 'ReplicaSet', name: 'web-1' } }));
    api.controllers.set('default/ReplicaSet/web-1', { kind: 'ReplicaSet', name: 'web-1', replicas: 1, ready: 1, owner: undefined });
    api.networkPolicies.set('default', policies);
    const o = await send();
    expect(o).toMatchObject({ decision: 'isolate', result: 'isolated', isolation: { holds: false, allowedBy: ['allow-same-namespace'] } });
    expect(o.reason).toMatch(/requireHolds: the isolation would not hold, but the pod was not deleted instead: deleting default\/kubecon would leave ReplicaSet web-1 0 ready of 1 replicas/);
    expect(api.mutations().map((c) => c.verb)).toEqual(['label pod']);
  });

  it('requireHolds: an isolation that holds is made, and nothing is deleted', async () => {
    const { api, send } = setup({ policy: 'entries: [{name: shell, match: {rules: ["Terminal shell in container"]}, action: isolate, requireHolds: true}]' });
    api.pods.set('default/kubecon', pod('kubecon', { labels: { app: 'web' } }));
    api.networkPolicies.set('default', [policies[0], policies[2]]);
    expect(await send()).toMatchObject({ result: 'isolated', isolation: { holds: true, detached: true } });
    expect(api.mutations().map((c) => c.verb)).toEqual(['label pod']);
  });

  it('a pod that carries the quarantine label already is not patched again: its record of the old labels stays', async () => {
    const { api, send } = setup({ policy: ISOLATE });
    const record = JSON.stringify({ labels: { app: 'web' }, detached: true, since: '2026-12-01T00:00:00.000Z', rule: 'r', entry: 'e' });
    api.pods.set('default/kubecon', pod('kubecon', { labels: { 'falco-pod-delete/quarantine': 'true' }, isolationRecord: record }));
    expect(await send()).toMatchObject({ result: 'isolated', isolation: { holds: true, detached: true } });
    expect(api.mutations()).toEqual([]);
    expect(api.calls.map((c) => c.verb)).toContain('ensure quarantine policy');
  });

  it('holds when nothing else selects it', async () => {
    const { api, send } = setup({ policy: ISOLATE });
    api.pods.set('default/kubecon', pod('kubecon', { labels: { app: 'web' } }));
    expect(await send()).toMatchObject({ result: 'isolated', isolation: { holds: true, allowedBy: [] } });
  });

  it('says so when the policies cannot be read: never a silent pass', async () => {
    const { api, send } = setup({ policy: ISOLATE });
    api.pods.set('default/kubecon', pod('kubecon'));
    api.listNetworkPolicies = async () => {
      throw new Error('forbidden');
    };
    expect(await send()).toMatchObject({ result: 'isolated', isolation: { holds: false, unchecked: expect.stringMatching(/could not be read: forbidden/) } });
  });

  it('is not checked in dry-run (nothing was isolated)', async () => {
    const { api, send } = setup({ policy: ISOLATE, settings: { dryRun: true } });
    api.pods.set('default/kubecon', pod('kubecon'));
    const out = await send();
    expect(out.result).toBe('dry-run');
    expect(out.isolation).toBeUndefined();
  });
});
