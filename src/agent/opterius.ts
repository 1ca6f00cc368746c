/**
 * The Opterius panel's agent calls (its AgentService / SslController / SslOverviewController), answered by the
 * engine. The panel reads `exists` from /ssl/status, `error` from any failure, and `step`/`message`/`error` from
 * the wildcard progress; everything else here is what it (or an admin reading the answers) would otherwise guess.
 */
import fs from 'node:fs';
import os from 'node:os';
import { AutoSslError } from '../errors.js';
import type { DomainCertificate } from '../renewal/certificate.js';
import { documentRootFor, panelDomain, panelEmail, panelUsername } from './input.js';
import { fit } from './wildcard.js';
import type { AgentContext, Handler } from './server.js';

type Body = Record<string, unknown>;

/** The OS name and version as the panel stores them (servers.os, servers.os_version), from /etc/os-release. */
function osRelease(): { os: string; version: string } {
  try {
    const text = fs.readFileSync('/etc/os-release', 'utf8');
    const get = (key: string): string | undefined => new RegExp(`^${key}="?([^"\\n]*)"?$`, 'm').exec(text)?.[1];
    return { os: get('NAME') ?? os.type(), version: get('VERSION_ID') ?? get('VERSION') ?? os.release() };
  } catch {
    return { os: os.type(), version: os.release() };
  }
}

/** /ssl/status's answer for a domain (also what renew and upload answer with). */
export async function statusOf(ctx: AgentContext, domain: string): Promise<Record<string, unknown>> {
  const c: DomainCertificate = await ctx.engine.certificate(domain);
  let state: string = c.state === 'mismatch' ? 'missing' : c.state;
  let lastError = c.lastError;
  if (c.state === 'mismatch')
    lastError = {
      code: 'TLS_VERIFY_FAILED',
      message: `nginx serves a certificate for ${c.names.join(', ')} (${c.servedBy}), which does not cover ${domain}`,
      at: null,
    };
  // no certificate yet: why the last issue attempt for the domain failed (the panel otherwise waits forever)
  const last = await ctx.store.attempts.last(domain);
  if (!c.exists && last && !last.ok && (!c.notAfter || last.at > Date.now() - 86_400_000)) {
    lastError = { code: last.code ?? null, message: last.message ?? null, at: new Date(last.at).toISOString() };
    if (state === 'missing') state = 'failing';
  }
  const jobId = ctx.intake.jobOf(domain);
  // a run in progress may have written the vhost before nginx serves it (or before a rollback): what was served counts
  const exists = c.exists && (ctx.intake.existedBefore(domain) ?? true);
  return {
    domain,
    exists,
    state,
    expires_at: c.notAfter,
    days_left: c.daysLeft === null ? null : Math.floor(c.daysLeft),
    names: c.names,
    issuer: c.issuer,
    serial: c.serial,
    custom: c.lineage === 'custom',
    last_error: lastError,
    ari: c.ari,
    job: jobId ? { id: jobId, state: 'running' } : null,
  };
}

/** Refuses a domain no server block answers, before anything runs (a request never creates a vhost). */
function needVhost(domain: string, c: DomainCertificate): void {
  if (!c.vhost)
    throw new AutoSslError('VHOST_NOT_FOUND', `No server block in the nginx config answers ${domain}.`, {
      hint: `Create the domain's vhost (server_name ${domain}) first, then ask again. Nothing was done.`,
    });
}

/** The site a panel request describes: the document root template filled, a wildcard kept as it was registered. */
async function registerSite(ctx: AgentContext, domain: string, username: string | undefined, extra: Record<string, unknown> = {}): Promise<void> {
  const documentRoot = documentRootFor(ctx.config.agent.documentRoot, username, domain);
  const known = ctx.engine.config.sites.find((s) => s.domain === domain);
  if (!documentRoot && !Object.keys(extra).length) return;
  const merged = { ...(known ? JSON.parse(JSON.stringify(known)) : {}), domain, ...(documentRoot ? { documentRoot } : {}), ...extra };
  await ctx.engine.registerSite(merged, 'agent');
}

