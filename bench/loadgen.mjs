// The load generator, in its own process, so that its cost is not the function's. argv[2] or stdin = JSON, one of:
//   { mode: 'burst', url, body, connections, durationMs }
//       closed loop: `connections` requests in flight, each on a new TCP connection (Connection: close), for
//       durationMs; `body` may hold __N__, replaced by a 12-digit request number (unique alert uuids).
//       Requests are prebuilt bytes over raw sockets, so that the generator spends as little CPU as it can.
//   { mode: 'sequence', url, bodies }
//       one request at a time on one keep-alive connection, in order: each answer's latency and status.
//   { mode: 'direct', server, caFile, token, count }
//       the baseline: one DELETE at a time with client-node, straight at the API (no function in between).
//   { mode: 'contain', url, api: { server, caFile, certFile, keyFile }, namespace, alerts: [{ pod, body }], inFlight, warmPath? }
//       time to containment on a real API server: watches the namespace's pods and times each alert from the
//       moment it is sent to the moment its pod carries a deletionTimestamp (or is gone).
//   { mode: 'flood', url, api, namespace, declined, total, real: { pod, body }, inFlight }
//       Falcosidekick's openfaas output under a noisy rule: `total` alerts posted back to back over `inFlight`
//       keep-alive connections (1: its default maxconcurrentrequests), all `declined` (with __N__) but the one in
//       the middle, `real`; the flood's duration, and the real alert's time from send to containment. Without
//       `real` and `api`: all declined, the duration alone (a floor's).
//   { mode: 'afterStart', url, readyPath, readyUrl?, api, namespace, alerts: [{ pod, body }] }
//       after a start: watches the namespace's pods, writes READY on stdout, then waits (a GET of readyPath every
//       2 ms, at most 60 s) for the target to be ready and sends the alerts one at a time, each at once
//       after the one before is contained. Each alert's time from send to containment, and the wall-clock time
//       (ms since the epoch) the first pod was seen contained, for the caller's spawn-to-first-contained.
// Every mode is bounded (duration, count, or a 20 s timeout per alert). Prints one JSON object on stdout.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

let input = process.argv[2];
if (input === undefined) {
  input = '';
  for await (const chunk of process.stdin) input += chunk;
}
const o = JSON.parse(input);
const now = () => performance.now();
const quantile = (xs, q) => {
  const s = Float64Array.from(xs).sort();
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : NaN;
};
const summary = (lat) => ({ n: lat.length, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), max: lat.length ? Math.max(...lat) : NaN });

async function burst() {
  const url = new URL(o.url);
  const [pre, post = ''] = o.body.split('__N__');
  const hasN = o.body.includes('__N__');
  const length = Buffer.byteLength(pre) + Buffer.byteLength(post) + (hasN ? 12 : 0);
  const head = Buffer.from(`POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nUser-Agent: Falcosidekick\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n${pre}`);
  const tail = Buffer.from(post);
  let n = 0;
  const statuses = {};
  const lat = [];
  let errors = 0;
  const one = () => new Promise((resolve) => {
    const t0 = now();
    const s = net.connect(Number(url.port), url.hostname);
    let got = Buffer.alloc(0);
    let done = false;
    const finish = (status) => {
      if (done) return;
      done = true;
      s.destroy();
      if (status) {
        statuses[status] = (statuses[status] ?? 0) + 1;
        lat.push(now() - t0);
      } else errors++;
      resolve();
    };
    s.setNoDelay(true);
    s.on('connect', () => s.end(hasN ? Buffer.concat([head, Buffer.from(String(n++).padStart(12, '0')), tail]) : head));
    s.on('data', (d) => {
      got = got.length ? Buffer.concat([got, d]) : d;
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      const headers = got.subarray(0, end).toString('latin1');
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(headers);
      if (!cl || got.length - end - 4 >= Number(cl[1])) finish(headers.slice(9, 12));
    });
    s.on('end', () => {
      const headers = got.toString('latin1');
      finish(/^HTTP\/1\.[01] \d{3}/.test(headers) ? headers.slice(9, 12) : undefined);
    });
    s.on('error', () => finish(undefined));
    s.setTimeout(10_000, () => finish(undefined));
  });
  const start = now();
  const until = start + o.durationMs;
  await Promise.all(Array.from({ length: o.connections }, async () => {
    while (now() < until) await one();
  }));
  const seconds = (now() - start) / 1000;
  return { rps: lat.length / seconds, requests: lat.length, errors, statuses, ...summary(lat) };
}

