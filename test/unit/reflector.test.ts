// The reflector's state, got by a streaming list where the server offers one (WatchList: a watch with
// sendInitialEvents=true whose initial events end with a bookmark), else by a paged list: with a ListWatch
// that answers as kube-apiserver does with the feature on, off (it refuses sendInitialEvents with 422), and
// as a server from before it (it ignores the parameter and never ends the initial events).
import type { ListWatch } from '../../falco-pod-delete/src/kube/client-node.js';
import { WatchError } from '../../falco-pod-delete/src/kube/client-node.js';
import { Reflector } from '../../falco-pod-delete/src/reflector.js';

type Obj = { metadata: { name: string; namespace: string; resourceVersion: string; annotations?: Record<string, string> } };
const pod = (name: string, rv: number): Obj => ({ metadata: { name, namespace: 'apps', resourceVersion: String(rv) } });

class Server implements ListWatch {
  readonly calls: Array<{ kind: 'list' | 'watch'; query: Record<string, string> }> = [];
  constructor(readonly mode: 'watchlist' | 'refuses' | 'predates', readonly pods: Obj[]) {}

  async list(_path: string, query: Record<string, string>) {
    this.calls.push({ kind: 'list', query });
    return { items: this.pods, resourceVersion: '100', continue: undefined };
  }

  async watch(_path: string, query: Record<string, string>, signal: AbortSignal, onEvent: (type: string, object: Record<string, any>) => void, onOpen?: () => void) {
    this.calls.push({ kind: 'watch', query });
    if (query.sendInitialEvents === 'true') {
      if (this.mode === 'refuses') throw new WatchError(422, 'sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled');
      onOpen?.();
      for (const p of this.pods) onEvent('ADDED', p);
      if (this.mode === 'watchlist') {
        onEvent('BOOKMARK', { metadata: { resourceVersion: '100', annotations: { 'k8s.io/initial-events-end': 'true' } } });
        onEvent('ADDED', pod('later', 101));
      }
    } else onOpen?.();
    // The watch stays open until the reflector stops it.
    await new Promise<void>((_resolve, reject) => signal.addEventListener('abort', () => reject(Object.assign(new Error('aborted'), { name: 'AbortError' }))));
  }
}

async function run(server: Server, streamEndMs = 200) {
  const stored = new Map<string, Obj>();
  const store = {
    replace: (items: Obj[]) => {
      stored.clear();
      for (const i of items) stored.set(i.metadata.name, i);
    },
    upsert: (i: Obj) => stored.set(i.metadata.name, i),
    remove: (i: Obj) => stored.delete(i.metadata.name),
  };
  const r = new Reflector<Obj>(server, { path: '/api/v1/pods', transform: (raw) => raw as Obj, store, streamEndMs });
  r.start();
  for (let i = 0; i < 200 && !r.fresh(); i++) await new Promise((res) => setTimeout(res, 10));
  await new Promise((res) => setTimeout(res, 20));
  const result = { fresh: r.fresh(), mode: r.listMode, names: [...stored.keys()].sort() };
  await r.stop();
  return result;
}

describe('the reflector gets its state', () => {
  const pods = [pod('a', 10), pod('b', 11)];

  it('by a streaming list where the server offers one: no LIST at all, and the same watch goes on', async () => {
    const server = new Server('watchlist', pods);
    expect(await run(server)).toEqual({ fresh: true, mode: 'streaming', names: ['a', 'b', 'later'] });
    expect(server.calls).toEqual([{ kind: 'watch', query: expect.objectContaining({ sendInitialEvents: 'true', resourceVersionMatch: 'NotOlderThan', allowWatchBookmarks: 'true' }) }]);
  });

  it('by a paged list when the server refuses sendInitialEvents (the feature off)', async () => {
    const server = new Server('refuses', pods);
    expect(await run(server)).toEqual({ fresh: true, mode: 'paged', names: ['a', 'b'] });
    expect(server.calls.map((c) => c.kind)).toEqual(['watch', 'list', 'watch']);
    expect(server.calls[2].query).toMatchObject({ resourceVersion: '100', allowWatchBookmarks: 'true' });
  });

  it('by a paged list when the initial events never end (a server from before WatchList)', async () => {
    const server = new Server('predates', pods);
    expect(await run(server, 100)).toEqual({ fresh: true, mode: 'paged', names: ['a', 'b'] });
    expect(server.calls.map((c) => c.kind)).toEqual(['watch', 'list', 'watch']);
  });

  it('by a paged list only, when told', async () => {
    const server = new Server('watchlist', pods);
    const stored: Obj[] = [];
    const r = new Reflector<Obj>(server, { path: '/api/v1/pods', transform: (raw) => raw as Obj, store: { replace: (i) => stored.push(...i), upsert: () => undefined, remove: () => undefined }, streaming: false });
    r.start();
    for (let i = 0; i < 100 && !r.fresh(); i++) await new Promise((res) => setTimeout(res, 10));
    expect(r.listMode).toBe('paged');
    await r.stop();
  });
});

describe('a server that does not keep watches', () => {
  it('is not asked again at once: a watch ended within a second with no event backs off, as client-go does', async () => {
    let watches = 0;
    const server: ListWatch = {
      list: async () => ({ items: [pod('a', 1)], resourceVersion: '5', continue: undefined }),
      watch: async (_p, query, _s, _e, onOpen) => {
        if (query.sendInitialEvents === 'true') throw new WatchError(422, 'no WatchList');
        watches++;
        onOpen?.();
      },
    };
    const states: string[] = [];
    const r = new Reflector<Obj>(server, { path: '/api/v1/pods', transform: (raw) => raw as Obj, store: { replace: () => undefined, upsert: () => undefined, remove: () => undefined }, onState: (s, d) => states.push(`${s}: ${d}`) });
    r.start();
    await new Promise((res) => setTimeout(res, 600));
    await r.stop();
    // Without the backoff this loop makes thousands of requests in that time.
    expect(watches).toBeLessThanOrEqual(3);
    expect(states).toContainEqual(expect.stringContaining('very short watch'));
  });
});
