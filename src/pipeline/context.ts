/**
 * The types a plugin works with. One DomainContext per domain run: everything a stage reads or writes for that
 * domain lives on it, so many domains pass the hooks at once in one process with no shared mutable state
 * between them. Shared services (the config editor, nginx control, the certbot runner) are safe for concurrent
 * use by design.
 */
import type { AutoSslConfig, SiteConfig } from '../config/schema.js';
import type { Profile } from '../issuer/profile.js';
import type { AutoSslError } from '../errors.js';
import type { CertificateInfo } from '../issuer/certificate.js';
import type { Issuer, LineageFiles as Lineage } from '../issuer/issuer.js';
import type { Store } from '../store/store.js';
import type { UndoService } from '../undo.js';
import type { Semaphore } from '../bounded.js';
import type { BatchGate } from './batch.js';
import type { Hooks } from './hooks.js';
import type { EditTransaction, FileEdit, Installer } from '../installer/installer.js';
import type { NginxInstaller } from '../installer/nginx-installer.js';

/**
 * How a domain passes the hooks:
 *  - `issue`: the whole pipeline, for real;
 *  - `dry-run`: pre-flight for real, then every edit planned on an in-memory copy of the files, no certbot;
 *  - `preview`: like dry-run without pre-flight (`autossl vhost show --diff`);
 *  - `deploy`: a renewal certbot finished: from `issue` (which bails with the renewed lineage) to the end;
 *  - `dns-hook`: certbot's manual hook asks for the DNS-01 solver: `plan` and `challenge` only;
 *  - `install`: a certificate obtained elsewhere (an upload, a wildcard spread to more blocks): like `deploy`, the
 *    lineage is given.
 */
export type RunMode = 'issue' | 'dry-run' | 'preview' | 'deploy' | 'dns-hook' | 'install';

export type ChallengeType = 'http-01' | 'dns-01';

export interface DomainPlan {
  /** The certificate's names: the domain first, then its aliases (and names merged in, see `notes`). */
  names: string[];
  /** certbot's --cert-name: the lineage the certificate lives in. */
  certName: string;
  site: SiteConfig;
  challenge: ChallengeType;
  redirect: boolean;
  hsts: boolean;
  /** The ACME certificate profile asked for (site, else defaults); checked while planning (src/issuer/profile.ts). */
  profile?: Profile;
  /** Decisions made while planning that the user should see (shown by --dry-run and vhost show). */
  notes: string[];
  /**
   * Names added to the certificate only because the site asked to cover its block's names (`blockNames: "cover"`):
   * one whose pre-flight fails is left out (and said so) instead of failing the domain.
   */
  optionalNames: string[];
}

/** A TXT record the CA will look up: `_acme-challenge.<domain>` with the key authorization digest. */
export interface DnsRecord {
  /** The name being validated (without "*."). */
  domain: string;
  /** `_acme-challenge.<domain>`, without the trailing dot. */
  fqdn: string;
  value: string;
}

/**
 * A DNS-01 provider, returned by a plugin's `challenge` tap for dns-01 sites. `present` adds the record (an apex and
 * a wildcard of the same name need two values on one name: add, never replace), `cleanup` removes that value;
 * both must be idempotent. certbot calls them through its manual hooks, in a process of their own.
 */
export interface DnsSolver {
  name: string;
  present(record: DnsRecord): Promise<void>;
  cleanup(record: DnsRecord): Promise<void>;
}

export interface ChallengeSetup {
  type: ChallengeType;
  /** For http-01: the directory certbot writes tokens into. */
  webroot?: string;
  /** For dns-01: who writes the TXT records. */
  solver?: DnsSolver;
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
  status: 'start' | 'done' | 'error' | 'skip' | 'info' | 'warning';
  ms?: number;
  message?: string;
}

export interface Outcome {
  ok: boolean;
  error?: AutoSslError;
  /** Files put back to their bytes before the run after a failure. */
  rolledBack: string[];
}

/** JSON-compatible data: undo payloads and notifications are stored as JSON. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A recorded undo step: run it once to undo what the plugin did, or mark it done when undone otherwise. */
export interface UndoHandle {
  readonly id: number;
  /** Runs the plugin's handler for this step now, then marks it done. */
  run(): Promise<void>;
  /** Marks the step done without running it (the plugin undid the change itself). */
  done(): Promise<void>;
}

/** When a recorded undo step must run: after the run whatever its outcome, or only when it fails. */
export type UndoWhen = 'always' | 'failure';

