/**
 * autossl's state: SQLite (better-sqlite3) in WAL mode under `stateDir`, safe for several processes at once
 * (the CLI, certbot's deploy hook, the agent): every write is one IMMEDIATE transaction and waits on a busy
 * database instead of failing. Schema changes are numbered migrations recorded in `user_version`.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

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
];

export interface AttemptRecord {
  kind: 'issue' | 'renew' | 'deploy';
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

  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.db = new Database(path.join(dir, 'state.db'), { timeout: 15_000 });
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.migrate();
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
    this.db.close();
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

  /** Records that a notification was sent; false when this (lineage, kind, key) was already notified. */
  markNotified(lineage: string, kind: string, key: string): boolean {
    const r = this.sql('INSERT OR IGNORE INTO notifications (lineage, kind, key, at) VALUES (?, ?, ?, ?)').run(lineage, kind, key, Date.now());
    return r.changes === 1;
  }
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
