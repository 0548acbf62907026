// A function process started the way the of-watchdog starts it (fprocess, http_port), for tests that need
// real processes: the template build, SIGTERM draining, several replicas.
import { type ChildProcess, spawn } from 'node:child_process';
import { type AddressInfo, createServer } from 'node:net';
import { track } from './children.js';

export interface FunctionProcess {
  child: ChildProcess;
  port: number;
  url: string;
  stdout: string[];
  stderr: string[];
  exited: Promise<number | null>;
  post: (body: unknown) => Promise<{ status: number; body: Record<string, unknown> }>;
}

/** Ports freePort handed out in this process: the kernel may hand the same free port out again at once. */
const handedOut = new Set<number>();

/**
 * A port the kernel just handed out, so that parallel test files do not collide; never one this process was
 * given before (two calls in a row could otherwise get the same port, e.g. a watchdog's and its upstream's).
 */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < 1000; tries++) {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: the kernel kept handing out ports this process already has');
}

export async function spawnFunction(args: string[], env: Record<string, string>, opts: { cwd?: string; port?: number } = {}): Promise<FunctionProcess> {
  const port = opts.port ?? (await freePort());
  // Loopback only, and no metrics port unless the test asks for one (9464 would clash with a user's npm start).
  const child = track(spawn(process.execPath, args, { cwd: opts.cwd, detached: true, env: { PATH: process.env.PATH ?? '', http_port: String(port), http_host: '127.0.0.1', METRICS_PORT: '0', METRICS_HOST: '127.0.0.1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
  const stdout: string[] = [];
  const stderr: string[] = [];
  child.stdout?.on('data', (d: Buffer) => stdout.push(...d.toString().split('\n').filter(Boolean)));
  child.stderr?.on('data', (d: Buffer) => stderr.push(...d.toString().split('\n').filter(Boolean)));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}/`;
  const post = async (body: unknown) => {
    const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Falcosidekick' }, body: JSON.stringify(body) });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${url}_/health`)).ok) return { child, port, url, stdout, stderr, exited, post };
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  child.kill('SIGKILL');
  throw new Error(`the function did not start: ${stderr.join('\n')} ${stdout.join('\n')}`);
}
