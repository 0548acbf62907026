// The action registry: every response action, one module each. The policy schema's enum and parameters, the
// action type, explain, the Event reasons and the outcome words all derive from this list. Adding an action
// is its module, one line here, its tests, and its lines in rbac.yaml and guardrails.yaml.
import { cordonAction } from './cordon.js';
import { deleteAction } from './delete.js';
import { evictAction } from './evict.js';
import { isolateAction } from './isolate.js';
import { logAction } from './log.js';
import type { ActionDefinition } from './types.js';

export const ACTIONS = [deleteAction, evictAction, isolateAction, logAction] as const;

export type ActionKind = (typeof ACTIONS)[number]['name'];
/** The outcome of an action done: "deleted", "evicted", ... */
export type ActionDone = (typeof ACTIONS)[number]['done'];

export const ACTION_NAMES = ACTIONS.map((a) => a.name) as ActionKind[];

/** The node actions: listed after the pod action in a policy entry's `actions`, done once the pod's is. */
export const NODE_ACTIONS = [cordonAction] as const;
export type NodeActionKind = (typeof NODE_ACTIONS)[number]['name'];
export const NODE_ACTION_NAMES = NODE_ACTIONS.map((a) => a.name) as NodeActionKind[];

const BY_NAME = new Map<string, ActionDefinition>(ACTIONS.map((a) => [a.name, a]));

/** The action a DaemonSet's or StatefulSet's `isolate` rule turns the entry's action into. */
export const ISOLATE: ActionKind = isolateAction.name;
/** What requireHolds turns an isolation that would not hold into. */
export const DELETE: ActionKind = deleteAction.name;
/** What a lookup (no pod named, found by its container) would do, as explain and an async answer name it. */
export const LOOKUP_ACTION: ActionKind = deleteAction.name;

export function actionOf(name: ActionKind): ActionDefinition<ActionKind, ActionDone> {
  return BY_NAME.get(name) as ActionDefinition<ActionKind, ActionDone>;
}

/** The Events that say something was done (or would have been, in dry-run). */
export const DRY_RUN_EVENT = 'FalcoResponseDryRun';
export const ACTION_EVENTS: ReadonlySet<string> = new Set([...ACTIONS.map((a) => a.eventReason), ...NODE_ACTIONS.map((a) => a.eventReason), DRY_RUN_EVENT]);

/** Every action's policy parameters, merged: the properties a policy entry may have besides name, match and action. */
export function actionParameters(): Record<string, object> {
  return Object.assign({}, ...ACTIONS.map((a) => a.parameters));
}

export type { NodeActionDefinition } from './cordon.js';
export { cordonAction, labelTime, parseLabelTime } from './cordon.js';
export type { ActionContext, ActionDefinition, ActResult, RbacRule } from './types.js';
export { LOG_BYTES_MAX, LOG_LINES_MAX } from './types.js';
