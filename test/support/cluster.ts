// The real control plane from global-setup.mjs, as the cluster suites use it: an admin client for arranging
// namespaces and pods, the function's ServiceAccount files, and the in-cluster environment a pod would have.
import type { Seams } from '../../falco-pod-delete/src/parts.js';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import { ClientNodeKube } from '../../falco-pod-delete/src/kube/client-node.js';
import { discoverCluster } from '../../falco-pod-delete/src/kube/cluster.js';
import { loadConfig } from '../../falco-pod-delete/src/config.js';
import { FalcoResponse } from '../../falco-pod-delete/src/core.js';
import { httpFunction } from '../../falco-pod-delete/src/express.js';
import type { Kube } from '../../falco-pod-delete/src/kube/index.js';
import { loadPolicy } from '../../falco-pod-delete/src/policy.js';
import { startServer } from '../../template/node18-ts-middleware/server.js';
import { captureLogger, type LogLine, type RunningFunction, startFunction } from './harness.js';
// @ts-expect-error plain ESM shared with global setup and the benchmark
import { apiRequestTotals, kubectl as runKubectl, stageServiceAccountFiles, startControlPlane } from './control-plane.mjs';

export interface ClusterState {
  dir: string;
  assets: string;
  server: string;
  port: number;
  caPath: string;
  adminKubeconfig: string;
  rbac: string;
  token: string;
  namespace: string;
  serviceAccount: string;
}

export const clusterState: ClusterState | undefined = process.env.FPD_CLUSTER
  ? (JSON.parse(readFileSync(process.env.FPD_CLUSTER, 'utf8')) as ClusterState)
  : undefined;

/** describe() on a real API server; skipped (global setup printed how to enable it) without one. */
export const describeCluster = clusterState ? describe : describe.skip;

export function state(): ClusterState {
  if (!clusterState) throw new Error('no control plane (KUBEBUILDER_ASSETS unset)');
  return clusterState;
}

/** A control plane of a test's own, with extra kube-apiserver flags (stopped by the caller, in afterAll). */
export async function ownControlPlane(apiArgs: string[]): Promise<{ state: ClusterState; stop: () => Promise<void> }> {
  return startControlPlane({ apiArgs }) as Promise<{ state: ClusterState; stop: () => Promise<void> }>;
}

/** The files of a pod's ServiceAccount mount for `state`'s token: their prefix. */
export function serviceAccountFiles(s: ClusterState): string {
  return (stageServiceAccountFiles(s) as { prefix: string }).prefix;
}

export class Admin {
  readonly kc = new k8s.KubeConfig();
  readonly core: k8s.CoreV1Api;
  readonly net: k8s.NetworkingV1Api;
  readonly leases: k8s.CoordinationV1Api;
  readonly rbac: k8s.RbacAuthorizationV1Api;

  constructor(readonly s: ClusterState = state()) {
    this.kc.loadFromFile(s.adminKubeconfig);
    this.core = this.kc.makeApiClient(k8s.CoreV1Api);
    this.net = this.kc.makeApiClient(k8s.NetworkingV1Api);
    this.leases = this.kc.makeApiClient(k8s.CoordinationV1Api);
    this.rbac = this.kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  }

  kubectl(args: string[], input?: string): string {
    return runKubectl(this.s, args, input) as string;
  }

  /** A new namespace with its `default` ServiceAccount (no controller-manager makes one). */
  async namespace(prefix: string, labels: Record<string, string> = {}): Promise<string> {
    const name = `${prefix}-${randomBytes(3).toString('hex')}`;
    await this.core.createNamespace({ body: { metadata: { name, labels } } });
    await this.core.createNamespacedServiceAccount({ namespace: name, body: { metadata: { name: 'default' } } });
    return name;
  }

