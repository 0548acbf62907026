// The Kubernetes seam: a small interface the response stage calls, and its client-node implementation.
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { Agent, type AgentOptions } from 'node:https';
import { isIPv6 } from 'node:net';
import * as k8s from '@kubernetes/client-node';
import type { PodRef } from './alert.js';
import { type Deadline, Slots } from './deadline.js';
import { KubeError } from './kube-error.js';

export { KubeError } from './kube-error.js';

export interface PodSnapshot {
  namespace: string;
  name: string;
  uid: string;
  nodeName: string | undefined;
  labels: Record<string, string>;
  /** Container ids without the runtime scheme, from container, init and ephemeral statuses. */
  containerIds: string[];
  deleting: boolean;
  /** The controller named in ownerReferences (controller: true), if any. */
  owner: WorkloadRef | undefined;
  /** The pod's Ready condition. */
  ready: boolean;
  /** Container names, for log evidence. */
  containers: string[];
  /** The facts evidence keeps of the pod: identity, owner, node, images and their digests, status. */
  manifest: Record<string, unknown>;
}

export interface WorkloadRef {
  kind: string;
  name: string;
}

/** A controller as read from the API: desired and ready replicas where the kind has them, and its own owner. */
export interface ControllerStatus {
  kind: string;
  name: string;
  replicas: number | undefined;
  ready: number | undefined;
  owner: WorkloadRef | undefined;
}

/** The kinds whose controllers the function reads (RBAC grants get on exactly these). */
export const CONTROLLER_KINDS = ['ReplicaSet', 'Deployment', 'StatefulSet', 'DaemonSet', 'Job'] as const;

/** done, or the pod is gone (404), or a pod of that name with another UID stands there (409/422 on the precondition). */
export type MutationResult = 'done' | 'gone' | 'replaced';

export interface EventNote {
  pod: PodRef;
  podUid: string | undefined;
  reason: string;
  note: string;
  type: 'Normal' | 'Warning';
}

export interface LeaseRecord {
  name: string;
  resourceVersion: string;
  holder: string | undefined;
  renewTime: Date | undefined;
  durationSeconds: number | undefined;
  annotations: Record<string, string>;
  labels: Record<string, string>;
  created: Date | undefined;
}

export interface LeaseSpec {
  name: string;
  holder: string;
  durationSeconds: number;
  annotations: Record<string, string>;
  labels: Record<string, string>;
}

export interface Kube {
  readPod(pod: PodRef, deadline: Deadline): Promise<PodSnapshot | null>;
  listPodsOnNode(node: string, deadline: Deadline): Promise<PodSnapshot[]>;
  readNamespaceLabels(namespace: string, deadline: Deadline): Promise<Record<string, string> | null>;
  deletePod(pod: PodRef, uid: string, gracePeriodSeconds: number | undefined, dryRun: boolean, deadline: Deadline): Promise<MutationResult>;
  /** The Eviction API: PodDisruptionBudgets apply. A budget's 429 comes back as blocked, never retried. */
  evictPod(pod: PodRef, uid: string, gracePeriodSeconds: number | undefined, dryRun: boolean, deadline: Deadline): Promise<MutationResult | { blocked: string }>;
  readController(namespace: string, ref: WorkloadRef, deadline: Deadline): Promise<ControllerStatus | null>;
  readPodLog(pod: PodRef, container: string, tailLines: number, limitBytes: number, deadline: Deadline): Promise<string>;
  ensureQuarantinePolicy(namespace: string, label: string, dryRun: boolean, deadline: Deadline): Promise<void>;
  labelPod(pod: PodRef, uid: string, label: string, hasLabels: boolean, dryRun: boolean, deadline: Deadline): Promise<MutationResult>;
  createEvent(event: EventNote, deadline: Deadline): Promise<void>;
  /** coordination.k8s.io Leases in the function's own namespace: claims and the shared action budget. */
  createLease(namespace: string, lease: LeaseSpec, deadline: Deadline): Promise<LeaseRecord | 'exists'>;
  readLease(namespace: string, name: string, deadline: Deadline): Promise<LeaseRecord | null>;
  /** Replaces a lease only if it is still at `resourceVersion` (optimistic concurrency). */
  replaceLease(namespace: string, resourceVersion: string, lease: LeaseSpec, deadline: Deadline): Promise<LeaseRecord | 'conflict' | 'gone'>;
  /** Deletes a lease only if it is still at `resourceVersion`: one that another replica took over since is not ours. */
  deleteLease(namespace: string, name: string, resourceVersion: string, deadline: Deadline): Promise<void>;
  listLeases(namespace: string, labelSelector: string, deadline: Deadline): Promise<LeaseRecord[]>;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The service-account token file, re-read when it changes (the kubelet rotates bound tokens) or after a 401. */
export class TokenFile {
  private token = '';
  private mtimeMs = -1;
  private checkedAt = 0;

