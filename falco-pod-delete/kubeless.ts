// Kubeless entry: the runtime calls handler(event, context) with the parsed body under event.data.
import type { Answer } from './src/core.js';
import { FalcoResponse } from './src/core.js';

export interface KubelessEvent {
  data: unknown;
  'event-id'?: string;
  'event-type'?: string;
  'event-time'?: string;
  'event-namespace'?: string;
  extensions?: {
    request?: { headers?: Record<string, string | string[] | undefined> };
    response?: { status?: (code: number) => unknown; set?: (headers: Record<string, string>) => unknown };
  };
}

// The Kubeless Node runtime re-runs the module in a fresh context for every request: keep one instance
// (configuration, coalescing, the blast-radius window) on the process, which the contexts share.
const INSTANCE = Symbol.for('falco-pod-delete.kubeless');

function instance(): FalcoResponse {
  const holder = process as unknown as Record<symbol, FalcoResponse | undefined>;
  if (!holder[INSTANCE]) {
    holder[INSTANCE] = FalcoResponse.fromEnv();
    holder[INSTANCE].start();
  }
  return holder[INSTANCE];
}

export async function handler(event: KubelessEvent, _context?: unknown): Promise<Record<string, unknown>> {
  const fn = instance();
  const headers = { ...(event.extensions?.request?.headers ?? {}), 'event-type': event['event-type'] ?? 'falco', 'event-id': event['event-id'] };
  let answer: Answer;
  let body = event.data;
  // The runtime parses JSON only for a Content-Type of exactly application/json.
  if (typeof body === 'string' || Buffer.isBuffer(body)) {
    try {
      body = JSON.parse(body.toString());
    } catch {
      body = undefined;
    }
  }
  if (body === undefined) answer = fn.rejectInput(400, 'request body is not valid JSON');
  else answer = await fn.handle({ headers, body }, 'kubeless');
  event.extensions?.response?.status?.(answer.status);
  event.extensions?.response?.set?.(answer.headers);
  return answer.body;
}
