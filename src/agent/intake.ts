/**
 * Issue requests into batches. A panel sends one request per domain (the Opterius "re-check missing" loop, an
 * account migration): requests arriving within `windowMs` of each other join one batch (one job, one reload per
 * phase), which starts when the window closes, `maxWindowMs` after it opened at the latest, or when it is full.
 *
 * Each accepted domain is recorded in its job before the answer goes out, so a kill of the agent never loses one:
 * the next start finishes or fails every job (see the engine's recovery) and the agent queues again the domains a
 * kill interrupted.
 */
import crypto from 'node:crypto';
import { AutoSslError } from '../errors.js';
import type { AutoSsl } from '../engine.js';
import type { DomainResult } from '../pipeline/pipeline.js';
import type { StageEvent } from '../pipeline/context.js';
import { AgentJobs } from './jobs.js';

export interface AgentEvent {
  type: 'job' | 'domain' | 'stage';
  job_id: string;
  at: string;
  [key: string]: unknown;
}

export interface IntakeOptions {
  windowMs: number;
  maxWindowMs: number;
  maxBatch: number;
  /** Domains accepted and not finished, at most: past it add() refuses with AGENT_QUEUE_FULL. */
  maxQueued?: number;
}

interface OpenBatch {
  jobId: string;
  domains: string[];
  opened: number;
  timer: NodeJS.Timeout | null;
}

export class IssueIntake {
  private open: OpenBatch | null = null;
  /** Jobs running now: their domains not finished yet. */
  private readonly running = new Map<string, { pending: Set<string>; done: Promise<void> }>();
  /** Accepted domains not finished yet: whether each was served with a valid certificate when accepted. */
  private readonly existed = new Map<string, boolean>();
  /** Who waits for a running domain's result (a delete during its issue). */
  private readonly waiters = new Map<string, Array<() => void>>();
  /** Set once a stop began: no new work. */
  stopping = false;
  private readonly jobs: AgentJobs;

  constructor(
    private readonly engine: AutoSsl,
    private readonly opts: IntakeOptions,
    private readonly publish: (event: AgentEvent) => void,
  ) {
    this.jobs = new AgentJobs(engine);
  }

  /**
   * Queues a domain; returns the job it runs in (the one it is already in, when it is queued or running).
   * `existed`: the domain is served with a valid certificate now (see existedBefore).
   */
  add(domain: string, existed = false): { jobId: string; joined: boolean; recorded: Promise<void> } {
    if (this.stopping) throw new AutoSslError('AGENT_STOPPING', 'The agent is stopping and takes no new work.');
    for (const [jobId, job] of this.running) if (job.pending.has(domain)) return { jobId, joined: false, recorded: Promise.resolve() };
    if (this.open?.domains.includes(domain)) return { jobId: this.open.jobId, joined: false, recorded: Promise.resolve() };
    const max = this.opts.maxQueued ?? Infinity;
    if (this.queued >= max) {
      throw new AutoSslError('AGENT_QUEUE_FULL', `The agent holds ${this.queued} domains to issue (agent.maxQueued ${max}); ${domain} was not queued.`);
    }
    const now = Date.now();
    const batch = (this.open ??= { jobId: crypto.randomUUID(), domains: [], opened: now, timer: null });
    // awaited before the 202 (`recorded`): a kill after it still finds the domain
    const recorded = this.jobs.record(batch.jobId, [domain], 'agent');
    batch.domains.push(domain);
    this.existed.set(domain, existed);
    if (batch.timer) clearTimeout(batch.timer);
    if (batch.domains.length >= this.opts.maxBatch) this.flush();
    else batch.timer = setTimeout(() => this.flush(), Math.max(0, Math.min(this.opts.windowMs, batch.opened + this.opts.maxWindowMs - now)));
    return { jobId: batch.jobId, joined: true, recorded };
  }

  /**
   * Takes a domain out of the batch that has not started yet (the panel deletes what it just asked for): its job
   * records it as CANCELLED. False when it is not waiting there (running, or not queued at all).
   */
  withdraw(domain: string): boolean {
    const batch = this.open;
    if (!batch || !batch.domains.includes(domain)) return false;
    batch.domains = batch.domains.filter((d) => d !== domain);
    this.existed.delete(domain);
    // the job record is a report: the withdrawal stands even when the store fails to say it
    void this.jobs.cancelDomain(batch.jobId, domain, 'deleted before its batch started').catch(() => undefined);
    if (!batch.domains.length) {
      if (batch.timer) clearTimeout(batch.timer);
      this.open = null;
      void this.jobs.finish(batch.jobId, 'failed').catch(() => undefined);
    }
    return true;
  }

  /** Starts the open batch now. */
  flush(): void {
    const batch = this.open;
    if (!batch) return;
    this.open = null;
    if (batch.timer) clearTimeout(batch.timer);
    void this.start(batch.jobId, batch.domains).catch(() => undefined); // reported through publish and the job record
  }