  /**
   * A running pod as a kubelet would report it: scheduled on `node`, with a containerd id in its status.
   * With a node, a DELETE leaves it Terminating (no kubelet confirms); that is what containment looks like here.
   */
  async pod(namespace: string, name: string, opts: { node?: string; containerId?: string; labels?: Record<string, string>; owner?: k8s.V1OwnerReference } = {}): Promise<{ uid: string; containerId: string }> {
    const containerId = opts.containerId ?? randomBytes(32).toString('hex');
    const created = await this.core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name, labels: opts.labels ?? { app: name }, ownerReferences: opts.owner ? [opts.owner] : undefined },
        spec: { nodeName: opts.node ?? 'worker-1', containers: [{ name: 'main', image: 'docker.io/library/alpine:3.20', command: ['sleep', 'infinity'] }] },
      },
    });
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const status = {
      status: {
        phase: 'Running',
        conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }],
        containerStatuses: [{ name: 'main', image: 'docker.io/library/alpine:3.20', imageID: '', containerID: `containerd://${containerId}`, ready: true, started: true, restartCount: 0, state: { running: { startedAt: now } } }],
      },
    };
    await this.core.patchNamespacedPodStatus({ name, namespace, body: status }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    return { uid: created.metadata!.uid!, containerId };
  }

  async readPod(namespace: string, name: string): Promise<k8s.V1Pod | null> {
    try {
      return await this.core.readNamespacedPod({ name, namespace });
    } catch (e) {
      if (e instanceof k8s.ApiException && e.code === 404) return null;
      throw e;
    }
  }

  /** Contained: the pod is gone or carries a deletionTimestamp. */
  async contained(namespace: string, name: string): Promise<boolean> {
    const p = await this.readPod(namespace, name);
    return p === null || p.metadata?.deletionTimestamp !== undefined;
  }

  async events(namespace: string): Promise<k8s.CoreV1Event[]> {
    return (await this.core.listNamespacedEvent({ namespace })).items;
  }

  /**
   * The server's own count of requests (apiserver_request_total from GET /metrics), summed over the series
   * whose labels match `where`: what clients asked of the server, as an operator's dashboard sees it.
   */
  async apiRequests(where: Record<string, string | RegExp>): Promise<number> {
    const series = (await apiRequestTotals(this.s)) as Array<{ labels: Record<string, string>; value: number }>;
    return series
      .filter(({ labels }) => Object.entries(where).every(([k, v]) => (typeof v === 'string' ? labels[k] === v : v.test(labels[k] ?? ''))))
      .reduce((total, { value }) => total + value, 0);
  }

  /** A token for a ServiceAccount through the TokenRequest API, as `kubectl create token` does. */
  token(serviceAccount = this.s.serviceAccount, namespace = this.s.namespace): string {
    return this.kubectl(['create', 'token', serviceAccount, '-n', namespace, '--duration', '1h']).trim();
  }
}

/** The environment of the function's pod: the API server through KUBERNETES_SERVICE_*, the mounted token. */
export function inClusterEnv(extra: Record<string, string> = {}, token?: string, namespace?: string): { env: Record<string, string>; tokenPath: string } {
  const s = state();
  const sa = stageServiceAccountFiles(s, token ?? s.token, namespace ?? s.namespace) as { prefix: string; tokenPath: string };
  return {
    tokenPath: sa.tokenPath,
    env: {
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: String(s.port),
      SERVICEACCOUNT_PATH_PREFIX: sa.prefix,
      HOSTNAME: 'falco-pod-delete-7dc9f5fbb8-gbfk7',
      ...extra,
    },
  };
}

export interface Identity {
  namespace: string;
  serviceAccount: string;
  token: () => string;
}

/**
 * rbac.yaml applied once more for another ServiceAccount in its own namespace (names and namespace changed,
 * rules as written unless `rules` edits them), for tests that change or delete an identity.
 */
export async function rbacCopy(admin: Admin, name: string, rules?: (kind: string, rules: Array<Record<string, unknown>>) => Array<Record<string, unknown>>): Promise<Identity> {
  const YAML = (await import('yaml')).default;
  const namespace = await admin.namespace(name);
  const docs = YAML.parseAllDocuments(readFileSync(state().rbac, 'utf8')).map((d) => d.toJSON() as Record<string, any>);
  const edited = docs.map((doc) => {
    const copy = JSON.parse(JSON.stringify(doc).replaceAll('"falco-pod-delete', `"${name}`).replaceAll('"openfaas-fn"', `"${namespace}"`)) as Record<string, any>;
    if (rules && Array.isArray(copy.rules)) copy.rules = rules(copy.kind as string, copy.rules as Array<Record<string, unknown>>);
    return copy;
  });
  admin.kubectl(['apply', '-f', '-'], edited.map((d) => YAML.stringify(d)).join('---\n'));
  return { namespace, serviceAccount: name, token: () => admin.token(name, namespace) };
}

/** The actions the budget Lease records, by namespace, over every replica's grant (its annotation as stored). */
export function budgetActions(lease: k8s.V1Lease): Record<string, number> {
  const grants = JSON.parse(lease.metadata?.annotations?.['falco-pod-delete/grants'] ?? '{}') as Record<string, { used: Record<string, number[]> }>;
  const by: Record<string, number> = {};
  for (const g of Object.values(grants)) for (const [ns, times] of Object.entries(g.used)) by[ns] = (by[ns] ?? 0) + times.length;
  return by;
}

/** An owner reference as a controller writes it. */
export function ownedBy(kind: string, name: string, uid: string, apiVersion = 'apps/v1'): k8s.V1OwnerReference {
  return { apiVersion, kind, name, uid, controller: true, blockOwnerDeletion: true };
}

const podTemplate = (app: string) => ({ metadata: { labels: { app } }, spec: { containers: [{ name: 'main', image: 'docker.io/library/alpine:3.20' }] } });

/**
 * A workload as its controller would leave it (no controllers run here): the object, its status written by
 * the test, and its pods, each Ready and owned through the real chain (a Deployment's through a ReplicaSet).
 */
