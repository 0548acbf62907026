// The node's part of a response (cordon): after the pod's action is done, on the node the verified pod runs
// on. Every guard resolves to leaving the node as it is, with the reason in the answer: a control-plane node,
// a critical node (CRITICAL_NODES), a cluster that would keep fewer schedulable Ready nodes than
// MIN_SCHEDULABLE_NODES, or a node budget spent (NODE_ACTION_LIMIT per window, shared by replicas).
import { cordonAction, labelTime } from './actions/index.js';
import type { Alert, PodRef } from './alert.js';
import { ActionLimiter } from './bounds.js';
import { BudgetSlots, type Coordinator, type Slot } from './coordination.js';
import type { Deadline } from './deadline.js';
import type { EventRecorder } from './events.js';
import { type Kube, KubeError, type NodeSnapshot, type PodSnapshot } from './kube/index.js';
import type { NodeOutcome } from './outcome.js';
import { globMatch } from './policy.js';

export interface NodeSettings {
  dryRun: boolean;
  criticalNodes: readonly string[];
  minSchedulableNodes: number;
  nodeActionLimit: number;
  actionWindowMs: number;
  nodeLabel: string;
}

/** The labels that mark a control-plane node (the second is the one before Kubernetes 1.20). */
export const CONTROL_PLANE_LABELS = ['node-role.kubernetes.io/control-plane', 'node-role.kubernetes.io/master'];
const isControlPlane = (n: NodeSnapshot) => CONTROL_PLANE_LABELS.some((l) => l in n.labels);
/** The key both budgets count node actions under. */
const NODES = 'nodes';

/** Every code the node's part can carry, and what it means (docs/policy.md lists them). */
export const NODE_CODES = {
  cordon: 'cordoned: spec.unschedulable set, and NODE_LABEL with the time',
  'dry-run': 'DRY_RUN: every guard passed and the server-side dry run of the cordon too; nothing changed',
  'pod-not-contained': "the pod's action was not done (refused, failed or rate-limited): the node is left as it is",
  'node-actions-off': 'NODE_ACTION_LIMIT is 0: cordon is off',
  'no-node': 'the pod is not scheduled on a node',
  'node-not-found': "the pod's node does not exist",
  'control-plane-node': 'the node is labelled node-role.kubernetes.io/control-plane (or master): never cordoned',
  'critical-node': 'the node matches CRITICAL_NODES: never cordoned',
  'already-cordoned': 'the node is unschedulable already (the reason says whether this function cordoned it)',
  'node-floor': 'cordoning it would leave fewer schedulable Ready worker nodes than MIN_SCHEDULABLE_NODES',
  'node-rate-limited': 'the node budget (NODE_ACTION_LIMIT per ACTION_WINDOW_SECONDS, across replicas) is spent',
  conflict: 'the node changed between its read and the cordon (its resourceVersion): not cordoned; the next alert reads it again',
  forbidden: 'RBAC forbids a node call (rbac.yaml grants get, list and patch on nodes)',
  guardrail: "the API server's admission policy (guardrails.yaml) refused the cordon",
  failed: 'a node call failed otherwise (timeout, API unavailable, bad answer): the reason says which',
} as const;
export type NodeCode = keyof typeof NODE_CODES;

export class NodeResponder {
  /** The node budget: NODE_ACTION_LIMIT per window, locally and (COORDINATION=cluster) in its own Lease. */
  private readonly slots: BudgetSlots;

  constructor(
    private readonly kube: Kube,
    private readonly settings: NodeSettings,
    private readonly events: EventRecorder,
    /** With COORDINATION=cluster: the node budget's own Lease. */
    readonly coordinator: Coordinator | undefined,
  ) {
    this.slots = new BudgetSlots(new ActionLimiter(settings.nodeActionLimit, settings.actionWindowMs, settings.nodeActionLimit), coordinator);
  }

  /** The node's part when the pod's action did not happen. */
  static notContained(pod: PodSnapshot, why: string): NodeOutcome {
    return { name: pod.nodeName ?? '', outcome: 'skipped', code: 'pod-not-contained', reason: `not cordoned: the pod was not contained (${why})` };
  }

