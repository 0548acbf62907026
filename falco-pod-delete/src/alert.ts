// The Falco alert: JSON Schema validation, normalisation, and which pod it names.
import { Ajv, type ErrorObject } from 'ajv';

export const PRIORITIES = ['emergency', 'alert', 'critical', 'error', 'warning', 'notice', 'informational', 'debug'] as const;
export type Priority = (typeof PRIORITIES)[number];

export type FieldValue = string | number | boolean | null | FieldValue[] | { [k: string]: FieldValue };

export interface Alert {
  uuid: string | undefined;
  rule: string;
  priority: Priority;
  source: string | undefined;
  hostname: string | undefined;
  time: Date;
  output: string;
  tags: string[];
  fields: Readonly<Record<string, FieldValue>>;
}

export interface PodRef {
  namespace: string;
  name: string;
}

/** Longest alert value repeated in a reason: enough to recognise it, never enough to flood a log line. */
export const ECHO_MAX = 128;

/** An alert value as a reason repeats it: JSON-quoted (control characters escaped) and cut at `max`. */
export function quoted(value: unknown, max = ECHO_MAX): string {
  const s = String(value);
  return s.length > max ? `${JSON.stringify(s.slice(0, max))}… (${s.length} characters)` : JSON.stringify(s);
}

/** A pod reference as a reason repeats it. */
export function podText(pod: PodRef): string {
  return `${clipText(pod.namespace)}/${clipText(pod.name)}`;
}

function clipText(s: string, max = ECHO_MAX): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