  constructor(readonly path: string, private readonly recheckMs = 1000) {}

  get(): string {
    const now = Date.now();
    if (this.token === '' || now - this.checkedAt >= this.recheckMs) {
      this.checkedAt = now;
      const mtime = statSync(this.path).mtimeMs;
      if (mtime !== this.mtimeMs || this.token === '') {
        this.token = readFileSync(this.path, 'utf8').trim();
        this.mtimeMs = mtime;
      }
    }
    return this.token;
  }

  invalidate(): void {
    this.token = '';
  }
}

export type ClusterSource =
  | { kind: 'kubeconfig-file'; path: string; kc: k8s.KubeConfig }
  | { kind: 'kubeconfig-data'; kc: k8s.KubeConfig }
  | { kind: 'in-cluster'; kc: k8s.KubeConfig; token: TokenFile }
  | { kind: 'kubeconfig-env'; path: string; kc: k8s.KubeConfig }
  | { kind: 'none' };

/** An explicit kubeconfig first (the CE secret file, or content), then in-cluster, then KUBECONFIG; none means dry-run. */
export function discoverCluster(opts: { kubeconfigFile?: string; kubeconfigData?: string; serviceAccountPathPrefix: string }, env = process.env): ClusterSource {
  if (opts.kubeconfigFile && opts.kubeconfigData) throw new Error('invalid configuration: set KUBECONFIG_FILE or KUBECONFIG_DATA, not both');
  if (opts.kubeconfigData) {
    const kc = new k8s.KubeConfig();
    try {
      kc.loadFromString(opts.kubeconfigData);
    } catch (e) {
      throw new Error(`invalid configuration: KUBECONFIG_DATA is not a kubeconfig (${(e as Error).message.split('\n')[0]})`);
    }
    if (!kc.getCurrentCluster()) throw new Error('invalid configuration: KUBECONFIG_DATA has no current cluster');
    return { kind: 'kubeconfig-data', kc };
  }
  if (opts.kubeconfigFile) {
    const kc = new k8s.KubeConfig();
    try {
      kc.loadFromFile(opts.kubeconfigFile);
    } catch (e) {
      throw new Error(`invalid configuration: KUBECONFIG_FILE ${opts.kubeconfigFile} cannot be loaded (${(e as Error).message.split('\n')[0]})`);
    }
    if (!kc.getCurrentCluster()) throw new Error(`invalid configuration: KUBECONFIG_FILE ${opts.kubeconfigFile} has no current cluster`);
    return { kind: 'kubeconfig-file', path: opts.kubeconfigFile, kc };
  }
  const saDir = `${opts.serviceAccountPathPrefix}${SA_DIR}`;
  if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT && existsSync(`${saDir}/token`)) {
    // Built from the given env (loadFromCluster reads process.env); the token comes from our TokenFile, which
    // re-reads a rotated file within a second and after a 401 (client-node's own re-reads only every 60 s).
    const host = env.KUBERNETES_SERVICE_HOST;
    const server = `https://${isIPv6(host) ? `[${host}]` : host}:${env.KUBERNETES_SERVICE_PORT}`;
    const kc = new k8s.KubeConfig();
    kc.loadFromClusterAndUser({ name: 'inCluster', server, caFile: `${saDir}/ca.crt`, skipTLSVerify: false }, { name: 'inClusterUser' });
    return { kind: 'in-cluster', kc, token: new TokenFile(`${saDir}/token`) };
  }
  if (env.KUBECONFIG) {
    const kc = new k8s.KubeConfig();
    // The given environment's KUBECONFIG (loadFromDefault would read process.env's): its first file that exists.
    const file = env.KUBECONFIG.split(':').find((f) => f !== '' && existsSync(f));
    if (!file) throw new Error(`invalid configuration: KUBECONFIG ${env.KUBECONFIG} names no file that exists`);
    kc.loadFromFile(file);
    if (!kc.getCurrentCluster()) throw new Error(`invalid configuration: KUBECONFIG ${env.KUBECONFIG} has no current cluster`);
    return { kind: 'kubeconfig-env', path: env.KUBECONFIG, kc };
  }
  return { kind: 'none' };
}

