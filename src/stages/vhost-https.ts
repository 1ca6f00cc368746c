/**
 * The installer side: what the TLS server of the domain must contain. `listen <port> ssl` asks the editor to
 * mirror the block's own port-80 addresses on the TLS port; the certificate paths are the lineage's; HSTS when the
 * site asks for it.
 */
import { AutoSslError } from '../errors.js';
import { pathToken, type VhostEdit } from '../installer/installer.js';
import { STAGE } from '../pipeline/hooks.js';
import type { Plugin } from '../pipeline/plugin.js';

export const PLUGIN_NAME = 'vhost-https';

/** The header HSTS adds (one year; no includeSubDomains: autossl cannot know the other names are on HTTPS). */
export const HSTS_HEADER = 'Strict-Transport-Security "max-age=31536000" always';

/**
 * What HTTPS needs in the TLS server: `listen <port> ssl [http2]` (the editor mirrors the block's own port-80
 * addresses on that port; pass no port to keep the listens as they are) and the lineage's certificate paths.
 */
export function addHttpsDirectives(edit: VhostEdit, cert: { fullchain: string; privkey: string }, listen?: { port: number; http2: boolean }): VhostEdit {
  if (listen) edit.https.add('listen', [String(listen.port), 'ssl', ...(listen.http2 ? ['http2'] : [])].join(' '));
  edit.https.add('ssl_certificate', pathToken(cert.fullchain, 'certificate path'));
  edit.https.add('ssl_certificate_key', pathToken(cert.privkey, 'certificate key path'));
  return edit;
}

export const vhostHttpsPlugin: Plugin = {
  name: PLUGIN_NAME,
  apply(hooks, api) {
    hooks.vhost.tapPromise({ name: PLUGIN_NAME, stage: STAGE.BUILTIN }, async (edit, ctx) => {
      if (!ctx.lineage) throw new AutoSslError('INTERNAL', 'No certificate lineage: the issue stage did not run.');
      return addHttpsDirectives(edit, ctx.lineage, { port: api.config.nginx.httpsPort, http2: api.config.nginx.http2 });
    });
    hooks.vhost.tapPromise({ name: 'vhost-hsts', stage: STAGE.BUILTIN + 1 }, async (edit, ctx) => {
      if (ctx.plan.hsts) edit.https.add('add_header', HSTS_HEADER);
      return edit;
    });
  },
};
