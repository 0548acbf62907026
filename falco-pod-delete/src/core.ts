// The pipeline every platform adapter calls: envelope -> alert -> decision -> response -> answer + audit.
import { ACTIONS, LOOKUP_ACTION, actionOf } from './actions/index.js';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import type { Alert } from './alert.js';
import { FloodBound, type Peer, audit, auditLogger, bounded } from './audit.js';
import { readSecret } from './config.js';
import { Deadline } from './deadline.js';
import { decide, type Guards, guardsFrom } from './decision.js';
import type { EnvelopeKind, Headers } from './envelope.js';
import { intake } from './intake.js';
import { type Outcome, failed, httpStatus } from './outcome.js';
import { Responder } from './response.js';
import { Metrics } from './metrics.js';
import { namespaceShare } from './bounds.js';
import { type Parts, type Seams, coordinatorFor, nodeCoordinatorFor, partsFromEnv } from './parts.js';

export type { Parts } from './parts.js';

export interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Record<string, string>;
}

export interface Delivery {
  headers: Headers;
  body: unknown;
  /** The socket's peer address, where the platform gives one. */
  peer?: string;
}

/** The outcomes that count as an action taken (the actions metric): each action's word, and a dry run. */
const ACTED = new Set<string>([...ACTIONS.filter((a) => a.acts).map((a) => a.done), 'dry-run']);

/** Declines and rejections make no API call on the alert's path (Events have their own deadline): none to set up. */
const NO_DEADLINE = new Deadline(1);
NO_DEADLINE.dispose();

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

interface AnswerContext {
  envelope: EnvelopeKind | 'unknown';
  alert: Alert | undefined;
  eventId: string | undefined;
  started: number;
  peer: Peer | undefined;
  authenticated: boolean;
}

export class FalcoResponse {
  readonly responder: Responder;
  private readonly audit: Logger;
  private readonly token: Buffer | undefined;
  private readonly guardsValue: Guards;

  constructor(readonly parts: Parts) {
    const { config, policy, kube, logger } = parts;
    const guards = guardsFrom(config, { namespace: parts.namespace, name: config.podName });
    this.guardsValue = guards;
    this.audit = auditLogger(logger);
    this.declinedLines = new FloodBound(config.declinedLinesPerSecond, 2 * config.declinedLinesPerSecond, (n, codes) =>
      this.audit.warn({ audit: true, decision: 'skip', outcome: 'suppressed', suppressed: n, codes }, `${n} declined or rejected alerts not audited one by one`));
    this.token = config.authTokenFile ? digest(readSecret(config.authTokenFile, 'AUTH_TOKEN_FILE')) : undefined;
    this.responder = new Responder({
      kube,
      settings: {
      dryRun: config.dryRun,
      gracePeriodSeconds: config.gracePeriodSeconds,
      optOutLabel: config.optOutLabel,
      quarantineLabel: config.quarantineLabel,
      recordEvents: config.recordEvents,
      coalesceWindowMs: config.coalesceWindowSeconds * 1000,
      actionLimit: config.actionLimit,
      actionWindowMs: config.actionWindowSeconds * 1000,
      namespaceActionLimit: namespaceShare(config.namespaceActionLimit, config.actionLimit),
      eventDeadlineMs: config.alertDeadlineMs,
      },
      policy,
      guards,
      warn: (msg, extra) => logger.warn(extra, msg),
      coordinator: coordinatorFor(parts),
      nodes: { criticalNodes: config.criticalNodes, minSchedulableNodes: config.minSchedulableNodes, nodeActionLimit: config.nodeActionLimit, nodeLabel: config.nodeLabel, coordinator: nodeCoordinatorFor(parts) },
      evidenceSink: (record) => this.audit.info(record, 'evidence'),
      view: parts.view,
    });
    const responder = this.responder;
    this.metrics = parts.metrics ?? new Metrics(false);
    this.metrics.bind({ coalescingEntries: () => responder.coalescer.size, eventsSuppressed: () => responder.eventsSuppressed, actionsInWindow: () => responder.limiter.used(), actionLimit: config.actionLimit, viewPods: () => parts.view?.pods.size, viewSynced: () => parts.view?.synced, viewListMode: () => parts.view?.listMode });
  }