/** What a notify tap receives (the webhook plugin POSTs it as JSON). */
export interface Notification {
  /** Stable per event: a tap may be called again for the same key after a failed delivery, never after success. */
  key: string;
  kind: 'renewal-failed' | 'renewal-due' | 'expired' | 'renewed' | 'deploy-failed' | 'backing-off';
  lineage: string;
  names: string[];
  notAfter: string | null;
  daysLeft: number | null;
  error?: { code: string | null; message: string | null };
  at: string;
  host: string;
}

/** The payload of `beforeRenew` / `afterRenew`: certbot's renewal run, whoever started it. */
export interface RenewEvent {
  readonly runId: string;
  phase: 'before' | 'after';
  /** Every lineage in certbot's config dir, and whether it is due (or forced) in this run. */
  lineages: Array<{ name: string; names: string[]; due: boolean }>;
  /** certbot was told --force-renewal. */
  forced: boolean;
  /** Set when certbot renews one certificate (--cert-name). */
  certName?: string;
  /** `certbot` (its timer, run by hand) or `autossl` (autossl renew). */
  startedBy: 'certbot' | 'autossl';
  /**
   * The process that owns the renewal run (certbot itself when its hooks run in processes of their own): undo steps
   * recorded for the run stay pending while it lives, and are recovered if it dies.
   */
  readonly owner?: string;
}

/**
 * What the engine lends every stage. The built-in stages use all of it; a plugin usually needs only its `api`
 * (see PluginApi) and the context, but may read the tree or run `nginx -t` here too.
 */
export interface Services {
  config: AutoSslConfig;
  hooks: Hooks;
  /** The web server's side (see installer/installer.ts): the pipeline and the stages go through it. */
  installer: Installer;
  /** nginx itself (the nginx installer's: kept here for plugins written before the Installer). */
  nginx: NginxInstaller['nginx'];
  /** Plans, writes and validates config edits under the config lock (see nginx/editor.ts). */
  editor: NginxInstaller['editor'];
  /** The config tree as nginx loads it now, or as the dry run's overlay would leave it. */
  loadTree: NginxInstaller['loadTree'];
  /**
   * The Store (the config's `store`; SQLite under stateDir by default), opened on first use. `readOnly` (dry runs, checks) never creates or
   * writes anything and works when the state directory is not writable.
   */
  state(options?: { readOnly?: boolean }): Store;
  undo: UndoService;
  /** At most `batch.concurrency` certbot processes at once in this process. */
  certbotSlots: Semaphore;
  /** Who obtains and renews certificates (certbot unless the config's `issuer` names a module). */
  issuer: Issuer;
  /** At most `preflight.concurrency` domains in pre-flight at once. */
  preflightSlots: Semaphore;
}

export interface DomainContext {
  readonly domain: string;
  /** Unique per run of this domain: undo steps and events are keyed by it. */
  readonly runId: string;
  readonly mode: RunMode;
  plan: DomainPlan;
  readonly services: Services;
  /** True in `dry-run` and `preview`: nothing is written and certbot does not run. */
  readonly dryRun: boolean;
  readonly force: boolean;
  /** Checks skipped on request (`--skip-check dns`). */
  readonly skipChecks: ReadonlySet<string>;
  findings: Finding[];
  challenge?: ChallengeSetup;
  lineage?: Lineage;
  /** The lineage's certificate, read after the `issue` stage (real runs only). */
  certificate?: CertificateInfo;
  /** Set when certbot was not needed (an existing certificate covers the names and is not due). */
  reusedLineage?: boolean;
  /** Every file edit this domain made (or would make, in a dry run), in order. */
  edits: FileEdit[];
  /** All writes go through this transaction so a failure takes them back. */
  readonly transaction: EditTransaction;
  /** Dry runs: the files as the planned edits would leave them. */
  readonly overlay: Map<string, string>;
  /** Whether nginx has loaded files this run changed (so a rollback must reload too). */
  reloadedWithChanges: boolean;
  /** Set when nginx must reload: changed config, or a certificate renewed behind a path nginx already serves. */
  needsReload: boolean;
  /** Where the TLS check connects after reload: address, port, and the name sent as SNI. */
  tlsEndpoints: Array<{ host: string; port: number; servername: string }>;
  events: StageEvent[];
  emit(event: Omit<StageEvent, 'domain'>): void;
  /** Per-domain memo: checks running in parallel share one DNS lookup per name. */
  memo<T>(key: string, compute: () => Promise<T>): Promise<T>;
  /** Aborted when the domain's deadline passes: long-running taps should stop. */
  readonly signal: AbortSignal;
  /** The batch this run belongs to (several domains in one `issue`): its edits share nginx -t and reloads. */
  readonly batch?: BatchGate;
}
