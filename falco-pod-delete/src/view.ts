// The local view of the cluster: every pod (stripped to what the checks read) and every namespace's labels,
// kept by two reflectors (list, then watch), with an index by container id. The response stage asks the
// view first and falls back to today's reads whenever the view cannot answer for sure:
// - not synced (still listing, its watch broken, or above VIEW_MAX_PODS): undefined, so the caller reads;
// - no entry for the pod (created a moment ago, or never there): undefined, the caller reads;
// - a refusal found on the view (it may lag): confirmed by a read before it is answered.
// Acting on a view's pod is safe even when the view lags: the action carries the pod's uid and
// resourceVersion as preconditions, and a pod changed since answers 409, after which it is read again.
import type { PodRef } from './alert.js';
import type { ListWatch } from './kube/client-node.js';
import type { PodSnapshot } from './kube/index.js';
import { snapshot } from './kube/pod-snapshot.js';
import { type ListMode, Reflector, type ReflectorState, type ReflectorStore } from './reflector.js';

/** Container ids are indexed by this many leading characters: Falco's container.id is the 12-character short id. */
const ID_PREFIX = 12;

const key = (namespace: string, name: string) => `${namespace}/${name}`;

/** Pods by namespace/name, indexed by container id. */
export class PodStore implements ReflectorStore<PodSnapshot> {
  private readonly pods = new Map<string, PodSnapshot>();
  private readonly byContainer = new Map<string, Set<string>>();

  get size(): number {
    return this.pods.size;
  }

  get(namespace: string, name: string): PodSnapshot | undefined {
    return this.pods.get(key(namespace, name));
  }

  /** The pods one of whose container ids starts with `prefix` (at least ID_PREFIX characters, or the whole id). */
  withContainer(prefix: string): PodSnapshot[] {
    const keys = this.byContainer.get(prefix.slice(0, ID_PREFIX));
    if (!keys) return [];
    return [...keys].map((k) => this.pods.get(k)).filter((p): p is PodSnapshot => p !== undefined && p.containerIds.some((id) => id.startsWith(prefix)));
  }

  replace(items: PodSnapshot[]): void {
    this.pods.clear();
    this.byContainer.clear();
    for (const p of items) this.upsert(p);
  }

  upsert(p: PodSnapshot): void {
    const k = key(p.namespace, p.name);
    const old = this.pods.get(k);
    if (old) this.unindex(k, old);
    this.pods.set(k, p);
    for (const id of p.containerIds) {
      const short = id.slice(0, ID_PREFIX);
      let set = this.byContainer.get(short);
      if (!set) this.byContainer.set(short, (set = new Set()));
      set.add(k);
    }
  }

  remove(p: PodSnapshot): void {
    const k = key(p.namespace, p.name);
    const old = this.pods.get(k);
    // A DELETED event for an older incarnation of the name does not remove the new pod.
    if (!old || (p.uid && old.uid !== p.uid)) return;
    this.unindex(k, old);
    this.pods.delete(k);
  }

  private unindex(k: string, p: PodSnapshot): void {
    for (const id of p.containerIds) {
      const short = id.slice(0, ID_PREFIX);
      const set = this.byContainer.get(short);
      set?.delete(k);
      if (set?.size === 0) this.byContainer.delete(short);
    }
  }
}

interface NamespaceEntry {
  name: string;
  labels: Record<string, string>;
}

class NamespaceStore implements ReflectorStore<NamespaceEntry> {
  readonly labels = new Map<string, Record<string, string>>();
  replace(items: NamespaceEntry[]): void {
    this.labels.clear();
    for (const n of items) this.upsert(n);
  }
  upsert(n: NamespaceEntry): void {
    this.labels.set(n.name, n.labels);
  }
  remove(n: NamespaceEntry): void {
    this.labels.delete(n.name);
  }
}

function podOf(raw: Record<string, any>): PodSnapshot | undefined {
  const p = snapshot(raw, false);
  return p.uid && p.name && p.namespace ? p : undefined;
}

function namespaceOf(raw: Record<string, any>): NamespaceEntry | undefined {
  const name = raw?.metadata?.name;
  if (typeof name !== 'string' || name === '') return undefined;
  const labels = raw.metadata.labels;
  return { name, labels: typeof labels === 'object' && labels !== null ? labels : {} };
}

export interface ViewSettings {
  maxPods: number;
  /** Try a streaming list first (default true); false: paged lists only (VIEW_LIST=paged). */
  streaming?: boolean;
  log: (level: 'info' | 'warn', msg: string, extra: object) => void;
}

export class PodView {
  readonly pods = new PodStore();
  private readonly namespaces = new NamespaceStore();
  readonly podReflector: Reflector<PodSnapshot>;
  readonly namespaceReflector: Reflector<NamespaceEntry>;
  private readonly syncWaiters = new Set<() => void>();

  constructor(lw: ListWatch, settings: ViewSettings) {
    const report = (what: string) => (state: ReflectorState, detail: string) => {
      if (state === 'watching') for (const check of [...this.syncWaiters]) check();
      if (state === 'watching' || state === 'listing') settings.log('info', `view of ${what}: ${detail}`, { view: what, state });
      else if (state !== 'stopped') settings.log('warn', `view of ${what}: ${detail}; until it is back, checks read the API`, { view: what, state });
    };
    const streaming = settings.streaming ?? true;
    this.podReflector = new Reflector(lw, { path: '/api/v1/pods', transform: podOf, store: this.pods, maxObjects: settings.maxPods, streaming, onState: report('pods') });
    this.namespaceReflector = new Reflector(lw, { path: '/api/v1/namespaces', transform: namespaceOf, store: this.namespaces, streaming, onState: report('namespaces') });
  }

  start(): void {
    this.podReflector.start();
    this.namespaceReflector.start();
  }

  async stop(): Promise<void> {
    await Promise.all([this.podReflector.stop(), this.namespaceReflector.stop()]);
  }

  get synced(): boolean {
    return this.podReflector.fresh() && this.namespaceReflector.fresh();
  }

  /** True once synced; false when `ms` pass first (the caller goes on, and checks read the API until it is). */
  whenSynced(ms: number): Promise<boolean> {
    if (this.synced) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (synced: boolean) => {
        clearTimeout(timer);
        this.syncWaiters.delete(check);
        resolve(synced);
      };
      const check = () => {
        if (this.synced) done(true);
      };
      const timer = setTimeout(() => done(false), ms);
      timer.unref();
      this.syncWaiters.add(check);
    });
  }

  /** The pod as the view has it, or undefined when the view cannot say (not synced, or no entry): read it then. */
  /** How the pods' state was got: a streaming list (WatchList), or a paged list where the server offers none. */
  get listMode(): ListMode | undefined {
    return this.podReflector.listMode;
  }

  pod(ref: PodRef): PodSnapshot | undefined {
    if (!this.podReflector.fresh()) return undefined;
    return this.pods.get(ref.namespace, ref.name);
  }

  /** A namespace's labels, or undefined when the view cannot say: read them then. */
  namespaceLabels(namespace: string): Record<string, string> | undefined {
    if (!this.namespaceReflector.fresh()) return undefined;
    return this.namespaces.labels.get(namespace);
  }

  /** The pods on `node` running a container whose id starts with `containerId`, or undefined when not synced. */
  podsWithContainer(node: string, containerId: string): PodSnapshot[] | undefined {
    if (!this.podReflector.fresh()) return undefined;
    return this.pods.withContainer(containerId).filter((p) => p.nodeName === node);
  }
}
