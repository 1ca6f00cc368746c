import { describe, expect, it } from 'vitest';
import { mapBounded, Semaphore } from '../../src/bounded.js';

/** A task that stays running until released, counting how many run at once. */
function gate() {
  let active = 0;
  let peak = 0;
  const releases: Array<() => void> = [];
  const task = async <T>(value: T): Promise<T> => {
    active++;
    peak = Math.max(peak, active);
    await new Promise<void>((r) => releases.push(r));
    active--;
    return value;
  };
  return {
    task,
    releases,
    get active() {
      return active;
    },
    get peak() {
      return peak;
    },
  };
}

describe('bounded concurrency', () => {
  it('mapBounded runs at most `limit` at once, all of them in the end, in order', async () => {
    const g = gate();
    const started: number[] = [];
    const all = mapBounded([0, 1, 2, 3, 4, 5, 6], 3, (n) => (started.push(n), g.task(n * 10)));
    await expect.poll(() => g.active).toBe(3);
    expect(started).toEqual([0, 1, 2]);
    while (started.length < 7 || g.releases.length) {
      g.releases.shift()?.();
      await new Promise((r) => setImmediate(r));
    }
    expect(await all).toEqual([0, 10, 20, 30, 40, 50, 60]);
    expect(g.peak).toBe(3);
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('a slot freed goes to the first waiter, not to a newcomer arriving before the waiter wakes', async () => {
    const slots = new Semaphore(1);
    const g = gate();
    const first = slots.run(() => g.task('a'));
    const waiter = slots.run(() => g.task('b'));
    await expect.poll(() => g.releases.length).toBe(1);
    g.releases.shift()!(); // 'a' ends: its slot is handed to 'b'
    await first;
    const newcomer = slots.run(() => g.task('c'));
    await expect.poll(() => g.releases.length).toBe(1);
    expect(g.peak).toBe(1);
    g.releases.shift()!();
    expect(await waiter).toBe('b');
    await expect.poll(() => g.releases.length).toBe(1);
    g.releases.shift()!();
    expect(await newcomer).toBe('c');
    expect(g.peak).toBe(1);
  });
});
