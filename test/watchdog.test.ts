// The template as users meet it: the real `faas-cli build --shrinkwrap` and `faas-cli new`, the Dockerfile's
// own steps, and the bundle behind the real of-watchdog with the image's ENV (read from the Dockerfile).
// The watchdog's metrics port (8081) is fixed, so the cases in this file run one watchdog at a time.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Admin, clusterState, inClusterEnv } from './support/cluster.js';
import { fixture, withFields } from './support/harness.js';
import { TOOLS_HINT, buildLikeDockerfile, cloneWorkingTree, faasCli, faasCliLogsCommands, openfaasTools, processAlive, startLogGateway, startWatchdog, untilReady, type Watchdog } from './support/openfaas.js';
import YAML from 'yaml';
import { allDocs } from './support/docs.js';

const TOOLS = openfaasTools();
const describeTools = TOOLS ? describe : describe.skip;
if (!TOOLS) process.stderr.write(`${TOOLS_HINT}\n`);
const itCluster = clusterState ? it : it.skip;

const post = async (w: Watchdog, body: unknown) => {
  const r = await fetch(`${w.url}/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Falcosidekick' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, text };
};
const testEvent = () => fixture('16-DERIVED-falcosidekick-forwarded-test-event.json');

describeTools('the falco-pod-delete image behind the real of-watchdog', () => {
  const tools = TOOLS as string;
  let clone: string;
  let image: { ship: string; env: Record<string, string> };
  let w: Watchdog | undefined;

  beforeAll(() => {
    clone = cloneWorkingTree();
    faasCli(tools, ['build', '--shrinkwrap', '-f', 'stack.yml'], clone);
    image = buildLikeDockerfile(join(clone, 'build', 'falco-pod-delete'));
  }, 600_000);
  afterEach(async () => {
    if (w && w.child.exitCode === null) {
      const fnPid = w.functionPid();
      w.child.kill('SIGKILL');
      if (fnPid) process.kill(fnPid, 'SIGKILL');
      await w.exited;
    }
    w = undefined;
  });
  afterAll(() => rmSync(clone, { recursive: true, force: true }));

  it('ships only the bundle, its source map and its launcher, and faas-cli put the handler over the starter', () => {
    expect(execFileSync('ls', [join(image.ship, 'dist')]).toString().split('\n').filter(Boolean)).toEqual(['app.mjs', 'app.mjs.LEGAL.txt', 'app.mjs.map', 'index.mjs', 'sbom']);
    // The launcher turns the compile cache on where Node has one, then loads the bundle.
    expect(readFileSync(join(image.ship, 'dist', 'index.mjs'), 'utf8')).toMatch(/enableCompileCache[\s\S]*await import\('\.\/app\.mjs'\)/);
    // The SBOM of the production dependencies ships beside the bundle.
    for (const part of ['template', 'function']) {
      const sbom = JSON.parse(readFileSync(join(image.ship, 'dist', 'sbom', `${part}.cdx.json`), 'utf8')) as { bomFormat: string; components: Array<{ name: string }> };
      expect(sbom.bomFormat).toBe('CycloneDX');
      expect(sbom.components.map((c) => c.name)).toContain(part === 'template' ? 'express' : '@kubernetes/client-node');
    }
    expect(readFileSync(join(clone, 'build', 'falco-pod-delete', 'function', 'handler.ts'), 'utf8')).toContain('FalcoResponse');
    expect(image.env).toMatchObject({ mode: 'http', prefix_logs: 'false', ready_path: '/_/ready' });
  });

  it('is not ready until node listens, then answers every request (no 500 at start)', async () => {
    w = await startWatchdog(tools, image.ship, image.env);
    const seen = await untilReady(w);
    // Ready only once node has said it listens.
    expect(w.stderr.some((l) => l.includes('listening on port'))).toBe(true);
    expect(seen.slice(0, -1).every((s) => s !== 200)).toBe(true);
    const r = await post(w, testEvent());
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toMatchObject({ outcome: 'skipped', code: 'test-event' });
  });

  it('passes the audit line through unprefixed: one pure JSON line per alert on stdout', async () => {
    w = await startWatchdog(tools, image.ship, image.env);
    await untilReady(w);
    await post(w, testEvent());
    await post(w, '{not json');
    await new Promise((r) => setTimeout(r, 200));
    const audits = w.stdout.filter((l) => l.includes('"audit":true'));
    expect(audits).toHaveLength(2);
    for (const l of audits) expect(l.startsWith('{')).toBe(true);
    expect(audits.map((l) => (JSON.parse(l) as { code: string }).code)).toEqual(['test-event', 'unparseable']);
  });

  it('keeps answering through the watchdog\'s healthcheck_interval after SIGTERM, then both exit', async () => {
    w = await startWatchdog(tools, image.ship, image.env);
    await untilReady(w);
    const fnPid = w.functionPid();
    w.child.kill('SIGTERM');
    const statuses: number[] = [];
    const interval = Number(/^(\d+)s$/.exec(image.env.healthcheck_interval)?.[1] ?? '0') * 1000;
    const until = Date.now() + interval - 1000;
    while (Date.now() < until) {
      statuses.push((await post(w, testEvent())).status);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(statuses.length).toBeGreaterThan(5);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(await w.exited).toBe(0);
    for (let i = 0; i < 100 && processAlive(fnPid); i++) await new Promise((r) => setTimeout(r, 100));
    expect(processAlive(fnPid)).toBe(false);
  }, 30_000);

  it('survives oversized alerts: the log stays readable and the function keeps answering', async () => {
    w = await startWatchdog(tools, image.ship, image.env);
    await untilReady(w);
    const huge = withFields(testEvent(), { 'k8s.ns.name': 'n'.repeat(100_000), 'k8s.pod.name': 'p' });
    const big = { ...fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'), output_fields: { 'k8s.ns.name': 'n'.repeat(100_000), 'k8s.pod.name': 'p' } };
    for (let i = 0; i < 80; i++) expect((await post(w, i % 2 ? big : huge)).status).toBeLessThan(500);
    const r = await post(w, testEvent());
    expect(r.status).toBe(200);
    // Declined and rejected lines are bounded (AUDIT_DECLINES_PER_SECOND): the rest arrive as a summary within a second.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(w.stderr.join('\n')).not.toMatch(/token too long/);
    const audits = w.stdout.filter((l) => l.includes('"audit":true'));
    const parsed = audits.map((l) => JSON.parse(l) as { suppressed?: number });
    expect(parsed.reduce((n, l) => n + (l.suppressed ?? 1), 0)).toBe(81);
    expect(Math.max(...audits.map((l) => l.length))).toBeLessThan(4096);
  }, 60_000);

  it('serves as an unprivileged user from a read-only directory, with only a private TMPDIR writable', async () => {
    const readOnly = mkdtempSync(join(tmpdir(), 'fpd-ro-'));
    execFileSync('cp', ['-r', join(image.ship, 'dist'), readOnly]);
    execFileSync('chmod', ['-R', 'a+rX,a-w', readOnly]);
    const tmp = mkdtempSync(join(tmpdir(), 'fpd-tmp-'));
    execFileSync('chown', ['65534:65534', tmp]);
    // The node running the tests may live where nobody cannot read (npx's cache under /root): a copy on PATH.
    const bin = mkdtempSync(join(tmpdir(), 'fpd-bin-'));
    execFileSync('cp', [process.execPath, join(bin, 'node')]);
    execFileSync('chmod', ['755', bin, join(bin, 'node')]);
    // setpriv drops to nobody before exec: the watchdog and node run with no capabilities and no new privileges.
    w = await startWatchdog(tools, readOnly, image.env, { TMPDIR: tmp, HOME: tmp, PATH: `${bin}:/usr/bin:/bin` }, ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--no-new-privs', '--inh-caps=-all', '--bounding-set=-all']);
    await untilReady(w);
    const r = await post(w, testEvent());
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toMatchObject({ code: 'test-event' });
    expect(readFileSync(`/proc/${w.functionPid()}/status`, 'utf8')).toMatch(/^Uid:\s+65534\s/m);
    expect(() => execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'touch', join(readOnly, 'dist', 'x')], { stdio: 'pipe' })).toThrow();
  });

  itCluster("deletes a pod on the real API server, through the watchdog, in-cluster, with stack.yml's environment over the image's", async () => {
    const admin = new Admin();
    const ns = await admin.namespace('apps');
    const pod = await admin.pod(ns, 'web-0');
    // As faas-cli up deploys it: stack.yml's environment (NODE_OPTIONS, and fprocess when it sets one) on the container.
    const deployed = (YAML.parse(readFileSync('stack.yml', 'utf8')) as { functions: Record<string, { environment: Record<string, unknown> }> }).functions['falco-pod-delete'].environment;
    const stackEnv = Object.fromEntries(Object.entries(deployed).map(([k, v]) => [k, String(v)]));
    w = await startWatchdog(tools, image.ship, { ...image.env, ...stackEnv }, inClusterEnv({ RECORD_EVENTS: 'false' }).env);
    await untilReady(w);
    expect(readFileSync(`/proc/${w.functionPid()}/cmdline`, 'utf8').split('\0').filter(Boolean).slice(1)).toEqual((stackEnv.fprocess ?? image.env.fprocess).split(' ').slice(1));
    expect(readFileSync(`/proc/${w.functionPid()}/environ`, 'utf8').split('\0')).toContain(`NODE_OPTIONS=${stackEnv.NODE_OPTIONS}`);
    const alert = withFields(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'), { 'k8s.ns.name': ns, 'k8s.pod.name': 'web-0', 'container.id': pod.containerId.slice(0, 12) });
    const r = await post(w, alert);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toMatchObject({ outcome: 'deleted', pod: 'web-0', namespace: ns });
    expect(await admin.contained(ns, 'web-0')).toBe(true);
  });
  itCluster('the README\'s faas-cli logs commands read the pod log with the real faas-cli', async () => {
    const admin = new Admin();
    const ns = await admin.namespace('apps');
    const pod = await admin.pod(ns, 'web-0');
    w = await startWatchdog(tools, image.ship, image.env, inClusterEnv({ RECORD_EVENTS: 'false' }).env);
    await untilReady(w);
    const shell = withFields(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'), { 'k8s.ns.name': ns, 'k8s.pod.name': 'web-0', 'container.id': pod.containerId.slice(0, 12) });
    expect(JSON.parse((await post(w, shell)).text)).toMatchObject({ outcome: 'deleted' });
    await post(w, testEvent());
    await post(w, '{not json');
    await new Promise((r) => setTimeout(r, 300));
    // The pod log: the watchdog's own lines (stderr) and the function's (stdout), an hour apart at most.
    const now = Date.now();
    const podLog = [...w.stderr, ...w.stdout].map((text, i) => ({ text, timestamp: new Date(now - 60_000 + i) }));
    podLog.push({ text: 'an old line from two hours ago', timestamp: new Date(now - 7200_000) });
    const gateway = await startLogGateway(podLog);
    // faas-cli reads the gateway from stack.yml first: a copy pointing at the stand-in.
    const cwd = mkdtempSync(join(tmpdir(), 'fpd-logs-'));
    const stack = readFileSync('stack.yml', 'utf8');
    const configured = (YAML.parse(stack) as { provider: { gateway: string } }).provider.gateway;
    writeFileSync(join(cwd, 'stack.yml'), stack.replace(`gateway: ${configured}`, `gateway: ${gateway.url}`));
    mkdirSync(join(cwd, 'scripts'));
    copyFileSync('scripts/audit-log.sh', join(cwd, 'scripts', 'audit-log.sh'));
    try {
      const commands = faasCliLogsCommands(allDocs());
      expect(commands.length).toBeGreaterThanOrEqual(4);
      for (const command of commands) {
        // Asynchronously: the gateway stand-in answers from this process.
        const run = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
          execFile('bash', ['-o', 'pipefail', '-c', command], { cwd, timeout: 20_000, env: { ...process.env, PATH: `${tools}:${process.env.PATH ?? ''}`, HOME: cwd } }, (e, out, err) =>
            resolve({ code: e ? ((e as { code?: number }).code ?? null) : 0, out, err }));
        });
        expect([command, run.code, run.err]).toEqual([command, 0, '']);
        const out = run.out;
        // `| sort | uniq -c` puts a count before each line.
        const rows = out.split('\n').filter(Boolean).map((l) => JSON.parse(command.includes('uniq -c') ? l.replace(/^\s*\d+ /, '') : l) as Record<string, unknown>);
        // This log holds a real deletion and declines, and no dry run.
        expect([command, rows.length > 0]).toEqual([command, !command.includes('"dry-run"')]);
        if (command.includes('"deleted"')) expect(rows).toEqual([expect.objectContaining({ namespace: ns, pod: 'web-0' })]);
        if (command.includes('"skip"')) expect(rows).toEqual([expect.objectContaining({ code: 'test-event' })]);
      }
      expect(gateway.requests.every((q) => q.get('follow') === 'false')).toBe(true);
    } finally {
      await gateway.stop();
    }
  }, 120_000);
});

describeTools('GitOps: `faas-cli generate -f stack.yml`, as the README shows it', () => {
  it('writes the OpenFaaS Function resource with everything stack.yml sets', () => {
    const clone = cloneWorkingTree();
    try {
      expect(readFileSync('README.md', 'utf8')).toContain('faas-cli generate -f stack.yml');
      const docs = YAML.parseAllDocuments(faasCli(TOOLS as string, ['generate', '-f', 'stack.yml'], clone)).map((d) => d.toJS() as Record<string, any>);
      const stack = (YAML.parse(readFileSync('stack.yml', 'utf8')) as { functions: Record<string, Record<string, any>> }).functions['falco-pod-delete'];
      expect(docs).toHaveLength(1);
      const fn = docs[0];
      expect(fn).toMatchObject({ apiVersion: 'openfaas.com/v1', kind: 'Function', metadata: { name: 'falco-pod-delete', namespace: 'openfaas-fn' }, spec: { name: 'falco-pod-delete', image: stack.image, readOnlyRootFilesystem: true } });
      // Every variable of stack.yml's environment, with its value as a string.
      for (const [k, v] of Object.entries(stack.environment as Record<string, unknown>)) expect([k, fn.spec.environment[k]]).toEqual([k, String(v ?? '')]);
      expect(fn.spec.annotations).toMatchObject(stack.annotations);
      expect(fn.spec.labels).toMatchObject(stack.labels);
      expect(fn.spec.limits.memory).toBe(stack.limits.memory);
    } finally {
      rmSync(clone, { recursive: true, force: true });
    }
  });
});

describeTools('the README\'s audit command when faas-cli cannot reach the gateway', () => {
  it('fails with faas-cli\'s message and a non-zero status, where the bare jq pipeline printed nothing and exited 0', () => {
    const tools = TOOLS as string;
    const env = { ...process.env, PATH: `${tools}:${process.env.PATH ?? ''}`, OPENFAAS_URL: 'http://127.0.0.1:1', HOME: mkdtempSync(join(tmpdir(), 'fpd-home-')) };
    const bare = spawnSync('bash', ['-c', 'faas-cli logs falco-pod-delete --tail=false --since 1h --time-format "" | jq -cR \'fromjson? | select(.audit)\''], { env, encoding: 'utf8' });
    expect([bare.status, bare.stdout]).toEqual([0, '']);
    const run = spawnSync('bash', ['-o', 'pipefail', '-c', 'scripts/audit-log.sh --since 1h | jq -c .'], { env, encoding: 'utf8' });
    expect(run.status).not.toBe(0);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/faas-cli logs: Cannot connect to OpenFaaS on URL: http:\/\/127\.0\.0\.1:1/);
  });
});

describeTools('`faas-cli new --lang node18-ts-middleware` in a clone of this repository', () => {
  const tools = TOOLS as string;
  let clone: string;
  let w: Watchdog | undefined;

  beforeAll(() => {
    clone = cloneWorkingTree();
    const git = (...args: string[]) => execFileSync('git', ['-c', 'user.email=t@example.com', '-c', 'user.name=t', ...args], { cwd: clone, stdio: 'pipe' });
    git('init', '-q');
    git('add', '-A');
    git('commit', '-qm', 'clone');
    faasCli(tools, ['new', '--lang', 'node18-ts-middleware', 'starter-fn', '--append', 'stack.yml'], clone);
  }, 120_000);
  afterAll(async () => {
    if (w && w.child.exitCode === null) {
      w.child.kill('SIGKILL');
      await w.exited;
    }
    rmSync(clone, { recursive: true, force: true });
  });

  const ignored = (path: string) => {
    try {
      execFileSync('git', ['check-ignore', '-q', path], { cwd: clone, stdio: 'pipe' });
      return true;
    } catch {
      return false;
    }
  };

  it('leaves the template tracked and ignores what faas-cli writes', () => {
    expect(existsSync(join(clone, 'starter-fn', 'handler.ts'))).toBe(true);
    expect(ignored('template/node18-ts-middleware/new-file.ts')).toBe(false);
    expect(ignored('build/starter-fn/Dockerfile')).toBe(true);
    expect(ignored('.secrets/x')).toBe(true);
    // What a user's own steps write: `faas-cli template pull ./`'s meta.json, a kubeconfig with a token.
    expect(ignored('template/node18-ts-middleware/meta.json')).toBe(true);
    expect(ignored('fpd.kubeconfig')).toBe(true);
    expect(readFileSync(join(clone, '.gitignore'), 'utf8')).toBe(readFileSync('.gitignore', 'utf8'));
  });

  it('builds the starter function and serves it behind the watchdog', async () => {
    faasCli(tools, ['build', '--shrinkwrap', '-f', 'stack.yml', '--filter', 'starter-fn'], clone);
    const image = buildLikeDockerfile(join(clone, 'build', 'starter-fn'));
    w = await startWatchdog(tools, image.ship, image.env);
    await untilReady(w);
    const r = await fetch(`${w.url}/anything`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"hello":"world"}' });
    expect(await r.json()).toEqual({ received: { hello: 'world' }, path: '/anything' });
  }, 600_000);
});
