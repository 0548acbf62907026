// npm run bench: the function beside the designs it replaces (../shared/peers), in one run, and BENCHMARKS.md.
//   1. stand-in phase: a TLS stand-in Kubernetes API on loopback that answers at once (in this process); each
//      target started as it runs in production; cold start, RSS idle, declined alerts per second, one alert
//      to one deletion; the load generator's ceiling against a trivial server; client-node's bare DELETE.
//   2. real phase, when KUBEBUILDER_ASSETS is set: kube-apiserver and etcd with rbac.yaml; each target
//      in-cluster with the ServiceAccount's token; time to containment, one alert at a time and 50 at once.
// BENCH_VERBOSE=1 shows the targets' stderr (and each answer), BENCH_STDOUT=1 their stdout (the audit lines).
// Load comes from bench/loadgen.mjs in its own process. Every loop is bounded; the whole run takes about 8 min.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, totalmem } from 'node:os';
import { build } from 'esbuild';
import { alertFor } from './alerts.mjs';
import { adminClient, isWrite, makePods, requestsBetween, serverRequests, shellAlert } from './cluster.mjs';
import * as T from './targets.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const ONLY = process.env.BENCH_ONLY; // stand-in | real: one phase, for debugging
const log = (...a) => console.error('[bench]', ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fmt = (x, d = 1) => (Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : 'n/a');
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};
const began = performance.now();

function generate(args) {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['bench/loadgen.mjs'], { stdio: ['pipe', 'pipe', 'inherit'] });
    c.stdin.end(JSON.stringify(args)); // on stdin: hundreds of alerts exceed the argument size limit
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    const timer = setTimeout(() => c.kill('SIGKILL'), 180_000);
    c.on('exit', (code) => {
      clearTimeout(timer);
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`loadgen ${args.mode} exited ${code}`));
    });
  });
}

log('building the production bundle (npm run build) and the stand-in API');
execFileSync('npm', ['run', '-s', 'build'], { stdio: 'inherit' });
await build({ entryPoints: ['test/support/apiserver.ts'], outfile: 'dist/bench/apiserver.mjs', bundle: true, platform: 'node', format: 'esm', logLevel: 'error' });
const { FakeApiServer, stageServiceAccount, tlsFiles } = await import(`${process.cwd()}/dist/bench/apiserver.mjs`);

const available = T.peers();
const targets = ['function', ...['go', 'python'].filter((p) => !available[p].missing)].filter((t) => !process.env.BENCH_TARGETS || process.env.BENCH_TARGETS.split(',').includes(t));
for (const [p, a] of Object.entries(available)) log(a.missing ? `peer ${p}: missing (${a.missing})` : `peer ${p}: found`);
const results = { standIn: {}, real: undefined, ceiling: NaN, bare: NaN, direct: undefined };

// A declined alert, for each design: a shell in kube-system (the function's and the Go seed's critical
// namespaces); the Python seed has no allowlist and declines only a rule it does not know.
const declined = (name) => {
  const body = alertFor('declined', 'coredns-5d78c9869d-x1').replace(/"uuid":"[^"]+"/, '"uuid":"00000000-0000-4000-8000-__N__"');
  return name === 'python' ? body.replace('Terminal shell in container', 'Write below etc') : body;
};
const BURST = { connections: 32, durationMs: 4000 };
/** The real phase's rows (BENCH_ROWS, comma-separated, for a shorter run; default all). */
const ROWS = new Set((process.env.BENCH_ROWS ?? 'contain,flood,start,budget,view,scale').split(','));
/** Alerts in the flood rows (the issue's figure; BENCH_FLOOD for a shorter run). */
const FLOOD = Number(process.env.BENCH_FLOOD ?? 20_000);

