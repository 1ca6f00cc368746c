/** Certificates, attempts and validation failures in PostgreSQL (same rows as src/store/sqlite/certificates.ts). */
import type { AttemptRecord, AttemptStore, CertificateFacts, CertificateRow, CertificateStore, RevocationRecord } from '../store.js';
import { certificateColumns, revocationRecord, rowToAttempt, rowToCertificate } from '../rows.js';
import type { Db } from './db.js';

export class PgCertificates implements CertificateStore {
  constructor(private readonly db: Db) {}

  async list(): Promise<CertificateRow[]> {
    return (await this.db.query('SELECT * FROM certificates ORDER BY lineage COLLATE "C"')).rows.map(rowToCertificate);
  }

  async get(lineage: string): Promise<CertificateRow | null> {
    const row = (await this.db.query('SELECT * FROM certificates WHERE lineage = $1', [lineage])).rows[0];
    return row ? rowToCertificate(row) : null;
  }

  /** All rows in one statement (a scan of thousands of lineages is one round trip, not thousands). */
  async upsert(rows: readonly CertificateFacts[]): Promise<void> {
    if (rows.length === 0) return;
    const now = Date.now();
    await this.db.query(
      `INSERT INTO certificates (lineage, names, cert_path, file_key, not_before, not_after, serial, issuer, key_type, vhosts, updated_at)
      SELECT r.lineage, r.names, r."certPath", r."fileKey", r."notBefore", r."notAfter", r.serial, r.issuer, r."keyType", r.vhosts, $2
      FROM json_to_recordset($1::json) AS r(lineage TEXT, names TEXT, "certPath" TEXT, "fileKey" TEXT, "notBefore" BIGINT, "notAfter" BIGINT, serial TEXT, issuer TEXT, "keyType" TEXT, vhosts TEXT)
      ON CONFLICT (lineage) DO UPDATE SET names = excluded.names, cert_path = excluded.cert_path, file_key = excluded.file_key, not_before = excluded.not_before,
        not_after = excluded.not_after, serial = excluded.serial, issuer = excluded.issuer, key_type = excluded.key_type, vhosts = excluded.vhosts, updated_at = excluded.updated_at`,
      [JSON.stringify(dedupe(rows).map(certificateColumns)), now],
    );
  }

  async delete(lineage: string): Promise<void> {
    await this.db.query('DELETE FROM certificates WHERE lineage = $1', [lineage]);
  }

  async deleteExcept(lineages: readonly string[]): Promise<void> {
    await this.db.query('DELETE FROM certificates WHERE NOT (lineage = ANY($1))', [[...lineages]]);
  }

  async revocation(lineage: string): Promise<RevocationRecord | null> {
    const r = (
      await this.db.query<{ serial: string; state: RevocationRecord['state']; at: number; source: string | null }>(
        'SELECT serial, state, at, source FROM revocations WHERE lineage = $1',
        [lineage],
      )
    ).rows[0];
    return r ? revocationRecord(r) : null;
  }

  async setRevocation(lineage: string, record: RevocationRecord): Promise<void> {
    await this.db.query(
      'INSERT INTO revocations (lineage, serial, state, at, source) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (lineage) DO UPDATE SET serial = excluded.serial, state = excluded.state, at = excluded.at, source = excluded.source',
      [lineage, record.serial, record.state, record.at, record.source ?? null],
    );
  }
}

/** One statement cannot update a row twice: the last fact of a lineage wins, as SQLite's row-by-row upsert did. */
function dedupe(rows: readonly CertificateFacts[]): CertificateFacts[] {
  return [...new Map(rows.map((r) => [r.lineage, r])).values()];
}

export class PgAttempts implements AttemptStore {
  constructor(private readonly db: Db) {}

  async record(a: AttemptRecord, at = Date.now()): Promise<void> {
    await this.db.tx(async (q) => {
      await q('INSERT INTO attempts (at, kind, domain, lineage, ok, code, message, ms, pid) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)', [
        at,
        a.kind,
        a.domain,
        a.lineage ?? null,
        a.ok,
        a.code ?? null,
        a.message ?? null,
        a.ms ?? null,
        process.pid,
      ]);
      if (!a.lineage) return;
      if (a.ok) {
        await q(
          `UPDATE certificates SET last_attempt_at = $1, last_attempt_kind = $2, last_outcome = 'ok', consecutive_failures = 0,
          renewed_at = CASE WHEN $2 IN ('renew', 'deploy') THEN $1 ELSE renewed_at END, updated_at = $1 WHERE lineage = $3`,
          [at, a.kind, a.lineage],
        );
      } else {
        await q(
          `UPDATE certificates SET last_attempt_at = $1, last_attempt_kind = $2, last_outcome = 'failed', last_error_code = $3, last_error_message = $4,
          last_error_at = $1, consecutive_failures = consecutive_failures + 1, updated_at = $1 WHERE lineage = $5`,
          [at, a.kind, a.code ?? null, a.message ?? null, a.lineage],
        );
      }
    });
  }

  async last(domain: string): Promise<(AttemptRecord & { at: number }) | null> {
    const r = (await this.db.query('SELECT * FROM attempts WHERE domain = $1 ORDER BY id DESC LIMIT 1', [domain])).rows[0];
    return r ? rowToAttempt(r) : null;
  }

  async list(domain?: string): Promise<Array<AttemptRecord & { at: number }>> {
    const rows = (
      domain ? await this.db.query('SELECT * FROM attempts WHERE domain = $1 ORDER BY id', [domain]) : await this.db.query('SELECT * FROM attempts ORDER BY id')
    ).rows;
    return rows.map((r) => ({ ...rowToAttempt(r), ms: (r.ms as number) ?? undefined }));
  }

  async recordValidationFailure(name: string, detail: string, at = Date.now()): Promise<void> {
    await this.db.query('INSERT INTO validation_failures (name, at, detail) VALUES ($1, $2, $3)', [name, at, detail]);
  }

  async validationFailures(name: string, since: number): Promise<Array<{ at: number; detail: string }>> {
    return (
      await this.db.query<{ at: number; detail: string }>('SELECT at, detail FROM validation_failures WHERE name = $1 AND at >= $2 ORDER BY at, id', [
        name,
        since,
      ])
    ).rows;
  }
}
