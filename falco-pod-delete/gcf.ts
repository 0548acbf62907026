// Google Cloud Functions entry: an HTTP function for @google-cloud/functions-framework (--target=falcoPodDelete).
// Falcosidekick's gcp.cloudfunctions output invokes it with the alert JSON as data, which arrives as the body.
// Configuration comes from a kubeconfig: KUBECONFIG_DATA (a Secret Manager secret exposed as an env var) or
// KUBECONFIG_FILE (the same secret mounted as a file).
import type { Request, Response } from 'express';
import { FalcoResponse } from './src/core.js';
import { httpFunction } from './src/express.js';

const fn = httpFunction(FalcoResponse.fromEnv());

export function falcoPodDelete(req: Request, res: Response): void {
  fn.default(req, res, (err?: unknown) => {
    if (err) fn.onError(err, req, res, () => res.status(500).json({ error: 'internal error' }));
  });
}