if (!ONLY || ONLY === 'stand-in') {
  const api = await new FakeApiServer('bench-token').start();
  api.record = false;
  api.autoPods = true;
  const sa = stageServiceAccount('bench-token');
  const cluster = { host: '127.0.0.1', port: api.port, saPrefix: sa.prefix };

  log('load generator ceiling (a trivial server) and the Express floor (Express answering at once)');
  const ceiling = [];
  const floor = [];
  for (let i = 0; i < RUNS; i++) {
    for (const [name, into] of [['trivial', ceiling], ['express', floor]]) {
      const t = await T.start(name, undefined, cluster);
      into.push((await generate({ mode: 'burst', url: t.url, body: declined('function'), ...BURST })).rps);
      await T.stop(t);
    }
  }
  results.ceiling = median(ceiling);
  results.expressFloor = median(floor);
  const bare = Array.from({ length: 7 }, () => T.bareNode());
  results.bare = median(bare);
  log('bare DELETE with client-node, one at a time');
  results.direct = await generate({ mode: 'direct', server: api.url, caFile: tlsFiles().caPath, token: 'bench-token', count: 300 });

  // 'lite': the function with V8's lite mode, the memory-saving option the README describes.
  for (const name of [...targets, ...(targets.includes('function') ? ['lite'] : [])]) {
    const runs = [];
    for (let i = 0; i < RUNS; i++) {
      log(`stand-in: ${name}, run ${i + 1} of ${RUNS}`);
      // The blast-radius limit off: the load would reach it. Claims and everything else as deployed.
      const t = name === 'lite'
        ? await T.start('function', undefined, cluster, { ACTION_LIMIT: '0' }, ['--lite-mode'])
        : await T.start(name, available[name], cluster, name === 'function' ? { ACTION_LIMIT: '0' } : {});
      await sleep(1000);
      const idle = T.rss(t.pid);
      const d = await generate({ mode: 'burst', url: t.url, body: declined(name), ...BURST });
      // The Go seed's DELETEs wait for client-go's limiter (5/s): 30 alerts are 6 s.
      const bodies = Array.from({ length: name === 'go' ? 30 : 300 }, (_, k) => alertFor('delete', `seq-${name}-${i}-${k}`));
      const s = await generate({ mode: 'sequence', url: t.url, bodies });
      const peak = T.rss(t.pid, 'VmHWM');
      await T.stop(t);
      const ok = (st) => Object.entries(st).every(([code]) => code === '200');
      runs.push({ cold: t.coldMs, idle, peak, declined: d.rps, declinedP99: d.p99, declinedOk: ok(d.statuses) && d.errors === 0, p50: s.p50, p99: s.p99, sequenceOk: ok(s.statuses) && s.errors === 0, statuses: { declined: d.statuses, sequence: s.statuses } });
    }
    const m = (k) => median(runs.map((r) => r[k]));
    results.standIn[name] = { cold: m('cold'), idle: m('idle'), peak: m('peak'), declined: m('declined'), declinedP99: m('declinedP99'), p50: m('p50'), p99: m('p99'), ok: runs.every((r) => r.declinedOk && r.sequenceOk), statuses: runs.map((r) => r.statuses) };
  }

  // Start on each Node line: spawn to first answer beside `node -e 0` of the same binary. The first start of each
  // line is left out: it writes the compile cache (Node 22.1+) that every later start of the image reads.
  log('start on each Node line (18, 20, 24, 26)');
  const lines = T.nodeLines([18, 20, 24, 26]);
  results.nodeLines = {};
  for (const [v, node] of Object.entries(lines)) {
    const cacheDir = `dist/bench/compile-cache-${v}`;
    const cold = [];
    const bareRuns = [];
    for (let i = 0; i < 6; i++) {
      const t = await T.start('function', undefined, cluster, { ACTION_LIMIT: '0', NODE_COMPILE_CACHE: cacheDir }, [], { node });
      if (i > 0) cold.push(t.coldMs);
      await sleep(300);
      await T.stop(t);
      bareRuns.push(T.bareNode(node));
    }
    results.nodeLines[v] = { version: execFileSync(node, ['--version']).toString().trim(), cold: median(cold), bare: median(bareRuns) };
    log(`  Node ${results.nodeLines[v].version}: spawn to first answer ${results.nodeLines[v].cold.toFixed(0)} ms, node -e 0 ${results.nodeLines[v].bare.toFixed(0)} ms`);
  }

  log('storm: 10,000 alerts for one pod, 100 in flight (the function only: the peers do not coalesce)');
  {
    const t = await T.start('function', undefined, cluster, { ACTION_LIMIT: '0' });
    api.pods.delete('default/storm-target');
    const before = api.counts.get('DELETE /api/v1/namespaces/*/pods/*') ?? 0;
    const r = await new Promise((resolve, reject) => {
      const c = spawn(process.execPath, ['bench/load.mjs', JSON.stringify({ url: t.url, kind: 'storm', amount: 10000, connections: 100 })], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      c.stdout.on('data', (x) => (out += x));
      c.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load.mjs exited ${code}`))));
    });
    results.storm = { ...r, deletes: (api.counts.get('DELETE /api/v1/namespaces/*/pods/*') ?? 0) - before, peak: T.rss(t.pid, 'VmHWM') };
    await T.stop(t);
  }
  await api.stop();
}

// ---- real API server ----
async function realPhase() {
  const { startControlPlane, kubectl, stageServiceAccountFiles } = await import('../test/support/control-plane.mjs');
  const { state, stop } = await startControlPlane();
  const out = {};
  try {
    const dir = state.dir;
    const call = adminClient(state);
    const sa = stageServiceAccountFiles(state);
    const cluster = { host: '127.0.0.1', port: state.port, saPrefix: sa.prefix };
    const api = { server: state.server, caFile: state.caPath, certFile: join(dir, 'admin.crt'), keyFile: join(dir, 'admin.key') };
    const realRuns = Number(process.env.BENCH_REAL_RUNS ?? 2);
    for (const name of targets) {
      const runs = [];
      for (let i = 0; i < (ROWS.has('contain') ? realRuns : 0); i++) {
        log(`real API server: ${name}, run ${i + 1} of ${realRuns}`);
        const ns = `bench-${name}-${i}`;
        kubectl(state, ['create', 'namespace', ns]);
        kubectl(state, ['create', 'serviceaccount', 'default', '-n', ns]); // no controller-manager makes it
        const single = await makePods(call, ns, 'single', 20);
        const burst = await makePods(call, ns, 'burst', 50);
        // The action limit raised for the run (50 at once); exactly-once claims and the one cluster-wide budget stay on.
        const t = await T.start(name, available[name], cluster, name === 'function' ? { ACTION_LIMIT: '1000' } : {});
        await sleep(500);
        if (name === 'function' && !(await T.viewSynced(t))) log('  function: its view did not sync; it reads the API');
        // What the target asks of the server for the alerts: apiserver_request_total before and after (its
        // start, the pods' creation and every WATCH left out), the writes after the answers included.
        const before = await serverRequests(state);
        const one = await generate({ mode: 'contain', url: t.url, api, namespace: ns, alerts: single.map((p) => ({ pod: p.name, body: shellAlert(ns, p) })), inFlight: 1, warmPath: READY_PATH[name] });
        // The Events of those alerts go once no containment has been under way for a moment: count them here.
        await sleep(1000);
        const mid = await serverRequests(state);
        const all = await generate({ mode: 'contain', url: t.url, api, namespace: ns, alerts: burst.map((p) => ({ pod: p.name, body: shellAlert(ns, p) })), inFlight: 50 });
        await sleep(2000);
        const after = await serverRequests(state);
        await T.stop(t);
        runs.push({ one, all, requests: { one: requestsBetween(before, mid), all: requestsBetween(mid, after) } });
        log(`  ${name}: one at a time, ms: ${one.times.join(' ')}`);
        for (const f of [...one.failures, ...all.failures]) log(`  ${name}: ${f}`);
      }
      // A flood at Falcosidekick's defaults: FLOOD declined alerts back to back, one real alert in the middle,
      // over one keep-alive connection (maxconcurrentrequests: 1), then over 32.
      const flood = {};
      if (ROWS.has('flood') && name === 'function') {
        // The same floods against the floors, in the same minutes as the function's: Node's http answering at
        // once, and Express answering at once. What any Node or Express handler can reach here.
        log(`floors of a flood of ${FLOOD} alerts, 1 and 32 in flight: Node's http and Express answering at once`);
        results.flood1Floor = {};
        results.flood32Floor = {};
        for (const floor of ['trivial', 'express']) {
          const t = await T.start(floor, undefined, cluster);
          results.flood1Floor[floor] = (await generate({ mode: 'flood', url: t.url, declined: declined('function'), total: FLOOD, inFlight: 1 })).durationMs;
          results.flood32Floor[floor] = (await generate({ mode: 'flood', url: t.url, declined: declined('function'), total: FLOOD, inFlight: 32 })).perSecond;
          await T.stop(t);
        }
      }
      if (ROWS.has('flood')) {
        const t = await T.start(name, available[name], cluster, name === 'function' ? { ACTION_LIMIT: '1000' } : {});
        await sleep(500);
        if (name === 'function') await T.viewSynced(t);
        for (const inFlight of [1, 32]) {
          const ns = `flood-${name}-${inFlight}`;
          kubectl(state, ['create', 'namespace', ns]);
          kubectl(state, ['create', 'serviceaccount', 'default', '-n', ns]);
          const [real] = await makePods(call, ns, 'real', 1);
          await sleep(300);
          log(`real API server: ${name}, a flood of ${FLOOD} alerts, ${inFlight} in flight`);
          flood[inFlight] = await generate({ mode: 'flood', url: t.url, api, namespace: ns, declined: declined(name), total: FLOOD, real: { pod: real.name, body: shellAlert(ns, real) }, inFlight });
          log(`  ${name}: ${JSON.stringify(flood[inFlight])}`);
        }
        await T.stop(t);
      }
      const m = (f) => median(runs.map(f));
      const sum = (o, pred = () => true) => Object.entries(o).filter(([k]) => pred(k)).reduce((n, [, v]) => n + v, 0);
      const perPod = (which, pred) => m((r) => sum(r.requests[which], pred) / Math.max(1, r[which].contained));
      const byRequest = {};
      for (const r of runs) for (const [k, v] of Object.entries(r.requests.one)) byRequest[k] = (byRequest[k] ?? 0) + v / Math.max(1, r.one.contained) / runs.length;
      out[name] = {
        p50: m((r) => r.one.p50), p99: m((r) => r.one.p99), half: m((r) => r.all.half), all: m((r) => r.all.all),
        contained: runs.reduce((n, r) => n + r.one.contained + r.all.contained, 0), sent: runs.length * 70,
        perPodOne: perPod('one'), writesPerPodOne: perPod('one', isWrite), perPodAll: perPod('all'), writesPerPodAll: perPod('all', isWrite), byRequest,
        flood,
        start: ROWS.has('start') ? await afterStart(state, call, cluster, api, name) : undefined,
      };
    }
    if (targets.includes('function') && ROWS.has('budget')) out.budget = await budgetBurst(state, call, cluster);
    if (targets.includes('function') && ROWS.has('view')) out.view = await viewMemory(state, call, cluster);
    // Side by side on the same server: the view as shipped (a streaming list where the server serves one), then
    // paged lists only (VIEW_LIST=paged: what every replica did before WatchList).
    if (targets.includes('function') && ROWS.has('scale')) out.scale = { streaming: await scaleUp(state, call, cluster, api, 'streaming', 0), paged: await scaleUp(state, call, cluster, api, 'paged', 2) };
  } finally {
    await stop();
  }
  return out;
}
/**
 * After a start: the load generator watches a fresh namespace's 20 pods and is ready before the target is
 * spawned; it sends the first alert the moment the target says it is ready (READY_PATH answers 200: when the
 * platform would first route an alert to it) and each next one as soon as the one
 * before is contained. Spawn to the first pod contained (two wall clocks of one machine), and the first 20
 * alerts' times to containment. Median of BENCH_REAL_RUNS starts.
 */
async function afterStart(state, call, cluster, api, name) {
  const { kubectl, freePort } = await import('../test/support/control-plane.mjs');
  const starts = [];
  for (let i = 0; i < Number(process.env.BENCH_REAL_RUNS ?? 2); i++) {
    const ns = `start-${name}-${i}`;
    log(`real API server: ${name}, after a start, run ${i + 1}`);
    kubectl(state, ['create', 'namespace', ns]);
    kubectl(state, ['create', 'serviceaccount', 'default', '-n', ns]);
    const pods = await makePods(call, ns, 'fresh', 20);
    await sleep(300);
    const port = await freePort();
    const { ready, done } = afterStartGenerator({ mode: 'afterStart', url: `http://127.0.0.1:${port}/`, readyPath: READY_PATH[name], api, namespace: ns, alerts: pods.map((p) => ({ pod: p.name, body: shellAlert(ns, p) })) }, 120_000);
    await Promise.race([ready, done]);
    const t = await T.start(name, available[name], cluster, name === 'function' ? { ACTION_LIMIT: '1000' } : {}, [], { port });
    const r = await done;
    await T.stop(t);
    for (const f of r.failures) log(`  ${name}: ${f}`);
    log(`  ${name}: spawn to first answer ${fmt(t.coldMs)} ms, to ready ${fmt(r.readyAt - t.spawnedAt)} ms, to first pod contained ${fmt(r.firstContainedAt - t.spawnedAt)} ms; alerts, ms: ${r.times.join(' ')}; answered, ms: ${r.answers.join(' ')}`);
    starts.push({ cold: t.coldMs, ready: r.readyAt - t.spawnedAt, firstContained: r.firstContainedAt - t.spawnedAt, p50: r.p50, p99: r.p99, first: r.times[0], tenth: r.times[9], contained: r.contained, times: r.times });
  }
  const m = (k) => median(starts.map((x) => x[k]));
  return { cold: m('cold'), ready: m('ready'), firstContained: m('firstContained'), p50: m('p50'), p99: m('p99'), first: m('first'), tenth: m('tenth'), contained: starts.reduce((n, x) => n + x.contained, 0), sent: starts.length * 20, runs: starts };
}
/**
 * The load generator in afterStart mode: `ready` once its watch is up (it says READY), `done` with its result;
 * killed after `ms`.
 */
function afterStartGenerator(args, ms) {
  const gen = spawn(process.execPath, ['bench/loadgen.mjs'], { stdio: ['pipe', 'pipe', 'inherit'] });
  gen.stdin.end(JSON.stringify(args));
  let out = '';
  let onReady;
  const ready = new Promise((r) => (onReady = r));
  gen.stdout.on('data', (d) => {
    out += d;
    if (out.startsWith('READY\n')) onReady();
  });
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => gen.kill('SIGKILL'), ms);
    gen.on('exit', (code) => (clearTimeout(timer), code === 0 ? resolve(JSON.parse(out.slice('READY\n'.length))) : reject(new Error(`loadgen afterStart exited ${code}`))));
  });
  return { ready, done };
}

