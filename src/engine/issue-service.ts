/**
 * The issue service: validates the domains a caller gives, records a real run as a job, runs every domain through
 * the pipeline at once (certbot processes bounded by batch.concurrency, pre-flight by its own limit), retries once a
 * run whose only fault was an unreachable TLS check, and makes sure new lineages get their renewals served.
 */
import crypto from 'node:crypto';
import { siteFor } from '../config/schema.js';
import { normalizeDomain } from '../domain.js';
import { AutoSslError, toAutoSslError } from '../errors.js';
import type { RunMode, StageEvent } from '../pipeline/context.js';
import type { DomainResult } from '../pipeline/pipeline.js';
import { failedResult } from '../pipeline/failed-result.js';
import { BatchGate } from '../pipeline/batch.js';
import { finishJobDomain, jobTracker } from './job-record.js';
import { mapBounded } from '../bounded.js';
import type { Kernel } from './core.js';
import type { IssueOptions } from './types.js';

/** The wait before a domain whose TLS check could not reach nginx runs again (the load that stalled it may pass). */
const VERIFY_RETRY_DELAY_MS = 1000;

/** A domain from a caller: validated; a wildcard only for a DNS-01 site. */
export function domainOf(k: Kernel, input: unknown): string {
  const domain = normalizeDomain(input, { allowWildcard: true });
  if (domain.startsWith('*.')) {
    const site = siteFor(k.config, domain);
    if ((site.challenge ?? k.config.defaults.challenge) !== 'dns-01') {
      throw new AutoSslError('WILDCARD_NEEDS_DNS01', `${domain} is a wildcard: the CA can only check it over DNS (DNS-01), and this site uses HTTP-01.`);
    }
  }
  return domain;
}

/** A real run that obtained its certificate and was rolled back only because nginx did not answer the TLS check. */
function verifyUnreachable(r: DomainResult): boolean {
  return r.mode === 'issue' && !r.ok && r.error?.code === 'TLS_VERIFY_FAILED' && r.error.details.reason === 'unreachable' && r.lineage !== undefined;
}

export interface IssueService {
  issue(domains: readonly string[], options?: IssueOptions): Promise<DomainResult[]>;
  issueOne(input: unknown, options: IssueOptions & { batch?: BatchGate; job?: string }): Promise<DomainResult>;
}

/** `reportPending`: what a read-only run says about a killed run's leftovers (the recovery service's). */
export function issueService(k: Kernel, reportPending: (options: IssueOptions) => Promise<void>): IssueService {
  const { config } = k;

  async function issueOne(input: unknown, options: IssueOptions & { batch?: BatchGate; job?: string }): Promise<DomainResult> {
    const mode: RunMode = options.dryRun ? 'dry-run' : 'issue';
    let result: DomainResult;
    const track = options.job ? jobTracker(k.state, options.job, String(input)) : undefined;
    try {
      const domain = domainOf(k, input);
      const onEvent = (e: StageEvent): void => (track?.onEvent(e), options.onEvent?.(e));
      const { ctx, abort } = k.context(domain, mode, { ...options, onEvent });
      result = await k.run(ctx, abort);
      if (verifyUnreachable(result)) {
        // nginx could not be reached in time (a loaded machine, this process's loop stalled): the certificate was
        // obtained and the vhost rolled back; run the domain once more, reusing the certificate (no new order)
        ctx.emit({
          stage: 'verify',
          status: 'info',
          message: `${result.error!.message} Rolled back; trying once more with the certificate obtained (no new order).`,
        });
        await new Promise((r) => setTimeout(r, VERIFY_RETRY_DELAY_MS));
        const again = k.context(domain, mode, { ...options, force: false, onEvent });
        const second = await k.run(again.ctx, again.abort);
        result = { ...second, events: [...result.events, ...second.events], ms: result.ms + VERIFY_RETRY_DELAY_MS + second.ms };
      }
    } catch (error) {
      result = failedResult(input, mode, error); // never a domain unaccounted for
    }
    if (options.job) {
      await track?.settled();
      await finishJobDomain(k.state, options.job, String(input), result);
    }
    try {
      options.onResult?.(result);
    } catch {
      // a listener's failure is its own business
    }
    return result;
  }

  async function issue(domains: readonly string[], options: IssueOptions = {}): Promise<DomainResult[]> {
    // one bad name stops the whole call before anything runs (recovery, the state database, any domain)
    for (const d of domains) domainOf(k, d);
    if (!options.dryRun) await k.recoverFirst();
    else await reportPending(options);
    const unique = [...new Set(domains)];
    const batch =
      unique.length > 1 && !options.dryRun
        ? new BatchGate({ challenge: config.preflight.timeoutMs * 2 + 2000, vhost: config.batch.installWindowMs })
        : undefined;
    // a real run is a job, recorded before any domain starts (a killed run is finished by the next start)
    let job: string | undefined;
    if (!options.dryRun) {
      job = options.jobId ?? crypto.randomUUID();
      await k
        .state()
        .jobs.create({ id: job, kind: 'issue', source: options.source ?? 'api', domains: unique.map(String), options: { force: options.force === true } });
    }
    // every domain runs at once: certbot processes are bounded by batch.concurrency, pre-flight by its own limit
    const results = await mapBounded(unique, options.concurrency ?? Math.max(unique.length, 1), (d) => issueOne(d, { ...options, batch, job }));
    if (job) {
      try {
        await k.state().jobs.finish(job, results.every((r) => r.ok) ? 'done' : 'failed');
      } catch (error) {
        // the job record is a report (as in jobTracker): a database locked past the wait must not turn the
        // domains' results, certificates served included, into an INTERNAL error of the command
        k.emit({
          domain: '*',
          stage: 'job',
          status: 'warning',
          message: `STATE_UNAVAILABLE: could not record the end of job ${job} (${toAutoSslError(error).message.slice(0, 300)}); the results stand`,
        });
      }
    }
    k.statusTree = null;
    if (!options.dryRun) {
      // a lineage this run created must get its renewals served: certbot renew alone would not reload nginx
      const created = results.filter((r) => r.lineage && !r.reused).map((r) => r.lineage!.name);
      const said = k.services.issuer.ensureRenewalHooks?.([...new Set(created)]) ?? null;
      if (said) {
        k.emit({ domain: '*', stage: 'renewal', status: said.warning ? 'warning' : 'info', message: said.message });
        for (const r of results) if (r.lineage && !r.reused) r.notes.push(said.message);
      }
    }
    const byDomain = new Map(unique.map((d, i) => [d, { ...results[i]!, jobId: job }]));
    return domains.map((d) => byDomain.get(d)!);
  }

  return { issue, issueOne };
}
