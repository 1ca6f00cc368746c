/**
 * autossl's state: SQLite (better-sqlite3) in WAL mode under `stateDir`, safe for several processes at once
 * (the CLI, certbot's deploy hook, the agent): every write is one IMMEDIATE transaction and waits on a busy
 * database instead of failing. Schema changes are numbered migrations recorded in `user_version`.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { AutoSslError } from '../errors.js';
import { ownerAlive, ownerStamp } from '../lock.js';

const MIGRATIONS: string[] = [
  // 1: outcomes, ACME validation failures (the per-name budget), certificates
  `CREATE TABLE attempts (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     at INTEGER NOT NULL,
     kind TEXT NOT NULL,            -- issue | renew | deploy
     domain TEXT NOT NULL,
     lineage TEXT,
     ok INTEGER NOT NULL,
     code TEXT,
     message TEXT,
     ms INTEGER,
     pid INTEGER
   );
   CREATE INDEX attempts_domain ON attempts(domain, at);
   CREATE TABLE validation_failures (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     name TEXT NOT NULL,
     at INTEGER NOT NULL,
     detail TEXT
   );
   CREATE INDEX validation_failures_name ON validation_failures(name, at);
   CREATE TABLE certificates (
     lineage TEXT PRIMARY KEY,
     names TEXT NOT NULL,           -- JSON array
     cert_path TEXT NOT NULL,
     file_key TEXT,                 -- dev:ino:size:mtime of cert.pem when parsed (rescan only on change)
     not_before INTEGER,
     not_after INTEGER,
     serial TEXT,
     issuer TEXT,
     key_type TEXT,
     vhosts TEXT NOT NULL DEFAULT '[]',
     last_attempt_at INTEGER,
     last_attempt_kind TEXT,
     last_outcome TEXT,
     last_error_code TEXT,
     last_error_message TEXT,
     last_error_at INTEGER,
     consecutive_failures INTEGER NOT NULL DEFAULT 0,
     renewed_at INTEGER,
     updated_at INTEGER NOT NULL
   );
   CREATE TABLE notifications (
     lineage TEXT NOT NULL,
     kind TEXT NOT NULL,
     key TEXT NOT NULL,
     at INTEGER NOT NULL,
     PRIMARY KEY (lineage, kind, key)
   );`,
  // 2: undo steps of plugins (changes outside nginx's files), the notification outbox
  `CREATE TABLE undo_steps (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     run_id TEXT NOT NULL,
     owner TEXT NOT NULL,           -- "<pid> <start time>" of the process that recorded it, or runs it now
     plugin TEXT NOT NULL,
     kind TEXT NOT NULL,
     payload TEXT NOT NULL,         -- JSON
     run_when TEXT NOT NULL,        -- always | failure
     state TEXT NOT NULL,           -- pending | running | done
     created_at INTEGER NOT NULL,
     done_at INTEGER,
     attempts INTEGER NOT NULL DEFAULT 0,
     last_error TEXT
   );
   CREATE INDEX undo_steps_run ON undo_steps(run_id, state);
   CREATE INDEX undo_steps_state ON undo_steps(state);
   CREATE TABLE outbox (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     key TEXT NOT NULL UNIQUE,      -- one notification per event, however often it is noticed
     kind TEXT NOT NULL,
     payload TEXT NOT NULL,         -- JSON Notification
     created_at INTEGER NOT NULL,
     next_attempt_at INTEGER NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0,
     last_error TEXT,
     delivered_at INTEGER,
     claimed_by TEXT,               -- the process delivering it now
     claimed_at INTEGER
   );
   CREATE INDEX outbox_pending ON outbox(delivered_at, next_attempt_at);
   CREATE TABLE kv (
     key TEXT PRIMARY KEY,          -- small records shared between processes (a renewal's pre and post hooks)
     value TEXT NOT NULL,
     at INTEGER NOT NULL
   );
   CREATE TABLE outbox_deliveries (
     outbox_id INTEGER NOT NULL,
     plugin TEXT NOT NULL,          -- each notify tap gets each notification once
     at INTEGER NOT NULL,
     PRIMARY KEY (outbox_id, plugin)
   );`,
  // 3: jobs (a batch of domains) and each domain's progress in it
  `CREATE TABLE jobs (
     id TEXT PRIMARY KEY,
     kind TEXT NOT NULL,            -- issue
     owner TEXT NOT NULL,           -- the process running it
     state TEXT NOT NULL,           -- running | done | failed | interrupted
     source TEXT NOT NULL,          -- cli | agent | api
     created_at INTEGER NOT NULL,
     finished_at INTEGER,
     options TEXT NOT NULL DEFAULT '{}'
   );
   CREATE INDEX jobs_created ON jobs(created_at);
   CREATE TABLE job_domains (
     job_id TEXT NOT NULL,
     domain TEXT NOT NULL,
     position INTEGER NOT NULL,
     state TEXT NOT NULL,           -- queued | checking | challenge | issuing | installing | done | failed
     code TEXT,
     message TEXT,
     acme TEXT,                     -- JSON: the ACME problems certbot reported
     lineage TEXT,
     stages TEXT NOT NULL DEFAULT '[]',  -- JSON: [{stage, ms}]
     started_at INTEGER,
     updated_at INTEGER NOT NULL,
     finished_at INTEGER,
     PRIMARY KEY (job_id, domain)
   );`,
  // 4: sites a panel described through the agent (document root, wildcard), and signatures seen (replays)
  `CREATE TABLE sites (
     domain TEXT PRIMARY KEY,
     site TEXT NOT NULL,            -- JSON SiteConfig
     source TEXT NOT NULL,          -- agent | api
     updated_at INTEGER NOT NULL
   );
   CREATE TABLE replays (
     signature TEXT PRIMARY KEY,    -- a signed request's X-Signature: a second one inside the window is refused
     expires_at INTEGER NOT NULL
   );
   CREATE INDEX replays_expiry ON replays(expires_at);`,
];

export interface AttemptRecord {
  kind: 'issue' | 'renew' | 'deploy' | 'install' | 'uninstall';
  domain: string;
  lineage?: string;
  ok: boolean;
  code?: string;
  message?: string;
  ms?: number;
}

export interface CertificateRow {
  lineage: string;
  names: string[];
  certPath: string;
  fileKey: string | null;
  notBefore: number | null;
  notAfter: number | null;
  serial: string | null;
  issuer: string | null;
  keyType: string | null;
  vhosts: string[];
  lastAttemptAt: number | null;
  lastAttemptKind: string | null;
  lastOutcome: string | null;
  lastErrorCode: string | null;
  lastErrorMessage: string | null;
  lastErrorAt: number | null;
  consecutiveFailures: number;
  renewedAt: number | null;
}

/**
 * How long a write waits for another process's transaction on the database before giving up (SQLite's busy
 * timeout): 15 s, or AUTOSSL_STATE_BUSY_TIMEOUT_MS (milliseconds, for tests and impatient scripts).
 */