/** Where each target says it is ready (the function: the template's ready_path; the peers: their health path). */
const READY_PATH = { function: '/_/ready', python: '/healthz', go: '/_/health' };

/** The bench-view namespace and its pods, made once: `n` running pods (the view and scale-up rows share them). */
const bulk = [];
async function bulkPods(state, call, n) {
  if (bulk.length === 0) {
    const { kubectl } = await import('../test/support/control-plane.mjs');
    kubectl(state, ['create', 'namespace', 'bench-view']);
    kubectl(state, ['create', 'serviceaccount', 'default', '-n', 'bench-view']);
  }
  if (bulk.length < n) {
    log(`making ${(n - bulk.length).toLocaleString('en-US')} pods in bench-view`);
    bulk.push(...(await makePods(call, 'bench-view', `v${bulk.length}`, n - bulk.length, 64)));
  }
  return bulk;
}

/**
 * Scale-up on a large cluster: 3 replicas started at once with SCALE_PODS (50,000) pods in the API server.
 * The API server's added memory (its RSS, what its process_resident_memory_bytes reads, sampled every 20 ms:
 * peak during the sync less before) and CPU seconds from spawn to the last replica synced; each replica's time
 * from spawn to synced, and how its view got its state (its falco_pod_delete_view_list_mode); one alert sent
 * to the first replica the moment it is ready, while the views sync: its time to containment, whether it was
 * sent before that replica's view had synced and checked by reading the API, and the replica's API calls.
 */
