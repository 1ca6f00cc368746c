/**
 * The site's ACME certificate profile, checked while planning (before the challenge is set up or anything ordered):
 * the CA must list it and the certbot autossl runs must be able to ask for it (src/issuer/profile.ts).
 */
import { checkProfile } from '../issuer/profile.js';
import { STAGE } from '../pipeline/hooks.js';
import type { Plugin } from '../pipeline/plugin.js';

export const PLUGIN_NAME = 'plan-profile';

export const planProfilePlugin: Plugin = {
  name: PLUGIN_NAME,
  apply(hooks) {
    // after plan-names (BUILTIN): the plan's names are final; a renewal's deploy or a DNS hook orders nothing
    hooks.plan.tapPromise({ name: PLUGIN_NAME, stage: STAGE.BUILTIN + 1 }, async (plan, ctx) => {
      if (!plan.profile || ctx.mode === 'deploy' || ctx.mode === 'dns-hook' || ctx.mode === 'install') return plan;
      const { warning } = await checkProfile(ctx.services.config, plan.profile, plan.site.domain, ctx.services.issuer.name === 'certbot');
      const note = `profile ${plan.profile.name}${plan.profile.required ? ' (required)' : ''}: asked of the CA`;
      ctx.emit({ stage: 'plan', plugin: PLUGIN_NAME, status: warning ? 'warning' : 'info', message: warning ?? note });
      return { ...plan, notes: [...plan.notes, note] };
    });
  },
};
