/**
 * Obtain the certificate with certbot: `certonly --webroot` for HTTP-01, `certonly --manual` with autossl's DNS
 * hooks for DNS-01. An existing lineage that already covers exactly these names and is outside its renewal window
 * is reused without asking the CA (`--force` asks anyway): running `autossl issue` twice must not spend Let's
 * Encrypt's duplicate-certificate limit. In a deploy run (certbot renewed the lineage itself) `issue-renewed` bails
 * first with that lineage.
 */
import path from 'node:path';
import fsp from 'node:fs/promises';
import { certonlyDns, certonlyWebroot, type CertbotSettings } from '../certbot/certbot.js';
import { adopt, ensureAccount, privateDirs } from '../certbot/orders.js';
import { withLocked } from '../store/locker.js';
import type { AutoSslConfig } from '../config/schema.js';
import { writeHookScript } from '../certbot/hooks.js';
import { readCertificate, readLineage, type Lineage } from '../certbot/lineage.js';
import { AutoSslError } from '../errors.js';
import { STAGE } from '../pipeline/hooks.js';
import type { DomainContext } from '../pipeline/context.js';
import type { Plugin } from '../pipeline/plugin.js';
import { renewalWindowStart } from '../renewal/status.js';
import { revocationOf } from '../renewal/revocation.js';

export const PLUGIN_NAME = 'issue-certbot';

/** certbot's settings with the cross-process lock under autossl's state dir. */
export function certbotSettings(config: AutoSslConfig): CertbotSettings {
  return { ...config.certbot, lockDir: path.join(config.stateDir, 'locks') };
}

/** The existing lineage for this plan when it can be reused as is (same names, outside its renewal window). */
export function reusableLineage(ctx: DomainContext): Promise<Lineage | null> {
  return ctx.memo('reusable-lineage', async () => {
    if (ctx.force) return null;
    const existing = readLineage(ctx.services.config.certbot.configDir, ctx.plan.certName);
    return existing && reusable(ctx, existing) && !(await revoked(ctx, existing)) ? existing : null;
  });
}

