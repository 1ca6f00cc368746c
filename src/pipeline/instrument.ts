/** Every plugin tap timed and tagged: its time on the domain's context, its errors with the plugin's name. */
import { AutoSslError, isAutoSslError, toAutoSslError } from '../errors.js';
import type { DomainContext } from './context.js';
import type { HookName, Hooks } from './hooks.js';

/** The tap running now for each domain context, so a deadline can name the plugin that did not finish. */
export const runningTap = new WeakMap<DomainContext, { hook: string; plugin: string }>();

function contextOf(args: unknown[]): DomainContext | undefined {
  return args.find((a): a is DomainContext => typeof a === 'object' && a !== null && 'emit' in a && 'plan' in a && 'runId' in a);
}

/**
 * Wraps every tap so that its time and progress are recorded on the domain's own context (found among the call's
 * arguments), and so that an error thrown by a plugin carries the plugin's name (Rollup's PLUGIN_ERROR
 * convention). Installed once per hook with a `register` interceptor; it covers sync, promise and callback taps.
 */
export function instrumentHooks(hooks: Hooks): void {
  for (const [hookName, hook] of Object.entries(hooks) as Array<[HookName, Hooks[HookName]]>) {
    hook.intercept({
      register(tapInfo) {
        const original = tapInfo.fn as (...args: unknown[]) => unknown;
        const plugin = tapInfo.name;
        const tag = (error: unknown): AutoSslError => {
          if (isAutoSslError(error)) {
            const e = toAutoSslError(error);
            if (!('plugin' in e.details)) (e.details as Record<string, unknown>).plugin = plugin;
            return e;
          }
          const message = error instanceof Error ? error.message : String(error);
          return new AutoSslError('PLUGIN_ERROR', `Plugin "${plugin}" failed in hook "${hookName}": ${message.slice(0, 2000)}`, {
            cause: error,
            details: { plugin, hook: hookName },
          });
        };
        const begin = (args: unknown[]): ((status: 'done' | 'error') => void) => {
          const ctx = contextOf(args);
          const started = performance.now();
          if (ctx) runningTap.set(ctx, { hook: hookName, plugin });
          return (status) => {
            if (!ctx) return;
            ctx.events.push({ domain: ctx.domain, stage: hookName, plugin, status, ms: performance.now() - started });
            if (runningTap.get(ctx)?.plugin === plugin) runningTap.delete(ctx);
          };
        };
        if (tapInfo.type === 'sync') {
          tapInfo.fn = (...args: unknown[]) => {
            const end = begin(args);
            try {
              const result = original(...args);
              end('done');
              return result;
            } catch (error) {
              end('error');
              throw tag(error);
            }
          };
        } else if (tapInfo.type === 'promise') {
          tapInfo.fn = async (...args: unknown[]) => {
            const end = begin(args);
            try {
              const result = await original(...args);
              end('done');
              return result;
            } catch (error) {
              end('error');
              throw tag(error);
            }
          };
        } else {
          // tapAsync: the last argument is the callback
          tapInfo.fn = (...args: unknown[]) => {
            const callback = args.pop() as (error?: unknown, result?: unknown) => void;
            const end = begin(args);
            let called = false;
            const done = (error?: unknown, result?: unknown): void => {
              if (called) return;
              called = true;
              end(error ? 'error' : 'done');
              if (error) callback(tag(error));
              else callback(null, result);
            };
            try {
              original(...args, done);
            } catch (error) {
              done(error ?? new Error('threw'));
            }
          };
        }
        return tapInfo;
      },
    });
  }
}
