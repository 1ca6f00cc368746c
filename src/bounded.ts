/**
 * The one bound on work at once: a semaphore (certbot processes, pre-flight probes, shared by every domain of this
 * process) and mapBounded over a list with it.
 */

/** At most `limit` runs at once; the others wait in order of arrival. */
export class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly limit: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    // a freed slot is handed to the first waiter, never left for a newcomer to take before the waiter wakes
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

/** Runs `fn` over `items` with at most `limit` at once, starting them in order; the results keep the order. */
export function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const slots = new Semaphore(Math.max(1, limit));
  return Promise.all(items.map((item, i) => slots.run(() => fn(item, i))));
}
