// The response policy: ordered entries, first match wins, no match means no action.
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import { load as loadYaml } from 'js-yaml';
import { ACTION_NAMES, type ActionKind, NODE_ACTION_NAMES, type NodeActionKind, actionOf, actionParameters } from './actions/index.js';
import { type Alert, type PodRef, PRIORITIES, type Priority, field, normalizePriority, priorityRank } from './alert.js';

export type { ActionKind } from './actions/index.js';
export { LOG_BYTES_MAX, LOG_LINES_MAX } from './actions/index.js';

/** What to do with a pod of a DaemonSet or a StatefulSet: the entry's action, nothing, or isolate instead. */
export type KindRule = 'act' | 'skip' | 'isolate';

/** How the entry treats the workload a pod belongs to. */
export interface WorkloadRules {
  /** Ready replicas that must remain once this pod goes: a number, or a percentage of the desired replicas. */
  minHealthyReplicas: number | string;
  daemonSets: KindRule;
  statefulSets: KindRule;
}

/** Evidence written before the action: the pod's manifest always, its containers' last log lines if asked. */
export interface EvidenceRules {
  logs: boolean;
  logLines: number;
  logBytes: number;
}

/** The defaults lean to containment: act unless the pod is its workload's last ready replica. */
export const DEFAULT_WORKLOAD_RULES: WorkloadRules = { minHealthyReplicas: 1, daemonSets: 'act', statefulSets: 'act' };

export interface PolicyEntry {
  name: string;
  match: {
    rules?: string[];
    priority?: string;
    tags?: string[];
    source?: string[];
    namespaces?: string[];
    fields?: Record<string, string | number | boolean>;
    notFields?: Record<string, string | number | boolean>;
  };
  /** The pod action (from `action`, or the first of `actions`). */
  action: ActionKind;
  /** `actions: [isolate, cordon]`: the pod action first, then node actions, in order. */
  actions?: string[];
  /** The node actions after the pod action (from `actions`), done once the pod's is. */
  nodeActions?: NodeActionKind[];
  gracePeriodSeconds?: number;
  minHealthyReplicas?: number | string;
  daemonSets?: KindRule;
  statefulSets?: KindRule;
  evidence?: { logs?: boolean; logLines?: number; logBytes?: number };
  /** isolate: an isolation that would not hold deletes the pod instead. */
  requireHolds?: boolean;
}

export interface Policy {
  entries: PolicyEntry[];
}

export class PolicyError extends Error {
  constructor(readonly problems: string[], origin: string) {
    super(`invalid policy (${origin}): ${problems.join('; ')}`);
    this.name = 'PolicyError';
  }
}

const stringList = { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } };
const fieldMap = { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } };

export const POLICY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['entries'],
  properties: {
    entries: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'match'],
        properties: {
          name: { type: 'string', minLength: 1 },
          // The action registry's names, and every action's parameters (src/actions/).
          action: { enum: ACTION_NAMES },
          actions: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: [...ACTION_NAMES, ...NODE_ACTION_NAMES] } },
          ...actionParameters(),
          match: {
            type: 'object',
            additionalProperties: false,
            properties: {
              rules: stringList,
              priority: { type: 'string', minLength: 1 },
              tags: stringList,
              source: stringList,
              namespaces: stringList,
              fields: fieldMap,
              notFields: fieldMap,
            },
          },
        },
      },
    },
  },
} as const;

export const DEFAULT_POLICY: Policy = {
  entries: [{ name: 'terminal-shell', match: { rules: ['Terminal shell in container'] }, action: 'delete' }],
};

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
const validate = ajv.compile(POLICY_SCHEMA);

function describe(e: ErrorObject): string {
  const where = e.instancePath === '' ? '/' : e.instancePath;
  if (e.keyword === 'additionalProperties') return `${where}: unknown field "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  if (e.keyword === 'enum') return `${where}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
  return `${where}: ${e.message ?? 'is invalid'}`;
}

export function parsePolicy(text: string, origin: string): Policy {
  let doc: unknown;
  try {
    doc = loadYaml(text); // YAML is a superset of JSON, so both formats load here
  } catch (e) {
    throw new PolicyError([`not YAML or JSON: ${(e as Error).message.split('\n')[0]}`], origin);
  }
  if (!validate(doc)) throw new PolicyError((validate.errors ?? []).map(describe), origin);
  const policy = doc as Policy;
  const problems: string[] = [];
  policy.entries.forEach((entry, i) => {
    problems.push(...actionProblems(entry, i));
    if (entry.match.priority !== undefined && !normalizePriority(entry.match.priority)) {
      problems.push(`/entries/${i}/match/priority: must be one of ${PRIORITIES.join(', ')}`);
    }
  });
  if (problems.length > 0) throw new PolicyError(problems, origin);
  return policy;
}

