// The audit trail: exactly one JSON line on stdout per alert, plus diagnostics on the same stream.
import { writeSync } from 'node:fs';
import { pino, stdTimeFunctions, type Logger, type DestinationStream } from 'pino';
import type { Alert } from './alert.js';
import type { EnvelopeKind } from './envelope.js';
import type { Outcome } from './outcome.js';

/**
 * Standard output as a log collector may leave it: each line written at once (no buffer to lose on exit), and
 * never a reason to hang or spin. A closed pipe (EPIPE, EBADF) ends writing for good; a full one (EAGAIN, the
 * collector stalled) is waited on for at most 100 ms a line, then the line is dropped. Both are counted.
 */
export class StdoutLines implements DestinationStream {
  dropped = 0;
  closed = false;
  private static readonly pause = new Int32Array(new SharedArrayBuffer(4));

  constructor(private readonly fd = 1) {}

  write(line: string): void {
    if (this.closed) {
      this.dropped++;
      return;
    }
    let rest = Buffer.from(line);
    const giveUp = Date.now() + 100;
    while (rest.length > 0) {
      try {
        rest = rest.subarray(writeSync(this.fd, rest));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' && Date.now() < giveUp) {
          Atomics.wait(StdoutLines.pause, 0, 0, 1);
          continue;
        }
        if (code !== 'EAGAIN') this.closed = true;
        this.dropped++;
        return;
      }
    }
  }
}

export function createLogger(level: string, destination: DestinationStream = new StdoutLines()): Logger {
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
  /** The request carried the caller token (AUTH_TOKEN_FILE): false when none is configured. */
  authenticated: boolean;
  /** Who sent it: the socket's peer, and the X-Forwarded-For it claimed (a gateway sets it; anyone can). */
  peer: Peer | undefined;
}

export interface Peer {
  address: string | undefined;
  forwardedFor?: string;
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
    budget: f.outcome.budget,
    isolation: f.outcome.isolation,
    credentials: f.outcome.credentials,
    node: f.outcome.node,
    durationMs: Math.round(f.durationMs * 1000) / 1000,
    authenticated: f.authenticated,
    peer: f.peer?.address,
    forwardedFor: f.peer?.forwardedFor?.slice(0, 256),
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
 * A bound on the audit lines that floods can write: `perSecond` a second, bursts of `burst`. Requests past it
 * are counted (by code) and summarised in one line before the next line written, or within a second: never lost.
 */
export class FloodBound {
  private tokens: number;
  private last = Date.now();
  private held = 0;
  private codes: Record<string, number> = {};
  private flush: NodeJS.Timeout | undefined;

  constructor(private readonly perSecond: number, private readonly burst: number, private readonly summarise: (suppressed: number, codes: Record<string, number>) => void) {
    this.tokens = burst;
  }

  /** Whether this request gets its own line; a summary of those before it that went without one is written first. */
  take(code = '', now = Date.now()): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      this.summary();
      return true;
    }
    this.held += 1;
    this.codes[code] = (this.codes[code] ?? 0) + 1;
    this.flush ??= setTimeout(() => {
      this.flush = undefined;
      this.summary();
    }, 1000).unref();
    return false;
  }

  private summary(): void {
    if (this.held === 0) return;
    const [n, codes] = [this.held, this.codes];
    this.held = 0;
    this.codes = {};
    this.summarise(n, codes);
  }
}
