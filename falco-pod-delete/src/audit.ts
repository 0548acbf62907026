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