export class AlertError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid alert: ${problems.join('; ')}`);
    this.name = 'AlertError';
  }
}

const nullableString = (maxLength: number) => ({ type: ['string', 'null'], maxLength });

export const ALERT_SCHEMA = {
  $id: 'falco-alert',
  type: 'object',
  required: ['rule', 'priority', 'time', 'output'],
  properties: {
    uuid: nullableString(128),
    rule: { type: 'string', minLength: 1, maxLength: 1024 },
    priority: { type: 'string', minLength: 1, maxLength: 32 },
    source: nullableString(256),
    hostname: nullableString(256),
    time: { type: 'string', minLength: 1, maxLength: 64 },
    output: { type: 'string', maxLength: 65536 },
    tags: { type: ['array', 'null'], maxItems: 256, items: { type: 'string', maxLength: 256 } },
    output_fields: { type: ['object', 'null'], maxProperties: 1024 },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
const validate = ajv.compile(ALERT_SCHEMA);

const PRIORITY_ALIASES: Record<string, Priority> = { info: 'informational', warn: 'warning', err: 'error', crit: 'critical', emerg: 'emergency' };

export function normalizePriority(raw: string): Priority | undefined {
  const p = raw.trim().toLowerCase();
  if ((PRIORITIES as readonly string[]).includes(p)) return p as Priority;
  return PRIORITY_ALIASES[p];
}

export function priorityRank(p: Priority): number {
  return PRIORITIES.length - PRIORITIES.indexOf(p);
}

function describe(e: ErrorObject): string {
  const where = e.instancePath === '' ? 'the alert' : e.instancePath.slice(1).replace(/\//g, '.');
  if (e.keyword === 'required') return `${where} is missing "${(e.params as { missingProperty: string }).missingProperty}"`;
  return `${where} ${e.message ?? 'is invalid'}`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// Falco sends RFC 3339 with nanoseconds; Date keeps milliseconds, which is all age checks need.
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

export function parseAlert(body: unknown): Alert {
  if (!validate(body)) throw new AlertError((validate.errors ?? []).map(describe));
  const raw = body as unknown as Record<string, unknown>;
  const problems: string[] = [];
  const priority = normalizePriority(raw.priority as string);
  if (!priority) problems.push(`priority ${quoted(raw.priority, 32)} is not a Falco priority (${PRIORITIES.join(', ')})`);
  const timeText = raw.time as string;
  const time = new Date(timeText);
  if (!RFC3339.test(timeText) || Number.isNaN(time.getTime())) problems.push(`time ${quoted(timeText, 64)} is not an RFC 3339 timestamp`);
  if (problems.length > 0) throw new AlertError(problems);
  const fields = isRecord(raw.output_fields) ? raw.output_fields : {};
  const text = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  return {
    uuid: text(raw.uuid),
    rule: raw.rule as string,
    priority: priority as Priority,
    source: text(raw.source),
    hostname: text(raw.hostname),
    time,
    output: raw.output as string,
    tags: Array.isArray(raw.tags) ? (raw.tags as string[]) : [],
    fields: fields as Record<string, FieldValue>,
  };
}

/** A field's value when present: null, "", "<NA>" and inherited properties count as absent. */
export function field(alert: Alert, name: string): FieldValue | undefined {
  if (!Object.prototype.hasOwnProperty.call(alert.fields, name)) return undefined;
  const v = alert.fields[name];
  if (v === null || v === '' || v === '<NA>') return undefined;
  return v;
}

export type Target =
  | { kind: 'pod'; pod: PodRef; via: string }
  | { kind: 'none'; reason: string }
  | { kind: 'ambiguous'; reason: string };

const POD_SOURCES: { via: string; name: string; namespace: string; when?: (a: Alert) => boolean }[] = [
  { via: 'k8s', name: 'k8s.pod.name', namespace: 'k8s.ns.name' },
  { via: 'k8smeta', name: 'k8smeta.pod.name', namespace: 'k8smeta.ns.name' },
  {
    via: 'k8s_audit',
    name: 'ka.target.name',
    namespace: 'ka.target.namespace',
    when: (a) => (a.source === undefined || a.source === 'k8s_audit') && field(a, 'ka.target.resource') === 'pods',
  },
];

/** Which pod the alert names. Sources that disagree, or half a reference, make it ambiguous: never guess. */
export function targetOf(alert: Alert): Target {
  const found: { via: string; pod: PodRef }[] = [];
  for (const source of POD_SOURCES) {
    if (source.when && !source.when(alert)) continue;
    const name = field(alert, source.name);
    const namespace = field(alert, source.namespace);
    if (name === undefined && namespace === undefined) continue;
    if (typeof name !== 'string' || typeof namespace !== 'string') {
      if (name === undefined || namespace === undefined) {
        return { kind: 'ambiguous', reason: `${source.name} and ${source.namespace} must both be present` };
      }
      return { kind: 'ambiguous', reason: `${source.name} and ${source.namespace} must be strings` };
    }
    found.push({ via: source.via, pod: { namespace, name } });
  }
  if (found.length === 0) {
    const container = field(alert, 'container.id');
    if (container === 'host') return { kind: 'none', reason: 'host event: no pod involved' };
    return { kind: 'none', reason: 'the alert names no pod' };
  }
  const [first] = found;
  const conflict = found.find((f) => f.pod.name !== first.pod.name || f.pod.namespace !== first.pod.namespace);
  if (conflict) {
    return { kind: 'ambiguous', reason: `${first.via} names ${podText(first.pod)} but ${conflict.via} names ${podText(conflict.pod)}` };
  }
  return { kind: 'pod', pod: first.pod, via: first.via };
}

export function containerIdOf(alert: Alert): string | undefined {
  const id = field(alert, 'container.id');
  return typeof id === 'string' && /^[0-9a-f]{12,64}$/.test(id) ? id : undefined;
}

export function isTestEvent(alert: Alert): boolean {
  return alert.rule === 'Test rule';
}

export function isInternalEvent(alert: Alert): boolean {
  return alert.source === 'internal' || alert.rule.startsWith('Falco internal:');
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function invalidNameReason(pod: PodRef): string | undefined {
  if (pod.namespace.length > 63 || !DNS1123_LABEL.test(pod.namespace)) {
    return `namespace ${quoted(pod.namespace)} is not a valid Kubernetes namespace name (DNS-1123 label)`;
  }
  if (pod.name.length > 253 || !pod.name.split('.').every((part) => part.length <= 63 && DNS1123_LABEL.test(part))) {
    return `pod name ${quoted(pod.name)} is not a valid Kubernetes pod name (DNS-1123 subdomain)`;
  }
  return undefined;
}