function post(agent, url, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'user-agent': 'Falcosidekick' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.setTimeout(20_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

async function sequence() {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const lat = [];
  const statuses = {};
  let errors = 0;
  for (const body of o.bodies) {
    const t0 = now();
    try {
      const r = await post(agent, o.url, body);
      lat.push(now() - t0);
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    } catch {
      errors++;
    }
  }
  return { ...summary(lat), statuses, errors };
}

async function direct() {
  const k8s = await import('@kubernetes/client-node');
  // One keep-alive agent, as the function uses client-node.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: readFileSync(o.caFile) });
  const auth = { getName: () => 'default', applySecurityAuthentication: (ctx) => { ctx.setHeaderParam('Authorization', `Bearer ${o.token}`); ctx.setAgent(agent); } };
  const core = new k8s.CoreV1Api(k8s.createConfiguration({ baseServer: new k8s.ServerConfiguration(o.server, {}), authMethods: { default: auth } }));
  const lat = [];
  for (let i = 0; i < o.count; i++) {
    const t0 = now();
    await core.deleteNamespacedPod({ name: `direct-${process.pid}-${i}`, namespace: 'default', body: {} });
    lat.push(now() - t0);
  }
  return summary(lat);
}

async function flood() {
  // Without `real` (a floor: a server that answers at once), no watch and no real alert.
  const w = o.real ? await podWatch() : undefined;
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.inFlight });
  const [pre, tail = ''] = o.declined.split('__N__');
  const realAt = o.real ? Math.floor(o.total / 2) : -1;
  const statuses = {};
  let errors = 0;
  let next = 0;
  let realSent = NaN;
  let realAnswered = NaN;
  const t0 = now();
  await Promise.all(Array.from({ length: o.inFlight }, async () => {
    while (next < o.total) {
      const i = next++;
      const real = i === realAt;
      if (real) realSent = now();
      const r = await post(agent, o.url, real ? o.real.body : `${pre}${String(i).padStart(12, '0')}${tail}`).catch(() => undefined);
      if (real) realAnswered = now();
      if (r) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      else errors++;
    }
  }));
  const durationMs = now() - t0;
  const contained = w ? await w.until(o.real.pod, 10_000) : undefined;
  w?.close();
  agent.destroy();
  return { durationMs, perSecond: (o.total / durationMs) * 1000, containedMs: contained === undefined ? NaN : contained - realSent, answeredMs: realAnswered - realSent, statuses, errors };
}

/**
 * The namespace's pods watched: when each first carries a deletionTimestamp (or is gone). The server may end a
 * new watch at once (504 "Too large resource version" while its watch cache catches up with recent writes):
 * then it is opened again, and this resolves only once a watch has stayed up for 300 ms.
 */
async function podWatch(only) {
  const api = new URL(o.api.server);
  const tls = { ca: readFileSync(o.api.caFile), cert: readFileSync(o.api.certFile), key: readFileSync(o.api.keyFile) };
  const seen = new Map();
  const waiting = new Map();
  let closing = false;
  let restarts = 0;
  let failedAt = 0;
  let req;
  const open = () => new Promise((resolve, reject) => {
    // One pod (`only`): a field selector, so that a namespace of 50,000 pods is not streamed to this process first.
    const selector = only ? `&fieldSelector=${encodeURIComponent(`metadata.name=${only}`)}` : '';
    const r = https.request({ host: api.hostname, port: api.port, path: `/api/v1/namespaces/${o.namespace}/pods?watch=1${selector}`, ...tls }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`watch: HTTP ${res.statusCode}`));
      resolve(r);
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (!line) continue;
          const ev = JSON.parse(line);
          if (ev.type === 'ERROR') {
            failedAt = now();
            r.destroy();
            continue;
          }
          const name = ev.object?.metadata?.name;
          if (!name || seen.has(name) || !(ev.type === 'DELETED' || ev.object.metadata.deletionTimestamp)) continue;
          seen.set(name, now());
          waiting.get(name)?.();
        }
      });
      res.on('close', () => {
        if (closing) return;
        restarts++;
        setTimeout(() => open().then((x) => (req = x), () => undefined), 100);
      });
    });
    r.on('error', reject);
    r.end();
  });
  req = await open();
  for (let i = 0; i < 50; i++) {
    const since = now();
    await new Promise((r) => setTimeout(r, 300));
    if (failedAt < since) break;
  }
  return {
    seen,
    get restarts() {
      return restarts;
    },
    /** When `pod` was seen contained, waiting at most `ms`; undefined if it was not. */
    until: (pod, ms) => new Promise((resolve) => {
      if (seen.has(pod)) return resolve(seen.get(pod));
      const timer = setTimeout(() => resolve(seen.get(pod)), ms);
      waiting.set(pod, () => (clearTimeout(timer), resolve(seen.get(pod))));
    }),
    close: () => {
      closing = true;
      req.destroy();
    },
  };
}