export const opteriusHandlers: Record<string, Handler> = {
  async health(_req, _reply, ctx) {
    const { os: name, version } = osRelease();
    return {
      status: 'ok',
      os: name,
      version,
      arch: os.arch(),
      hostname: os.hostname(),
      uptime: String(Math.round(os.uptime())),
      agent_version: `autossl ${ctx.version}`,
      queue: ctx.intake.queue,
    };
  },

  async 'ssl.status'(req, _reply, ctx) {
    return statusOf(ctx, panelDomain((req.body as Body).domain));
  },

  async 'ssl.issue-async'(req, reply, ctx) {
    const body = req.body as Body;
    const domain = panelDomain(body.domain);
    panelEmail(body.email);
    const username = panelUsername(body.username);
    // a name a valid wildcard certificate already serves needs no order of its own
    const now = await ctx.engine.certificate(domain, { fresh: true });
    needVhost(domain, now);
    const parent = domain.split('.').slice(1).join('.');
    if (now.exists && now.state === 'ok' && now.names.includes(`*.${parent}`) && !now.names.includes(domain)) {
      return reply.code(200).send({ status: 'exists', domain, names: now.names });
    }
    if (ctx.intake.jobOf(domain) === null && ctx.intake.queued >= ctx.config.agent.maxQueued) {
      reply.header('retry-after', '60');
      throw new AutoSslError(
        'AGENT_QUEUE_FULL',
        `The agent holds ${ctx.intake.queued} domains to issue (agent.maxQueued ${ctx.config.agent.maxQueued}); ${domain} was not queued.`,
      );
    }
    await registerSite(ctx, domain, username);
    const { jobId, recorded } = ctx.intake.add(domain, now.exists);
    await recorded;
    return reply.code(202).send({ status: 'queued', job_id: jobId, domain, queue: ctx.intake.queue });
  },

  async 'ssl.renew'(req, reply, ctx) {
    const domain = panelDomain((req.body as Body).domain);
    const now = await ctx.engine.certificate(domain, { fresh: true });
    needVhost(domain, now);
    if (now.lineage === 'custom') {
      throw new AutoSslError(
        'CERT_CUSTOM',
        `${domain} serves an uploaded certificate (${now.names.join(', ')}, until ${now.notAfter}), which autossl does not renew.`,
      );
    }
    if (ctx.intake.jobOf(domain)) throw new AutoSslError('JOB_RUNNING', `${domain} is being issued now (job ${ctx.intake.jobOf(domain)}).`);
    // a certificate issued less than a day ago is served again, not ordered again (Let's Encrypt's duplicate limit)
    const fresh = now.exists && now.notBefore !== null && Date.now() - Date.parse(now.notBefore) < 86_400_000;
    const run = ctx.intake.run([domain], { force: !fresh, existed: new Set(now.exists ? [domain] : []) });
    await run.recorded;
    const result = await Promise.race([
      run.results.then((r) => r[0]!),
      new Promise<null>((r) => setTimeout(() => r(null), ctx.config.agent.syncTimeoutMs).unref()),
    ]);
    if (!result) return reply.code(202).send({ status: 'running', job_id: run.jobId, domain });
    if (!result.ok) throw result.error!;
    if (fresh && result.reused) {
      // the panel shows "Renewed" for any 200: say why nothing was renewed, in the error it shows
      const hours = Math.max(0, Math.floor((Date.now() - Date.parse(now.notBefore!)) / 3_600_000));
      throw new AutoSslError(
        'CERT_RECENTLY_ISSUED',
        `Not renewed: the certificate of ${domain} was issued ${hours ? `${hours} h` : 'less than an hour'} ago (serial ${now.serial}, until ${now.notAfter}) and is served; a new one is not ordered within a day of the last.`,
      );
    }
    return { ...(await statusOf(ctx, domain)), renewed: !result.reused, job_id: run.jobId };
  },

  async 'ssl.delete'(req, _reply, ctx) {
    const body = req.body as Body;
    const domain = panelDomain(body.domain);
    panelUsername(body.username);
    // asked for a moment ago and not started yet: it simply leaves its batch; running: its run ends first (its
    // certificate installed or rolled back), then the delete takes it off; answering 409 left it on HTTPS
    ctx.intake.withdraw(domain);
    const running = ctx.intake.settled(domain);
    if (running) {
      const ended = await Promise.race([
        running.then(() => true),
        new Promise<false>((r) => setTimeout(() => r(false), ctx.config.agent.syncTimeoutMs).unref()),
      ]);
      if (!ended || ctx.intake.jobOf(domain))
        throw new AutoSslError(
          'JOB_RUNNING',
          `${domain} is being issued now (job ${ctx.intake.jobOf(domain)}) and did not finish within ${ctx.config.agent.syncTimeoutMs / 1000} s; send the delete again once it has.`,
        );
    }
    const result = await ctx.engine.uninstall(domain);
    if (!result.ok) throw result.error!;
    return { status: 'deleted', domain, files: result.files.map((f) => f.file), deleted: result.deleted, kept: result.kept, notes: result.notes };
  },

  async 'ssl.upload'(req, _reply, ctx) {
    const body = req.body as Body;
    const domain = panelDomain(body.domain);
    panelUsername(body.username);
    if (ctx.intake.jobOf(domain)) throw new AutoSslError('JOB_RUNNING', `${domain} is being issued now (job ${ctx.intake.jobOf(domain)}).`);
    needVhost(domain, await ctx.engine.certificate(domain, { fresh: true }));
    const result = await ctx.engine.installCertificate(domain, { certificate: body.certificate, privateKey: body.private_key });
    if (!result.ok) throw result.error!;
    return { ...(await statusOf(ctx, domain)), status: 'installed', notes: result.notes };
  },

  async 'ssl.wildcard.start'(req, reply, ctx) {
    const body = req.body as Body;
    const domain = panelDomain(body.domain);
    panelEmail(body.email);
    const username = panelUsername(body.username);
    needVhost(domain, await ctx.engine.certificate(domain, { fresh: true }));
    const provider = await ctx.engine.dnsProvider(domain);
    if (!provider) {
      throw new AutoSslError(
        'DNS_PROVIDER_MISSING',
        `A wildcard certificate for *.${domain} needs the DNS-01 challenge, and no DNS provider plugin is configured for ${domain}.`,
        {
          hint: 'Add a DNS provider plugin to the config\'s "plugins" (autossl:cloudflare-dns for a zone on Cloudflare), restart the agent, then start again.',
        },
      );
    }
    const fromFile = ctx.engine.config.sites.find((s) => s.domain === domain && ctx.fileSites.has(s.domain));
    if (fromFile && !(fromFile.aliases.includes(`*.${domain}`) && (fromFile.challenge ?? ctx.config.defaults.challenge) === 'dns-01')) {
      throw new AutoSslError(
        'CONFIG_INVALID',
        `${domain} is a site of the config file without "*.${domain}" and DNS-01; the agent does not override the file.`,
        { hint: `Add "*.${domain}" to its aliases and "challenge": "dns-01" in the config file, restart the agent, then start again.` },
      );
    }
    const known = ctx.engine.config.sites.find((s) => s.domain === domain);
    await registerSite(ctx, domain, username, { aliases: [...new Set([`*.${domain}`, ...(known?.aliases ?? [])])], challenge: 'dns-01' });
    const jobId = ctx.wildcard.start(domain);
    return reply.code(202).send({ status: 'started', job_id: jobId, domain });
  },

  async 'ssl.wildcard.progress'(req, _reply, ctx) {
    let domain: string;
    try {
      domain = panelDomain((req.query as Body).domain);
    } catch (error) {
      const message = fit((error as Error).message);
      return { step: 'error', message, error: message };
    }
    const live = await ctx.wildcard.progress(domain);
    if (live) return live;
    // not started by this agent process (a restart): say what is known
    const c = await ctx.engine.certificate(domain);
    if (c.exists && c.names.includes(`*.${domain}`))
      return { step: 'done', message: fit(`A wildcard certificate for ${c.names.join(', ')} is installed, until ${c.notAfter}`) };
    const job = ctx.intake.jobOf(domain);
    if (job) return { step: 'starting', message: 'Resumed after an agent restart', job_id: job };
    const message = `No wildcard issuance of ${domain} is running (the agent may have restarted); start it again.`;
    return { step: 'error', message: fit(message), error: fit(message) };
  },
};
