/**
 * The engine's types: what callers get (`AutoSsl` and the results of its commands) and what its services and the
 * renewal functions share (`EngineCore`).
 */
import type { AutoSslConfig, SiteConfig } from '../config/schema.js';
import type { AutoSslError } from '../errors.js';
import type { RecoveryReport } from '../installer/installer.js';
import type { Hooks } from '../pipeline/hooks.js';
import type { DomainContext, DomainPlan, Finding, RunMode, Services, StageEvent } from '../pipeline/context.js';
import type { Plugin } from '../pipeline/plugin.js';
import type { DomainResult } from '../pipeline/pipeline.js';
import type { JobRow } from '../store/store.js';
import type { UndoRunReport } from '../undo.js';
import type { DnsPhase } from '../renewal/dns-hook.js';
import type { DomainCertificate } from '../renewal/certificate.js';
import type { UninstallResult } from '../manage.js';
import type { Upload } from '../issuer/upload.js';
import type { StatusReport } from '../renewal/status-report.js';
import type { RenewOptions, RenewReport } from '../renewal/renew.js';
import type { DeployResult } from '../renewal/deploy-hook.js';
import type { DeliveryReport } from '../renewal/outbox.js';

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
  renew(options?: RenewOptions): Promise<RenewReport>;
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
  dnsProgress(domain: string): Promise<{ phase: DnsPhase; message: string; at: number } | null>;
  /** Which DNS-01 provider (plugin) would answer for a domain if it used DNS-01; null when none would. */
  dnsProvider(domain: string): Promise<string | null>;
  close(): Promise<void>;
}

/** Internal: what the renewal functions and the engine methods share. */
export interface EngineCore {
  readonly config: AutoSslConfig;
  readonly hooks: Hooks;
  readonly services: Services;
  readonly host: string;
  emit(event: StageEvent): void;
  /** A context for one domain run. */
  context(
    domain: string,
    mode: RunMode,
    options?: IssueOptions & { plan?: Partial<DomainPlan>; lineage?: DomainContext['lineage'] },
  ): { ctx: DomainContext; abort: AbortController };
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
