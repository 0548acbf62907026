// The action registry and the code registry, and what derives from them: the policy schema, Events, the
// README's outcome-code table, explain's codes, and each action's RBAC rules against rbac.yaml.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { ACTIONS, ACTION_EVENTS, NODE_ACTIONS, actionOf } from '../../falco-pod-delete/src/actions/index.js';
import { CODES, type CodeInfo, EXPLAIN_ONLY } from '../../falco-pod-delete/src/codes.js';
import { explain } from '../../falco-pod-delete/src/explain.js';
import { POLICY_SCHEMA, loadPolicy } from '../../falco-pod-delete/src/policy.js';
import { loadConfig } from '../../falco-pod-delete/src/config.js';

/** docs/operations.md's table of outcome codes, as the registry writes it. */
export function codesTable(): string {
  const rows = Object.entries(CODES as Record<string, CodeInfo>).map(([code, c]) => {
    const uses = c.uses.map((u) => `\`${u.result}\` ${u.status}`).join(', ');
    return `| \`${code}\` | ${uses} | ${c.remembered ? 'yes' : 'no'} | ${c.event ?? ''} | ${c.meaning} |`;
  });
  return ['| code | outcome, HTTP status | remembered | Event | meaning |', '|---|---|---|---|---|', ...rows].join('\n');
}

describe('the action registry', () => {
  it('is where the policy schema takes its actions and their parameters from', () => {
    const entry = POLICY_SCHEMA.properties.entries.items.properties as Record<string, unknown>;
    expect((entry.action as { enum: string[] }).enum).toEqual(ACTIONS.map((a) => a.name));
    for (const a of ACTIONS) for (const p of Object.keys(a.parameters)) expect(entry[p]).toEqual((a.parameters as Record<string, unknown>)[p]);
  });

  it('gives each action one word, one Event reason and one code, all different', () => {
    for (const key of ['name', 'done', 'eventReason'] as const) expect(new Set(ACTIONS.map((a) => a[key])).size).toBe(ACTIONS.length);
    for (const a of ACTIONS) {
      expect(CODES).toHaveProperty([a.name]);
      if (a.acts) expect(ACTION_EVENTS.has(a.eventReason)).toBe(true);
      // An action that changes a pod has a way to do it and a way to tell that it did.
      const def = actionOf(a.name);
      expect(Boolean(def.act) && Boolean(def.tookEffect)).toBe(a.acts);
    }
  });

  it("declares RBAC rules that rbac.yaml's ClusterRole grants, and rbac.yaml grants no action verb no action declares", () => {
    const docs = YAML.parseAllDocuments(readFileSync('rbac.yaml', 'utf8')).map((d) => d.toJSON() as { kind: string; rules?: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }> });
    const granted = docs.find((d) => d.kind === 'ClusterRole')!.rules!;
    const grants = (group: string, resource: string, verb: string) => granted.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb));
    for (const a of [...ACTIONS, ...NODE_ACTIONS]) for (const r of a.rbac) for (const g of r.apiGroups) for (const res of r.resources) for (const v of r.verbs) {
      expect([a.name, g, res, v, grants(g, res, v)]).toEqual([a.name, g, res, v, true]);
    }
    // The writes rbac.yaml grants on pods are each some action's: none is granted that no action needs.
    const declared = new Set([...ACTIONS, ...NODE_ACTIONS].flatMap((a) => a.rbac.flatMap((r) => r.resources.flatMap((res) => r.verbs.map((v) => `${res}/${v}`)))));
    const podWrites = granted.filter((r) => r.apiGroups.includes('')).flatMap((r) => r.resources.flatMap((res) => r.verbs.filter((v) => ['delete', 'patch', 'create', 'update'].includes(v) && (res.startsWith('pods') || res === 'nodes')).map((v) => `${res}/${v}`)));
    expect(podWrites.filter((w) => !declared.has(w))).toEqual([]);
  });

  it('tells whether an action shows on the pod read again', () => {
    const pod = { namespace: 'n', name: 'p', uid: 'u1', resourceVersion: '1', nodeName: 'w', labels: {}, containerIds: [], deleting: false, owner: undefined, ready: true, containers: [], manifest: {} };
    expect(actionOf('delete').tookEffect!(pod, { ...pod, deleting: true }, 'q')).toBe(true);
    expect(actionOf('delete').tookEffect!(pod, null, 'q')).toBe(true);
    expect(actionOf('delete').tookEffect!(pod, pod, 'q')).toBe(false);
    expect(actionOf('evict').tookEffect!(pod, { ...pod, uid: 'u2' }, 'q')).toBe(true);
    expect(actionOf('isolate').tookEffect!(pod, { ...pod, labels: { q: 'true' } }, 'q')).toBe(true);
    expect(actionOf('isolate').tookEffect!(pod, null, 'q')).toBe(false);
    expect(actionOf('isolate').tookEffect!(pod, { ...pod, uid: 'u2', labels: { q: 'true' } }, 'q')).toBe(false);
  });
});

describe('the code registry', () => {
  it("is docs/operations.md's table of outcome codes, row for row", () => {
    const page = readFileSync('docs/operations.md', 'utf8');
    const expected = codesTable();
    if (!page.includes(expected)) throw new Error(`docs/operations.md's "Outcome codes" table differs from src/codes.ts; it should read:\n${expected}`);
  });

  it('has every code explain answers, for every sample and fixture under every policy shipped', async () => {
    const config = loadConfig({});
    const policy = loadPolicy(config);
    // Fixture times are historical: an age limit of a century lets each reach its decision.
    const guards = { criticalNamespaces: ['kube-system', 'openfaas-fn'], self: { namespace: 'openfaas-fn', name: undefined }, maxAlertAgeSeconds: 3_153_600_000, requireProof: true };
    const dirs = ['samples', 'test/data/falco'];
    const codes = new Set<string>();
    for (const dir of dirs) for (const f of readdirSync(dir).filter((x) => x.endsWith('.json'))) {
      const e = await explain(JSON.parse(readFileSync(join(dir, f), 'utf8')), policy, guards);
      codes.add(e.code);
    }
    expect(codes.size).toBeGreaterThan(3);
    expect([...codes].filter((c) => !(c in CODES) && !(c in EXPLAIN_ONLY))).toEqual([]);
    // The codes only explain gives are explained where explain is.
    const page = readFileSync('docs/policy.md', 'utf8');
    for (const code of Object.keys(EXPLAIN_ONLY)) expect(page).toContain(`\`${code}\` (`);
  });
});

describe('the node codes', () => {
  it("are docs/policy.md's node code table, row for row", async () => {
    const { NODE_CODES } = await import('../../falco-pod-delete/src/nodes.js');
    const page = readFileSync('docs/policy.md', 'utf8');
    const rows = page.split('\n').filter((l) => /^\| `[a-z-]+` \| /.test(l) && page.indexOf(l) > page.indexOf('| node code | meaning |'));
    const table = rows.slice(0, Object.keys(NODE_CODES).length);
    expect(table).toEqual(Object.entries(NODE_CODES).map(([code, meaning]) => `| \`${code}\` | ${meaning} |`));
  });
});
