/**
 * autossl:cloudflare-proxy: issue over HTTP-01 for names behind Cloudflare's proxy ("orange cloud"), which would
 * otherwise answer the CA's request itself. On a CLOUDFLARE_PROXIED finding for a name in its zones, it:
 *  1. records an undo step first (these record ids, their type and content, to be proxied again), then
 *  2. PATCHes `proxied: false` on every proxied A/AAAA/CNAME record of the name (Cloudflare treats a name as
 *     proxied when any of them is), and
 *  3. waits until the resolvers pre-flight uses answer addresses outside Cloudflare's ranges (proxied records
 *     have a 300 s TTL; the wait is bounded by `propagationTimeoutMs` and its time is reported), then checks
 *     they are this server's (DNS_MISMATCH otherwise);
 * the run then goes on over HTTP-01, and the undo step proxies the records again when it ends, on success and on
 * failure. A process killed in between is restored by `autossl recover` and by the next start of any command
 * that changes things (the agent's too). A record someone changed meanwhile (other content or type, deleted) is
 * left alone and reported. Renewals toggle the same way around certbot's own run (beforeRenew / afterRenew).
 *
 * Options: { token | tokenFile | tokenEnv, zones?, apiBase?, maxRetryWaitMs?, timeoutMs?, retries?,
 * propagationTimeoutMs? }. The token needs Zone:Zone:Read and Zone:DNS:Edit.
 */
import dns from 'node:dns';
import os from 'node:os';
import {
  AutoSslError,
  cloudflareMatcher,
  definePlugin,
  normalizeDomain,
  STAGE,
  type AutoSslConfig,
  type DomainContext,
  type JsonValue,
  type PluginApi,
  type RenewEvent,
} from 'autossl';
import type { CloudflareClient, DnsRecord as CfRecord } from '../cloudflare/client.js';
import { cloudflareOptions, lazyClient, manages, type CloudflareOptions } from '../cloudflare/options.js';

export const PLUGIN_NAME = 'cloudflare-proxy';
const UNDO_KIND = 'reproxy';
const PROXIABLE = new Set(['A', 'AAAA', 'CNAME']);

interface ProxyOptions extends CloudflareOptions {
  propagationTimeoutMs: number;
}

/** What the undo step needs to proxy the records again, and to see whether someone changed them meanwhile. */
interface Reproxy {
  zoneId: string;
  zoneName: string;
  name: string;
  records: Array<{ id: string; type: string; content: string }>;
}

function ourAddresses(config: Readonly<AutoSslConfig>): Set<string> {
  const list = config.serverAddresses.length
    ? config.serverAddresses
    : Object.values(os.networkInterfaces())
        .flat()
        .filter((i) => i && !i.internal)
        .map((i) => i!.address);
  return new Set(list.map((a) => a.toLowerCase().replace(/^::ffff:/, '')));
}

async function addressesOf(config: Readonly<AutoSslConfig>, name: string): Promise<string[]> {
  const resolver = new dns.promises.Resolver({ timeout: config.preflight.timeoutMs, tries: 1 });
  if (config.preflight.resolvers.length) resolver.setServers(config.preflight.resolvers);
  const [a, aaaa] = await Promise.all([resolver.resolve4(name).catch(() => [] as string[]), resolver.resolve6(name).catch(() => [] as string[])]);
  return [...a, ...aaaa].map((x) => x.toLowerCase());
}

/** Turns the proxy off for one name (undo step first); returns the records changed, or null when none was proxied. */
async function greyCloud(api: PluginApi<ProxyOptions>, client: CloudflareClient, scope: DomainContext | RenewEvent, name: string): Promise<Reproxy | null> {
  const zone = await client.findZone(name);
  const records = (await client.listRecords(zone.id, { name })).filter((r: CfRecord) => PROXIABLE.has(r.type) && r.proxied);
  if (!records.length) return null;
  const payload: Reproxy = { zoneId: zone.id, zoneName: zone.name, name, records: records.map((r) => ({ id: r.id, type: r.type, content: r.content })) };
  // recorded before anything changes: a crash after the first PATCH is still put back
  await api.undo.record(scope, UNDO_KIND, payload as unknown as JsonValue, { when: 'always' });
  for (const r of records) await client.patchRecord(zone.id, r.id, { proxied: false });
  return payload;
}

