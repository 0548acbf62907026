// The real faas-cli and of-watchdog (OPENFAAS_TOOLS, or KUBEBUILDER_ASSETS when ../shared/tools/unpack.sh
// filled it), the template's Dockerfile read as the image build would run it, and a watchdog process.
import { track } from './children.js';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './process.js';

export const TOOLS_HINT = 'watchdog suites skipped: set OPENFAAS_TOOLS (or KUBEBUILDER_ASSETS) to a directory with faas-cli (https://github.com/openfaas/faas-cli/releases) and fwatchdog (https://github.com/openfaas/of-watchdog/releases)';

export function openfaasTools(env = process.env): string | undefined {
  for (const dir of [env.OPENFAAS_TOOLS, env.KUBEBUILDER_ASSETS]) {
    if (dir && existsSync(join(dir, 'faas-cli')) && existsSync(join(dir, 'fwatchdog'))) return dir;
  }
  return undefined;
}

export function faasCli(tools: string, args: string[], cwd: string): string {
  return execFileSync(join(tools, 'faas-cli'), args, { cwd, stdio: 'pipe', timeout: 120_000, env: { ...process.env, NO_COLOR: '1' } }).toString();
}

/** This repository's tracked files (as a clone has them) in a new directory. */
export function cloneWorkingTree(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fpd-clone-'));
  const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { stdio: 'pipe' }).toString().split('\n').filter(Boolean);
  for (const f of files) if (existsSync(f)) cpSync(f, join(dir, f), { recursive: true });
  return dir;
}

interface Stage {
  name: string;
  lines: Array<{ op: string; rest: string }>;
}

/** The Dockerfile's stages, instruction by instruction (continuation lines joined, comments dropped). */
export function dockerfileStages(path: string): { args: Record<string, string>; stages: Stage[] } {
  const text = readFileSync(path, 'utf8').replace(/\\\n/g, ' ');
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [, op, rest] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
    if (!op) continue;
    if (op === 'FROM') stages.push({ name: /\sAS\s+(\S+)/i.exec(rest)?.[1] ?? String(stages.length), lines: [] });
    else if (stages.length === 0 && op === 'ARG') {
      const [k, v = ''] = rest.split('=');
      args[k] = v;
    } else stages[stages.length - 1]?.lines.push({ op, rest });
  }
  return { args, stages };
}

function envOf(rest: string): [string, string] {
  const m = /^(\w+)=(?:"(.*)"|(\S*))$/.exec(rest.trim());
  if (!m) throw new Error(`ENV line not understood: ${rest}`);
  return [m[1], m[2] ?? m[3]];
}

/**
 * Runs the build stage's RUN steps in the build context (its WORKDIR after `COPY . .`), then assembles the
 * final stage's files (its COPY --from=build) into a directory of their own. Returns that directory and the
 * final stage's ENV: what the watchdog and node see in the image.
 */
export function buildLikeDockerfile(context: string): { ship: string; env: Record<string, string> } {
  const { args, stages } = dockerfileStages(join(context, 'Dockerfile'));
  const build = stages.find((s) => s.name === 'build');
  const final = stages[stages.length - 1];
  if (!build || !final) throw new Error('the Dockerfile has no build stage or no final stage');
  const buildEnv: Record<string, string> = { ...args };
  let workdir = '/';
  for (const { op, rest } of build.lines) {
    if (op === 'ARG') {
      const [k, v = ''] = rest.split('=');
      buildEnv[k] = v;
    } else if (op === 'ENV') {
      const [k, v] = envOf(rest);
      buildEnv[k] = v;
    } else if (op === 'WORKDIR') workdir = rest.trim();
    else if (op === 'RUN') execFileSync('sh', ['-c', rest], { cwd: context, stdio: 'pipe', timeout: 300_000, env: { ...process.env, ...buildEnv, CI: 'true' } });
  }
  const ship = mkdtempSync(join(tmpdir(), 'fpd-image-'));
  const env: Record<string, string> = {};
  for (const { op, rest } of final.lines) {
    if (op === 'ENV') {
      const [k, v] = envOf(rest);
      env[k] = v;
    }
    const copy = /^--from=build\s+(?:--chown=\S+\s+)?(\S+)\s+(\S+)$/.exec(rest);
    if (op === 'COPY' && copy) {
      const from = join(context, copy[1].replace(new RegExp(`^${workdir}/?`), ''));
      mkdirSync(join(ship, copy[2]), { recursive: true });
      cpSync(from, join(ship, copy[2]), { recursive: true });
    }
  }
  return { ship, env };
}

export interface Watchdog {
  child: ChildProcess;
  url: string;
  stdout: string[];
  stderr: string[];
  exited: Promise<number | null>;
  /** The function process the watchdog forked (found in /proc). */
  functionPid: () => number | undefined;
}

