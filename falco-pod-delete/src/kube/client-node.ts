// The Kubernetes seam implemented with @kubernetes/client-node: one keep-alive connection, the in-flight cap,
// retries inside the alert's deadline, and each call's answer turned into what the response stage expects.
import type { PolicyFacts } from '../isolation.js';
import { Agent, request } from 'node:https';
import * as k8s from '@kubernetes/client-node';
import type { PodRef } from '../alert.js';
import { type ClusterSource, type TokenFile, tlsOptions } from './cluster.js';
import { type Deadline, Slots } from '../deadline.js';
import { type HandledStatus, KubeError, type Target, classify, isStatus } from './kube-error.js';
import { type ControllerStatus, type EventNote, type IsolationChange, type Kube, type LeaseRecord, type LeaseSpec, type MutationResult, type NodeSnapshot, type PodSnapshot, type Verified, type WorkloadRef, pointerKey } from './index.js';
import { leaseBody, leaseRecord } from './leases.js';
import { controllerOf, snapshot } from './pod-snapshot.js';
import { QUARANTINE_POLICY, quarantineSpec, quarantineSpecProblem } from './quarantine.js';

/** A deletion's options: the uid and resourceVersion preconditions always, the grace period and server-side dry run when asked. */
function deleteOptions(v: Verified, gracePeriodSeconds: number | undefined, dryRun: boolean): k8s.V1DeleteOptions {
  const body: k8s.V1DeleteOptions = { preconditions: v.resourceVersion ? { uid: v.uid, resourceVersion: v.resourceVersion } : { uid: v.uid } };
  if (gracePeriodSeconds !== undefined) body.gracePeriodSeconds = gracePeriodSeconds;
  if (dryRun) body.dryRun = ['All'];
  return body;
}

/** What a deletion or an eviction did: 404 the pod is gone, 409 a precondition failed (not the version verified). */
function mutationResult(r: unknown, verb: string, resource: string, namespace: string, what: string): MutationResult {
  if (isStatus(r, 404)) return 'gone';
  if (isStatus(r, 409)) return 'changed';
  if (isStatus(r)) throw new KubeError('rejected', verb, resource, namespace, `the Kubernetes API refused the ${what} (${r.handledStatus})`, r.handledStatus);
  return 'done';
}