export function stateBusyTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.AUTOSSL_STATE_BUSY_TIMEOUT_MS;
  const ms = raw === undefined || raw.trim() === '' ? NaN : Number(raw);
  return Number.isInteger(ms) && ms >= 0 && ms <= 600_000 ? ms : 15_000;
}

/** A read-only store does not wait long for a write lock it only needs to keep its scan cache (see the constructor). */
const READ_ONLY_PROBE_MS = 1000;

const isBusy = (error: unknown): boolean => {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED' || code === 'SQLITE_BUSY_SNAPSHOT' || code === 'SQLITE_BUSY_RECOVERY';
};

export class StateStore {
  readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();

  /** Prepared once per store: thousands of rows in a scan reuse the same statement. */
  private sql(text: string): Database.Statement {
    let st = this.statements.get(text);
    if (!st) {
      st = this.db.prepare(text);
      this.statements.set(text, st);
    }
    return st;
  }

  /** True when the database could only be opened read-only (or not at all: then it is an empty in-memory one). */
  readonly readOnly: boolean;

  /**
   * Opens (creating) `<dir>/state.db`. With `readOnly`, a state directory autossl cannot write to (or that does
   * not exist) still serves the commands that only read: the database is opened read-only, or replaced by an
   * empty in-memory one. Every failure is STATE_UNAVAILABLE naming the path and the fix.
   */
  constructor(readonly dir: string, options: { readOnly?: boolean } = {}) {
    const file = path.join(dir, 'state.db');
    const busyMs = stateBusyTimeoutMs();
    const unavailable = (error: unknown, what: string): AutoSslError => {
      const e = error as NodeJS.ErrnoException & { code?: string };
      if (isBusy(error)) {
        // not a permission problem: another process holds the database's write lock past the wait
        return new AutoSslError('STATE_UNAVAILABLE', `Cannot ${what} autossl's state ${file}: it is locked by another process (waited ${busyMs / 1000} s).`, {
          hint: `Another process holds autossl's state database locked (another autossl run, certbot's hooks, or a tool with ${file} open): wait for it to finish (fuser ${file} names it), then run again.`,
          cause: error,
          details: { path: file },
        });
      }
      const why = e.code === 'SQLITE_CORRUPT' || e.code === 'SQLITE_NOTADB' ? 'it is not a valid SQLite database (damaged, or another file is in its place)' : e.code === 'ENOTDIR' || e.code === 'EEXIST' ? `${dir} is not a directory` : e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS' || e.code === 'SQLITE_READONLY' || e.code === 'SQLITE_CANTOPEN' ? 'it is not writable by this user' : e.message;
      const hint = e.code === 'SQLITE_CORRUPT' || e.code === 'SQLITE_NOTADB' ? `Move ${file} aside (autossl starts a new one; the history of attempts and notifications in it is lost), then run again.` : `Make ${dir} a directory writable by the user running autossl (stateDir in the config), then run again.`;
      return new AutoSslError('STATE_UNAVAILABLE', `Cannot ${what} autossl's state ${file}: ${why}.`, { hint, cause: error, details: { path: file } });
    };
    let db: Database.Database | null = null;
    let readOnly = false;
    let migrated = false;
    const openWritable = (): Database.Database => {
      const opened = new Database(file, { timeout: busyMs });
      try {
        // private: job history, registered sites, request signatures (the directory itself lets nginx through to acme-challenge/)
        for (const f of [file, `${file}-wal`, `${file}-shm`]) if (fs.existsSync(f) && (fs.statSync(f).mode & 0o077)) fs.chmodSync(f, 0o600);
        opened.pragma('journal_mode = WAL');
        opened.pragma('synchronous = NORMAL');
      } catch (error) {
        opened.close();
        throw error;
      }
      return opened;
    };
    if (!options.readOnly) {
      try {
        fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
        fs.accessSync(dir, fs.constants.W_OK);
        db = openWritable();
      } catch (error) {
        throw unavailable(error, 'open');
      }
    } else if (!fs.existsSync(file)) {
      // nothing recorded yet: an empty in-memory store answers, and nothing is created on disk
      db = new Database(':memory:');
      readOnly = true;
    } else {
      try {
        fs.accessSync(dir, fs.constants.W_OK);
        db = openWritable();
        // a command that only reads must not wait out another process's long write: probe the write lock briefly,
        // and answer from a copy of the database as it is when it is held
        db.pragma(`busy_timeout = ${Math.min(busyMs, READ_ONLY_PROBE_MS)}`);
        try {
          this.db = db;
          this.migrate();
          migrated = true;
        } catch (error) {
          db.close();
          throw error;
        }
        db.pragma(`busy_timeout = ${busyMs}`);
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') throw unavailable(error, 'read');
        try {
          db = readCopy(file);
          readOnly = true;
        } catch (inner) {
          throw unavailable(inner, 'read');
        }
      }
    }
    this.db = db;
    this.readOnly = readOnly;
    try {
      // an in-memory store gets the schema; a read-only file is read with the schema it has
      if ((!readOnly || this.db.memory) && !migrated) this.migrate();
      else this.db.pragma('user_version', { simple: true }); // reading it proves the file is a database
    } catch (error) {
      this.db.close();
      throw unavailable(error, readOnly ? 'read' : 'update');
    }
  }

