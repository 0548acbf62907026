import { Deadline, Slots } from '../src/deadline.js';

const what = { verb: 'create', resource: 'events', namespace: 'default' };
const deadlines: Deadline[] = [];
const dl = (background = false, start = Date.now()) => {
  const d = new Deadline(5000, start, background);
  deadlines.push(d);
  return d;
};
afterAll(() => deadlines.forEach((d) => d.dispose()));
const tick = () => new Promise((r) => setImmediate(r));

describe('Slots', () => {
  it('never has more than its size in use, and hands a released slot to a waiter', async () => {
    const s = new Slots(2);
    const a = await s.acquire(dl(), what);
    await s.acquire(dl(), what);
    let third = false;
    const waiting = s.acquire(dl(), what).then((r) => ((third = true), r));
    await tick();
    expect(third).toBe(false);
    a();
    // Between the release and the waiter running, nobody else gets the slot.
    let fourth = false;
    void s.acquire(dl(), what).then(() => (fourth = true));
    await waiting;
    await tick();
    expect(third).toBe(true);
    expect(fourth).toBe(false);
    expect(s.busy).toBe(2);
  });

  it('gives a freed slot to a call on an alert\'s path before a write after the answer', async () => {
    const s = new Slots(4);
    const held = await Promise.all([1, 2, 3, 4].map(() => s.acquire(dl(), what)));
    const order: string[] = [];
    const later = s.acquire(dl(true), what).then((r) => (order.push('background'), r));
    await tick();
    const now = s.acquire(dl(), what).then((r) => (order.push('foreground'), r));
    held[0]();
    (await now)();
    held[1]();
    (await later)();
    expect(order).toEqual(['foreground', 'background']);
  });

  it('lets background writes hold at most a quarter of the slots', async () => {
    const s = new Slots(8);
    const bg = await Promise.all([1, 2].map(() => s.acquire(dl(true), what)));
    let third = false;
    const waiting = s.acquire(dl(true), what).then((r) => ((third = true), r));
    await tick();
    expect(third).toBe(false);
    // Foreground calls still find the other six free.
    const fg = await Promise.all([1, 2, 3, 4, 5, 6].map(() => s.acquire(dl(), what)));
    expect(s.busy).toBe(8);
    bg[0]();
    (await waiting)();
    expect(third).toBe(true);
    fg.forEach((r) => r());
    bg[1]();
    expect(s.busy).toBe(0);
  });

  it('serves the oldest alert first: its next call goes before the first call of an alert that came later', async () => {
    const s = new Slots(1);
    const held = await s.acquire(dl(), what);
    const order: string[] = [];
    const t0 = Date.now();
    const later = s.acquire(dl(false, t0 + 100), what).then((r) => (order.push('newer alert, first call'), r));
    const sameAge = s.acquire(dl(false, t0 + 100), what).then((r) => (order.push('newer alert, second waiter'), r));
    const older = s.acquire(dl(false, t0), what).then((r) => (order.push('older alert, next call'), r));
    held();
    (await older)();
    (await later)();
    (await sameAge)();
    expect(order).toEqual(['older alert, next call', 'newer alert, first call', 'newer alert, second waiter']);
  });
});
