// Configuration: every option declared once (env var, default, parser, doc); parsed once at startup.
import { readFileSync } from 'node:fs';

export const DEFAULT_CRITICAL_NAMESPACES = [
  'kube-system',
  'kube-public',
  'kube-node-lease',
  'falco',
  'openfaas',
  'openfaas-fn',
];

export interface Config {
  criticalNamespaces: string[];
  dryRun: boolean;
  gracePeriodSeconds: number | undefined;
  kubeconfigFile: string | undefined;
  kubeconfigData: string | undefined;
  serviceAccountPathPrefix: string;
  policy: string | undefined;
  policyFile: string | undefined;
  maxAlertAgeSeconds: number;
  coalesceWindowSeconds: number;
  actionLimit: number;
  actionWindowSeconds: number;
  namespaceActionLimit: string;
  declinedLinesPerSecond: number;
  metricsHost: string;
  authTokenFile: string | undefined;
  alertDeadlineMs: number;
  asyncResponse: boolean;
  apiTimeoutMs: number;
  maxInFlightApiCalls: number;
  optOutLabel: string;
  quarantineLabel: string;
  recordEvents: boolean;
  podName: string | undefined;
  podNamespace: string | undefined;
  logLevel: string;
  metricsPort: number;
  clusterCoordination: boolean;
  podView: boolean;
  viewMaxPods: number;
  viewReadyWaitMs: number;
  viewStreaming: boolean;
  criticalNodes: string[];
  minSchedulableNodes: number;
  nodeActionLimit: number;
  nodeLabel: string;
}