  private migrate(): void {
    const run = this.db.transaction(() => {
      const version = this.db.pragma('user_version', { simple: true }) as number;
      for (let v = version; v < MIGRATIONS.length; v++) {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      }
    });
    run.immediate();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  // ---------------------------------------------------------------------------------------------- undo steps

  addUndoStep(step: { runId: string; plugin: string; kind: string; payload: string; when: 'always' | 'failure'; owner?: string }): number {
    const r = this.sql(`INSERT INTO undo_steps (run_id, owner, plugin, kind, payload, run_when, state, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)`)
      .run(step.runId, step.owner ?? ownerStamp(), step.plugin, step.kind, step.payload, step.when, Date.now());
    return Number(r.lastInsertRowid);
  }

  undoSteps(filter: { runId?: string; state?: 'pending' | 'open' } = {}): UndoStepRow[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.runId) {
      where.push('run_id = ?');
      args.push(filter.runId);
    }
    if (filter.state === 'pending') where.push(`state = 'pending'`);
    if (filter.state === 'open') where.push(`state IN ('pending', 'running')`);
    const rows = this.db.prepare(`SELECT * FROM undo_steps ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC`).all(...args) as Array<Record<string, unknown>>;
    return rows.map((r) => ({ id: r.id as number, runId: r.run_id as string, owner: r.owner as string, plugin: r.plugin as string, kind: r.kind as string, payload: r.payload as string, when: r.run_when as 'always' | 'failure', state: r.state as UndoStepRow['state'], attempts: r.attempts as number, lastError: (r.last_error as string) ?? null, createdAt: r.created_at as number }));
  }

