// A real Kubernetes control plane for tests and benchmarks: etcd and kube-apiserver from KUBEBUILDER_ASSETS
// (envtest's directory: ../shared/tools/unpack.sh, or `setup-envtest use -p path`), on free loopback ports,
// with its own PKI, an admin kubeconfig, the project's rbac.yaml applied, and the ServiceAccount's token
// issued through the TokenRequest API. `stop()` ends both processes and removes the directory.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const SKIP_HINT = 'real-server suites skipped: set KUBEBUILDER_ASSETS to a directory with kube-apiserver, etcd and kubectl (envtest\'s: go install sigs.k8s.io/controller-runtime/tools/setup-envtest@latest && setup-envtest use -p path, with kubectl from https://dl.k8s.io beside them)';

/** The assets directory when it holds what a control plane needs, else undefined. */
export function assetsDir(env = process.env) {
  const dir = env.KUBEBUILDER_ASSETS;
  if (!dir) return undefined;
  for (const bin of ['kube-apiserver', 'etcd', 'kubectl']) {
    if (!existsSync(join(dir, bin))) throw new Error(`KUBEBUILDER_ASSETS=${dir} has no ${bin}`);
  }
  return resolve(dir);
}

export async function freePort() {
  const server = createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** CA, serving certificate (the in-cluster names and 127.0.0.1), admin client certificate, ServiceAccount key pair. */
function makePki(dir) {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=envtest-ca', '-keyout', 'ca.key', '-out', 'ca.crt'], dir);
  writeFileSync(join(dir, 'serving.ext'), [
    'subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1',
    'extendedKeyUsage=serverAuth',
  ].join('\n'));
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=kube-apiserver', '-keyout', 'serving.key', '-out', 'serving.csr'], dir);
  openssl(['x509', '-req', '-in', 'serving.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'serving.ext', '-out', 'serving.crt'], dir);
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/O=system:masters/CN=envtest-admin', '-keyout', 'admin.key', '-out', 'admin.csr'], dir);
  openssl(['x509', '-req', '-in', 'admin.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'client.ext', '-out', 'admin.crt'], dir);
  openssl(['genrsa', '-out', 'sa.key', '2048'], dir);
  openssl(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
}

function adminKubeconfig(dir, server) {
  const b64 = (f) => readFileSync(join(dir, f)).toString('base64');
  return [
    'apiVersion: v1', 'kind: Config', 'current-context: envtest',
    'clusters:', '- name: envtest', '  cluster:', `    server: ${server}`, `    certificate-authority-data: ${b64('ca.crt')}`,
    'users:', '- name: admin', '  user:', `    client-certificate-data: ${b64('admin.crt')}`, `    client-key-data: ${b64('admin.key')}`,
    'contexts:', '- name: envtest', '  context:', '    cluster: envtest', '    user: admin', '',
  ].join('\n');
}

function get(url, dir) {
  return new Promise((resolveGet) => {
    const req = request(url, { ca: readFileSync(join(dir, 'ca.crt')), cert: readFileSync(join(dir, 'admin.crt')), key: readFileSync(join(dir, 'admin.key')), timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolveGet({ status: res.statusCode, body }));
    });
    req.on('error', () => resolveGet({ status: 0, body: '' }));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

async function waitFor(what, check, child, logs, ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`${what} exited (${child.exitCode}): ${logs.join('').slice(-2000)}`);
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} not ready after ${ms} ms: ${logs.join('').slice(-2000)}`);
}

function startProcess(bin, args) {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs = [];
  const keep = (d) => {
    logs.push(d.toString());
    if (logs.length > 200) logs.shift();
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  return { child, logs };
}

export function kubectl(state, args, input) {
  return execFileSync(join(state.assets, 'kubectl'), ['--kubeconfig', state.adminKubeconfig, ...args], { input, stdio: 'pipe', timeout: 60_000 }).toString();
}

/** Starts etcd and kube-apiserver, applies rbac.yaml and issues the ServiceAccount's token. */
export async function startControlPlane({ assets = assetsDir(), rbac = resolve('rbac.yaml'), apiArgs = [] } = {}) {
  if (!assets) throw new Error(SKIP_HINT);
  const dir = mkdtempSync(join(tmpdir(), 'fpd-envtest-'));
  const processes = [];
  const stop = async () => {
    for (const p of processes) if (p.child.exitCode === null) p.child.kill('SIGTERM');
    await Promise.all(processes.map((p) => (p.child.exitCode !== null ? undefined : new Promise((r) => {
      const t = setTimeout(() => p.child.kill('SIGKILL'), 5000);
      p.child.once('exit', () => (clearTimeout(t), r()));
    }))));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    makePki(dir);
    const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const etcd = startProcess(join(assets, 'etcd'), [
      '--data-dir', join(dir, 'etcd'), '--name', 'default',
      '--listen-client-urls', `http://127.0.0.1:${etcdPort}`, '--advertise-client-urls', `http://127.0.0.1:${etcdPort}`,
      '--listen-peer-urls', `http://127.0.0.1:${peerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-cluster', `default=http://127.0.0.1:${peerPort}`, '--unsafe-no-fsync',
    ]);
    processes.push(etcd);
    await waitFor('etcd', async () => {
      try {
        return /"health":"true"/.test(await (await fetch(`http://127.0.0.1:${etcdPort}/health`)).text());
      } catch {
        return false;
      }
    }, etcd.child, etcd.logs, 30_000);
    const issuer = 'https://kubernetes.default.svc.cluster.local';
    const api = startProcess(join(assets, 'kube-apiserver'), [
      '--etcd-servers', `http://127.0.0.1:${etcdPort}`, '--bind-address', '127.0.0.1', '--secure-port', String(apiPort),
      '--advertise-address', '127.0.0.1', '--endpoint-reconciler-type', 'none',
      '--tls-cert-file', join(dir, 'serving.crt'), '--tls-private-key-file', join(dir, 'serving.key'), '--client-ca-file', join(dir, 'ca.crt'),
      '--authorization-mode', 'Node,RBAC', '--service-cluster-ip-range', '10.96.0.0/12',
      '--service-account-issuer', issuer, '--api-audiences', issuer,
      '--service-account-key-file', join(dir, 'sa.pub'), '--service-account-signing-key-file', join(dir, 'sa.key'),
      ...apiArgs,
    ]);
    processes.push(api);
    const server = `https://127.0.0.1:${apiPort}`;
    await waitFor('kube-apiserver', async () => (await get(`${server}/readyz`, dir)).body === 'ok', api.child, api.logs, 90_000);
    const state = {
      dir, assets, server, port: apiPort, caPath: join(dir, 'ca.crt'), adminKubeconfig: join(dir, 'admin.kubeconfig'),
      pids: processes.map((p) => p.child.pid), rbac, token: '', namespace: 'openfaas-fn', serviceAccount: 'falco-pod-delete',
    };
    writeFileSync(state.adminKubeconfig, adminKubeconfig(dir, server));
    kubectl(state, ['create', 'namespace', state.namespace]);
    // Without a controller-manager no RBAC bootstrap waits: retry until the server's own roles are in place.
    for (let i = 0; ; i++) {
      try {
        kubectl(state, ['apply', '-f', rbac]);
        break;
      } catch (e) {
        if (i > 20) throw e;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    state.token = kubectl(state, ['create', 'token', state.serviceAccount, '-n', state.namespace, '--duration', '24h']).trim();
    return { state, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * The server's own count of requests: each apiserver_request_total series of its GET /metrics (admin
 * credentials), as { labels, value }.
 */
export async function apiRequestTotals(state) {
  const text = await new Promise((done, fail) => {
    const req = request(`${state.server}/metrics`, { ca: readFileSync(state.caPath), cert: readFileSync(join(state.dir, 'admin.crt')), key: readFileSync(join(state.dir, 'admin.key')) }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => done(body));
    });
    req.on('error', fail);
    req.end();
  });
  const series = [];
  for (const line of text.split('\n')) {
    const m = /^apiserver_request_total\{(.*)\} (\S+)$/.exec(line);
    if (m) series.push({ labels: Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]])), value: Number(m[2]) });
  }
  return series;
}

/** Files a pod would have: the token, the cluster CA and the namespace under PREFIX/var/run/secrets/... */
export function stageServiceAccountFiles(state, token = state.token, namespace = state.namespace) {
  const prefix = mkdtempSync(join(tmpdir(), 'fpd-sa-'));
  const sa = join(prefix, 'var/run/secrets/kubernetes.io/serviceaccount');
  mkdirSync(sa, { recursive: true });
  writeFileSync(join(sa, 'token'), token);
  writeFileSync(join(sa, 'ca.crt'), readFileSync(state.caPath));
  writeFileSync(join(sa, 'namespace'), namespace);
  return { prefix, tokenPath: join(sa, 'token') };
}