  readonly metrics: Metrics;

  /** Everything from the environment, validated once (parts.ts); throws ConfigError or PolicyError naming what is wrong. */
  static fromEnv(env: Record<string, string | undefined> = process.env, logger?: Logger, seams?: Seams): FalcoResponse {
    return new FalcoResponse(partsFromEnv(env, logger, seams));
  }

  get logger(): Logger {
    return this.parts.logger;
  }

  private authorized(headers: Headers): boolean {
    if (!this.token) return true;
    const raw = headers.authorization;
    const value = Array.isArray(raw) ? raw[0] : raw;
    const m = /^Bearer\s+(.+)$/i.exec(value ?? '');
    return m !== null && timingSafeEqual(digest(m[1].trim()), this.token);
  }

  /** One delivery from any platform: always answers, always audits, never throws. */
  async handle(delivery: Delivery, kindHint?: EnvelopeKind): Promise<Answer> {
    const started = performance.now();
    let alert: Alert | undefined;
    let envelope: EnvelopeKind | 'unknown' = kindHint ?? 'unknown';
    let eventId: string | undefined;
    let outcome: Outcome;
    let background: Promise<Outcome> | undefined;
    try {
      outcome = await this.process(delivery, (a, e, id) => {
        alert = a;
        envelope = e;
        eventId = id;
      }, (work) => (background = work));
    } catch (e) {
      this.logger.error({ err: e }, 'unexpected error while handling an alert');
      outcome = failed('skip', e);
    }
    const forwarded = delivery.headers['x-forwarded-for'];
    const peer: Peer = { address: delivery.peer, forwardedFor: Array.isArray(forwarded) ? forwarded.join(', ') : forwarded };
    const ctx: AnswerContext = { envelope, alert, eventId, started, peer, authenticated: this.token !== undefined && outcome.code !== 'unauthorized' };
    if (background) {
      // One audit line per alert: written when the background work ends, with the final outcome.
      const done = background
        .catch((e: unknown) => failed(outcome.decision, e, outcome.pod))
        .then((final) => void this.answer(final, ctx))
        .finally(() => this.pending.delete(done));
      this.pending.add(done);
      return this.answer(outcome, ctx, false);
    }
    return this.answer(outcome, ctx);
  }

  private readonly pending = new Set<Promise<void>>();

  /** A flood of unauthenticated requests writes at most 10 audit lines a second; the rest are summarised. */
  private readonly unauthorizedLines = new FloodBound(10, 20, (n) =>
    this.audit.warn({ audit: true, decision: 'reject', outcome: 'rejected', code: 'unauthorized', status: 401, suppressed: n }, `${n} unauthorized requests not audited one by one`));
  /** Declined and rejected alerts: AUDIT_DECLINES_PER_SECOND lines a second, the rest summarised by code. Actions and failures always get theirs. */
  private readonly declinedLines: FloodBound;

  private started: Promise<void> | undefined;

  /**
   * Starts what runs beside the alerts: the view's list and watch, and a first reservation of the shared
   * budget (which also opens the connection to the API server, so that the first alert pays no handshake).
   * Idempotent; adapters call it once they serve. Resolves when the reservation is made (or failed).
   */
  start(): Promise<void> {
    if (this.started) return this.started;
    this.parts.view?.start();
    const coordinator = this.responder.coordinator;
    const deadline = new Deadline(this.parts.config.alertDeadlineMs);
    this.started = Promise.all([
      (coordinator ? coordinator.warm(deadline) : Promise.resolve())
        .catch((e: unknown) => this.logger.warn({ err: e }, 'cannot reserve slots of the shared budget yet: the first alert will')),
      this.warmCode(),
    ])
      .then(() => undefined)
      .finally(() => deadline.dispose());
    return this.started;
  }

