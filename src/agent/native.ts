/**
 * autossl's own routes (/v1/...), for panels written against autossl: many sites per request with their own
 * settings, jobs to poll, every certificate's state, and job progress pushed as server-sent events.
 */
import { AutoSslError, quote } from '../errors.js';
import { documentRootFor, panelDomain, panelUsername } from './input.js';
import { openapiDocument } from './routes.js';
import type { AgentEvent } from './intake.js';
import type { Handler } from './server.js';

type Body = Record<string, unknown>;

export const nativeHandlers: Record<string, Handler> = {
  async 'v1.issue'(req, reply, ctx) {
    const body = req.body as Body;
    const domains: string[] = [];
    for (const d of (body.domains as unknown[] | undefined) ?? []) domains.push(panelDomain(d, 'domains[]'));
    const sites: Array<Record<string, unknown> & { domain: string }> = [];
    for (const raw of (body.sites as Body[] | undefined) ?? []) {
      const domain = panelDomain(raw.domain, 'sites[].domain');
      const username = panelUsername(raw.username);
      // nginx expands "$..." even inside quotes: a root with one would depend on the request
      if (raw.documentRoot !== undefined && (typeof raw.documentRoot !== 'string' || !raw.documentRoot.startsWith('/') || raw.documentRoot.includes('$'))) {
        throw new AutoSslError('AGENT_BAD_REQUEST', `sites[].documentRoot of ${domain} must be an absolute path without "$", got ${quote(raw.documentRoot)}.`);
      }
      const documentRoot = (raw.documentRoot as string | undefined) ?? documentRootFor(ctx.config.agent.documentRoot, username, domain);
      const { username: _u, ...rest } = raw;
      void _u;
      sites.push({ ...rest, domain, ...(documentRoot ? { documentRoot } : {}) });
      domains.push(domain);
    }
    const unique = [...new Set(domains)];
    if (!unique.length) throw new AutoSslError('AGENT_BAD_REQUEST', 'Give "domains" or "sites" (at least one).');
    // every site is validated before any is registered or run: one bad site refuses the request
    for (const site of sites) {
      try {
        ctx.validateSite(site);
      } catch (error) {
        throw new AutoSslError('AGENT_BAD_REQUEST', `Site ${site.domain}: ${(error as Error).message}`);
      }
    }
    const running = unique.find((d) => ctx.intake.jobOf(d));
    if (running) throw new AutoSslError('JOB_RUNNING', `${running} is being issued now (job ${ctx.intake.jobOf(running)}).`);
    for (const site of sites) await ctx.engine.registerSite(site, 'api'); // only once nothing refuses the request
    const { jobId, recorded } = ctx.intake.run(unique, { force: body.force === true });
    await recorded;
    return reply.code(202).send({ job_id: jobId, domains: unique });
  },

  async 'v1.jobs'(req, _reply, ctx) {
    const limit = Math.min(200, Math.max(1, Number((req.query as Body).limit ?? 20) || 20));
    return { jobs: await ctx.engine.jobs(limit), queue: ctx.intake.queue };
  },

  async 'v1.job'(req, _reply, ctx) {
    const id = (req.params as Body).id as string;
    const job = await ctx.engine.job(id);
    if (!job) throw new AutoSslError('AGENT_NOT_FOUND', `There is no job ${quote(id)}.`, { hint: 'GET /v1/jobs lists the recent ones.' });
    return job;
  },

  async 'v1.certificates'(_req, _reply, ctx) {
    const report = await ctx.engine.status();
    return { attention: report.attention, certificates: report.certificates, pendingNotifications: report.pendingNotifications, warnings: report.warnings };
  },

  async 'v1.events'(req, reply, ctx) {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(': autossl agent events\n\n');
    const send = (e: AgentEvent): void => {
      res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    };
    ctx.events.on('event', send);
    const beat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    let forget = (): void => undefined;
    const close = (): void => {
      clearInterval(beat);
      ctx.events.off('event', send);
      forget();
    };
    req.raw.on('close', close);
    forget = ctx.onStop(() => {
      close();
      res.end();
    });
  },

  async 'v1.openapi'(_req, _reply, ctx) {
    return openapiDocument(ctx.version);
  },
};
