// OpenFaaS entry (node18-ts-middleware template): an Express middleware around the shared pipeline.
import { FalcoResponse } from './src/core.js';
import { httpFunction } from './src/express.js';

// Configuration is read and validated once, at startup: a bad value stops the function here, naming the variable.
const core = FalcoResponse.fromEnv();
const fn = httpFunction(core, { metricsPort: core.parts.config.metricsPort, metricsHost: core.parts.config.metricsHost });

export default fn.default;
/** Body-parser failures (bad JSON, oversized) are answered and audited like any other rejected alert. */
export const onError = fn.onError;
/** Called by the template after the server has drained, before the process exits. */
export const close = fn.close;
/** The template's readiness (/_/ready): the shared budget's first reservation made (or failed), the view synced or VIEW_READY_WAIT_MS passed. */
export const ready = fn.ready;
