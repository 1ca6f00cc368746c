/**
 * The installer side: what the TLS server of the domain must contain. `listen <port> ssl` asks the editor to
 * mirror the block's own port-80 addresses on the TLS port; the certificate paths are the lineage's.
 */
import { AutoSslError } from '../errors.js';
import { quoteIfNeeded } from '../nginx/edit.js';
import { STAGE } from '../pipeline/hooks.js';
import type { Plugin } from '../pipeline/context.js';

export const PLUGIN_NAME = 'vhost-https';

export const vhostHttpsPlugin: Plugin = {
  name: PLUGIN_NAME,
  apply(hooks, api) {
    hooks.vhost.tapPromise({ name: PLUGIN_NAME, stage: STAGE.BUILTIN }, async (edit, ctx) => {
      if (!ctx.lineage) throw new AutoSslError('INTERNAL', 'No certificate lineage: the issue stage did not run.');
      const listenArgs = [String(api.config.nginx.httpsPort), 'ssl'];
      if (api.config.nginx.http2) listenArgs.push('http2');
      edit.https._add('listen', listenArgs.join(' '));
      edit.https._add('ssl_certificate', quoteIfNeeded(ctx.lineage.fullchain));
      edit.https._add('ssl_certificate_key', quoteIfNeeded(ctx.lineage.privkey));
      return edit;
    });
    hooks.vhost.tapPromise({ name: 'vhost-hsts', stage: STAGE.BUILTIN + 1 }, async (edit, ctx) => {
      if (ctx.plan.hsts) edit.https._add('add_header', 'Strict-Transport-Security "max-age=31536000" always');
      return edit;
    });
  },
};