  /** Claims a step to run it: true for exactly one caller, only while it is pending (or its runner died). */
  claimUndoStep(id: number): boolean {
    return this.db.transaction(() => {
      const row = this.sql('SELECT state, owner FROM undo_steps WHERE id = ?').get(id) as { state: string; owner: string } | undefined;
      if (!row || row.state === 'done') return false;
      if (row.state === 'running' && ownerAlive(row.owner) && row.owner !== ownerStamp()) return false;
      this.sql(`UPDATE undo_steps SET state = 'running', owner = ?, attempts = attempts + 1 WHERE id = ?`).run(ownerStamp(), id);
      return true;
    }).immediate();
  }

  finishUndoStep(id: number, error?: string): void {
    if (error === undefined) this.sql(`UPDATE undo_steps SET state = 'done', done_at = ?, last_error = NULL WHERE id = ?`).run(Date.now(), id);
    else this.sql(`UPDATE undo_steps SET state = 'pending', last_error = ? WHERE id = ?`).run(error.slice(0, 2000), id);
  }

  // -------------------------------------------------------------------------------------------------- jobs

  /**
   * Records a job, or adds domains to one this process recorded already (the agent records a batch as its requests
   * arrive, so a kill before it starts still leaves each accepted domain accounted for).
   */
  createJob(job: { id: string; kind: string; source: string; domains: readonly string[]; options?: Record<string, unknown> }): void {
    const now = Date.now();
    this.db.transaction(() => {
      this.sql('INSERT OR IGNORE INTO jobs (id, kind, owner, state, source, created_at, options) VALUES (?, ?, ?, ?, ?, ?, ?)').run(job.id, job.kind, ownerStamp(), 'running', job.source, now, JSON.stringify(job.options ?? {}));
      let next = (this.sql('SELECT COALESCE(MAX(position) + 1, 0) AS n FROM job_domains WHERE job_id = ?').get(job.id) as { n: number }).n;
      for (const d of job.domains) {
        if (this.sql(`INSERT OR IGNORE INTO job_domains (job_id, domain, position, state, updated_at) VALUES (?, ?, ?, 'queued', ?)`).run(job.id, d, next, now).changes) next++;
      }
    }).immediate();
  }

