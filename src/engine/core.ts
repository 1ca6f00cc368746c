/**
 * The engine's kernel: the hooks with the built-in stages and the configured plugins applied, the shared services
 * (config editor, nginx control, state, undo steps), event listeners, and a context per domain run. The services in
 * this folder (issue, preview, recovery, sites) and the renewal functions work through it.
 */
import crypto from 'node:crypto';
import { siteProfile } from '../issuer/profile.js';
import os from 'node:os';
import type { AutoSslConfig } from '../config/schema.js';
import { siteFor, validateConfig, type SiteConfig } from '../config/schema.js';
import { AutoSslError } from '../errors.js';
import { createHooks } from '../pipeline/hooks.js';
import type { DomainContext, DomainPlan, RunMode, Services, StageEvent } from '../pipeline/context.js';
import { loadPlugin, pluginApi, type Plugin } from '../pipeline/plugin.js';
import { runDomain, type DomainResult } from '../pipeline/pipeline.js';
import { instrumentHooks } from '../pipeline/instrument.js';
import { BUILTIN_PLUGINS, BUILTIN_TAPS } from '../stages/index.js';
import { storeOpener } from '../store/open.js';
import type { Store } from '../store/store.js';
import type { HeldLock } from '../store/locker.js';
import { createNginxInstaller } from '../installer/nginx-installer.js';
import type { Installer } from '../installer/installer.js';
import { Semaphore } from '../bounded.js';
import { certbotIssuer } from '../issuer/certbot.js';
import { loadIssuer, readLineageFiles } from '../issuer/issuer.js';
import { UndoService } from '../undo.js';
import type { BatchGate } from '../pipeline/batch.js';
import { applyDnsUndo } from '../renewal/dns-hook.js';
import { trackNotifyDeliveries } from '../renewal/outbox.js';
import type { CreateOptions, EngineCore, IssueOptions } from './types.js';

/** What the engine's services share beyond EngineCore: the stores, the editor, the listeners. */
export interface Kernel extends EngineCore {
  /** The config as the file gave it (the panel's sites are not in it). */
  readonly fileConfig: AutoSslConfig;
  readonly installer: Installer;
  readonly undo: UndoService;
  readonly listeners: Set<(event: StageEvent) => void>;
  /** The state store, opened on first use. */
  state(): Store;
  /** For commands that only read: works with a read-only (or missing) state directory. */
  readState(): Store;
  context(
    domain: string,
    mode: RunMode,
    options?: IssueOptions & { plan?: Partial<DomainPlan>; lineage?: DomainContext['lineage']; batch?: BatchGate },
  ): { ctx: DomainContext; abort: AbortController };
  /** The config `certificate()` answers from, for a second (a panel asks for every domain on every page load). */
  statusTree: { tree: unknown; at: number } | null;
  /** Set by the recovery service (recovery needs the issue service, which needs the kernel). */
  recoverFirst(): Promise<void>;
  close(): Promise<void>;
}

async function safeRows<T>(read: () => Promise<T[]>): Promise<T[]> {
  try {
    return await read();
  } catch {
    return []; // no state yet, or none readable: no panel sites
  }
}

/** A site as a panel described it, validated like a config file's; null when it is not valid. */
export function panelSite(config: AutoSslConfig, raw: unknown, throwOnError = false): SiteConfig | null {
  try {
    return validateConfig({ defaults: { challenge: config.defaults.challenge }, sites: [raw] }, 'site', '/').sites[0] ?? null;
  } catch (error) {
    if (throwOnError) throw error;
    return null;
  }
}

