/**
 * The engine: one per process. Holds the hooks with the built-in stages and the configured plugins applied,
 * the shared services, and runs domains through the pipeline (several at once, each with its own context).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AutoSslConfig } from './config/schema.js';
import { siteFor } from './config/schema.js';
import { normalizeDomain } from './domain.js';
import { AutoSslError, toAutoSslError } from './errors.js';
import { NginxControl } from './nginx/control.js';
import { EditTransaction, recoverJournal } from './nginx/transaction.js';
import { NginxTree } from './nginx/tree.js';
import { createHooks, type Hooks } from './pipeline/hooks.js';
import type { DomainContext, Plugin, Services, StageEvent } from './pipeline/context.js';
import { instrumentHooks, runDomain, type DomainResult } from './pipeline/pipeline.js';
import { BUILTIN_PLUGINS } from './stages/index.js';

export interface IssueOptions {
  dryRun?: boolean;
  force?: boolean;
  skipChecks?: string[];
  /** Domains run at once (certbot calls are queued per certbot directory set regardless). */
  concurrency?: number;
  onEvent?: (event: StageEvent) => void;
}

export interface AutoSsl {
  readonly config: AutoSslConfig;
  readonly hooks: Hooks;
  readonly nginx: NginxControl;
  issue(domains: readonly string[], options?: IssueOptions): Promise<DomainResult[]>;
  /** Restores files left half-edited by a process that died; returns them. */
  recover(): Promise<string[]>;
  loadTree(): NginxTree;
}

function isPlugin(value: unknown): value is Plugin {
  return typeof value === 'object' && value !== null && typeof (value as Plugin).name === 'string' && typeof (value as Plugin).apply === 'function';
}

/** Imports a plugin module: its default export is a plugin object, or a factory taking the options. */
export async function loadPlugin(spec: { module: string; options: Record<string, unknown> }): Promise<Plugin> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(path.isAbsolute(spec.module) ? pathToFileURL(spec.module).href : spec.module)) as Record<string, unknown>;
  } catch (error) {
    throw new AutoSslError('PLUGIN_LOAD_FAILED', `Cannot load plugin ${spec.module}: ${(error as Error).message.split('\n')[0]}`, { cause: error, details: { plugin: spec.module } });
  }
  let candidate = mod.default ?? mod.plugin;
  if (typeof candidate === 'function' && !isPlugin(candidate)) candidate = await (candidate as (o: unknown) => unknown)(spec.options);
  if (!isPlugin(candidate)) {
    throw new AutoSslError('PLUGIN_LOAD_FAILED', `Plugin ${spec.module} does not export { name, apply(hooks, api) } (as default, or a default function returning it).`, { details: { plugin: spec.module } });
  }
  return candidate;
}

export async function createAutoSsl(config: AutoSslConfig, extraPlugins: readonly Plugin[] = []): Promise<AutoSsl> {
  const hooks = createHooks();
  instrumentHooks(hooks);
  const nginx = new NginxControl({ binary: config.nginx.binary, config: config.nginx.config, reloadCommand: config.nginx.reloadCommand, extraArgs: config.nginx.extraArgs });
  const loadTree = (): NginxTree => NginxTree.load(config.nginx.config);
  const services: Services = { config, nginx, loadTree, hooks };
  const userPlugins = [...(await Promise.all(config.plugins.map(loadPlugin))), ...extraPlugins];
  const optionsFor = (plugin: Plugin): Record<string, unknown> => config.plugins[userPlugins.indexOf(plugin)]?.options ?? {};
  for (const plugin of BUILTIN_PLUGINS) plugin.apply(hooks, { config, options: {} });
  for (const plugin of userPlugins) {
    try {
      plugin.apply(hooks, { config, options: optionsFor(plugin) });
    } catch (error) {
      throw new AutoSslError('PLUGIN_LOAD_FAILED', `Plugin "${plugin.name}" failed to apply: ${(error as Error).message}`, { cause: error, details: { plugin: plugin.name } });
    }
  }
  const journalDir = path.join(config.stateDir, 'journal');

  const engine: AutoSsl = {
    config,
    hooks,
    nginx,
    loadTree,
    recover: () => recoverJournal(journalDir),
    async issue(domains, options = {}) {
      const restored = await recoverJournal(journalDir);
      if (restored.length) options.onEvent?.({ domain: '*', stage: 'recover', status: 'info', message: `restored files left half-edited by a crashed run: ${restored.join(', ')}` });
      const results: DomainResult[] = new Array(domains.length);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < domains.length) {
          const index = next++;
          results[index] = await issueOne(domains[index]!, options);
        }
      };
      await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency ?? 8, domains.length)) }, worker));
      return results;
    },
  };

  async function issueOne(input: string, options: IssueOptions): Promise<DomainResult> {
    let domain: string;
    try {
      domain = normalizeDomain(input);
    } catch (error) {
      return { domain: String(input), names: [], ok: false, error: toAutoSslError(error), reused: false, edits: [], rolledBack: [], events: [], ms: 0 };
    }
    const site = siteFor(config, domain);
    const events: StageEvent[] = [];
    const ctx: DomainContext = {
      domain,
      plan: {
        names: [site.domain, ...site.aliases],
        certName: site.certName ?? site.domain,
        site,
        redirect: site.redirect ?? config.defaults.redirect,
        hsts: site.hsts ?? config.defaults.hsts,
      },
      services,
      dryRun: options.dryRun === true,
      force: options.force === true,
      skipChecks: new Set(options.skipChecks ?? []),
      findings: [],
      edits: [],
      transaction: new EditTransaction({ journalDir }),
      reloadedWithChanges: false,
      needsReload: false,
      tlsEndpoints: [],
      events,
      emit(event) {
        const full = { domain, ...event };
        events.push(full);
        options.onEvent?.(full);
      },
    };
    return runDomain(ctx, { timeoutMs: config.defaults.domainTimeoutMs });
  }

  return engine;
}
