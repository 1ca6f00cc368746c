/**
 * After reload, connect to each TLS address the vhost listens on, send the domain as SNI, and check that nginx
 * presents the lineage's certificate (by serial). nginx reloads asynchronously (old workers finish their
 * connections), so the check retries, with a growing wait, until `defaults.verifyTimeoutMs` has passed and it has
 * tried at least MIN_VERIFY_ATTEMPTS times. A domain that still fails because nginx could not be reached is run
 * once more by the engine (its certificate reused, no new order): see issueOne in engine.ts.
 */
import { AutoSslError } from '../errors.js';
import { normalizeSerial } from '../issuer/certificate.js';
import { STAGE } from '../pipeline/hooks.js';
import type { DomainContext } from '../pipeline/context.js';
import type { Plugin } from '../pipeline/plugin.js';

export const PLUGIN_NAME = 'verify-tls';

/** Kept here for callers of this module; it lives beside the Installer (sni.ts). */
import { servedSerial } from '../installer/sni.js';
export { servedSerial };

/** What most likely explains a wrong certificate: which block nginx picks for the name over TLS, and what changed. */
function explain(ctx: DomainContext, name: string): string {
  const changed = ctx.edits.length
    ? `autossl changed ${[...new Set(ctx.edits.map((e) => e.file))].join(', ')} and reloaded nginx`
    : 'autossl changed no vhost file (the certificate files changed) and reloaded nginx';
  try {
    const { installer } = ctx.services;
    const where = installer
      .blocksFor(installer.load(), name)
      .https.map((b) => `${b.file}:${b.line}`)
      .join(', ');
    return `${changed}; nginx picks ${where || 'no server block with this name'} for ${name} over TLS: if that block points at another certificate, or nginx did not reload (its error log says why), it serves the old one.`;
  } catch {
    return `${changed}.`;
  }
}

/**
 * At least this many attempts per endpoint before the check fails, whatever the clock says: a process whose event
 * loop stalled (a loaded machine, a batch of hundreds) sees its deadline pass during one attempt, while nginx was
 * serving the certificate all along. Between attempts the wait doubles, from 100 ms up to 2 s.
 */
export const MIN_VERIFY_ATTEMPTS = 4;

/** Why the check failed: nginx answered with another certificate, or it could not be reached in time. */
export type VerifyFailure = 'serial' | 'unreachable';

export const verifyTlsPlugin: Plugin = {
  name: PLUGIN_NAME,
  apply(hooks, api) {
    hooks.verify.tapPromise({ name: PLUGIN_NAME, stage: STAGE.BUILTIN }, async (ctx) => {
      if (ctx.dryRun || !ctx.lineage || !ctx.certificate) return;
      const want = normalizeSerial(ctx.certificate.serial);
      const deadline = Date.now() + api.config.defaults.verifyTimeoutMs;
      for (const endpoint of ctx.tlsEndpoints) {
        let last = '';
        let reason: VerifyFailure = 'unreachable';
        let wait = 100;
        for (let attempt = 1; ; attempt++) {
          try {
            const got = await servedSerial(endpoint.host, endpoint.port, endpoint.servername);
            if (got === want) break;
            last = `it serves serial ${got}, expected ${want} (the certificate now in ${ctx.lineage.cert})`;
            reason = 'serial';
          } catch (error) {
            last = (error as Error).message;
            reason = 'unreachable';
          }
          if ((Date.now() > deadline && attempt >= MIN_VERIFY_ATTEMPTS) || ctx.signal.aborted) {
            throw new AutoSslError(
              'TLS_VERIFY_FAILED',
              `https://${endpoint.servername} at ${endpoint.host}:${endpoint.port} does not serve the new certificate: ${last} (${attempt} attempts).`,
              {
                hint: explain(ctx, endpoint.servername),
                details: { endpoint, expected: want, reason, attempts: attempt },
              },
            );
          }
          await new Promise((r) => setTimeout(r, wait));
          wait = Math.min(wait * 2, 2000);
        }
      }
      if (ctx.tlsEndpoints.length)
        ctx.emit({
          stage: 'verify',
          plugin: PLUGIN_NAME,
          status: 'info',
          message: `serial ${want} served at ${ctx.tlsEndpoints.map((e) => `${e.host}:${e.port}`).join(', ')}`,
        });
    });
  },
};
