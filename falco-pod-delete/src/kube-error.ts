// A failed Kubernetes API call, by code, with the facts a user needs (what was refused, and where).
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
