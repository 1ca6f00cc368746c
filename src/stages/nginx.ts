/**
 * Reload as a stage. `nginx -t` is not here: the config editor runs it inside the `vhost` stage, under the config
 * lock, for every edit (the `validate` hook is for checks of plugins of their own). The reload goes through
 * NginxControl's coalescer, so domains finishing together share one reload.
 */
import { STAGE } from '../pipeline/hooks.js';
import type { Plugin } from '../pipeline/plugin.js';

export const nginxReloadPlugin: Plugin = {
  name: 'nginx-reload',
  apply(hooks) {
    hooks.reload.tapPromise({ name: 'nginx-reload', stage: STAGE.BUILTIN }, async (ctx) => {
      if (ctx.dryRun || !ctx.needsReload) return;
      // set before the reload: a reload command that fails may still have made nginx load the edits (systemctl
      // timing out after nginx took the signal), and a rollback must then make nginx load the restored files
      ctx.reloadedWithChanges = true;
      await ctx.services.installer.reload();
      ctx.needsReload = false;
    });
  },
};
