/**
 * Which process of the fleet is alive. Rows name their owner (a job's runner, an outbox claim, an undo step's
 * runner) by a stamp; on one machine the pid and start time tell whether it still runs (src/lock.ts ownerAlive),
 * but another node's pid means nothing here. So a PostgreSQL store's stamps carry the host ("<pid> <start> @host"),
 * and while a process has a store open it holds a session advisory lock named after its stamp: another node sees
 * it alive as long as that session lives, and dead once the process (or its host) is gone.
 */
import os from 'node:os';
import pg from 'pg';
import { ownerAlive, ownerStamp } from '../../lock.js';
import type { Db, Query } from './db.js';
import { connectTimeoutMs } from './db.js';
import { advisoryKey } from './migrations.js';

/** This process's stamp in a shared database. */
export const fleetStamp = (): string => `${ownerStamp()} @${os.hostname()}`;

/** One presence session per process and database, shared by the stores open on it, ended with the last of them. */
interface Session {
  client: pg.Client | null;
  ready: Promise<void> | null;
  refs: number;
}
const sessions = new Map<string, Session>();

export class Presence {
  private joined = false;

  constructor(private readonly db: Db) {}

  /** Holds this process's presence lock (before any row names this process as its owner); again after a lost session. */
  async ensure(): Promise<void> {
    let s = sessions.get(this.db.url);
    if (!s) {
      s = { client: null, ready: null, refs: 0 };
      sessions.set(this.db.url, s);
    }
    if (!this.joined) {
      this.joined = true;
      s.refs++;
    }
    const session = s;
    session.ready ??= this.connect(session);
    try {
      await session.ready;
    } catch (error) {
      session.ready = null;
      throw this.db.failure(error);
    }
  }

  private async connect(s: Session): Promise<void> {
    const client = new pg.Client({
      connectionString: this.db.url,
      connectionTimeoutMillis: connectTimeoutMs(),
      keepAlive: true,
      application_name: `autossl ${os.hostname()} ${process.pid}`.slice(0, 63),
    });
    // lost (the server restarted, the network cut): the next ensure() opens another
    client.on('error', () => {
      if (s.client === client) {
        s.client = null;
        s.ready = null;
      }
    });
    try {
      await client.connect();
      await client.query('SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3');
      // try: a session of this process the server has not yet noticed gone may hold it still, for this same process
      await client.query('SELECT pg_try_advisory_lock($1::bigint)', [advisoryKey(`owner:${fleetStamp()}`)]);
    } catch (error) {
      await client.end().catch(() => {});
      throw error;
    }
    s.client = client;
  }

  /** Whether the process that wrote `stamp` still runs: here by its pid, on another node by its presence session. */
  async alive(stamp: string, q: Query): Promise<boolean> {
    const host = /\s@(\S+)$/.exec(stamp)?.[1];
    if (host === undefined || host === os.hostname()) return ownerAlive(stamp);
    const r = await q<{ n: string }>(
      `SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND classid::text::bigint = (($1::bigint >> 32) & 4294967295) AND objid::text::bigint = ($1::bigint & 4294967295)`,
      [advisoryKey(`owner:${stamp}`)],
    );
    return Number(r.rows[0]!.n) > 0;
  }

  async close(): Promise<void> {
    if (!this.joined) return;
    this.joined = false;
    const s = sessions.get(this.db.url);
    if (!s || --s.refs > 0) return;
    sessions.delete(this.db.url);
    await s.ready?.catch(() => {});
    await s.client?.end().catch(() => {});
  }
}