  updateJobDomain(jobId: string, domain: string, fields: { state?: JobDomainState; code?: string | null; message?: string | null; acme?: unknown; lineage?: string | null; stages?: unknown; finished?: boolean }): void {
    const now = Date.now();
    const sets: string[] = ['updated_at = @now'];
    const args: Record<string, unknown> = { now, jobId, domain };
    if (fields.state !== undefined) {
      sets.push('state = @state', 'started_at = COALESCE(started_at, @now)');
      args.state = fields.state;
    }
    for (const key of ['code', 'message', 'lineage'] as const) {
      if (fields[key] !== undefined) {
        sets.push(`${key} = @${key}`);
        args[key] = fields[key] === null ? null : String(fields[key]).slice(0, 4000);
      }
    }
    if (fields.acme !== undefined) {
      sets.push('acme = @acme');
      args.acme = JSON.stringify(fields.acme);
    }
    if (fields.stages !== undefined) {
      sets.push('stages = @stages');
      args.stages = JSON.stringify(fields.stages);
    }
    if (fields.finished) sets.push('finished_at = @now');
    this.sql(`UPDATE job_domains SET ${sets.join(', ')} WHERE job_id = @jobId AND domain = @domain`).run(args);
  }

  finishJob(jobId: string, state: 'done' | 'failed' | 'interrupted'): void {
    this.sql('UPDATE jobs SET state = ?, finished_at = ? WHERE id = ?').run(state, Date.now(), jobId);
  }

  jobs(limit = 20): JobRow[] {
    const rows = this.db.prepare('SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ?').all(limit) as Array<Record<string, unknown>>;
    return rows.map((r) => this.jobOf(r));
  }

  job(id: string): JobRow | null {
    const r = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as Record<string, unknown> | undefined;
    return r ? this.jobOf(r) : null;
  }

  /** Jobs still marked running whose process is gone. */
  orphanedJobs(): JobRow[] {
    const rows = this.db.prepare(`SELECT * FROM jobs WHERE state = 'running'`).all() as Array<Record<string, unknown>>;
    return rows.filter((r) => !ownerAlive(r.owner as string)).map((r) => this.jobOf(r));
  }

  private jobOf(r: Record<string, unknown>): JobRow {
    const domains = (this.db.prepare('SELECT * FROM job_domains WHERE job_id = ? ORDER BY position').all(r.id) as Array<Record<string, unknown>>).map((d) => ({
      domain: d.domain as string,
      state: d.state as JobDomainState,
      code: (d.code as string) ?? null,
      message: (d.message as string) ?? null,
      acme: d.acme ? (JSON.parse(d.acme as string) as unknown) : null,
      lineage: (d.lineage as string) ?? null,
      stages: JSON.parse((d.stages as string) ?? '[]') as Array<{ stage: string; ms: number }>,
      startedAt: (d.started_at as number) ?? null,
      updatedAt: d.updated_at as number,
      finishedAt: (d.finished_at as number) ?? null,
    }));
    return { id: r.id as string, kind: r.kind as string, owner: r.owner as string, state: r.state as JobRow['state'], source: r.source as string, createdAt: r.created_at as number, finishedAt: (r.finished_at as number) ?? null, options: JSON.parse((r.options as string) ?? '{}') as Record<string, unknown>, domains };
  }

  // ------------------------------------------------------------------------------------------------- sites

  /** Sites a panel described (not in the config file): kept so renewals, DNS hooks and recovery know them. */
  sites(): Array<{ domain: string; site: Record<string, unknown>; source: string }> {
    try {
      const rows = this.sql('SELECT domain, site, source FROM sites ORDER BY domain').all() as Array<{ domain: string; site: string; source: string }>;
      return rows.map((r) => ({ domain: r.domain, site: JSON.parse(r.site) as Record<string, unknown>, source: r.source }));
    } catch {
      return []; // a read-only copy of an older schema has none
    }
  }

  upsertSite(domain: string, site: Record<string, unknown>, source: string): void {
    this.sql('INSERT INTO sites (domain, site, source, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(domain) DO UPDATE SET site = excluded.site, source = excluded.source, updated_at = excluded.updated_at').run(domain, JSON.stringify(site), source, Date.now());
  }

  deleteSite(domain: string): void {
    this.sql('DELETE FROM sites WHERE domain = ?').run(domain);
  }

  // ----------------------------------------------------------------------------------------------- replays

