/** Certificates (what a scan of the lineages found, with their last outcome), attempts and validation failures. */
import type { AttemptRecord, AttemptStore, CertificateFacts, CertificateRow, CertificateStore, RevocationRecord } from '../store.js';
import { certificateColumns, revocationRecord, rowToAttempt, rowToCertificate } from '../rows.js';
import type { Sql } from './sql.js';

export class SqliteCertificates implements CertificateStore {
  constructor(private readonly sql: Sql) {}

  async list(): Promise<CertificateRow[]> {
    return (this.sql.st('SELECT * FROM certificates ORDER BY lineage').all() as Array<Record<string, unknown>>).map(rowToCertificate);
  }

  async get(lineage: string): Promise<CertificateRow | null> {
    const row = this.sql.st('SELECT * FROM certificates WHERE lineage = ?').get(lineage) as Record<string, unknown> | undefined;
    return row ? rowToCertificate(row) : null;
  }

  async upsert(rows: readonly CertificateFacts[]): Promise<void> {
    const st = this.sql.st(`INSERT INTO certificates (lineage, names, cert_path, file_key, not_before, not_after, serial, issuer, key_type, vhosts, updated_at)
      VALUES (@lineage, @names, @certPath, @fileKey, @notBefore, @notAfter, @serial, @issuer, @keyType, @vhosts, @now)
      ON CONFLICT(lineage) DO UPDATE SET names = excluded.names, cert_path = excluded.cert_path, file_key = excluded.file_key, not_before = excluded.not_before,
        not_after = excluded.not_after, serial = excluded.serial, issuer = excluded.issuer, key_type = excluded.key_type, vhosts = excluded.vhosts, updated_at = excluded.updated_at`);
    this.sql.tx(() => {
      for (const row of rows) st.run({ ...certificateColumns(row), now: Date.now() });
    });
  }

  async delete(lineage: string): Promise<void> {
    this.sql.st('DELETE FROM certificates WHERE lineage = ?').run(lineage);
  }

  async deleteExcept(lineages: readonly string[]): Promise<void> {
    const keep = new Set(lineages);
    const del = this.sql.st('DELETE FROM certificates WHERE lineage = ?');
    this.sql.tx(() => {
      for (const c of this.sql.st('SELECT lineage FROM certificates').all() as Array<{ lineage: string }>) if (!keep.has(c.lineage)) del.run(c.lineage);
    });
  }

  async revocation(lineage: string): Promise<RevocationRecord | null> {
    const r = this.sql.st('SELECT serial, state, at, source FROM revocations WHERE lineage = ?').get(lineage) as
      { serial: string; state: RevocationRecord['state']; at: number; source: string | null } | undefined;
    return r ? revocationRecord(r) : null;
  }

  async setRevocation(lineage: string, record: RevocationRecord): Promise<void> {
    this.sql
      .st(
        'INSERT INTO revocations (lineage, serial, state, at, source) VALUES (?, ?, ?, ?, ?) ON CONFLICT(lineage) DO UPDATE SET serial = excluded.serial, state = excluded.state, at = excluded.at, source = excluded.source',
      )
      .run(lineage, record.serial, record.state, record.at, record.source ?? null);
  }
}

export class SqliteAttempts implements AttemptStore {
  constructor(private readonly sql: Sql) {}

  async record(a: AttemptRecord, at = Date.now()): Promise<void> {
    this.sql.tx(() => {
      this.sql
        .st('INSERT INTO attempts (at, kind, domain, lineage, ok, code, message, ms, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(at, a.kind, a.domain, a.lineage ?? null, a.ok ? 1 : 0, a.code ?? null, a.message ?? null, a.ms ?? null, process.pid);
      if (a.lineage) {
        const exists = this.sql.st('SELECT 1 FROM certificates WHERE lineage = ?').get(a.lineage);
        if (!exists) return;
        if (a.ok) {
          this.sql
            .st(
              `UPDATE certificates SET last_attempt_at = ?, last_attempt_kind = ?, last_outcome = 'ok', consecutive_failures = 0,
            renewed_at = CASE WHEN ? = 'renew' OR ? = 'deploy' THEN ? ELSE renewed_at END, updated_at = ? WHERE lineage = ?`,
            )
            .run(at, a.kind, a.kind, a.kind, at, at, a.lineage);
        } else {
          this.sql
            .st(
              `UPDATE certificates SET last_attempt_at = ?, last_attempt_kind = ?, last_outcome = 'failed', last_error_code = ?, last_error_message = ?,
            last_error_at = ?, consecutive_failures = consecutive_failures + 1, updated_at = ? WHERE lineage = ?`,
            )
            .run(at, a.kind, a.code ?? null, a.message ?? null, at, at, a.lineage);
        }
      }
    });
  }

  async last(domain: string): Promise<(AttemptRecord & { at: number }) | null> {
    const r = this.sql.st('SELECT * FROM attempts WHERE domain = ? ORDER BY id DESC LIMIT 1').get(domain) as Record<string, unknown> | undefined;
    return r ? rowToAttempt(r) : null;
  }

  async list(domain?: string): Promise<Array<AttemptRecord & { at: number }>> {
    const rows = (
      domain ? this.sql.st('SELECT * FROM attempts WHERE domain = ? ORDER BY id').all(domain) : this.sql.st('SELECT * FROM attempts ORDER BY id').all()
    ) as Array<Record<string, unknown>>;
    return rows.map((r) => ({ ...rowToAttempt(r), ms: (r.ms as number) ?? undefined }));
  }

  async recordValidationFailure(name: string, detail: string, at = Date.now()): Promise<void> {
    this.sql.st('INSERT INTO validation_failures (name, at, detail) VALUES (?, ?, ?)').run(name, at, detail);
  }

  async validationFailures(name: string, since: number): Promise<Array<{ at: number; detail: string }>> {
    return this.sql.st('SELECT at, detail FROM validation_failures WHERE name = ? AND at >= ? ORDER BY at').all(name, since) as Array<{
      at: number;
      detail: string;
    }>;
  }
}
