/** Jobs (a batch of domains) and each domain's progress in them, in PostgreSQL (same rows as src/store/sqlite/jobs.ts). */
import type { JobDomainUpdate, JobRow, JobStore } from '../store.js';
import { rowToJob, rowToJobDomain } from '../rows.js';
import type { Db } from './db.js';
import { fleetStamp, type Presence } from './presence.js';

export class PgJobs implements JobStore {
  constructor(
    private readonly db: Db,
    private readonly presence: Presence,
  ) {}

  async create(job: { id: string; kind: string; source: string; domains: readonly string[]; options?: Record<string, unknown> }): Promise<void> {
    const now = Date.now();
    await this.presence.ensure(); // the job names this process: alive for the other nodes while it runs
    await this.db.tx(async (q) => {
      await q('INSERT INTO jobs (id, kind, owner, state, source, created_at, options) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING', [
        job.id,
        job.kind,
        fleetStamp(),
        'running',
        job.source,
        now,
        JSON.stringify(job.options ?? {}),
      ]);
      // the job's row locked: two callers adding domains to one job number them one after the other
      await q('SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE', [job.id]);
      let next = Number((await q<{ n: number }>('SELECT COALESCE(MAX(position) + 1, 0) AS n FROM job_domains WHERE job_id = $1', [job.id])).rows[0]!.n);
      for (const d of job.domains) {
        if (
          (
            await q(`INSERT INTO job_domains (job_id, domain, position, state, updated_at) VALUES ($1, $2, $3, 'queued', $4) ON CONFLICT DO NOTHING`, [
              job.id,
              d,
              next,
              now,
            ])
          ).rowCount
        )
          next++;
      }
    });
  }

  async updateDomain(jobId: string, domain: string, fields: JobDomainUpdate): Promise<void> {
    const args: unknown[] = [Date.now(), jobId, domain];
    const arg = (v: unknown): string => (args.push(v), `$${args.length}`);
    const sets: string[] = ['updated_at = $1'];
    if (fields.state !== undefined) sets.push(`state = ${arg(fields.state)}`, 'started_at = COALESCE(started_at, $1)');
    for (const key of ['code', 'message', 'lineage'] as const) {
      if (fields[key] !== undefined) sets.push(`${key} = ${arg(fields[key] === null ? null : String(fields[key]).slice(0, 4000))}`);
    }
    if (fields.acme !== undefined) sets.push(`acme = ${arg(JSON.stringify(fields.acme))}`);
    if (fields.stages !== undefined) sets.push(`stages = ${arg(JSON.stringify(fields.stages))}`);
    if (fields.finished) sets.push('finished_at = $1');
    await this.db.query(`UPDATE job_domains SET ${sets.join(', ')} WHERE job_id = $2 AND domain = $3`, args);
  }

  async finish(jobId: string, state: 'done' | 'failed' | 'interrupted'): Promise<void> {
    await this.db.query('UPDATE jobs SET state = $1, finished_at = $2 WHERE id = $3', [state, Date.now(), jobId]);
  }

  async list(limit = 20): Promise<JobRow[]> {
    const rows = (await this.db.query('SELECT * FROM jobs ORDER BY created_at DESC, seq DESC LIMIT $1', [limit])).rows;
    return this.jobsOf(rows);
  }

  async get(id: string): Promise<JobRow | null> {
    const rows = (await this.db.query('SELECT * FROM jobs WHERE id = $1', [id])).rows;
    return (await this.jobsOf(rows))[0] ?? null;
  }

  async orphaned(): Promise<JobRow[]> {
    const rows = (await this.db.query(`SELECT * FROM jobs WHERE state = 'running' ORDER BY seq`)).rows;
    const dead: Array<Record<string, unknown>> = [];
    for (const r of rows) if (!(await this.presence.alive(r.owner as string, this.db.query))) dead.push(r);
    return this.jobsOf(dead);
  }

  async markRequeued(jobId: string): Promise<boolean> {
    return (await this.db.query('INSERT INTO jobs_requeued (job_id, at) VALUES ($1, $2) ON CONFLICT DO NOTHING', [jobId, Date.now()])).rowCount === 1;
  }

  async takeOver(jobId: string, from: string, note: Record<string, unknown>): Promise<boolean> {
    await this.presence.ensure(); // the job names this process: alive for the other nodes while it runs
    // one statement: the row's lock makes a second taker wait, then find another owner and change nothing
    const r = await this.db.query(
      `UPDATE jobs SET owner = $1, options = jsonb_set(COALESCE(NULLIF(options, '')::jsonb, '{}'::jsonb), '{handedOver}',
         COALESCE(NULLIF(options, '')::jsonb -> 'handedOver', '[]'::jsonb) || jsonb_build_array($2::jsonb))::text
       WHERE id = $3 AND owner = $4 AND state = 'running'`,
      [fleetStamp(), JSON.stringify(note), jobId, from],
    );
    return r.rowCount === 1;
  }

  /** The jobs with their domains, in one query for the domains of all of them. */
  private async jobsOf(rows: Array<Record<string, unknown>>): Promise<JobRow[]> {
    if (rows.length === 0) return [];
    const all = (await this.db.query('SELECT * FROM job_domains WHERE job_id = ANY($1) ORDER BY job_id, position', [rows.map((r) => r.id)])).rows;
    const byJob = new Map<string, JobRow['domains']>();
    for (const d of all) {
      const list = byJob.get(d.job_id as string) ?? [];
      byJob.set(d.job_id as string, list);
      list.push(rowToJobDomain(d));
    }
    return rows.map((r) => rowToJob(r, byJob.get(r.id as string) ?? []));
  }
}