/** A JSON patch under `test` preconditions: 404 gone; 409, or 422 (a `test` failed), changed since it was read. */
function patchResult(r: unknown): MutationResult {
  if (isStatus(r, 404)) return 'gone';
  if (isStatus(r, 422) || isStatus(r, 409)) return 'changed';
  return 'done';
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** client-node's object API takes its observable middleware; this is the minimal form it consumes (toPromise). */
function observable<T>(value: T) {
  const promise = Promise.resolve(value);
  return { promise, toPromise: () => promise, pipe: <U>(f: (v: T) => U) => observable(promise.then(f)) };
}

function requestOptions(signal: AbortSignal, token: TokenFile | undefined, extra?: Record<string, string>): k8s.ConfigurationOptions {
  const pre = (ctx: k8s.RequestContext) => {
    ctx.setSignal(signal);
    if (token) ctx.setHeaderParam('Authorization', `Bearer ${token.get()}`);
    for (const [k, v] of Object.entries(extra ?? {})) ctx.setHeaderParam(k, v);
    return observable(ctx);
  };
  const post = (rsp: k8s.ResponseContext) => observable(rsp);
  return { middleware: [{ pre, post }], middlewareMergeStrategy: 'append' } as unknown as k8s.ConfigurationOptions;
}

/** The list and watch the local view feeds on: the JSON as sent, never deserialised into client-node's classes. */
export interface ListWatch {
  /** One page of a list: its items, the list's resourceVersion, and the continue token of the next page. */
  list(path: string, query: Record<string, string>, signal: AbortSignal): Promise<{ items: unknown[]; resourceVersion: string; continue: string | undefined }>;
  /** A watch, event by event, until the server ends it (resolves) or it fails (rejects with a WatchError). */
  watch(path: string, query: Record<string, string>, signal: AbortSignal, onEvent: (type: string, object: Record<string, any>) => void, onOpen?: () => void): Promise<void>;
}

/** A list or watch the server refused or that broke: status 410 means the resourceVersion is too old (relist). */
export class WatchError extends Error {
  constructor(readonly status: number | undefined, message: string) {
    super(message);
    this.name = 'WatchError';
  }
}

class HttpsListWatch implements ListWatch {
  constructor(
    private readonly server: string,
    private readonly agent: Agent,
    private readonly streams: Agent,
    private readonly headers: () => Promise<Record<string, string>>,
    private readonly unauthorized: () => void,
  ) {}

  private async open(path: string, query: Record<string, string>, signal: AbortSignal, agent: Agent) {
    // Under the server's own path, if it has one (a proxy's prefix).
    const url = new URL(this.server);
    url.pathname = `${url.pathname.replace(/\/$/, '')}${path}`;
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const headers = { accept: 'application/json', ...(await this.headers()) };
    return new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      const req = request(url, { agent, headers, signal }, (res) => {
        if (res.statusCode === 200) return resolve(res);
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body = (body + c).slice(0, 2000)));
        res.on('end', () => {
          if (res.statusCode === 401) this.unauthorized();
          let message = body;
          try {
            message = (JSON.parse(body) as { message?: string }).message ?? body;
          } catch {
            // not a Status: keep the text
          }
          reject(new WatchError(res.statusCode, `HTTP ${res.statusCode} for ${url.pathname}: ${message.slice(0, 300)}`));
        });
        res.on('error', reject);
      });
      req.on('error', (e) => reject(new WatchError(undefined, `${url.pathname}: ${(e as Error).message}`)));
      req.end();
    });
  }

  async list(path: string, query: Record<string, string>, signal: AbortSignal) {
    const res = await this.open(path, query, signal, this.agent);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { items?: unknown; metadata?: { resourceVersion?: string; continue?: string } };
    if (!Array.isArray(parsed?.items) || typeof parsed.metadata?.resourceVersion !== 'string') throw new WatchError(undefined, `list ${path}: the answer is not a list`);
    return { items: parsed.items, resourceVersion: parsed.metadata.resourceVersion, continue: parsed.metadata.continue || undefined };
  }

  async watch(path: string, query: Record<string, string>, signal: AbortSignal, onEvent: (type: string, object: Record<string, any>) => void, onOpen?: () => void) {
    const res = await this.open(path, { ...query, watch: 'true' }, signal, this.streams);
    onOpen?.();
    res.setEncoding('utf8');
    let rest = '';
    for await (const chunk of res) {
      rest += chunk as string;
      let nl: number;
      while ((nl = rest.indexOf('\n')) >= 0) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        if (line.trim() === '') continue;
        const event = JSON.parse(line) as { type?: string; object?: Record<string, any> };
        if (typeof event?.type !== 'string' || typeof event.object !== 'object' || event.object === null) throw new WatchError(undefined, `watch ${path}: an event that is not one`);
        if (event.type === 'ERROR') throw new WatchError(Number(event.object.code) || undefined, `watch ${path}: ${String(event.object.message ?? 'error').slice(0, 300)}`);
        onEvent(event.type, event.object);
      }
    }
    // What is left after the last newline is not an event: a body that is not a watch stream (a proxy's page, a list).
    if (rest.trim() !== '') throw new WatchError(undefined, `watch ${path}: the answer is not a watch stream`);
  }
}

export class ClientNodeKube implements Kube {
  private readonly core: k8s.CoreV1Api;
  private readonly net: k8s.NetworkingV1Api;
  private readonly coordination: k8s.CoordinationV1Api;
  private readonly apps: k8s.AppsV1Api;
  private readonly batch: k8s.BatchV1Api;
  private readonly token: TokenFile | undefined;

  private readonly slots: Slots;
  /** The raw list and watch that feed the local view; undefined for proxied or plain-http clusters. */
  readonly listWatch: ListWatch | undefined;

