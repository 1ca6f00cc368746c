/** Jobs (a batch of domains) and each domain's progress in them, in SQLite. */
import { ownerAlive, ownerStamp } from '../../lock.js';
import type { JobDomainUpdate, JobRow, JobStore } from '../store.js';
import { rowToJob, rowToJobDomain } from '../rows.js';
import type { Sql } from './sql.js';

export class SqliteJobs implements JobStore {
  constructor(private readonly sql: Sql) {}

  /**
   * Records a job, or adds domains to one this process recorded already (the agent records a batch as its requests
   * arrive, so a kill before it starts still leaves each accepted domain accounted for).
   */
  async create(job: { id: string; kind: string; source: string; domains: readonly string[]; options?: Record<string, unknown> }): Promise<void> {
    const now = Date.now();
    this.sql.tx(() => {
      this.sql
        .st('INSERT OR IGNORE INTO jobs (id, kind, owner, state, source, created_at, options) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(job.id, job.kind, ownerStamp(), 'running', job.source, now, JSON.stringify(job.options ?? {}));
      let next = (this.sql.st('SELECT COALESCE(MAX(position) + 1, 0) AS n FROM job_domains WHERE job_id = ?').get(job.id) as { n: number }).n;
      for (const d of job.domains) {
        if (
          this.sql.st(`INSERT OR IGNORE INTO job_domains (job_id, domain, position, state, updated_at) VALUES (?, ?, ?, 'queued', ?)`).run(job.id, d, next, now)
            .changes
        )
          next++;
      }
    });
  }

  async updateDomain(jobId: string, domain: string, fields: JobDomainUpdate): Promise<void> {
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
    this.sql.st(`UPDATE job_domains SET ${sets.join(', ')} WHERE job_id = @jobId AND domain = @domain`).run(args);
  }

  async finish(jobId: string, state: 'done' | 'failed' | 'interrupted'): Promise<void> {
    this.sql.st('UPDATE jobs SET state = ?, finished_at = ? WHERE id = ?').run(state, Date.now(), jobId);
  }

  async list(limit = 20): Promise<JobRow[]> {
    const rows = this.sql.st('SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ?').all(limit) as Array<Record<string, unknown>>;
    return rows.map((r) => this.jobOf(r));
  }

  async get(id: string): Promise<JobRow | null> {
    const r = this.sql.st('SELECT * FROM jobs WHERE id = ?').get(id) as Record<string, unknown> | undefined;
    return r ? this.jobOf(r) : null;
  }

  async orphaned(): Promise<JobRow[]> {
    const rows = this.sql.st(`SELECT * FROM jobs WHERE state = 'running'`).all() as Array<Record<string, unknown>>;
    return rows.filter((r) => !ownerAlive(r.owner as string)).map((r) => this.jobOf(r));
  }

  async markRequeued(jobId: string): Promise<boolean> {
    return this.sql.st('INSERT OR IGNORE INTO jobs_requeued (job_id, at) VALUES (?, ?)').run(jobId, Date.now()).changes === 1;
  }

  async takeOver(jobId: string, from: string, note: Record<string, unknown>): Promise<boolean> {
    return this.sql.tx(() => {
      const r = this.sql.st(`SELECT options FROM jobs WHERE id = ? AND owner = ? AND state = 'running'`).get(jobId, from) as
        { options: string | null } | undefined;
      if (!r) return false;
      const options = JSON.parse(r.options || '{}') as Record<string, unknown>;
      options.handedOver = [...(Array.isArray(options.handedOver) ? options.handedOver : []), note];
      return (
        this.sql
          .st(`UPDATE jobs SET owner = ?, options = ? WHERE id = ? AND owner = ? AND state = 'running'`)
          .run(ownerStamp(), JSON.stringify(options), jobId, from).changes === 1
      );
    });
  }

  private jobOf(r: Record<string, unknown>): JobRow {
    const domains = (this.sql.st('SELECT * FROM job_domains WHERE job_id = ? ORDER BY position').all(r.id) as Array<Record<string, unknown>>).map(
      rowToJobDomain,
    );
    return rowToJob(r, domains);
  }
}
