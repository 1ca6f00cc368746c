/**
 * The back-off of names whose authorizations keep failing (src/renewal/backoff.ts), in the pipeline:
 *  - pre-flight (`backoff`, skippable with --skip-check backoff): a name backing off, or paused by the CA, stops the
 *    domain before any order (BACKING_OFF / ACME_PAUSED, with the last error and the time or the unpause URL);
 *  - after every real run: the CA's validation failures count per name, a certificate obtained clears them; a name
 *    entering a back-off queues a notification (the outbox delivers it to the notify taps).
 */
import { ERROR_CODES } from '../errors.js';
import { recordOrWarn } from './bookkeeping.js';
import { STAGE } from '../pipeline/hooks.js';
import type { DomainContext, Outcome } from '../pipeline/context.js';
import type { Plugin } from '../pipeline/plugin.js';
import { activeBackoff, failedAuthorizations, describeBackoff, notifyBackoff, recordFailure, recordSuccess, type BackoffChange } from '../renewal/backoff.js';
import { reusableLineage } from './issue-certbot.js';
import { syncRenewalHolds } from '../renewal/backoff-hold.js';

export const PLUGIN_NAME = 'backoff';

type AcmeProblem = Parameters<typeof failedAuthorizations>[1][number];

async function backoffCheck(ctx: DomainContext): Promise<void> {
  const store = ctx.services.state({ readOnly: ctx.dryRun });
  for (const name of ctx.plan.names) {
    const r = await activeBackoff(ctx.services.config, store, name);
    if (!r) continue;
    const code = r.unpauseUrl ? 'ACME_PAUSED' : 'BACKING_OFF';
    ctx.findings.push({ check: 'backoff', name, severity: 'error', code, message: describeBackoff(name, r), hint: ERROR_CODES[code] });
  }
}

async function record(ctx: DomainContext, outcome: Outcome): Promise<void> {
  const store = ctx.services.state();
  if (store.readOnly) return;
  const { config } = ctx.services;
  if (outcome.ok) {
    if (!ctx.reusedLineage) await recordSuccess(config, store, ctx.plan.names);
    return;
  }
  const error = outcome.error;
  if (error?.code === 'ACME_PAUSED') {
    const paused = (error.details.names as string[] | undefined)?.filter((n) => ctx.plan.names.includes(n)) ?? [];
    const changes: BackoffChange[] = [];
    for (const name of paused.length ? paused : ctx.plan.names)
      changes.push(await recordFailure(config, store, name, error.message, { unpauseUrl: String(error.details.unpauseUrl) }));
    await notifyBackoff(store, ctx.plan.certName, changes);
    await holdLineage(ctx, store, changes);
    return;
  }
  if (error?.code !== 'CERTBOT_FAILED') return;
  const problems = (error.details.problems as AcmeProblem[] | undefined) ?? [];
  const changes: BackoffChange[] = [];
  for (const f of failedAuthorizations(ctx.plan.names, problems)) changes.push(await recordFailure(config, store, f.name, f.error));
  await notifyBackoff(store, ctx.plan.certName, changes);
  await holdLineage(ctx, store, changes);
}

/** A lineage of names that now back off is kept from certbot's own timer too (src/renewal/backoff-hold.ts). */
async function holdLineage(ctx: DomainContext, store: ReturnType<DomainContext['services']['state']>, changes: readonly BackoffChange[]): Promise<void> {
  if (!changes.some((c) => c.backingOff)) return;
  await syncRenewalHolds({ config: ctx.services.config, services: ctx.services, emit: (e) => ctx.emit(e) }, store, { only: [ctx.plan.certName] });
}

export const backoffPlugin: Plugin = {
  name: PLUGIN_NAME,
  apply(hooks) {
    hooks.preflight.tapPromise({ name: 'preflight-backoff', stage: STAGE.BUILTIN }, async (ctx) => {
      if (ctx.skipChecks.has('backoff')) return;
      if (ctx.mode === 'issue' && (await reusableLineage(ctx))) return; // nothing is ordered
      await backoffCheck(ctx);
    });
    hooks.finally.tapPromise({ name: 'backoff-record', stage: STAGE.FIRST }, async (ctx, outcome) => {
      if (ctx.dryRun || ctx.mode === 'dns-hook' || ctx.mode === 'deploy' || ctx.mode === 'install') return;
      await recordOrWarn(
        ctx,
        PLUGIN_NAME,
        () => record(ctx, outcome),
        (reason) => `could not record the back-off of ${ctx.plan.names.join(', ')} (${reason})`,
      );
    });
  },
};
