// What the benchmark runs side by side: the function as the image runs it (the Dockerfile's fprocess with
// stack.yml's environment), the two peers from ../shared/peers when they can run here, a trivial server (the
// load generator's ceiling), and `node -e 0` (Node's own start). Every target starts in-cluster: the
// ServiceAccount's token and CA under the standard path (the peers read only that path, so they run in a
// private mount namespace where /run/secrets/kubernetes.io/serviceaccount is the staged directory).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { freePort } from '../test/support/control-plane.mjs';

export const SHARED = resolve(process.env.FPD_SHARED ?? '../shared');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The image's command (stack.yml's fprocess, else the Dockerfile's) and stack.yml's environment for the function. */
export function functionCommand() {
  const dockerfile = readFileSync('template/node18-ts-middleware/Dockerfile', 'utf8');
  const stack = parse(readFileSync('stack.yml', 'utf8'));
  const { fprocess: own, ...env } = Object.fromEntries(Object.entries(stack.functions['falco-pod-delete'].environment).map(([k, v]) => [k, String(v)]));
  // stack.yml's fprocess replaces the image's, as the watchdog reads it from the environment.
  const fprocess = (own ?? /^ENV fprocess="([^"]+)"/m.exec(dockerfile)[1]).split(' ');
  const dockerEnv = Object.fromEntries([...dockerfile.matchAll(/^ENV (\w+)="([^"]*)"/gm)].map((m) => [m[1], m[2]]));
  // BENCH_NODE_FLAGS: extra node flags for a profile (node refuses --cpu-prof in NODE_OPTIONS).
  const flags = process.env.BENCH_NODE_FLAGS ? process.env.BENCH_NODE_FLAGS.split(' ') : [];
  return { command: fprocess[0] === 'node' ? process.execPath : fprocess[0], args: [...flags, ...fprocess.slice(1)], env: { NODE_ENV: dockerEnv.NODE_ENV ?? 'production', ...env } };
}

/** Which peers can run here, and for those that cannot, why. */
export function peers() {
  const found = {};
  const root = process.getuid?.() === 0 && spawnSync('unshare', ['-m', '--propagation', 'private', 'true']).status === 0;
  const needRoot = 'needs root and unshare(1): the peer reads its ServiceAccount only from /var/run/secrets/kubernetes.io/serviceaccount';
  const xz = join(SHARED, 'peers/go-openfaas-seed.xz');
  if (!existsSync(xz)) found.go = { missing: `${xz} not found (set FPD_SHARED to the shared folder)` };
  else if (!root) found.go = { missing: needRoot };
  else {
    mkdirSync('dist/bench', { recursive: true });
    const bin = resolve('dist/bench/go-openfaas-seed');
    if (!existsSync(bin)) execFileSync('sh', ['-c', `xz -dc "${xz}" > "${bin}" && chmod +x "${bin}"`]);
    found.go = { command: [bin], env: (port) => ({ PORT: String(port) }) };
  }
  const py = join(SHARED, 'peers/python-kubeless-seed/kubeless_server.py');
  if (!existsSync(py)) found.python = { missing: `${py} not found (set FPD_SHARED to the shared folder)` };
  else if (spawnSync('/usr/bin/python3', ['-c', 'import kubernetes']).status !== 0) found.python = { missing: "Debian's python3-kubernetes is not installed (apt-get install -y python3-kubernetes)" };
  else if (!root) found.python = { missing: needRoot };
  else found.python = { command: ['/usr/bin/python3', '-u', py], env: (port) => ({ PORT: String(port), MOD_NAME: 'delete-pod', FUNC_HANDLER: 'delete_pod' }) };
  return found;
}

