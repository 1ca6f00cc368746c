/**
 * Table rows to the Store's values, the same for every SQL store (SQLite and PostgreSQL keep the same columns):
 * one mapping, so a column added to one store cannot be read differently by the other.
 */
import type { AriWindowRecord, BackoffRecord, CertificateRow, JobRow } from './store.js';

export function rowToCertificate(r: Record<string, unknown>): CertificateRow {
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

/** One row of job_domains. */
export function rowToJobDomain(d: Record<string, unknown>): JobRow['domains'][number] {
  return {
    domain: d.domain as string,
    state: d.state as JobRow['domains'][number]['state'],
    code: (d.code as string) ?? null,
    message: (d.message as string) ?? null,
    acme: d.acme ? (JSON.parse(d.acme as string) as unknown) : null,
    lineage: (d.lineage as string) ?? null,
    stages: JSON.parse((d.stages as string) ?? '[]') as Array<{ stage: string; ms: number }>,
    startedAt: (d.started_at as number) ?? null,
    updatedAt: d.updated_at as number,
    finishedAt: (d.finished_at as number) ?? null,
  };
}

export interface AriRow {
  lineage: string;
  cert_id: string;
  serial: string;
  start_at: number | null;
  end_at: number | null;
  explanation_url: string | null;
  renew_at: number | null;
  fetched_at: number;
  next_fetch_at: number;
  error: string | null;
}

export const ariRecord = (r: AriRow): AriWindowRecord => ({
  certId: r.cert_id,
  serial: r.serial,
  start: r.start_at,
  end: r.end_at,
  explanationUrl: r.explanation_url,
  renewAt: r.renew_at,
  fetchedAt: r.fetched_at,
  nextFetchAt: r.next_fetch_at,
  error: r.error,
});

export interface BackoffRow {
  account: string;
  name: string;
  failures: number;
  last_error: string;
  last_at: number;
  until_at: number | null;
  unpause_url: string | null;
}

export const backoffRecord = (r: BackoffRow): BackoffRecord => ({
  failures: r.failures,
  lastError: r.last_error,
  lastAt: r.last_at,
  until: r.until_at,
  unpauseUrl: r.unpause_url,
});
