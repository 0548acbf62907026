// Whether an isolation holds: label selectors and policy types as the NetworkPolicy API defines them.
import { allowsTraffic, isolationOf, selects, type PolicyFacts } from '../../falco-pod-delete/src/isolation.js';
import { labelTime, parseLabelTime } from '../../falco-pod-delete/src/actions/index.js';
import { parseIsolationRecord } from '../../falco-pod-delete/src/kube/quarantine.js';

const policy = (name: string, p: Partial<PolicyFacts>): PolicyFacts => ({ name, podSelector: {}, policyTypes: undefined, ingressRules: 0, egressRules: 0, ...p });
const Q = 'falco-pod-delete-quarantine';
const isolated = { app: 'web', tier: 'front', 'falco-pod-delete/quarantine': 'true' };

describe('selects', () => {
  it.each([
    [{}, true],
    [{ matchLabels: { app: 'web' } }, true],
    [{ matchLabels: { app: 'db' } }, false],
    [{ matchExpressions: [{ key: 'tier', operator: 'In', values: ['front', 'back'] }] }, true],
    [{ matchExpressions: [{ key: 'tier', operator: 'In', values: ['back'] }] }, false],
    [{ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['back'] }] }, true],
    [{ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['front'] }] }, false],
    [{ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, true],
    [{ matchExpressions: [{ key: 'app', operator: 'Exists' }] }, true],
    [{ matchExpressions: [{ key: 'zone', operator: 'Exists' }] }, false],
    [{ matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] }, true],
    [{ matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, false],
    [{ matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['back'] }] }, false],
  ])('%j: %s', (selector, expected) => {
    expect(selects(selector, isolated)).toBe(expected);
  });
});

describe('allowsTraffic', () => {
  it.each([
    ['ingress rules, no policyTypes', policy('a', { ingressRules: 1 }), true],
    ['no rules, no policyTypes (deny all ingress)', policy('a', {}), false],
    ['egress rules, no policyTypes (egress governed)', policy('a', { egressRules: 1 }), true],
    ['Egress only, ingress rules ignored', policy('a', { policyTypes: ['Egress'], ingressRules: 2 }), false],
    ['Egress only, no egress rule (deny all egress)', policy('a', { policyTypes: ['Egress'] }), false],
    ['Ingress and Egress, an egress rule', policy('a', { policyTypes: ['Ingress', 'Egress'], egressRules: 1 }), true],
    ['Ingress only, egress rules ignored', policy('a', { policyTypes: ['Ingress'], egressRules: 3 }), false],
  ])('%s', (_name, p, expected) => {
    expect(allowsTraffic(p)).toBe(expected);
  });
});

describe('isolationOf', () => {
  it('holds when only the quarantine policy and deny-alls select the pod', () => {
    const policies = [policy(Q, { podSelector: { matchLabels: { 'falco-pod-delete/quarantine': 'true' } }, policyTypes: ['Ingress', 'Egress'] }), policy('default-deny', { policyTypes: ['Ingress', 'Egress'] }), policy('allow-db', { podSelector: { matchLabels: { app: 'db' } }, ingressRules: 1 })];
    expect(isolationOf(policies, isolated, Q, false)).toEqual({ holds: true, allowedBy: [], detached: false });
  });

  it("does not hold when the pod's own labels or the whole namespace are allowed: names them, sorted", () => {
    const policies = [policy('allow-web', { podSelector: { matchLabels: { app: 'web' } }, ingressRules: 1 }), policy('allow-same-namespace', { ingressRules: 1 }), policy(Q, { policyTypes: ['Ingress', 'Egress'] })];
    expect(isolationOf(policies, isolated, Q, false)).toEqual({ holds: false, allowedBy: ['allow-same-namespace', 'allow-web'], detached: false });
  });

  it('holds once the pod is detached (its labels replaced by the quarantine label alone)', () => {
    const policies = [policy('allow-web', { podSelector: { matchLabels: { app: 'web' } }, ingressRules: 1 })];
    expect(isolationOf(policies, { 'falco-pod-delete/quarantine': 'true' }, Q, true)).toEqual({ holds: true, allowedBy: [], detached: true });
  });
});

describe('the records isolate and cordon leave', () => {
  it('reads back the isolation record, and refuses what is not one (release then has nothing to put back)', () => {
    const record = { labels: { app: 'web' }, detached: true, since: '2026-12-07T01:00:00.000Z', rule: 'r', entry: 'e', owner: 'ReplicaSet/web-1' };
    expect(parseIsolationRecord(JSON.stringify(record))).toEqual(record);
    for (const bad of [undefined, '', 'not json', '[]', 'null', '{"labels":[]}', '{"labels":{"a":1}}', '{"detached":true}']) expect([bad, parseIsolationRecord(bad)]).toEqual([bad, undefined]);
  });

  it('writes the cordon time as a label value (no colon) and reads it back to the second', () => {
    const at = new Date('2026-12-07T01:31:52.123Z');
    expect(labelTime(at)).toBe('20261207T013152Z');
    expect(labelTime(at)).toMatch(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/);
    expect(parseLabelTime(labelTime(at))?.toISOString()).toBe('2026-12-07T01:31:52.000Z');
    expect(parseLabelTime('true')).toBeUndefined();
  });
});
