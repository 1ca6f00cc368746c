/**
 * The preview service: commands that touch nothing. `check` runs pre-flight (the port-80 self-check with the
 * challenge location as issue would add it, on an in-memory copy); `preview` runs the real hooks on an in-memory copy
 * and shows the blocks and bytes; `dnsProvider` says which DNS-01 provider would answer for a name.
 */
import { normalizeDomain } from '../domain.js';
import { toAutoSslError } from '../errors.js';
import type { BlockInfo, ChallengePlan } from '../installer/installer.js';
import { port80Check } from '../stages/preflight.js';
import { applyEdits } from '../pipeline/apply.js';
import type { Kernel } from './core.js';
import { domainOf } from './issue-service.js';
import { mapBounded } from '../bounded.js';
import type { BlockRef, CheckResult, IssueOptions, PreviewResult } from './types.js';

export interface PreviewService {
  check(domains: readonly string[], options?: IssueOptions): Promise<CheckResult[]>;
  preview(domain: string, options?: IssueOptions): Promise<PreviewResult>;
  dnsProvider(domain: string): Promise<string | null>;
}

function blockRefs(located: Map<string, BlockInfo | null>): BlockRef[] {
  return [...located.entries()].map(([name, s]) =>
    s ? { name, file: s.file, line: s.line, serverNames: s.serverNames, listens: s.sockets } : { name, file: null },
  );
}

export function previewService(k: Kernel): PreviewService {
  const { config, hooks } = k;

  async function checkOne(domain: string, options: IssueOptions): Promise<CheckResult> {
    const started = performance.now();
    const { ctx } = k.context(domain, 'dry-run', options);
    try {
      ctx.plan = await hooks.plan.promise(ctx.plan, ctx);
      for (const note of ctx.plan.notes) ctx.findings.push({ check: 'names', severity: 'info', message: note });
      for (const message of leftOutNames(ctx.plan.names, ctx.plan.site.vhost))
        ctx.findings.push({
          check: 'names',
          severity: 'warning',
          message,
          hint: 'Add them as aliases, or give the site "blockNames": "cover", to put them on the certificate too.',
        });
      await hooks.preflight.promise(ctx);
      await hooks.findings.promise(ctx);
      if (!ctx.skipChecks.has('port80') && ctx.plan.challenge === 'http-01') {
        // the self-check with the challenge location as issue would add it, on an in-memory copy
        let webroot = config.challengeDir;
        let planned: ChallengePlan | undefined;
        const edits = await applyEdits(ctx, (snapshot) => {
          const plan = k.services.installer.planChallenge(snapshot, ctx.plan.names, {
            documentRoot: ctx.plan.site.documentRoot,
            fallbackWebroot: config.challengeDir,
            vhostFile: ctx.plan.site.vhost,
          });
          webroot = plan.webroot;
          planned = plan;
          return plan.edits;
        });
        if (planned) await k.services.installer.prepareChallenge(planned); // the self-check's token goes where an alias location reads
        await port80Check(ctx, webroot, edits.length > 0);
      }
    } catch (error) {
      const e = toAutoSslError(error);
      ctx.findings.push({
        check: e.code.startsWith('VHOST') || e.code.startsWith('NGINX') ? 'port80' : 'plugin',
        severity: 'error',
        code: e.code,
        message: e.message,
        hint: e.hint,
      });
    }
    return {
      domain,
      names: ctx.plan.names,
      ok: ctx.findings.every((f) => f.severity !== 'error' || f.resolved),
      findings: ctx.findings,
      ms: performance.now() - started,
    };
  }

  /** What `check` says about a block's other names: they keep answering over HTTP, without redirect or HSTS. */
  function leftOutNames(names: readonly string[], vhostFile?: string): string[] {
    const { installer } = k.services;
    let config: unknown;
    try {
      config = installer.load();
    } catch {
      return [];
    }
    return installer
      .uncoveredNames(config, names, vhostFile)
      .map(
        ({ block, names: left }) =>
          `${block.file}:${block.line} also answers ${left.join(', ')}, which the certificate will not cover: they keep answering as before, without redirect or HSTS`,
      );
  }

  return {
    async check(domains, options = {}) {
      const names = domains.map((d) => domainOf(k, d));
      return mapBounded(names, options.concurrency ?? config.preflight.concurrency, (d) => checkOne(d, options));
    },
    async preview(input, options = {}) {
      const domain = domainOf(k, input);
      const { ctx, abort } = k.context(domain, 'preview', options);
      const result = await k.run(ctx, abort);
      let blocks: PreviewResult['blocks'] = { http: [], https: [] };
      try {
        const { installer } = k.services;
        const located = installer.locate(installer.load(), result.names.length ? result.names : [domain], { vhostFile: ctx.plan.site.vhost });
        blocks = { http: blockRefs(located.http), https: blockRefs(located.https) };
      } catch (error) {
        if (result.ok) return { domain, names: result.names, ok: false, error: toAutoSslError(error), blocks, files: [], notes: result.notes };
      }
      return { domain, names: result.names, ok: result.ok, error: result.error, blocks, files: result.files, notes: result.notes };
    },
    async dnsProvider(input) {
      const domain = normalizeDomain(input, { allowWildcard: true });
      const { ctx, abort } = k.context(domain, 'dns-hook', { plan: { challenge: 'dns-01' } });
      const result = await k.run(ctx, abort);
      return result.ok && ctx.challenge?.type === 'dns-01' && ctx.challenge.solver ? ctx.challenge.solver.name : null;
    },
  };
}
