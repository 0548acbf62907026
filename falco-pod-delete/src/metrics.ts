// Prometheus metrics, served on a port of their own (the watchdog proxies only the function's port).
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ListMode } from './reflector.js';

const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface BoundsState {
  coalescingEntries: () => number;
  eventsSuppressed: () => number;
  actionsInWindow: () => number;
  actionLimit: number;
  /** The local view: pods it holds, and whether it is synced (undefined: no view). */
  viewPods?: () => number | undefined;
  viewSynced?: () => boolean | undefined;
  /** How the view got its state: a streaming list (WatchList) or paged lists; undefined before the first. */
  viewListMode?: () => ListMode | undefined;
}

export class Metrics {
  readonly registry = new Registry();
  readonly alerts: Counter<'envelope'>;
  readonly decisions: Counter<'decision' | 'outcome' | 'code'>;
  readonly kubeRequests: Counter<'verb' | 'resource' | 'code'>;
  readonly unauthorized: Counter;
  readonly actions: Counter<'action' | 'workload_kind'>;
  readonly isolations: Counter<'holds'>;
  readonly nodeActions: Counter<'outcome' | 'code'>;
  readonly auditSuppressed: Counter<'outcome'>;
  readonly kubeDuration: Histogram<'verb' | 'resource'>;
  readonly alertDuration: Histogram<'decision'>;

  private bounds: BoundsState | undefined;

  /** The pipeline's live state for the gauges (the responder exists only after the Kubernetes client). */
  bind(bounds: BoundsState): void {
    this.bounds = bounds;
  }

  constructor(processMetrics = true) {
    const state = () => this.bounds;
    const registers = [this.registry];
    this.alerts = new Counter({ name: 'falco_pod_delete_alerts_total', help: 'Requests received, by envelope (plain, kubeless, cloudevent, unknown).', labelNames: ['envelope'], registers });
    this.decisions = new Counter({ name: 'falco_pod_delete_decisions_total', help: 'Alerts by decision, outcome and reason code.', labelNames: ['decision', 'outcome', 'code'], registers });
    this.actions = new Counter({ name: 'falco_pod_delete_actions_total', help: 'Actions taken (or dry-run), by action and by the kind of workload the pod belonged to (none: a bare pod).', labelNames: ['action', 'workload_kind'], registers });
    this.isolations = new Counter({ name: 'falco_pod_delete_isolations_total', help: 'Pods isolated, by whether the isolation holds (true; false: another NetworkPolicy allows traffic; unchecked: the policies could not be read).', labelNames: ['holds'], registers });
    this.nodeActions = new Counter({ name: 'falco_pod_delete_node_actions_total', help: "The node's part of responses (cordon), by outcome (cordoned, skipped) and node code.", labelNames: ['outcome', 'code'], registers });
    this.unauthorized = new Counter({ name: 'falco_pod_delete_unauthorized_requests_total', help: 'Requests refused with 401 (missing or wrong caller token).', registers });
    this.auditSuppressed = new Counter({ name: 'falco_pod_delete_audit_lines_suppressed_total', help: 'Requests summarised instead of audited one by one, by outcome: unauthorized (rejected, at most 10 lines a second), declined (skipped) and rejected alerts (AUDIT_DECLINES_PER_SECOND).', labelNames: ['outcome'], registers });
    this.kubeRequests = new Counter({ name: 'falco_pod_delete_kube_requests_total', help: 'Kubernetes API calls by verb, resource and HTTP status (or error kind).', labelNames: ['verb', 'resource', 'code'], registers });
    this.kubeDuration = new Histogram({ name: 'falco_pod_delete_kube_request_duration_seconds', help: 'Kubernetes API call latency.', labelNames: ['verb', 'resource'], buckets: SECONDS, registers });
    this.alertDuration = new Histogram({ name: 'falco_pod_delete_alert_duration_seconds', help: 'Time from request to answer.', labelNames: ['decision'], buckets: SECONDS, registers });
    new Gauge({ name: 'falco_pod_delete_coalescing_entries', help: 'Pods remembered for coalescing.', registers, collect() { this.set(state()?.coalescingEntries() ?? 0); } });
    new Gauge({ name: 'falco_pod_delete_actions_in_window', help: 'Actions taken in the current blast-radius window.', registers, collect() { this.set(state()?.actionsInWindow() ?? 0); } });
    new Gauge({ name: 'falco_pod_delete_action_limit', help: 'Blast-radius limit per window (0: off).', registers, collect() { this.set(state()?.actionLimit ?? 0); } });
    new Gauge({ name: 'falco_pod_delete_events_suppressed', help: 'Kubernetes Events not written (one per pod and reason per window; at most 20/s, bursts of 50).', registers, collect() { this.set(state()?.eventsSuppressed() ?? 0); } });
    new Gauge({ name: 'falco_pod_delete_view_pods', help: 'Pods in the local view (absent with POD_VIEW=off).', registers, collect() { const n = state()?.viewPods?.(); if (n !== undefined) this.set(n); } });
    new Gauge({ name: 'falco_pod_delete_view_synced', help: 'Whether the local view is listed and watching (1), or checks read the API (0).', registers, collect() { const v = state()?.viewSynced?.(); if (v !== undefined) this.set(v ? 1 : 0); } });
    new Gauge({ name: 'falco_pod_delete_view_list_mode', help: 'How the local view got its state (1 on the mode of the last list): streaming (WatchList, sendInitialEvents) where the server offers it, else paged.', labelNames: ['mode'], registers, collect() {
      const mode = state()?.viewListMode?.();
      if (mode === undefined) return;
      this.set({ mode }, 1);
      this.set({ mode: mode === 'streaming' ? 'paged' : 'streaming' }, 0);
    } });
    if (processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'falco_pod_delete_' });
  }

  observeKube(verb: string, resource: string, code: string, seconds: number): void {
    this.kubeRequests.inc({ verb, resource, code });
    this.kubeDuration.observe({ verb, resource }, seconds);
  }
}

/** GET /metrics on its own port; everything else is 404. */
export async function startMetricsServer(metrics: Metrics, port: number, host = '0.0.0.0'): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (e: unknown) => res.writeHead(500).end(String(e)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  server.unref();
  return server;
}
