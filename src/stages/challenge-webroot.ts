/**
 * HTTP-01 over the webroot (certbot's authenticator side): make sure every port-80 server of the names serves
 * /.well-known/acme-challenge/ from the directory certbot will write to, editing the vhost only where its own
 * routing would not, then reload only when something changed.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { STAGE } from '../pipeline/hooks.js';
import type { Plugin } from '../pipeline/plugin.js';
import type { ChallengePlan } from '../installer/installer.js';
import { applyEdits } from '../pipeline/apply.js';
import { challengeDir } from './webroot-dirs.js';

export const PLUGIN_NAME = 'challenge-webroot';

/**
 * nginx's workers (www-data) read the tokens: the fallback webroot and the directories above it that autossl owns
 * (its state directory is private, 0700 by default) must let them through (x, not r: nothing can be listed).
 */
async function traversable(webroot: string, stateDir: string): Promise<void> {
  const root = path.resolve(stateDir);
  for (let dir = path.resolve(webroot); ; dir = path.dirname(dir)) {
    if (dir !== root && !dir.startsWith(root + path.sep)) return;
    const st = await fs.stat(dir).catch(() => null);
    if (st && (st.mode & 0o011) !== 0o011) await fs.chmod(dir, (st.mode & 0o7777) | 0o011);
    if (dir === root) return;
  }
}

export const challengeWebrootPlugin: Plugin = {
  name: PLUGIN_NAME,
  apply(hooks) {
    hooks.challenge.tapPromise({ name: PLUGIN_NAME, stage: STAGE.LAST }, async (ctx) => {
      if (ctx.plan.challenge !== 'http-01') return undefined;
      let webroot = '';
      const { installer } = ctx.services;
      let planned: ChallengePlan | undefined;
      let notes: string[] = [];
      const edits = await applyEdits(ctx, (config) => {
        const plan = installer.planChallenge(config, ctx.plan.names, {
          documentRoot: ctx.plan.site.documentRoot,
          fallbackWebroot: ctx.services.config.challengeDir,
          vhostFile: ctx.plan.site.vhost,
        });
        webroot = plan.webroot;
        planned = plan;
        notes = plan.notes;
        return plan.edits;
      });
      for (const note of notes) ctx.emit({ stage: 'challenge', plugin: PLUGIN_NAME, status: 'info', message: note });
      if (!ctx.dryRun) {
        if (edits.length) {
          // the CA (and the port-80 self-check) must see the challenge location before certbot runs; asked at once
          // after the edit (no I/O in between), so the domains of a batch share one reload (reloadedWithChanges is
          // set first: a reload that reports failure may still have loaded the edit; see nginx-reload)
          ctx.reloadedWithChanges = true;
          await installer.reload();
          ctx.needsReload = false;
        }
        if (planned) await installer.prepareChallenge(planned);
        await challengeDir(webroot);
        if (webroot === ctx.services.config.challengeDir) await traversable(webroot, ctx.services.config.stateDir);
      }
      return { type: 'http-01', webroot };
    });
  },
};
