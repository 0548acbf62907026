// The way back, for people: `release NAMESPACE/POD`, `release node/NAME` and `list`, run with the operator's
// kubeconfig, never the function's token (guardrails.yaml forbids that token every step back, and the command
// refuses to run as it). Each command prints one JSON line like the audit's and writes an Event on what it
// changed; --dry-run sends every write as a server-side dry run. Exit 0: done (or would be); 1: refused,
// nothing changed (the line says why); 2: bad input (no such pod, not isolated, the wrong kubeconfig).
import { existsSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import { parseLabelTime } from './actions/index.js';
import { pointerKey } from './kube/index.js';
import { classify } from './kube/kube-error.js';
import { ISOLATION_ANNOTATION, type IsolationRecord, parseIsolationRecord } from './kube/quarantine.js';

/** Bad input: one line, exit 2. */
export class UsageError extends Error {}

/** The operator's kubeconfig: --kubeconfig, else KUBECONFIG, else ~/.kube/config; never an in-cluster fallback. */
export function operatorKubeConfig(path: string | undefined, env: Record<string, string | undefined>, home: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  const files = path ? [path] : env.KUBECONFIG ? env.KUBECONFIG.split(':').filter((f) => f !== '') : [`${home}/.kube/config`];
  const readable = files.filter((f) => existsSync(f));
  if (readable.length === 0) throw new UsageError(`no kubeconfig: ${files.join(', ')} ${files.length === 1 ? 'does' : 'do'} not exist (give --kubeconfig PATH, or set KUBECONFIG)`);
  try {
    for (const f of readable) kc.loadFromFile(f);
  } catch (e) {
    throw new UsageError(`the kubeconfig ${readable.join(':')} cannot be loaded: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!kc.getCurrentCluster()) throw new UsageError(`the kubeconfig ${readable.join(':')} has no current cluster`);
  return kc;
}

export interface ReleaseSettings {
  quarantineLabel: string;
  nodeLabel: string;
  dryRun: boolean;
  /** release NAMESPACE/POD --delete: the inspection is done, delete the pod. */
  delete: boolean;
}

/** What a command prints, as one JSON line. */
export interface ReleaseLine {
  command: 'release' | 'list';
  outcome: 'released' | 'deleted' | 'kept' | 'listed';
  code: string;
  reason: string;
  dryRun: boolean;
  by: string;
  [key: string]: unknown;
}

/** The kinds whose controller releases a detached pod and starts a replacement, with how to read one. */
const CONTROLLERS: Record<string, (apps: k8s.AppsV1Api, batch: k8s.BatchV1Api, namespace: string, name: string) => Promise<unknown>> = {
  ReplicaSet: (apps, _b, namespace, name) => apps.readNamespacedReplicaSet({ namespace, name }),
  DaemonSet: (apps, _b, namespace, name) => apps.readNamespacedDaemonSet({ namespace, name }),
  Job: (_a, batch, namespace, name) => batch.readNamespacedJob({ namespace, name }),
};

const jsonPatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch);

/** The ServiceAccount names the function runs as (rbac.yaml's, and the copies a test or a second install makes). */
const FUNCTION_IDENTITY = /^system:serviceaccount:[^:]+:falco-pod-delete$/;

export class Release {
  private readonly core: k8s.CoreV1Api;
  private readonly apps: k8s.AppsV1Api;
  private readonly batch: k8s.BatchV1Api;
  private user = '';

  constructor(private readonly kc: k8s.KubeConfig, private readonly settings: ReleaseSettings) {
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    this.apps = kc.makeApiClient(k8s.AppsV1Api);
    this.batch = kc.makeApiClient(k8s.BatchV1Api);
  }

  /** Who the kubeconfig is, as the API server says (SelfSubjectReview); never the function's own ServiceAccount. */
  async whoami(): Promise<string> {
    const server = this.kc.getCurrentCluster()?.server ?? '(no server)';
    let review: k8s.V1SelfSubjectReview;
    try {
      review = await this.kc.makeApiClient(k8s.AuthenticationV1Api).createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } });
    } catch (e) {
      throw new UsageError(`the kubeconfig does not reach the Kubernetes API at ${server} as anyone: ${describeFailure(e)}`);
    }
    const user = review.status?.userInfo?.username ?? '';
    if (FUNCTION_IDENTITY.test(user)) {
      throw new UsageError(`the kubeconfig is the function's own ServiceAccount (${user}): release is for people; run it with your own kubeconfig (KUBECONFIG or --kubeconfig)`);
    }
    this.user = user;
    return user;
  }

  private line(fields: Pick<ReleaseLine, 'command' | 'outcome' | 'code' | 'reason'> & Record<string, unknown>): ReleaseLine {
    return { time: new Date().toISOString(), ...fields, dryRun: this.settings.dryRun, by: this.user };
  }

  private dry(): { dryRun?: string } {
    return this.settings.dryRun ? { dryRun: 'All' } : {};
  }

  /** release NAMESPACE/POD: the old labels back and the quarantine label gone, or --delete. */
  async releasePod(namespace: string, name: string): Promise<{ exit: 0 | 1; line: ReleaseLine }> {
    const pod = await this.readPod(namespace, name);
    const labels = pod.metadata?.labels ?? {};
    const q = this.settings.quarantineLabel;
    if (labels[q] !== 'true') throw new UsageError(`pod ${namespace}/${name} is not isolated: it has no ${q}=true label`);
    const record = parseIsolationRecord(pod.metadata?.annotations?.[ISOLATION_ANNOTATION]);
    const base = { command: 'release' as const, target: 'pod', namespace, pod: name, isolatedSince: record?.since, rule: record?.rule };
    const precondition = { uid: pod.metadata!.uid!, resourceVersion: pod.metadata!.resourceVersion! };
    if (this.settings.delete) {
      await this.core.deleteNamespacedPod({ namespace, name, body: { preconditions: precondition }, ...this.dry() });
      const reason = `${this.settings.dryRun ? 'dry-run: would have deleted' : 'deleted'} ${namespace}/${name}, isolated since ${record?.since ?? '(unknown)'}: the inspection is done`;
      await this.podEvent(pod, reason);
      return { exit: 0, line: this.line({ ...base, outcome: 'deleted', code: 'deleted', reason }) };
    }
    const others = Object.keys(labels).filter((k) => k !== q);
    if (!record && others.length === 0) {
      throw new UsageError(`pod ${namespace}/${name} carries only ${q}=true and no ${ISOLATION_ANNOTATION} record of its labels: nothing to put back (label it by hand, or release it with --delete)`);
    }
    // A detached pod whose controller is still there: its replacement runs, and the labels back would hand
    // this pod to the controller, which would then remove one pod (maybe the clean replacement).
    const controller = record?.detached && record.owner ? await this.liveController(namespace, record.owner) : undefined;
    if (controller) {
      const reason = `not released: ${namespace}/${name} left ${controller} when it was isolated, and its replacement runs; restoring its labels would hand it back to ${controller}, which would then remove one pod. Run release ${namespace}/${name} --delete when the inspection is done`;
      return { exit: 1, line: this.line({ ...base, outcome: 'kept', code: 'left-its-controller', reason, owner: controller }) };
    }
    const restored: Record<string, string> = record?.detached ? { ...record.labels } : Object.fromEntries(Object.entries(labels).filter(([k]) => k !== q));
    const patch: object[] = [
      { op: 'test', path: '/metadata/uid', value: precondition.uid },
      { op: 'test', path: '/metadata/resourceVersion', value: precondition.resourceVersion },
      { op: 'replace', path: '/metadata/labels', value: restored },
    ];
    if (pod.metadata?.annotations?.[ISOLATION_ANNOTATION] !== undefined) patch.push({ op: 'remove', path: `/metadata/annotations/${pointerKey(ISOLATION_ANNOTATION)}` });
    try {
      await this.core.patchNamespacedPod({ namespace, name, body: patch, ...this.dry() }, jsonPatch);
    } catch (e) {
      if (e instanceof k8s.ApiException && (e.code === 409 || e.code === 422)) {
        return { exit: 1, line: this.line({ ...base, outcome: 'kept', code: 'changed', reason: `not released: ${namespace}/${name} changed while it was read; run the command again` }) };
      }
      throw e;
    }
    const reason = `${this.settings.dryRun ? 'dry-run: would have released' : 'released'} ${namespace}/${name}: its labels are back (${Object.entries(restored).map(([k, v]) => `${k}=${v}`).join(', ') || 'none'}) and ${q} is gone, so the quarantine NetworkPolicy no longer selects it`;
    await this.podEvent(pod, reason);
    return { exit: 0, line: this.line({ ...base, outcome: 'released', code: 'released', reason, labels: restored }) };
  }

  /** release node/NAME: uncordon and the label gone, only where the function set them. */
  async releaseNode(name: string): Promise<{ exit: 0 | 1; line: ReleaseLine }> {
    let node: k8s.V1Node;
    try {
      node = await this.core.readNode({ name });
    } catch (e) {
      if (e instanceof k8s.ApiException && e.code === 404) throw new UsageError(`no node ${name}`);
      throw e;
    }
    const label = node.metadata?.labels?.[this.settings.nodeLabel];
    const since = parseLabelTime(label)?.toISOString();
    const base = { command: 'release' as const, target: 'node', node: name, cordonedSince: since };
    if (!node.spec?.unschedulable && label === undefined) throw new UsageError(`node ${name} is not cordoned`);
    if (label === undefined) {
      return { exit: 1, line: this.line({ ...base, outcome: 'kept', code: 'cordoned-by-someone-else', reason: `not released: node ${name} was cordoned by someone else (no ${this.settings.nodeLabel} label): it stays cordoned; kubectl uncordon ${name} if that is right` }) };
    }
    const patch: object[] = [
      { op: 'test', path: '/metadata/resourceVersion', value: node.metadata!.resourceVersion },
      { op: 'remove', path: `/metadata/labels/${pointerKey(this.settings.nodeLabel)}` },
    ];
    if (node.spec?.unschedulable !== undefined) patch.push({ op: 'remove', path: '/spec/unschedulable' });
    await this.core.patchNode({ name, body: patch, ...this.dry() }, jsonPatch);
    const reason = `${this.settings.dryRun ? 'dry-run: would have released' : 'released'} node ${name}, cordoned since ${since ?? label}: schedulable again, ${this.settings.nodeLabel} gone`;
    await this.event({ apiVersion: 'v1', kind: 'Node', name, uid: node.metadata?.uid }, 'default', name, reason);
    return { exit: 0, line: this.line({ ...base, outcome: 'released', code: 'released', reason }) };
  }

  /** list: every pod isolated and node cordoned now, since when, and for which rule. */
  async list(): Promise<{ exit: 0; line: ReleaseLine }> {
    const q = this.settings.quarantineLabel;
    const pods = (await this.core.listPodForAllNamespaces({ labelSelector: `${q}=true` })).items.map((p) => {
      const record: IsolationRecord | undefined = parseIsolationRecord(p.metadata?.annotations?.[ISOLATION_ANNOTATION]);
      return { namespace: p.metadata?.namespace, pod: p.metadata?.name, since: record?.since ?? null, rule: record?.rule ?? null, entry: record?.entry ?? null, detached: record?.detached ?? false, owner: record?.owner ?? null, node: p.spec?.nodeName ?? null };
    });
    const cordons = (await this.core.listNode({ labelSelector: this.settings.nodeLabel })).items;
    // The rule is in the FalcoResponseCordoned Event on the node (while the server keeps Events: an hour by default).
    const events = cordons.length === 0 ? [] : (await this.core.listNamespacedEvent({ namespace: 'default', fieldSelector: 'involvedObject.kind=Node,reason=FalcoResponseCordoned' })).items;
    const nodes = cordons.map((n) => {
      const name = n.metadata?.name ?? '';
      const last = events.filter((e) => e.involvedObject.name === name).sort((a, b) => String(b.lastTimestamp ?? '').localeCompare(String(a.lastTimestamp ?? '')))[0];
      return { node: name, since: parseLabelTime(n.metadata?.labels?.[this.settings.nodeLabel])?.toISOString() ?? null, rule: /Falco rule "((?:[^"\\]|\\.)*)"/.exec(last?.message ?? '')?.[1] ?? null, unschedulable: n.spec?.unschedulable === true };
    });
    const reason = `${pods.length} pod${pods.length === 1 ? '' : 's'} isolated, ${nodes.length} node${nodes.length === 1 ? '' : 's'} cordoned`;
    return { exit: 0, line: this.line({ command: 'list', outcome: 'listed', code: 'listed', reason, pods, nodes }) };
  }

  private async readPod(namespace: string, name: string): Promise<k8s.V1Pod> {
    try {
      return await this.core.readNamespacedPod({ namespace, name });
    } catch (e) {
      if (e instanceof k8s.ApiException && e.code === 404) throw new UsageError(`no pod ${namespace}/${name}`);
      throw e;
    }
  }

  /** The controller a detached pod left, if it still exists ("ReplicaSet web-7d4b9c"). */
  private async liveController(namespace: string, owner: string): Promise<string | undefined> {
    const [kind, name] = owner.split('/');
    const read = CONTROLLERS[kind];
    if (!read || !name) return undefined;
    try {
      await read(this.apps, this.batch, namespace, name);
      return `${kind} ${name}`;
    } catch (e) {
      if (e instanceof k8s.ApiException && e.code === 404) return undefined;
      throw e;
    }
  }

  private podEvent(pod: k8s.V1Pod, reason: string): Promise<void> {
    const namespace = pod.metadata?.namespace ?? '';
    return this.event({ apiVersion: 'v1', kind: 'Pod', name: pod.metadata?.name, namespace, uid: pod.metadata?.uid }, namespace, pod.metadata?.name ?? '', reason);
  }

  /** FalcoResponseReleased (Normal), saying who; in dry-run, the Event is written as a dry run too. */
  private async event(involvedObject: k8s.V1ObjectReference, namespace: string, name: string, what: string): Promise<void> {
    const now = new Date();
    await this.core.createNamespacedEvent({
      namespace,
      body: {
        metadata: { generateName: `${name.slice(0, 200)}.falco-release-`, namespace },
        involvedObject,
        reason: 'FalcoResponseReleased',
        message: `${what} (by ${this.user})`.slice(0, 1024),
        type: 'Normal',
        source: { component: 'falco-pod-delete-release' },
        reportingComponent: 'falco-pod-delete-release',
        reportingInstance: this.user.slice(0, 128) || 'unknown',
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
      ...this.dry(),
    });
  }
}

/** What a failed call says, in one line. */
export function describeFailure(e: unknown): string {
  if (e instanceof k8s.ApiException) {
    const c = classify(e, { verb: 'call', resource: 'the API', namespace: undefined });
    if (c instanceof Error) return c.message.replace('the function may not', 'this kubeconfig may not');
    const body = typeof e.body === 'string' ? e.body : JSON.stringify(e.body);
    return `the Kubernetes API answered ${e.code}: ${(/"message":"([^"]*)"/.exec(body)?.[1] ?? body).slice(0, 300)}`;
  }
  return (e as Error)?.message ?? String(e);
}