async function scaleUp(state, call, cluster, api, list, offset) {
  const { freePort } = await import('../test/support/control-plane.mjs');
  const n = Number(process.env.BENCH_SCALE_PODS ?? 50_000);
  const pods = await bulkPods(state, call, n);
  // Pods not yet contained: each run its own (offset).
  const target = pods[Math.floor(pods.length / 3) + offset];
  const apiPid = state.pids[state.pids.length - 1];
  // The alerts' watchers are up before the replicas start. One alert goes to the first replica the moment it
  // is ready, while the views sync; the same moment, one goes to the Python seed (started before, idle), which
  // meets the same API server and CPU: a side-by-side of what the sync costs an alert.
  const port = await freePort();
  const seed = available.python && !available.python.missing ? await T.start('python', available.python, cluster) : undefined;
  const alerts = [{ pod: target, url: `http://127.0.0.1:${port}/` }, ...(seed ? [{ pod: pods[pods.indexOf(target) + 1], url: seed.url }] : [])];
  const gens = alerts.map(({ pod, url }) =>
    afterStartGenerator({ mode: 'afterStart', url, readyUrl: `http://127.0.0.1:${port}/`, readyPath: READY_PATH.function, api, namespace: 'bench-view', alerts: [{ pod: pod.name, body: shellAlert('bench-view', pod) }] }, 300_000));
  await Promise.all(gens.map((g) => g.ready));
  log(`scale-up: 3 replicas at once, ${n.toLocaleString('en-US')} pods in bench-view, VIEW_LIST=${list}`);
  await sleep(5000);
  const rssBefore = T.rss(apiPid);
  const cpuBefore = T.cpuSeconds(apiPid);
  let peak = rssBefore;
  const sampler = setInterval(() => (peak = Math.max(peak, T.rss(apiPid))), 20);
  const env = { ACTION_LIMIT: '1000', VIEW_MAX_PODS: '200000', VIEW_LIST: list };
  const replicas = await Promise.all([0, 1, 2].map((i) => T.start('function', undefined, cluster, env, [], i === 0 ? { port } : {})));
  const syncedAt = await Promise.all(replicas.map(async (t) => ((await T.viewSynced(t, 300_000, 50)) ? performance.timeOrigin + performance.now() - t.spawnedAt : NaN)));
  clearInterval(sampler);
  const cpu = T.cpuSeconds(apiPid) - cpuBefore;
  const texts = await Promise.all(replicas.map(async (t) => (await fetch(`http://127.0.0.1:${t.metricsPort}/metrics`)).text()));
  const modes = texts.map((text) => /falco_pod_delete_view_list_mode\{mode="(\w+)"\} 1/.exec(text)?.[1] ?? 'unknown');
  // What the first replica's alert waited for: its API calls, by verb and resource (its own histogram).
  const calls = {};
  for (const m of texts[0].matchAll(/^falco_pod_delete_kube_request_duration_seconds_(sum|count)\{verb="(\w+)",resource="(\w+)"\} (\S+)$/gm)) {
    const k = `${m[2]} ${m[3]}`;
    calls[k] = { ...calls[k], [m[1]]: Number(m[4]) };
  }
  const [a, py] = await Promise.all(gens.map((g) => g.done));
  const replicaPeakMB = replicas.map((t) => T.rss(t.pid, 'VmHWM'));
  if (seed) await T.stop(seed);
  await Promise.all(replicas.map((t) => T.stop(t)));
  const outRow = {
    list, pods: n, replicaPeakMB, apiAddedMB: peak - rssBefore, apiBeforeMB: rssBefore, apiCpuSeconds: cpu, syncedMs: syncedAt, modes,
    alertMs: a.times[0], alertSentMs: a.readyAt - replicas[0].spawnedAt, alertFromSpawnMs: a.firstContainedAt - replicas[0].spawnedAt,
    // Sent while the first replica's view was still syncing, and checked by reading the API (a pod GET).
    sentDuringSync: a.readyAt - replicas[0].spawnedAt < syncedAt[0], readDirectly: (calls['get pods']?.count ?? 0) > 0, calls,
    pythonAlertMs: py?.times[0], failures: [...a.failures, ...(py?.failures ?? [])],
  };
  log(`  scale-up: ${JSON.stringify(outRow)}`);
  return outRow;
}