const running = new Set();
process.on('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});
/**
 * Starts a target and waits for its first answer (any HTTP status) to a GET of its health path, polling every
 * millisecond. `cluster`: { host, port, saPrefix } with saPrefix/var/run/secrets/kubernetes.io/serviceaccount.
 * nodeFlags: node flags in front of the function's command; port: the port to listen on (default a free one);
 * node: the node binary for the function (default this one's).
 * `spawnedAt`: the wall-clock time of the spawn (ms since the epoch), comparable with another process's.
 */
export async function start(name, spec, cluster, extraEnv = {}, nodeFlags = [], { port = undefined, node = undefined } = {}) {
  port ??= await freePort();
  const base = { PATH: process.env.PATH, HOME: process.env.HOME ?? '/tmp', KUBERNETES_SERVICE_HOST: cluster.host, KUBERNETES_SERVICE_PORT: String(cluster.port) };
  let command, args, env, health;
  if (name === 'function') {
    const fn = functionCommand();
    [command, args] = [node ?? fn.command, [...nodeFlags, ...fn.args]];
    env = { ...base, ...fn.env, http_port: String(port), METRICS_PORT: String(await freePort()), SERVICEACCOUNT_PATH_PREFIX: cluster.saPrefix, HOSTNAME: `falco-pod-delete-bench-${port}`, ...extraEnv };
    health = '/_/health';
  } else if (name === 'trivial' || name === 'express') {
    const script = name === 'trivial' ? 'bench/trivial.mjs' : 'bench/express-floor.mjs';
    [command, args, env, health] = [process.execPath, [script], { ...base, NODE_OPTIONS: functionCommand().env.NODE_OPTIONS ?? '', PORT: String(port) }, '/'];
  } else {
    const sa = join(cluster.saPrefix, 'var/run/secrets/kubernetes.io/serviceaccount');
    const mountAndRun = 'mount -t tmpfs tmpfs /run && mkdir -p /run/secrets/kubernetes.io && ln -s "$0" /run/secrets/kubernetes.io/serviceaccount && exec "$@"';
    [command, args] = ['unshare', ['-m', '--propagation', 'private', '--', 'sh', '-c', mountAndRun, sa, ...spec.command]];
    env = { ...base, ...spec.env(port), ...extraEnv };
    health = name === 'python' ? '/healthz' : '/_/health';
  }
  const t0 = performance.now();
  const spawnedAt = performance.timeOrigin + t0;
  const child = spawn(command, args, { env, stdio: ['ignore', process.env.BENCH_STDOUT ? 'inherit' : 'ignore', process.env.BENCH_VERBOSE ? 'inherit' : 'ignore'] });
  running.add(child);
  const exited = new Promise((r) => child.once('exit', () => (running.delete(child), r())));
  // A TCP connect every millisecond until the port listens (cheap, so that the poll does not slow the start it
  // measures on a small machine), then the first HTTP answer.
  for (let i = 0; i < 20_000 && child.exitCode === null; i++) {
    const listening = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (!listening) {
      await sleep(1);
      continue;
    }
    const answered = await new Promise((resolve) => {
      http.get(`http://127.0.0.1:${port}${health}`, (res) => (res.resume(), resolve(true))).on('error', () => resolve(false));
    });
    if (answered) return { name, child, pid: child.pid, url: `http://127.0.0.1:${port}/`, coldMs: performance.now() - t0, spawnedAt, exited, metricsPort: env.METRICS_PORT ? Number(env.METRICS_PORT) : undefined };
  }
  child.kill('SIGKILL');
  throw new Error(`${name} did not answer on port ${port}`);
}

/** Stopped as Kubernetes stops a pod: SIGTERM, then SIGKILL after a grace of 3 s (the function gives its budget back). */
export async function stop(t) {
  if (t.child.exitCode === null) t.child.kill('SIGTERM');
  const killed = setTimeout(() => t.child.exitCode === null && t.child.kill('SIGKILL'), 3000);
  await t.exited;
  clearTimeout(killed);
}

/** VmRSS or VmHWM of a process, in MB. */
export function rss(pid, field = 'VmRSS') {
  return Number(/(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(field)))[1]) / 1024;
}

/** utime + stime of a process, in seconds (what its process_cpu_seconds_total reads). */
export function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Time for `node -e 0`, spawn to exit. */
export function bareNode(node = process.execPath) {
  const t0 = performance.now();
  execFileSync(node, ['-e', '0']);
  return performance.now() - t0;
}

/** A gauge of the function's own /metrics (undefined when absent or unreachable). */
export async function gauge(t, name) {
  if (!t.metricsPort) return undefined;
  try {
    const text = await (await fetch(`http://127.0.0.1:${t.metricsPort}/metrics`)).text();
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Waits until the function's local view is synced (its gauge says 1, read every `everyMs`), at most `ms`. */
export async function viewSynced(t, ms = 120_000, everyMs = 100) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(everyMs)) if ((await gauge(t, 'falco_pod_delete_view_synced')) === 1) return true;
  return false;
}

/** The node binary of each Node line in `majors` that npx can give (from its cache or the registry); this one's for its own. */
export function nodeLines(majors) {
  const found = {};
  for (const v of majors) {
    if (Number(process.versions.node.split('.')[0]) === v) {
      found[v] = process.execPath;
      continue;
    }
    try {
      found[v] = execFileSync('npx', ['-y', '-p', `node@${v}`, '--', 'sh', '-c', 'command -v node'], { timeout: 180_000, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    } catch {
      // not available here: the row says so
    }
  }
  return found;
}
