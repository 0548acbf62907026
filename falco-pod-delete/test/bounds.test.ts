import { ActionLimiter, Coalescer, namespaceShare } from '../src/bounds.js';

describe('Coalescer', () => {
  it('runs concurrent work for one key once', async () => {
    const c = new Coalescer<string>(1000);
    let runs = 0;
    const work = () => new Promise<string>((r) => setTimeout(() => r(`run ${++runs}`), 10));
    const results = await Promise.all(Array.from({ length: 50 }, () => c.run('k', work)).map((x) => x.promise));
    expect(runs).toBe(1);
    expect(new Set(results)).toEqual(new Set(['run 1']));
  });

  it('answers from the window after success, and runs again once it has passed', async () => {
    const c = new Coalescer<number>(1000);
    let runs = 0;
    await c.run('k', async () => ++runs, 0).promise;
    expect(c.run('k', async () => ++runs, 500).first).toBe(false);
    expect(c.run('k', async () => ++runs, Date.now() + 5000).first).toBe(true);
  });

  it('forgets failures and outcomes it is told not to keep', async () => {
    const c = new Coalescer<string>(60_000, 100, (v) => v !== 'failed');
    await c.run('a', async () => 'failed').promise;
    await expect(c.run('b', async () => { throw new Error('x'); }).promise).rejects.toThrow('x');
    expect(c.size).toBe(0);
  });

  it('stays under its size cap with many distinct keys', async () => {
    const c = new Coalescer<number>(60_000, 100);
    for (let i = 0; i < 1000; i++) await c.run(`k${i}`, async () => i).promise;
    expect(c.size).toBeLessThanOrEqual(100);
  });
});

describe('ActionLimiter', () => {
  it('allows limit actions per window, then refuses until the window slides', () => {
    const l = new ActionLimiter(2, 1000);
    expect([l.tryTake('a', 0), l.tryTake('b', 10), l.tryTake('c', 20)]).toEqual([expect.objectContaining({ at: 0 }), expect.objectContaining({ at: 10 }), 'full']);
    expect(l.tryTake('a', 1001)).toEqual({ at: 1001, namespace: 'a' });
    expect(l.used(1001)).toBe(2);
  });

  it('is unlimited at 0', () => {
    const l = new ActionLimiter(0, 1000);
    expect(Array.from({ length: 100 }, () => l.tryTake('a', 0)).every((t) => t === undefined)).toBe(true);
  });

  it('lets no namespace take more than its share, and others still act', () => {
    const l = new ActionLimiter(4, 1000, 2);
    expect([l.tryTake('tenant', 0), l.tryTake('tenant', 1)].every((t) => typeof t === 'object')).toBe(true);
    expect(l.tryTake('tenant', 2)).toBe('namespace-full');
    expect(typeof l.tryTake('prod', 3)).toBe('object');
  });

  it('gives back exactly the slot that was taken, not the newest', () => {
    const l = new ActionLimiter(2, 1000);
    const first = l.tryTake('a', 0);
    l.tryTake('b', 900);
    l.giveBack(first as Exclude<typeof first, string | undefined>);
    // Had the newest (900) gone back, the slot taken at 0 would still count at 950 and the window be full.
    expect(typeof l.tryTake('c', 950)).toBe('object');
    expect(l.tryTake('d', 950)).toBe('full');
    // The one taken at 900 still counts until 1900.
    expect(l.used(1899)).toBe(2);
  });
});

describe('namespaceShare', () => {
  it('reads a number or a percentage of ACTION_LIMIT, rounded up, between 1 and the limit', () => {
    expect([namespaceShare('50%', 20), namespaceShare('50%', 3), namespaceShare('1%', 20), namespaceShare('7', 20), namespaceShare('70', 20), namespaceShare('50%', 0)]).toEqual([10, 2, 1, 7, 20, 0]);
  });
});
