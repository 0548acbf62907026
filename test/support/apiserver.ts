// A stand-in Kubernetes API server for tests: TLS, bearer-token check, genuine Status objects, a record of
// every request, and faults on demand. Objects are shaped like a real server's so client-node parses them.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';

export interface Recorded {
  method: string;
  path: string;
  query: Record<string, string>;
  authorization: string | undefined;
  contentType: string | undefined;
  body: unknown;
}

export type Fault =
  | { kind: 'status'; code: number; reason?: string; message?: string; headers?: Record<string, string> }
  | { kind: 'garbage'; code?: number; contentType?: string; text: string }
  | { kind: 'hang' }
  | { kind: 'delay'; ms: number }
  | { kind: 'reset' };

interface FaultRule {
  method?: string;
  path?: RegExp;
  fault: Fault;
  times: number;
}

export interface TlsFiles {
  dir: string;
  cert: string;
  key: string;
  caPath: string;
}

let tlsCache: TlsFiles | undefined;

/** A self-signed certificate for 127.0.0.1 that also serves as the CA file client-node trusts. */
export function tlsFiles(): TlsFiles {
  if (tlsCache) return tlsCache;
  const dir = mkdtempSync(join(tmpdir(), 'fpd-tls-'));
  const keyPath = join(dir, 'key.pem');
  const caPath = join(dir, 'ca.crt');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=kubernetes', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-keyout', keyPath, '-out', caPath,
  ], { stdio: 'ignore' });
  tlsCache = { dir, cert: readFileSync(caPath, 'utf8'), key: readFileSync(keyPath, 'utf8'), caPath };
  return tlsCache;
}

export function containerId(seed: string): string {
  let hex = '';
  for (let i = 0; hex.length < 64; i++) hex += Buffer.from(`${seed}:${i}`).toString('hex');
  return hex.replace(/[^0-9a-f]/g, '').slice(0, 64);
}

export interface PodSpec {
  namespace: string;
  name: string;
  uid?: string;
  nodeName?: string;
  containerIds?: string[];
  labels?: Record<string, string>;
  ownerKind?: string;
}

export function makePod(p: PodSpec) {
  const created = new Date(Date.now() - 3600_000).toISOString();
  const ids = p.containerIds ?? [containerId(`${p.namespace}/${p.name}`)];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: p.name,
      namespace: p.namespace,
      uid: p.uid ?? randomUUID(),
      resourceVersion: '1001',
      creationTimestamp: created,
      labels: p.labels ?? { app: p.name },
      ownerReferences: p.ownerKind ? [{ apiVersion: 'apps/v1', kind: p.ownerKind, name: `${p.name}-owner`, uid: randomUUID(), controller: true, blockOwnerDeletion: true }] : undefined,
    },
    spec: {
      nodeName: p.nodeName ?? 'worker-1',
      serviceAccountName: 'default',
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      containers: ids.map((_, i) => ({ name: i === 0 ? 'main' : `side-${i}`, image: 'docker.io/library/alpine:3.20', imagePullPolicy: 'IfNotPresent', resources: {} })),
    },
    status: {
      phase: 'Running',
      hostIP: '10.0.0.11',
      podIP: '10.244.1.23',
      startTime: created,
      qosClass: 'BestEffort',
      conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: created }],
      containerStatuses: ids.map((id, i) => ({
        name: i === 0 ? 'main' : `side-${i}`,
        image: 'docker.io/library/alpine:3.20',
        imageID: 'docker.io/library/alpine@sha256:beefdbd8a1da6d2915566fde36db9db0b524eb737fc57cd1367effd16dc0d06d',
        containerID: `containerd://${id}`,
        ready: true,
        started: true,
        restartCount: 0,
        state: { running: { startedAt: created } },
        lastState: {},
      })),
    },
  };
}

type Pod = ReturnType<typeof makePod>;

export function status(code: number, reason: string, message: string, details?: Record<string, unknown>) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, details, code };
}

