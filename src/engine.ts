/**
 * The engine: the one API the CLI, the agent and plugin authors use. One per process: it holds the hooks with the
 * built-in stages and the configured plugins applied, the shared services (config editor, nginx control, state,
 * undo steps), and runs domains through the pipeline, several at once, each with its own context.
 *
 * The engine prints nothing: what happens goes to whoever listens (`engine.on(listener)`, or `onEvent` per call).
 * Commands that change things first finish what a killed run left behind (file journals, undo steps); commands
 * that only read report it instead.
 */
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { AutoSslConfig } from './config/schema.js';
import { siteFor, validateConfig, type SiteConfig } from './config/schema.js';
import { normalizeDomain } from './domain.js';
import { AutoSslError, toAutoSslError } from './errors.js';
import { NginxControl } from './nginx/control.js';
import { ConfigEditor } from './nginx/editor.js';
import { EditTransaction, pendingRecovery, recoverJournals, discardJournal, type RecoveryReport } from './nginx/transaction.js';
import { NginxTree } from './nginx/tree.js';
import { locateServers } from './nginx/edit.js';
import { lineColumn } from './nginx/parse.js';
import { createHooks, type Hooks } from './pipeline/hooks.js';
import type { DomainContext, DomainPlan, Finding, RunMode, Services, StageEvent } from './pipeline/context.js';
import { loadPlugin, pluginApi, type Plugin } from './pipeline/plugin.js';
import { instrumentHooks, runDomain, type DomainResult } from './pipeline/pipeline.js';
import { port80Check } from './stages/preflight.js';
import { ensureAliasLink } from './nginx/alias-webroot.js';
import { certificateBlock } from './stages/plan.js';
import { answeredNames, uncovered } from './nginx/names.js';
import type { ServerBlock } from './nginx/tree.js';
import { BUILTIN_PLUGINS, BUILTIN_TAPS } from './stages/index.js';
import { storeOpener } from './store/open.js';
import type { JobDomainState, JobRow, Store } from './store/store.js';
import { removeStaleLocks, type HeldLock } from './lock.js';
import { lockBlocks } from './nginx/block-lock.js';
import { renewalWindowStart } from './renewal/status.js';
import { recoverPrivateOrders } from './certbot/orders.js';
import { certbotIssuer, certbotSettings } from './issuer/certbot.js';
import { loadIssuer, readLineageFiles } from './issuer/issuer.js';
import { mapBounded, Semaphore } from './bounded.js';
import { UndoService, type UndoRunReport } from './undo.js';
import { applyEdits } from './pipeline/apply.js';
import { BatchGate } from './pipeline/batch.js';
import { planChallengeEdit } from './nginx/edit.js';
import * as renewal from './renewal/renewal.js';
import { certificateOf, type DomainCertificate } from './renewal/certificate.js';
import { installUpload, referencedPaths, uninstall, type UninstallResult } from './manage.js';
import { recoverUploads, type Upload } from './certbot/custom.js';
import type { StatusReport, RenewReport, DeployResult, DeliveryReport } from './renewal/renewal.js';

export type { DomainResult } from './pipeline/pipeline.js';

/** The wait before a domain whose TLS check could not reach nginx runs again (the load that stalled it may pass). */
const VERIFY_RETRY_DELAY_MS = 1000;

export interface IssueOptions {
  dryRun?: boolean;
  /** The job's id (a batch is a job): given by the agent so a panel can poll it; made up otherwise. */
  jobId?: string;
  /** Who asked: shown by `autossl jobs`. */
  source?: 'cli' | 'agent' | 'api';
  force?: boolean;
  skipChecks?: string[];
  /** Domains run at once (certbot calls are queued per certbot directory set regardless). */
  concurrency?: number;
  onEvent?: (event: StageEvent) => void;
  /** Called as each domain finishes (before the batch as a whole does). */
  onResult?: (result: DomainResult) => void;
}

export interface CheckResult {
  domain: string;
  names: string[];
  ok: boolean;
  findings: Finding[];
  ms: number;
}

export interface PreviewResult {
  domain: string;
  names: string[];
  ok: boolean;
  error?: AutoSslError;
  /** The server blocks that serve the names now, on port 80 and over TLS. */
  blocks: { http: BlockRef[]; https: BlockRef[] };
  /** Per file, the bytes now and the bytes `autossl issue` would leave (through the real hooks). */
  files: Array<{ file: string; before: string; after: string }>;
  notes: string[];
}

export interface BlockRef {
  name: string;
  file: string | null;
  line?: number;
  serverNames?: string[];
  listens?: string[];
}

export interface RecoverReport {
  journals: RecoveryReport;
  undo: UndoRunReport;
}

