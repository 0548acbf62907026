// An in-memory Kube for in-process tests (fuzzing, explain agreement): pods are described by a subclass,
// leases behave like the API's (AlreadyExists, resourceVersion preconditions).
import type { PodRef } from '../../falco-pod-delete/src/alert.js';
import type { PolicyFacts } from '../../falco-pod-delete/src/isolation.js';
import type { ControllerStatus, IsolationChange, Kube, NodeSnapshot, LeaseRecord, LeaseSpec, MutationResult, PodSnapshot, Verified, WorkloadRef } from '../../falco-pod-delete/src/kube/index.js';

export abstract class StubKube implements Kube {
  readonly touched: PodRef[] = [];
  private readonly leases = new Map<string, LeaseRecord>();
  private version = 1;

  protected abstract pod(p: PodRef): PodSnapshot;

  async readPod(p: PodRef): Promise<PodSnapshot | null> {
    this.touched.push(p);
    return this.pod(p);
  }
  async listPodsOnNode() {
    return [this.pod({ namespace: 'default', name: 'found-by-container' })];
  }
  async readNamespaceLabels(_namespace: string): Promise<Record<string, string> | null> {
    return {};
  }
  async deletePod(p: PodRef, _verified: Verified, _grace: number | undefined, _dryRun: boolean): Promise<MutationResult> {
    this.touched.push(p);
    return 'done';
  }
  async evictPod(p: PodRef, _verified: Verified, _grace: number | undefined, _dryRun: boolean): Promise<MutationResult | { blocked: string }> {
    this.touched.push(p);
    return 'done';
  }
  async readController(_namespace: string, _ref: WorkloadRef): Promise<ControllerStatus | null> {
    return null;
  }
  async readPodLog() {
    return '';
  }
  async ensureQuarantinePolicy() {}
  /** NetworkPolicies by namespace (the quarantine one is not listed unless a test puts it here). */
  readonly networkPolicies = new Map<string, PolicyFacts[]>();
  async listNetworkPolicies(namespace: string): Promise<PolicyFacts[]> {
    return this.networkPolicies.get(namespace) ?? [];
  }
  async isolatePod(p: PodRef, _verified: Verified, _change: IsolationChange, _dryRun: boolean): Promise<MutationResult> {
    this.touched.push(p);
    return 'done';
  }
  async createEvent() {}
  /** Nodes by name; cordonNode marks them, as the API would. */
  readonly nodes = new Map<string, NodeSnapshot>();
  async readNode(name: string): Promise<NodeSnapshot | null> {
    return this.nodes.get(name) ?? null;
  }
  async listNodes(): Promise<NodeSnapshot[]> {
    return [...this.nodes.values()];
  }
  async cordonNode(node: NodeSnapshot, label: string, value: string, dryRun: boolean): Promise<MutationResult> {
    const now = this.nodes.get(node.name);
    if (!now) return 'gone';
    if (now.resourceVersion !== node.resourceVersion) return 'changed';
    if (!dryRun) this.nodes.set(node.name, { ...now, unschedulable: true, labels: { ...now.labels, [label]: value }, resourceVersion: String(Number(now.resourceVersion) + 1) });
    return 'done';
  }

  private record(l: LeaseSpec): LeaseRecord {
    return { name: l.name, resourceVersion: String(++this.version), holder: l.holder, renewTime: new Date(), durationSeconds: l.durationSeconds, annotations: l.annotations, labels: l.labels, created: new Date() };
  }
  async createLease(ns: string, l: LeaseSpec) {
    if (this.leases.has(`${ns}/${l.name}`)) return 'exists' as const;
    const r = this.record(l);
    this.leases.set(`${ns}/${l.name}`, r);
    return r;
  }
  async readLease(ns: string, name: string) {
    return this.leases.get(`${ns}/${name}`) ?? null;
  }
  async replaceLease(ns: string, rv: string, l: LeaseSpec) {
    const current = this.leases.get(`${ns}/${l.name}`);
    if (!current) return 'gone' as const;
    if (current.resourceVersion !== rv) return 'conflict' as const;
    const r = this.record(l);
    this.leases.set(`${ns}/${l.name}`, r);
    return r;
  }
}
