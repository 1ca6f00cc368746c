/**
 * autossl:cloudflare-dns: a DNS-01 provider through Cloudflare's API. For a site with "challenge": "dns-01" in a
 * zone the token can edit, certbot's manual hooks (which call `autossl dns-hook`) create the TXT record
 * `_acme-challenge.<name>` and remove it after validation, whatever the outcome. An apex and its wildcard in one
 * order put two values on one name: each is its own record, added and removed alone. The engine waits until the
 * configured resolvers (dns01.resolvers, else preflight.resolvers) answer the value, bounded by
 * dns01.propagationTimeoutMs, and records how long it took; a run killed in between has its record removed by
 * `autossl recover` (an undo step). certbot's own renewals go through the same hooks, so wildcards renew unattended.
 *
 * Options: { token | tokenFile | tokenEnv, zones?, apiBase?, maxRetryWaitMs?, timeoutMs?, retries?, ttl? }.
 * The token needs Zone:Zone:Read and Zone:DNS:Edit.
 */
import { AutoSslError, definePlugin, STAGE, type DnsRecord, type DnsSolver } from 'autossl';
import type { CloudflareClient } from '../cloudflare/client.js';
import { cloudflareOptions, lazyClient, manages, type CloudflareOptions } from '../cloudflare/options.js';

export const PLUGIN_NAME = 'cloudflare-dns';

interface DnsOptions extends CloudflareOptions {
  /** TTL of the TXT records: 60 s (the lowest Cloudflare allows outside Enterprise), or 1 (automatic). */
  ttl: number;
}

/** The solver certbot's hooks use: one TXT record per value, in the zone holding the name. */
export function cloudflareSolver(client: () => CloudflareClient, ttl = 60): DnsSolver {
  return {
    name: PLUGIN_NAME,
    async present(record: DnsRecord) {
      const c = client();
      const zone = await c.findZone(record.domain);
      await c.createTxt(zone.id, record.fqdn, record.value, { ttl, comment: 'autossl: ACME DNS-01 challenge (removed after validation)' });
    },
    async cleanup(record: DnsRecord) {
      const c = client();
      const zone = await c.findZone(record.domain);
      // only this value: the other of an apex + wildcard order may still be needed
      const mine = (await c.listRecords(zone.id, { type: 'TXT', name: record.fqdn })).filter((r) => r.content.replace(/^"|"$/g, '') === record.value);
      for (const r of mine) {
        try {
          await c.deleteRecord(zone.id, r.id);
        } catch (error) {
          if ((error as AutoSslError).code !== 'CLOUDFLARE_RECORD_NOT_FOUND') throw error; // gone already: fine
        }
      }
    },
  };
}

export default definePlugin<DnsOptions>({
  name: PLUGIN_NAME,
  options(raw) {
    const base = cloudflareOptions(PLUGIN_NAME, raw, ['ttl']);
    const ttl = raw.ttl ?? 60;
    if (typeof ttl !== 'number' || !(ttl === 1 || (Number.isInteger(ttl) && ttl >= 60 && ttl <= 86_400))) {
      throw new AutoSslError('PLUGIN_LOAD_FAILED', `${PLUGIN_NAME}: "ttl" must be 1 (automatic) or 60 to 86400 seconds.`);
    }
    return { ...base, ttl };
  },
  apply(hooks, api) {
    const client = lazyClient(api.options);
    const solver = cloudflareSolver(client, api.options.ttl);
    // before the built-in webroot challenge: this answers only dns-01 sites in its zones
    hooks.challenge.tapPromise({ name: PLUGIN_NAME, stage: STAGE.BUILTIN - 10 }, async (ctx) => {
      if (ctx.plan.challenge !== 'dns-01' || !manages(api.options, ctx.domain)) return undefined;
      return { type: 'dns-01', solver };
    });
  },
});
