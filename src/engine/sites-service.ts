/**
 * The sites service: sites a panel describes (kept in the state store), one domain's certificate as nginx serves it
 * (cached for a second), uninstall and uploaded certificates (see manage.ts).
 */
import { normalizeDomain } from '../domain.js';
import { AutoSslError } from '../errors.js';
import type { Store } from '../store/store.js';
import { dnsProgress } from '../renewal/dns-hook.js';
import { certificateOf } from '../renewal/certificate.js';
import { installUpload, uninstall } from '../manage.js';
import { panelSite, type Kernel } from './core.js';
import type { AutoSsl } from './types.js';

/** The engine's members about one site (their documentation is on AutoSsl). */
export type SitesService = Pick<AutoSsl, 'registerSite' | 'unregisterSite' | 'certificate' | 'uninstall' | 'installCertificate' | 'dnsProgress'>;

export function sitesService(k: Kernel): SitesService {
  const { config, fileConfig } = k;
  const sites: SitesService = {
    async registerSite(raw, source = 'api') {
      const site = panelSite(fileConfig, raw, true)!;
      const fromFile = fileConfig.sites.find((s) => [s.domain, ...s.aliases].includes(site.domain));
      if (fromFile) return fromFile;
      for (const name of [site.domain, ...site.aliases]) {
        const holder = config.sites.find((s) => s.domain !== site.domain && [s.domain, ...s.aliases].includes(name));
        if (holder)
          throw new AutoSslError('CONFIG_INVALID', `${name} is a name of the site ${holder.domain} already.`, {
            hint: `Use ${holder.domain}, or take ${name} out of it first.`,
          });
      }
      const i = config.sites.findIndex((s) => s.domain === site.domain);
      if (i >= 0) config.sites.splice(i, 1, site);
      else config.sites.push(site);
      await k.state().sites.upsert(site.domain, JSON.parse(JSON.stringify(site)) as Record<string, unknown>, source);
      return site;
    },
    async unregisterSite(domain) {
      if (fileConfig.sites.some((s) => s.domain === domain)) return;
      const i = config.sites.findIndex((s) => s.domain === domain);
      if (i >= 0) config.sites.splice(i, 1);
      await k.state().sites.delete(domain);
    },
    async certificate(input, options = {}) {
      const domain = normalizeDomain(input, { allowWildcard: true });
      // a panel asks for every domain on every page load: one tree load serves a second of them (a change asks fresh)
      if (options.fresh || !k.statusTree || Date.now() - k.statusTree.at > 1000) k.statusTree = { tree: k.services.installer.load(), at: Date.now() };
      let store: Store | null = null;
      try {
        store = k.readState();
      } catch {
        store = null;
      }
      return certificateOf(config, k.services.installer, k.statusTree.tree, store, domain);
    },
    async uninstall(domain) {
      k.statusTree = null;
      const result = await uninstall(k, domain);
      k.statusTree = null;
      if (result.ok && result.deleted.length && !result.kept.length) await sites.unregisterSite(result.domain);
      // the config file's site stays: "issue --all" (and the renewal of its names) would put HTTPS back unasked
      const kept = result.ok ? fileConfig.sites.find((s) => s.domain === result.domain || s.aliases.includes(result.domain)) : undefined;
      if (kept)
        result.notes.push(
          `${result.domain} is still ${kept.domain === result.domain ? 'a site' : `a name of the site ${kept.domain}`} in ${fileConfig.filepath ?? 'the config'}: the next "autossl issue --all" puts HTTPS back; take it out of the config to keep it HTTP-only`,
        );
      return result;
    },
    async installCertificate(domain, upload) {
      k.statusTree = null;
      try {
        return await installUpload(k, domain, upload);
      } finally {
        k.statusTree = null;
      }
    },
    async dnsProgress(domain) {
      try {
        return await dnsProgress(k.readState(), domain.replace(/^\*\./, ''));
      } catch {
        return null;
      }
    },
  };
  return sites;
}