  /** Cordons the verified pod's node, unless a guard says not to. Never throws: a failure is a skipped node part. */
  async cordon(alert: Alert, ref: PodRef, pod: PodSnapshot, entry: string, deadline: Deadline): Promise<NodeOutcome> {
    const name = pod.nodeName ?? '';
    const skip = (code: NodeCode, reason: string): NodeOutcome => ({ name, outcome: 'skipped', code, reason: `not cordoned: ${reason}` });
    if (this.settings.nodeActionLimit === 0) return skip('node-actions-off', 'NODE_ACTION_LIMIT is 0');
    if (!pod.nodeName) return skip('no-node', `${ref.namespace}/${ref.name} is not scheduled on a node`);
    let slot: Slot | undefined;
    const giveBack = () => {
      this.slots.giveBack(slot);
      slot = undefined;
    };
    try {
      const node = await this.kube.readNode(name, deadline);
      if (!node) return skip('node-not-found', `node ${name} does not exist`);
      if (isControlPlane(node)) return skip('control-plane-node', `node ${name} is a control-plane node`);
      const critical = this.settings.criticalNodes.find((p) => globMatch(p, name));
      if (critical) return skip('critical-node', `node ${name} matches CRITICAL_NODES (${critical})`);
      if (node.unschedulable) {
        const ours = node.labels[this.settings.nodeLabel] !== undefined;
        return skip('already-cordoned', `node ${name} is unschedulable already${ours ? `, cordoned by this function (${this.settings.nodeLabel}=${node.labels[this.settings.nodeLabel]})` : ', by someone else'}`);
      }
      const schedulable = (await this.kube.listNodes(deadline)).filter((n) => n.name !== name && !n.unschedulable && n.ready && !isControlPlane(n)).length;
      if (schedulable < this.settings.minSchedulableNodes) {
        return skip('node-floor', `cordoning ${name} would leave ${schedulable} schedulable Ready worker node${schedulable === 1 ? '' : 's'}, below MIN_SCHEDULABLE_NODES=${this.settings.minSchedulableNodes}`);
      }
      const taken = await this.slots.take(NODES, deadline);
      if ('which' in taken) {
        const window = `${this.settings.nodeActionLimit} per ${this.settings.actionWindowMs / 1000} s${this.coordinator ? ' across all replicas' : ''}`;
        return skip('node-rate-limited', `the node budget is spent: NODE_ACTION_LIMIT=${window}, ${taken.taken} taken in the window${this.coordinator ? `, ${taken.heldElsewhere} reserved by other replicas` : ''}`);
      }
      slot = taken;
      const result = await this.kube.cordonNode(node, this.settings.nodeLabel, labelTime(new Date()), this.settings.dryRun, deadline);
      if (result === 'gone') {
        giveBack();
        return skip('node-not-found', `node ${name} was gone before the cordon`);
      }
      if (result === 'changed') {
        giveBack();
        return skip('conflict', `node ${name} changed between its read and the cordon`);
      }
      this.coordinator?.refill();
      if (this.settings.dryRun) {
        giveBack();
        return { name, outcome: 'skipped', code: 'dry-run', reason: `dry-run: would have cordoned node ${name} (server-side dry run passed)` };
      }
      const reason = `cordoned node ${name} by policy entry "${entry}": nothing new is scheduled there; its pods keep running (uncordon with falco-pod-delete release node/${name})`;
      this.events.recordNode(alert, ref, { name, uid: node.uid }, cordonAction.eventReason, reason);
      return { name, outcome: 'cordoned', code: 'cordon', reason };
    } catch (e) {
      giveBack();
      const code: NodeCode = e instanceof KubeError && (e.code === 'forbidden' || e.code === 'guardrail') ? e.code : 'failed';
      return { name, outcome: 'skipped', code, reason: `not cordoned: ${(e as Error).message}` };
    }
  }
}