/** Waits until DNS answers no Cloudflare address for the name; returns the answers and how long it took. */
async function waitForOrigin(
  config: Readonly<AutoSslConfig>,
  name: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<{ addresses: string[]; ms: number }> {
  const isCloudflare = cloudflareMatcher(config.preflight.cloudflareRanges);
  const started = Date.now();
  let addresses: string[] = [];
  for (;;) {
    addresses = await addressesOf(config, name);
    if (addresses.length && !addresses.some(isCloudflare)) return { addresses, ms: Date.now() - started };
    if (Date.now() - started >= timeoutMs || signal?.aborted) {
      throw new AutoSslError(
        'DNS_PROPAGATION_TIMEOUT',
        `${name} still resolves to ${addresses.join(', ') || 'nothing'} ${Math.round((Date.now() - started) / 1000)} s after its Cloudflare proxy was turned off (proxied records have a 300 s TTL).`,
        {
          hint: 'Raise the plugin\'s "propagationTimeoutMs", or point preflight.resolvers at resolvers that do not cache (or set preflight.authoritative). The proxy was turned back on.',
        },
      );
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function reproxy(api: PluginApi<ProxyOptions>, client: () => CloudflareClient, payload: Reproxy): Promise<void> {
  const c = client();
  for (const saved of payload.records) {
    let now: CfRecord;
    try {
      now = await c.getRecord(payload.zoneId, saved.id);
    } catch (error) {
      if ((error as AutoSslError).code === 'CLOUDFLARE_RECORD_NOT_FOUND') {
        api.log(`${saved.type} ${payload.name} (record ${saved.id}) was deleted meanwhile: left as it is, not proxied again`);
        continue;
      }
      throw error; // the step stays pending: recover and the next run try again
    }
    if (now.type !== saved.type || now.content !== saved.content) {
      api.log(
        `${saved.type} ${payload.name} (record ${saved.id}) was changed meanwhile (now ${now.type} ${now.content}, was ${saved.content}): left as it is, not proxied again`,
      );
      continue;
    }
    if (now.proxied) continue;
    await c.patchRecord(payload.zoneId, saved.id, { proxied: true });
    api.log(`${saved.type} ${payload.name} proxied by Cloudflare again`);
  }
}

export default definePlugin<ProxyOptions>({
  name: PLUGIN_NAME,
  options(raw) {
    const base = cloudflareOptions(PLUGIN_NAME, raw, ['propagationTimeoutMs']);
    const t = raw.propagationTimeoutMs ?? 330_000;
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t > 3_600_000)
      throw new AutoSslError('PLUGIN_LOAD_FAILED', `${PLUGIN_NAME}: "propagationTimeoutMs" must be an integer from 0 to 3600000.`);
    return { ...base, propagationTimeoutMs: t };
  },
  apply(hooks, api) {
    const client = lazyClient(api.options);
    api.undo.handle(UNDO_KIND, (payload) => reproxy(api, client, payload as unknown as Reproxy));

    hooks.findings.tapPromise({ name: PLUGIN_NAME, stage: STAGE.BUILTIN }, async (ctx) => {
      if (ctx.plan.challenge !== 'http-01') return;
      const proxied = ctx.findings.filter((f) => f.code === 'CLOUDFLARE_PROXIED' && !f.resolved && f.name && manages(api.options, f.name));
      const ours = ourAddresses(api.config);
      for (const finding of proxied) {
        const name = finding.name!;
        const changed = await greyCloud(api, client(), ctx, name);
        if (!changed) {
          api.log(
            `${name} resolves to Cloudflare, but no proxied A/AAAA/CNAME record of that name is in zone ${(await client().findZone(name)).name} (a proxied wildcard record?): left to the finding`,
            ctx,
          );
          continue;
        }
        api.log(`${name}: Cloudflare proxy turned off on ${changed.records.map((r) => r.type).join(', ')} (turned back on when the run ends)`, ctx);
        const { addresses, ms } = await waitForOrigin(api.config, name, api.options.propagationTimeoutMs, ctx.signal);
        ctx.emit({
          stage: 'findings',
          plugin: PLUGIN_NAME,
          status: 'info',
          message: `${name} resolves to ${addresses.join(', ')} ${(ms / 1000).toFixed(1)} s after the proxy was turned off`,
        });
        finding.resolved = true;
        const foreign = addresses.filter((a) => !ours.has(a.replace(/^::ffff:/, '')));
        if (foreign.length) {
          ctx.findings.push({
            check: 'dns',
            name,
            severity: 'error',
            code: 'DNS_MISMATCH',
            message: `${name} resolves to ${addresses.join(', ')} without Cloudflare's proxy, not to this server (${[...ours].join(', ')}).`,
          });
        }
      }
    });

    // renewals: certbot validates between beforeRenew and afterRenew; the undo steps recorded here run after afterRenew
    hooks.beforeRenew.tapPromise(PLUGIN_NAME, async (event) => {
      const due = event.lineages.filter((l) => l.due && (!event.certName || l.name === event.certName));
      const isCloudflare = cloudflareMatcher(api.config.preflight.cloudflareRanges);
      for (const lineage of due) {
        for (const raw of lineage.names) {
          if (raw.startsWith('*.') || !manages(api.options, raw)) continue;
          const site = api.config.sites.find((s) => s.domain === raw || s.aliases.includes(raw));
          if ((site?.challenge ?? api.config.defaults.challenge) !== 'http-01') continue;
          const name = normalizeDomain(raw);
          if (!(await addressesOf(api.config, name)).some(isCloudflare)) continue;
          const changed = await greyCloud(api, client(), event, name);
          if (!changed) continue;
          api.log(`${name}: Cloudflare proxy turned off for certbot's renewal (turned back on after it)`);
          await waitForOrigin(api.config, name, api.options.propagationTimeoutMs);
        }
      }
    });
  },
});
