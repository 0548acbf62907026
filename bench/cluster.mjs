// What both real-server benchmarks (bench.mjs, containment.mjs) need from the control plane: running pods to
// contain, and the alert Falcosidekick would send for one.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { apiRequestTotals } from '../test/support/control-plane.mjs';

/** A keep-alive JSON client with the control plane's admin certificate. */
export function adminClient(state) {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 16, ca: readFileSync(state.caPath), cert: readFileSync(join(state.dir, 'admin.crt')), key: readFileSync(join(state.dir, 'admin.key')) });
  return (method, path, body, type = 'application/json') => new Promise((resolve, reject) => {
    const req = https.request(`${state.server}${path}`, { method, agent, headers: { 'content-type': type } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => (res.statusCode < 300 ? resolve(JSON.parse(text)) : reject(new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 300)}`))));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/**
 * n running pods with a node and a container id (no kubelet runs: this writes the status a kubelet would),
 * `concurrency` at a time.
 */
export async function makePods(call, ns, prefix, n, concurrency = 10) {
  const pods = Array.from({ length: n }, (_, i) => ({ name: `${prefix}-${i}`, id: randomBytes(32).toString('hex') }));
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  for (let i = 0; i < pods.length; i += concurrency) {
    await Promise.all(pods.slice(i, i + concurrency).map(async (p) => {
      await call('POST', `/api/v1/namespaces/${ns}/pods`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: p.name, namespace: ns }, spec: { nodeName: 'worker-1', containers: [{ name: 'main', image: 'alpine' }] } });
      await call('PATCH', `/api/v1/namespaces/${ns}/pods/${p.name}/status`, { status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }], containerStatuses: [{ name: 'main', image: 'alpine', imageID: '', containerID: `containerd://${p.id}`, ready: true, restartCount: 0, state: { running: { startedAt: now } } }] } }, 'application/merge-patch+json');
    }));
  }
  return pods;
}

/** Falcosidekick's "Terminal shell in container" for one of those pods (its container id proves the pod). */
export const shellAlert = (ns, p) => JSON.stringify({
  uuid: randomBytes(16).toString('hex'), output: `A shell was spawned in a container with an attached terminal (k8s.ns=${ns} k8s.pod=${p.name})`, priority: 'Notice', rule: 'Terminal shell in container',
  source: 'syscall', hostname: 'worker-1', time: new Date().toISOString(), output_fields: { 'container.id': p.id.slice(0, 12), 'k8s.ns.name': ns, 'k8s.pod.name': p.name },
});

/**
 * The server's own count of requests (apiserver_request_total), by "VERB resource[/subresource]": what every
 * client asked of it. WATCH requests are left out (one long request each, not per alert).
 */
export async function serverRequests(state) {
  const counts = {};
  for (const { labels: l, value } of await apiRequestTotals(state)) {
    if (l.verb === 'WATCH' || l.verb === 'WATCHLIST' || !l.resource) continue;
    const key = `${l.verb} ${l.resource}${l.subresource ? `/${l.subresource}` : ''}`;
    counts[key] = (counts[key] ?? 0) + value;
  }
  return counts;
}

/** after - before, per key, dropping zeros. */
export function requestsBetween(before, after) {
  const d = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) d[k] = v - (before[k] ?? 0);
  return d;
}

export const isWrite = (key) => /^(POST|PUT|PATCH|DELETE|APPLY) /.test(key);
