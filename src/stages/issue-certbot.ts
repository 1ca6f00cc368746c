/**
 * The `issue` stage: the certificate comes from the configured issuer (src/issuer/: certbot unless the config names
 * another). An existing lineage that already covers exactly these names and is outside its renewal window is
 * reused without asking the CA (`--force` asks anyway): running `autossl issue` twice must not spend Let's
 * Encrypt's duplicate-certificate limit. In a deploy run (the lineage was renewed) `issue-renewed` bails first with
 * that lineage. The tap keeps its name `issue-certbot` whatever the issuer: plugins order their taps by it.
 */
import path from 'node:path';
import { withLocked } from '../store/locker.js';
import { AutoSslError } from '../errors.js';
import { lineageFiles, type Lineage, type LineageFiles } from '../issuer/issuer.js';
import { STAGE } from '../pipeline/hooks.js';
import type { DomainContext } from '../pipeline/context.js';
import type { Plugin } from '../pipeline/plugin.js';
import { renewalWindowStart } from '../renewal/status.js';
import { adoptFromFleet, publishToFleet } from '../fleet/stage.js';

export const PLUGIN_NAME = 'issue-certbot';

export { certbotSettings } from '../issuer/certbot.js';

/** The existing lineage for this plan when it can be reused as is (same names, outside its renewal window). */
export function reusableLineage(ctx: DomainContext): Promise<LineageFiles | null> {
  return ctx.memo('reusable-lineage', async () => {
    if (ctx.force) return null;
    const existing = await ctx.services.issuer.find(ctx.plan.certName);
    return existing && reusable(ctx, existing) && !(await revoked(ctx, existing)) ? lineageFiles(existing) : null;
  });
}

/** Whether the CA revoked the lineage's certificate (asked now): in date and covering the names, it is still no use. */
async function revoked(ctx: DomainContext, lineage: Lineage): Promise<boolean> {
  return (await ctx.services.issuer.revoked?.(lineage).catch(() => false)) ?? false;
}

function reusable(ctx: DomainContext, lineage: Lineage): boolean {
  const names = [...ctx.plan.names].sort().join(',');
  const renewFrom = renewalWindowStart(lineage.notBefore.getTime(), lineage.notAfter.getTime(), ctx.services.config.renewal.windowFraction);
  return [...lineage.names].sort().join(',') === names && Date.now() < renewFrom;
}

export const issueCertbotPlugin: Plugin = {
  name: PLUGIN_NAME,
  apply(hooks) {
    hooks.issue.tapPromise({ name: 'issue-renewed', stage: STAGE.FIRST }, async (ctx) =>
      ctx.mode === 'deploy' || ctx.mode === 'install' ? ctx.lineage : undefined,
    );
    hooks.issue.tapPromise({ name: PLUGIN_NAME, stage: STAGE.LAST }, async (ctx) => {
      const { issuer, config } = ctx.services;
      if (ctx.dryRun) {
        const reuse = await reusableLineage(ctx);
        if (reuse) {
          ctx.reusedLineage = true;
          return reuse;
        }
        // What the issuer would create; shown in the dry-run diff only, never written anywhere.
        const existing = await issuer.find(ctx.plan.certName).catch(() => null);
        if (existing) return lineageFiles(existing);
        const dir = path.join(config.stateDir, 'issuer', issuer.name, ctx.plan.certName);
        const planned = issuer.plannedPaths?.(ctx.plan.certName) ?? {
          certPath: `${dir}/cert.pem`,
          chainPath: `${dir}/chain.pem`,
          fullchainPath: `${dir}/fullchain.pem`,
          keyPath: `${dir}/privkey.pem`,
        };
        return {
          name: ctx.plan.certName,
          cert: planned.certPath,
          chain: planned.chainPath,
          fullchain: planned.fullchainPath,
          privkey: planned.keyPath,
          renewalConf: '',
        };
      }
      // one order per lineage at a time, across processes: a second run for the same names waits, then reuses
      // (the store's lock: a store several nodes share makes it one order across them)
      return withLocked(
        ctx.services.state().locker,
        `order-${ctx.plan.certName}`,
        config.certbot.timeoutMs * 3,
        `The order of ${ctx.plan.certName}`,
        async () => {
          // a fleet: another node may have obtained it (it publishes before releasing this lock)
          if (!ctx.force) await adoptFromFleet(ctx);
          const existing = await issuer.find(ctx.plan.certName);
          // a revoked certificate the issuer would keep (not due): ordered anew, as with --force
          const replace = !ctx.force && existing !== null && reusable(ctx, existing) && (await revoked(ctx, existing));
          if (replace)
            ctx.emit({ stage: 'issue', plugin: PLUGIN_NAME, status: 'info', message: `certificate ${existing!.id} was revoked by the CA; ordering a new one` });
          if (!ctx.force && existing && !replace && reusable(ctx, existing)) {
            ctx.reusedLineage = true;
            ctx.emit({
              stage: 'issue',
              plugin: PLUGIN_NAME,
              status: 'info',
              message: `certificate ${existing.id} already covers ${ctx.plan.names.join(', ')} and is not due; not asking the CA`,
            });
            await publishToFleet(ctx, lineageFiles(existing));
            return lineageFiles(existing);
          }
          if (!ctx.challenge) throw new AutoSslError('INTERNAL', 'No challenge was set up: the challenge stage did not run.');
          const lineage = await issuer
            .obtain(
              {
                id: ctx.plan.certName,
                names: ctx.plan.names,
                challenge: ctx.challenge,
                force: ctx.force || replace,
                replaces: existing?.ariCertId,
                profile: ctx.plan.profile,
                log: (message) => ctx.emit({ stage: 'issue', plugin: PLUGIN_NAME, status: 'info', message: `${issuer.name}: ${message}` }),
              },
              ctx.signal,
            )
            .catch((error: unknown) => {
              // an issuer module's own error is named after it, with the stable code a caller can test
              if (error instanceof AutoSslError) throw error;
              throw new AutoSslError(
                'ISSUER_FAILED',
                `The issuer ${issuer.name} could not obtain a certificate for ${ctx.plan.names.join(', ')}: ${error instanceof Error ? error.message : String(error)}`,
                { cause: error, details: { issuer: issuer.name } },
              );
            });
          // new certificate files, maybe behind a path nginx already serves: it must reload to serve them
          ctx.needsReload = true;
          await publishToFleet(ctx, lineageFiles(lineage));
          return lineageFiles(lineage);
        },
      );
    });
  },
};