  /**
   * Records a request signature until `expiresAt`; false when it was seen already (a replay). Shared by every
   * agent process on this state directory, and kept across restarts.
   */
  rememberSignature(signature: string, expiresAt: number, now = Date.now()): boolean {
    return this.db.transaction(() => {
      this.sql('DELETE FROM replays WHERE expires_at < ?').run(now);
      return this.sql('INSERT OR IGNORE INTO replays (signature, expires_at) VALUES (?, ?)').run(signature, expiresAt).changes === 1;
    }).immediate();
  }

  // ---------------------------------------------------------------------------------------------------- kv

  setValue(key: string, value: string): void {
    this.sql('INSERT INTO kv (key, value, at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, at = excluded.at').run(key, value, Date.now());
  }

  getValue(key: string): string | null {
    return (this.sql('SELECT value FROM kv WHERE key = ?').get(key) as { value: string } | undefined)?.value ?? null;
  }

  deleteValue(key: string): void {
    this.sql('DELETE FROM kv WHERE key = ?').run(key);
  }

  // ------------------------------------------------------------------------------------------------ outbox

  /** Queues a notification once per key; false when that key was queued before. */
  enqueueNotification(key: string, kind: string, payload: string, at = Date.now()): boolean {
    return this.sql('INSERT OR IGNORE INTO outbox (key, kind, payload, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?)').run(key, kind, payload, at, at).changes === 1;
  }

  /**
   * Claims the notifications due for delivery (not delivered, next attempt reached, not claimed by a live process):
   * two processes delivering at once never send one twice.
   */
  claimNotifications(now = Date.now(), limit = 100): OutboxRow[] {
    return this.db.transaction(() => {
      const rows = this.sql(`SELECT * FROM outbox WHERE delivered_at IS NULL AND next_attempt_at <= ? ORDER BY id LIMIT ?`).all(now, limit) as Array<Record<string, unknown>>;
      const claimed: OutboxRow[] = [];
      for (const r of rows) {
        const by = r.claimed_by as string | null;
        if (by && by !== ownerStamp() && ownerAlive(by)) continue;
        this.sql('UPDATE outbox SET claimed_by = ?, claimed_at = ? WHERE id = ?').run(ownerStamp(), now, r.id);
        const delivered = (this.sql('SELECT plugin FROM outbox_deliveries WHERE outbox_id = ?').all(r.id) as Array<{ plugin: string }>).map((d) => d.plugin);
        claimed.push({ id: r.id as number, key: r.key as string, kind: r.kind as string, payload: r.payload as string, attempts: r.attempts as number, deliveredTo: delivered });
      }
      return claimed;
    }).immediate();
  }

  markDeliveredTo(id: number, plugin: string): void {
    this.sql('INSERT OR IGNORE INTO outbox_deliveries (outbox_id, plugin, at) VALUES (?, ?, ?)').run(id, plugin, Date.now());
  }

  /** Ends one delivery attempt: delivered to every tap, or to be retried after `retryAt`. */
  settleNotification(id: number, result: { delivered: true } | { delivered: false; error: string; retryAt: number }): void {
    if (result.delivered) this.sql('UPDATE outbox SET delivered_at = ?, claimed_by = NULL, attempts = attempts + 1, last_error = NULL WHERE id = ?').run(Date.now(), id);
    else this.sql('UPDATE outbox SET claimed_by = NULL, attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?').run(result.error.slice(0, 2000), result.retryAt, id);
  }

  outbox(): Array<OutboxRow & { deliveredAt: number | null; lastError: string | null; nextAttemptAt: number }> {
    const rows = this.db.prepare('SELECT * FROM outbox ORDER BY id').all() as Array<Record<string, unknown>>;
    return rows.map((r) => ({ id: r.id as number, key: r.key as string, kind: r.kind as string, payload: r.payload as string, attempts: r.attempts as number, deliveredTo: [], deliveredAt: (r.delivered_at as number) ?? null, lastError: (r.last_error as string) ?? null, nextAttemptAt: r.next_attempt_at as number }));
  }

