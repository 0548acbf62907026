import { parseAlert } from '../src/alert.js';
import { DEFAULT_POLICY, PolicyError, globMatch, loadPolicy, matchPolicy, parsePolicy } from '../src/policy.js';

const alert = (over: Record<string, unknown> = {}, fields: Record<string, unknown> = {}) =>
  parseAlert({ output: 'o', priority: 'Warning', rule: 'Write below etc', source: 'syscall', time: '2026-01-01T00:00:00Z', tags: ['filesystem', 'mitre_persistence'], ...over, output_fields: { 'container.image.repository': 'nginx', ...fields } });
const pod = { namespace: 'team-a', name: 'web' };

describe('policy matching', () => {
  const policy = parsePolicy(`
entries:
  - name: miners
    match: { rules: ["Detect crypto miners*"] }
    action: delete
  - name: etc-in-prod
    match: { rules: ["Write below *"], priority: warning, tags: [filesystem], source: [syscall], namespaces: ["team-*"], notFields: { "container.image.repository": "debug-tools" } }
    action: isolate
  - name: everything-else
    match: { priority: notice }
    action: log
`, 'test');

  it('takes the first matching entry', () => {
    expect(matchPolicy(policy, alert(), pod)?.entry.name).toBe('etc-in-prod');
    expect(matchPolicy(policy, alert({ rule: 'Detect crypto miners using the Stratum protocol' }), pod)?.entry.name).toBe('miners');
  });

  it('compares priorities in Falco order (a minimum)', () => {
    expect(matchPolicy(policy, alert({ priority: 'Notice' }), pod)?.entry.name).toBe('everything-else');
    expect(matchPolicy(policy, alert({ priority: 'Emergency' }), pod)?.entry.name).toBe('etc-in-prod');
    expect(matchPolicy(policy, alert({ priority: 'Debug' }), pod)).toBeUndefined();
  });

  it('checks namespaces, tags, source and fields', () => {
    expect(matchPolicy(policy, alert(), { namespace: 'prod', name: 'web' })?.entry.name).toBe('everything-else');
    expect(matchPolicy(policy, alert({ tags: ['other'] }), pod)?.entry.name).toBe('everything-else');
    expect(matchPolicy(policy, alert({ source: 'k8s_audit' }), pod)?.entry.name).toBe('everything-else');
    expect(matchPolicy(policy, alert({}, { 'container.image.repository': 'debug-tools' }), pod)?.entry.name).toBe('everything-else');
  });

  it('globs match whole names, with * and ? only', () => {
    expect(globMatch('Terminal shell in container', 'Terminal shell in container')).toBe(true);
    expect(globMatch('Terminal*', 'Terminal shell in container')).toBe(true);
    expect(globMatch('Terminal', 'Terminal shell in container')).toBe(false);
    expect(globMatch('a.b', 'axb')).toBe(false);
    expect(globMatch('team-?', 'team-a')).toBe(true);
  });

  it('matches a pathological glob against a long rule in linear time, not by backtracking', () => {
    const rule = 'a'.repeat(1000);
    // A regex of .* for each * takes seconds on this; the matcher's steps are bounded by pattern x value.
    const began = process.hrtime.bigint();
    expect(globMatch('*a*b*c*d*', rule)).toBe(false);
    expect(globMatch('*a*a*a*a*a*a*a*a*b', rule)).toBe(false);
    expect(Number(process.hrtime.bigint() - began) / 1e6).toBeLessThan(500);
  });

  it('agrees with a regex translation on every short pattern and value', () => {
    const alphabet = ['a', 'b', '*', '?'];
    const words = (n: number): string[] => (n === 0 ? [''] : words(n - 1).flatMap((w) => alphabet.map((c) => w + c)));
    const patterns = [0, 1, 2, 3, 4].flatMap(words);
    const values = [0, 1, 2, 3, 4].flatMap(words).filter((v) => !/[*?]/.test(v));
    for (const p of patterns) {
      const re = new RegExp(`^${p.replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 's');
      for (const v of values) expect([p, v, globMatch(p, v)]).toEqual([p, v, re.test(v)]);
    }
  });

  it('has a default that deletes for Terminal shell in container only', () => {
    expect(DEFAULT_POLICY.entries).toEqual([{ name: 'terminal-shell', match: { rules: ['Terminal shell in container'] }, action: 'delete' }]);
    expect(matchPolicy(DEFAULT_POLICY, alert(), pod)).toBeUndefined();
  });
});

describe('policy validation', () => {
  it.each([
    ['entries: [{name: x, match: {}, action: kill}]', '/entries/0/action: must be one of delete, evict, isolate, log'],
    ['entries: [{name: x, match: {rule: [a]}, action: delete}]', '/entries/0/match: unknown field "rule"'],
    ['entries: [{name: x, match: {priority: urgent}, action: delete}]', '/entries/0/match/priority: must be one of'],
    ['entries: [{name: x, match: {}, action: delete, gracePeriodSeconds: -1}]', '/entries/0/gracePeriodSeconds'],
    ['rules: []', 'must have required property \'entries\''],
    ['entries: [', 'not YAML or JSON'],
    ['entries: [{name: x, match: {}}]', '/entries/0: must have either action or actions'],
    ['entries: [{name: x, match: {}, action: isolate, actions: [isolate, cordon]}]', '/entries/0: must have either action or actions'],
    ['entries: [{name: x, match: {}, actions: [cordon]}]', '/entries/0/actions/0: must be a pod action (delete, evict, isolate, log), then node actions (cordon)'],
    ['entries: [{name: x, match: {}, actions: [isolate, delete]}]', '/entries/0/actions/1: only one pod action, first'],
    ['entries: [{name: x, match: {}, actions: [log, cordon]}]', '/entries/0/actions: cordon needs a pod action that reads and verifies the pod first (delete, evict or isolate), not log'],
    ['entries: [{name: x, match: {}, actions: [isolate, cordon, cordon]}]', '/entries/0/actions: must NOT have duplicate items'],
    ['entries: [{name: x, match: {}, actions: [isolate, drain]}]', '/entries/0/actions/1: must be one of delete, evict, isolate, log, cordon'],
    ['entries: [{name: x, match: {}, action: isolate, requireHolds: yes please}]', '/entries/0/requireHolds: must be boolean'],
  ])('refuses %s naming the bad field', (text, message) => {
    expect(() => parsePolicy(text, 'POLICY')).toThrow(PolicyError);
    expect(() => parsePolicy(text, 'POLICY')).toThrow(message);
  });

  it('reads actions as the pod action, then the node actions; action alone is the same as a list of one', () => {
    const p = parsePolicy('entries: [{name: a, match: {}, actions: [isolate, cordon], requireHolds: true}, {name: b, match: {}, action: delete}, {name: c, match: {}, actions: [evict]}]', 'POLICY');
    expect(p.entries.map((e) => [e.action, e.nodeActions ?? [], e.requireHolds ?? false])).toEqual([['isolate', ['cordon'], true], ['delete', [], false], ['evict', [], false]]);
  });

  it('accepts JSON as well as YAML', () => {
    expect(parsePolicy('{"entries":[{"name":"a","match":{},"action":"log"}]}', 'POLICY').entries[0].action).toBe('log');
  });

  it('refuses both POLICY and POLICY_FILE, and an unreadable file', () => {
    expect(() => loadPolicy({ policy: 'entries: []', policyFile: '/x' })).toThrow(/not both/);
    expect(() => loadPolicy({ policyFile: '/nonexistent/policy.yaml' })).toThrow(/cannot read \/nonexistent\/policy.yaml: ENOENT/);
  });
});