  constructor(
    source: Exclude<ClusterSource, { kind: 'none' }>,
    private readonly apiTimeoutMs: number,
    maxInFlight: number,
    private readonly observe: (verb: string, resource: string, code: string, seconds: number) => void = () => undefined,
  ) {
    this.slots = new Slots(maxInFlight);
    this.token = source.kind === 'in-cluster' ? source.token : undefined;
    const kc = source.kc;
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('invalid configuration: the kubeconfig has no current cluster');
    // client-node makes a new https.Agent (so a new TLS handshake) for every request; one keep-alive agent
    // instead keeps connections to the API server open. Proxied clusters keep client-node's own agents.
    const agent = cluster.proxyUrl || cluster.server.startsWith('http:') ? undefined : new Agent({ keepAlive: true, maxSockets: maxInFlight, ...tlsOptions(kc) });
    const inCluster = source.kind === 'in-cluster';
    const auth: k8s.SecurityAuthentication = {
      getName: () => 'default',
      applySecurityAuthentication: async (ctx) => {
        if (!inCluster) await kc.applySecurityAuthentication(ctx); // kubeconfig credentials: token, exec plugin, basic
        if (agent) ctx.setAgent(agent);
      },
    };
    const configuration = k8s.createConfiguration({ baseServer: new k8s.ServerConfiguration(cluster.server, {}), authMethods: { default: auth } });
    this.core = new k8s.CoreV1Api(configuration);
    this.net = new k8s.NetworkingV1Api(configuration);
    this.coordination = new k8s.CoordinationV1Api(configuration);
    this.apps = new k8s.AppsV1Api(configuration);
    this.batch = new k8s.BatchV1Api(configuration);
    if (agent) {
      // Watches hold their connection for minutes: their own agent, so they never take a slot of the alerts'.
      const streams = new Agent({ keepAlive: true, ...tlsOptions(kc) });
      const headers = async (): Promise<Record<string, string>> => {
        if (this.token) return { authorization: `Bearer ${this.token.get()}` };
        const opts: { headers?: Record<string, string> } = {};
        await kc.applyToHTTPSOptions(opts as never);
        return Object.fromEntries(Object.entries(opts.headers ?? {}).filter(([k]) => k.toLowerCase() === 'authorization'));
      };
      this.listWatch = new HttpsListWatch(cluster.server, agent, streams, headers, () => this.token?.invalidate());
    }
  }

  /**
   * One API call: waits for a slot under the in-flight cap, times out per attempt, retries 429 (after
   * Retry-After), 5xx and connection errors with jittered backoff inside the alert's deadline, and re-reads
   * the token once after a 401. 404, 409 and 422 come back as values for the caller to interpret.
   */
  private async call<T>(t: Target, deadline: Deadline, fn: (opts: ReturnType<typeof requestOptions>) => Promise<T>, headers?: Record<string, string>, retry429 = true): Promise<T | HandledStatus> {
    let reread = false;
    for (let attempt = 0; ; attempt++) {
      const release = await this.slots.acquire(deadline, t);
      const attemptSignal = deadline.attempt(this.apiTimeoutMs);
      const started = performance.now();
      const seen = (code: string) => this.observe(t.verb, t.resource, code, (performance.now() - started) / 1000);
      try {
        const result = await fn(requestOptions(attemptSignal.signal, this.token, headers));
        seen('2xx');
        return result;
      } catch (e) {
        const c = classify(e, t);
        seen(c instanceof KubeError ? (c.status !== undefined ? String(c.status) : c.code) : String(c.handledStatus));
        if (!(c instanceof KubeError)) return c;
        if (c.code === 'unauthorized' && this.token && !reread) {
          reread = true;
          this.token.invalidate();
          continue;
        }
        if (!c.retryable || (c.code === 'rate-limited' && !retry429)) throw c;
        const backoff = c.retryAfterSeconds !== undefined ? c.retryAfterSeconds * 1000 : Math.random() * Math.min(2000, 100 * 2 ** attempt);
        if (deadline.remaining() <= backoff + 50) throw c;
        await sleep(backoff);
      } finally {
        attemptSignal.done();
        release();
      }
    }
  }