  recordAttempt(a: AttemptRecord, at = Date.now()): void {
    this.db.transaction(() => {
      this.db.prepare('INSERT INTO attempts (at, kind, domain, lineage, ok, code, message, ms, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)').run(at, a.kind, a.domain, a.lineage ?? null, a.ok ? 1 : 0, a.code ?? null, a.message ?? null, a.ms ?? null, process.pid);
      if (a.lineage) {
        const exists = this.db.prepare('SELECT 1 FROM certificates WHERE lineage = ?').get(a.lineage);
        if (!exists) return;
        if (a.ok) {
          this.db.prepare(`UPDATE certificates SET last_attempt_at = ?, last_attempt_kind = ?, last_outcome = 'ok', consecutive_failures = 0,
            renewed_at = CASE WHEN ? = 'renew' OR ? = 'deploy' THEN ? ELSE renewed_at END, updated_at = ? WHERE lineage = ?`).run(at, a.kind, a.kind, a.kind, at, at, a.lineage);
        } else {
          this.db.prepare(`UPDATE certificates SET last_attempt_at = ?, last_attempt_kind = ?, last_outcome = 'failed', last_error_code = ?, last_error_message = ?,
            last_error_at = ?, consecutive_failures = consecutive_failures + 1, updated_at = ? WHERE lineage = ?`).run(at, a.kind, a.code ?? null, a.message ?? null, at, at, a.lineage);
        }
      }
    }).immediate();
  }

  /** The latest attempt of any kind for a domain. */
  lastAttempt(domain: string): (AttemptRecord & { at: number }) | null {
    const r = this.sql('SELECT * FROM attempts WHERE domain = ? ORDER BY id DESC LIMIT 1').get(domain) as Record<string, unknown> | undefined;
    return r ? { at: r.at as number, kind: r.kind as AttemptRecord['kind'], domain: r.domain as string, lineage: (r.lineage as string) ?? undefined, ok: r.ok === 1, code: (r.code as string) ?? undefined, message: (r.message as string) ?? undefined } : null;
  }

  attempts(domain?: string): Array<AttemptRecord & { at: number }> {
    const rows = (domain ? this.db.prepare('SELECT * FROM attempts WHERE domain = ? ORDER BY id').all(domain) : this.db.prepare('SELECT * FROM attempts ORDER BY id').all()) as Array<Record<string, unknown>>;
    return rows.map((r) => ({ at: r.at as number, kind: r.kind as AttemptRecord['kind'], domain: r.domain as string, lineage: (r.lineage as string) ?? undefined, ok: r.ok === 1, code: (r.code as string) ?? undefined, message: (r.message as string) ?? undefined, ms: (r.ms as number) ?? undefined }));
  }

  recordValidationFailure(name: string, detail: string, at = Date.now()): void {
    this.db.prepare('INSERT INTO validation_failures (name, at, detail) VALUES (?, ?, ?)').run(name, at, detail);
  }

  /** Failed validations of `name` since `since` (ms epoch), oldest first. */
  validationFailures(name: string, since: number): Array<{ at: number; detail: string }> {
    return this.db.prepare('SELECT at, detail FROM validation_failures WHERE name = ? AND at >= ? ORDER BY at').all(name, since) as Array<{ at: number; detail: string }>;
  }

  deleteCertificate(lineage: string): void {
    this.sql('DELETE FROM certificates WHERE lineage = ?').run(lineage);
  }

  upsertCertificate(row: Omit<CertificateRow, 'lastAttemptAt' | 'lastAttemptKind' | 'lastOutcome' | 'lastErrorCode' | 'lastErrorMessage' | 'lastErrorAt' | 'consecutiveFailures' | 'renewedAt'>): void {
    this.sql(`INSERT INTO certificates (lineage, names, cert_path, file_key, not_before, not_after, serial, issuer, key_type, vhosts, updated_at)
      VALUES (@lineage, @names, @certPath, @fileKey, @notBefore, @notAfter, @serial, @issuer, @keyType, @vhosts, @now)
      ON CONFLICT(lineage) DO UPDATE SET names = excluded.names, cert_path = excluded.cert_path, file_key = excluded.file_key, not_before = excluded.not_before,
        not_after = excluded.not_after, serial = excluded.serial, issuer = excluded.issuer, key_type = excluded.key_type, vhosts = excluded.vhosts, updated_at = excluded.updated_at`)
      .run({ ...row, names: JSON.stringify(row.names), vhosts: JSON.stringify(row.vhosts), now: Date.now() });
  }