/**
 * The blast-radius budget in an incident: 50 alerts at once for 50 pods of one fresh namespace, with the
 * default limits (ACTION_LIMIT=20, NAMESPACE_ACTION_LIMIT=50%: a share of 10) and the budget Lease fresh.
 * Counts the pods contained and the 429s, and each 429 whose own figures leave room for the alert (a refusal
 * while room remained), and the API requests per contained pod (apiserver_request_total).
 */
async function budgetBurst(state, call, cluster) {
  const { kubectl } = await import('../test/support/control-plane.mjs');
  const ns = 'bench-budget';
  log('budget: 50 alerts at once in one namespace, default limits');
  kubectl(state, ['create', 'namespace', ns]);
  kubectl(state, ['create', 'serviceaccount', 'default', '-n', ns]);
  kubectl(state, ['delete', 'lease', 'fpd-budget', '-n', 'openfaas-fn', '--ignore-not-found']);
  const pods = await makePods(call, ns, 'worm', 50);
  const t = await T.start('function', undefined, cluster, {});
  await sleep(500);
  const before = await serverRequests(state);
  const answers = await Promise.all(pods.map(async (p) => {
    const res = await fetch(t.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: shellAlert(ns, p) });
    return { status: res.status, body: await res.json() };
  }));
  await sleep(2000);
  const after = await serverRequests(state);
  await T.stop(t);
  const contained = (await Promise.all(pods.map((p) => call('GET', `/api/v1/namespaces/${ns}/pods/${p.name}`).then(
    (pod) => Boolean(pod.metadata?.deletionTimestamp),
    (e) => / 404 /.test(e.message),
  )))).filter(Boolean).length;
  const refused = answers.filter((a) => a.status === 429);
  const roomLeft = refused.filter((a) => !a.body.budget || a.body.budget.taken + a.body.budget.reservedElsewhere + a.body.budget.reservedHere < a.body.budget.of).length;
  const byRequest = requestsBetween(before, after);
  const requests = Object.values(byRequest).reduce((n, v) => n + v, 0);
  const out = { sent: answers.length, deleted: answers.filter((a) => a.body.outcome === 'deleted').length, contained, refused: refused.length, roomLeft, codes: [...new Set(refused.map((a) => a.body.code))], perPod: requests / Math.max(1, contained), perAlert: requests / answers.length, byRequest, reason: refused[0]?.body.reason };
  log(`  budget burst: ${out.contained} of 50 contained, ${out.refused} refused (${out.codes.join(', ')}), ${out.roomLeft} refused with room left; ${out.perPod.toFixed(2)} API requests per contained pod`);
  return out;
}

/**
 * RSS of the function with its view holding 10,000 and then 50,000 synthetic pods (each with a node, a
 * container id and labels, as a kubelet and a controller would leave them), idle once synced, and the peak
 * of its first list.
 */
async function viewMemory(state, call, cluster) {
  const out = {};
  for (const target of [10_000, 50_000].filter((n) => n <= Number(process.env.BENCH_VIEW_MAX ?? 50_000))) {
    log(`view memory: ${target.toLocaleString('en-US')} pods`);
    await bulkPods(state, call, target);
    // VIEW_MAX_PODS above the run's pods (its default, 50,000, would turn the view off at 50,000 and the ~400 others).
    const t = await T.start('function', undefined, cluster, { ACTION_LIMIT: '1000', VIEW_MAX_PODS: '200000' });
    const t0 = performance.now();
    const synced = await T.viewSynced(t, 300_000);
    const syncMs = performance.now() - t0;
    await sleep(3000);
    const pods = await T.gauge(t, 'falco_pod_delete_view_pods');
    out[target] = { synced, syncMs, pods, rss: T.rss(t.pid), peak: T.rss(t.pid, 'VmHWM'), heap: (await T.gauge(t, 'falco_pod_delete_nodejs_heap_size_used_bytes')) / 2 ** 20 };
    await T.stop(t);
  }
  return out;
}

if ((!ONLY || ONLY === 'real') && process.env.KUBEBUILDER_ASSETS) results.real = await realPhase();
else if (!process.env.KUBEBUILDER_ASSETS) log('real API server phase skipped: set KUBEBUILDER_ASSETS (../shared/tools/unpack.sh DIR prints it)');

results.size = { bundle: statSync('dist/app.mjs').size };
results.seconds = (performance.now() - began) / 1000;
writeFileSync('dist/bench/results.json', JSON.stringify(results, null, 2));
if (ONLY) {
  console.log(JSON.stringify(results, null, 2));
  process.exit(0);
}