async function contain() {
  const w = await podWatch();
  const seen = w.seen;
  const restartsBefore = w.restarts;
  const agent = new http.Agent({ keepAlive: true, maxSockets: Math.max(1, o.inFlight) });
  // warmPath: one GET over the alerts' connection before the clock starts, as a platform's proxy keeps its
  // connection open: the first alert then times the target, not this process's first request.
  if (o.warmPath) await new Promise((resolve) => http.get(new URL(o.warmPath, o.url), { agent }, (res) => (res.resume(), res.on('end', resolve))).on('error', resolve));
  const times = [];
  const failures = [];
  const t0 = now();
  let next = 0;
  await Promise.all(Array.from({ length: o.inFlight }, async () => {
    while (next < o.alerts.length) {
      const { pod, body } = o.alerts[next++];
      const sent = now();
      const contained = w.until(pod, 10_000);
      const answer = await post(agent, o.url, body).catch((e) => ({ status: 0, text: String(e) }));
      if (process.env.BENCH_VERBOSE) console.error(pod, answer.status, answer.text.slice(0, 300));
      await contained;
      if (seen.has(pod)) times.push({ fromSend: seen.get(pod) - sent, fromStart: seen.get(pod) - t0 });
      else failures.push(`${pod}: not contained within 10 s (answer ${answer.status} ${answer.text.slice(0, 200)})`);
    }
  }));
  w.close();
  const fromSend = times.map((t) => t.fromSend);
  const fromStart = times.map((t) => t.fromStart);
  return { ...summary(fromSend), times: fromSend.map((t) => Math.round(t * 10) / 10), half: quantile(fromStart, 0.5), all: fromStart.length ? Math.max(...fromStart) : NaN, contained: times.length, failures, watchRestarts: w.restarts - restartsBefore };
}

async function afterStart() {
  const w = await podWatch(o.alerts.length === 1 ? o.alerts[0].pod : undefined);
  process.stdout.write('READY\n');
  // readyUrl: another target whose readiness starts the alerts (default: the one they go to).
  const url = new URL(o.readyUrl ?? o.url);
  const until = now() + 60_000;
  // Ready as the platform sees it: readyPath answers 200 (OpenFaaS and Knative route to a replica only then).
  // Polled over the alerts' own keep-alive connection when they go to the same target, as a platform's
  // proxy keeps one: the first alert then meets neither a new connection nor this process's cold code.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const pollAgent = o.readyUrl ? false : agent;
  for (;;) {
    const ready = await new Promise((resolve) => {
      const req = http.get({ host: url.hostname, port: url.port, path: o.readyPath, agent: pollAgent }, (res) => (res.resume(), resolve(res.statusCode === 200)));
      req.on('error', () => resolve(false));
    });
    if (ready) break;
    if (now() > until) throw new Error(`${url.href} was not ready (${o.readyPath}) within 60 s`);
    await new Promise((r) => setTimeout(r, 2));
  }
  const readyAt = performance.timeOrigin + now();
  const times = [];
  const answers = [];
  const failures = [];
  let firstContainedAt = NaN;
  for (const { pod, body } of o.alerts) {
    const sent = now();
    const contained = w.until(pod, 10_000);
    const answer = await post(agent, o.url, body).catch((e) => ({ status: 0, text: String(e) }));
    answers.push(now() - sent);
    if (process.env.BENCH_VERBOSE) console.error(pod, answer.status, answer.text.slice(0, 300));
    await contained;
    if (w.seen.has(pod)) {
      times.push(w.seen.get(pod) - sent);
      if (Number.isNaN(firstContainedAt)) firstContainedAt = performance.timeOrigin + w.seen.get(pod);
    } else failures.push(`${pod}: not contained within 10 s (answer ${answer.status} ${answer.text.slice(0, 200)})`);
  }
  w.close();
  agent.destroy();
  return { ...summary(times), times: times.map((t) => Math.round(t * 10) / 10), answers: answers.map((t) => Math.round(t * 10) / 10), readyAt, firstContainedAt, contained: times.length, failures };
}

const modes = { burst, sequence, direct, contain, flood, afterStart };
const result = await modes[o.mode]();
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
