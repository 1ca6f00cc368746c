/**
 * `nginx -t` and reload as stages. Validation runs only when this domain changed files; the reload goes
 * through NginxControl's coalescer, so domains finishing together share one reload.
 */
import { STAGE } from '../pipeline/hooks.js';
import type { Plugin } from '../pipeline/context.js';

export const nginxValidatePlugin: Plugin = {
  name: 'nginx-validate',
  apply(hooks) {
    hooks.validate.tapPromise({ name: 'nginx-validate', stage: STAGE.BUILTIN }, async (ctx) => {
      if (ctx.dryRun || !ctx.needsReload) return;
      await ctx.services.nginx.test();
    });
  },
};

export const nginxReloadPlugin: Plugin = {
  name: 'nginx-reload',
  apply(hooks) {
    hooks.reload.tapPromise({ name: 'nginx-reload', stage: STAGE.BUILTIN }, async (ctx) => {
      if (ctx.dryRun || !ctx.needsReload) return;
      await ctx.services.nginx.reload();
      ctx.reloadedWithChanges = true;
      ctx.needsReload = false;
    });
  },
};
