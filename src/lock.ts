/**
 * Locks that hold across processes (the CLI, certbot's hooks, the agent) and within one: a lock file created with
 * O_EXCL holding the owner's pid and process start time, plus an in-process queue in front of it so that
 * concurrent callers in one process wait in order instead of polling the file.
 *
 * A lock whose owner is gone (pid dead, or the pid reused by another process: its start time differs) is stale
 * and taken over; a live owner is waited for until the timeout, then LOCK_TIMEOUT names the lock file and pid.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AutoSslError } from './errors.js';

/** The kernel's start time of a process (clock ticks since boot), to tell a reused pid from its first owner. */
export function processStartTime(pid: number): string | null {
  return procStat(pid)?.[19] ?? null;
}

/** The parent of a process (0 when it is gone or unreadable). */
export function parentPid(pid: number): number {
  return Number(procStat(pid)?.[1] ?? 0);
}

/** The fields of /proc/PID/stat after the command name (index 0 is the state), or null. */
function procStat(pid: number): string[] | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may contain spaces and parentheses: fields resume after the last ")"
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

const OWN_START = processStartTime(process.pid);
let adopted: string | null = null;

/** The identity written into lock files and journals: "<pid> <start time>". */
export function ownerStamp(): string {
  return adopted ?? `${process.pid} ${OWN_START ?? '-'}`;
}

/**
 * The agent's batch process (src/agent/batch-thread.ts) works as the agent itself: its locks, journals and jobs
 * are owned by the agent's stamp, so they are the agent's as when the batch ran in a thread of the agent (the next
 * start's recovery finds them as the agent left them; the batch process dies with the agent). Called once, before
 * anything is locked; given by message, never by environment (certbot's hooks, autossl processes too, inherit it).
 */
export function adoptOwnerStamp(stamp: string): void {
  adopted = stamp;
}

/** Whether the process that wrote `stamp` (see ownerStamp) is still running. */
export function ownerAlive(stamp: string): boolean {
  // "<pid> <start> @host": a process of another node of a fleet (src/store/postgres/presence.ts), whose pid means
  // nothing here; only the store it wrote to can tell, so it counts as alive (nothing of it is taken over)
  const host = /\s@(\S+)$/.exec(stamp.trim())?.[1];
  if (host !== undefined && host !== os.hostname()) return true;
  const [pidText, start] = stamp.trim().split(/\s+/);
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = procStat(pid);
  // a zombie (killed, not yet reaped: an init that reaps late, a container's) answers kill(0) but runs nothing
  if (stat?.[0] === 'Z' || stat?.[0] === 'X') return false;
  if (!start || start === '-') return true;
  const now = stat?.[19] ?? null;
  return now === null || now === start;
}

/** A FIFO of waiters per key, so one process never polls its own lock file. */
const localQueues = new Map<string, Promise<void>>();

export interface LockOptions {
  timeoutMs: number;
  /** What the lock protects, for the error message ("the nginx config"). */
  what: string;
}

export interface HeldLock {
  release(): Promise<void>;
}

/**
 * Takes the lock at `file` (creating its directory), waiting for other holders in this process first and then
 * for other processes. Always release it in a `finally`.
 */
export async function acquireLock(file: string, options: LockOptions): Promise<HeldLock> {
  const previous = localQueues.get(file) ?? Promise.resolve();
  let releaseLocal!: () => void;
  const mine = new Promise<void>((resolve) => (releaseLocal = resolve));
  const chained = previous.then(() => mine);
  localQueues.set(file, chained);
  const started = Date.now();
  await previous;
  try {
    await takeFile(file, options, options.timeoutMs - (Date.now() - started));
  } catch (error) {
    releaseLocal();
    if (localQueues.get(file) === chained) localQueues.delete(file);
    throw error;
  }
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      await fsp.rm(file, { force: true });
      releaseLocal();
      if (localQueues.get(file) === chained) localQueues.delete(file);
    },
  };
}

/** A full disk (or quota) is not a permission problem: the hint says to free space, not to fix ownership. */
function fullHint(code: string | undefined, where: string): string | undefined {
  return code === 'ENOSPC' || code === 'EDQUOT' ? `The filesystem holding ${where} is full (or over quota): free space there, then run again.` : undefined;
}

async function takeFile(file: string, options: LockOptions, timeoutMs: number): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
    throw new AutoSslError('STATE_UNAVAILABLE', `Cannot create the lock directory ${path.dirname(file)}: ${error.code ?? error.message}.`, {
      hint: fullHint(error.code, path.dirname(file)),
      details: { path: path.dirname(file) },
    });
  });
  const deadline = Date.now() + Math.max(0, timeoutMs);
  let delay = 10;
  for (;;) {
    try {
      await fsp.writeFile(file, `${ownerStamp()}\n`, { flag: 'wx', mode: 0o600 });
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') {
        throw new AutoSslError('STATE_UNAVAILABLE', `Cannot create the lock file ${file}: ${code ?? (error as Error).message}.`, {
          hint: fullHint(code, path.dirname(file)),
          details: { path: file },
        });
      }
    }
    const stamp = await fsp.readFile(file, 'utf8').catch(() => '');
    if (stamp === '') {
      // created but not yet written by its owner, or emptied: give the owner a moment, then treat it as stale
      const st = await fsp.stat(file).catch(() => null);
      if (st && Date.now() - st.mtimeMs > 5_000) await fsp.rm(file, { force: true });
    } else if (!ownerAlive(stamp)) {
      await fsp.rm(file, { force: true }); // left by a process that died
      continue;
    }
    if (Date.now() > deadline) {
      throw new AutoSslError(
        'LOCK_TIMEOUT',
        `${options.what} is locked by process ${stamp.split(/\s+/)[0] || '?'} (lock file ${file}); waited ${Math.round(timeoutMs / 1000)} s.`,
        { details: { path: file } },
      );
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 200);
  }
}

/** Runs `fn` holding the lock. */
export async function withLock<T>(file: string, options: LockOptions, fn: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(file, options);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

/** Removes the lock files of processes that are gone (a killed run leaves its locks behind). */
export async function removeStaleLocks(dir: string): Promise<string[]> {
  const removed: string[] = [];
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return removed;
  }
  for (const name of names.filter((n) => n.endsWith('.lock'))) {
    const file = path.join(dir, name);
    const stamp = await fsp.readFile(file, 'utf8').catch(() => null);
    if (stamp && !ownerAlive(stamp)) {
      await fsp.rm(file, { force: true });
      removed.push(file);
    }
  }
  return removed;
}
