/**
 * The Locker of a fleet: PostgreSQL session-level advisory locks, each held on a connection of its own. A node
 * killed (or cut off: TCP keepalives end its session) while holding a lock loses it with its connection, as a lock
 * file's stale owner is taken over on one machine. The key is hashed to the 64-bit advisory key space under an
 * "autossl:" prefix (advisoryKey), so it is any string; waiting is PostgreSQL's own queue, bounded by lock_timeout.
 */
import os from 'node:os';
import pg from 'pg';
import { AutoSslError, quote } from '../../errors.js';
import type { HeldLock, Locker } from '../locker.js';
import { connectTimeoutMs, passwordOf, redact, unavailable } from './db.js';
import { advisoryKey } from './migrations.js';

/** lock_timeout's SQLSTATE: the wait ran out. */
const LOCK_NOT_AVAILABLE = '55P03';

export class PgLocker implements Locker {
  readonly location: string;
  private readonly secret: string | undefined;

  constructor(private readonly url: string) {
    this.location = redact(url);
    this.secret = passwordOf(url);
  }

  async lock(key: string, ttlMs: number, what: string): Promise<HeldLock> {
    const id = advisoryKey(key);
    const client = new pg.Client({
      connectionString: this.url,
      connectionTimeoutMillis: connectTimeoutMs(),
      keepAlive: true,
      application_name: `autossl ${os.hostname()} ${process.pid}`.slice(0, 63),
    });
    // the connection lost while held (the server restarted, the network cut): the lock is gone with it; nothing
    // to throw into here, the holder's next store call fails STATE_UNAVAILABLE
    client.on('error', () => {});
    try {
      await client.connect();
      // the server notices a holder whose host vanished (no FIN) within about a minute, and frees its locks
      await client.query('SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3');
    } catch (error) {
      await client.end().catch(() => {});
      throw unavailable(error, this.location, this.secret);
    }
    try {
      if (ttlMs <= 0) {
        const got = (await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [id])).rows[0]!.ok;
        if (!got) throw lockNotAvailable();
      } else {
        await client.query(`SET lock_timeout = ${Math.max(1, Math.round(ttlMs))}`);
        await client.query('SELECT pg_advisory_lock($1::bigint)', [id]);
      }
    } catch (error) {
      const holder = (error as { code?: string }).code === LOCK_NOT_AVAILABLE ? await holderOf(client, id).catch(() => null) : null;
      await client.end().catch(() => {});
      if ((error as { code?: string }).code === LOCK_NOT_AVAILABLE) {
        throw new AutoSslError(
          'LOCK_TIMEOUT',
          `${what} is locked by ${holder ? quote(holder) : 'another autossl process'} (PostgreSQL advisory lock ${quote(key)} in ${this.location}); waited ${Math.round(Math.max(0, ttlMs) / 1000)} s.`,
          { details: { key, store: this.location } },
        );
      }
      throw unavailable(error, this.location, this.secret);
    }
    let released = false;
    return {
      async release() {
        if (released) return;
        released = true;
        // ending the session frees the lock even when the unlock cannot be sent
        await client.query('SELECT pg_advisory_unlock($1::bigint)', [id]).catch(() => {});
        await client.end().catch(() => {});
      },
    };
  }
}

function lockNotAvailable(): Error {
  return Object.assign(new Error('lock not available'), { code: LOCK_NOT_AVAILABLE });
}

/** Who holds the advisory lock `id` (its session's application_name and address), for LOCK_TIMEOUT. */
async function holderOf(client: pg.Client, id: string): Promise<string | null> {
  await client.query('RESET lock_timeout');
  const r = await client.query<{ who: string }>(
    `SELECT a.application_name || COALESCE(' from ' || host(a.client_addr), '') AS who FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND l.classid::text::bigint = (($1::bigint >> 32) & 4294967295) AND l.objid::text::bigint = ($1::bigint & 4294967295) LIMIT 1`,
    [id],
  );
  return r.rows[0]?.who ?? null;
}
