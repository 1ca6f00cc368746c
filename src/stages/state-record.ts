/**
 * Records every `autossl issue` outcome in the state store, and every failed ACME validation per name (the
 * pre-flight budget counts them: Let's Encrypt allows 5 failed validations per name per hour).
 */
import { STAGE } from '../pipeline/hooks.js';
import type { Plugin } from '../pipeline/plugin.js';
import type { AcmeProblem } from '../issuer/issuer.js';
import type { DomainContext, Outcome } from '../pipeline/context.js';
import { recordOrWarn } from './bookkeeping.js';

export const PLUGIN_NAME = 'state-record';

const VALIDATION_TYPES = new Set(['unauthorized', 'connection', 'dns', 'caa', 'incorrectResponse', 'tls', 'rejectedIdentifier']);

export const stateRecordPlugin: Plugin = {
  name: PLUGIN_NAME,
  apply(hooks) {
    hooks.finally.tapPromise({ name: PLUGIN_NAME, stage: STAGE.FIRST }, async (ctx, outcome) => {
      if (ctx.dryRun || ctx.mode === 'dns-hook') return;
      await recordOrWarn(
        ctx,
        PLUGIN_NAME,
        () => record(ctx, outcome),
        (reason) => `could not record this attempt in autossl's state (${reason}); its outcome stands, the history misses it`,
      );
    });
  },
};

/** The attempt, and each failed validation of it (the pre-flight budget counts them). */
async function record(ctx: DomainContext, outcome: Outcome): Promise<void> {
  const state = ctx.services.state();
  if (state.readOnly) return;
  await state.attempts.record({
    kind: ctx.mode === 'deploy' || ctx.mode === 'install' ? ctx.mode : 'issue',
    domain: ctx.domain,
    lineage: ctx.lineage?.name,
    ok: outcome.ok,
    code: outcome.error?.code,
    message: outcome.error?.message,
    ms: Math.round(ctx.events.reduce((s, e) => s + (e.plugin ? 0 : (e.ms ?? 0)), 0)),
  });
  if (outcome.error?.code !== 'CERTBOT_FAILED') return;
  // only the CA's validation verdicts count towards Let's Encrypt's failed-validation limit
  const problems = ((outcome.error.details.problems as AcmeProblem[] | undefined) ?? []).filter((p) => !p.type || VALIDATION_TYPES.has(p.type));
  const named = problems.filter((p) => p.domain && ctx.plan.names.includes(p.domain));
  if (named.length) for (const p of named) await state.attempts.recordValidationFailure(p.domain!, `${p.type ?? 'error'}: ${p.detail}`);
  else if (problems.length) for (const n of ctx.plan.names) await state.attempts.recordValidationFailure(n, problems.map((p) => p.detail).join('; '));
}
