// Events wait for quiet: none is written while a containment is under way, nor within EVENT_QUIET_MS of the
// last one ending (alerts one at a time arrive a few ms apart), and none waits longer than its bound.
import { Busy } from '../../falco-pod-delete/src/events.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Busy.whenIdle: Events wait for a quiet moment', () => {
  it('resolves at once when nothing has been under way', async () => {
    const busy = new Busy();
    const order: string[] = [];
    const waited = busy.whenIdle(1000, 40).then(() => order.push('event'));
    await sleep(0);
    order.push('later');
    await waited;
    expect(order).toEqual(['event', 'later']);
  });

  it('waits while a containment is under way and for the quiet period after it, and a new one starts the wait again', async () => {
    const busy = new Busy();
    const order: string[] = [];
    busy.enter();
    const waited = busy.whenIdle(2000, 40).then(() => order.push('event'));
    await sleep(20);
    busy.leave();
    order.push('first done');
    await sleep(10);
    busy.enter(); // the next alert, 10 ms later: the Event must not go between the two
    order.push('second started');
    await sleep(60);
    busy.leave();
    order.push('second done');
    await waited;
    expect(order).toEqual(['first done', 'second started', 'second done', 'event']);
  });

  it('never waits longer than its bound, busy or not', async () => {
    const busy = new Busy();
    busy.enter();
    const started = Date.now();
    await busy.whenIdle(50, 40);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(busy.idle).toBe(false);
    busy.leave();
  });
});
