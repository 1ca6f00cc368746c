/**
 * Obtain the certificate with `certbot certonly --webroot`. An existing lineage that already covers exactly
 * these names and is outside its renewal window is reused without asking the CA (`--force` asks anyway):
 * running `autossl issue` twice must not spend Let's Encrypt's duplicate-certificate limit.
 */
import path from 'node:path';
import { certonlyWebroot } from '../certbot/certbot.js';
import { readCertificate, readLineage, type Lineage } from '../certbot/lineage.js';
import { AutoSslError } from '../errors.js';
import { STAGE } from '../pipeline/hooks.js';
import type { DomainContext, Plugin } from '../pipeline/context.js';

export const PLUGIN_NAME = 'issue-certbot';

export function certbotSettings(ctx: DomainContext) {
  return ctx.services.config.certbot;
}

/** The existing lineage for this plan when it can be reused as is (same names, outside its renewal window). */
export function reusableLineage(ctx: DomainContext): Promise<Lineage | null> {
  return ctx.memo('reusable-lineage', async () => {
    if (ctx.force) return null;
    const existing = readLineage(certbotSettings(ctx).configDir, ctx.plan.certName);
    return existing && reusable(ctx, existing) ? existing : null;
  });
}

function reusable(ctx: DomainContext, lineage: Lineage): boolean {
  try {
    const info = readCertificate(lineage.cert);
    const names = [...ctx.plan.names].sort().join(',');
    const lifetime = info.notAfter.getTime() - info.notBefore.getTime();
    const renewFrom = info.notAfter.getTime() - lifetime / 3;
    return [...info.names].sort().join(',') === names && Date.now() < renewFrom;
  } catch {
    return false;
  }
}

export const issueCertbotPlugin: Plugin = {
  name: PLUGIN_NAME,
  apply(hooks) {
    hooks.issue.tapPromise({ name: PLUGIN_NAME, stage: STAGE.LAST }, async (ctx) => {
      const settings = certbotSettings(ctx);
      const reuse = await reusableLineage(ctx);
      if (reuse) {
        ctx.reusedLineage = true;
        ctx.emit({ stage: 'issue', plugin: PLUGIN_NAME, status: 'info', message: `certificate ${reuse.name} already covers ${ctx.plan.names.join(', ')} and is not due; not asking the CA` });
        return reuse;
      }
      const existing = readLineage(settings.configDir, ctx.plan.certName);
      if (ctx.dryRun) {
        // What certbot would create; shown in the dry-run diff only, never written anywhere.
        const dir = path.join(settings.configDir, 'live', ctx.plan.certName);
        return existing ?? { name: ctx.plan.certName, cert: `${dir}/cert.pem`, chain: `${dir}/chain.pem`, fullchain: `${dir}/fullchain.pem`, privkey: `${dir}/privkey.pem`, renewalConf: '' };
      }
      const webroot = ctx.challenge?.webroot;
      if (!webroot) throw new AutoSslError('INTERNAL', 'No webroot for the HTTP-01 challenge: the challenge stage did not run.');
      return certonlyWebroot(settings, { certName: ctx.plan.certName, names: ctx.plan.names, webroot, force: ctx.force });
    });
  },
};