  certificates(): CertificateRow[] {
    const rows = this.db.prepare('SELECT * FROM certificates ORDER BY lineage').all() as Array<Record<string, unknown>>;
    return rows.map(rowToCertificate);
  }

  certificate(lineage: string): CertificateRow | null {
    const row = this.db.prepare('SELECT * FROM certificates WHERE lineage = ?').get(lineage) as Record<string, unknown> | undefined;
    return row ? rowToCertificate(row) : null;
  }

  deleteCertificatesExcept(lineages: readonly string[]): void {
    const keep = new Set(lineages);
    const del = this.db.prepare('DELETE FROM certificates WHERE lineage = ?');
    this.db.transaction(() => {
      for (const c of this.db.prepare('SELECT lineage FROM certificates').all() as Array<{ lineage: string }>) if (!keep.has(c.lineage)) del.run(c.lineage);
    }).immediate();
  }

}

/**
 * A database this user cannot write, read from a copy in memory: SQLite cannot open a WAL database read-only without
 * writing its shared-memory file. The copy is the main file (what the last writer checkpointed), switched to
 * rollback-journal mode in its header (bytes 18-19), which an in-memory database needs.
 */
function readCopy(file: string): Database.Database {
  const bytes = fs.readFileSync(file);
  if (bytes.length >= 20 && bytes.subarray(0, 16).toString('latin1') === 'SQLite format 3\u0000') {
    bytes[18] = 1;
    bytes[19] = 1;
  }
  return new Database(bytes);
}

export type JobDomainState = 'queued' | 'checking' | 'challenge' | 'issuing' | 'installing' | 'done' | 'failed';

export interface JobRow {
  id: string;
  kind: string;
  owner: string;
  state: 'running' | 'done' | 'failed' | 'interrupted';
  source: string;
  createdAt: number;
  finishedAt: number | null;
  options: Record<string, unknown>;
  domains: Array<{
    domain: string;
    state: JobDomainState;
    code: string | null;
    message: string | null;
    acme: unknown;
    lineage: string | null;
    stages: Array<{ stage: string; ms: number }>;
    startedAt: number | null;
    updatedAt: number;
    finishedAt: number | null;
  }>;
}

export interface UndoStepRow {
  id: number;
  runId: string;
  owner: string;
  plugin: string;
  kind: string;
  payload: string;
  when: 'always' | 'failure';
  state: 'pending' | 'running' | 'done';
  attempts: number;
  lastError: string | null;
  createdAt: number;
}

export interface OutboxRow {
  id: number;
  key: string;
  kind: string;
  payload: string;
  attempts: number;
  /** Taps (plugin names) that already took this notification. */
  deliveredTo: string[];
}

function rowToCertificate(r: Record<string, unknown>): CertificateRow {
  return {
    lineage: r.lineage as string,
    names: JSON.parse(r.names as string) as string[],
    certPath: r.cert_path as string,
    fileKey: (r.file_key as string) ?? null,
    notBefore: (r.not_before as number) ?? null,
    notAfter: (r.not_after as number) ?? null,
    serial: (r.serial as string) ?? null,
    issuer: (r.issuer as string) ?? null,
    keyType: (r.key_type as string) ?? null,
    vhosts: JSON.parse((r.vhosts as string) ?? '[]') as string[],
    lastAttemptAt: (r.last_attempt_at as number) ?? null,
    lastAttemptKind: (r.last_attempt_kind as string) ?? null,
    lastOutcome: (r.last_outcome as string) ?? null,
    lastErrorCode: (r.last_error_code as string) ?? null,
    lastErrorMessage: (r.last_error_message as string) ?? null,
    lastErrorAt: (r.last_error_at as number) ?? null,
    consecutiveFailures: (r.consecutive_failures as number) ?? 0,
    renewedAt: (r.renewed_at as number) ?? null,
  };
}
