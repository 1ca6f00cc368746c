/**
 * certbot's DNS-01 manual hooks: the TXT record created through the site's DNS solver and waited for at the
 * configured resolvers (auth), removed again (cleanup), with an undo step in case certbot dies in between.
 */
import { siteOfName } from '../config/schema.js';
import { normalizeDomain } from '../domain.js';
import type { EngineCore } from '../engine.js';
import { AutoSslError, toAutoSslError } from '../errors.js';
import type { DnsRecord, DnsSolver } from '../pipeline/context.js';
import type { DnsPhase, Store } from '../store/store.js';
import type { UndoService } from '../undo.js';
import { waitForTxt } from '../preflight/dns.js';
import { certbotRun } from './hook-process.js';

const VALIDATION = /^[A-Za-z0-9_-]{1,256}$/;

/** Validates certbot's CERTBOT_DOMAIN / CERTBOT_VALIDATION before anything runs. */
export function validateDnsEnv(env: NodeJS.ProcessEnv): { domain: string; value: string } {
  const refuse = (why: string): never => {
    throw new AutoSslError('HOOK_INPUT_INVALID', `Refusing the DNS hook: ${why}. Nothing was touched.`);
  };
  const raw = env.CERTBOT_DOMAIN;
  const value = env.CERTBOT_VALIDATION;
  if (!raw) refuse('CERTBOT_DOMAIN is not set');
  if (!value) refuse('CERTBOT_VALIDATION is not set');
  if (!VALIDATION.test(value!)) refuse(`CERTBOT_VALIDATION ${JSON.stringify(value!.slice(0, 80))} is not a base64url key authorization digest`);
  let domain: string;
  try {
    domain = normalizeDomain(raw);
  } catch (error) {
    return refuse(`CERTBOT_DOMAIN is not a domain: ${(error as Error).message}`);
  }
  return { domain, value: value! };
}

/** The DNS-01 solver the site of `domain` uses: its plan and challenge hooks, run as for an issue. */
async function solverFor(core: EngineCore, domain: string): Promise<DnsSolver> {
  const site = siteOfName(core.config, domain) ?? siteOfName(core.config, `*.${domain}`);
  if (!site)
    throw new AutoSslError('HOOK_INPUT_INVALID', `No site in the config has the name ${domain} (or *.${domain}); certbot asked for its DNS record.`, {
      hint: 'Add the site back to the config, or delete the lineage (certbot delete --cert-name ...).',
    });
  const { ctx, abort } = core.context(site.domain, 'dns-hook');
  const run = await core.run(ctx, abort);
  if (!run.ok) throw run.error ?? new AutoSslError('INTERNAL', 'The challenge stage failed.');
  if (ctx.challenge?.type !== 'dns-01' || !ctx.challenge.solver)
    throw new AutoSslError('DNS_PROVIDER_MISSING', `${site.domain} has no DNS provider: no plugin answered its dns-01 challenge.`);
  return ctx.challenge.solver;
}

/** Waits until the configured resolvers answer the TXT value (a bounded wait; certbot asks the CA right after). */
async function waitForPropagation(core: EngineCore, record: DnsRecord): Promise<void> {
  const { dns01, preflight } = core.config;
  const servers = dns01.resolvers.length ? dns01.resolvers : preflight.resolvers;
  const { visible, seen } = await waitForTxt(record.fqdn, record.value, {
    servers,
    queryTimeoutMs: preflight.timeoutMs,
    timeoutMs: dns01.propagationTimeoutMs,
  });
  if (visible) return;
  throw new AutoSslError(
    'DNS_PROPAGATION_TIMEOUT',
    `The TXT record ${record.fqdn} = ${JSON.stringify(record.value)} was not visible ${servers.length ? `at ${servers.join(', ')}` : 'to the system resolver'} within ${Math.round(dns01.propagationTimeoutMs / 1000)} s${seen.length ? ` (it answers ${seen.map((v) => JSON.stringify(v)).join(', ')})` : ''}.`,
  );
}

const DNS_UNDO = { plugin: 'dns-01', kind: 'txt' };

export type { DnsPhase };

/** Where certbot's DNS hooks are (they run in processes of their own): for the agent's wildcard progress. */
async function progress(store: Store, domain: string, phase: DnsPhase, message: string): Promise<void> {
  try {
    await store.dnsProgress.set(domain, { phase, message, at: Date.now() });
  } catch {
    // a report only
  }
}

/** The last phase certbot's DNS hooks reported for a name (without "*."), if any. */
export async function dnsProgress(store: Store, domain: string): Promise<{ phase: DnsPhase; message: string; at: number } | null> {
  try {
    return await store.dnsProgress.get(domain);
  } catch {
    return null;
  }
}

/** Registers the undo step that removes a TXT record left behind by a certbot run that died before its cleanup hook. */
export function applyDnsUndo(undo: UndoService, core: () => EngineCore): void {
  undo.handle(DNS_UNDO.plugin, DNS_UNDO.kind, async (payload) => {
    const record = payload as unknown as DnsRecord;
    const solver = await solverFor(core(), record.domain);
    await solver.cleanup(record);
  });
}

export async function dnsHook(core: EngineCore, phase: 'auth' | 'cleanup', env: NodeJS.ProcessEnv): Promise<void> {
  const { domain, value } = validateDnsEnv(env);
  const record: DnsRecord = { domain, fqdn: `_acme-challenge.${domain}`, value };
  const solver = await solverFor(core, domain);
  const run = certbotRun();
  const store = core.services.state();
  if (phase === 'auth') {
    // if certbot dies before its cleanup hook, recovery removes the record
    await core.services.undo.record(DNS_UNDO.plugin, run.runId, DNS_UNDO.kind, { ...record }, 'always', run.owner);
    await progress(store, domain, 'dns_challenge', `Creating the TXT record ${record.fqdn} (${solver.name})`);
    await solver.present(record);
    const started = Date.now();
    await progress(store, domain, 'dns_propagation', `Waiting for ${record.fqdn} to be visible`);
    try {
      await waitForPropagation(core, record);
    } catch (error) {
      await progress(store, domain, 'dns_propagation', toAutoSslError(error).message);
      throw error;
    }
    const message = `TXT ${record.fqdn} visible after ${Date.now() - started} ms`;
    await progress(store, domain, 'le_verify', `${message}; the CA checks it now`);
    core.emit({ domain, stage: 'dns-01', plugin: solver.name, status: 'info', message });
    return;
  }
  await solver.cleanup(record);
  for (const step of await store.undo.list({ runId: run.runId, state: 'pending' })) {
    const p = JSON.parse(step.payload) as DnsRecord;
    if (step.plugin === DNS_UNDO.plugin && p.fqdn === record.fqdn && p.value === record.value) await store.undo.finish(step.id);
  }
}