  async readPod(pod: PodRef, deadline: Deadline): Promise<PodSnapshot | null> {
    const r = await this.call({ verb: 'get', resource: 'pods', namespace: pod.namespace }, deadline, (o) => this.core.readNamespacedPod(pod, o));
    if (isStatus(r)) return null;
    const snap = snapshot(r);
    // Never act on an answer that is not the pod asked for (a proxy's HTML page, a truncated body).
    if (snap.uid === '' || snap.name !== pod.name || snap.namespace !== pod.namespace) {
      throw new KubeError('bad-response', 'get', 'pods', pod.namespace, `the Kubernetes API answered get pods ${pod.namespace}/${pod.name} with something that is not that pod`);
    }
    return snap;
  }

  async listPodsOnNode(node: string, deadline: Deadline): Promise<PodSnapshot[]> {
    const r = await this.call({ verb: 'list', resource: 'pods', namespace: undefined }, deadline, (o) =>
      this.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` }, o));
    if (isStatus(r)) return [];
    if (!Array.isArray(r?.items)) throw new KubeError('bad-response', 'list', 'pods', undefined, 'the Kubernetes API answered list pods with something that is not a PodList');
    return r.items.map((p) => snapshot(p)).filter((p) => p.uid !== '' && p.name !== '' && p.namespace !== '');
  }

  async readNamespaceLabels(namespace: string, deadline: Deadline): Promise<Record<string, string> | null> {
    const r = await this.call({ verb: 'get', resource: 'namespaces', namespace: undefined }, deadline, (o) => this.core.readNamespace({ name: namespace }, o));
    if (isStatus(r)) return null;
    // Its labels decide the opt-out: an answer that is not that namespace must not read as "no labels".
    if (r?.metadata?.name !== namespace) {
      throw new KubeError('bad-response', 'get', 'namespaces', undefined, `the Kubernetes API answered get namespaces ${namespace} with something that is not that namespace`);
    }
    return r.metadata.labels ?? {};
  }

  async deletePod(pod: PodRef, verified: Verified, gracePeriodSeconds: number | undefined, dryRun: boolean, deadline: Deadline): Promise<MutationResult> {
    const body = deleteOptions(verified, gracePeriodSeconds, dryRun);
    const r = await this.call({ verb: 'delete', resource: 'pods', namespace: pod.namespace }, deadline, (o) =>
      this.core.deleteNamespacedPod({ name: pod.name, namespace: pod.namespace, body }, o));
    return mutationResult(r, 'delete', 'pods', pod.namespace, 'deletion');
  }

  async evictPod(pod: PodRef, verified: Verified, gracePeriodSeconds: number | undefined, dryRun: boolean, deadline: Deadline): Promise<MutationResult | { blocked: string }> {
    const body: k8s.V1Eviction = { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: pod.name, namespace: pod.namespace }, deleteOptions: deleteOptions(verified, gracePeriodSeconds, dryRun) };
    try {
      const r = await this.call({ verb: 'create', resource: 'pods/eviction', namespace: pod.namespace }, deadline, (o) =>
        this.core.createNamespacedPodEviction({ name: pod.name, namespace: pod.namespace, body }, o), undefined, false);
      return mutationResult(r, 'create', 'pods/eviction', pod.namespace, 'eviction');
    } catch (e) {
      // A PodDisruptionBudget answers 429: an answer, not throttling.
      if (e instanceof KubeError && e.code === 'rate-limited') return { blocked: e.message.replace(/^the Kubernetes API is throttling requests \(429\): /, '') };
      throw e;
    }
  }

  async readController(namespace: string, ref: WorkloadRef, deadline: Deadline): Promise<ControllerStatus | null> {
    const name = ref.name;
    const get = async <T>(resource: string, fn: (o: ReturnType<typeof requestOptions>) => Promise<T>) => {
      const r = await this.call({ verb: 'get', resource, namespace }, deadline, fn);
      return isStatus(r) ? null : r;
    };
    const meta = (m: k8s.V1ObjectMeta | undefined) => controllerOf(m?.ownerReferences);
    // ReplicaSets, Deployments and StatefulSets all count spec.replicas and status.readyReplicas.
    const replicated = (r: { metadata?: k8s.V1ObjectMeta; spec?: { replicas?: number }; status?: { readyReplicas?: number } } | null) =>
      r && { kind: ref.kind, name, replicas: r.spec?.replicas, ready: r.status?.readyReplicas ?? 0, owner: meta(r.metadata) };
    switch (ref.kind) {
      case 'ReplicaSet':
        return replicated(await get('replicasets', (o) => this.apps.readNamespacedReplicaSet({ name, namespace }, o)));
      case 'Deployment':
        return replicated(await get('deployments', (o) => this.apps.readNamespacedDeployment({ name, namespace }, o)));
      case 'StatefulSet':
        return replicated(await get('statefulsets', (o) => this.apps.readNamespacedStatefulSet({ name, namespace }, o)));
      case 'DaemonSet': {
        const r = await get('daemonsets', (o) => this.apps.readNamespacedDaemonSet({ name, namespace }, o));
        return r && { kind: ref.kind, name, replicas: r.status?.desiredNumberScheduled, ready: r.status?.numberReady ?? 0, owner: meta(r.metadata) };
      }
      case 'Job': {
        const r = await get('jobs', (o) => this.batch.readNamespacedJob({ name, namespace }, o));
        return r && { kind: ref.kind, name, replicas: undefined, ready: undefined, owner: meta(r.metadata) };
      }
      default:
        return null;
    }
  }

  async readPodLog(pod: PodRef, container: string, tailLines: number, limitBytes: number, deadline: Deadline): Promise<string> {
    const r = await this.call({ verb: 'get', resource: 'pods/log', namespace: pod.namespace }, deadline, (o) =>
      this.core.readNamespacedPodLog({ name: pod.name, namespace: pod.namespace, container, tailLines, limitBytes }, o));
    if (isStatus(r)) throw new KubeError('rejected', 'get', 'pods/log', pod.namespace, `the Kubernetes API has no log for ${pod.namespace}/${pod.name} container ${container} (${r.handledStatus})`, r.handledStatus);
    return typeof r === 'string' ? r : String(r);
  }

  async ensureQuarantinePolicy(namespace: string, label: string, dryRun: boolean, deadline: Deadline): Promise<void> {
    const name = QUARANTINE_POLICY;
    const t = { verb: 'get', resource: 'networkpolicies', namespace };
    const existing = await this.call(t, deadline, (o) => this.net.readNamespacedNetworkPolicy({ name, namespace }, o));
    if (!isStatus(existing)) {
      // A policy of that name made by someone else (or edited since) must be the deny-all one, or the pod would
      // be labelled "isolated" and keep its traffic.
      const problem = quarantineSpecProblem(existing?.spec, label);
      if (problem) throw new KubeError('quarantine-policy-altered', 'get', 'networkpolicies', namespace, `the NetworkPolicy ${namespace}/${name} exists but is not the deny-all quarantine policy (${problem}): not isolated. Delete it (the function re-creates it) or make it deny all traffic to and from pods labelled ${label}=true`);
      return;
    }
    if (!isStatus(existing, 404)) throw new KubeError('rejected', 'get', 'networkpolicies', namespace, `the Kubernetes API refused to read the quarantine NetworkPolicy (${(existing as HandledStatus).handledStatus})`, (existing as HandledStatus).handledStatus);
    const policy: k8s.V1NetworkPolicy = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name, namespace, labels: { 'app.kubernetes.io/managed-by': 'falco-pod-delete' } },
      spec: quarantineSpec(label),
    };
    const created = await this.call({ verb: 'create', resource: 'networkpolicies', namespace }, deadline, (o) =>
      this.net.createNamespacedNetworkPolicy({ namespace, body: policy, dryRun: dryRun ? 'All' : undefined }, o));
    if (isStatus(created, 409)) return this.ensureQuarantinePolicy(namespace, label, dryRun, deadline); // created meanwhile: check that one
    if (isStatus(created)) throw new KubeError('rejected', 'create', 'networkpolicies', namespace, `the Kubernetes API refused the quarantine NetworkPolicy (${created.handledStatus})`, created.handledStatus);
  }

  async listNetworkPolicies(namespace: string, deadline: Deadline): Promise<PolicyFacts[]> {
    const r = await this.call({ verb: 'list', resource: 'networkpolicies', namespace }, deadline, (o) => this.net.listNamespacedNetworkPolicy({ namespace }, o));
    if (isStatus(r)) throw new KubeError('rejected', 'list', 'networkpolicies', namespace, `the Kubernetes API refused to list the NetworkPolicies of ${namespace} (${r.handledStatus})`, r.handledStatus);
    return (r.items ?? []).map((p) => ({
      name: p.metadata?.name ?? '',
      podSelector: (p.spec?.podSelector ?? {}) as PolicyFacts['podSelector'],
      policyTypes: p.spec?.policyTypes,
      ingressRules: p.spec?.ingress?.length ?? 0,
      egressRules: p.spec?.egress?.length ?? 0,
    }));
  }

  async isolatePod(pod: PodRef, verified: Verified & { annotated?: boolean; labels?: Record<string, string> }, change: IsolationChange, dryRun: boolean, deadline: Deadline): Promise<MutationResult> {
    const label = change.detach
      ? { op: 'add', path: '/metadata/labels', value: { [change.label]: 'true' } } // replaces them all
      : { op: 'add', path: `/metadata/labels/${pointerKey(change.label)}`, value: 'true' };
    const annotation = verified.annotated
      ? { op: 'add', path: `/metadata/annotations/${pointerKey(change.annotation)}`, value: change.record }
      : { op: 'add', path: '/metadata/annotations', value: { [change.annotation]: change.record } };
    // The test operations make the patch fail (422) unless the pod is exactly the version that was verified.
    const tests = [{ op: 'test', path: '/metadata/uid', value: verified.uid }];
    if (verified.resourceVersion) tests.push({ op: 'test', path: '/metadata/resourceVersion', value: verified.resourceVersion });
    // A pod with no labels at all has no map to add a key to: the label op then adds the map.
    const patch = [...tests, change.detach || Object.keys(verified.labels ?? {}).length > 0 ? label : { op: 'add', path: '/metadata/labels', value: { [change.label]: 'true' } }, annotation];
    const r = await this.call({ verb: 'patch', resource: 'pods', namespace: pod.namespace }, deadline, (o) =>
      this.core.patchNamespacedPod({ name: pod.name, namespace: pod.namespace, body: patch, dryRun: dryRun ? 'All' : undefined }, o),
    { 'Content-Type': k8s.PatchStrategy.JsonPatch });
    return patchResult(r);
  }

  async createLease(namespace: string, lease: LeaseSpec, deadline: Deadline): Promise<LeaseRecord | 'exists'> {
    const r = await this.call({ verb: 'create', resource: 'leases', namespace }, deadline, (o) =>
      this.coordination.createNamespacedLease({ namespace, body: leaseBody(namespace, lease) }, o));
    if (isStatus(r, 409)) return 'exists';
    if (isStatus(r)) throw new KubeError('rejected', 'create', 'leases', namespace, `the Kubernetes API refused the lease ${lease.name} (${r.handledStatus})`, r.handledStatus);
    return leaseRecord(r);
  }

  async readLease(namespace: string, name: string, deadline: Deadline): Promise<LeaseRecord | null> {
    const r = await this.call({ verb: 'get', resource: 'leases', namespace }, deadline, (o) => this.coordination.readNamespacedLease({ name, namespace }, o));
    return isStatus(r) ? null : leaseRecord(r);
  }

  async replaceLease(namespace: string, resourceVersion: string, lease: LeaseSpec, deadline: Deadline): Promise<LeaseRecord | 'conflict' | 'gone'> {
    const body = leaseBody(namespace, lease);
    (body.metadata as k8s.V1ObjectMeta).resourceVersion = resourceVersion;
    const r = await this.call({ verb: 'update', resource: 'leases', namespace }, deadline, (o) =>
      this.coordination.replaceNamespacedLease({ name: lease.name, namespace, body }, o));
    if (isStatus(r, 404)) return 'gone';
    if (isStatus(r)) return 'conflict';
    return leaseRecord(r);
  }

  async createEvent(event: EventNote, deadline: Deadline): Promise<void> {
    const now = new Date();
    // An Event about a Node (cluster-scoped) lives in the default namespace, where kubectl describe node finds it.
    const namespace = event.node ? 'default' : event.pod.namespace;
    const involvedObject: k8s.V1ObjectReference = event.node
      ? { apiVersion: 'v1', kind: 'Node', name: event.node.name, uid: event.node.uid }
      : { apiVersion: 'v1', kind: 'Pod', name: event.pod.name, namespace: event.pod.namespace, uid: event.podUid };
    const body: k8s.CoreV1Event = {
      metadata: { generateName: `${(event.node?.name ?? event.pod.name).slice(0, 200)}.falco-`, namespace },
      involvedObject,
      reason: event.reason,
      message: event.note.slice(0, 1024),
      type: event.type,
      source: { component: 'falco-pod-delete' },
      reportingComponent: 'falco-pod-delete',
      reportingInstance: process.env.HOSTNAME ?? 'falco-pod-delete',
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    await this.call({ verb: 'create', resource: 'events', namespace }, deadline, (o) =>
      this.core.createNamespacedEvent({ namespace, body }, o));
  }

  async readNode(name: string, deadline: Deadline): Promise<NodeSnapshot | null> {
    const r = await this.call({ verb: 'get', resource: 'nodes', namespace: undefined }, deadline, (o) => this.core.readNode({ name }, o));
    if (isStatus(r, 404)) return null;
    if (isStatus(r)) throw new KubeError('rejected', 'get', 'nodes', undefined, `the Kubernetes API refused to read node ${name} (${r.handledStatus})`, r.handledStatus);
    const n = nodeSnapshot(r);
    if (n.name !== name || n.uid === '') throw new KubeError('bad-response', 'get', 'nodes', undefined, `the Kubernetes API answered get nodes ${name} with something that is not that node`);
    return n;
  }

  async listNodes(deadline: Deadline): Promise<NodeSnapshot[]> {
    const r = await this.call({ verb: 'list', resource: 'nodes', namespace: undefined }, deadline, (o) => this.core.listNode({}, o));
    if (isStatus(r)) throw new KubeError('rejected', 'list', 'nodes', undefined, `the Kubernetes API refused to list nodes (${r.handledStatus})`, r.handledStatus);
    return (r.items ?? []).map(nodeSnapshot);
  }

  async cordonNode(node: NodeSnapshot, label: string, value: string, dryRun: boolean, deadline: Deadline): Promise<MutationResult> {
    const patch = [
      { op: 'test', path: '/metadata/uid', value: node.uid },
      { op: 'test', path: '/metadata/resourceVersion', value: node.resourceVersion },
      { op: 'add', path: '/spec/unschedulable', value: true },
      Object.keys(node.labels).length > 0 ? { op: 'add', path: `/metadata/labels/${pointerKey(label)}`, value } : { op: 'add', path: '/metadata/labels', value: { [label]: value } },
    ];
    const r = await this.call({ verb: 'patch', resource: 'nodes', namespace: undefined }, deadline, (o) =>
      this.core.patchNode({ name: node.name, body: patch, dryRun: dryRun ? 'All' : undefined }, o),
    { 'Content-Type': k8s.PatchStrategy.JsonPatch });
    return patchResult(r);
  }
}

/** The facts cordon needs of a Node. */
export function nodeSnapshot(n: k8s.V1Node): NodeSnapshot {
  return {
    name: n.metadata?.name ?? '',
    uid: n.metadata?.uid ?? '',
    resourceVersion: n.metadata?.resourceVersion ?? '',
    labels: n.metadata?.labels ?? {},
    unschedulable: n.spec?.unschedulable === true,
    ready: (n.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
  };
}
