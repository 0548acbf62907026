// The template's HTTP server: Express on http_port, JSON bodies with a size limit, health, graceful drain.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import express, { type ErrorRequestHandler, type RequestHandler } from 'express';

export interface FunctionModule {
  default: RequestHandler;
  /** Optional error middleware for body-parser failures (bad JSON, oversized body) and errors the handler passes on. */
  onError?: ErrorRequestHandler;
  /** Optional clean-up after the server has drained (flush logs, close clients). */
  close?: () => Promise<void> | void;
  /**
   * Optional readiness: while it returns false, /_/ready answers 503 (the platform routes no alerts here yet)
   * and /_/health still 200. For a start-up that should finish before the first request (a connection, a cache).
   */
  ready?: () => boolean;
}

export interface ServerOptions {
  port: number;
  bodyLimit: string;
  /** How long in-flight requests may take to finish after SIGTERM. */
  drainMs: number;
  /**
   * How long to go on serving after SIGTERM before closing: the of-watchdog forwards SIGTERM at once but
   * keeps accepting (and proxying to us) for its healthcheck_interval, so closing sooner answers those with 500s.
   */
  keepServingMs?: number;
  host?: string;
}

export function optionsFromEnv(env: Record<string, string | undefined> = process.env): ServerOptions {
  // http_port is the OpenFaaS convention; PORT is Knative's and Cloud Run's contract.
  const raw = env.http_port ?? env.PORT ?? '3000';
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port > 65535) throw new Error(`invalid configuration: ${env.http_port !== undefined ? 'http_port' : 'PORT'} must be a port number, got "${raw}"`);
  const drainMs = durationMs(env.drain_timeout !== undefined ? 'drain_timeout' : 'write_timeout', env.drain_timeout ?? env.write_timeout ?? '10s');
  // Past the watchdog's own interval by a margin, so that a request it accepted last still finds us listening.
  const keepServingMs = env.healthcheck_interval ? durationMs('healthcheck_interval', env.healthcheck_interval) + 500 : 0;
  return { port, bodyLimit: env.max_body_size ?? '512kb', drainMs, keepServingMs, host: env.http_host };
}

function durationMs(name: string, raw: string): number {
  const m = /^(\d+)(ms|s|m)?$/.exec(raw.trim());
  if (!m) throw new Error(`invalid configuration: ${name} must be a duration like 10s, got "${raw}"`);
  return Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60000 : 1000);
}

const defaultOnError: ErrorRequestHandler = (err: { status?: number; message?: string }, _req, res, next) => {
  if (res.headersSent) return next(err);
  const status = typeof err.status === 'number' && err.status >= 400 && err.status < 600 ? err.status : 500;
  res.status(status).json({ error: status === 500 ? 'internal error' : (err.message ?? 'bad request') });
};

export function createApp(fn: FunctionModule, opts: ServerOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false); // function answers are not cached: no per-response body hash
  app.set('trust proxy', true);
  // /_/ready answers only once the server listens (the watchdog's ready_path) and the function says it is
  // ready, and 503 once SIGTERM came. /_/health is liveness: 200 from the start.
  app.get(['/_/health', '/_/ready'], (req, res) => {
    if (app.locals.stopping === true) res.status(503).json({ status: 'stopping' });
    else if (req.path === '/_/ready' && fn.ready?.() === false) res.status(503).json({ status: 'starting' });
    else res.json({ status: 'ok' });
  });
  app.use(express.json({ limit: opts.bodyLimit, strict: false, type: ['application/json', 'application/*+json'] }));
  app.use(express.text({ limit: opts.bodyLimit, type: 'text/*' }));
  app.use(fn.default);
  app.use(fn.onError ?? defaultOnError);
  return app;
}

export interface Running {
  server: Server;
  port: number;
  app: express.Express;
  /** Stop accepting, let in-flight requests finish (up to drainMs), then run the function's close. */
  shutdown: () => Promise<void>;
}

export async function startServer(fn: FunctionModule, opts: ServerOptions): Promise<Running> {
  const app = createApp(fn, opts);
  const active = new Map<Socket, number>();
  const server = app.listen(opts.port, opts.host ?? '0.0.0.0');
  // Longer than clients keep idle connections (Go's default transport: 90 s, Knative's queue-proxy, undici):
  // with Node's 5 s, a POST sent on a connection the server is just closing fails with "socket closed".
  server.keepAliveTimeout = 95_000;
  server.headersTimeout = 96_000;
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  server.on('connection', (socket: Socket) => {
    active.set(socket, 0);
    socket.on('close', () => active.delete(socket));
  });
  server.on('request', (req, res) => {
    const socket = req.socket;
    active.set(socket, (active.get(socket) ?? 0) + 1);
    res.on('finish', () => {
      const left = (active.get(socket) ?? 1) - 1;
      active.set(socket, left);
      if (draining && left === 0) socket.end();
    });
  });
  let draining = false;
  let closing: Promise<void> | undefined;
  const shutdown = () => {
    closing ??= (async () => {
      draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const [socket, inFlight] of active) if (inFlight === 0) socket.end(); // idle keep-alive connections
      const timeout = new Promise<void>((resolve) => setTimeout(resolve, opts.drainMs).unref());
      await Promise.race([closed, timeout]);
      for (const socket of active.keys()) socket.destroy();
      await fn.close?.();
    })();
    return closing;
  };
  const address = server.address();
  return { server, app, port: typeof address === 'object' && address ? address.port : opts.port, shutdown };
}

/** The process entry: start, and on SIGTERM/SIGINT drain and exit 0 (the of-watchdog forwards SIGTERM at once). */
export async function main(fn: FunctionModule, env = process.env): Promise<Running> {
  const opts = optionsFromEnv(env);
  const running = await startServer(fn, opts);
  console.error(JSON.stringify({ level: 'info', time: new Date().toISOString(), msg: `listening on port ${running.port}` }));
  const stop = async (signal: string) => {
    running.app.locals.stopping = true;
    const serving = opts.keepServingMs ?? 0;
    // Whatever the drain meets (a close hook that never settles, a blocked write), the process ends on time.
    setTimeout(() => process.exit(1), serving + opts.drainMs + 2000).unref();
    console.error(JSON.stringify({ level: 'info', time: new Date().toISOString(), msg: `${signal}: serving ${serving} ms more (the watchdog's healthcheck_interval), then draining in-flight requests` }));
    if (serving > 0) await new Promise((resolve) => setTimeout(resolve, serving));
    running.shutdown().then(
      () => process.exit(0),
      (e: unknown) => {
        console.error(JSON.stringify({ level: 'error', time: new Date().toISOString(), msg: 'shutdown failed', error: String(e) }));
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  return running;
}
