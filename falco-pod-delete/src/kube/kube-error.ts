// A failed Kubernetes API call, by code, with the facts a user needs (what was refused, and where), and how
// whatever client-node threw becomes one.
import * as k8s from '@kubernetes/client-node';

export type KubeErrorCode = 'forbidden' | 'guardrail' | 'unauthorized' | 'rate-limited' | 'unavailable' | 'timeout' | 'bad-response' | 'rejected'
  /** The quarantine NetworkPolicy exists with a spec other than deny-all: isolating would isolate nothing. */
  | 'quarantine-policy-altered';

export class KubeError extends Error {
  constructor(
    readonly code: KubeErrorCode,
    readonly verb: string,
    readonly resource: string,
    readonly namespace: string | undefined,
    message: string,
    readonly status?: number,
    readonly retryAfterSeconds?: number,
    /** For a guardrail: the ValidatingAdmissionPolicy that denied the request. */
    readonly policy?: string,
  ) {
    super(message);
    this.name = 'KubeError';
  }

  get retryable(): boolean {
    return this.code === 'rate-limited' || this.code === 'unavailable' || this.code === 'timeout';
  }

  /** What RBAC would have to grant, as "verb resource in namespace ns". */
  get permission(): string {
    return `${this.verb} ${this.resource}${this.namespace ? ` in namespace ${this.namespace}` : ' (cluster-scoped)'}`;
  }
}

export type HandledStatus = { handledStatus: 404 | 409 | 422 };

export interface Target {
  verb: string;
  resource: string;
  namespace: string | undefined;
}

function statusBody(raw: unknown): { message?: string; reason?: string } {
  if (typeof raw === 'object' && raw !== null) return raw as { message?: string };
  if (typeof raw === 'string') {
    try {
      const parsed: unknown = JSON.parse(raw);
      if (typeof parsed === 'object' && parsed !== null) return parsed as { message?: string };
    } catch {
      return { message: raw.slice(0, 200) };
    }
  }
  return {};
}

function headerValue(headers: unknown, name: string): string | undefined {
  if (!headers || typeof headers !== 'object') return undefined;
  const v = (headers as Record<string, unknown>)[name];
  return typeof v === 'string' ? v : undefined;
}

const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND', 'EPIPE', 'ECONNABORTED']);

/** Turn whatever client-node threw into a KubeError, or an HTTP status the caller handles (404, 409, 422). */
export function classify(e: unknown, t: Target): KubeError | HandledStatus {
  if (e instanceof k8s.ApiException) {
    const code = e.code as number;
    const body = statusBody(e.body);
    // The API server's own guardrail (guardrails.yaml), whatever status it chose: never retried, never an RBAC gap.
    const denied = /ValidatingAdmissionPolicy '([^']+)' with binding '[^']*' denied request: (.*)$/s.exec(body.message ?? '');
    if (denied) {
      return new KubeError('guardrail', t.verb, t.resource, t.namespace, `the API server's guardrail ${denied[1]} refused ${t.verb} ${t.resource}${t.namespace ? ` in namespace ${t.namespace}` : ''}: ${denied[2].slice(0, 300)}`, code, undefined, denied[1]);
    }
    if (code === 404 || code === 409 || code === 422) return { handledStatus: code };
    const detail = body.message ?? `HTTP ${code}`;
    if (code === 403) return new KubeError('forbidden', t.verb, t.resource, t.namespace, `forbidden: the function may not ${t.verb} ${t.resource}${t.namespace ? ` in namespace ${t.namespace}` : ''} (${detail})`, 403);
    if (code === 401) return new KubeError('unauthorized', t.verb, t.resource, t.namespace, 'the Kubernetes API rejected the function\'s credentials (401 Unauthorized)', 401);
    if (code === 429) {
      const retryAfter = Number(headerValue(e.headers, 'retry-after'));
      return new KubeError('rate-limited', t.verb, t.resource, t.namespace, `the Kubernetes API is throttling requests (429): ${detail}`, 429, Number.isFinite(retryAfter) ? retryAfter : undefined);
    }
    if (code >= 500) return new KubeError('unavailable', t.verb, t.resource, t.namespace, `the Kubernetes API failed (${code}): ${detail}`, code);
    return new KubeError('rejected', t.verb, t.resource, t.namespace, `the Kubernetes API refused ${t.verb} ${t.resource} (${code}): ${detail}`, code);
  }
  const err = e as { name?: string; code?: string; type?: string; message?: string };
  if (err?.name === 'AbortError' || err?.type === 'aborted') {
    return new KubeError('timeout', t.verb, t.resource, t.namespace, `the Kubernetes API did not answer ${t.verb} ${t.resource} in time`);
  }
  if (err?.type === 'system' || (typeof err?.code === 'string' && NETWORK_ERRORS.has(err.code))) {
    return new KubeError('unavailable', t.verb, t.resource, t.namespace, `the Kubernetes API cannot be reached: ${err.code ?? err.message}`);
  }
  return new KubeError('bad-response', t.verb, t.resource, t.namespace, `the Kubernetes API sent an answer that could not be read for ${t.verb} ${t.resource}: ${String(err?.message ?? e).slice(0, 200)}`);
}

export function isStatus(r: unknown, code?: number): r is HandledStatus {
  return typeof r === 'object' && r !== null && 'handledStatus' in r && (code === undefined || (r as HandledStatus).handledStatus === code);
}