/**
 * Who the function acts as, read from its credentials without an API call: a ServiceAccount token's subject
 * (system:serviceaccount:NS:NAME), a client certificate's subject, else the kubeconfig user's name.
 */
export function identityOf(source: ClusterSource): { name: string; serviceAccount: boolean } {
  if (source.kind === 'none') return { name: 'none', serviceAccount: false };
  const jwtSubject = (token: string | undefined) => {
    try {
      const payload = JSON.parse(Buffer.from((token ?? '').split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: unknown };
      return typeof payload.sub === 'string' ? payload.sub : undefined;
    } catch {
      return undefined;
    }
  };
  const named = (name: string) => ({ name, serviceAccount: name.startsWith('system:serviceaccount:') });
  if (source.kind === 'in-cluster') {
    let sub: string | undefined;
    try {
      sub = jwtSubject(source.token.get());
    } catch {
      // unreadable now: the mount is still the pod's ServiceAccount
    }
    return { name: sub ?? "the pod's ServiceAccount", serviceAccount: true };
  }
  const user = source.kc.getCurrentUser();
  const fromToken = jwtSubject(user?.token);
  if (fromToken) return named(fromToken);
  const cert = user?.certData ? Buffer.from(user.certData, 'base64') : user?.certFile && existsSync(user.certFile) ? readFileSync(user.certFile) : undefined;
  if (cert) {
    try {
      const subject = new X509Certificate(cert).subject.split('\n').join(', ');
      return named(`client certificate ${subject}`);
    } catch {
      // not a certificate we can read: fall through to the user's name
    }
  }
  return named(`kubeconfig user ${user?.name ?? '(unnamed)'}`);
}

function statusBody(raw: unknown): { message?: string; reason?: string } {
  if (typeof raw === 'object' && raw !== null) return raw as { message?: string };
  if (typeof raw === 'string') {
    try {
      const parsed: unknown = JSON.parse(raw);
      if (typeof parsed === 'object' && parsed !== null) return parsed as { message?: string };
    } catch {
      return { message: raw.slice(0, 200) };
    }
  }
  return {};
}

function headerValue(headers: unknown, name: string): string | undefined {
  if (!headers || typeof headers !== 'object') return undefined;
  const v = (headers as Record<string, unknown>)[name];
  return typeof v === 'string' ? v : undefined;
}

interface Target {
  verb: string;
  resource: string;
  namespace: string | undefined;
}

const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND', 'EPIPE', 'ECONNABORTED']);

/** Turn whatever client-node threw into a KubeError, or an HTTP status the caller handles (404, 409, 422). */
export function classify(e: unknown, t: Target): KubeError | HandledStatus {
  if (e instanceof k8s.ApiException) {
    const code = e.code as number;
    const body = statusBody(e.body);
    // The API server's own guardrail (guardrails.yaml), whatever status it chose: never retried, never an RBAC gap.
    const denied = /ValidatingAdmissionPolicy '([^']+)' with binding '[^']*' denied request: (.*)$/s.exec(body.message ?? '');
    if (denied) {
      return new KubeError('guardrail', t.verb, t.resource, t.namespace, `the API server's guardrail ${denied[1]} refused ${t.verb} ${t.resource}${t.namespace ? ` in namespace ${t.namespace}` : ''}: ${denied[2].slice(0, 300)}`, code, undefined, denied[1]);
    }
    if (code === 404 || code === 409 || code === 422) return { handledStatus: code };
    const detail = body.message ?? `HTTP ${code}`;
    if (code === 403) return new KubeError('forbidden', t.verb, t.resource, t.namespace, `forbidden: the function may not ${t.verb} ${t.resource}${t.namespace ? ` in namespace ${t.namespace}` : ''} (${detail})`, 403);
    if (code === 401) return new KubeError('unauthorized', t.verb, t.resource, t.namespace, 'the Kubernetes API rejected the function\'s credentials (401 Unauthorized)', 401);
    if (code === 429) {
      const retryAfter = Number(headerValue(e.headers, 'retry-after'));
      return new KubeError('rate-limited', t.verb, t.resource, t.namespace, `the Kubernetes API is throttling requests (429): ${detail}`, 429, Number.isFinite(retryAfter) ? retryAfter : undefined);
    }
    if (code >= 500) return new KubeError('unavailable', t.verb, t.resource, t.namespace, `the Kubernetes API failed (${code}): ${detail}`, code);
    return new KubeError('rejected', t.verb, t.resource, t.namespace, `the Kubernetes API refused ${t.verb} ${t.resource} (${code}): ${detail}`, code);
  }
  const err = e as { name?: string; code?: string; type?: string; message?: string };
  if (err?.name === 'AbortError' || err?.type === 'aborted') {
    return new KubeError('timeout', t.verb, t.resource, t.namespace, `the Kubernetes API did not answer ${t.verb} ${t.resource} in time`);
  }
  if (err?.type === 'system' || (typeof err?.code === 'string' && NETWORK_ERRORS.has(err.code))) {
    return new KubeError('unavailable', t.verb, t.resource, t.namespace, `the Kubernetes API cannot be reached: ${err.code ?? err.message}`);
  }
  return new KubeError('bad-response', t.verb, t.resource, t.namespace, `the Kubernetes API sent an answer that could not be read for ${t.verb} ${t.resource}: ${String(err?.message ?? e).slice(0, 200)}`);
}