  /**
   * Runs the alert path's own code once on a made-up alert while the reservation is under way: parsing,
   * schema validation, the decision and an answer's body, with no API call, no audit line and no metric. The
   * first real alert then meets code V8 has already compiled, not code it compiles on the way.
   */
  private async warmCode(): Promise<void> {
    try {
      const input = await intake({ 'content-type': 'application/json' }, {
        uuid: '00000000-0000-4000-8000-000000000000', rule: 'Terminal shell in container', priority: 'Notice', source: 'syscall',
        time: new Date().toISOString(), hostname: 'warm-up', output: 'warm-up (not an alert)',
        output_fields: { 'container.id': '000000000000', 'k8s.ns.name': 'warm-up', 'k8s.pod.name': 'warm-up' },
      });
      if (!input.ok) return;
      const decision = decide(input.alert, this.parts.policy, this.guardsValue, Date.now());
      JSON.stringify(bounded({ decision: decision.kind, rule: input.alert.rule, uuid: input.alert.uuid }));
    } catch {
      // only a warm-up: the first alert compiles whatever this did not
    }
  }

  /**
   * Resolves when the function should be routed alerts (the template's /_/ready): once start() has resolved
   * and the local view has its state, or VIEW_READY_WAIT_MS after start at most (alerts read the API until then).
   */
  ready(): Promise<void> {
    const view = this.parts.view;
    const waitMs = this.parts.config.viewReadyWaitMs;
    return Promise.all([this.start(), view && waitMs > 0 ? view.whenSynced(waitMs) : undefined]).then(() => undefined);
  }

  /** A graceful stop: work under way finished, the budget's unspent reservation given back, the view stopped. */
  async close(): Promise<void> {
    await this.drain();
    await this.responder.coordinator?.close().catch((e: unknown) => this.logger.warn({ err: e }, 'cannot give back the unspent reservation of the shared budget: it frees itself after the window'));
    await this.responder.nodes?.coordinator?.close().catch((e: unknown) => this.logger.warn({ err: e }, 'cannot give back the unspent reservation of the node budget: it frees itself after the window'));
    await this.parts.view?.stop();
  }

  /** Waits for work still under way after its answer (RESPONSE_MODE=async actions, Event writes), for a graceful stop. */
  async drain(): Promise<void> {
    while (this.pending.size > 0 || this.responder.pendingWrites.size > 0) {
      await Promise.allSettled([...this.pending, ...this.responder.pendingWrites]);
    }
  }

  /** Input refused before it reached the pipeline (unparseable JSON, oversized body): still audited. */
  rejectInput(status: 400 | 413 | 415, reason: string, started = performance.now()): Answer {
    const outcome: Outcome = { decision: 'reject', result: 'rejected', code: status === 413 ? 'too-large' : 'unparseable', reason, rejectStatus: status };
    return this.answer(outcome, { envelope: 'unknown', alert: undefined, eventId: undefined, started, peer: undefined, authenticated: false });
  }

