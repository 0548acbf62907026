import { parseAlert } from '../src/alert.js';
import { decide, type Guards } from '../src/decision.js';
import { DEFAULT_POLICY, parsePolicy } from '../src/policy.js';
import { DEFAULT_CRITICAL_NAMESPACES } from '../src/config.js';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const guards: Guards = { criticalNamespaces: DEFAULT_CRITICAL_NAMESPACES, self: { namespace: 'openfaas-fn', name: 'falco-pod-delete-abc' }, maxAlertAgeSeconds: 300, requireProof: false };

function alert(over: Record<string, unknown> = {}, fields: Record<string, unknown> = {}) {
  return parseAlert({
    output: 'shell',
    priority: 'Notice',
    rule: 'Terminal shell in container',
    source: 'syscall',
    hostname: 'worker-1',
    time: '2026-01-01T11:59:30.000000001Z',
    ...over,
    output_fields: { 'container.id': '5892b41bcf46', 'k8s.ns.name': 'default', 'k8s.pod.name': 'alpine', ...fields },
  });
}

describe('decide', () => {
  it('deletes the named pod for a terminal shell under the default policy', () => {
    expect(decide(alert(), DEFAULT_POLICY, guards, NOW)).toEqual({
      kind: 'act', action: 'delete', pod: { namespace: 'default', name: 'alpine' }, entry: 'terminal-shell', gracePeriodSeconds: undefined, containerId: '5892b41bcf46', podUid: undefined,
      workload: { minHealthyReplicas: 1, daemonSets: 'act', statefulSets: 'act' }, evidence: undefined, requireHolds: false, nodeActions: [],
    });
  });

  it.each([
    ['Falcosidekick test event', alert({ rule: 'Test rule', source: 'debug' }), 'test-event'],
    ['Falco internal event by source', alert({ source: 'internal' }), 'internal-event'],
    ['Falco internal event by rule', alert({ rule: 'Falco internal: syscall event drop', source: undefined }), 'internal-event'],
    ['a critical namespace', alert({}, { 'k8s.ns.name': 'kube-system' }), 'critical-namespace'],
    ['a rule the policy does not name', alert({ rule: 'Write below etc' }), 'no-policy-match'],
    ['a stale alert', alert({ time: '2026-01-01T11:50:00Z' }), 'stale'],
    ['an alert from the future', alert({ time: '2026-01-01T12:05:00Z' }), 'future'],
    ['a host event', alert({}, { 'container.id': 'host', 'k8s.ns.name': null, 'k8s.pod.name': null }), 'no-pod'],
    ['disagreeing pod sources', alert({}, { 'k8smeta.pod.name': 'other', 'k8smeta.ns.name': 'default' }), 'ambiguous'],
  ])('declines %s', (_name, a, code) => {
    const d = decide(a, DEFAULT_POLICY, guards, NOW);
    expect(d.kind).toBe('decline');
    expect(d.kind === 'decline' && d.code).toBe(code);
  });

  it("declines the function's own pod in its own namespace even when the policy matches", () => {
    const self: Guards = { ...guards, criticalNamespaces: [] };
    const d = decide(alert({}, { 'k8s.ns.name': 'openfaas-fn', 'k8s.pod.name': 'falco-pod-delete-abc' }), DEFAULT_POLICY, self, NOW);
    expect(d).toMatchObject({ kind: 'decline', code: 'own-pod', refused: 'delete' });
  });

  it("declines anything in the function's own namespace", () => {
    const own: Guards = { ...guards, criticalNamespaces: [], self: { namespace: 'falco-response', name: 'fpd-1' } };
    expect(decide(alert({}, { 'k8s.ns.name': 'falco-response', 'k8s.pod.name': 'web' }), DEFAULT_POLICY, own, NOW)).toMatchObject({ kind: 'decline', code: 'own-namespace', refused: 'delete' });
  });

  it('marks a guard refusal of what the policy would have done', () => {
    expect(decide(alert({}, { 'k8s.ns.name': 'kube-system' }), DEFAULT_POLICY, guards, NOW)).toMatchObject({ code: 'critical-namespace', refused: 'delete' });
    expect(decide(alert({ rule: 'Other' }, { 'k8s.ns.name': 'kube-system' }), DEFAULT_POLICY, guards, NOW)).not.toHaveProperty('refused');
  });

  it('rejects invalid names before any policy or guard', () => {
    expect(decide(alert({}, { 'k8s.pod.name': 'A/B' }), DEFAULT_POLICY, guards, NOW)).toMatchObject({ kind: 'reject', code: 'invalid-name' });
  });

  it('asks for a node lookup when only a container id and a hostname are known (Falco 0.41+)', () => {
    const a = alert({}, { 'k8s.ns.name': undefined, 'k8s.pod.name': undefined });
    expect(decide(a, DEFAULT_POLICY, guards, NOW)).toEqual({ kind: 'lookup', node: 'worker-1', containerId: '5892b41bcf46' });
    expect(decide(a, DEFAULT_POLICY, guards, NOW, { namespace: 'default', name: 'alpine' })).toMatchObject({ kind: 'act', pod: { name: 'alpine' } });
    expect(decide(a, DEFAULT_POLICY, guards, NOW, { namespace: 'kube-system', name: 'alpine' })).toMatchObject({ kind: 'decline', code: 'critical-namespace' });
  });

  it('does not look up pods for alerts no policy entry could act on', () => {
    const a = alert({ rule: 'Write below etc' }, { 'k8s.ns.name': undefined, 'k8s.pod.name': undefined });
    expect(decide(a, DEFAULT_POLICY, guards, NOW)).toMatchObject({ kind: 'decline', code: 'no-pod' });
  });

  it('carries k8s.pod.uid and the entry grace period', () => {
    const policy = parsePolicy('entries: [{name: shells, match: {rules: ["Terminal shell*"]}, action: delete, gracePeriodSeconds: 0}]', 'test');
    expect(decide(alert({}, { 'k8s.pod.uid': 'u-1' }), policy, guards, NOW)).toMatchObject({ podUid: 'u-1', gracePeriodSeconds: 0 });
  });
});