function snapshot(pod: k8s.V1Pod): PodSnapshot {
  if (typeof pod !== 'object' || pod === null) return { namespace: '', name: '', uid: '', nodeName: undefined, labels: {}, containerIds: [], deleting: false, owner: undefined, ready: false, containers: [], manifest: {} };
  const statuses = [
    ...(pod.status?.containerStatuses ?? []),
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.ephemeralContainerStatuses ?? []),
  ];
  const containerIds = statuses
    .map((s) => s.containerID ?? '')
    .map((id) => id.replace(/^[a-z0-9-]+:\/\//, ''))
    .filter((id) => id !== '');
  return {
    namespace: pod.metadata?.namespace ?? '',
    name: pod.metadata?.name ?? '',
    uid: pod.metadata?.uid ?? '',
    nodeName: pod.spec?.nodeName,
    labels: pod.metadata?.labels ?? {},
    containerIds,
    deleting: pod.metadata?.deletionTimestamp !== undefined,
    owner: controllerOf(pod.metadata?.ownerReferences),
    ready: (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
    containers: (pod.spec?.containers ?? []).map((c) => c.name),
    manifest: {
      metadata: { name: pod.metadata?.name, namespace: pod.metadata?.namespace, uid: pod.metadata?.uid, labels: pod.metadata?.labels, ownerReferences: pod.metadata?.ownerReferences, creationTimestamp: pod.metadata?.creationTimestamp },
      spec: {
        nodeName: pod.spec?.nodeName,
        serviceAccountName: pod.spec?.serviceAccountName,
        containers: (pod.spec?.containers ?? []).map((c) => ({ name: c.name, image: c.image, command: c.command, args: c.args, securityContext: c.securityContext })),
      },
      status: {
        phase: pod.status?.phase,
        podIP: pod.status?.podIP,
        hostIP: pod.status?.hostIP,
        startTime: pod.status?.startTime,
        containerStatuses: statuses.map((st) => ({ name: st.name, image: st.image, imageID: st.imageID, containerID: st.containerID, restartCount: st.restartCount })),
      },
    },
  };
}

function controllerOf(refs: k8s.V1OwnerReference[] | undefined): WorkloadRef | undefined {
  const c = (refs ?? []).find((r) => r.controller === true);
  return c ? { kind: c.kind, name: c.name } : undefined;
}

/**
 * A metav1.MicroTime: the API server decodes Lease times only with exactly six fractional digits, and
 * client-node would write a Date with toISOString()'s three (kubernetes-client/javascript#828).
 */
export function microTime(d: Date): Date {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as unknown as Date;
}

function leaseBody(namespace: string, l: LeaseSpec): k8s.V1Lease {
  const now = microTime(new Date());
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: l.name, namespace, annotations: l.annotations, labels: l.labels },
    spec: { holderIdentity: l.holder, leaseDurationSeconds: l.durationSeconds, acquireTime: now, renewTime: now },
  };
}