export async function workload(admin: Admin, namespace: string, kind: 'Deployment' | 'StatefulSet' | 'DaemonSet', name: string, replicas: number, ready = replicas): Promise<Array<{ name: string; containerId: string }>> {
  const apps = admin.kc.makeApiClient(k8s.AppsV1Api);
  const selector = { matchLabels: { app: name } };
  const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
  let owner: k8s.V1OwnerReference;
  if (kind === 'Deployment') {
    const d = await apps.createNamespacedDeployment({ namespace, body: { metadata: { name }, spec: { replicas, selector, template: podTemplate(name) } } });
    await apps.patchNamespacedDeploymentStatus({ name, namespace, body: { status: { replicas, readyReplicas: ready, availableReplicas: ready } } }, merge);
    const rs = await apps.createNamespacedReplicaSet({ namespace, body: { metadata: { name: `${name}-7d4b9c`, ownerReferences: [ownedBy('Deployment', name, d.metadata!.uid!)] }, spec: { replicas, selector, template: podTemplate(name) } } });
    await apps.patchNamespacedReplicaSetStatus({ name: `${name}-7d4b9c`, namespace, body: { status: { replicas, readyReplicas: ready } } }, merge);
    owner = ownedBy('ReplicaSet', `${name}-7d4b9c`, rs.metadata!.uid!);
  } else if (kind === 'StatefulSet') {
    const st = await apps.createNamespacedStatefulSet({ namespace, body: { metadata: { name }, spec: { replicas, selector, serviceName: name, template: podTemplate(name) } } });
    await apps.patchNamespacedStatefulSetStatus({ name, namespace, body: { status: { replicas, readyReplicas: ready } } }, merge);
    owner = ownedBy('StatefulSet', name, st.metadata!.uid!);
  } else {
    const ds = await apps.createNamespacedDaemonSet({ namespace, body: { metadata: { name }, spec: { selector, template: podTemplate(name) } } });
    await apps.patchNamespacedDaemonSetStatus({ name, namespace, body: { status: { desiredNumberScheduled: replicas, numberReady: ready, currentNumberScheduled: replicas, numberMisscheduled: 0 } } }, merge);
    owner = ownedBy('DaemonSet', name, ds.metadata!.uid!);
  }
  const pods = [];
  for (let i = 0; i < replicas; i++) {
    const pod = `${name}-${i}`;
    pods.push({ name: pod, ...(await admin.pod(namespace, pod, { owner, labels: { app: name }, node: `worker-${i}` })) });
  }
  return pods;
}

export interface ClusterFunction {
  admin: Admin;
  /** A fresh namespace (with its default ServiceAccount) for each test. */
  ns: string;
  /** The function `start` ran in the current test; drained and stopped after it. */
  fn: RunningFunction | undefined;
  start: (extra?: Record<string, string>, seams?: Seams) => Promise<RunningFunction>;
}

/** Per test on the real server: a new namespace, and `start` runs the function in-cluster with `defaults`. */
export function withClusterFunction(defaults: Record<string, string> = {}, opts: { ownIdentity?: string } = {}): ClusterFunction {
  const c = { fn: undefined } as ClusterFunction;
  let identity: Identity | undefined;
  beforeAll(async () => {
    c.admin = new Admin();
    // Its own ServiceAccount and namespace (rbac.yaml applied for them): Leases no other suite shares or clears.
    if (opts.ownIdentity) identity = await rbacCopy(c.admin, opts.ownIdentity);
  });
  beforeEach(async () => {
    c.ns = await c.admin.namespace('apps');
    // Each test starts with no budget spent: its own identity's, or the shared one's in openfaas-fn (suites run
    // one at a time against the real server, and every suite acting as rbac.yaml's ServiceAccount spends it).
    await c.admin.leases.deleteCollectionNamespacedLease({ namespace: identity?.namespace ?? 'openfaas-fn' });
  });
  afterEach(async () => {
    await c.fn?.fn.drain();
    await c.fn?.stop();
    c.fn = undefined;
  });
  c.start = async (extra = {}, seams?: Seams) => (c.fn = await startFunction(inClusterEnv({ ...defaults, ...extra }, identity?.token(), identity?.namespace).env, seams));
  return c;
}

/**
 * The function in-cluster on the real server, its Kubernetes client wrapped by `race`: the real client's calls
 * with something done between them (a controller or an admin acting meanwhile), for races no timing can make.
 */
export async function withRacingKube(extra: Record<string, string>, race: (real: Kube) => Partial<Kube>): Promise<{ post: (body: unknown) => Promise<unknown>; stop: () => Promise<void> }> {
  const { env } = inClusterEnv(extra);
  const config = loadConfig(env);
  const real = new ClientNodeKube(discoverCluster(config, env) as Exclude<ReturnType<typeof discoverCluster>, { kind: 'none' }>, config.apiTimeoutMs, 8);
  const kube: Kube = Object.assign(Object.create(real) as Kube, race(real));
  const lines: LogLine[] = [];
  const response = new FalcoResponse({ config, policy: loadPolicy(config), kube, logger: captureLogger(lines), namespace: 'openfaas-fn', cluster: 'in-cluster' });
  const running = await startServer(httpFunction(response, {}), { port: 0, host: '127.0.0.1', bodyLimit: '512kb', drainMs: 1000 });
  return {
    post: async (body) => (await fetch(`http://127.0.0.1:${running.port}/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json(),
    stop: () => running.shutdown(),
  };
}