  /** Runs domains as one job now (native /v1/issue, /ssl/renew, re-queued domains). */
  run(
    domains: readonly string[],
    options: { force?: boolean; jobId?: string; existed?: ReadonlySet<string> } = {},
  ): { jobId: string; results: Promise<DomainResult[]>; recorded: Promise<void> } {
    if (this.stopping) throw new AutoSslError('AGENT_STOPPING', 'The agent is stopping and takes no new work.');
    const jobId = options.jobId ?? crypto.randomUUID();
    for (const d of domains) this.existed.set(d, options.existed?.has(d) === true);
    const recorded = this.jobs.record(jobId, domains, 'agent');
    return { jobId, results: this.start(jobId, domains, options.force === true), recorded };
  }

  private start(jobId: string, domains: readonly string[], force = false): Promise<DomainResult[]> {
    const pending = new Set(domains);
    const at = (): string => new Date().toISOString();
    this.publish({ type: 'job', job_id: jobId, at: at(), state: 'running', domains: [...domains] });
    const results = this.engine.issue(domains, {
      jobId,
      source: 'agent',
      force,
      onEvent: (e: StageEvent) => {
        if (!e.plugin && (e.status === 'start' || e.status === 'error' || e.status === 'info' || e.status === 'warning'))
          this.publish({ type: 'stage', job_id: jobId, at: at(), domain: e.domain, stage: e.stage, status: e.status, message: e.message });
      },
      onResult: (r: DomainResult) => {
        pending.delete(r.domain);
        this.existed.delete(r.domain);
        this.wake(r.domain);
        this.publish({
          type: 'domain',
          job_id: jobId,
          at: at(),
          domain: r.domain,
          state: r.ok ? 'done' : 'failed',
          code: r.error?.code ?? null,
          message: r.error?.message ?? null,
        });
      },
    });
    const done = results
      .then(
        (results) => this.publish({ type: 'job', job_id: jobId, at: at(), state: results.every((r) => r.ok) ? 'done' : 'failed' }),
        (error: unknown) => this.publish({ type: 'job', job_id: jobId, at: at(), state: 'failed', message: (error as Error).message }),
      )
      .finally(() => {
        this.running.delete(jobId);
        for (const d of pending) this.wake(d); // a run that ended without a result for them
      });
    this.running.set(jobId, { pending, done });
    return results;
  }

  /**
   * For a domain accepted and not finished: whether it was served with a valid certificate when accepted (null
   * when it is not pending). Its vhost may already name the new certificate before nginx reloaded and the TLS
   * check passed (or before a failure rolled it back): until the run ends, /ssl/status reports what was served.
   */
  existedBefore(domain: string): boolean | null {
    return this.jobOf(domain) ? (this.existed.get(domain) ?? false) : null;
  }

  /**
   * For a domain running now: resolves once its run has ended (installed, failed or rolled back). Null when it is
   * not running (withdraw() takes one that waits for its batch).
   */
  settled(domain: string): Promise<void> | null {
    if (![...this.running.values()].some((j) => j.pending.has(domain))) return null;
    return new Promise((resolve) => this.waiters.set(domain, [...(this.waiters.get(domain) ?? []), resolve]));
  }

  private wake(domain: string): void {
    const list = this.waiters.get(domain);
    this.waiters.delete(domain);
    for (const fn of list ?? []) fn();
  }

  /** The job a domain is queued or running in, if any. */
  jobOf(domain: string): string | null {
    for (const [jobId, job] of this.running) if (job.pending.has(domain)) return jobId;
    return this.open?.domains.includes(domain) ? this.open.jobId : null;
  }

  /** Domains accepted and not finished (waiting for their batch, or running). */
  get queued(): number {
    let n = this.open?.domains.length ?? 0;
    for (const job of this.running.values()) n += job.pending.size;
    return n;
  }

  /** What /health and the jobs report of the queue. */
  get queue(): { queued: number; max: number | null } {
    return { queued: this.queued, max: Number.isFinite(this.opts.maxQueued ?? Infinity) ? this.opts.maxQueued! : null };
  }

  /** Jobs accepted but not finished (open or running). */
  get busy(): number {
    return this.running.size + (this.open ? 1 : 0);
  }

  /**
   * Takes no more requests, starts what was accepted, and waits up to `timeoutMs` for the running jobs; what is
   * still running then is left to the next start's recovery.
   */
  async stop(timeoutMs: number): Promise<boolean> {
    this.stopping = true;
    this.flush();
    let timer: NodeJS.Timeout | undefined;
    const all = Promise.all([...this.running.values()].map((j) => j.done)).then(() => true);
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    try {
      return await Promise.race([all, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
