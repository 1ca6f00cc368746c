/**
 * Opening autossl's SQLite database: WAL mode under `stateDir`, safe for several processes at once (the CLI,
 * certbot's deploy hook, the agent): every write is one IMMEDIATE transaction and waits on a busy database
 * instead of failing. Schema changes are numbered migrations recorded in `user_version`.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { AutoSslError } from '../../errors.js';

export const MIGRATIONS: string[] = [
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
  // 5: the records the untyped kv table held, each in a table of its own (kv is copied over, then dropped)
  `CREATE TABLE rate_limits (
     server TEXT PRIMARY KEY,       -- the CA's directory URL, or "letsencrypt"
     until_at INTEGER NOT NULL,
     message TEXT NOT NULL
   );
   CREATE TABLE renew_run_lineages (
     run_id TEXT NOT NULL,          -- certbot renew's run: its pre hook records, its post hook takes
     lineage TEXT NOT NULL,
     due INTEGER,
     serial TEXT,
     PRIMARY KEY (run_id, lineage)
   );
   CREATE TABLE dns_progress (
     domain TEXT PRIMARY KEY,
     phase TEXT NOT NULL,           -- dns_challenge | dns_propagation | le_verify
     message TEXT NOT NULL,
     at INTEGER NOT NULL
   );
   CREATE TABLE revocations (
     lineage TEXT PRIMARY KEY,
     serial TEXT NOT NULL,
     state TEXT NOT NULL,           -- good | revoked | none | unknown
     at INTEGER NOT NULL,
     source TEXT
   );
   CREATE TABLE jobs_requeued (
     job_id TEXT PRIMARY KEY,       -- the agent queued this interrupted job's domains again (once)
     at INTEGER NOT NULL
   );
   INSERT OR IGNORE INTO rate_limits (server, until_at, message)
     SELECT substr(key, 11), json_extract(value, '$.until'), COALESCE(json_extract(value, '$.message'), '')
     FROM kv WHERE key LIKE 'ratelimit:%' AND json_valid(value) AND json_extract(value, '$.until') IS NOT NULL;
   INSERT OR IGNORE INTO renew_run_lineages (run_id, lineage, due, serial)
     SELECT substr(kv.key, 7), json_extract(e.value, '$.name'), json_extract(e.value, '$.due'), json_extract(e.value, '$.serial')
     FROM kv, json_each(kv.value) AS e WHERE kv.key LIKE 'renew:%' AND json_valid(kv.value) AND json_extract(e.value, '$.name') IS NOT NULL;
   INSERT OR IGNORE INTO dns_progress (domain, phase, message, at)
     SELECT substr(key, 14), json_extract(value, '$.phase'), COALESCE(json_extract(value, '$.message'), ''), COALESCE(json_extract(value, '$.at'), at)
     FROM kv WHERE key LIKE 'dns-progress:%' AND json_valid(value) AND json_extract(value, '$.phase') IS NOT NULL;
   INSERT OR IGNORE INTO revocations (lineage, serial, state, at, source)
     SELECT substr(key, 12), json_extract(value, '$.serial'), json_extract(value, '$.state'), COALESCE(json_extract(value, '$.at'), at), json_extract(value, '$.source')
     FROM kv WHERE key LIKE 'revocation:%' AND json_valid(value) AND json_extract(value, '$.serial') IS NOT NULL AND json_extract(value, '$.state') IS NOT NULL;
   INSERT OR IGNORE INTO jobs_requeued (job_id, at) SELECT substr(key, 16), at FROM kv WHERE key LIKE 'agent:requeued:%';
   DROP TABLE kv;`,
  // 6: the CA's ARI window per lineage (RFC 9773)
  `CREATE TABLE ari_windows (
     lineage TEXT PRIMARY KEY,
     cert_id TEXT NOT NULL,         -- the RFC 9773 certificate id the window is for
     serial TEXT NOT NULL,
     start_at INTEGER,
     end_at INTEGER,
     explanation_url TEXT,
     renew_at INTEGER,              -- the random moment inside the window picked for the renewal
     fetched_at INTEGER NOT NULL,
     next_fetch_at INTEGER NOT NULL,
     error TEXT
   );`,
  // 7: consecutive failed authorizations per name and ACME account (the back-off before a CA's pause)
  `CREATE TABLE backoff (
     account TEXT NOT NULL,         -- the CA's directory URL, or "letsencrypt"
     name TEXT NOT NULL,
     failures INTEGER NOT NULL,
     last_error TEXT NOT NULL,
     last_at INTEGER NOT NULL,
     until_at INTEGER,              -- no order before this
     unpause_url TEXT,              -- the CA paused the name: where the admin lifts it
     PRIMARY KEY (account, name)
   );`,
  // 8: a fleet of nodes sharing this store (issue 24): heartbeats, challenge tokens and acks, lineages, what each serves
  `CREATE TABLE fleet_nodes (
     node TEXT PRIMARY KEY,
     seen_at INTEGER NOT NULL
   );
   CREATE TABLE fleet_challenges (
     token TEXT PRIMARY KEY,        -- the file name under /.well-known/acme-challenge/
     content TEXT NOT NULL,
     node TEXT NOT NULL,            -- the node that published it
     at INTEGER NOT NULL
   );
   CREATE TABLE fleet_acks (
     token TEXT NOT NULL,
     node TEXT NOT NULL,            -- this node serves the token now
     at INTEGER NOT NULL,
     PRIMARY KEY (token, node)
   );
   CREATE TABLE fleet_lineages (
     id TEXT PRIMARY KEY,
     names TEXT NOT NULL,           -- JSON array
     serial TEXT NOT NULL,
     not_after INTEGER NOT NULL,
     cert TEXT NOT NULL,
     chain TEXT NOT NULL,
     fullchain TEXT NOT NULL,
     key TEXT NOT NULL,             -- PEM, or enc:v1:... (fleet.keyFile)
     node TEXT NOT NULL,
     at INTEGER NOT NULL
   );
   CREATE TABLE fleet_served (
     node TEXT NOT NULL,
     lineage TEXT NOT NULL,
     serial TEXT,
     error TEXT,
     at INTEGER NOT NULL,
     PRIMARY KEY (node, lineage)
   );`,
];

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

export function openDatabase(dir: string, options: { readOnly?: boolean } = {}): { db: Database.Database; readOnly: boolean } {
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
    const why =
      e.code === 'SQLITE_CORRUPT' || e.code === 'SQLITE_NOTADB'
        ? 'it is not a valid SQLite database (damaged, or another file is in its place)'
        : e.code === 'ENOTDIR' || e.code === 'EEXIST'
          ? `${dir} is not a directory`
          : e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS' || e.code === 'SQLITE_READONLY' || e.code === 'SQLITE_CANTOPEN'
            ? 'it is not writable by this user'
            : e.message;
    const hint =
      e.code === 'SQLITE_CORRUPT' || e.code === 'SQLITE_NOTADB'
        ? `Move ${file} aside (autossl starts a new one; the history of attempts and notifications in it is lost), then run again.`
        : `Make ${dir} a directory writable by the user running autossl (stateDir in the config), then run again.`;
    return new AutoSslError('STATE_UNAVAILABLE', `Cannot ${what} autossl's state ${file}: ${why}.`, { hint, cause: error, details: { path: file } });
  };
  let db: Database.Database | null = null;
  let readOnly = false;
  let migrated = false;
  const openWritable = (): Database.Database => {
    const opened = new Database(file, { timeout: busyMs });
    try {
      // private: job history, registered sites, request signatures (the directory itself lets nginx through to acme-challenge/)
      for (const f of [file, `${file}-wal`, `${file}-shm`]) if (fs.existsSync(f) && fs.statSync(f).mode & 0o077) fs.chmodSync(f, 0o600);
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
        migrate(db);
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
  const opened = db!;
  try {
    // an in-memory store (nothing on disk, or a copy of a file this user cannot write) gets the schema; nothing
    // of it reaches the disk
    if (!migrated) migrate(opened);
  } catch (error) {
    opened.close();
    throw unavailable(error, readOnly ? 'read' : 'update');
  }
  return { db: opened, readOnly };
}

function migrate(db: Database.Database): void {
  const run = db.transaction(() => {
    const version = db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }
  });
  run.immediate();
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