function leaseRecord(l: k8s.V1Lease): LeaseRecord {
  if (!l?.metadata?.name || !l.metadata.resourceVersion) throw new KubeError('bad-response', 'get', 'leases', l?.metadata?.namespace, 'the Kubernetes API answered with something that is not a Lease');
  const renew = l.spec?.renewTime as unknown;
  return {
    name: l.metadata.name,
    resourceVersion: l.metadata.resourceVersion,
    holder: l.spec?.holderIdentity,
    renewTime: renew ? new Date(renew as string) : undefined,
    durationSeconds: l.spec?.leaseDurationSeconds,
    annotations: l.metadata.annotations ?? {},
    labels: l.metadata.labels ?? {},
    created: l.metadata.creationTimestamp ? new Date(l.metadata.creationTimestamp) : undefined,
  };
}

type HandledStatus = { handledStatus: 404 | 409 | 422 };

/** A deletion's options: the UID precondition always, the grace period and server-side dry run when asked. */
function deleteOptions(uid: string, gracePeriodSeconds: number | undefined, dryRun: boolean): k8s.V1DeleteOptions {
  const body: k8s.V1DeleteOptions = { preconditions: { uid } };
  if (gracePeriodSeconds !== undefined) body.gracePeriodSeconds = gracePeriodSeconds;
  if (dryRun) body.dryRun = ['All'];
  return body;
}

/** What a deletion or an eviction did: 404 the pod is gone, 409 the UID precondition failed (another pod). */
function mutationResult(r: unknown, verb: string, resource: string, namespace: string, what: string): MutationResult {
  if (isStatus(r, 404)) return 'gone';
  if (isStatus(r, 409)) return 'replaced';
  if (isStatus(r)) throw new KubeError('rejected', verb, resource, namespace, `the Kubernetes API refused the ${what} (${r.handledStatus})`, r.handledStatus);
  return 'done';
}

export const QUARANTINE_POLICY = 'falco-pod-delete-quarantine';

/** Deny all traffic to and from the pods carrying the quarantine label: no ingress rule, no egress rule. */
export function quarantineSpec(label: string): k8s.V1NetworkPolicySpec {
  return { podSelector: { matchLabels: { [label]: 'true' } }, policyTypes: ['Ingress', 'Egress'] };
}

/** Why a NetworkPolicy's spec is not exactly the deny-all quarantine spec, or undefined when it is. */
export function quarantineSpecProblem(spec: k8s.V1NetworkPolicySpec | undefined, label: string): string | undefined {
  const selector = spec?.podSelector;
  const labels = selector?.matchLabels ?? {};
  if (Object.keys(labels).length !== 1 || labels[label] !== 'true' || (selector?.matchExpressions ?? []).length > 0) return `it selects ${JSON.stringify(selector ?? {})}, not only ${label}=true`;
  const types = [...(spec?.policyTypes ?? [])].sort();
  if (types.join(',') !== 'Egress,Ingress') return `its policyTypes are ${JSON.stringify(spec?.policyTypes ?? [])}, not Ingress and Egress`;
  if ((spec?.ingress ?? []).length > 0) return 'it admits ingress traffic';
  if ((spec?.egress ?? []).length > 0) return 'it admits egress traffic';
  return undefined;
}

