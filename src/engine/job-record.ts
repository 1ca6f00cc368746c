/**
 * A job's record as its domains run: each domain's state follows its stages (a few writes per domain), and its
 * outcome is written when it ends. The record is a report: a busy database never fails a domain.
 */
import type { StageEvent } from '../pipeline/context.js';
import type { DomainResult } from '../pipeline/pipeline.js';
import type { JobDomainState, Store } from '../store/store.js';

/** The job-state a stage belongs to. */
const JOB_STATE: Partial<Record<string, JobDomainState>> = {
  plan: 'checking',
  preflight: 'checking',
  findings: 'checking',
  challenge: 'challenge',
  beforeIssue: 'challenge',
  issue: 'issuing',
  vhost: 'installing',
  validate: 'installing',
  reload: 'installing',
  verify: 'installing',
  finally: 'installing',
};

/**
 * Follows a domain's stages into its job row (state changes only: a few writes per domain). A stage event is no
 * place to wait: each write is chained after the one before (a store over a network could reorder writes sent at
 * once), and the domain's last write waits for `settled`.
 */
export function jobTracker(state: () => Store, job: string, domain: string): { onEvent: (e: StageEvent) => void; settled: () => Promise<void> } {
  let last: JobDomainState | undefined;
  let chain = Promise.resolve();
  return {
    onEvent(e) {
      if (e.plugin || e.status !== 'start') return;
      const next = JOB_STATE[e.stage];
      if (!next || next === last) return;
      last = next;
      // the job record is a report: a busy database must not fail the domain
      chain = chain.then(() => state().jobs.updateDomain(job, domain, { state: next })).catch(() => undefined);
    },
    settled: () => chain,
  };
}

export async function finishJobDomain(state: () => Store, job: string, domain: string, r: DomainResult): Promise<void> {
  try {
    await state().jobs.updateDomain(job, domain, {
      state: r.ok ? 'done' : 'failed',
      code: r.error?.code ?? null,
      message: r.error?.message ?? null,
      acme: r.error?.details.problems ?? null,
      lineage: r.lineage?.name ?? null,
      stages: r.events.filter((e) => !e.plugin && e.status === 'done').map((e) => ({ stage: e.stage, ms: Math.round(e.ms ?? 0) })),
      finished: true,
    });
  } catch {
    // as above
  }
}
