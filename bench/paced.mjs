// Open-loop paced load with microsecond latencies: one request every 1/rate s for `duration` s, over a pool of
// keep-alive connections. Mode "alerts" POSTs deletion alerts to the function; mode "direct" makes the same
// DELETE with client-node against the stand-in API. argv[2] = JSON { mode, url | server+caFile+token, rate, duration }
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import * as k8s from '@kubernetes/client-node';
import { alertFor } from './alerts.mjs';

const o = JSON.parse(process.argv[2]);
let send;
if (o.mode === 'alerts') {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const url = new URL(o.url);
  let n = 0;
  send = () => new Promise((resolve, reject) => {
    const body = alertFor('delete', `paced-${process.pid}-${n++}`);
    const req = http.request({ host: url.hostname, port: url.port, path: '/', method: 'POST', agent, headers: { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
} else {
  // client-node with one keep-alive agent, as the function uses it (its default makes a new TLS connection per request).
  const agent = new https.Agent({ keepAlive: true, maxSockets: 16, ca: readFileSync(o.caFile) });
  const auth = { getName: () => 'default', applySecurityAuthentication: (ctx) => { ctx.setHeaderParam('Authorization', `Bearer ${o.token}`); ctx.setAgent(agent); } };
  const core = new k8s.CoreV1Api(k8s.createConfiguration({ baseServer: new k8s.ServerConfiguration(o.server, {}), authMethods: { default: auth } }));
  let n = 0;
  send = () => core.deleteNamespacedPod({ name: `direct-${process.pid}-${n++}`, namespace: 'default', body: {} });
}

// Warm up (JIT, TLS sessions, keep-alive sockets) before measuring.
for (let i = 0; i < 200; i++) await send().catch(() => undefined);

const latencies = [];
let errors = 0;
const pending = [];
const start = performance.now();
const total = Math.round(o.rate * o.duration);
for (let i = 0; i < total; i++) {
  const due = start + (i * 1000) / o.rate;
  const wait = due - performance.now();
  if (wait > 1) await new Promise((r) => setTimeout(r, wait - 0.5));
  while (performance.now() < due) { /* spin the last half millisecond for exact pacing */ }
  const t0 = performance.now();
  pending.push(send().then(() => latencies.push(performance.now() - t0), () => errors++));
}
await Promise.all(pending);
latencies.sort((a, b) => a - b);
const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
process.stdout.write(JSON.stringify({ requests: latencies.length, p50: q(0.5), p99: q(0.99), errors, achievedRate: total / ((performance.now() - start) / 1000) }));
process.exit(0);