function isStatus(r: unknown, code?: number): r is HandledStatus {
  return typeof r === 'object' && r !== null && 'handledStatus' in r && (code === undefined || (r as HandledStatus).handledStatus === code);
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

/** TLS material of the current cluster and user, read once, for the shared keep-alive agent. */
function tlsOptions(kc: k8s.KubeConfig): AgentOptions {
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  const data = (inline: string | undefined, file: string | undefined) =>
    inline ? Buffer.from(inline, 'base64') : file ? readFileSync(file) : undefined;
  const opts: AgentOptions = {
    ca: data(cluster?.caData, cluster?.caFile),
    cert: data(user?.certData, user?.certFile),
    key: data(user?.keyData, user?.keyFile),
  };
  if (cluster?.skipTLSVerify) opts.rejectUnauthorized = false;
  if (cluster?.tlsServerName) opts.servername = cluster.tlsServerName;
  return opts;
}

export class ClientNodeKube implements Kube {
  private readonly core: k8s.CoreV1Api;
  private readonly net: k8s.NetworkingV1Api;
  private readonly coordination: k8s.CoordinationV1Api;
  private readonly apps: k8s.AppsV1Api;
  private readonly batch: k8s.BatchV1Api;
  private readonly token: TokenFile | undefined;

  private readonly slots: Slots;

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
    return r.items.map(snapshot).filter((p) => p.uid !== '' && p.name !== '' && p.namespace !== '');
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

  async deletePod(pod: PodRef, uid: string, gracePeriodSeconds: number | undefined, dryRun: boolean, deadline: Deadline): Promise<MutationResult> {
    const body = deleteOptions(uid, gracePeriodSeconds, dryRun);
    const r = await this.call({ verb: 'delete', resource: 'pods', namespace: pod.namespace }, deadline, (o) =>
      this.core.deleteNamespacedPod({ name: pod.name, namespace: pod.namespace, body }, o));
    return mutationResult(r, 'delete', 'pods', pod.namespace, 'deletion');
  }

  async evictPod(pod: PodRef, uid: string, gracePeriodSeconds: number | undefined, dryRun: boolean, deadline: Deadline): Promise<MutationResult | { blocked: string }> {
    const body: k8s.V1Eviction = { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: pod.name, namespace: pod.namespace }, deleteOptions: deleteOptions(uid, gracePeriodSeconds, dryRun) };
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

  async labelPod(pod: PodRef, uid: string, label: string, hasLabels: boolean, dryRun: boolean, deadline: Deadline): Promise<MutationResult> {
    const add = hasLabels
      ? { op: 'add', path: `/metadata/labels/${label.replace(/~/g, '~0').replace(/\//g, '~1')}`, value: 'true' }
      : { op: 'add', path: '/metadata/labels', value: { [label]: 'true' } };
    // The test operation makes the patch fail (422) when a pod of that name with another UID stands there.
    const patch = [{ op: 'test', path: '/metadata/uid', value: uid }, add];
    const r = await this.call({ verb: 'patch', resource: 'pods', namespace: pod.namespace }, deadline, (o) =>
      this.core.patchNamespacedPod({ name: pod.name, namespace: pod.namespace, body: patch, dryRun: dryRun ? 'All' : undefined }, o),
    { 'Content-Type': k8s.PatchStrategy.JsonPatch });
    if (isStatus(r, 404)) return 'gone';
    if (isStatus(r, 422) || isStatus(r, 409)) return 'replaced';
    return 'done';
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

  async deleteLease(namespace: string, name: string, resourceVersion: string, deadline: Deadline): Promise<void> {
    // 404 (already gone) and 409 (taken over since) both leave nothing of ours to delete.
    await this.call({ verb: 'delete', resource: 'leases', namespace }, deadline, (o) => this.coordination.deleteNamespacedLease({ name, namespace, body: { preconditions: { resourceVersion } } }, o));
  }

  async listLeases(namespace: string, labelSelector: string, deadline: Deadline): Promise<LeaseRecord[]> {
    // One page: a sweep looks at the oldest few hundred claims at a time, never at an unbounded list.
    const r = await this.call({ verb: 'list', resource: 'leases', namespace }, deadline, (o) => this.coordination.listNamespacedLease({ namespace, labelSelector, limit: 200 }, o));
    return isStatus(r) ? [] : r.items.map(leaseRecord);
  }

  async createEvent(event: EventNote, deadline: Deadline): Promise<void> {
    const now = new Date();
    const body: k8s.CoreV1Event = {
      metadata: { generateName: `${event.pod.name.slice(0, 200)}.falco-`, namespace: event.pod.namespace },
      involvedObject: { apiVersion: 'v1', kind: 'Pod', name: event.pod.name, namespace: event.pod.namespace, uid: event.podUid },
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
    await this.call({ verb: 'create', resource: 'events', namespace: event.pod.namespace }, deadline, (o) =>
      this.core.createNamespacedEvent({ namespace: event.pod.namespace, body }, o));
  }
}
