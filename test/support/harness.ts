// Runs the real template server with the real handler pipeline on a loopback port, capturing audit lines.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../falco-pod-delete/src/audit.js';
import { FakeApiServer, inClusterEnv, stageServiceAccount } from './apiserver.js';
import { FalcoResponse } from '../../falco-pod-delete/src/core.js';
import type { Seams } from '../../falco-pod-delete/src/parts.js';
import { httpFunction } from '../../falco-pod-delete/src/express.js';
import { type Running, startServer } from '../../template/node18-ts-middleware/server.js';

export type LogLine = Record<string, unknown>;

export interface RunningFunction {
  url: string;
  lines: LogLine[];
  audits: () => LogLine[];
  fn: FalcoResponse;
  running: Running;
  post: (body: unknown, headers?: Record<string, string>) => Promise<{ status: number; body: Record<string, unknown>; headers: Headers }>;
  stop: () => Promise<void>;
}

export function captureLogger(lines: LogLine[], level = 'info') {
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as LogLine);
      cb();
    },
  });
  return createLogger(level, sink as unknown as Parameters<typeof createLogger>[1]);
}

export async function startFunction(env: Record<string, string | undefined>, seams?: Seams): Promise<RunningFunction> {
  const lines: LogLine[] = [];
  const fn = FalcoResponse.fromEnv(env, captureLogger(lines), seams);
  const running = await startServer(httpFunction(fn, { metricsPort: env.METRICS_PORT ? Number(env.METRICS_PORT) : undefined, metricsHost: '127.0.0.1' }), { port: 0, host: '127.0.0.1', bodyLimit: env.max_body_size ?? '512kb', drainMs: 2000 });
  const url = `http://127.0.0.1:${running.port}/`;
  const post = async (body: unknown, headers: Record<string, string> = {}) => {
    const r = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Falcosidekick', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await r.text();
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch {
      parsed = { text };
    }
    return { status: r.status, body: parsed, headers: r.headers };
  };
  return {
    url,
    lines,
    audits: () => lines.filter((l) => l.audit === true),
    fn,
    running,
    post,
    stop: () => running.shutdown(),
  };
}

const FIXTURES = join(process.cwd(), 'test', 'data', 'falco');

/** A fixture from test/data/falco (its README names each source); `fresh` sets its time to now (fixture timestamps are historical). */
export function fixture(name: string, opts: { fresh?: boolean } = { fresh: true }): Record<string, unknown> {
  const alert = JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as Record<string, unknown>;
  if (opts.fresh !== false) alert.time = new Date().toISOString().replace('Z', '123456Z');
  return alert;
}

export function withFields(alert: Record<string, unknown>, fields: Record<string, unknown>): Record<string, unknown> {
  return { ...alert, output_fields: { ...(alert.output_fields as Record<string, unknown>), ...fields } };
}

export interface StandIn {
  api: FakeApiServer;
  sa: { prefix: string; tokenPath: string };
  /** The function started by `start` in the current test, stopped after it. */
  fn: RunningFunction;
  start: (extra?: Record<string, string>) => Promise<RunningFunction>;
}

/** Per test: a fresh stand-in API server and service-account files; `start` runs the function in-cluster against them. */
export function withStandIn(token: string): StandIn {
  const t = {} as StandIn;
  beforeEach(async () => {
    t.api = await new FakeApiServer(token).start();
    t.sa = stageServiceAccount(token);
  });
  afterEach(async () => {
    await (t.fn as RunningFunction | undefined)?.stop();
    t.fn = undefined as unknown as RunningFunction;
    await t.api.stop();
  });
  t.start = async (extra = {}) => {
    t.fn = await startFunction(inClusterEnv(t.api, t.sa.prefix, extra));
    // What the function asks at start (its first reservation of the shared budget, tested on its own) is not
    // what an alert asks: the record starts after it.
    await t.fn.fn.start();
    t.api.requests.splice(0);
    return t.fn;
  };
  return t;
}
