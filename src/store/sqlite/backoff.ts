/** The back-off records of the SQLite store (migration 7): consecutive failed authorizations per name and account. */
import type { BackoffRecord, BackoffStore } from '../store.js';
import { backoffRecord as record, type BackoffRow } from '../rows.js';
import type { Sql } from './sql.js';

export class SqliteBackoff implements BackoffStore {
  constructor(private readonly sql: Sql) {}

  async get(account: string, name: string): Promise<BackoffRecord | null> {
    const r = this.sql.st('SELECT * FROM backoff WHERE account = ? AND name = ?').get(account, name) as BackoffRow | undefined;
    return r ? record(r) : null;
  }

  async list(): Promise<Array<BackoffRecord & { account: string; name: string }>> {
    return (this.sql.st('SELECT * FROM backoff ORDER BY name, account').all() as BackoffRow[]).map((r) => ({ account: r.account, name: r.name, ...record(r) }));
  }

  async set(account: string, name: string, b: BackoffRecord): Promise<void> {
    this.sql
      .st(
        `INSERT INTO backoff (account, name, failures, last_error, last_at, until_at, unpause_url) VALUES (?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT(account, name) DO UPDATE SET failures = excluded.failures, last_error = excluded.last_error, last_at = excluded.last_at, until_at = excluded.until_at, unpause_url = excluded.unpause_url`,
      )
      .run(account, name, b.failures, b.lastError, b.lastAt, b.until, b.unpauseUrl);
  }

  async clear(account: string, name: string): Promise<void> {
    this.sql.st('DELETE FROM backoff WHERE account = ? AND name = ?').run(account, name);
  }
}
