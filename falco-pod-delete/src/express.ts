// The HTTP adapter shared by OpenFaaS, Kubeless-over-HTTP and Knative: Express request in, answer out.
import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import type { Answer, FalcoResponse } from './core.js';
import { startMetricsServer } from './metrics.js';

/** Written directly: Express's res.json would also hash the body for an ETag nobody uses. */
function send(res: Response, answer: Answer): void {
  const body = JSON.stringify(answer.body);
  res.writeHead(answer.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...answer.headers });
  res.end(body);
}

export interface HttpFunction {
  default: RequestHandler;
  onError: ErrorRequestHandler;
  close: () => Promise<void>;
  /** False until start-up's first reservation of the shared budget is made or has failed, and the view has synced or VIEW_READY_WAIT_MS passed (the template's /_/ready). */
  ready: () => boolean;
}

/**
 * The shape the node18-ts-middleware template loads: a default middleware, an error middleware, a close hook.
 * With METRICS_PORT set, Prometheus metrics are served on that port until close.
 */
export function httpFunction(fn: FalcoResponse, opts: { metricsPort?: number; metricsHost?: string } = {}): HttpFunction {
  const metricsServer = opts.metricsPort ? startMetricsServer(fn.metrics, opts.metricsPort, opts.metricsHost) : undefined;
  metricsServer?.catch((e: unknown) => fn.logger.error({ err: e, port: opts.metricsPort }, 'cannot serve metrics'));
  let started = false;
  void fn.ready().finally(() => (started = true));
  const handle: RequestHandler = (req, res, next) => {
    if (req.method !== 'POST') {
      res.status(405).set('allow', 'POST').json({ error: `method ${req.method} not allowed: POST a Falco alert` });
      return;
    }
    fn.handle({ headers: req.headers, body: req.body, peer: req.socket.remoteAddress }).then((answer) => send(res, answer), next);
  };
  const onError: ErrorRequestHandler = (err: { status?: number; type?: string; message?: string }, _req, res, next) => {
    if (res.headersSent) return next(err);
    if (err.type === 'entity.too.large') return send(res, fn.rejectInput(413, `request body too large: ${err.message ?? ''}`.trim()));
    if (err.type === 'entity.parse.failed') return send(res, fn.rejectInput(400, `request body is not valid JSON: ${err.message ?? ''}`));
    if (err.type === 'encoding.unsupported' || err.type === 'charset.unsupported') return send(res, fn.rejectInput(415, err.message ?? 'unsupported encoding'));
    if (typeof err.status === 'number' && err.status >= 400 && err.status < 500) return send(res, fn.rejectInput(400, err.message ?? 'bad request'));
    fn.logger.error({ err }, 'unexpected error in the HTTP adapter');
    res.status(500).json({ error: 'internal error' });
  };
  const close = async () => {
    await fn.close();
    const server = await metricsServer?.catch(() => undefined);
    server?.close();
    fn.logger.flush();
  };
  return { default: handle, onError, close, ready: () => started };
}
