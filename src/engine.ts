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
import type { DomainContext, Finding, Plugin, Services, StageEvent } from './pipeline/context.js';
import { planChallengeEdit } from './nginx/edit.js';
import { port80Check } from './stages/preflight.js';
import { instrumentHooks, runDomain, type DomainResult } from './pipeline/pipeline.js';
import { BUILTIN_PLUGINS } from './stages/index.js';
import { StateStore } from './state/store.js';

export interface IssueOptions {
  dryRun?: boolean;
  force?: boolean;
  skipChecks?: string[];
  /** Domains run at once (certbot calls are queued per certbot directory set regardless). */
  concurrency?: number;
  onEvent?: (event: StageEvent) => void;
}

export interface CheckResult {
  domain: string;
  names: string[];
  ok: boolean;
  findings: Finding[];
  ms: number;
}

/** Runs `fn` over `items` with at most `limit` at once, keeping order. */
export async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

export interface AutoSsl {
  readonly config: AutoSslConfig;
  readonly hooks: Hooks;
  readonly nginx: NginxControl;
  issue(domains: readonly string[], options?: IssueOptions): Promise<DomainResult[]>;
  /** Pre-flight only: what Let's Encrypt would see, touching no vhost. */
  check(domains: readonly string[], options?: IssueOptions): Promise<CheckResult[]>;
  /** The state store (SQLite under stateDir), opened on first use. */
  state(): StateStore;
  /** Restores files left half-edited by a process that died; returns them. */
  recover(): Promise<string[]>;
  loadTree(): NginxTree;
}

function isPlugin(value: unknown): value is Plugin {
  return typeof value === 'object' && value !== null && typeof (value as Plugin).name === 'string' && typeof (value as Plugin).apply === 'function';
}

/** "autossl:webhook" names a plugin shipped in plugins/ (compiled next to this file's dist tree). */
function shippedPlugin(name: string): string | null {
  const m = /^autossl:([a-z0-9-]+)$/.exec(name);
  return m ? new URL(`../plugins/${m[1]}/index.js`, import.meta.url).href : null;
}

/** Imports a plugin module: its default export is a plugin object, or a factory taking the options. */
export async function loadPlugin(spec: { module: string; options: Record<string, unknown> }): Promise<Plugin> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(path.isAbsolute(spec.module) ? pathToFileURL(spec.module).href : shippedPlugin(spec.module) ?? spec.module)) as Record<string, unknown>;
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
  let store: StateStore | null = null;
  const state = (): StateStore => (store ??= new StateStore(config.stateDir));
  const services: Services = { config, nginx, loadTree, hooks, state };
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
    state,
    recover: () => recoverJournal(journalDir),
    async check(domains, options = {}) {
      const names = domains.map((d) => normalizeDomain(d));
      return mapBounded(names, options.concurrency ?? config.preflight.concurrency, (d) => checkOne(d, options));
    },
    async issue(domains, options = {}) {
      const restored = await recoverJournal(journalDir);
      if (restored.length) options.onEvent?.({ domain: '*', stage: 'recover', status: 'info', message: `restored files left half-edited by a crashed run: ${restored.join(', ')}` });
      return mapBounded(domains, options.concurrency ?? 8, (d) => issueOne(d, options));
    },
  };

  function makeContext(domain: string, options: IssueOptions): DomainContext {
    const site = siteFor(config, domain);
    const events: StageEvent[] = [];
    const memos = new Map<string, Promise<unknown>>();
    return {
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
      memo<T>(key: string, compute: () => Promise<T>): Promise<T> {
        let p = memos.get(key) as Promise<T> | undefined;
        if (!p) {
          p = compute();
          memos.set(key, p);
        }
        return p;
      },
      emit(event) {
        const full = { domain, ...event };
        events.push(full);
        options.onEvent?.(full);
      },
    };
  }

  async function issueOne(input: string, options: IssueOptions): Promise<DomainResult> {
    let domain: string;
    try {
      domain = normalizeDomain(input);
    } catch (error) {
      return { domain: String(input), names: [], ok: false, error: toAutoSslError(error), reused: false, edits: [], rolledBack: [], events: [], ms: 0 };
    }
    return runDomain(makeContext(domain, options), { timeoutMs: config.defaults.domainTimeoutMs });
  }

  async function checkOne(domain: string, options: IssueOptions): Promise<CheckResult> {
    const started = performance.now();
    const ctx = makeContext(domain, { ...options, dryRun: true });
    await hooks.preflight.promise(ctx);
    await hooks.findings.promise(ctx);
    if (!ctx.skipChecks.has('port80')) {
      try {
        const plan = planChallengeEdit(loadTree(), ctx.plan.names, { documentRoot: ctx.plan.site.documentRoot, fallbackWebroot: config.challengeDir });
        await port80Check(ctx, plan.webroot, plan.edits.length > 0);
      } catch (error) {
        const e = toAutoSslError(error);
        ctx.findings.push({ check: 'port80', severity: 'error', code: e.code, message: e.message, hint: e.hint });
      }
    }
    return { domain, names: ctx.plan.names, ok: ctx.findings.every((f) => f.severity !== 'error' || f.resolved), findings: ctx.findings, ms: performance.now() - started };
  }

  return engine;
}
