/** The back-off records of the PostgreSQL store (migration 3), as the SQLite store's. */
import type { BackoffRecord, BackoffStore } from '../store.js';
import { backoffRecord as record, type BackoffRow } from '../rows.js';
import type { Db } from './db.js';

export class PgBackoff implements BackoffStore {
  constructor(private readonly db: Db) {}

  async get(account: string, name: string): Promise<BackoffRecord | null> {
    const r = (await this.db.query<BackoffRow>('SELECT * FROM backoff WHERE account = $1 AND name = $2', [account, name])).rows[0];
    return r ? record(r) : null;
  }

  async list(): Promise<Array<BackoffRecord & { account: string; name: string }>> {
    return (await this.db.query<BackoffRow>('SELECT * FROM backoff ORDER BY name COLLATE "C", account COLLATE "C"')).rows.map((r) => ({
      account: r.account,
      name: r.name,
      ...record(r),
    }));
  }

  async set(account: string, name: string, b: BackoffRecord): Promise<void> {
    await this.db.query(
      `INSERT INTO backoff (account, name, failures, last_error, last_at, until_at, unpause_url) VALUES ($1, $2, $3, $4, $5, $6, $7)
      ON CONFLICT (account, name) DO UPDATE SET failures = excluded.failures, last_error = excluded.last_error, last_at = excluded.last_at, until_at = excluded.until_at, unpause_url = excluded.unpause_url`,
      [account, name, b.failures, b.lastError, b.lastAt, b.until, b.unpauseUrl],
    );
  }

  async clear(account: string, name: string): Promise<void> {
    await this.db.query('DELETE FROM backoff WHERE account = $1 AND name = $2', [account, name]);
  }
}
