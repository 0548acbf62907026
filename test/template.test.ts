// The template as faas-cli uses it: assemble the build context like `faas-cli build --shrinkwrap`
// (template files + the handler as function/), run the Dockerfile's install/test/build steps, start the
// bundle the way the of-watchdog does (fprocess, http_port), and send it an alert.
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { FakeApiServer, inClusterEnv, stageServiceAccount } from './support/apiserver.js';
import { fixture } from './support/harness.js';
import { type FunctionProcess, freePort, spawnFunction } from './support/process.js';

const TEMPLATE = 'template/node18-ts-middleware';
const NPM = ['--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'];

function shrinkwrap(handler: string | undefined): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'fpd-build-')), 'falco-pod-delete');
  cpSync(TEMPLATE, dir, { recursive: true, filter: (src) => !src.includes('node_modules') && !src.endsWith('/dist') });
  // faas-cli copies the handler over function/ without deleting the starter's files.
  if (handler) cpSync(handler, join(dir, 'function'), { recursive: true, filter: (src) => !src.includes('node_modules') });
  return dir;
}

function dockerfileSteps(dir: string): void {
  const run = (args: string[], cwd: string) => execFileSync('npm', args, { cwd, stdio: 'pipe', timeout: 240_000, env: { ...process.env, CI: 'true' } });
  run(['ci', ...NPM], dir);
  run(['ci', ...NPM], join(dir, 'function'));
  run(['run', '--if-present', 'test'], join(dir, 'function'));
  run(['run', 'build'], dir);
}

function fprocess(dir: string): string[] {
  const t = YAML.parse(readFileSync(join(dir, 'template.yml'), 'utf8')) as { fprocess: string };
  return t.fprocess.split(' ');
}

function startLikeWatchdog(dir: string, env: Record<string, string>, port: number): Promise<FunctionProcess> {
  const [cmd, ...args] = fprocess(dir);
  if (cmd !== 'node') throw new Error(`fprocess runs ${cmd}, not node`);
  return spawnFunction(args, env, { cwd: dir, port });
}


describe('the node18-ts-middleware template with the falco-pod-delete handler', () => {
  let api: FakeApiServer;
  let dir: string;

  beforeAll(() => {
    dir = shrinkwrap('falco-pod-delete');
    dockerfileSteps(dir);
  }, 600_000);

  beforeEach(async () => {
    api = await new FakeApiServer('watchdog-token').start();
  });
  afterEach(async () => {
    await api.stop();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('builds one bundle with a source map, and the starter handler does not linger beside the real one', () => {
    const files = execFileSync('ls', [join(dir, 'dist')]).toString().split('\n');
    expect(files).toEqual(expect.arrayContaining(['index.mjs', 'index.mjs.map']));
    expect(readFileSync(join(dir, 'function', 'handler.ts'), 'utf8')).toContain('FalcoResponse');
  });

  it('deletes the pod an alert names, writes the audit line to stdout, and exits 0 on SIGTERM', async () => {
    const pod = api.addPod({ namespace: 'default', name: 'kubecon', containerIds: ['ee97d9c4186f' + '0'.repeat(52)] });
    const p = await freePort();
    const fn = await startLikeWatchdog(dir, inClusterEnv(api, stageServiceAccount('watchdog-token').prefix), p);
    try {
      const r = await fetch(`http://127.0.0.1:${p}/`, {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Falcosidekick' },
        body: JSON.stringify(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json')),
      });
      expect(r.status).toBe(200);
      expect(await r.json()).toMatchObject({ outcome: 'deleted', pod: 'kubecon' });
      expect(api.calls('DELETE')).toEqual([expect.objectContaining({ path: '/api/v1/namespaces/default/pods/kubecon', authorization: 'Bearer watchdog-token', body: expect.objectContaining({ preconditions: { uid: pod.metadata.uid } }) })]);
    } finally {
      fn.child.kill('SIGTERM');
    }
    expect(await fn.exited).toBe(0);
    const audits = fn.stdout.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.audit === true);
    expect(audits).toEqual([expect.objectContaining({ outcome: 'deleted', pod: 'kubecon', namespace: 'default', rule: 'Terminal shell in container' })]);
  });

  it('starts in dry-run and says so loudly when no cluster configuration is found', async () => {
    const p = await freePort();
    const fn = await startLikeWatchdog(dir, {}, p);
    fn.child.kill('SIGTERM');
    expect(await fn.exited).toBe(0);
    expect(fn.stdout.join('\n')).toMatch(/"level":"warn".*DRY-RUN: no cluster configuration found/);
  });

  it('refuses to start on an invalid setting, naming the variable', async () => {
    const [cmd, ...args] = fprocess(dir);
    const child = spawn(cmd === 'node' ? process.execPath : cmd, args, { cwd: dir, env: { PATH: process.env.PATH ?? '', http_port: String(await freePort()), ACTION_LIMIT: 'lots' } });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    expect(err).toMatch(/invalid configuration: ACTION_LIMIT must be a whole number/);
  });
});

describe('the template as `faas-cli new --lang node18-ts-middleware` gives it', () => {
  it('builds and serves the starter handler', async () => {
    const dir = shrinkwrap(undefined);
    try {
      dockerfileSteps(dir);
      const p = await freePort();
      const fn = await startLikeWatchdog(dir, {}, p);
      const r = await fetch(`http://127.0.0.1:${p}/anything`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"hello":"world"}' });
      expect(await r.json()).toEqual({ received: { hello: 'world' }, path: '/anything' });
      fn.child.kill('SIGTERM');
      expect(await fn.exited).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);
});
