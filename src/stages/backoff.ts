/**
 * The back-off of names whose authorizations keep failing (src/renewal/backoff.ts), in the pipeline:
 *  - pre-flight (`backoff`, skippable with --skip-check backoff): a name backing off, or paused by the CA, stops the
 *    domain before any order (BACKING_OFF / ACME_PAUSED, with the last error and the time or the unpause URL);
 *  - after every real run: the CA's validation failures count per name, a certificate obtained clears them; a name
 *    entering a back-off queues a notification (the outbox delivers it to the notify taps).
 */
import os from 'node:os';
import { ERROR_CODES, toAutoSslError } from '../errors.js';
import { STAGE } from '../pipeline/hooks.js';
import type { DomainContext, Notification, Outcome } from '../pipeline/context.js';
import type { Plugin } from '../pipeline/plugin.js';
import { activeBackoff, describeBackoff, recordFailure, recordSuccess, type BackoffChange } from '../renewal/backoff.js';
import type { Store } from '../store/store.js';
import { reusableLineage } from './issue-certbot.js';
import { VALIDATION_TYPES } from './state-record.js';

export const PLUGIN_NAME = 'backoff';

/** An ACME problem as the issuer reports it in an error's details. */
interface AcmeProblem {
  domain?: string;
  type?: string;
  detail: string;
}

async function backoffCheck(ctx: DomainContext): Promise<void> {
  const store = ctx.services.state({ readOnly: ctx.dryRun });
  for (const name of ctx.plan.names) {
    const r = await activeBackoff(ctx.services.config, store, name);
    if (!r) continue;
    const code = r.unpauseUrl ? 'ACME_PAUSED' : 'BACKING_OFF';
    ctx.findings.push({ check: 'backoff', name, severity: 'error', code, message: describeBackoff(name, r), hint: ERROR_CODES[code] });
  }
}

/** The names a failed run's ACME problems blame (the CA's validation verdicts only), with what the CA said. */
function failedNames(ctx: DomainContext, outcome: Outcome): Array<{ name: string; error: string }> {
  const problems = ((outcome.error?.details.problems as AcmeProblem[] | undefined) ?? []).filter((p) => !p.type || VALIDATION_TYPES.has(p.type));
  const named = problems.filter((p) => p.domain && ctx.plan.names.includes(p.domain));
  if (named.length) return named.map((p) => ({ name: p.domain!, error: `${p.type ?? 'error'}: ${p.detail}` }));
  if (problems.length) return ctx.plan.names.map((name) => ({ name, error: problems.map((p) => p.detail).join('; ') }));
  return [];
}

/** A notification for each name that entered (or stepped up) its back-off; one per name and back-off end. */
export async function notifyBackoff(store: Store, lineage: string, changes: readonly BackoffChange[]): Promise<void> {
  for (const c of changes) {
    if (!c.backingOff) continue;
    const n: Notification = {
      key: `backing-off:${lineage}:${c.name}:${c.record.until ?? ''}`,
      kind: 'backing-off',
      lineage,
      names: [c.name],
      notAfter: null,
      daysLeft: null,
      error: { code: c.record.unpauseUrl ? 'ACME_PAUSED' : 'BACKING_OFF', message: describeBackoff(c.name, c.record) },
      at: new Date().toISOString(),
      host: os.hostname(),
    };
    await store.outbox.enqueue(n.key, n.kind, JSON.stringify(n));
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
    for (const name of paused.length ? paused : ctx.plan.names) changes.push(await recordFailure(config, store, name, error.message, { unpauseUrl: String(error.details.unpauseUrl) }));
    await notifyBackoff(store, ctx.plan.certName, changes);
    return;
  }
  if (error?.code !== 'CERTBOT_FAILED') return;
  const changes: BackoffChange[] = [];
  for (const f of failedNames(ctx, outcome)) changes.push(await recordFailure(config, store, f.name, f.error));
  await notifyBackoff(store, ctx.plan.certName, changes);
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
      try {
        await record(ctx, outcome);
      } catch (error) {
        ctx.emit({ stage: 'finally', plugin: PLUGIN_NAME, status: 'warning', message: `STATE_UNAVAILABLE: could not record the back-off of ${ctx.plan.names.join(', ')} (${toAutoSslError(error).message.slice(0, 300)})` });
      }
    });
  },
};
