/**
 * The agent's job bookkeeping: a job recorded before its domains run (requests joining a batch are accounted for
 * before the agent answers, so a kill loses none), a domain taken out of a batch that has not started, a job that
 * will not run ended. Written to the engine's state store; the engine's own runs record the rest.
 */
import { AutoSslError } from '../errors.js';
import { engineState, type AutoSsl } from '../engine.js';
import type { Store } from '../store/store.js';

export class AgentJobs {
  private readonly state: () => Store;

  constructor(engine: AutoSsl) {
    const state = engineState(engine);
    if (!state) throw new AutoSslError('INTERNAL', 'The agent needs an engine made by createAutoSsl (or a copy of one): it records jobs in its state store.');
    this.state = state;
  }

  /** Records a job before its domains run, so a kill leaves each accounted for. */
  record(id: string, domains: readonly string[], source = 'agent'): Promise<void> {
    return this.state().jobs.create({ id, kind: 'issue', source, domains });
  }

  /** Marks a recorded job's domain as not run (CANCELLED, with why). */
  cancelDomain(jobId: string, domain: string, why: string): Promise<void> {
    return this.state().jobs.updateDomain(jobId, domain, { state: 'failed', code: 'CANCELLED', message: `${domain}: ${why}.`, finished: true });
  }

  /** Ends a recorded job that will not run. */
  finish(jobId: string, state: 'done' | 'failed'): Promise<void> {
    return this.state().jobs.finish(jobId, state);
  }
}
