/** The small records in PostgreSQL: panel sites, request signatures seen, a CA's rate limit, renew runs, DNS-01 progress, ARI windows. */
import type {
  AriWindowRecord,
  AriWindowStore,
  DnsProgressRecord,
  DnsProgressStore,
  RateLimitRecord,
  RateLimitStore,
  RenewRunLineage,
  RenewRunStore,
  ReplayStore,
  SiteRow,
  SiteStore,
} from '../store.js';
import { ariRecord, rowToRenewRunLineage, rowToSite, type AriRow } from '../rows.js';
import type { Db } from './db.js';

export class PgSites implements SiteStore {
  constructor(private readonly db: Db) {}

  async list(): Promise<SiteRow[]> {
    const rows = (await this.db.query<{ domain: string; site: string; source: string }>('SELECT domain, site, source FROM sites ORDER BY domain COLLATE "C"'))
      .rows;
    return rows.map(rowToSite);
  }

  async upsert(domain: string, site: Record<string, unknown>, source: string): Promise<void> {
    await this.db.query(
      'INSERT INTO sites (domain, site, source, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (domain) DO UPDATE SET site = excluded.site, source = excluded.source, updated_at = excluded.updated_at',
      [domain, JSON.stringify(site), source, Date.now()],
    );
  }

  async delete(domain: string): Promise<void> {
    await this.db.query('DELETE FROM sites WHERE domain = $1', [domain]);
  }
}

export class PgReplays implements ReplayStore {
  constructor(private readonly db: Db) {}

  /** Shared by every agent of the fleet: a request replayed to another node is refused there too. */
  async remember(signature: string, expiresAt: number, now = Date.now()): Promise<boolean> {
    await this.db.query('DELETE FROM replays WHERE expires_at < $1', [now]);
    return (await this.db.query('INSERT INTO replays (signature, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING', [signature, expiresAt])).rowCount === 1;
  }
}

export class PgRateLimits implements RateLimitStore {
  constructor(private readonly db: Db) {}

  async get(server: string): Promise<RateLimitRecord | null> {
    const r = (await this.db.query<{ until_at: number; message: string }>('SELECT until_at, message FROM rate_limits WHERE server = $1', [server])).rows[0];
    return r ? { until: r.until_at, message: r.message } : null;
  }

  async set(server: string, record: RateLimitRecord): Promise<void> {
    await this.db.query(
      'INSERT INTO rate_limits (server, until_at, message) VALUES ($1, $2, $3) ON CONFLICT (server) DO UPDATE SET until_at = excluded.until_at, message = excluded.message',
      [server, record.until, record.message],
    );
  }
}

export class PgRenewRuns implements RenewRunStore {
  constructor(private readonly db: Db) {}

  async put(runId: string, lineages: readonly RenewRunLineage[]): Promise<void> {
    await this.db.tx(async (q) => {
      await q('DELETE FROM renew_run_lineages WHERE run_id = $1', [runId]);
      for (const l of lineages) {
        await q(
          'INSERT INTO renew_run_lineages (run_id, lineage, due, serial) VALUES ($1, $2, $3, $4) ON CONFLICT (run_id, lineage) DO UPDATE SET due = excluded.due, serial = excluded.serial',
          [runId, l.name, l.due === undefined ? null : l.due, l.serial],
        );
      }
    });
  }

  async take(runId: string): Promise<RenewRunLineage[]> {
    return this.db.tx(async (q) => {
      const rows = (
        await q<{ lineage: string; due: boolean | null; serial: string | null }>(
          'SELECT lineage, due, serial FROM renew_run_lineages WHERE run_id = $1 ORDER BY seq FOR UPDATE',
          [runId],
        )
      ).rows;
      await q('DELETE FROM renew_run_lineages WHERE run_id = $1', [runId]);
      return rows.map(rowToRenewRunLineage);
    });
  }
}

export class PgDnsProgress implements DnsProgressStore {
  constructor(private readonly db: Db) {}

  async get(domain: string): Promise<DnsProgressRecord | null> {
    return (await this.db.query<DnsProgressRecord>('SELECT phase, message, at FROM dns_progress WHERE domain = $1', [domain])).rows[0] ?? null;
  }

  async set(domain: string, record: DnsProgressRecord): Promise<void> {
    await this.db.query(
      'INSERT INTO dns_progress (domain, phase, message, at) VALUES ($1, $2, $3, $4) ON CONFLICT (domain) DO UPDATE SET phase = excluded.phase, message = excluded.message, at = excluded.at',
      [domain, record.phase, record.message, record.at],
    );
  }
}

export class PgAriWindows implements AriWindowStore {
  constructor(private readonly db: Db) {}

  async get(lineage: string): Promise<AriWindowRecord | null> {
    const r = (await this.db.query<AriRow>('SELECT * FROM ari_windows WHERE lineage = $1', [lineage])).rows[0];
    return r ? ariRecord(r) : null;
  }

  async list(): Promise<Array<AriWindowRecord & { lineage: string }>> {
    return (await this.db.query<AriRow>('SELECT * FROM ari_windows ORDER BY lineage COLLATE "C"')).rows.map((r) => ({ lineage: r.lineage, ...ariRecord(r) }));
  }

  async set(lineage: string, w: AriWindowRecord): Promise<void> {
    await this.db.query(
      `INSERT INTO ari_windows (lineage, cert_id, serial, start_at, end_at, explanation_url, renew_at, fetched_at, next_fetch_at, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
      ON CONFLICT (lineage) DO UPDATE SET cert_id = excluded.cert_id, serial = excluded.serial, start_at = excluded.start_at, end_at = excluded.end_at, explanation_url = excluded.explanation_url,
      renew_at = excluded.renew_at, fetched_at = excluded.fetched_at, next_fetch_at = excluded.next_fetch_at, error = excluded.error`,
      [lineage, w.certId, w.serial, w.start, w.end, w.explanationUrl, w.renewAt, w.fetchedAt, w.nextFetchAt, w.error],
    );
  }

  async delete(lineage: string): Promise<void> {
    await this.db.query('DELETE FROM ari_windows WHERE lineage = $1', [lineage]);
  }
}
