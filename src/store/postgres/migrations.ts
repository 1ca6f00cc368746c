/**
 * The PostgreSQL store's schema: numbered migrations recorded in schema_migrations. Several nodes starting at once
 * take a transaction-level advisory lock first, so each migration runs once (the others wait, then find it done).
 * Times are ms epochs (BIGINT), lists and objects JSON text: the same rows as the SQLite store.
 */
import crypto from 'node:crypto';
import type pg from 'pg';

export const MIGRATIONS: string[] = [
  // 1: everything the SQLite store holds at its version 5, in one step
  `CREATE TABLE attempts (
     id BIGSERIAL PRIMARY KEY,
     at BIGINT NOT NULL,
     kind TEXT NOT NULL,
     domain TEXT NOT NULL,
     lineage TEXT,
     ok BOOLEAN NOT NULL,
     code TEXT,
     message TEXT,
     ms BIGINT,
     pid INTEGER
   );
   CREATE INDEX attempts_domain ON attempts(domain, at);
   CREATE TABLE validation_failures (
     id BIGSERIAL PRIMARY KEY,
     name TEXT NOT NULL,
     at BIGINT NOT NULL,
     detail TEXT
   );
   CREATE INDEX validation_failures_name ON validation_failures(name, at);
   CREATE TABLE certificates (
     lineage TEXT PRIMARY KEY,
     names TEXT NOT NULL,
     cert_path TEXT NOT NULL,
     file_key TEXT,
     not_before BIGINT,
     not_after BIGINT,
     serial TEXT,
     issuer TEXT,
     key_type TEXT,
     vhosts TEXT NOT NULL DEFAULT '[]',
     last_attempt_at BIGINT,
     last_attempt_kind TEXT,
     last_outcome TEXT,
     last_error_code TEXT,
     last_error_message TEXT,
     last_error_at BIGINT,
     consecutive_failures INTEGER NOT NULL DEFAULT 0,
     renewed_at BIGINT,
     updated_at BIGINT NOT NULL
   );
   CREATE TABLE undo_steps (
     id BIGSERIAL PRIMARY KEY,
     run_id TEXT NOT NULL,
     owner TEXT NOT NULL,
     plugin TEXT NOT NULL,
     kind TEXT NOT NULL,
     payload TEXT NOT NULL,
     run_when TEXT NOT NULL,
     state TEXT NOT NULL,
     created_at BIGINT NOT NULL,
     done_at BIGINT,
     attempts INTEGER NOT NULL DEFAULT 0,
     last_error TEXT
   );
   CREATE INDEX undo_steps_run ON undo_steps(run_id, state);
   CREATE INDEX undo_steps_state ON undo_steps(state);
   CREATE TABLE outbox (
     id BIGSERIAL PRIMARY KEY,
     key TEXT NOT NULL UNIQUE,
     kind TEXT NOT NULL,
     payload TEXT NOT NULL,
     created_at BIGINT NOT NULL,
     next_attempt_at BIGINT NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0,
     last_error TEXT,
     delivered_at BIGINT,
     claimed_by TEXT,
     claimed_at BIGINT
   );
   CREATE INDEX outbox_pending ON outbox(delivered_at, next_attempt_at);
   CREATE TABLE outbox_deliveries (
     outbox_id BIGINT NOT NULL,
     plugin TEXT NOT NULL,
     at BIGINT NOT NULL,
     PRIMARY KEY (outbox_id, plugin)
   );
   CREATE TABLE jobs (
     id TEXT PRIMARY KEY,
     seq BIGSERIAL,
     kind TEXT NOT NULL,
     owner TEXT NOT NULL,
     state TEXT NOT NULL,
     source TEXT NOT NULL,
     created_at BIGINT NOT NULL,
     finished_at BIGINT,
     options TEXT NOT NULL DEFAULT '{}'
   );
   CREATE INDEX jobs_created ON jobs(created_at);
   CREATE TABLE job_domains (
     job_id TEXT NOT NULL,
     domain TEXT NOT NULL,
     position INTEGER NOT NULL,
     state TEXT NOT NULL,
     code TEXT,
     message TEXT,
     acme TEXT,
     lineage TEXT,
     stages TEXT NOT NULL DEFAULT '[]',
     started_at BIGINT,
     updated_at BIGINT NOT NULL,
     finished_at BIGINT,
     PRIMARY KEY (job_id, domain)
   );
   CREATE TABLE sites (
     domain TEXT PRIMARY KEY,
     site TEXT NOT NULL,
     source TEXT NOT NULL,
     updated_at BIGINT NOT NULL
   );
   CREATE TABLE replays (
     signature TEXT PRIMARY KEY,
     expires_at BIGINT NOT NULL
   );
   CREATE INDEX replays_expiry ON replays(expires_at);
   CREATE TABLE rate_limits (
     server TEXT PRIMARY KEY,
     until_at BIGINT NOT NULL,
     message TEXT NOT NULL
   );
   CREATE TABLE renew_run_lineages (
     run_id TEXT NOT NULL,
     lineage TEXT NOT NULL,
     seq BIGSERIAL,
     due BOOLEAN,
     serial TEXT,
     PRIMARY KEY (run_id, lineage)
   );
   CREATE TABLE dns_progress (
     domain TEXT PRIMARY KEY,
     phase TEXT NOT NULL,
     message TEXT NOT NULL,
     at BIGINT NOT NULL
   );
   CREATE TABLE revocations (
     lineage TEXT PRIMARY KEY,
     serial TEXT NOT NULL,
     state TEXT NOT NULL,
     at BIGINT NOT NULL,
     source TEXT
   );
   CREATE TABLE jobs_requeued (
     job_id TEXT PRIMARY KEY,
     at BIGINT NOT NULL
   );`,
  // 2: the CA's ARI window per lineage (RFC 9773), as the SQLite store's 6
  `CREATE TABLE ari_windows (
     lineage TEXT PRIMARY KEY,
     cert_id TEXT NOT NULL,
     serial TEXT NOT NULL,
     start_at BIGINT,
     end_at BIGINT,
     explanation_url TEXT,
     renew_at BIGINT,
     fetched_at BIGINT NOT NULL,
     next_fetch_at BIGINT NOT NULL,
     error TEXT
   );`,
  // 3: consecutive failed authorizations per name and ACME account, as the SQLite store's 7
  `CREATE TABLE backoff (
     account TEXT NOT NULL,
     name TEXT NOT NULL,
     failures INTEGER NOT NULL,
     last_error TEXT NOT NULL,
     last_at BIGINT NOT NULL,
     until_at BIGINT,
     unpause_url TEXT,
     PRIMARY KEY (account, name)
   );`,
  // 4: a fleet of nodes sharing this store (issue 24), as the SQLite store's 8
  `CREATE TABLE fleet_nodes (
     node TEXT PRIMARY KEY,
     seen_at BIGINT NOT NULL
   );
   CREATE TABLE fleet_challenges (
     token TEXT PRIMARY KEY,
     content TEXT NOT NULL,
     node TEXT NOT NULL,
     at BIGINT NOT NULL
   );
   CREATE TABLE fleet_acks (
     token TEXT NOT NULL,
     node TEXT NOT NULL,
     at BIGINT NOT NULL,
     PRIMARY KEY (token, node)
   );
   CREATE TABLE fleet_lineages (
     id TEXT PRIMARY KEY,
     names TEXT NOT NULL,
     serial TEXT NOT NULL,
     not_after BIGINT NOT NULL,
     cert TEXT NOT NULL,
     chain TEXT NOT NULL,
     fullchain TEXT NOT NULL,
     key TEXT NOT NULL,
     node TEXT NOT NULL,
     at BIGINT NOT NULL
   );
   CREATE TABLE fleet_served (
     node TEXT NOT NULL,
     lineage TEXT NOT NULL,
     serial TEXT,
     error TEXT,
     at BIGINT NOT NULL,
     PRIMARY KEY (node, lineage)
   );`,
];

/** A 64-bit advisory lock key for a name (the locker's keys and the migration lock share this space, "autossl:" first). */
export function advisoryKey(name: string): string {
  return crypto.createHash('sha256').update(`autossl:${name}`).digest().readBigInt64BE(0).toString();
}

/** Brings the schema to the last migration; concurrent callers wait on one advisory lock, so each runs once. */
export async function migrate(client: pg.ClientBase, migrations: readonly string[] = MIGRATIONS): Promise<number> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [advisoryKey('schema-migrations')]);
    await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
    const done = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => Number(r.version)));
    let ran = 0;
    for (let v = 1; v <= migrations.length; v++) {
      if (done.has(v)) continue;
      await client.query(migrations[v - 1]!);
      await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [v, Date.now()]);
      ran++;
    }
    await client.query('COMMIT');
    return ran;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}
