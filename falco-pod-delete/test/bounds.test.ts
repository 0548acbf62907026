import { ActionLimiter, Coalescer } from '../src/bounds.js';

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
    expect([l.tryTake(0), l.tryTake(10), l.tryTake(20)]).toEqual([true, true, false]);
    expect(l.tryTake(1001)).toBe(true);
    expect(l.used(1001)).toBe(2);
  });

  it('is unlimited at 0', () => {
    const l = new ActionLimiter(0, 1000);
    expect(Array.from({ length: 100 }, () => l.tryTake(0)).every(Boolean)).toBe(true);
  });
});
