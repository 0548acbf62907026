// The function's process as a log collector may treat it: stdout closed under it, or full. On SIGTERM it
// drains and exits within its drain time whatever state its output is in, and a test run leaves no process.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { track } from './support/children.js';
// @ts-expect-error plain ESM shared with global teardown
import { leftovers } from './support/leftovers.mjs';
import { freePort } from './support/process.js';

const shell = JSON.stringify({ uuid: 'u', output: 'x', priority: 'Notice', rule: 'Terminal shell in container', time: new Date().toISOString(), output_fields: { 'container.id': 'ee97d9c4186f', 'k8s.ns.name': 'default', 'k8s.pod.name': 'kubecon' } });

beforeAll(() => {
  execFileSync('npm', ['run', '-s', 'build'], { stdio: 'ignore' });
}, 120_000);

/** The built function as the watchdog starts it, stdout and stderr on one pipe (`2>&1 | head -1`), dry-run (no cluster). */
async function start(env: Record<string, string> = {}) {
  const port = await freePort();
  const child = track(spawn('sh', ['-c', 'exec node dist/index.mjs 2>&1'], { detached: true, stdio: ['ignore', 'pipe', 'inherit'], env: { PATH: process.env.PATH ?? '', http_port: String(port), http_host: '127.0.0.1', METRICS_PORT: '0', write_timeout: '2s', AUDIT_DECLINES_PER_SECOND: '100000', ...env } }));
  const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.on('exit', (code) => resolve({ code, at: Date.now() })));
  for (let i = 0; i < 200; i++) {
    if (await fetch(`http://127.0.0.1:${port}/_/health`).then((r) => r.ok, () => false)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const post = () => fetch(`http://127.0.0.1:${port}/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: shell }).then((r) => r.status, () => 0);
  /** SIGTERM, then the ms until the process exited. */
  const stop = async () => {
    const sent = Date.now();
    child.kill('SIGTERM');
    return (await exited).at - sent;
  };
  return { child, exited, post, stop };
}

/** write_timeout (2 s, the drain time) and a margin for a slow machine. */
const DRAIN_BOUND_MS = 2000 + 2500;

/** CPU time (user + system) the process has used, in ms, from /proc. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

it('exits within its drain time on SIGTERM after its stdout was closed (a log pipe gone: `| head -1`)', async () => {
  const f = await start();
  f.child.stdout?.destroy();
  // Writes now fail with EPIPE: the audit line of an alert, then the SIGTERM lines.
  expect(await f.post()).toBe(200);
  expect(await f.stop()).toBeLessThan(DRAIN_BOUND_MS);
}, 30_000);

it('does not spin after its stdout was closed: it keeps answering, at idle CPU', async () => {
  const f = await start();
  f.child.stdout?.destroy();
  for (let i = 0; i < 20; i++) expect(await f.post()).toBe(200);
  const before = cpuMs(f.child.pid as number);
  await new Promise((r) => setTimeout(r, 1000));
  expect(cpuMs(f.child.pid as number) - before).toBeLessThan(300);
  await f.stop();
}, 30_000);

it('exits within its drain time on SIGTERM while its stdout is full (a collector that stopped reading)', async () => {
  const f = await start();
  f.child.stdout?.pause();
  // Far more than a pipe holds (64 KiB): every line past it waits at most 100 ms, then is dropped.
  const statuses = [];
  for (let i = 0; i < 200; i++) statuses.push(await f.post());
  expect(statuses.every((s) => s === 200)).toBe(true);
  expect(await f.stop()).toBeLessThan(DRAIN_BOUND_MS);
}, 60_000);

it('finds a process that a run left behind by its working directory, and none once it is gone', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fpd-leftover-'));
  const child = track(spawn('sleep', ['30'], { cwd: dir, detached: true, stdio: 'ignore' }));
  await new Promise((r) => setTimeout(r, 100));
  expect((leftovers(dir) as Array<{ pid: number }>).map((p) => p.pid)).toEqual([child.pid]);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  expect(leftovers(dir)).toEqual([]);
});