// ---- BENCHMARKS.md ----
const peerNames = ['go', 'python'];
const cell = (name, get, d) => (available[name]?.missing ? 'missing' : fmt(get(name), d));
const best = (get, better) => peerNames.filter((p) => !available[p].missing).map(get).filter(Number.isFinite).reduce((a, b) => (better(a, b) ? a : b), NaN);
const lower = (a, b) => a <= b;
const higher = (a, b) => a >= b;
/** A row: the function, each peer, the ratio function / best peer, the target and whether it is met. */
function row(label, get, d, better, target, met) {
  const b = best(get, better);
  const ratio = Number.isFinite(b) && b !== 0 ? `${fmt(get('function') / b, 2)}x` : 'n/a';
  return `| ${label} | ${cell('function', get, d)} | ${cell('go', get, d)} | ${cell('python', get, d)} | ${ratio} | ${target} | ${met === undefined ? '' : met ? 'met' : '**not met**'} |`;
}
const s = (name) => results.standIn[name] ?? {};
const fn = s('function');
const bestDeclined = best((p) => s(p).declined, higher);
const bestDeleteP50 = best((p) => s(p).p50, lower);
const bestIdle = best((p) => s(p).idle, lower);
const lines = [
  '# Benchmarks',
  '',
  `Written by \`npm run bench\` (bench/bench.mjs) on ${new Date().toISOString().slice(0, 10)}: the production bundle started as the image starts it`,
  "(the Dockerfile's `fprocess` with stack.yml's environment, `NODE_OPTIONS` included) beside the two designs it replaces",
  '(../shared/peers: the Go OpenFaaS handler with client-go, the Python Kubeless function), in one run, against the same',
  'API and the same load generator (bench/loadgen.mjs, its own process). Stand-in figures: median of',
  `${RUNS} runs; real-server figures: median of ${process.env.BENCH_REAL_RUNS ?? 2}. The ratio is the function's figure over the best peer's.`,
  '',
  `- Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.version}; the whole run took ${fmt(results.seconds / 60, 1)} min`,
  `- Peers: ${peerNames.map((p) => `${p}: ${available[p].missing ? `**missing** (${available[p].missing})` : 'run'}`).join('; ')}`,
  `- Load generator ceiling (against bench/trivial.mjs, a Node server that answers 200 at once): **${fmt(results.ceiling, 0)} requests/s** with`,
  `  ${BURST.connections} in flight and a new connection each. No target can be measured faster than that here; a figure near it is the generator's.`,
  `- Express floor (bench/express-floor.mjs: Express 5 set up as the template sets it up, answering a fixed 200 at once): **${fmt(results.expressFloor, 0)} requests/s**,`,
  '  the most any Express handler can decline here, whatever it does.',
  '',
  '## Stand-in API (TLS on loopback, answers at once)',
  '',
  '| | function | Go seed | Python seed | ratio | target | |',
  '|---|---|---|---|---|---|---|',
  row('cold start: spawn to first answer, ms', (n) => s(n).cold, 1, lower, `≤ 2x \`node -e 0\` (${fmt(2 * results.bare, 0)} ms)`, fn.cold <= 2 * results.bare),
  `| \`node -e 0\`, ms | ${fmt(results.bare)} | | | | (floor) | |`,
  row('RSS idle, MB', (n) => s(n).idle, 1, lower, `≤ Python seed (${fmt(s('python').idle)} MB)`, available.python.missing ? undefined : fn.idle <= s('python').idle),
  row(`declined alerts per second (${BURST.connections} in flight, new connection each)`, (n) => s(n).declined, 0, higher, `≥ best peer (${fmt(bestDeclined, 0)})`, fn.declined >= bestDeclined),
  row('declined alerts: p99 latency, ms', (n) => s(n).declinedP99, 1, lower, '', undefined),
  row('one alert to one deletion, one at a time: p50, ms', (n) => s(n).p50, 2, lower, `≤ best peer (${fmt(bestDeleteP50, 2)} ms)`, fn.p50 <= bestDeleteP50),
  row('one alert to one deletion: p99, ms', (n) => s(n).p99, 2, lower, `≤ 2x own p50 (${fmt(2 * fn.p50, 2)} ms)`, fn.p99 <= 2 * fn.p50),
  row('RSS peak over the run, MB', (n) => s(n).peak, 1, lower, '', undefined),
  `| bare DELETE with client-node, one at a time: p50 / p99, ms | ${fmt(results.direct?.p50, 2)} / ${fmt(results.direct?.p99, 2)} | | | | (floor) | |`,
  `| every answer 200 | ${targets.map((n) => (s(n).ok ? 'yes' : `**no** ${JSON.stringify(s(n).statuses)}`)).join(' | ')}${available.python.missing ? ' | ' : ''} | | | |`,
  '',
  ...(results.standIn.lite
    ? [`The function with \`fprocess: node --lite-mode dist/index.mjs\` (the memory option in stack.yml), same run: cold start ${fmt(s('lite').cold)} ms, RSS idle ${fmt(s('lite').idle)} MB, ` +
      `declined ${fmt(s('lite').declined, 0)}/s, one alert to one deletion p50 ${fmt(s('lite').p50, 2)} / p99 ${fmt(s('lite').p99, 2)} ms, RSS peak ${fmt(s('lite').peak)} MB${s('lite').ok ? '' : ' (**not every answer 200**)'}.`, '']
    : []),
  ...(results.nodeLines && Object.keys(results.nodeLines).length
    ? [
        '### Start on each Node line (spawn to first answer, stand-in API)',
        '',
        'The function as the image starts it, on each Node line npx could give, beside `node -e 0` of the same binary; median of 5',
        'starts after a first one that writes the compile cache (`module.enableCompileCache`, Node 22.1+; 18 and 20 have none).',
        '',
        '| Node | `node -e 0`, ms | spawn to first answer, ms | ratio | target | |',
        '|---|---|---|---|---|---|',
        ...Object.entries(results.nodeLines).map(([v, l]) => {
          const ratio = l.cold / l.bare;
          const target = Number(v) >= 24;
          return `| ${l.version} | ${fmt(l.bare, 0)} | ${fmt(l.cold, 0)} | ${fmt(ratio, 2)}x | ${target ? '≤ 2x' : '(reported)'} | ${target ? (ratio <= 2 ? 'met' : '**not met**') : ''} |`;
        }),
        '',
      ]
    : []),
  'Function only (the peers do not coalesce): 10,000 alerts for one pod with 100 in flight: ' +
    `${results.storm ? `${results.storm.deletes} DELETE, ${results.storm.errors + results.storm.non2xx} errors, p99 ${fmt(results.storm.p99, 0)} ms, ${results.storm.durationS} s, RSS peak ${fmt(results.storm.peak)} MB` : 'not run'}.`,
  `The bundle (all the JavaScript in the image) is ${fmt(results.size.bundle / 1e6, 2)} MB.`,
  '',
];
if (results.real) {
  const r = (name) => results.real[name] ?? {};
  const beat = (k) => peerNames.every((p) => available[p].missing || r('function')[k] < r(p)[k]);
  const etcdVersion = execFileSync(join(process.env.KUBEBUILDER_ASSETS, 'etcd'), ['--version']).toString().split('\n')[0].replace('etcd Version: ', '');
  lines.push(
    `## Real API server (kube-apiserver 1.36, etcd ${etcdVersion} on this disk, rbac.yaml, the ServiceAccount token)`,
    '',
    ...(etcdVersion.startsWith('3.4.') && !/^3\.4\.(3[1-9]|[4-9]\d)/.test(etcdVersion)
      ? ['This etcd lacks `RequestWatchProgress`, so kube-apiserver serves no streaming list: every view below listed in pages.', 'For streaming lists: `scripts/streaming-assets.sh DEST` (etcd 3.5 beside the same kube-apiserver), then `KUBEBUILDER_ASSETS=DEST`.', '']
      : []),
    'Time to containment: from the alert sent to the pod carrying a deletionTimestamp, seen by a watch in the load',
    "generator's process. The function runs as stack.yml ships it (COORDINATION=cluster: the one cluster-wide budget",
    'in a Lease, exactly-once by the DELETE\'s uid and resourceVersion preconditions; POD_VIEW=on), with ACTION_LIMIT',
    'raised to 1000 for the run; its view is synced before the alerts.',
    '',
    '| | function | Go seed | Python seed | ratio | target | |',
    '|---|---|---|---|---|---|---|',
    row('one alert at a time (20 pods): p50, ms', (n) => r(n).p50, 1, lower, 'ahead of both peers', beat('p50')),
    row('one alert at a time: p99, ms', (n) => r(n).p99, 1, lower, 'ahead of both peers', beat('p99')),
    row('50 alerts for 50 pods at once: half contained, ms', (n) => r(n).half, 0, lower, 'ahead of both peers', beat('half')),
    row('50 alerts for 50 pods at once: all contained, ms', (n) => r(n).all, 0, lower, 'ahead of both peers', beat('all')),
    `| pods contained / alerts sent | ${targets.map((n) => `${r(n).contained} / ${r(n).sent}`).join(' | ')}${available.python.missing ? ' | ' : ''} | | | |`,
    row(`a flood of ${FLOOD.toLocaleString('en-US')} declined alerts, 1 in flight (Falcosidekick's default): duration, s`, (n) => r(n).flood?.[1]?.durationMs / 1000, 1, lower, 'ahead of the Python seed', available.python.missing ? undefined : r('function').flood?.[1]?.durationMs < r('python').flood?.[1]?.durationMs),
    row('the real alert in its middle: time to containment, ms', (n) => r(n).flood?.[1]?.containedMs, 1, lower, '', undefined),
    `| the same flood against Node's http answering at once (bench/trivial.mjs) / Express answering at once (the Express floor), s | ${fmt(results.flood1Floor?.trivial / 1000)} / ${fmt(results.flood1Floor?.express / 1000)} | | | | (floors) | |`,
    row(`the same flood, 32 in flight: declined alerts per second`, (n) => r(n).flood?.[32]?.perSecond, 0, higher, `at or above the Python seed, and ≥ 0.6x the Express floor (${fmt(0.6 * results.flood32Floor?.express, 0)})`, available.python.missing ? undefined : r('function').flood?.[32]?.perSecond >= r('python').flood?.[32]?.perSecond && r('function').flood?.[32]?.perSecond >= 0.6 * results.flood32Floor?.express),
    `| the same flood against Node's http / Express answering at once, 32 in flight: per second | ${fmt(results.flood32Floor?.trivial, 0)} / ${fmt(results.flood32Floor?.express, 0)} | | | | (floors) | |`,
    row('the real alert in its middle: time to containment, ms', (n) => r(n).flood?.[32]?.containedMs, 1, lower, '', undefined),
    row('after a start: spawn to ready (the platform routes alerts from then), ms', (n) => r(n).start?.ready, 0, lower, '', undefined),
    row('after a start: spawn to the first pod contained, ms', (n) => r(n).start?.firstContained, 0, lower, '', undefined),
    row('the first 20 alerts after a start: p50, ms', (n) => r(n).start?.p50, 1, lower, '', undefined),
    row('the first 20 alerts after a start: p99, ms', (n) => r(n).start?.p99, 1, lower, '', undefined),
    row('the first alert after a start, ms', (n) => r(n).start?.first, 1, lower, 'no slower than the tenth', r('function').start ? r('function').start.first <= r('function').start.tenth : undefined),
    row('the tenth alert after a start, ms', (n) => r(n).start?.tenth, 1, lower, '', undefined),
    row('API requests per contained pod, one at a time', (n) => r(n).perPodOne, 2, lower, '≤ 2.5', r('function').perPodOne <= 2.5),
    row('of which writes', (n) => r(n).writesPerPodOne, 2, lower, '', undefined),
    row('API requests per contained pod, 50 at once', (n) => r(n).perPodAll, 2, lower, '≤ 2.5', r('function').perPodAll <= 2.5),
    row('of which writes', (n) => r(n).writesPerPodAll, 2, lower, '', undefined),
    '',
    'API requests are the server\'s own count (`apiserver_request_total` from its `/metrics`, before and after the',
    "alerts, WATCH requests left out: each target's and the load generator's watches are one long request each), divided",
    "by the pods contained. The function's, one at a time, by request: " +
      Object.entries(r('function').byRequest ?? {}).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${fmt(v, 2)}`).join(', ') + '.',
    'The function acts from its local view (no pod read), spends budget slots it reserved ahead (one Lease write per',
    'batch), and writes one Event per action (`RECORD_EVENTS=true`, as stack.yml ships); the seeds write no Event.',
    '',
    ...(results.real.budget
      ? [
          '### The blast-radius budget in an incident (function only)',
          '',
          '50 alerts at once for 50 running pods of one fresh namespace, with the default limits (`ACTION_LIMIT=20`,',
          '`NAMESPACE_ACTION_LIMIT=50%`: a share of 10), one replica, the budget Lease fresh.',
          '',
          '| alerts sent | pods contained | target | refused (429) | refused while room remained | API requests per contained pod | per alert |',
          '|---|---|---|---|---|---|---|',
          `| ${results.real.budget.sent} | ${results.real.budget.contained} | 10 (the share) ${results.real.budget.contained === 10 ? 'met' : '**not met**'} | ${results.real.budget.refused} (code ${results.real.budget.codes.join(', ')}) | ${results.real.budget.roomLeft} | ${fmt(results.real.budget.perPod, 2)} | ${fmt(results.real.budget.perAlert, 2)} |`,
          '',
          'Its API requests, by request (`apiserver_request_total`): ' +
            Object.entries(results.real.budget.byRequest ?? {}).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ') +
            '. A refused alert writes a `FalcoResponseRateLimited` Event (within the Events\' own budgets), which is why this burst costs more per contained pod than the rows above, where every alert acts.',
          '',
          `A refusal's reason, as answered: \`${results.real.budget.reason}\`. "Refused while room remained" counts the 429s whose own`,
          'figures (taken in the window, reserved by other replicas, reserved here for alerts in flight) fall short of the limit they name.',
          '',
        ]
      : []),
    ...(results.real.scale
      ? (() => {
          const { streaming: st, paged: pg } = results.real.scale;
          const both = (f, d = 0) => `${f(st)} | ${f(pg)}`;
          const ms = (xs) => xs.map((x) => fmt(x, 0)).join(', ');
          const held = (x) => x.sentDuringSync && x.readDirectly && x.failures.length === 0;
          const memoryMet = st.modes.every((m) => m === 'streaming') ? st.apiAddedMB < pg.apiAddedMB : undefined;
          return [
            '### Scale-up on a large cluster (function only; the Python seed beside it for the alert)',
            '',
            `Three replicas started at once with ${st.pods.toLocaleString('en-US')} pods in the API server (synthetic, as above; VIEW_MAX_PODS raised), twice on the same`,
            'server: as shipped (`VIEW_LIST=streaming`: a streaming list where the server serves one), then with paged lists only',
            "(`VIEW_LIST=paged`: what every replica did before). The API server's added memory is its RSS (what its own",
            '`process_resident_memory_bytes` reads), sampled every 20 ms from the spawn to the last replica synced, less its RSS',
            'before; its CPU seconds over the same span. One alert went to the first replica the moment it was ready (while the',
            'views synced), and one to the Python seed at the same moment (it lists nothing; it meets the same API server and',
            'the same two cores).',
            '',
            '| | as shipped (streaming) | paged lists only | target | |',
            '|---|---|---|---|---|',
            `| how each replica got its state | ${both((x) => x.modes.join(', '))} | streaming where the server offers it, else paged; say which | ${st.modes.every((m) => m === 'streaming' || m === 'paged') ? 'met' : '**not met**'} |`,
            `| each replica, spawn to synced, ms | ${both((x) => ms(x.syncedMs))} | | |`,
            `| each replica's RSS peak, MB | ${both((x) => ms(x.replicaPeakMB))} | | |`,
            `| the API server's added memory during the sync, MB | ${both((x) => `${fmt(x.apiAddedMB, 0)} (of ${fmt(x.apiBeforeMB, 0)} before)`)} | below the paged lists', side by side | ${memoryMet === undefined ? '**not measured**: no streaming list ran' : memoryMet ? 'met' : '**not met**'} |`,
            `| the API server's CPU during the sync, s | ${both((x) => fmt(x.apiCpuSeconds, 1))} | | |`,
            `| the alert sent to the first replica during the sync: sent after its spawn / time to containment, ms | ${both((x) => `${fmt(x.alertSentMs, 0)} / ${fmt(x.alertMs, 0)}${x.sentDuringSync && x.readDirectly ? ' (pod read from the API)' : ''}`)} | read from the API, not held until the sync ends | ${held(st) && held(pg) ? 'met' : '**not met**'} |`,
            `| the Python seed's alert, sent at the same moment: time to containment, ms | ${both((x) => fmt(x.pythonAlertMs, 0))} | | |`,
            '',
            "The first replica's API calls by then, as its own histogram has them (count, total seconds), as shipped: " +
              Object.entries(st.calls ?? {}).map(([k, v]) => `${k} ${v.count} (${fmt(v.sum, 3)} s)`).join(', ') +
              '; paged: ' + Object.entries(pg.calls ?? {}).map(([k, v]) => `${k} ${v.count} (${fmt(v.sum, 3)} s)`).join(', ') + '.',
            ...[...st.failures, ...pg.failures].map((f) => `Not contained: ${f}.`),
            '',
          ];
        })()
      : []),
    ...(results.real.view
      ? [
          '### Memory with the local view (synthetic pods on the real server)',
          '',
          '| pods in the cluster | in the view | list and watch, from start to synced, ms | RSS idle once synced, MB | RSS peak, MB | V8 heap used, MB |',
          '|---|---|---|---|---|---|',
          ...Object.entries(results.real.view).map(([n, v]) => `| ${Number(n).toLocaleString('en-US')} | ${fmt(v.pods, 0)} | ${fmt(v.syncMs, 0)} | ${fmt(v.rss)} | ${fmt(v.peak)} | ${fmt(v.heap)} |`),
          '',
          "Each pod has a node, a container id and labels, as a kubelet and a controller would leave them. The function runs with stack.yml's",
          '`NODE_OPTIONS` (its `--max-old-space-size` included) and VIEW_MAX_PODS raised for the run. Above `VIEW_MAX_PODS` (50,000 by default)',
          'the view turns itself off and every check reads the API.',
          '',
        ]
      : []),
  );
} else {
  lines.push('## Real API server', '', 'Not run: KUBEBUILDER_ASSETS was not set (`../shared/tools/unpack.sh DIR` prints it).', '');
}
lines.push(readFileSync('bench/NOTES.md', 'utf8'));
writeFileSync('BENCHMARKS.md', lines.join('\n'));
log(`wrote BENCHMARKS.md in ${fmt(results.seconds / 60, 1)} min`);
process.exit(0);
