/** The small records: panel sites, request signatures seen, a CA's rate limit, renew runs, DNS-01 progress, ARI windows. */
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
import type { Sql } from './sql.js';

export class SqliteSites implements SiteStore {
  constructor(private readonly sql: Sql) {}

  /** Sites a panel described (not in the config file): kept so renewals, DNS hooks and recovery know them. */
  async list(): Promise<SiteRow[]> {
    const rows = this.sql.st('SELECT domain, site, source FROM sites ORDER BY domain').all() as Array<{ domain: string; site: string; source: string }>;
    return rows.map(rowToSite);
  }

  async upsert(domain: string, site: Record<string, unknown>, source: string): Promise<void> {
    this.sql
      .st(
        'INSERT INTO sites (domain, site, source, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(domain) DO UPDATE SET site = excluded.site, source = excluded.source, updated_at = excluded.updated_at',
      )
      .run(domain, JSON.stringify(site), source, Date.now());
  }

  async delete(domain: string): Promise<void> {
    this.sql.st('DELETE FROM sites WHERE domain = ?').run(domain);
  }
}

export class SqliteReplays implements ReplayStore {
  constructor(private readonly sql: Sql) {}

  /** Shared by every agent process on this state directory, and kept across restarts. */
  async remember(signature: string, expiresAt: number, now = Date.now()): Promise<boolean> {
    return this.sql.tx(() => {
      this.sql.st('DELETE FROM replays WHERE expires_at < ?').run(now);
      return this.sql.st('INSERT OR IGNORE INTO replays (signature, expires_at) VALUES (?, ?)').run(signature, expiresAt).changes === 1;
    });
  }
}

export class SqliteRateLimits implements RateLimitStore {
  constructor(private readonly sql: Sql) {}

  async get(server: string): Promise<RateLimitRecord | null> {
    const r = this.sql.st('SELECT until_at, message FROM rate_limits WHERE server = ?').get(server) as { until_at: number; message: string } | undefined;
    return r ? { until: r.until_at, message: r.message } : null;
  }

  async set(server: string, record: RateLimitRecord): Promise<void> {
    this.sql
      .st(
        'INSERT INTO rate_limits (server, until_at, message) VALUES (?, ?, ?) ON CONFLICT(server) DO UPDATE SET until_at = excluded.until_at, message = excluded.message',
      )
      .run(server, record.until, record.message);
  }
}

export class SqliteRenewRuns implements RenewRunStore {
  constructor(private readonly sql: Sql) {}

  async put(runId: string, lineages: readonly RenewRunLineage[]): Promise<void> {
    const st = this.sql.st('INSERT OR REPLACE INTO renew_run_lineages (run_id, lineage, due, serial) VALUES (?, ?, ?, ?)');
    this.sql.tx(() => {
      this.sql.st('DELETE FROM renew_run_lineages WHERE run_id = ?').run(runId);
      for (const l of lineages) st.run(runId, l.name, l.due === undefined ? null : l.due ? 1 : 0, l.serial);
    });
  }

  async take(runId: string): Promise<RenewRunLineage[]> {
    return this.sql.tx(() => {
      const rows = this.sql.st('SELECT lineage, due, serial FROM renew_run_lineages WHERE run_id = ? ORDER BY rowid').all(runId) as Array<{
        lineage: string;
        due: number | null;
        serial: string | null;
      }>;
      this.sql.st('DELETE FROM renew_run_lineages WHERE run_id = ?').run(runId);
      return rows.map(rowToRenewRunLineage);
    });
  }
}

export class SqliteDnsProgress implements DnsProgressStore {
  constructor(private readonly sql: Sql) {}

  async get(domain: string): Promise<DnsProgressRecord | null> {
    return (this.sql.st('SELECT phase, message, at FROM dns_progress WHERE domain = ?').get(domain) as DnsProgressRecord | undefined) ?? null;
  }

  async set(domain: string, record: DnsProgressRecord): Promise<void> {
    this.sql
      .st(
        'INSERT INTO dns_progress (domain, phase, message, at) VALUES (?, ?, ?, ?) ON CONFLICT(domain) DO UPDATE SET phase = excluded.phase, message = excluded.message, at = excluded.at',
      )
      .run(domain, record.phase, record.message, record.at);
  }
}

export class SqliteAriWindows implements AriWindowStore {
  constructor(private readonly sql: Sql) {}

  async get(lineage: string): Promise<AriWindowRecord | null> {
    const r = this.sql.st('SELECT * FROM ari_windows WHERE lineage = ?').get(lineage) as AriRow | undefined;
    return r ? ariRecord(r) : null;
  }

  async list(): Promise<Array<AriWindowRecord & { lineage: string }>> {
    return (this.sql.st('SELECT * FROM ari_windows ORDER BY lineage').all() as AriRow[]).map((r) => ({ lineage: r.lineage, ...ariRecord(r) }));
  }

  async set(lineage: string, w: AriWindowRecord): Promise<void> {
    this.sql
      .st(
        `INSERT INTO ari_windows (lineage, cert_id, serial, start_at, end_at, explanation_url, renew_at, fetched_at, next_fetch_at, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT(lineage) DO UPDATE SET cert_id = excluded.cert_id, serial = excluded.serial, start_at = excluded.start_at, end_at = excluded.end_at, explanation_url = excluded.explanation_url,
      renew_at = excluded.renew_at, fetched_at = excluded.fetched_at, next_fetch_at = excluded.next_fetch_at, error = excluded.error`,
      )
      .run(lineage, w.certId, w.serial, w.start, w.end, w.explanationUrl, w.renewAt, w.fetchedAt, w.nextFetchAt, w.error);
  }

  async delete(lineage: string): Promise<void> {
    this.sql.st('DELETE FROM ari_windows WHERE lineage = ?').run(lineage);
  }
}
