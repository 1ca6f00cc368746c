/**
 * Table rows to the Store's values, the same for every SQL store (SQLite and PostgreSQL keep the same columns):
 * one mapping, so a column added to one store cannot be read differently by the other.
 */
import type {
  AriWindowRecord,
  AttemptRecord,
  BackoffRecord,
  CertificateFacts,
  CertificateRow,
  FleetLineageRow,
  JobRow,
  OutboxEntry,
  OutboxRow,
  RenewRunLineage,
  RevocationRecord,
  SiteRow,
  UndoStepRow,
} from './store.js';

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

/** A job's row with its domains (read by the caller: one query for several jobs, or one per job). */
export function rowToJob(r: Record<string, unknown>, domains: JobRow['domains']): JobRow {
  return {
    id: r.id as string,
    kind: r.kind as string,
    owner: r.owner as string,
    state: r.state as JobRow['state'],
    source: r.source as string,
    createdAt: r.created_at as number,
    finishedAt: (r.finished_at as number) ?? null,
    options: JSON.parse((r.options as string) ?? '{}') as Record<string, unknown>,
    domains,
  };
}

/** One row of attempts; `ok` is a boolean in PostgreSQL and 0/1 in SQLite. `ms` only where the caller lists them. */
export function rowToAttempt(r: Record<string, unknown>): AttemptRecord & { at: number } {
  return {
    at: r.at as number,
    kind: r.kind as AttemptRecord['kind'],
    domain: r.domain as string,
    lineage: (r.lineage as string) ?? undefined,
    ok: r.ok === true || r.ok === 1,
    code: (r.code as string) ?? undefined,
    message: (r.message as string) ?? undefined,
  };
}

/** The certificate columns a scan writes, JSON where the table keeps a list. */
export function certificateColumns(r: CertificateFacts): Omit<CertificateFacts, 'names' | 'vhosts'> & { names: string; vhosts: string } {
  return {
    lineage: r.lineage,
    names: JSON.stringify(r.names),
    certPath: r.certPath,
    fileKey: r.fileKey,
    notBefore: r.notBefore,
    notAfter: r.notAfter,
    serial: r.serial,
    issuer: r.issuer,
    keyType: r.keyType,
    vhosts: JSON.stringify(r.vhosts),
  };
}

export const revocationRecord = (r: { serial: string; state: RevocationRecord['state']; at: number; source: string | null }): RevocationRecord => ({
  serial: r.serial,
  state: r.state,
  at: r.at,
  ...(r.source === null ? {} : { source: r.source }),
});

/** A notification as a deliverer claims it, with the taps that took it already. */
export function rowToOutbox(r: Record<string, unknown>, deliveredTo: string[]): OutboxRow {
  return {
    id: r.id as number,
    key: r.key as string,
    kind: r.kind as string,
    payload: r.payload as string,
    attempts: r.attempts as number,
    deliveredTo,
  };
}

/** A notification as `list` shows it (its taps are not read there). */
export function rowToOutboxEntry(r: Record<string, unknown>): OutboxEntry {
  return {
    ...rowToOutbox(r, []),
    deliveredAt: (r.delivered_at as number) ?? null,
    lastError: (r.last_error as string) ?? null,
    nextAttemptAt: r.next_attempt_at as number,
  };
}

export function rowToUndoStep(r: Record<string, unknown>): UndoStepRow {
  return {
    id: r.id as number,
    runId: r.run_id as string,
    owner: r.owner as string,
    plugin: r.plugin as string,
    kind: r.kind as string,
    payload: r.payload as string,
    when: r.run_when as 'always' | 'failure',
    state: r.state as UndoStepRow['state'],
    attempts: r.attempts as number,
    lastError: (r.last_error as string) ?? null,
    createdAt: r.created_at as number,
  };
}

/**
 * The WHERE clause of UndoStore.list: the same conditions in both stores, only the placeholder differs (`?` in
 * SQLite, `$n` in PostgreSQL).
 */
export function undoFilter(filter: { runId?: string; state?: 'pending' | 'open' }, placeholder: (n: number) => string): { where: string; args: unknown[] } {
  const where: string[] = [];
  const args: unknown[] = [];
  if (filter.runId) {
    args.push(filter.runId);
    where.push(`run_id = ${placeholder(args.length)}`);
  }
  if (filter.state === 'pending') where.push(`state = 'pending'`);
  if (filter.state === 'open') where.push(`state IN ('pending', 'running')`);
  return { where: where.length ? `WHERE ${where.join(' AND ')}` : '', args };
}

export const rowToSite = (r: { domain: string; site: string; source: string }): SiteRow => ({
  domain: r.domain,
  site: JSON.parse(r.site) as Record<string, unknown>,
  source: r.source,
});

/** `due` is a boolean in PostgreSQL and 0/1 in SQLite; NULL (not known) leaves it out. */
export const rowToRenewRunLineage = (r: { lineage: string; due: boolean | number | null; serial: string | null }): RenewRunLineage => ({
  name: r.lineage,
  ...(r.due === null ? {} : { due: r.due === true || r.due === 1 }),
  serial: r.serial,
});

export function rowToFleetLineage(r: Record<string, unknown>): FleetLineageRow {
  return {
    id: r.id as string,
    names: JSON.parse(r.names as string) as string[],
    serial: r.serial as string,
    notAfter: r.not_after as number,
    cert: r.cert as string,
    chain: r.chain as string,
    fullchain: r.fullchain as string,
    key: r.key as string,
    node: r.node as string,
    at: r.at as number,
  };
}