export async function createKernel(fileConfig: AutoSslConfig, opts: CreateOptions): Promise<Kernel> {
  // the config file's sites, then the sites a panel described through the agent (kept in the state store, so the
  // DNS hooks and renewals certbot runs in processes of their own know them too); the file wins on a clash
  const config: AutoSslConfig = { ...fileConfig, sites: [...fileConfig.sites] };
  const hooks = createHooks();
  instrumentHooks(hooks);
  const listeners = new Set<(event: StageEvent) => void>();
  if (opts.onEvent) listeners.add(opts.onEvent);
  const emit = (event: StageEvent): void => {
    for (const l of listeners) {
      try {
        l(event);
      } catch {
        // a listener's failure is its own business
      }
    }
  };
  const installer = createNginxInstaller(config);
  const { nginx, editor, loadTree } = installer;
  const openStore = await storeOpener(config);
  let store: Store | null = null;
  let readOnlyStore: Store | null = null;
  const state = (): Store => (store ??= openStore());
  const readState = (): Store => store ?? (readOnlyStore ??= openStore({ readOnly: true }));
  for (const row of await safeRows(() => readState().sites.list())) {
    const site = panelSite(fileConfig, row.site);
    if (site && !config.sites.some((s) => [s.domain, ...s.aliases].some((n) => n === site.domain || site.aliases.includes(n)))) config.sites.push(site);
  }
  const undo = new UndoService(state);
  const certbotSlots = new Semaphore(config.batch.concurrency);
  const issuer =
    config.issuer === 'certbot'
      ? certbotIssuer({ config, state, slots: certbotSlots })
      : await loadIssuer(config.issuer, { config, readLineage: readLineageFiles });
  const services: Services = {
    config,
    hooks,
    installer,
    nginx,
    editor,
    loadTree,
    state: (o) => (o?.readOnly ? readState() : state()),
    undo,
    certbotSlots,
    issuer,
    preflightSlots: new Semaphore(config.preflight.concurrency),
  };

  const log = (message: string, ctx?: DomainContext): void => {
    if (ctx) ctx.emit({ stage: 'log', status: 'info', message });
    else emit({ domain: '*', stage: 'log', status: 'info', message });
  };

  function context(
    domain: string,
    mode: RunMode,
    options: IssueOptions & { plan?: Partial<DomainPlan>; lineage?: DomainContext['lineage']; batch?: BatchGate } = {},
  ): { ctx: DomainContext; abort: AbortController } {
    const site = siteFor(config, domain);
    const events: StageEvent[] = [];
    const memos = new Map<string, Promise<unknown>>();
    const abort = new AbortController();
    const plan: DomainPlan = {
      names: [site.domain, ...site.aliases],
      certName: site.certName ?? site.domain.replace(/^\*\./, ''),
      site,
      challenge: site.challenge ?? config.defaults.challenge,
      redirect: site.redirect ?? config.defaults.redirect,
      hsts: site.hsts ?? config.defaults.hsts,
      profile: siteProfile(site, config.defaults),
      notes: [],
      optionalNames: [],
      ...options.plan,
    };
    const ctx: DomainContext = {
      domain,
      runId: crypto.randomUUID(),
      mode,
      plan,
      services,
      dryRun: mode === 'dry-run' || mode === 'preview',
      force: options.force === true,
      skipChecks: new Set(options.skipChecks ?? []),
      findings: [],
      lineage: options.lineage,
      edits: [],
      transaction: installer.transaction(domain),
      overlay: new Map(),
      reloadedWithChanges: false,
      needsReload: false,
      tlsEndpoints: [],
      events,
      signal: abort.signal,
      batch: options.batch,
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
        emit(full);
      },
    };
    return { ctx, abort };
  }

  const run = (ctx: DomainContext, abort: AbortController): Promise<DomainResult> =>
    runDomain(ctx, {
      slowAfterMs: config.defaults.domainTimeoutMs,
      deadlineMs: config.defaults.deadlineMs,
      abort,
      builtinTaps: BUILTIN_TAPS,
      lockBlocks: lockIssueBlocks,
    });

  /** An issue holds the locks of the blocks it edits for its whole run (uploads and uninstall take them themselves). */
  async function lockIssueBlocks(ctx: DomainContext): Promise<HeldLock | null> {
    if (ctx.mode !== 'issue' || ctx.dryRun) return null;
    return installer.lockBlocks(state().locker, ctx.plan.names, ctx.plan.site.vhost);
  }

  const kernel: Kernel = {
    config,
    fileConfig,
    hooks,
    services,
    host: os.hostname(),
    installer,
    undo,
    listeners,
    emit,
    state,
    readState,
    context,
    run,
    statusTree: null,
    recoverFirst: () => Promise.reject(new Error('recovery is not wired yet')),
    async close() {
      await store?.close();
      await readOnlyStore?.close();
    },
  };

  const userPlugins: Array<{ plugin: Plugin; options: Record<string, unknown> }> = [];
  for (const spec of config.plugins) userPlugins.push({ plugin: await loadPlugin(spec, config.configDir), options: spec.options });
  for (const plugin of opts.plugins ?? []) userPlugins.push({ plugin, options: {} });
  for (const plugin of BUILTIN_PLUGINS) await plugin.apply(hooks, pluginApi(plugin, config, {}, undo, log));
  applyDnsUndo(undo, () => kernel);
  for (const { plugin, options: pluginOptions } of userPlugins) {
    try {
      await plugin.apply(hooks, pluginApi(plugin, config, pluginOptions, undo, log));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new AutoSslError('PLUGIN_LOAD_FAILED', `Plugin "${plugin.name}" failed to apply: ${message}`, { cause: error, details: { plugin: plugin.name } });
    }
  }
  trackNotifyDeliveries(hooks);
  return kernel;
}
