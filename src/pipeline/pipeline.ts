/**
 * Runs one DomainContext through the hooks, in HOOK_ORDER. On any failure, every file the domain's transaction
 * wrote is restored byte for byte, and nginx is reloaded if it had loaded the edited files; `finally` always runs.
 */
import { AutoSslError, toAutoSslError } from '../errors.js';
import { newVhostEdit, planHttpsEdit } from '../nginx/edit.js';
import { applyEdits } from './apply.js';
import type { DomainContext, Outcome, StageEvent } from './context.js';
import type { HookName, Hooks } from './hooks.js';

export interface DomainResult {
  domain: string;
  names: string[];
  ok: boolean;
  error?: AutoSslError;
  lineage?: DomainContext['lineage'];
  reused: boolean;
  edits: Array<{ file: string; changes: string[]; before: string; after: string }>;
  rolledBack: string[];
  events: StageEvent[];
  ms: number;
}

/**
 * Wraps every tap so that its time and progress are recorded on the domain's own context (found among the
 * call's arguments), and so that an error thrown by a plugin carries the plugin's name (Rollup's
 * PLUGIN_ERROR convention). Installed once per hook with a `register` interceptor.
 */
export function instrumentHooks(hooks: Hooks): void {
  for (const [hookName, hook] of Object.entries(hooks) as Array<[HookName, Hooks[HookName]]>) {
    hook.intercept({
      register(tapInfo) {
        const original = tapInfo.fn as (...args: unknown[]) => unknown;
        const plugin = tapInfo.name;
        const contextOf = (args: unknown[]): DomainContext | undefined =>
          args.find((a): a is DomainContext => typeof a === 'object' && a !== null && 'emit' in a && 'plan' in a);
        const tag = (error: unknown): AutoSslError => {
          if (error instanceof AutoSslError) {
            if (!('plugin' in error.details)) (error.details as Record<string, unknown>).plugin = plugin;
            return error;
          }
          return new AutoSslError('PLUGIN_ERROR', `Plugin "${plugin}" failed in hook "${hookName}": ${(error as Error)?.message ?? String(error)}`, { cause: error, details: { plugin, hook: hookName } });
        };
        const record = (args: unknown[], status: 'done' | 'error', started: number): void => {
          const ctx = contextOf(args);
          ctx?.events.push({ domain: ctx.domain, stage: hookName, plugin, status, ms: performance.now() - started });
        };
        if (tapInfo.type === 'sync') {
          tapInfo.fn = (...args: unknown[]) => {
            const started = performance.now();
            try {
              const result = original(...args);
              record(args, 'done', started);
              return result;
            } catch (error) {
              record(args, 'error', started);
              throw tag(error);
            }
          };
        } else if (tapInfo.type === 'promise') {
          tapInfo.fn = async (...args: unknown[]) => {
            const started = performance.now();
            try {
              const result = await original(...args);
              record(args, 'done', started);
              return result;
            } catch (error) {
              record(args, 'error', started);
              throw tag(error);
            }
          };
        } // callback-style (tapAsync) taps keep their own error path
        return tapInfo;
      },
    });
  }
}

async function stage<T>(ctx: DomainContext, name: HookName, run: () => Promise<T>): Promise<T> {
  const started = performance.now();
  ctx.emit({ stage: name, status: 'start' });
  try {
    const result = await run();
    ctx.emit({ stage: name, status: 'done', ms: performance.now() - started });
    return result;
  } catch (error) {
    ctx.emit({ stage: name, status: 'error', ms: performance.now() - started, message: (error as Error).message });
    throw error;
  }
}