/** fwatchdog in the image's directory with the image's ENV; only the ports and TMPDIR are this test's own. */
export async function startWatchdog(tools: string, ship: string, imageEnv: Record<string, string>, extra: Record<string, string> = {}, wrapper: string[] = []): Promise<Watchdog> {
  const [port, upstream] = [await freePort(), await freePort()];
  const tmp = mkdtempSync(join(tmpdir(), 'fpd-wd-'));
  const env = {
    PATH: process.env.PATH ?? '', HOME: tmp, TMPDIR: tmp, ...imageEnv,
    port: String(port), http_port: String(upstream), upstream_url: `http://127.0.0.1:${upstream}`,
    // The function behind it on loopback, without the metrics port unless asked for.
    http_host: '127.0.0.1', METRICS_PORT: '0', METRICS_HOST: '127.0.0.1', ...extra,
  };
  const [cmd, ...args] = [...wrapper, join(tools, 'fwatchdog')];
  const child = track(spawn(cmd, args, { cwd: ship, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] }));
  const stdout: string[] = [];
  const stderr: string[] = [];
  const lines = (into: string[]) => {
    let rest = '';
    return (d: Buffer) => {
      const parts = (rest + d.toString()).split('\n');
      rest = parts.pop() ?? '';
      into.push(...parts);
    };
  };
  child.stdout?.on('data', lines(stdout));
  child.stderr?.on('data', lines(stderr));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const functionPid = () => {
    for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === child.pid) return Number(p);
      } catch {
        // gone
      }
    }
    return undefined;
  };
  return { child, url: `http://127.0.0.1:${port}`, stdout, stderr, exited, functionPid };
}

export async function untilReady(w: Watchdog, ms = 20_000): Promise<number[]> {
  const seen: number[] = [];
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      const r = await fetch(`${w.url}/_/ready`);
      seen.push(r.status);
      if (r.status === 200) return seen;
    } catch {
      seen.push(0);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`not ready in ${ms} ms: ${w.stderr.join('\n')}`);
}

export function processAlive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The gateway's GET /system/logs as faas-provider serves it: NDJSON of {name, namespace, instance, timestamp,
 * text}, filtered by `since`; with follow=true the stream is held open, as the real one is.
 */
export async function startLogGateway(lines: Array<{ text: string; timestamp: Date }>, fn = 'falco-pod-delete'): Promise<{ url: string; requests: URLSearchParams[]; stop: () => Promise<void> }> {
  const { createServer } = await import('node:http');
  const requests: URLSearchParams[] = [];
  const open = new Set<import('node:http').ServerResponse>();
  const secrets = new Set<string>();
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://gateway');
    if (url.pathname === '/system/secrets') {
      // faas-netes' secrets API as faas-cli uses it: GET lists [{name, namespace}], POST creates, PUT updates.
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        if (req.method === 'GET') return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify([...secrets].map((name) => ({ name, namespace: 'openfaas-fn' }))));
        const name = (JSON.parse(body || '{}') as { name?: string }).name ?? '';
        if (req.method === 'POST' && secrets.has(name)) return res.writeHead(409).end(`secret ${name} already exists`);
        secrets.add(name);
        res.writeHead(req.method === 'POST' ? 201 : 200).end();
      });
      return;
    }
    if (url.pathname !== '/system/logs') {
      res.writeHead(404).end();
      return;
    }
    requests.push(url.searchParams);
    const since = url.searchParams.get('since');
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    for (const l of lines) {
      if (url.searchParams.get('name') !== fn || (since && l.timestamp < new Date(since))) continue;
      res.write(`${JSON.stringify({ name: fn, namespace: 'openfaas-fn', instance: `${fn}-7dc9f5fbb8-gbfk7`, timestamp: l.timestamp.toISOString(), text: l.text })}\n`);
    }
    if (url.searchParams.get('follow') === 'true') open.add(res);
    else res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as import('node:net').AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    stop: async () => {
      for (const r of open) r.end();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** The `faas-cli logs` and `scripts/audit-log.sh` commands in a markdown text: in code blocks (with continuations) and in inline code. */
export function faasCliLogsCommands(markdown: string): string[] {
  const found: string[] = [];
  let block: string[] | undefined;
  for (const line of markdown.split('\n')) {
    if (/^\s*```/.test(line)) {
      if (block) {
        const joined = block.join('\n').replace(/\\\n\s*/g, ' ');
        for (const l of joined.split('\n')) if (/^\s*(faas-cli logs|scripts\/audit-log\.sh) /.test(l)) found.push(l.trim());
        block = undefined;
      } else block = [];
    } else block?.push(line);
  }
  for (const inline of markdown.matchAll(/`((?:faas-cli logs|scripts\/audit-log\.sh) [^`]+)`/g)) found.push(inline[1].replace(/\\\|/g, '|'));
  return found;
}
