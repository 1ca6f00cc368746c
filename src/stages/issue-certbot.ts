/**
 * Obtain the certificate with certbot: `certonly --webroot` for HTTP-01, `certonly --manual` with autossl's DNS
 * hooks for DNS-01. An existing lineage that already covers exactly these names and is outside its renewal window
 * is reused without asking the CA (`--force` asks anyway): running `autossl issue` twice must not spend Let's
 * Encrypt's duplicate-certificate limit. In a deploy run (certbot renewed the lineage itself) `issue-renewed` bails
 * first with that lineage.
 */
import path from 'node:path';
import { certonlyDns, certonlyWebroot } from '../certbot/certbot.js';
import { writeHookScript } from '../certbot/hooks.js';
import { readCertificate, readLineage, type Lineage } from '../certbot/lineage.js';
import { AutoSslError } from '../errors.js';
import { STAGE } from '../pipeline/hooks.js';
import type { DomainContext } from '../pipeline/context.js';
import type { Plugin } from '../pipeline/plugin.js';
import { renewalWindowStart } from '../renewal/status.js';

export const PLUGIN_NAME = 'issue-certbot';

/** The existing lineage for this plan when it can be reused as is (same names, outside its renewal window). */
export function reusableLineage(ctx: DomainContext): Promise<Lineage | null> {
  return ctx.memo('reusable-lineage', async () => {
    if (ctx.force) return null;
    const existing = readLineage(ctx.services.config.certbot.configDir, ctx.plan.certName);
    return existing && reusable(ctx, existing) ? existing : null;
  });
}

function reusable(ctx: DomainContext, lineage: Lineage): boolean {
  try {
    const info = readCertificate(lineage.cert);
    const names = [...ctx.plan.names].sort().join(',');
    const renewFrom = renewalWindowStart(info.notBefore.getTime(), info.notAfter.getTime(), ctx.services.config.renewal.windowFraction);
    return [...info.names].sort().join(',') === names && Date.now() < renewFrom;
  } catch {
    return false;
  }
}

/** The manual hook scripts certbot runs for DNS-01 (their paths end up in the lineage's renewal config). */
function dnsHooks(ctx: DomainContext): { authHook: string; cleanupHook: string } {
  const { config } = ctx.services;
  if (!config.filepath) {
    throw new AutoSslError('CONFIG_INVALID', `${ctx.domain} uses DNS-01, which needs the config in a file: certbot runs the DNS hooks (and later renewals) in processes of their own that must load it.`, { hint: 'Put the config in a file and pass --config FILE (or keep it where autossl finds it).' });
  }
  const dir = path.join(config.stateDir, 'hooks');
  const note = 'Installed by autossl: certbot runs this for DNS-01 challenges (CERTBOT_DOMAIN, CERTBOT_VALIDATION).';
  return {
    authHook: writeHookScript(path.join(dir, 'dns-auth'), ['dns-hook', 'auth'], config.filepath, note),
    cleanupHook: writeHookScript(path.join(dir, 'dns-cleanup'), ['dns-hook', 'cleanup'], config.filepath, note),
  };
}

export const issueCertbotPlugin: Plugin = {
  name: PLUGIN_NAME,
  apply(hooks) {
    hooks.issue.tapPromise({ name: 'issue-renewed', stage: STAGE.FIRST }, async (ctx) => (ctx.mode === 'deploy' ? ctx.lineage : undefined));
    hooks.issue.tapPromise({ name: PLUGIN_NAME, stage: STAGE.LAST }, async (ctx) => {
      const settings = ctx.services.config.certbot;
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
      const request = { certName: ctx.plan.certName, names: ctx.plan.names, force: ctx.force };
      let lineage: Lineage;
      if (ctx.challenge?.type === 'dns-01') lineage = await certonlyDns(settings, { ...request, ...dnsHooks(ctx) });
      else {
        const webroot = ctx.challenge?.webroot;
        if (!webroot) throw new AutoSslError('INTERNAL', 'No webroot for the HTTP-01 challenge: the challenge stage did not run.');
        lineage = await certonlyWebroot(settings, { ...request, webroot });
      }
      // new certificate files, maybe behind a path nginx already serves: it must reload to serve them
      ctx.needsReload = true;
      return lineage;
    });
  },
};
