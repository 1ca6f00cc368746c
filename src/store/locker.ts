/**
 * The Locker seam: locks per name (an order), per server block (its edits) and per job, held across processes.
 * The built-in one is a lock file per key under the state directory (src/lock.ts: O_EXCL, the owner's pid and
 * start time, stale when the owner is gone); a store several nodes share brings locks they share (PostgreSQL's
 * advisory locks die with the session, as a file lock dies with its process).
 *
 * What protects this machine's own files stays a local lock file (src/lock.ts), whatever the store: the nginx
 * config editor's lock and certbot's lock on its config directory; each node has its own of both.
 */
import path from 'node:path';
import { acquireLock, type HeldLock } from '../lock.js';

export type { HeldLock } from '../lock.js';

export interface Locker {
  /**
   * Takes the lock `key` (letters, digits, ".", "-", "_"), waiting for its holder up to `ttlMs`, the longest
   * any holder keeps it (a shared locker lets it expire then). `what` names it in LOCK_TIMEOUT ("The order of
   * example.com"). Always release it in a `finally`.
   */
  lock(key: string, ttlMs: number, what: string): Promise<HeldLock>;
}

/** Runs `fn` holding `key`. */
export async function withLocked<T>(locker: Locker, key: string, ttlMs: number, what: string, fn: () => Promise<T>): Promise<T> {
  const held = await locker.lock(key, ttlMs, what);
  try {
    return await fn();
  } finally {
    await held.release();
  }
}

/** Lock files `<dir>/<key>.lock` (the names autossl always used: order-NAME, block-HASH). */
export class FileLocker implements Locker {
  constructor(readonly dir: string) {}

  lock(key: string, ttlMs: number, what: string): Promise<HeldLock> {
    // a key never leaves the directory: certificate names are checked, but a custom caller's may not be
    const safe = key.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_');
    return acquireLock(path.join(this.dir, `${safe}.lock`), { timeoutMs: ttlMs, what });
  }
}
