/**
 * The built-in Store: SQLite (better-sqlite3) under `stateDir`, one machine's processes sharing it. better-sqlite3
 * is synchronous: each method does its work at once and answers through a resolved promise (the Store is async
 * for stores over a network). Its Locker is the lock files under `stateDir/locks`.
 */
import path from 'node:path';
import type Database from 'better-sqlite3';
import { FileLocker } from '../locker.js';
import type { Store } from '../store.js';
import { SqliteAttempts, SqliteCertificates } from './certificates.js';
import { SqliteFleet } from './fleet.js';
import { SqliteJobs } from './jobs.js';
import { openDatabase } from './open.js';
import { SqliteOutbox, SqliteUndo } from './queues.js';
import { SqliteAriWindows, SqliteDnsProgress, SqliteRateLimits, SqliteRenewRuns, SqliteReplays, SqliteSites } from './records.js';
import { Sql } from './sql.js';
import { SqliteBackoff } from './backoff.js';

export { stateBusyTimeoutMs } from './open.js';

export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly db: Database.Database;
  /** True when the database could only be opened read-only (or not at all: then it is an empty in-memory one). */
  readonly readOnly: boolean;
  readonly jobs: SqliteJobs;
  readonly attempts: SqliteAttempts;
  readonly certificates: SqliteCertificates;
  readonly sites: SqliteSites;
  readonly outbox: SqliteOutbox;
  readonly undo: SqliteUndo;
  readonly replay: SqliteReplays;
  readonly rateLimits: SqliteRateLimits;
  readonly renewRuns: SqliteRenewRuns;
  readonly dnsProgress: SqliteDnsProgress;
  readonly ariWindows: SqliteAriWindows;
  readonly backoff: SqliteBackoff;
  readonly locker: FileLocker;
  readonly fleet: SqliteFleet;

  /**
   * Opens (creating) `<dir>/state.db`. With `readOnly`, a state directory autossl cannot write to (or that does
   * not exist) still serves the commands that only read: the database is opened read-only, or replaced by an
   * empty in-memory one. Every failure is STATE_UNAVAILABLE naming the path and the fix.
   */
  constructor(
    readonly location: string,
    options: { readOnly?: boolean } = {},
  ) {
    const opened = openDatabase(location, options);
    this.db = opened.db;
    this.readOnly = opened.readOnly;
    const sql = new Sql(this.db);
    this.jobs = new SqliteJobs(sql);
    this.attempts = new SqliteAttempts(sql);
    this.certificates = new SqliteCertificates(sql);
    this.sites = new SqliteSites(sql);
    this.outbox = new SqliteOutbox(sql);
    this.undo = new SqliteUndo(sql);
    this.replay = new SqliteReplays(sql);
    this.rateLimits = new SqliteRateLimits(sql);
    this.renewRuns = new SqliteRenewRuns(sql);
    this.dnsProgress = new SqliteDnsProgress(sql);
    this.ariWindows = new SqliteAriWindows(sql);
    this.backoff = new SqliteBackoff(sql);
    this.locker = new FileLocker(path.join(location, 'locks'));
    this.fleet = new SqliteFleet(sql);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
