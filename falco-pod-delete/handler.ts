// OpenFaaS entry (node18-ts-middleware template): an Express middleware around the shared pipeline.
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { FalcoResponse } from './src/core.js';
import { expressAdapter } from './src/express.js';

// Configuration is read and validated once, at startup: a bad value stops the function here, naming the variable.
const fn = FalcoResponse.fromEnv();
const adapter = expressAdapter(fn);

const handler: RequestHandler = adapter.handle;
export default handler;

/** Body-parser failures (bad JSON, oversized) are answered and audited like any other rejected alert. */
export const onError: ErrorRequestHandler = adapter.onError;

/** Called by the template after the server has drained, before the process exits. */
export async function close(): Promise<void> {
  fn.logger.flush();
}