/** Whether the CA revoked the lineage's certificate (asked now): in date and covering the names, it is still no use. */
async function revoked(ctx: DomainContext, lineage: Lineage): Promise<boolean> {
  try {
    const serial = readCertificate(lineage.cert).serial;
    return (await revocationOf(ctx.services.config, ctx.services.state(), lineage, serial, { fresh: true })) === 'revoked';
  } catch {
    return false;
  }
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

/** Orders a new lineage in a private certbot directory set (parallel with others), then adopts it. */
async function privateOrder(ctx: DomainContext, main: CertbotSettings, order: (s: CertbotSettings) => Promise<Lineage>): Promise<Lineage> {
  const { config } = ctx.services;
  await ensureAccount(main);
  const priv = await privateDirs(main, config.stateDir, ctx.plan.certName);
  let ordered: Lineage;
  try {
    ordered = await ctx.services.certbotSlots.run(() => order(priv));
  } catch (error) {
    // keep certbot's log where the admin looks for it; the rest of the private directories goes
    const log = path.join(priv.logsDir, 'letsencrypt.log');
    const kept = path.join(main.logsDir, 'autossl-orders', `${ctx.plan.certName}-${Date.now()}.log`);
    await fsp.mkdir(path.dirname(kept), { recursive: true }).then(() => fsp.rename(log, kept)).catch(() => undefined);
    if (error instanceof AutoSslError && error.details.log) (error.details as Record<string, unknown>).log = kept;
    await fsp.rm(priv.root, { recursive: true, force: true });
    throw error;
  }
  const lineage = await adopt(main, priv, ordered.name);
  await fsp.rm(priv.root, { recursive: true, force: true });
  return lineage;
}

export const issueCertbotPlugin: Plugin = {
  name: PLUGIN_NAME,
  apply(hooks) {
    hooks.issue.tapPromise({ name: 'issue-renewed', stage: STAGE.FIRST }, async (ctx) => (ctx.mode === 'deploy' || ctx.mode === 'install' ? ctx.lineage : undefined));
    hooks.issue.tapPromise({ name: PLUGIN_NAME, stage: STAGE.LAST }, async (ctx) => {
      const settings = certbotSettings(ctx.services.config);
      if (ctx.dryRun) {
        const reuse = await reusableLineage(ctx);
        if (reuse) {
          ctx.reusedLineage = true;
          return reuse;
        }
        // What certbot would create; shown in the dry-run diff only, never written anywhere.
        const dir = path.join(settings.configDir, 'live', ctx.plan.certName);
        return readLineage(settings.configDir, ctx.plan.certName) ?? { name: ctx.plan.certName, cert: `${dir}/cert.pem`, chain: `${dir}/chain.pem`, fullchain: `${dir}/fullchain.pem`, privkey: `${dir}/privkey.pem`, renewalConf: '' };
      }
      // one order per lineage at a time, across processes: a second run for the same names waits, then reuses
      // (the store's lock: a store several nodes share makes it one order across them)
      return withLocked(ctx.services.state().locker, `order-${ctx.plan.certName}`, settings.timeoutMs * 3, `The order of ${ctx.plan.certName}`, async () => {
        const existing = readLineage(settings.configDir, ctx.plan.certName);
        // a revoked certificate certbot would keep (not due): ordered anew, as with --force
        const replace = !ctx.force && existing !== null && reusable(ctx, existing) && (await revoked(ctx, existing));
        if (replace) ctx.emit({ stage: 'issue', plugin: PLUGIN_NAME, status: 'info', message: `certificate ${existing!.name} was revoked by the CA; ordering a new one` });
        if (!ctx.force && existing && !replace && reusable(ctx, existing)) {
          ctx.reusedLineage = true;
          ctx.emit({ stage: 'issue', plugin: PLUGIN_NAME, status: 'info', message: `certificate ${existing.name} already covers ${ctx.plan.names.join(', ')} and is not due; not asking the CA` });
          return existing;
        }
        // an account the CA rate-limited places no order before the time it gave (autossl never burns the limit)
        const limitServer = settings.server ?? 'letsencrypt';
        const store = ctx.services.state();
        const limited = await store.rateLimits.get(limitServer);
        if (limited && Date.now() < limited.until) {
          throw new AutoSslError('RATE_LIMITED', `Not ordered: the CA rate-limited this account until ${new Date(limited.until).toISOString()} (${limited.message}).`, { details: { until: new Date(limited.until).toISOString() } });
        }
        const request = { certName: ctx.plan.certName, names: ctx.plan.names, force: ctx.force || replace };
        let order: (s: CertbotSettings) => Promise<Lineage>;
        if (ctx.challenge?.type === 'dns-01') {
          const hooksPaths = dnsHooks(ctx);
          order = (s) => certonlyDns(s, { ...request, ...hooksPaths });
        } else {
          const webroot = ctx.challenge?.webroot;
          if (!webroot) throw new AutoSslError('INTERNAL', 'No webroot for the HTTP-01 challenge: the challenge stage did not run.');
          order = (s) => certonlyWebroot(s, { ...request, webroot });
        }
        // a new lineage is ordered beside the others, in its own directories; an existing one in the main directory
        let lineage: Lineage;
        try {
          lineage = !existing && ctx.services.config.batch.privateOrders ? await privateOrder(ctx, settings, order) : await ctx.services.certbotSlots.run(() => order(settings));
        } catch (error) {
          if (error instanceof AutoSslError && error.code === 'RATE_LIMITED') {
            // every order of this account waits until then: the other domains of the batch are told, not ordered
            await store.rateLimits.set(limitServer, { until: Date.parse(String(error.details.until)), message: error.message });
          }
          throw error;
        }
        // new certificate files, maybe behind a path nginx already serves: it must reload to serve them
        ctx.needsReload = true;
        return lineage;
      });
    });
  },
};