export class ConfigError extends Error {
  constructor(readonly variable: string, problem: string) {
    super(`invalid configuration: ${variable} ${problem}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

interface Option<K extends keyof Config> {
  key: K;
  env: string;
  default: string | undefined;
  doc: string;
  parse: (raw: string, env: string) => Config[K];
}

const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function integer(min: number, max: number) {
  return (raw: string, env: string): number => {
    if (!/^\d+$/.test(raw.trim())) throw new ConfigError(env, `must be a whole number, got "${raw}"`);
    const n = Number(raw.trim());
    if (n < min || n > max) throw new ConfigError(env, `must be between ${min} and ${max}, got ${n}`);
    return n;
  };
}

function boolean(raw: string, env: string): boolean {
  const v = raw.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off', ''].includes(v)) return false;
  throw new ConfigError(env, `must be true or false, got "${raw}"`);
}

/** One of a few words (any letter case). */
function oneOf<W extends string>(...words: W[]) {
  return (raw: string, env: string): W => {
    const v = raw.trim().toLowerCase();
    if (!(words as string[]).includes(v)) throw new ConfigError(env, `must be ${words.length === 2 ? words.join(' or ') : `one of ${words.join(', ')}`}, got "${raw}"`);
    return v as W;
  };
}

function optionalText(raw: string): string | undefined {
  return raw.trim() === '' ? undefined : raw.trim();
}

function labelKey(raw: string, env: string): string {
  const v = raw.trim();
  if (!LABEL_KEY.test(v) || v.length > 317) throw new ConfigError(env, `must be a Kubernetes label key, got "${raw}"`);
  return v;
}

function namespaceList(raw: string, env: string): string[] {
  const names = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const n of names) {
    if (!NAMESPACE.test(n) || n.length > 63) throw new ConfigError(env, `holds "${n}", which is not a namespace name`);
  }
  return names;
}

/** A share of the budget: a whole number, or a percentage from 1% to 100%. */
function share(raw: string, env: string): string {
  const v = raw.trim();
  if (/^\d+$/.test(v) && Number(v) >= 1) return v;
  const m = /^(\d+)%$/.exec(v);
  if (m && Number(m[1]) >= 1 && Number(m[1]) <= 100) return v;
  throw new ConfigError(env, `must be a whole number of actions or a percentage from 1% to 100%, got "${raw}"`);
}

export const OPTIONS: { [K in keyof Config]: Option<K> }[keyof Config][] = [
  { key: 'criticalNamespaces', env: 'CRITICAL_NAMESPACES', default: DEFAULT_CRITICAL_NAMESPACES.join(','), parse: namespaceList,
    doc: 'Comma-separated namespaces the function never acts in, whatever the policy says.' },
  { key: 'dryRun', env: 'DRY_RUN', default: 'false', parse: boolean,
    doc: 'Record what would be done instead of doing it (uses the API server-side dryRun where it applies).' },
  { key: 'gracePeriodSeconds', env: 'GRACE_PERIOD_SECONDS', default: '1', doc: "Deletion grace period in seconds: 1 stops the attacker's processes about a second after the kubelet sees the deletion (0 would force-delete: the pod record goes before its containers stop); empty means the pod's own terminationGracePeriodSeconds (30 s unless set). A policy entry may set its own.",
    parse: (raw, env) => (raw.trim() === '' ? undefined : integer(0, 86400)(raw, env)) },
  { key: 'kubeconfigFile', env: 'KUBECONFIG_FILE', default: '', parse: optionalText,
    doc: 'Explicit kubeconfig, e.g. an OpenFaaS secret /var/openfaas/secrets/falco-pod-delete-kubeconfig (Community Edition).' },
  { key: 'kubeconfigData', env: 'KUBECONFIG_DATA', default: '', parse: optionalText,
    doc: 'A kubeconfig given as the variable\'s content (e.g. a Secret Manager secret on Cloud Functions).' },
  { key: 'serviceAccountPathPrefix', env: 'SERVICEACCOUNT_PATH_PREFIX', default: '', parse: (raw) => raw.trim(),
    doc: 'Prefix before /var/run/secrets/kubernetes.io/serviceaccount (for tests and chroots; leave empty in a cluster).' },
  { key: 'policy', env: 'POLICY', default: '', parse: optionalText, doc: 'Response policy as inline YAML or JSON (see Policy).' },
  { key: 'policyFile', env: 'POLICY_FILE', default: '', parse: optionalText, doc: 'Path of a response policy file (a mounted ConfigMap).' },
  { key: 'maxAlertAgeSeconds', env: 'MAX_ALERT_AGE_SECONDS', default: '300', parse: integer(1, 86400 * 7),
    doc: 'Alerts older than this are declined as stale.' },
  { key: 'coalesceWindowSeconds', env: 'COALESCE_WINDOW_SECONDS', default: '60', parse: integer(0, 3600),
    doc: 'Alerts for a pod already handled within this window are answered with the first outcome (0 coalesces only concurrent alerts).' },
  { key: 'actionLimit', env: 'ACTION_LIMIT', default: '20', parse: integer(0, 100000),
    doc: 'Blast-radius limit: at most this many actions per window (0 disables the limit); at most 5000 with COORDINATION=cluster, whose one Lease records every action of the window.' },
  { key: 'actionWindowSeconds', env: 'ACTION_WINDOW_SECONDS', default: '60', parse: integer(1, 86400),
    doc: 'Length of the blast-radius window.' },
  { key: 'namespaceActionLimit', env: 'NAMESPACE_ACTION_LIMIT', default: '50%', parse: share,
    doc: 'The most actions one namespace may take of the blast-radius budget per window: a number, or a percentage of ACTION_LIMIT (rounded up). One tenant\'s alerts for its own pods cannot spend the whole budget.' },
  { key: 'authTokenFile', env: 'AUTH_TOKEN_FILE', default: '', parse: optionalText,
    doc: 'When set, requests must carry "Authorization: Bearer <token>" with the token in this file (an OpenFaaS secret).' },
  { key: 'alertDeadlineMs', env: 'ALERT_DEADLINE_MS', default: '10000', parse: integer(100, 600000),
    doc: 'Overall time budget for one alert, retries included.' },
  { key: 'asyncResponse', env: 'RESPONSE_MODE', default: 'sync', doc: 'sync: answer once the action is done; async: answer 202 once the alert is decided and act in the background (outcome in the audit line and Event).',
    parse: (raw, env) => oneOf('sync', 'async')(raw, env) === 'async' },
  { key: 'apiTimeoutMs', env: 'API_TIMEOUT_MS', default: '3000', parse: integer(50, 600000),
    doc: 'Timeout of a single Kubernetes API call.' },
  { key: 'maxInFlightApiCalls', env: 'MAX_INFLIGHT_API_CALLS', default: '16', parse: integer(1, 1000),
    doc: 'Cap on Kubernetes API calls in flight; excess calls wait their turn within the deadline.' },
  { key: 'optOutLabel', env: 'OPT_OUT_LABEL', default: 'falco-pod-delete/exempt', parse: labelKey,
    doc: 'Pods or namespaces labelled <key>=true are never acted on.' },
  { key: 'quarantineLabel', env: 'QUARANTINE_LABEL', default: 'falco-pod-delete/quarantine', parse: labelKey,
    doc: 'Label the isolate action sets on a pod; the deny-all NetworkPolicy selects it.' },
  { key: 'recordEvents', env: 'RECORD_EVENTS', default: 'true', parse: boolean,
    doc: 'Create a Kubernetes Event on the pod for every action taken or refused by a guard, about pods the function has read and whose proof held (or for an authenticated caller).' },
  { key: 'podName', env: 'HOSTNAME', default: '', parse: optionalText,
    doc: "The function's own pod name (Kubernetes sets HOSTNAME); the function never acts on its own pod." },
  { key: 'podNamespace', env: 'POD_NAMESPACE', default: '', parse: optionalText,
    doc: "The function's own namespace when no service-account mount says it; the function never acts in it." },
  { key: 'metricsPort', env: 'METRICS_PORT', default: '9464', parse: integer(0, 65535),
    doc: 'Port of the Prometheus endpoint (GET /metrics), apart from the function port the watchdog proxies; 0 turns it off.' },
  { key: 'clusterCoordination', env: 'COORDINATION', default: 'cluster', doc: 'cluster: replicas share one blast-radius budget through a Lease in the function\'s namespace, each write reserving for every alert waiting (exactly-once on a pod comes from the uid and resourceVersion preconditions, at any replica count); single: the budget in memory only, for exactly one replica.',
    parse: (raw, env) => oneOf('cluster', 'single')(raw, env) === 'cluster' },
  { key: 'podView', env: 'POD_VIEW', default: 'on', doc: 'on: keep a local view of pods and namespace labels (list and watch), so that checks and node lookups make no API call; off: read the API for every alert.',
    parse: (raw, env) => oneOf('on', 'off')(raw, env) === 'on' },
  { key: 'viewMaxPods', env: 'VIEW_MAX_PODS', default: '50000', parse: integer(1, 10_000_000),
    doc: "Above this many pods in the cluster the view turns itself off (a warn line says so) and every check reads the API: a ceiling on its memory (148 MB RSS with 50,000 pods, BENCHMARKS.md). Raise it with stack.yml's memory limit and --max-old-space-size." },
  { key: 'viewStreaming', env: 'VIEW_LIST', default: 'streaming', doc: "streaming: the view gets its state by a streaming list (WatchList) where the API server serves one, else by paged lists (the falco_pod_delete_view_list_mode metric says which ran); paged: paged lists only, as before WatchList (client-go's KUBE_FEATURE_WatchListClient=false), for a proxy or server whose streaming lists misbehave.",
    parse: (raw, env) => oneOf('streaming', 'paged')(raw, env) === 'streaming' },
  { key: 'viewReadyWaitMs', env: 'VIEW_READY_WAIT_MS', default: '300', parse: integer(0, 60_000),
    doc: "At start, how long /_/ready (the platform's readiness) may wait for the local view's first list beside the budget's first reservation: on a small cluster the first alert then makes no read; on a large one the function is ready after this long and alerts read the API until the view has synced (never held until it has). 0: do not wait." },
  { key: 'criticalNodes', env: 'CRITICAL_NODES', default: '', parse: (raw) => raw.split(',').map((s) => s.trim()).filter((s) => s !== ''),
    doc: 'Comma-separated node names or globs (* and ?) that cordon never touches, beside every node labelled node-role.kubernetes.io/control-plane (or master).' },
  { key: 'minSchedulableNodes', env: 'MIN_SCHEDULABLE_NODES', default: '2', parse: integer(0, 100000),
    doc: 'cordon never leaves fewer schedulable Ready nodes than this (control-plane nodes not counted): on a small cluster, one compromised pod must not take away the room its replacement needs.' },
  { key: 'nodeActionLimit', env: 'NODE_ACTION_LIMIT', default: '1', parse: integer(0, 1000),
    doc: 'Nodes cordoned per ACTION_WINDOW_SECONDS, across replicas (a Lease of its own with COORDINATION=cluster); 0 turns cordon off whatever the policy says.' },
  { key: 'nodeLabel', env: 'NODE_LABEL', default: 'falco-pod-delete/cordoned', parse: labelKey,
    doc: 'Label cordon sets on a node it cordons (value: when, as 20261207T013152Z); release node/NAME uncordons only nodes that carry it.' },
  { key: 'declinedLinesPerSecond', env: 'AUDIT_DECLINES_PER_SECOND', default: '20', parse: integer(1, 100000),
    doc: 'Audit lines a second for declined and rejected alerts (bursts of twice as many); the rest are counted in a summary line, so that a flood cannot rotate the real lines out of the log. Actions and failures are always written.' },
  { key: 'metricsHost', env: 'METRICS_HOST', default: '0.0.0.0', parse: (raw) => raw.trim() || '0.0.0.0',
    doc: 'Address the Prometheus endpoint listens on (0.0.0.0: reachable by a scraper from outside the pod).' },
  { key: 'logLevel', env: 'LOG_LEVEL', default: 'info', doc: 'pino log level for diagnostics (audit lines are always written).',
    parse: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent') },
];

/** The largest ACTION_LIMIT the shared budget's one Lease can record (about 16 bytes an action). */
export const MAX_SHARED_ACTION_LIMIT = 5000;

export function loadConfig(env: Env = process.env): Config {
  const config: Record<string, unknown> = {};
  for (const option of OPTIONS) {
    const raw = env[option.env] ?? option.default ?? '';
    config[option.key] = option.parse(raw, option.env);
  }
  const result = config as unknown as Config;
  if (result.authTokenFile) readSecret(result.authTokenFile, 'AUTH_TOKEN_FILE');
  // The shared budget records each action of the window in one Lease annotation (at most 256 KiB in all).
  if (result.clusterCoordination && result.actionLimit > MAX_SHARED_ACTION_LIMIT) {
    throw new ConfigError('ACTION_LIMIT', `must be at most ${MAX_SHARED_ACTION_LIMIT} with COORDINATION=cluster (the shared budget's Lease records every action of the window), got ${result.actionLimit}; use 0 for no limit`);
  }
  return result;
}

export function readSecret(path: string, variable: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new ConfigError(variable, `names ${path}, which cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  if (text === '') throw new ConfigError(variable, `names ${path}, which is empty`);
  return text;
}