/** What the engine lets its callers do. The CLI and the agent use nothing else. */
export interface AutoSsl {
  readonly config: AutoSslConfig;
  readonly hooks: Hooks;
  /** Listens to every event of every run (stages, plugin timings, recovery). Returns a function that stops listening. */
  on(listener: (event: StageEvent) => void): () => void;
  /** Issues (or reuses) and installs a certificate per domain; one result per domain given, in order. */
  issue(domains: readonly string[], options?: IssueOptions): Promise<DomainResult[]>;
  /** Pre-flight only: what Let's Encrypt would see, touching nothing. */
  check(domains: readonly string[], options?: IssueOptions): Promise<CheckResult[]>;
  /** Which blocks serve a domain, and the exact bytes `issue` would write (the real hooks, on an in-memory copy). */
  preview(domain: string, options?: IssueOptions): Promise<PreviewResult>;
  /** Every certificate and its state, most urgent first; reads only. */
  status(options?: { now?: number; probe?: boolean }): Promise<StatusReport>;
  /** `certbot renew` now, with beforeRenew/afterRenew around it; each lineage's outcome recorded and notified. */
  renew(options?: { certName?: string; force?: boolean }): Promise<RenewReport>;
  /** certbot's deploy hook: the renewed lineage through the pipeline from `issue` on. */
  deploy(env: NodeJS.ProcessEnv): Promise<DeployResult>;
  /** certbot's pre/post renewal hooks: the beforeRenew / afterRenew hooks. */
  renewHook(phase: 'pre' | 'post', env: NodeJS.ProcessEnv): Promise<void>;
  /** certbot's DNS-01 manual hooks: writes or removes the TXT record through the site's DNS provider. */
  dnsHook(phase: 'auth' | 'cleanup', env: NodeJS.ProcessEnv): Promise<void>;
  /** Finishes what killed runs left behind (file journals, undo steps). */
  recover(options?: { discard?: string }): Promise<RecoverReport>;
  /** What recovery would do, without doing it. */
  pendingRecovery(): Promise<{ journals: RecoveryReport & { restorable: string[] }; undo: number }>;
  /** Puts autossl's deploy, pre and post hooks into certbot's renewal-hooks directories. */
  installHooks(): Promise<string[]>;
  /** Recent jobs (batches), newest first. */
  jobs(limit?: number): Promise<JobRow[]>;
  job(id: string): Promise<JobRow | null>;
  /** Delivers queued notifications (the outbox) to the notify taps. */
  deliverNotifications(): Promise<DeliveryReport>;
  /**
   * Describes a site the config file does not list (the agent: a panel's domain with its document root, a
   * wildcard with DNS-01): validated like a config file's site and kept in the state store, so renewals and
   * certbot's DNS hooks know it. A site the config file lists wins: it is returned unchanged.
   */
  registerSite(site: Record<string, unknown> & { domain: string }, source?: string): Promise<SiteConfig>;
  /** Forgets a site registerSite described (not one of the config file). */
  unregisterSite(domain: string): Promise<void>;
  /** One domain's certificate as nginx serves it now; fast (a panel asks for every domain on every page load). */
  certificate(domain: string, options?: { fresh?: boolean }): Promise<DomainCertificate>;
  /** Takes HTTPS off a domain (validated, rolled back on failure) and deletes the certificate nothing serves any more. */
  uninstall(domain: string): Promise<UninstallResult>;
  /** Installs an uploaded certificate: checked before anything is written, installed like any other, never renewed. */
  installCertificate(domain: string, upload: Upload): Promise<DomainResult>;
  /** What certbot's DNS-01 hooks (processes of their own) last reported for a name, for progress displays. */
  dnsProgress(domain: string): Promise<{ phase: renewal.DnsPhase; message: string; at: number } | null>;
  /** Which DNS-01 provider (plugin) would answer for a domain if it used DNS-01; null when none would. */
  dnsProvider(domain: string): Promise<string | null>;
  /** Marks a recorded job's domain as not run (CANCELLED, with why). */
  cancelJobDomain(jobId: string, domain: string, why: string): Promise<void>;
  /** Ends a recorded job that will not run. */
  finishJob(jobId: string, state: 'done' | 'failed'): Promise<void>;
  /** Records a job before its domains run (the agent: requests joining a batch), so a kill leaves each accounted for. */
  recordJob(id: string, domains: readonly string[], source?: string): Promise<void>;
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
function panelSite(config: AutoSslConfig, raw: unknown, throwOnError = false): SiteConfig | null {
  try {
    return validateConfig({ defaults: { challenge: config.defaults.challenge }, sites: [raw] }, 'site', '/').sites[0] ?? null;
  } catch (error) {
    if (throwOnError) throw error;
    return null;
  }
}

/** Internal: what the renewal functions and the engine methods share. */
export interface EngineCore {
  readonly config: AutoSslConfig;
  readonly hooks: Hooks;
  readonly services: Services;
  readonly host: string;
  emit(event: StageEvent): void;
  /** A context for one domain run. */
  context(domain: string, mode: RunMode, options?: IssueOptions & { plan?: Partial<DomainPlan>; lineage?: DomainContext['lineage'] }): { ctx: DomainContext; abort: AbortController };
  run(ctx: DomainContext, abort: AbortController): Promise<DomainResult>;
  /** Recovery before a command that changes things. */
  recoverFirst(): Promise<void>;
}

export interface CreateOptions {
  /** Plugins given as objects (besides those named in the config), applied after them. */
  plugins?: readonly Plugin[];
  onEvent?: (event: StageEvent) => void;
  /**
   * This process recovered already (the agent's batch thread: the agent's own engine did at its start): no
   * recovery before the first run, which would only repeat that work.
   */
  recovered?: boolean;
}

export async function createAutoSsl(fileConfig: AutoSslConfig, options: CreateOptions | readonly Plugin[] = {}): Promise<AutoSsl> {
  // the config file's sites, then the sites a panel described through the agent (kept in the state store, so the
  // DNS hooks and renewals certbot runs in processes of their own know them too); the file wins on a clash
  const config: AutoSslConfig = { ...fileConfig, sites: [...fileConfig.sites] };
  const opts: CreateOptions = Array.isArray(options) ? { plugins: options as readonly Plugin[] } : (options as CreateOptions);
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
  const nginx = new NginxControl({ binary: config.nginx.binary, config: config.nginx.config, reloadCommand: config.nginx.reloadCommand, extraArgs: config.nginx.extraArgs });
  const loadTree = (overlay?: ReadonlyMap<string, string>): NginxTree => NginxTree.load(config.nginx.config, overlay?.size ? { overlay } : {});
  const openStore = await storeOpener(config);
  let store: Store | null = null;
  let readOnlyStore: Store | null = null;
  const state = (): Store => (store ??= openStore());
  /** For commands that only read: works with a read-only (or missing) state directory. */
  const readState = (): Store => store ?? (readOnlyStore ??= openStore({ readOnly: true }));
  for (const row of await safeRows(() => readState().sites.list())) {
    const site = panelSite(fileConfig, row.site);
    if (site && !config.sites.some((s) => [s.domain, ...s.aliases].some((n) => n === site.domain || site.aliases.includes(n)))) config.sites.push(site);
  }
  const undo = new UndoService(state);
  const editor = new ConfigEditor({ lockFile: path.join(config.stateDir, 'locks', 'nginx-config.lock'), lockTimeoutMs: config.nginx.lockTimeoutMs, nginx, loadTree: () => loadTree() });
  nginx.setReloadLock((fn) => editor.locked(fn));
  const certbotSlots = new Semaphore(config.batch.concurrency);
  const issuer = config.issuer === 'certbot' ? certbotIssuer({ config, state, slots: certbotSlots }) : await loadIssuer(config.issuer, { config, readLineage: readLineageFiles });
  const services: Services = { config, hooks, nginx, editor, loadTree, state: (o) => (o?.readOnly ? readState() : state()), undo, certbotSlots, issuer, preflightSlots: new Semaphore(config.preflight.concurrency) };
  const journalDir = path.join(config.stateDir, 'journal');
  const host = os.hostname();

  const log = (message: string, ctx?: DomainContext): void => {
    if (ctx) ctx.emit({ stage: 'log', status: 'info', message });
    else emit({ domain: '*', stage: 'log', status: 'info', message });
  };
  const userPlugins: Array<{ plugin: Plugin; options: Record<string, unknown> }> = [];
  for (const spec of config.plugins) userPlugins.push({ plugin: await loadPlugin(spec, config.configDir), options: spec.options });
  for (const plugin of opts.plugins ?? []) userPlugins.push({ plugin, options: {} });
  for (const plugin of BUILTIN_PLUGINS) await plugin.apply(hooks, pluginApi(plugin, config, {}, undo, log));
  renewal.applyDnsUndo(undo, () => core);
  for (const { plugin, options: pluginOptions } of userPlugins) {
    try {
      await plugin.apply(hooks, pluginApi(plugin, config, pluginOptions, undo, log));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new AutoSslError('PLUGIN_LOAD_FAILED', `Plugin "${plugin.name}" failed to apply: ${message}`, { cause: error, details: { plugin: plugin.name } });
    }
  }
  renewal.trackNotifyDeliveries(hooks);

  function context(domain: string, mode: RunMode, options: IssueOptions & { plan?: Partial<DomainPlan>; lineage?: DomainContext['lineage']; batch?: BatchGate } = {}): { ctx: DomainContext; abort: AbortController } {
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
      transaction: new EditTransaction({ journalDir, label: domain }),
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
    runDomain(ctx, { slowAfterMs: config.defaults.domainTimeoutMs, deadlineMs: config.defaults.deadlineMs, abort, builtinTaps: BUILTIN_TAPS, lockBlocks: lockIssueBlocks });

  /** An issue holds the locks of the blocks it edits for its whole run (uploads and uninstall take them themselves). */
  async function lockIssueBlocks(ctx: DomainContext): Promise<HeldLock | null> {
    if (ctx.mode !== 'issue' || ctx.dryRun) return null;
    let tree: NginxTree;
    try {
      tree = loadTree();
    } catch {
      return null; // planning says what is wrong with the config
    }
    return lockBlocks(state().locker, config, tree, ctx.plan.names, ctx.plan.site.vhost);
  }

  let statusTree: { tree: NginxTree; at: number } | null = null;
  let recovered = opts.recovered === true;
  async function recoverFirst(): Promise<void> {
    if (recovered) return;
    recovered = true;
    const report = await recoverEverything();
    for (const file of report.journals.restored) emit({ domain: '*', stage: 'recover', status: 'info', message: `restored ${file}, left half-edited by a run that was killed` });
    for (const c of report.journals.conflicts) emit({ domain: '*', stage: 'recover', status: 'warning', message: `${c.file} was changed after an interrupted run edited it; left as it is (backup ${c.backup}; resolve it, then autossl recover --discard ${c.journal})` });
    for (const d of report.journals.damaged) emit({ domain: '*', stage: 'recover', status: 'warning', message: `journal ${d.journal}: ${d.reason}` });
    for (const r of report.undo.ran) emit({ domain: '*', stage: 'recover', plugin: r.plugin, status: 'info', message: `undid ${r.kind} left pending by a run that was killed` });
    for (const f of report.undo.failed) emit({ domain: '*', stage: 'recover', plugin: f.plugin, status: 'warning', message: f.error.message });
  }

  async function recoverEverything(): Promise<RecoverReport> {
    const journals = await editor.locked(() => recoverJournals(journalDir));
    if (journals.restored.length) {
      // nginx may have loaded the half-done edit: make it load the restored files
      await nginx.test().then(() => nginx.reload()).catch((error: unknown) => emit({ domain: '*', stage: 'recover', status: 'warning', message: `restored files, but nginx could not reload them: ${toAutoSslError(error).message}` }));
    }
    const undoReport = await undo.recover();
    await recoverKilledUploads();
    await recoverOrders();
    await recoverJobs();
    await removeStaleLocks(path.join(config.stateDir, 'locks'));
    return { journals, undo: undoReport };
  }

  /** Upload directories (keys) of killed uploads that nginx does not serve, after the journals restored the vhosts. */
  async function recoverKilledUploads(): Promise<void> {
    let referenced: Set<string>;
    try {
      referenced = referencedPaths(loadTree());
    } catch {
      return; // nginx's config cannot be read now: nothing is removed that it might name
    }
    for (const dir of await recoverUploads(config, referenced)) emit({ domain: '*', stage: 'recover', status: 'info', message: `removed ${dir}, left by an upload that was killed` });
  }

  /** Private order directories of killed runs: a finished lineage is adopted (never ordered again), the rest goes. */
  async function recoverOrders(): Promise<void> {
    for (const adopted of await recoverPrivateOrders(certbotSettings(config), config.stateDir)) {
      emit({ domain: '*', stage: 'recover', status: 'info', message: `adopted certificate ${adopted}, obtained by a run that was killed` });
    }
  }

  const core: EngineCore = { config, hooks, services, host, emit, context, run, recoverFirst };

  /** A domain from a caller: validated; a wildcard only for a DNS-01 site. */
  function domainOf(input: unknown): string {
    const domain = normalizeDomain(input, { allowWildcard: true });
    if (domain.startsWith('*.')) {
      const site = siteFor(config, domain);
      if ((site.challenge ?? config.defaults.challenge) !== 'dns-01') {
        throw new AutoSslError('WILDCARD_NEEDS_DNS01', `${domain} is a wildcard: the CA can only check it over DNS (DNS-01), and this site uses HTTP-01.`);
      }
    }
    return domain;
  }

  function failedResult(input: unknown, mode: RunMode, error: unknown): DomainResult {
    return { domain: String(input), mode, names: [], ok: false, error: toAutoSslError(error), reused: false, edits: [], files: [], rolledBack: [], notes: [], events: [], ms: 0 };
  }

  /** A real run that obtained its certificate and was rolled back only because nginx did not answer the TLS check. */
  function verifyUnreachable(r: DomainResult): boolean {
    return r.mode === 'issue' && !r.ok && r.error?.code === 'TLS_VERIFY_FAILED' && r.error.details.reason === 'unreachable' && r.lineage !== undefined;
  }

  async function issueOne(input: unknown, options: IssueOptions & { batch?: BatchGate; job?: string }): Promise<DomainResult> {
    const mode: RunMode = options.dryRun ? 'dry-run' : 'issue';
    let result: DomainResult;
    const track = options.job ? jobTracker(options.job, String(input)) : undefined;
    try {
      const domain = domainOf(input);
      const onEvent = (e: StageEvent): void => (track?.onEvent(e), options.onEvent?.(e));
      const { ctx, abort } = context(domain, mode, { ...options, onEvent });
      result = await run(ctx, abort);
      if (verifyUnreachable(result)) {
        // nginx could not be reached in time (a loaded machine, this process's loop stalled): the certificate was
        // obtained and the vhost rolled back; run the domain once more, reusing the certificate (no new order)
        ctx.emit({ stage: 'verify', status: 'info', message: `${result.error!.message} Rolled back; trying once more with the certificate obtained (no new order).` });
        await new Promise((r) => setTimeout(r, VERIFY_RETRY_DELAY_MS));
        const again = context(domain, mode, { ...options, force: false, onEvent });
        const second = await run(again.ctx, again.abort);
        result = { ...second, events: [...result.events, ...second.events], ms: result.ms + VERIFY_RETRY_DELAY_MS + second.ms };
      }
    } catch (error) {
      result = failedResult(input, mode, error); // never a domain unaccounted for
    }
    if (options.job) {
      await track?.settled();
      await finishJobDomain(options.job, String(input), result);
    }
    try {
      options.onResult?.(result);
    } catch {
      // a listener's failure is its own business
    }
    return result;
  }

  /** The job-state a stage belongs to. */
  const JOB_STATE: Partial<Record<string, JobDomainState>> = { plan: 'checking', preflight: 'checking', findings: 'checking', challenge: 'challenge', beforeIssue: 'challenge', issue: 'issuing', vhost: 'installing', validate: 'installing', reload: 'installing', verify: 'installing', finally: 'installing' };

  /**
   * Follows a domain's stages into its job row (state changes only: a few writes per domain). A stage event is no
   * place to wait: each write is chained after the one before (a store over a network could reorder writes sent at
   * once), and the domain's last write waits for `settled`.
   */
  function jobTracker(job: string, domain: string): { onEvent: (e: StageEvent) => void; settled: () => Promise<void> } {
    let last: JobDomainState | undefined;
    let chain = Promise.resolve();
    return {
      onEvent(e) {
        if (e.plugin || e.status !== 'start') return;
        const next = JOB_STATE[e.stage];
        if (!next || next === last) return;
        last = next;
        // the job record is a report: a busy database must not fail the domain
        chain = chain.then(() => state().jobs.updateDomain(job, domain, { state: next })).catch(() => undefined);
      },
      settled: () => chain,
    };
  }

  async function finishJobDomain(job: string, domain: string, r: DomainResult): Promise<void> {
    try {
      await state().jobs.updateDomain(job, domain, {
        state: r.ok ? 'done' : 'failed',
        code: r.error?.code ?? null,
        message: r.error?.message ?? null,
        acme: r.error?.details.problems ?? null,
        lineage: r.lineage?.name ?? null,
        stages: r.events.filter((e) => !e.plugin && e.status === 'done').map((e) => ({ stage: e.stage, ms: Math.round(e.ms ?? 0) })),
        finished: true,
      });
    } catch {
      // as above
    }
  }

  /**
   * Jobs a killed process left running: a domain whose certificate exists by now is installed (no new order: the
   * lineage is reused), the others fail with INTERRUPTED; then the job ends done or failed.
   */
  async function recoverJobs(): Promise<void> {
    const store = state();
    for (const orphan of await store.jobs.orphaned()) {
      // one process recovers a job: two starting at once would both install its certificates
      const held = await store.locker.lock(`job-${orphan.id}`, config.certbot.timeoutMs * 3 + config.nginx.lockTimeoutMs, `The recovery of job ${orphan.id}`);
      try {
        const job = await store.jobs.get(orphan.id);
        if (job?.state === 'running') await recoverJob(store, job);
      } finally {
        await held.release();
      }
    }
  }

  async function recoverJob(store: Store, job: JobRow): Promise<void> {
    await store.jobs.finish(job.id, 'interrupted');
    const open = job.domains.filter((d) => d.state !== 'done' && d.state !== 'failed');
    const installable: typeof open = [];
    for (const d of open) {
      const site = siteFor(config, d.domain);
      const lineage = await issuer.find(site.certName ?? site.domain.replace(/^\*\./, '')).catch(() => null);
      // installed as it is, never ordered again here: a lineage already due is left to a new run
      if (lineage && Date.now() < renewalWindowStart(lineage.notBefore.getTime(), lineage.notAfter.getTime(), config.renewal.windowFraction)) installable.push(d);
    }
    for (const d of open.filter((x) => !installable.includes(x))) {
      await store.jobs.updateDomain(job.id, d.domain, { state: 'failed', code: 'INTERRUPTED', message: `The run (job ${job.id}) was killed while ${d.domain} was ${d.state}; nothing of it was left half-done.`, finished: true });
    }
    if (installable.length) {
      emit({ domain: '*', stage: 'recover', status: 'info', message: `job ${job.id} was interrupted: installing the certificates it obtained (${installable.map((d) => d.domain).join(', ')})` });
      const batch = installable.length > 1 ? new BatchGate({ challenge: config.preflight.timeoutMs * 2 + 2000, vhost: config.batch.installWindowMs }) : undefined;
      await Promise.all(installable.map((d) => issueOne(d.domain, { job: job.id, batch, source: 'cli' })));
    }
    const after = await store.jobs.get(job.id);
    await store.jobs.finish(job.id, after && after.domains.every((d) => d.state === 'done') ? 'done' : 'failed');
  }

  async function checkOne(domain: string, options: IssueOptions): Promise<CheckResult> {
    const started = performance.now();
    const { ctx } = context(domain, 'dry-run', options);
    try {
      ctx.plan = await hooks.plan.promise(ctx.plan, ctx);
      for (const note of ctx.plan.notes) ctx.findings.push({ check: 'names', severity: 'info', message: note });
      for (const message of leftOutNames(ctx.plan.names, ctx.plan.site.vhost)) ctx.findings.push({ check: 'names', severity: 'warning', message, hint: 'Add them as aliases, or give the site "blockNames": "cover", to put them on the certificate too.' });
      await hooks.preflight.promise(ctx);
      await hooks.findings.promise(ctx);
      if (!ctx.skipChecks.has('port80') && ctx.plan.challenge === 'http-01') {
        // the self-check with the challenge location as issue would add it, on an in-memory copy
        let webroot = config.challengeDir;
        let link: { path: string; target: string } | undefined;
        const edits = await applyEdits(ctx, (tree) => {
          const plan = planChallengeEdit(tree, ctx.plan.names, { documentRoot: ctx.plan.site.documentRoot, fallbackWebroot: config.challengeDir, vhostFile: ctx.plan.site.vhost });
          webroot = plan.webroot;
          link = plan.link;
          return plan.edits;
        });
        if (link) await ensureAliasLink(link); // the self-check's token goes where the alias location reads
        await port80Check(ctx, webroot, edits.length > 0);
      }
    } catch (error) {
      const e = toAutoSslError(error);
      ctx.findings.push({ check: e.code.startsWith('VHOST') || e.code.startsWith('NGINX') ? 'port80' : 'plugin', severity: 'error', code: e.code, message: e.message, hint: e.hint });
    }
    return { domain, names: ctx.plan.names, ok: ctx.findings.every((f) => f.severity !== 'error' || f.resolved), findings: ctx.findings, ms: performance.now() - started };
  }

  /** What `check` says about a block's other names: they keep answering over HTTP, without redirect or HSTS. */
  function leftOutNames(names: readonly string[], vhostFile?: string): string[] {
    let tree: NginxTree;
    try {
      tree = loadTree();
    } catch {
      return [];
    }
    const out: string[] = [];
    const seen = new Set<ServerBlock>();
    for (const n of names) {
      const block = certificateBlock(tree, n, vhostFile);
      if (!block || seen.has(block)) continue;
      seen.add(block);
      const left = uncovered(answeredNames(tree, block, 'http'), names);
      if (left.length) out.push(`${block.file}:${lineColumn(block.config.source, block.directive.start).line} also answers ${left.join(', ')}, which the certificate will not cover: they keep answering as before, without redirect or HSTS`);
    }
    return out;
  }

  function blockRefs(located: Map<string, ServerBlock | null>): BlockRef[] {
    return [...located.entries()].map(([name, s]) => (s ? { name, file: s.file, line: lineColumn(s.config.source, s.directive.start).line, serverNames: s.names, listens: s.listens.map((l) => `${l.socket}${l.ssl ? ' ssl' : ''}`) } : { name, file: null }));
  }

  const engine: AutoSsl = {
    config,
    hooks,
    on(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async issue(domains, options = {}) {
      // one bad name stops the whole call before anything runs (recovery, the state database, any domain)
      for (const d of domains) domainOf(d);
      if (!options.dryRun) await recoverFirst();
      else await reportPending(options);
      const unique = [...new Set(domains)];
      const batch = unique.length > 1 && !options.dryRun ? new BatchGate({ challenge: config.preflight.timeoutMs * 2 + 2000, vhost: config.batch.installWindowMs }) : undefined;
      // a real run is a job, recorded before any domain starts (a killed run is finished by the next start)
      let job: string | undefined;
      if (!options.dryRun) {
        job = options.jobId ?? crypto.randomUUID();
        await state().jobs.create({ id: job, kind: 'issue', source: options.source ?? 'api', domains: unique.map(String), options: { force: options.force === true } });
      }
      // every domain runs at once: certbot processes are bounded by batch.concurrency, pre-flight by its own limit
      const results = await mapBounded(unique, options.concurrency ?? Math.max(unique.length, 1), (d) => issueOne(d, { ...options, batch, job }));
      if (job) {
        try {
          await state().jobs.finish(job, results.every((r) => r.ok) ? 'done' : 'failed');
        } catch (error) {
          // the job record is a report (as in jobTracker): a database locked past the wait must not turn the
          // domains' results, certificates served included, into an INTERNAL error of the command
          emit({ domain: '*', stage: 'job', status: 'warning', message: `STATE_UNAVAILABLE: could not record the end of job ${job} (${toAutoSslError(error).message.slice(0, 300)}); the results stand` });
        }
      }
      statusTree = null;
      if (!options.dryRun) {
        // a lineage this run created must get its renewals served: certbot renew alone would not reload nginx
        const created = results.filter((r) => r.lineage && !r.reused).map((r) => r.lineage!.name);
        const said = renewal.ensureDeployHook(core, [...new Set(created)]);
        if (said) {
          emit({ domain: '*', stage: 'renewal', status: said.warning ? 'warning' : 'info', message: said.message });
          for (const r of results) if (r.lineage && !r.reused) r.notes.push(said.message);
        }
      }
      const byDomain = new Map(unique.map((d, i) => [d, { ...results[i]!, jobId: job }]));
      return domains.map((d) => byDomain.get(d)!);
    },
    jobs: async (limit = 20) => readState().jobs.list(limit),
    job: async (id) => readState().jobs.get(id),
    async check(domains, options = {}) {
      const names = domains.map(domainOf);
      return mapBounded(names, options.concurrency ?? config.preflight.concurrency, (d) => checkOne(d, options));
    },
    async preview(input, options = {}) {
      const domain = domainOf(input);
      const { ctx, abort } = context(domain, 'preview', options);
      const result = await run(ctx, abort);
      let blocks: PreviewResult['blocks'] = { http: [], https: [] };
      try {
        const located = locateServers(loadTree(), result.names.length ? result.names : [domain], { vhostFile: ctx.plan.site.vhost });
        blocks = { http: blockRefs(located.http), https: blockRefs(located.https) };
      } catch (error) {
        if (result.ok) return { domain, names: result.names, ok: false, error: toAutoSslError(error), blocks, files: [], notes: result.notes };
      }
      return { domain, names: result.names, ok: result.ok, error: result.error, blocks, files: result.files, notes: result.notes };
    },
    status: (options = {}) => renewal.status(core, readState(), options.now, options.probe === true),
    async renew(options = {}) {
      renewal.checkCertName(config, options.certName); // before recovery or the state database
      await recoverFirst();
      return renewal.renew(core, options);
    },
    // the hooks validate certbot's environment before anything else (recovery included) touches anything
    deploy: (env) => renewal.deploy(core, env),
    renewHook: (phase, env) => renewal.renewHook(core, phase, env),
    dnsHook: (phase, env) => renewal.dnsHook(core, phase, env),
    async recover(options = {}) {
      if (options.discard) await discardJournal(journalDir, options.discard);
      recovered = true;
      return recoverEverything();
    },
    async pendingRecovery() {
      const journals = await pendingRecovery(journalDir);
      let pendingUndo = 0;
      try {
        pendingUndo = (await readState().undo.list({ state: 'open' })).length;
      } catch {
        pendingUndo = 0;
      }
      return { journals, undo: pendingUndo };
    },
    installHooks: async () => renewal.installHooks(core),
    deliverNotifications: () => renewal.deliverOutbox(core),
    async registerSite(raw, source = 'api') {
      const site = panelSite(fileConfig, raw, true)!;
      const fromFile = fileConfig.sites.find((s) => [s.domain, ...s.aliases].includes(site.domain));
      if (fromFile) return fromFile;
      for (const name of [site.domain, ...site.aliases]) {
        const holder = config.sites.find((s) => s.domain !== site.domain && [s.domain, ...s.aliases].includes(name));
        if (holder) throw new AutoSslError('CONFIG_INVALID', `${name} is a name of the site ${holder.domain} already.`, { hint: `Use ${holder.domain}, or take ${name} out of it first.` });
      }
      const i = config.sites.findIndex((s) => s.domain === site.domain);
      if (i >= 0) config.sites.splice(i, 1, site);
      else config.sites.push(site);
      await state().sites.upsert(site.domain, JSON.parse(JSON.stringify(site)) as Record<string, unknown>, source);
      return site;
    },
    async unregisterSite(domain) {
      if (fileConfig.sites.some((s) => s.domain === domain)) return;
      const i = config.sites.findIndex((s) => s.domain === domain);
      if (i >= 0) config.sites.splice(i, 1);
      await state().sites.delete(domain);
    },
    async certificate(input, options = {}) {
      const domain = normalizeDomain(input, { allowWildcard: true });
      // a panel asks for every domain on every page load: one tree load serves a second of them (a change asks fresh)
      if (options.fresh || !statusTree || Date.now() - statusTree.at > 1000) statusTree = { tree: loadTree(), at: Date.now() };
      let store: Store | null = null;
      try {
        store = readState();
      } catch {
        store = null;
      }
      return certificateOf(config, statusTree.tree, store, domain);
    },
    async uninstall(domain) {
      statusTree = null;
      const result = await uninstall(core, domain);
      statusTree = null;
      if (result.ok && result.deleted.length && !result.kept.length) await engine.unregisterSite(result.domain);
      // the config file's site stays: "issue --all" (and the renewal of its names) would put HTTPS back unasked
      const kept = result.ok ? fileConfig.sites.find((s) => s.domain === result.domain || s.aliases.includes(result.domain)) : undefined;
      if (kept) result.notes.push(`${result.domain} is still ${kept.domain === result.domain ? 'a site' : `a name of the site ${kept.domain}`} in ${fileConfig.filepath ?? 'the config'}: the next "autossl issue --all" puts HTTPS back; take it out of the config to keep it HTTP-only`);
      return result;
    },
    async installCertificate(domain, upload) {
      statusTree = null;
      try {
        return await installUpload(core, domain, upload);
      } finally {
        statusTree = null;
      }
    },
    async dnsProgress(domain) {
      try {
        return await renewal.dnsProgress(readState(), domain.replace(/^\*\./, ''));
      } catch {
        return null;
      }
    },
    async dnsProvider(input) {
      const domain = normalizeDomain(input, { allowWildcard: true });
      const { ctx, abort } = context(domain, 'dns-hook', { plan: { challenge: 'dns-01' } });
      const result = await run(ctx, abort);
      return result.ok && ctx.challenge?.type === 'dns-01' && ctx.challenge.solver ? ctx.challenge.solver.name : null;
    },
    async cancelJobDomain(jobId, domain, why) {
      await state().jobs.updateDomain(jobId, domain, { state: 'failed', code: 'CANCELLED', message: `${domain}: ${why}.`, finished: true });
    },
    async finishJob(jobId, jobState) {
      await state().jobs.finish(jobId, jobState);
    },
    async recordJob(id, domains, source = 'api') {
      await state().jobs.create({ id, kind: 'issue', source, domains });
    },
    async close() {
      await store?.close();
      await readOnlyStore?.close();
    },
  };

  /** Read-only runs say what a killed run left behind instead of repairing it. */
  async function reportPending(options: IssueOptions): Promise<void> {
    const pending = await engine.pendingRecovery().catch(() => null);
    if (!pending) return;
    const j = pending.journals;
    const say = (message: string): void => {
      const event: StageEvent = { domain: '*', stage: 'recover', status: 'warning', message };
      options.onEvent?.(event);
      emit(event);
    };
    if (j.restorable.length) say(`a killed run left ${j.restorable.join(', ')} half-edited; the next autossl issue (or autossl recover) restores it`);
    for (const c of j.conflicts) say(`${c.file} was changed after an interrupted run edited it (backup ${c.backup})`);
    for (const d of j.damaged) say(`journal ${d.journal}: ${d.reason}`);
    if (pending.undo) say(`${pending.undo} undo step(s) of killed runs are pending; autossl recover runs them`);
  }

  return engine;
}

