// Configuration -> parts: everything the function is built from, read from the environment once and
// validated (ConfigError or PolicyError naming what is wrong), apart from the request pipeline (core.ts). The
// explain command builds its decision parts with the same function.
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { createLogger } from './audit.js';
import { namespaceShare } from './bounds.js';
import { ClientNodeKube, type ListWatch } from './kube/client-node.js';
import { type ClusterSource, discoverCluster, identityOf } from './kube/cluster.js';
import { type Config, ConfigError } from './config.js';
import { Coordinator, NODE_BUDGET_LEASE } from './coordination.js';
import { decisionPartsFromEnv } from './decision.js';
import type { Kube } from './kube/index.js';
import { Metrics } from './metrics.js';
import type { Policy } from './policy.js';
import { PodView } from './view.js';

export interface Parts {
  config: Config;
  /** Supplied by fromEnv (its Kubernetes client reports to it); made here when absent. */
  metrics?: Metrics;
  policy: Policy;
  kube: Kube | null;
  logger: Logger;
  namespace: string | undefined;
  cluster: ClusterSource['kind'];
  /** The local view of pods and namespaces (POD_VIEW=on with a cluster): started by start(). */
  view?: PodView;
}

/** The namespace the function runs in: the service-account mount (present in every pod), else POD_NAMESPACE. */
function ownNamespace(config: Config): string | undefined {
  const file = `${config.serviceAccountPathPrefix}/var/run/secrets/kubernetes.io/serviceaccount/namespace`;
  if (existsSync(file)) return readFileSync(file, 'utf8').trim() || undefined;
  return config.podNamespace;
}

/** Everything from the environment: the cluster and its client, the namespace, the local view; the start line logged. */
/**
 * Seams a test may put between the function and what it talks to, the way client-go injects a clock or a
 * ListerWatcher: never set in production.
 */
export interface Seams {
  /** Wraps the list and watch calls the local view makes (a test drops a watch, or resumes it from an old version). */
  listWatch?: (real: ListWatch) => ListWatch;
}

export function partsFromEnv(env: Record<string, string | undefined> = process.env, logger?: Logger, seams: Seams = {}): Parts {
    const { config, policy } = decisionPartsFromEnv(env);
    const log = logger ?? createLogger(config.logLevel);
    const source = discoverCluster(config, env);
    const metrics = new Metrics();
    const kube = source.kind === 'none' ? null : new ClientNodeKube(source, config.apiTimeoutMs, config.maxInFlightApiCalls, (v, r, c, s) => metrics.observeKube(v, r, c, s));
    // Own namespace: the service-account mount, POD_NAMESPACE, else the kubeconfig context's (outside a cluster).
    const namespace = ownNamespace(config) ?? (source.kind === 'none' ? undefined : source.kc.getContextObject(source.kc.getCurrentContext())?.namespace);
    const identity = identityOf(source);
    const live = source.kind !== 'none' && !config.dryRun;
    const startup = {
      cluster: source.kind,
      server: source.kind === 'none' ? undefined : source.kc.getCurrentCluster()?.server,
      identity: identity.name,
      actions: live ? 'real' : 'dry-run',
      dryRun: !live,
      criticalNamespaces: config.criticalNamespaces,
      policyEntries: policy.entries.map((e) => `${e.name}: ${[e.action, ...(e.nodeActions ?? [])].join(', ')}`),
      actionLimit: config.actionLimit === 0 ? 'off' : `${config.actionLimit}/${config.actionWindowSeconds}s`,
      namespaceActionLimit: config.actionLimit === 0 ? 'off' : namespaceShare(config.namespaceActionLimit, config.actionLimit),
      coordination: config.clusterCoordination ? `cluster (Leases in ${namespace ?? '?'})` : 'single replica',
      sharedSecret: config.authTokenFile !== undefined,
    };
    if (source.kind === 'none') {
      log.warn(startup, 'DRY-RUN: no cluster configuration found (no KUBECONFIG_FILE, no in-cluster service account, no KUBECONFIG); alerts are decided and logged, nothing is deleted');
    } else if (!live) {
      log.info(startup, `started in DRY_RUN mode against ${startup.server} as ${identity.name}: nothing will be changed (server-side dry runs and FalcoResponseDryRun Events only)`);
    } else if (!identity.serviceAccount) {
      // The user's own credentials: neither rbac.yaml's least privilege nor guardrails.yaml (bound to the function's ServiceAccount) limits them.
      log.warn(startup, `LIVE: deletions are real, against ${startup.server} as ${identity.name}, which is not a ServiceAccount: rbac.yaml and guardrails.yaml do not limit these credentials. Set DRY_RUN=true to see what it would do first`);
    } else {
      log.info(startup, `started: actions are real, against ${startup.server} as ${identity.name}`);
    }
    const real = kube && config.podView ? kube.listWatch : undefined;
    const listWatch = real && seams.listWatch ? seams.listWatch(real) : real;
    const view = listWatch ? new PodView(listWatch, { maxPods: config.viewMaxPods, streaming: config.viewStreaming, log: (level, msg, extra) => log[level](extra, msg) }) : undefined;
    return { config, policy, kube, logger: log, namespace: namespace ?? undefined, cluster: source.kind, metrics, view };
}

/** The node budget's Lease beside the pod budget's, when some policy entry has a node action. */
export function nodeCoordinatorFor(parts: Parts): Coordinator | undefined {
  const { config, kube, namespace, policy } = parts;
  if (!config.clusterCoordination || !kube || !namespace || config.nodeActionLimit === 0) return undefined;
  if (!policy.entries.some((e) => (e.nodeActions ?? []).length > 0)) return undefined;
  return new Coordinator(kube, {
    namespace,
    identity: `${config.podName ?? 'falco-pod-delete'}-${randomUUID().slice(0, 8)}`,
    actionLimit: config.nodeActionLimit,
    actionWindowMs: config.actionWindowSeconds * 1000,
    namespaceActionLimit: config.nodeActionLimit,
    lease: NODE_BUDGET_LEASE,
  });
}

/** The shared budget lives in the function's own namespace; without one, several replicas cannot share it. */
export function coordinatorFor(parts: Parts): Coordinator | undefined {
  const { config, kube, namespace } = parts;
  if (!config.clusterCoordination || !kube) return undefined;
  if (!namespace) throw new ConfigError('COORDINATION', "is cluster, which keeps the shared budget in the function's namespace: none is known (no service-account mount, no namespace in the kubeconfig context); set POD_NAMESPACE, or COORDINATION=single for exactly one replica");
  return new Coordinator(kube, {
    namespace,
    // One grant per process: a restarted pod of the same name must not take over what a dead one may have spent.
    identity: `${config.podName ?? 'falco-pod-delete'}-${randomUUID().slice(0, 8)}`,
    actionLimit: config.actionLimit,
    actionWindowMs: config.actionWindowSeconds * 1000,
    namespaceActionLimit: namespaceShare(config.namespaceActionLimit, config.actionLimit),
  });
}