describe('proof when no caller is authenticated', () => {
  const unauthenticated: Guards = { ...guards, requireProof: true };

  it.each([
    ['absent', undefined],
    ['null', null],
    ['empty', ''],
    ['<NA>', '<NA>'],
    ['not a container id', 'host'],
  ])('declines an alert whose container.id is %s as unproven, saying how to get it acted on', (_name, id) => {
    const d = decide(alert({}, { 'container.id': id }), DEFAULT_POLICY, unauthenticated, NOW);
    expect(d).toMatchObject({ kind: 'decline', code: 'unproven', refused: 'delete', pod: { namespace: 'default', name: 'alpine' } });
    expect(d.kind === 'decline' && d.reason).toMatch(/AUTH_TOKEN_FILE/);
  });

  it('acts on an alert with a container id (checked against the pod before acting)', () => {
    expect(decide(alert(), DEFAULT_POLICY, unauthenticated, NOW)).toMatchObject({ kind: 'act', containerId: '5892b41bcf46' });
  });

  it('acts on a name-only alert when callers are authenticated', () => {
    expect(decide(alert({}, { 'container.id': null }), DEFAULT_POLICY, guards, NOW)).toMatchObject({ kind: 'act', containerId: undefined });
  });

  it('a log action needs no proof: it makes no Kubernetes call', () => {
    const policy = parsePolicy('entries: [{name: l, match: {}, action: log}]', 'POLICY');
    expect(decide(alert({}, { 'container.id': null }), policy, unauthenticated, NOW)).toMatchObject({ kind: 'act', action: 'log' });
  });
});
