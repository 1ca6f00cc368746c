/**
 * A batch whose node died is finished by another node (issue 24: "a node killed while holding an order → another
 * node finishes it"). Every node's `autossl fleet run` looks every few seconds for jobs still running whose owner
 * process is gone (JobStore.orphaned: on PostgreSQL the owner's presence session went with its connection; on one
 * machine its pid is gone).
 *
 * One node takes each: under the job's lock (`job-<id>`, the one recovery takes) it makes itself the job's owner
 * by a compare-and-set on the dead owner (JobStore.takeOver), so of two live nodes racing for it one wins, and a
 * taker that dies in its turn leaves the job orphaned again, for the next node. The winner runs the job's
 * unfinished domains through the engine under the same job id: a lineage the dead node had already published is
 * adopted from the store under its order lock (the pipeline's adoptFromFleet) and never ordered again; the rest is
 * ordered here. Never forced: a forced batch's new certificates the dead node published are adopted, not replaced.
 *
 * The same job, not a follow-up one: the id is what the caller holds (the agent's 202 gave it to a panel, which
 * polls it), so that job is what must end; `autossl jobs JOB` names the node that finished it (options.handedOver).
 */
import { AutoSslError, toAutoSslError } from '../errors.js';
import type { AutoSsl, IssueOptions } from '../engine/types.js';
import type { JobRow, Store } from '../store/store.js';
import type { FleetSettings } from './config.js';

/** How often a node looks for a dead node's jobs (one indexed read, and a presence check per running job). */
export const HANDOVER_EVERY_MS = 3000;

/** What `takeOver` appends to the job's options.handedOver. */
export interface HandoverNote {
  node: string;
  from: string;
  at: number;
}

/**
 * Takes a dead owner's job for this process: true for exactly one caller of all the nodes racing for it (the
 * compare-and-set decides; the lock keeps a recovery of the same job out meanwhile).
 */
export async function claimOrphan(store: Store, job: JobRow, node: string): Promise<boolean> {
  let held;
  try {
    // a try, not a wait: whoever holds it is taking the job (another node) or recovering it, and will have it
    held = await store.locker.lock(`job-${job.id}`, 0, `The handover of job ${job.id}`);
  } catch (error) {
    if (error instanceof AutoSslError && error.code === 'LOCK_TIMEOUT') return false;
    throw error;
  }
  try {
    const note: HandoverNote = { node, from: job.owner, at: Date.now() };
    return await store.jobs.takeOver(job.id, job.owner, { ...note });
  } finally {
    await held.release();
  }
}

export class JobHandover {
  /** Jobs this process took whose run could not be finished (the store went away): tried again each round. */
  private readonly pending = new Map<string, JobRow>();

  constructor(
    private readonly engine: AutoSsl,
    private readonly store: () => Store,
    private readonly settings: FleetSettings,
    private readonly log: (message: string) => void,
  ) {}

  /** One look for dead nodes' jobs; each one this node takes is finished before the next look (a batch takes minutes). */
  async round(): Promise<string[]> {
    const store = this.store();
    const finished: string[] = [];
    for (const [id, job] of [...this.pending]) {
      await this.finish(job);
      this.pending.delete(id);
      finished.push(id);
    }
    for (const orphan of await store.jobs.orphaned()) {
      if (orphan.kind !== 'issue') continue;
      if (!(await claimOrphan(store, orphan, this.settings.node))) continue;
      this.pending.set(orphan.id, orphan);
      await this.finish(orphan);
      this.pending.delete(orphan.id);
      finished.push(orphan.id);
    }
    return finished;
  }

  private async finish(taken: JobRow): Promise<void> {
    const store = this.store();
    const job = (await store.jobs.get(taken.id)) ?? taken;
    const open = job.domains.filter((d) => d.state !== 'done' && d.state !== 'failed').map((d) => d.domain);
    this.log(`job ${job.id}: its process is gone (${job.owner}); finishing ${open.length} of its ${job.domains.length} domains here`);
    if (open.length) {
      try {
        await this.engine.issue(open, { jobId: job.id, source: job.source as IssueOptions['source'], force: false });
      } catch (error) {
        const e = toAutoSslError(error);
        if (e.code === 'STATE_UNAVAILABLE') throw error; // the job stays this node's: tried again next round
        // refused before anything ran (a name this node's config cannot issue): said per domain, the job ends
        for (const d of open)
          await store.jobs.updateDomain(job.id, d, {
            state: 'failed',
            code: e.code,
            message: `Node ${this.settings.node} took over the job and could not run it: ${e.message}`,
            finished: true,
          });
      }
    }
    // the whole job's outcome, the dead node's domains included (engine.issue judged only those it ran)
    const after = await store.jobs.get(job.id);
    const state = after && after.domains.every((d) => d.state === 'done') ? 'done' : 'failed';
    await store.jobs.finish(job.id, state);
    const failed = after?.domains.filter((d) => d.state !== 'done').map((d) => d.domain) ?? [];
    this.log(`job ${job.id}: ${state}, finished by ${this.settings.node}${failed.length ? ` (failed: ${failed.join(', ')})` : ''}`);
  }
}
