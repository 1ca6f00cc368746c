/**
 * Planning what one certificate must cover, from what the server blocks serve:
 *  - one block, one certificate: a server block holds one certificate (per key type), so configured sites whose
 *    names land on the same block share one certificate, planned identically from either site (the lineage of the
 *    site first in the config), instead of each re-pointing the block away from the other;
 *  - a block already serving other names over HTTPS with a certificate that covers them is never re-pointed to one
 *    that does not: those names are added (`blockNames: "cover"`) or the run is refused before any order
 *    (VHOST_CERT_CONFLICT);
 *  - `blockNames: "cover"` adds the block's other names; one whose pre-flight fails is left out, and said so.
 */
import path from 'node:path';
import { STAGE } from '../pipeline/hooks.js';
import type { DomainContext, DomainPlan } from '../pipeline/context.js';
import type { Plugin } from '../pipeline/plugin.js';

export const PLUGIN_NAME = 'plan-names';

/** The names one certificate must cover, as the Installer plans them from the blocks (nothing to plan: as it was). */
function planNames(ctx: DomainContext, plan: DomainPlan): DomainPlan {
  const { config, installer } = ctx.services;
  let snapshot: unknown;
  try {
    snapshot = installer.load(ctx.dryRun ? ctx.overlay : undefined);
  } catch {
    return plan; // the stages that need the tree report what is wrong with it
  }
  // certbot's lineages: live/<name>/ (a lineage `certbot --nginx` installed is adopted as it is)
  const live = path.resolve(config.certbot.configDir, 'live') + path.sep;
  return installer.planNames(snapshot, plan, {
    of: (file) => (path.resolve(file).startsWith(live) ? path.resolve(file).slice(live.length).split(path.sep)[0] : undefined),
    fullchain: (id) => path.join(config.certbot.configDir, 'live', id, 'fullchain.pem'),
  });
}

/** Leaves out the optional names (blockNames "cover") whose checks failed, instead of failing the domain. */
function dropFailedOptional(ctx: DomainContext): void {
  if (!ctx.plan.optionalNames.length) return;
  const failed = new Set(
    ctx.findings.filter((f) => f.severity === 'error' && !f.resolved && f.name && ctx.plan.optionalNames.includes(f.name)).map((f) => f.name!),
  );
  if (!failed.size) return;
  for (const f of ctx.findings) if (f.name && failed.has(f.name) && f.severity === 'error') f.resolved = true;
  const why = [...failed].map((n) => `${n} (${ctx.findings.find((f) => f.name === n && f.severity === 'error')?.code ?? 'check failed'})`).join(', ');
  ctx.plan = {
    ...ctx.plan,
    names: ctx.plan.names.filter((n) => !failed.has(n)),
    optionalNames: ctx.plan.optionalNames.filter((n) => !failed.has(n)),
    notes: [...ctx.plan.notes, `left out of the certificate, their pre-flight failed: ${why}`],
  };
  ctx.emit({ stage: 'findings', plugin: PLUGIN_NAME, status: 'info', message: `left out: ${why}` });
}

export const planNamesPlugin: Plugin = {
  name: PLUGIN_NAME,
  apply(hooks) {
    hooks.plan.tapPromise({ name: PLUGIN_NAME, stage: STAGE.BUILTIN }, async (plan, ctx) =>
      ctx.mode === 'deploy' || ctx.mode === 'dns-hook' || ctx.mode === 'install' ? plan : planNames(ctx, plan),
    );
    hooks.findings.tapPromise({ name: 'plan-names-findings', stage: STAGE.LAST }, async (ctx) => dropFailedOptional(ctx));
    hooks.beforeIssue.tapPromise({ name: 'plan-names-self-check', stage: STAGE.LAST + 1 }, async (ctx) => dropFailedOptional(ctx));
  },
};
