// npm run bench:containment: time to containment on a real API server (KUBEBUILDER_ASSETS): from the alert
// sent to the pod carrying a deletionTimestamp, one alert at a time, then bursts of 50 alerts for 50 pods sent
// with 1 and with 8 requests in flight (Falcosidekick's maxconcurrentrequests). The function runs as the image
// runs it (bench/targets.mjs: the image's command, stack.yml's environment), in-cluster with the ServiceAccount's token.
// Writes its table to stdout (Markdown) and BENCHMARKS-containment.md. Bounded: 20 single alerts, 3 bursts.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { kubectl, stageServiceAccountFiles, startControlPlane } from '../test/support/control-plane.mjs';
import { adminClient, makePods, shellAlert } from './cluster.mjs';
import * as T from './targets.mjs';

const log = (...a) => console.error('[containment]', ...a);
execFileSync('npm', ['run', '-s', 'build'], { stdio: 'inherit' });
const { state, stop } = await startControlPlane();
const cleanup = [stop];
try {
  const ns = 'bench';
  kubectl(state, ['create', 'namespace', ns]);
  kubectl(state, ['create', 'serviceaccount', 'default', '-n', ns]);
  const sa = stageServiceAccountFiles(state);
  const fn = await T.start('function', undefined, { host: '127.0.0.1', port: state.port, saPrefix: sa.prefix }, { HOSTNAME: 'falco-pod-delete-bench', RECORD_EVENTS: 'true', ACTION_LIMIT: '1000' });
  cleanup.unshift(() => T.stop(fn));
  const call = adminClient(state);
  const send = (p) => fetch(fn.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: shellAlert(ns, p) }).then((r) => r.json());
  const pct = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

  log('one alert at a time (answer time: the deletion is done when the 200 arrives)');
  const single = [];
  for (const p of await makePods(call, ns, 'single', 20)) {
    const t = performance.now();
    const body = await send(p);
    if (body.outcome !== 'deleted') throw new Error(`expected deleted, got ${JSON.stringify(body)}`);
    single.push(performance.now() - t);
  }
  const rows = [['one alert at a time (20), answer = containment', `p50 ${pct(single, 0.5).toFixed(1)} ms`, `p99 ${pct(single, 0.99).toFixed(1)} ms`]];
  for (const inFlight of [1, 8, 50]) {
    log(`a burst of 50 alerts for 50 pods, ${inFlight} in flight`);
    const pods = await makePods(call, ns, `burst${inFlight}`, 50);
    const t0 = performance.now();
    const done = [];
    let next = 0;
    await Promise.all(Array.from({ length: inFlight }, async () => {
      while (next < pods.length) {
        const p = pods[next++];
        const body = await send(p);
        if (body.outcome !== 'deleted') throw new Error(`expected deleted, got ${JSON.stringify(body)}`);
        done.push(performance.now() - t0);
      }
    }));
    rows.push([`burst of 50 pods, ${inFlight} in flight: half / all contained`, `${(pct(done, 0.5) / 1000).toFixed(2)} s`, `${(Math.max(...done) / 1000).toFixed(2)} s`]);
  }
  const table = ['| real kube-apiserver 1.36, etcd on this disk | | |', '|---|---|---|', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
  console.log(table);
  writeFileSync('BENCHMARKS-containment.md', `# Time to containment on a real API server\n\nWritten by \`npm run bench:containment\` on ${new Date().toISOString().slice(0, 10)} (${process.version}). The answer is sent after the DELETE succeeded, so answer time bounds the time to the pod's deletionTimestamp.\n\n${table}\n`);
} finally {
  for (const c of cleanup) await c();
}
