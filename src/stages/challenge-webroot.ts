/**
 * HTTP-01 over the webroot (certbot's authenticator side): make sure every port-80 server of the names serves
 * /.well-known/acme-challenge/ from the directory certbot will write to, editing the vhost only where its own
 * routing would not, then validate and reload only when something changed.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { planChallengeEdit } from '../nginx/edit.js';
import { STAGE } from '../pipeline/hooks.js';
import type { Plugin } from '../pipeline/context.js';
import { applyEdits } from '../pipeline/apply.js';

export const PLUGIN_NAME = 'challenge-webroot';

export const challengeWebrootPlugin: Plugin = {
  name: PLUGIN_NAME,
  apply(hooks) {
    hooks.challenge.tapPromise({ name: PLUGIN_NAME, stage: STAGE.LAST }, async (ctx) => {
      const tree = ctx.services.loadTree();
      const plan = planChallengeEdit(tree, ctx.plan.names, {
        documentRoot: ctx.plan.site.documentRoot,
        fallbackWebroot: ctx.services.config.challengeDir,
      });
      for (const note of plan.notes) ctx.emit({ stage: 'challenge', plugin: PLUGIN_NAME, status: 'info', message: note });
      if (!ctx.dryRun) {
        await fs.mkdir(path.join(plan.webroot, '.well-known', 'acme-challenge'), { recursive: true });
      }
      if (plan.edits.length) {
        await applyEdits(ctx, plan.edits);
        if (!ctx.dryRun) {
          await ctx.services.nginx.test();
          await ctx.services.nginx.reload();
          ctx.reloadedWithChanges = true;
        }
      }
      return { type: 'http-01', webroot: plan.webroot };
    });
  },
};