  private async process(
    delivery: Delivery,
    seen: (a: Alert | undefined, e: EnvelopeKind | 'unknown', id?: string) => void,
    inBackground: (work: Promise<Outcome>) => void,
  ): Promise<Outcome> {
    if (!this.authorized(delivery.headers)) {
      // Says nothing about the secret: neither whether one was sent nor how it differs.
      return { decision: 'reject', result: 'rejected', code: 'unauthorized', reason: 'authentication required', rejectStatus: 401 };
    }
    const input = await intake(delivery.headers, delivery.body);
    seen(input.ok ? input.alert : undefined, input.kind, input.eventId);
    if (!input.ok) return { decision: 'reject', result: 'rejected', code: input.code, reason: input.reason, rejectStatus: input.status };
    const alert = input.alert;
    const decision = decide(alert, this.parts.policy, this.guardsValue, Date.now());
    if (decision.kind === 'decline' || decision.kind === 'reject') return this.responder.respond(alert, decision, NO_DEADLINE);
    const deadline = new Deadline(this.parts.config.alertDeadlineMs);
    const work = this.responder.respond(alert, decision, deadline).finally(() => deadline.dispose());
    const acts = decision.kind === 'lookup' || (decision.kind === 'act' && actionOf(decision.action).acts);
    if (this.parts.config.asyncResponse && acts && this.parts.kube) {
      inBackground(work);
      const pod = decision.kind === 'act' ? decision.pod : undefined;
      const name = decision.kind === 'act' ? decision.action : LOOKUP_ACTION;
      return { decision: name, result: 'accepted', code: 'accepted', pod, reason: 'decided; acting in the background: the outcome goes to the audit line and a Kubernetes Event' };
    }
    return work;
  }

  private answer(outcome: Outcome, ctx: AnswerContext, audited = true): Answer {
    const status = httpStatus(outcome);
    const durationMs = performance.now() - ctx.started;
    if (outcome.code === 'unauthorized') this.metrics.unauthorized.inc();
    if (audited) {
      const bound = outcome.code === 'unauthorized' ? this.unauthorizedLines : outcome.result === 'skipped' || outcome.result === 'rejected' ? this.declinedLines : undefined;
      const line = bound?.take(outcome.code) ?? true;
      if (!line) this.metrics.auditSuppressed.inc({ outcome: outcome.result });
      else audit(this.audit, { envelope: ctx.envelope, alert: ctx.alert, eventId: ctx.eventId, outcome, status, durationMs, authenticated: ctx.authenticated, peer: ctx.peer });
      this.metrics.alerts.inc({ envelope: ctx.envelope });
      this.metrics.decisions.inc({ decision: outcome.decision, outcome: outcome.result, code: outcome.code });
      if (outcome.node) this.metrics.nodeActions.inc({ outcome: outcome.node.outcome, code: outcome.node.code });
      if (outcome.isolation) this.metrics.isolations.inc({ holds: outcome.isolation.unchecked ? 'unchecked' : String(outcome.isolation.holds) });
      if (outcome.workload && ACTED.has(outcome.result)) this.metrics.actions.inc({ action: outcome.decision, workload_kind: outcome.workload.kind });
      this.metrics.alertDuration.observe({ decision: outcome.decision }, durationMs / 1000);
    }
    const body: Record<string, unknown> = bounded({
      decision: outcome.decision,
      outcome: outcome.result,
      code: outcome.code,
      reason: outcome.reason,
      namespace: outcome.pod?.namespace ?? null,
      pod: outcome.pod?.name ?? null,
      rule: ctx.alert?.rule ?? null,
      uuid: ctx.alert?.uuid ?? ctx.eventId ?? null,
      dryRun: this.parts.config.dryRun || this.parts.kube === null,
    });
    if (outcome.error) body.error = outcome.error;
    if (outcome.first) body.first = outcome.first;
    if (outcome.workload) body.workload = outcome.workload;
    if (outcome.evidence) body.evidence = outcome.evidence;
    if (outcome.budget) body.budget = outcome.budget;
    if (outcome.isolation) body.isolation = outcome.isolation;
    if (outcome.credentials) body.credentials = outcome.credentials;
    if (outcome.node) body.node = outcome.node;
    const headers: Record<string, string> = {};
    if (outcome.retryAfterSeconds !== undefined) headers['retry-after'] = String(Math.ceil(outcome.retryAfterSeconds));
    else if (status === 429) headers['retry-after'] = String(this.parts.config.actionWindowSeconds);
    if (status === 401) headers['www-authenticate'] = 'Bearer';
    return { status, body, headers };
  }
}
