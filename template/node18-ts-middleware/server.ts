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
}

export interface ServerOptions {
  port: number;
  bodyLimit: string;
  /** How long in-flight requests may take to finish after SIGTERM. */
  drainMs: number;
  host?: string;
}

export function optionsFromEnv(env: Record<string, string | undefined> = process.env): ServerOptions {
  // http_port is the OpenFaaS convention; PORT is Knative's and Cloud Run's contract.
  const raw = env.http_port ?? env.PORT ?? '3000';
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port > 65535) throw new Error(`invalid configuration: ${env.http_port !== undefined ? 'http_port' : 'PORT'} must be a port number, got "${raw}"`);
  const drain = env.drain_timeout ?? env.write_timeout ?? '10s';
  const m = /^(\d+)(ms|s|m)?$/.exec(drain.trim());
  if (!m) throw new Error(`invalid configuration: drain_timeout must be a duration like 10s, got "${drain}"`);
  const drainMs = Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60000 : 1000);
  return { port, bodyLimit: env.max_body_size ?? '512kb', drainMs, host: env.http_host };
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
  app.get(['/_/health', '/_/ready'], (_req, res) => {
    res.json({ status: 'ok' });
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
  /** Stop accepting, let in-flight requests finish (up to drainMs), then run the function's close. */
  shutdown: () => Promise<void>;
}

export async function startServer(fn: FunctionModule, opts: ServerOptions): Promise<Running> {
  const app = createApp(fn, opts);
  const active = new Map<Socket, number>();
  const server = app.listen(opts.port, opts.host ?? '0.0.0.0');
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
  return { server, port: typeof address === 'object' && address ? address.port : opts.port, shutdown };
}

/** The process entry: start, and on SIGTERM/SIGINT drain and exit 0 (the of-watchdog forwards SIGTERM at once). */
export async function main(fn: FunctionModule, env = process.env): Promise<Running> {
  const running = await startServer(fn, optionsFromEnv(env));
  console.error(JSON.stringify({ level: 'info', time: new Date().toISOString(), msg: `listening on port ${running.port}` }));
  const stop = (signal: string) => {
    console.error(JSON.stringify({ level: 'info', time: new Date().toISOString(), msg: `${signal}: draining in-flight requests` }));
    running.shutdown().then(
      () => process.exit(0),
      (e: unknown) => {
        console.error(JSON.stringify({ level: 'error', time: new Date().toISOString(), msg: 'shutdown failed', error: String(e) }));
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  return running;
}
