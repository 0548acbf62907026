// The audit trail: exactly one JSON line on stdout per alert, plus diagnostics on the same stream.
import { pino, destination as fileDestination, stdTimeFunctions, type Logger, type DestinationStream } from 'pino';
import type { Alert } from './alert.js';
import type { EnvelopeKind } from './envelope.js';
import type { Outcome } from './outcome.js';

export function createLogger(level: string, destination: DestinationStream = fileDestination({ dest: 1, sync: true })): Logger {
  return pino(
    {
      level,
      base: { service: 'falco-pod-delete' },
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

export interface AuditFacts {
  envelope: EnvelopeKind | 'unknown';
  alert: Alert | undefined;
  eventId: string | undefined;
  outcome: Outcome;
  status: number;
  durationMs: number;
}

/**
 * The longest string an audit line or an answer carries. Whatever arrives, a line stays far below the
 * 64 KiB that the of-watchdog's log scanner reads (a longer one stops it reading the function's stdout).
 */
export const FIELD_MAX = 1024;

/** Cuts every string field at FIELD_MAX, saying how long it was. */
export function bounded<T extends Record<string, unknown>>(record: T): T {
  const out: Record<string, unknown> = { ...record };
  for (const [k, v] of Object.entries(out)) {
    if (typeof v === 'string' && v.length > FIELD_MAX) out[k] = `${v.slice(0, FIELD_MAX)}… (${v.length} characters)`;
  }
  return out as T;
}

export function auditRecord(f: AuditFacts) {
  const a = f.alert;
  return bounded({
    audit: true,
    envelope: f.envelope,
    uuid: a?.uuid ?? f.eventId,
    rule: a?.rule,
    priority: a?.priority,
    source: a?.source,
    hostname: a?.hostname,
    alertTime: a?.time.toISOString(),
    namespace: f.outcome.pod?.namespace,
    pod: f.outcome.pod?.name,
    decision: f.outcome.decision,
    outcome: f.outcome.result,
    code: f.outcome.code,
    reason: f.outcome.reason,
    status: f.status,
    error: f.outcome.error,
    workload: f.outcome.workload,
    evidence: f.outcome.evidence,
    durationMs: Math.round(f.durationMs * 1000) / 1000,
  });
}

/** Audit lines are written whatever LOG_LEVEL says: the child logger has its own level. */
export function auditLogger(logger: Logger): Logger {
  return logger.child({}, { level: 'info' });
}

export function audit(auditLog: Logger, f: AuditFacts): void {
  const record = auditRecord(f);
  if (f.outcome.result === 'failed' || f.outcome.result === 'rate-limited') auditLog.error(record, 'alert');
  else auditLog.info(record, 'alert');
}

/**
 * A bound on the audit lines that unauthenticated floods can write: `perSecond` a second, bursts of `burst`.
 * Requests past it are counted and summarised in the next line written (or within a second), never lost.
 */
export class FloodBound {
  private tokens: number;
  private last = Date.now();
  private held = 0;
  private flush: NodeJS.Timeout | undefined;

  constructor(private readonly perSecond: number, private readonly burst: number, private readonly summarise: (suppressed: number) => void) {
    this.tokens = burst;
  }

  /** Whether this request gets its own line, and how many before it went without one. */
  take(now = Date.now()): { write: boolean; suppressed: number } {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      const suppressed = this.held;
      this.held = 0;
      return { write: true, suppressed };
    }
    this.held += 1;
    this.flush ??= setTimeout(() => {
      this.flush = undefined;
      if (this.held > 0) this.summarise(this.held);
      this.held = 0;
    }, 1000).unref();
    return { write: false, suppressed: 0 };
  }
}