/** `action` or `actions` (exactly one); `actions` is a pod action first, then node actions that need it verified. Normalizes the entry. */
function actionProblems(entry: PolicyEntry, i: number): string[] {
  const where = `/entries/${i}`;
  if ((entry.action === undefined) === (entry.actions === undefined)) return [`${where}: must have either action or actions (a list: the pod action first, then node actions such as cordon)`];
  if (!entry.actions) return [];
  const [first, ...rest] = entry.actions;
  if (!(ACTION_NAMES as string[]).includes(first)) return [`${where}/actions/0: must be a pod action (${ACTION_NAMES.join(', ')}), then node actions (${NODE_ACTION_NAMES.join(', ')})`];
  const misplaced = rest.findIndex((a) => !(NODE_ACTION_NAMES as string[]).includes(a));
  if (misplaced >= 0) return [`${where}/actions/${misplaced + 1}: only one pod action, first; after it come node actions (${NODE_ACTION_NAMES.join(', ')})`];
  if (rest.length > 0 && !actionOf(first as ActionKind).acts) return [`${where}/actions: ${rest.join(', ')} needs a pod action that reads and verifies the pod first (delete, evict or isolate), not ${first}`];
  entry.action = first as ActionKind;
  entry.nodeActions = rest as NodeActionKind[];
  return [];
}

export function loadPolicy(opts: { policy?: string; policyFile?: string }): Policy {
  if (opts.policy && opts.policyFile) throw new PolicyError(['set POLICY or POLICY_FILE, not both'], 'environment');
  if (opts.policy) return parsePolicy(opts.policy, 'POLICY');
  if (opts.policyFile) {
    let text: string;
    try {
      text = readFileSync(opts.policyFile, 'utf8');
    } catch (e) {
      throw new PolicyError([`cannot read ${opts.policyFile}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`], 'POLICY_FILE');
    }
    return parsePolicy(text, `POLICY_FILE ${opts.policyFile}`);
  }
  return DEFAULT_POLICY;
}

/**
 * `*` any run of characters, `?` one character, everything else itself. Greedy with one backtrack point (the
 * last `*`): at most pattern x value steps, never the exponential backtracking a regex of `.*` can take.
 */
export function globMatch(pattern: string, value: string): boolean {
  let p = 0;
  let v = 0;
  let star = -1;
  let resume = 0;
  while (v < value.length) {
    if (p < pattern.length && (pattern[p] === '?' || (pattern[p] !== '*' && pattern[p] === value[v]))) {
      p++;
      v++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      resume = v;
    } else if (star >= 0) {
      p = star + 1;
      v = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

function fieldEquals(alert: Alert, name: string, expected: string | number | boolean): boolean {
  const v = field(alert, name);
  return v !== undefined && String(v) === String(expected);
}

export function entryMatches(entry: PolicyEntry, alert: Alert, pod: PodRef | undefined): boolean {
  const m = entry.match;
  if (m.rules && !m.rules.some((p) => globMatch(p, alert.rule))) return false;
  if (m.priority && priorityRank(alert.priority) < priorityRank(normalizePriority(m.priority) as Priority)) return false;
  if (m.tags && !m.tags.every((t) => alert.tags.includes(t))) return false;
  if (m.source && !(alert.source !== undefined && m.source.includes(alert.source))) return false;
  if (m.namespaces && !(pod && m.namespaces.some((p) => globMatch(p, pod.namespace)))) return false;
  if (m.fields && !Object.entries(m.fields).every(([k, v]) => fieldEquals(alert, k, v))) return false;
  if (m.notFields && Object.entries(m.notFields).some(([k, v]) => fieldEquals(alert, k, v))) return false;
  return true;
}

export function matchPolicy(policy: Policy, alert: Alert, pod: PodRef | undefined): { entry: PolicyEntry; index: number } | undefined {
  const index = policy.entries.findIndex((e) => entryMatches(e, alert, pod));
  return index < 0 ? undefined : { entry: policy.entries[index], index };
}

export function workloadRules(e: PolicyEntry): WorkloadRules {
  return {
    minHealthyReplicas: e.minHealthyReplicas ?? DEFAULT_WORKLOAD_RULES.minHealthyReplicas,
    daemonSets: e.daemonSets ?? DEFAULT_WORKLOAD_RULES.daemonSets,
    statefulSets: e.statefulSets ?? DEFAULT_WORKLOAD_RULES.statefulSets,
  };
}

export function evidenceRules(e: PolicyEntry): EvidenceRules | undefined {
  if (!e.evidence) return undefined;
  return { logs: e.evidence.logs ?? false, logLines: e.evidence.logLines ?? 200, logBytes: e.evidence.logBytes ?? 16_384 };
}