const REASONS: Record<number, string> = { 400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 409: 'Conflict', 422: 'Invalid', 429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable', 504: 'Timeout' };

export class FakeApiServer {
  readonly requests: Recorded[] = [];
  readonly pods = new Map<string, Pod>();
  readonly namespaces = new Map<string, Record<string, string>>();
  readonly networkPolicies = new Map<string, unknown>();
  readonly events: Record<string, unknown>[] = [];
  /** coordination.k8s.io Leases by "namespace/name", with resourceVersion preconditions like the real server. */
  readonly leases = new Map<string, Record<string, any>>();
  /** Container logs by "namespace/pod/container", served at pods/NAME/log. */
  readonly logs = new Map<string, string>();
  private resourceVersion = 5000;
  tokens: string[];
  /** Count of requests by "METHOD path-kind", kept even when recording is off (benchmarks). */
  readonly counts = new Map<string, number>();
  /** Keep every request in `requests` (tests); off for load runs. */
  record = true;
  /** Answer GET for an unknown pod with a synthesized one (load runs with many distinct pods). */
  autoPods = false;
  /** verb:resource pairs the service account may not use, e.g. "delete:pods". */
  readonly forbidden = new Set<string>();
  private readonly faults: FaultRule[] = [];
  private server!: Server;
  private readonly sockets = new Set<Socket>();
  /** TLS handshakes completed: each is a new connection a client paid for. */
  handshakes = 0;
  private readonly delays = new Set<() => void>();
  private stopped = false;
  port = 0;
  /** Requests being answered right now, and the most seen at once. */
  inFlight = 0;
  maxInFlight = 0;

  constructor(token = 'sa-token-1') {
    this.tokens = [token];
  }

  async start(): Promise<this> {
    const tls = tlsFiles();
    this.server = createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
      this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
      res.on('close', () => this.inFlight--);
      this.handle(req, res).catch((e: unknown) => this.send(res, 500, status(500, 'InternalError', String(e))));
    });
    this.server.on('secureConnection', (s: Socket) => {
      this.handshakes++;
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    // The TCP connection too, before its TLS handshake ends: stop() must not wait for a client that connected
    // just before it (a function stopped right after its first request) to finish its handshake and go idle.
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const end of this.delays) end();
    this.delays.clear();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  addPod(p: PodSpec): Pod {
    const pod = makePod(p);
    this.pods.set(`${p.namespace}/${p.name}`, pod);
    if (!this.namespaces.has(p.namespace)) this.namespaces.set(p.namespace, { 'kubernetes.io/metadata.name': p.namespace });
    return pod;
  }

  fail(fault: Fault, where: { method?: string; path?: RegExp; times?: number } = {}): void {
    this.faults.push({ method: where.method, path: where.path, fault, times: where.times ?? 1 });
  }

  /** Requests other than Event writes and coordination Leases: the calls that read or change workloads. */
  get workloadCalls(): Recorded[] {
    return this.requests.filter((r) => !r.path.endsWith('/events') && !r.path.startsWith('/apis/coordination.k8s.io/'));
  }

  calls(method: string, pathPrefix = ''): Recorded[] {
    return this.requests.filter((r) => r.method === method && r.path.startsWith(pathPrefix));
  }

  private send(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.headersSent) return;
    res.writeHead(code, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  }

  private takeFault(method: string, path: string): Fault | undefined {
    const i = this.faults.findIndex((f) => (!f.method || f.method === method) && (!f.path || f.path.test(path)));
    if (i < 0) return undefined;
    const rule = this.faults[i];
    if (--rule.times <= 0) this.faults.splice(i, 1);
    return rule.fault;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown = undefined;
    if (text !== '') {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    const method = req.method ?? 'GET';
    const path = url.pathname;
    if (this.record) this.requests.push({ method, path, query: Object.fromEntries(url.searchParams), authorization: req.headers.authorization, contentType: req.headers['content-type'], body });
    const kind = `${method} ${path.replace(/\/(namespaces)\/[^/]+/, '/$1/*').replace(/\/(pods|events|networkpolicies)\/[^/]+$/, '/$1/*')}`;
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);

    // As kube-apiserver's bearer-token authenticator: the scheme is case-insensitive (Python's client sends "bearer").
    const [scheme, token] = (req.headers.authorization ?? '').split(' ');
    if (scheme?.toLowerCase() !== 'bearer' || !this.tokens.includes(token ?? '')) return this.send(res, 401, status(401, 'Unauthorized', 'Unauthorized'));

    const fault = this.takeFault(method, path);
    if (fault) {
      if (fault.kind === 'hang') return; // never answers; the socket is destroyed at stop()
      if (fault.kind === 'delay') {
        // Ended early by stop(), so that no timer outlives the test.
        await new Promise<void>((r) => {
          const timer = setTimeout(r, fault.ms);
          this.delays.add(() => (clearTimeout(timer), r()));
        });
        if (this.stopped) return;
      }
      if (fault.kind === 'reset') {
        req.socket.destroy();
        return;
      }
      if (fault.kind === 'garbage') {
        res.writeHead(fault.code ?? 200, { 'content-type': fault.contentType ?? 'application/json' });
        res.end(fault.text);
        return;
      }
      if (fault.kind === 'status') return this.send(res, fault.code, status(fault.code, fault.reason ?? REASONS[fault.code] ?? 'Unknown', fault.message ?? `injected ${fault.code}`), fault.headers);
    }
    this.route(method, path, url.searchParams, body, res);
  }

  private forbid(res: ServerResponse, verb: string, resource: string, group: string, namespace: string | undefined, name?: string): boolean {
    if (!this.forbidden.has(`${verb}:${resource}`)) return false;
    const where = namespace ? ` in the namespace "${namespace}"` : ' at the cluster scope';
    const subject = `${resource}${name ? ` "${name}"` : ''}`;
    this.send(res, 403, status(403, 'Forbidden', `${subject} is forbidden: User "system:serviceaccount:openfaas-fn:falco-pod-delete" cannot ${verb} resource "${resource}" in API group "${group}"${where}`, { name, kind: resource }));
    return true;
  }

  /** The real server decodes Lease times (metav1.MicroTime) only with exactly six fractional digits: a 400, as it answers. */
  private refuseNonMicroTime(body: unknown, res: ServerResponse): boolean {
    const spec = (body as { spec?: Record<string, unknown> } | undefined)?.spec ?? {};
    for (const field of ['acquireTime', 'renewTime']) {
      const v = spec[field];
      if (v === undefined || v === null) continue;
      if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/.test(v)) continue;
      const frac = typeof v === 'string' ? (/(\.\d*)?(Z|[+-].*)$/.exec(v.slice(19))?.[0] ?? v) : String(v);
      this.send(res, 400, status(400, 'BadRequest', `Lease in version "v1" cannot be handled as a Lease: parsing time "${String(v)}" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "${frac}" as ".000000"`));
      return true;
    }
    return false;
  }

  private routeLease(method: string, ns: string, name: string | undefined, query: URLSearchParams, body: unknown, res: ServerResponse): void {
    const verb = method === 'GET' ? (name ? 'get' : 'list') : method === 'POST' ? 'create' : method === 'PUT' ? 'update' : method === 'DELETE' ? 'delete' : method.toLowerCase();
    if (this.forbid(res, verb, 'leases', 'coordination.k8s.io', ns, name)) return;
    const notFound = () => this.send(res, 404, status(404, 'NotFound', `leases.coordination.k8s.io "${name}" not found`, { name, group: 'coordination.k8s.io', kind: 'leases' }));
    const key = `${ns}/${name}`;
    if (method === 'GET' && !name) {
      const selector = query.get('labelSelector') ?? '';
      const wanted = selector.split(',').filter(Boolean).map((kv) => kv.split('='));
      const limit = Number(query.get('limit') ?? '0');
      const all = [...this.leases.entries()].filter(([k]) => k.startsWith(`${ns}/`)).map(([, l]) => l).filter((l) => wanted.every(([k, v]) => l.metadata.labels?.[k] === v));
      const items = limit > 0 ? all.slice(0, limit) : all;
      return this.send(res, 200, { apiVersion: 'coordination.k8s.io/v1', kind: 'LeaseList', metadata: { resourceVersion: String(this.resourceVersion) }, items });
    }
    if (method === 'GET') return this.leases.has(key) ? this.send(res, 200, this.leases.get(key)) : notFound();
    if ((method === 'POST' || method === 'PUT') && this.refuseNonMicroTime(body, res)) return;
    if (method === 'POST') {
      const lease = body as Record<string, any>;
      const k = `${ns}/${lease.metadata.name}`;
      if (this.leases.has(k)) return this.send(res, 409, status(409, 'AlreadyExists', `leases.coordination.k8s.io "${lease.metadata.name}" already exists`, { name: lease.metadata.name, group: 'coordination.k8s.io', kind: 'leases' }));
      const stored = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', ...lease, metadata: { ...lease.metadata, namespace: ns, uid: randomUUID(), resourceVersion: String(++this.resourceVersion), creationTimestamp: new Date().toISOString() } };
      this.leases.set(k, stored);
      return this.send(res, 201, stored);
    }
    if (method === 'PUT') {
      const current = this.leases.get(key);
      if (!current) return notFound();
      const lease = body as Record<string, any>;
      if (lease.metadata?.resourceVersion !== current.metadata.resourceVersion) {
        return this.send(res, 409, status(409, 'Conflict', `Operation cannot be fulfilled on leases.coordination.k8s.io "${name}": the object has been modified; please apply your changes to the latest version and try again`, { name, group: 'coordination.k8s.io', kind: 'leases' }));
      }
      const stored = { ...current, ...lease, metadata: { ...current.metadata, ...lease.metadata, resourceVersion: String(++this.resourceVersion) } };
      this.leases.set(key, stored);
      return this.send(res, 200, stored);
    }
    if (method === 'DELETE') {
      const current = this.leases.get(key);
      if (!current) return notFound();
      const wanted = (body as { preconditions?: { resourceVersion?: string } } | undefined)?.preconditions?.resourceVersion;
      if (wanted !== undefined && wanted !== current.metadata.resourceVersion) {
        return this.send(res, 409, status(409, 'Conflict', `Operation cannot be fulfilled on leases.coordination.k8s.io "${name}": Precondition failed: ResourceVersion in precondition: ${wanted}, ResourceVersion in object meta: ${current.metadata.resourceVersion}`, { name, group: 'coordination.k8s.io', kind: 'leases' }));
      }
      this.leases.delete(key);
      return this.send(res, 200, status(200, 'Success', 'deleted'));
    }
    return notFound();
  }

  private route(method: string, path: string, query: URLSearchParams, body: unknown, res: ServerResponse): void {
    let m: RegExpExecArray | null;
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/log$/.exec(path)) && method === 'GET') {
      // As the kubelet serves it: the last tailLines lines, then at most limitBytes of them.
      const text = this.logs.get(`${m[1]}/${m[2]}/${query.get('container') ?? ''}`);
      if (text === undefined) return this.send(res, 400, status(400, 'BadRequest', `container ${query.get('container')} in pod ${m[2]} is not available`));
      const tail = Number(query.get('tailLines') ?? '0');
      let out = tail > 0 ? text.split('\n').slice(-tail - (text.endsWith('\n') ? 1 : 0)).join('\n') : text;
      const limit = Number(query.get('limitBytes') ?? '0');
      if (limit > 0) out = Buffer.from(out).subarray(0, limit).toString();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(out);
      return;
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/.exec(path))) {
      const [, ns, name] = m;
      const verb = method === 'GET' ? 'get' : method === 'DELETE' ? 'delete' : method === 'PATCH' ? 'patch' : '';
      if (this.forbid(res, verb, 'pods', '', ns, name)) return;
      const key = `${ns}/${name}`;
      if (this.autoPods && !this.pods.has(key) && (method === 'GET' || method === 'DELETE')) this.addPod({ namespace: ns, name });
      const pod = this.pods.get(key);
      if (!pod) return this.send(res, 404, status(404, 'NotFound', `pods "${name}" not found`, { name, kind: 'pods' }));
      if (method === 'GET') return this.send(res, 200, pod);
      if (method === 'DELETE') {
        const opts = (body ?? {}) as { preconditions?: { uid?: string; resourceVersion?: string }; dryRun?: string[] };
        const uid = opts.preconditions?.uid;
        if (uid && uid !== pod.metadata.uid) {
          return this.send(res, 409, status(409, 'Conflict', `Operation cannot be fulfilled on Pod "${name}": Precondition failed: UID in precondition: ${uid}, UID in object meta: ${pod.metadata.uid}`, { name, kind: 'Pod' }));
        }
        // As kube-apiserver: a resourceVersion precondition holds only for exactly that version.
        const rv = opts.preconditions?.resourceVersion;
        if (rv && rv !== pod.metadata.resourceVersion) {
          return this.send(res, 409, status(409, 'Conflict', `Operation cannot be fulfilled on pods "${name}": the ResourceVersion in the precondition (${rv}) does not match the ResourceVersion in record (${pod.metadata.resourceVersion}). The object might have been modified`, { name, kind: 'pods' }));
        }
        const dry = (opts.dryRun ?? []).includes('All') || query.get('dryRun') === 'All';
        if (!dry) this.pods.delete(key);
        return this.send(res, 200, { ...pod, metadata: { ...pod.metadata, deletionTimestamp: new Date().toISOString(), deletionGracePeriodSeconds: 30 } });
      }
      if (method === 'PATCH') {
        const ops = Array.isArray(body) ? (body as { op: string; path: string; value: unknown }[]) : [];
        const next = JSON.parse(JSON.stringify(pod)) as Pod;
        for (const op of ops) {
          if (op.op === 'test' && ((op.path === '/metadata/uid' && op.value !== pod.metadata.uid) || (op.path === '/metadata/resourceVersion' && op.value !== pod.metadata.resourceVersion))) {
            return this.send(res, 422, status(422, 'Invalid', 'the server rejected our request due to an error in our request'));
          }
          // As kube-apiserver's JSON patch: add a map, or a key to a map that exists (422 when it does not).
          for (const map of ['labels', 'annotations'] as const) {
            const meta = next.metadata as Record<string, unknown> & { labels: Record<string, string> };
            if (op.op === 'add' && op.path === `/metadata/${map}`) meta[map] = op.value as Record<string, string>;
            else if (op.op === 'add' && op.path.startsWith(`/metadata/${map}/`)) {
              const into = meta[map] as Record<string, string> | undefined;
              if (!into) return this.send(res, 422, status(422, 'Invalid', `the server rejected our request due to an error in our request: doc is missing path: "${op.path}"`));
              into[op.path.slice(`/metadata/${map}/`.length).replace(/~1/g, '/').replace(/~0/g, '~')] = op.value as string;
            }
          }
        }
        if (query.get('dryRun') !== 'All') {
          next.metadata.resourceVersion = String(Number(pod.metadata.resourceVersion) + 1);
          this.pods.set(key, next);
        }
        return this.send(res, 200, next);
      }
    }
    if (path === '/api/v1/pods' && method === 'GET') {
      if (this.forbid(res, 'list', 'pods', '', undefined)) return;
      const selector = query.get('fieldSelector') ?? '';
      const node = /^spec\.nodeName=(.+)$/.exec(selector)?.[1];
      const items = [...this.pods.values()].filter((p) => !node || p.spec.nodeName === node);
      return this.send(res, 200, { apiVersion: 'v1', kind: 'PodList', metadata: { resourceVersion: '2002' }, items });
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(path)) && method === 'GET') {
      if (this.forbid(res, 'get', 'namespaces', '', undefined, m[1])) return;
      const labels = this.namespaces.get(m[1]);
      if (!labels) return this.send(res, 404, status(404, 'NotFound', `namespaces "${m[1]}" not found`, { name: m[1], kind: 'namespaces' }));
      return this.send(res, 200, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: m[1], uid: randomUUID(), labels }, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } });
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/events$/.exec(path)) && method === 'POST') {
      if (this.forbid(res, 'create', 'events', '', m[1])) return;
      const ev = { ...(body as Record<string, unknown>) };
      const meta = (ev.metadata ?? {}) as Record<string, unknown>;
      ev.metadata = { ...meta, name: `${String(meta.generateName ?? 'event.')}${this.events.length}`, uid: randomUUID(), resourceVersion: '3' };
      this.events.push(ev);
      return this.send(res, 201, ev);
    }
    if ((m = /^\/apis\/coordination\.k8s\.io\/v1\/namespaces\/([^/]+)\/leases(?:\/([^/]+))?$/.exec(path))) {
      return this.routeLease(method, m[1], m[2], query, body, res);
    }
    if ((m = /^\/apis\/networking\.k8s\.io\/v1\/namespaces\/([^/]+)\/networkpolicies(?:\/([^/]+))?$/.exec(path))) {
      const [, ns, name] = m;
      if (method === 'GET' && !name) {
        if (this.forbid(res, 'list', 'networkpolicies', 'networking.k8s.io', ns)) return;
        const items = [...this.networkPolicies.entries()].filter(([k]) => k.startsWith(`${ns}/`)).map(([, v]) => v);
        return this.send(res, 200, { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicyList', metadata: { resourceVersion: '5' }, items });
      }
      if (method === 'GET' && name) {
        if (this.forbid(res, 'get', 'networkpolicies', 'networking.k8s.io', ns, name)) return;
        const np = this.networkPolicies.get(`${ns}/${name}`);
        if (!np) return this.send(res, 404, status(404, 'NotFound', `networkpolicies.networking.k8s.io "${name}" not found`, { name, group: 'networking.k8s.io', kind: 'networkpolicies' }));
        return this.send(res, 200, np);
      }
      if (method === 'POST' && !name) {
        if (this.forbid(res, 'create', 'networkpolicies', 'networking.k8s.io', ns)) return;
        const np = body as { metadata: { name: string } };
        const key = `${ns}/${np.metadata.name}`;
        if (this.networkPolicies.has(key)) return this.send(res, 409, status(409, 'AlreadyExists', `networkpolicies.networking.k8s.io "${np.metadata.name}" already exists`));
        const stored = { ...np, metadata: { ...np.metadata, uid: randomUUID(), resourceVersion: '4', creationTimestamp: new Date().toISOString() } };
        if (query.get('dryRun') !== 'All') this.networkPolicies.set(key, stored);
        return this.send(res, 201, stored);
      }
    }
    this.send(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
  }
}

/** Stages in-cluster service-account files under a temporary prefix (client-node's loadFromCluster pathPrefix). */
export function stageServiceAccount(token: string, namespace = 'openfaas-fn'): { prefix: string; tokenPath: string } {
  const prefix = mkdtempSync(join(tmpdir(), 'fpd-sa-'));
  const dir = join(prefix, 'var/run/secrets/kubernetes.io/serviceaccount');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'token'), token);
  writeFileSync(join(dir, 'ca.crt'), readFileSync(tlsFiles().caPath));
  writeFileSync(join(dir, 'namespace'), namespace);
  return { prefix, tokenPath: join(dir, 'token') };
}

export function inClusterEnv(api: FakeApiServer, prefix: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    KUBERNETES_SERVICE_HOST: '127.0.0.1',
    KUBERNETES_SERVICE_PORT: String(api.port),
    SERVICEACCOUNT_PATH_PREFIX: prefix,
    HOSTNAME: 'falco-pod-delete-7dc9f5fbb8-gbfk7',
    // The stand-in serves no watch: its tests drive the read path, which is the view's fallback (the view
    // itself is tested on the real server).
    POD_VIEW: 'off',
    ...extra,
  };
}
