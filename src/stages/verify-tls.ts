/**
 * After reload, connect to each TLS address the vhost listens on, send the domain as SNI, and check that
 * nginx presents the lineage's certificate (by serial). nginx reloads asynchronously (old workers finish their
 * connections), so the check retries until `defaults.verifyTimeoutMs`.
 */
import tls from 'node:tls';
import { AutoSslError } from '../errors.js';
import { normalizeSerial, readCertificate } from '../certbot/lineage.js';
import { STAGE } from '../pipeline/hooks.js';
import type { Plugin } from '../pipeline/context.js';

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

export const verifyTlsPlugin: Plugin = {
  name: PLUGIN_NAME,
  apply(hooks, api) {
    hooks.verify.tapPromise({ name: PLUGIN_NAME, stage: STAGE.BUILTIN }, async (ctx) => {
      if (ctx.dryRun || !ctx.lineage) return;
      const want = normalizeSerial(readCertificate(ctx.lineage.cert).serial);
      const deadline = Date.now() + api.config.defaults.verifyTimeoutMs;
      for (const endpoint of ctx.tlsEndpoints) {
        let last = '';
        for (;;) {
          try {
            const got = await servedSerial(endpoint.host, endpoint.port, endpoint.servername);
            if (got === want) break;
            last = `it serves serial ${got}, expected ${want}`;
          } catch (error) {
            last = (error as Error).message;
          }
          if (Date.now() > deadline) {
            throw new AutoSslError('TLS_VERIFY_FAILED', `https://${endpoint.servername} at ${endpoint.host}:${endpoint.port} does not serve the new certificate: ${last}.`, { details: { endpoint, expected: want } });
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      ctx.emit({ stage: 'verify', plugin: PLUGIN_NAME, status: 'info', message: `serial ${want} served at ${ctx.tlsEndpoints.map((e) => `${e.host}:${e.port}`).join(', ')}` });
    });
  },
};