export async function runDomain(ctx: DomainContext, options: { timeoutMs: number }): Promise<DomainResult> {
  const hooks = ctx.services.hooks;
  const started = performance.now();
  let current: HookName = 'plan';
  // Past the expected time the user is told which stage is stuck; certbot and nginx have hard timeouts of their own.
  const slow = setTimeout(() => {
    ctx.emit({ stage: current, status: 'info', message: `still in "${current}" after ${Math.round(options.timeoutMs / 1000)} s: this normally takes a few seconds` });
  }, options.timeoutMs);
  slow.unref();
  const outcome: Outcome = { ok: false, rolledBack: [] };
  const at = <T>(name: HookName, run: () => Promise<T>): Promise<T> => {
    current = name;
    return stage(ctx, name, run);
  };
  try {
    ctx.plan = await at('plan', () => hooks.plan.promise(ctx.plan, ctx));
    await at('preflight', () => hooks.preflight.promise(ctx));
    await at('findings', () => hooks.findings.promise(ctx));
    stopOnFindings(ctx);
    ctx.challenge = await at('challenge', () => hooks.challenge.promise(ctx));
    if (!ctx.challenge) throw new AutoSslError('INTERNAL', 'No plugin set up a challenge.');
    await at('beforeIssue', () => hooks.beforeIssue.promise(ctx));
    stopOnFindings(ctx);
    ctx.lineage = await at('issue', () => hooks.issue.promise(ctx));
    if (!ctx.lineage) throw new AutoSslError('INTERNAL', 'No plugin obtained a certificate.');
    await at('vhost', async () => {
      const edit = await hooks.vhost.promise(newVhostEdit(ctx.plan.names, ctx.plan.redirect), ctx);
      const version = await ctx.services.nginx.version();
      const plan = planHttpsEdit(ctx.services.loadTree(), edit, { nginxVersion: version, httpsPort: ctx.services.config.nginx.httpsPort });
      ctx.tlsEndpoints = plan.tlsEndpoints;
      await applyEdits(ctx, plan.edits);
    });
    await at('validate', () => hooks.validate.promise(ctx));
    await at('reload', () => hooks.reload.promise(ctx));
    await at('verify', () => hooks.verify.promise(ctx));
    outcome.ok = true;
    await ctx.transaction.commit();
  } catch (error) {
    outcome.error = toAutoSslError(error);
    outcome.rolledBack = await rollback(ctx);
  } finally {
    clearTimeout(slow);
    try {
      if (ctx.challenge?.cleanup) await ctx.challenge.cleanup();
      await at('finally', () => hooks.finally.promise(ctx, outcome));
    } catch (error) {
      // a failing `finally` tap is reported but cannot undo a certificate that is already served
      outcome.error ??= toAutoSslError(error);
      outcome.ok = false;
    }
  }
  return {
    domain: ctx.domain,
    names: ctx.plan.names,
    ok: outcome.ok,
    error: outcome.error,
    lineage: ctx.lineage,
    reused: ctx.reusedLineage === true,
    edits: ctx.edits.map((e) => ({ file: e.file, changes: e.changes, before: e.before, after: e.after })),
    rolledBack: outcome.rolledBack,
    events: ctx.events,
    ms: performance.now() - started,
  };
}

/** Any unresolved error finding stops the domain before the CA is asked, with the first finding's code. */
function stopOnFindings(ctx: DomainContext): void {
  const blocking = ctx.findings.filter((f) => f.severity === 'error' && !f.resolved);
  if (!blocking.length) return;
  const first = blocking[0]!;
  throw new AutoSslError((first.code ?? 'INTERNAL') as never, blocking.map((f) => f.message).join(' '), { hint: first.hint, details: { findings: blocking } });
}

/** Restores every file this domain wrote; if nginx had loaded them, validates and reloads the originals. */
async function rollback(ctx: DomainContext): Promise<string[]> {
  const files = ctx.transaction.files;
  await ctx.transaction.rollback();
  if (files.length && ctx.reloadedWithChanges) {
    try {
      await ctx.services.nginx.test();
      await ctx.services.nginx.reload();
    } catch (error) {
      ctx.emit({ stage: 'rollback', status: 'error', message: `restored the files but nginx could not reload them: ${(error as Error).message}` });
    }
  }
  if (files.length) ctx.emit({ stage: 'rollback', status: 'info', message: `restored ${files.join(', ')}` });
  return files;
}
