/**
 * After reload, connect to each TLS address the vhost listens on, send the domain as SNI, and check that nginx
 * presents the lineage's certificate (by serial). nginx reloads asynchronously (old workers finish their
 * connections), so the check retries until `defaults.verifyTimeoutMs`.
 */
import tls from 'node:tls';
import { AutoSslError } from '../errors.js';
import { normalizeSerial } from '../certbot/lineage.js';
import { lineColumn } from '../nginx/parse.js';
import { STAGE } from '../pipeline/hooks.js';
import type { DomainContext } from '../pipeline/context.js';
import type { Plugin } from '../pipeline/plugin.js';

export const PLUGIN_NAME = 'verify-tls';

export function servedSerial(host: string, port: number, servername: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, servername, rejectUnauthorized: false, timeout: timeoutMs }, () => {
      const serial = socket.getPeerCertificate().serialNumber ?? '';
      socket.end();
      resolve(normalizeSerial(serial));
    });
    socket.on('timeout', () => {
      socket.destroy();
      reject(new Error(`timed out connecting to ${host}:${port}`));
    });
    socket.on('error', reject);
  });
}

/** What most likely explains a wrong certificate: which block nginx picks for the name over TLS, and what changed. */
function explain(ctx: DomainContext, name: string): string {
  const changed = ctx.edits.length ? `autossl changed ${[...new Set(ctx.edits.map((e) => e.file))].join(', ')} and reloaded nginx` : 'autossl changed no vhost file (the certificate files changed) and reloaded nginx';
  try {
    const tlsBlocks = ctx.services.loadTree().findServers(name).https;
    const where = tlsBlocks.map((b) => `${b.file}:${lineColumn(b.config.source, b.directive.start).line}`).join(', ');
    return `${changed}; nginx picks ${where || 'no server block with this name'} for ${name} over TLS: if that block points at another certificate, or nginx did not reload (its error log says why), it serves the old one.`;
  } catch {
    return `${changed}.`;
  }
}

export const verifyTlsPlugin: Plugin = {
  name: PLUGIN_NAME,
  apply(hooks, api) {
    hooks.verify.tapPromise({ name: PLUGIN_NAME, stage: STAGE.BUILTIN }, async (ctx) => {
      if (ctx.dryRun || !ctx.lineage || !ctx.certificate) return;
      const want = normalizeSerial(ctx.certificate.serial);
      const deadline = Date.now() + api.config.defaults.verifyTimeoutMs;
      for (const endpoint of ctx.tlsEndpoints) {
        let last = '';
        for (;;) {
          try {
            const got = await servedSerial(endpoint.host, endpoint.port, endpoint.servername);
            if (got === want) break;
            last = `it serves serial ${got}, expected ${want} (the certificate now in ${ctx.lineage.cert})`;
          } catch (error) {
            last = (error as Error).message;
          }
          if (Date.now() > deadline || ctx.signal.aborted) {
            throw new AutoSslError('TLS_VERIFY_FAILED', `https://${endpoint.servername} at ${endpoint.host}:${endpoint.port} does not serve the new certificate: ${last}.`, {
              hint: explain(ctx, endpoint.servername),
              details: { endpoint, expected: want },
            });
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      if (ctx.tlsEndpoints.length) ctx.emit({ stage: 'verify', plugin: PLUGIN_NAME, status: 'info', message: `serial ${want} served at ${ctx.tlsEndpoints.map((e) => `${e.host}:${e.port}`).join(', ')}` });
    });
  },
};
