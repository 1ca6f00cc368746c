/**
 * One DomainContext per domain run: everything a stage reads or writes for that domain lives here, so many
 * domains can pass the hooks at once in one process with no shared mutable state between them. Shared
 * services (nginx control, certbot queue) are safe for concurrent use by design.
 */
import type { AutoSslConfig, SiteConfig } from '../config/schema.js';
import type { AutoSslError } from '../errors.js';
import type { CertificateInfo, Lineage } from '../certbot/lineage.js';
import type { FileEdit } from '../nginx/edit.js';
import type { NginxControl } from '../nginx/control.js';
import type { EditTransaction } from '../nginx/transaction.js';
import type { NginxTree } from '../nginx/tree.js';
import type { Hooks } from './hooks.js';
import type { StateStore } from '../state/store.js';

export interface DomainPlan {
  /** The certificate's names: the domain first, then its aliases. */
  names: string[];
  /** certbot's --cert-name. */
  certName: string;
  site: SiteConfig;
  redirect: boolean;
  hsts: boolean;
}

export interface ChallengeSetup {
  type: 'http-01' | 'dns-01';
  /** For http-01: the directory certbot writes tokens into. */
  webroot?: string;
  /** Undo anything the challenge set up that must not outlive the run. */
  cleanup?: () => Promise<void>;
}

export interface Finding {
  /** The check's name, as `--skip-check` takes it: dns, caa, cloudflare, port80, budget. */
  check: string;
  /** The name (domain or alias) the finding is about. */
  name?: string;
  severity: 'error' | 'warning' | 'info';
  code?: string;
  message: string;
  hint?: string;
  /** A plugin that can act on this finding marks it resolved instead of failing the domain. */
  resolved?: boolean;
}

export interface StageEvent {
  domain: string;
  stage: string;
  plugin?: string;
  status: 'start' | 'done' | 'error' | 'skip' | 'info';
  ms?: number;
  message?: string;
}

export interface Outcome {
  ok: boolean;
  error?: AutoSslError;
  /** Files restored to their original bytes after a failure. */
  rolledBack: string[];
}

/** What the engine lends every stage. */
export interface Services {
  config: AutoSslConfig;
  /** The state store, opened on first use. */
  state(): StateStore;
  nginx: NginxControl;
  /** The config tree as nginx loads it now (cached per file: cheap to call again after an edit). */
  loadTree(): NginxTree;
  hooks: Hooks;
}

export interface DomainContext {
  readonly domain: string;
  plan: DomainPlan;
  readonly services: Services;
  readonly dryRun: boolean;
  readonly force: boolean;
  /** Checks skipped on request (`--skip-check dns`). */
  readonly skipChecks: ReadonlySet<string>;
  findings: Finding[];
  challenge?: ChallengeSetup;
  lineage?: Lineage;
  certificate?: CertificateInfo;
  /** Set when certbot was not needed (an existing certificate covers the names and is not due). */
  reusedLineage?: boolean;
  /** Every file edit this domain made (or would make, in a dry run), in order. */
  edits: FileEdit[];
  /** All writes go through this transaction so a failure restores every byte. */
  transaction: EditTransaction;
  /** Whether this run changed files nginx has loaded (so a rollback must reload too). */
  reloadedWithChanges: boolean;
  /** Set by a stage when the config must be validated and reloaded. */
  needsReload: boolean;
  /** Where the TLS check connects after reload: address, port, and the name sent as SNI. */
  tlsEndpoints: Array<{ host: string; port: number; servername: string }>;
  events: StageEvent[];
  emit(event: Omit<StageEvent, 'domain'>): void;
  /** Per-domain memo: checks running in parallel share one DNS lookup per name. */
  memo<T>(key: string, compute: () => Promise<T>): Promise<T>;
}

/** What the `notify` hook carries (the webhook plugin POSTs it as JSON). */
export interface Notification {
  kind: 'renewal-failed' | 'renewal-due' | 'expired';
  lineage: string;
  names: string[];
  notAfter: string | null;
  daysLeft: number | null;
  error?: { code: string | null; message: string | null };
  at: string;
  host: string;
}

export interface AutoSslApi {
  readonly config: AutoSslConfig;
}

/** A plugin: the same shape for built-in stages and user plugins. */
export interface Plugin {
  name: string;
  apply(hooks: Hooks, api: AutoSslApi & { options: Record<string, unknown> }): void;
}
