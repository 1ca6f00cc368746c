/**
 * The Store seam: everything autossl remembers between runs and shares between processes (the CLI, certbot's
 * hooks, the agent). Every method is async so a store over the network (PostgreSQL for a fleet, issue 24) fits
 * the same shape as the built-in SQLite one (src/store/sqlite/). Each record has its own typed table: there is
 * no untyped key-value side channel.
 *
 * A store is chosen by the config's `store` key: "sqlite" (the default) or a module whose default export is a
 * StoreFactory (see src/store/open.ts).
 */
import type { AutoSslConfig } from '../config/schema.js';
import type { Locker } from './locker.js';

export type JobDomainState = 'queued' | 'checking' | 'challenge' | 'issuing' | 'installing' | 'done' | 'failed';

export interface JobRow {
  id: string;
  kind: string;
  owner: string;
  state: 'running' | 'done' | 'failed' | 'interrupted';
  source: string;
  createdAt: number;
  finishedAt: number | null;
  options: Record<string, unknown>;
  domains: Array<{
    domain: string;
    state: JobDomainState;
    code: string | null;
    message: string | null;
    acme: unknown;
    lineage: string | null;
    stages: Array<{ stage: string; ms: number }>;
    startedAt: number | null;
    updatedAt: number;
    finishedAt: number | null;
  }>;
}

export interface JobDomainUpdate {
  state?: JobDomainState;
  code?: string | null;
  message?: string | null;
  acme?: unknown;
  lineage?: string | null;
  stages?: unknown;
  finished?: boolean;
}

export interface AttemptRecord {
  kind: 'issue' | 'renew' | 'deploy' | 'install' | 'uninstall';
  domain: string;
  lineage?: string;
  ok: boolean;
  code?: string;
  message?: string;
  ms?: number;
}

export interface CertificateRow {
  lineage: string;
  names: string[];
  certPath: string;
  fileKey: string | null;
  notBefore: number | null;
  notAfter: number | null;
  serial: string | null;
  issuer: string | null;
  keyType: string | null;
  vhosts: string[];
  lastAttemptAt: number | null;
  lastAttemptKind: string | null;
  lastOutcome: string | null;
  lastErrorCode: string | null;
  lastErrorMessage: string | null;
  lastErrorAt: number | null;
  consecutiveFailures: number;
  renewedAt: number | null;
}

/** What a scan of the certificate files knows (the attempt columns are kept by attempts.record). */
export type CertificateFacts = Omit<
  CertificateRow,
  'lastAttemptAt' | 'lastAttemptKind' | 'lastOutcome' | 'lastErrorCode' | 'lastErrorMessage' | 'lastErrorAt' | 'consecutiveFailures' | 'renewedAt'
>;

/** The last revocation answer for a lineage's certificate (a CRL or OCSP check is slow: it is kept). */
export interface RevocationRecord {
  serial: string;
  state: 'good' | 'revoked' | 'none' | 'unknown';
  at: number;
  source?: string;
}

export interface UndoStepRow {
  id: number;
  runId: string;
  owner: string;
  plugin: string;
  kind: string;
  payload: string;
  when: 'always' | 'failure';
  state: 'pending' | 'running' | 'done';
  attempts: number;
  lastError: string | null;
  createdAt: number;
}

export interface OutboxRow {
  id: number;
  key: string;
  kind: string;
  payload: string;
  attempts: number;
  /** Taps (plugin names) that already took this notification. */
  deliveredTo: string[];
}

export type OutboxEntry = OutboxRow & { deliveredAt: number | null; lastError: string | null; nextAttemptAt: number };

export interface SiteRow {
  domain: string;
  site: Record<string, unknown>;
  source: string;
}

/** A CA's rate limit on an account: no order before `until`. */
export interface RateLimitRecord {
  until: number;
  message: string;
}

/** A lineage as certbot's renew pre hook saw it, for its post hook (another process) to compare. */
export interface RenewRunLineage {
  name: string;
  due?: boolean;
  serial: string | null;
}

export type DnsPhase = 'dns_challenge' | 'dns_propagation' | 'le_verify';

export interface DnsProgressRecord {
  phase: DnsPhase;
  message: string;
  at: number;
}

/** Batches of domains (a CLI run, an agent's batch) and each domain's progress in them. */
export interface JobStore {
  /** Records a job, or adds domains to one this process recorded already. */
  create(job: { id: string; kind: string; source: string; domains: readonly string[]; options?: Record<string, unknown> }): Promise<void>;
  updateDomain(jobId: string, domain: string, fields: JobDomainUpdate): Promise<void>;
  finish(jobId: string, state: 'done' | 'failed' | 'interrupted'): Promise<void>;
  list(limit?: number): Promise<JobRow[]>;
  get(id: string): Promise<JobRow | null>;
  /** Jobs still marked running whose process is gone. */
  orphaned(): Promise<JobRow[]>;
  /** True once per job: the agent queues the domains of a job a killed agent left again, only once. */
  markRequeued(jobId: string): Promise<boolean>;
  /**
   * Makes this process the owner of a running job whose owner was `from` (a process found dead): true for exactly
   * one caller however many race. `note` is appended to the job's options.handedOver (who took it, from whom).
   */
  takeOver(jobId: string, from: string, note: Record<string, unknown>): Promise<boolean>;
}

/** Outcomes of issue/renew/deploy/install/uninstall, and the CA's validation failures (the per-name budget). */
export interface AttemptStore {
  /** Records an attempt and keeps its certificate's last-outcome columns. */
  record(attempt: AttemptRecord, at?: number): Promise<void>;
  last(domain: string): Promise<(AttemptRecord & { at: number }) | null>;
  list(domain?: string): Promise<Array<AttemptRecord & { at: number }>>;
  recordValidationFailure(name: string, detail: string, at?: number): Promise<void>;
  /** Failed validations of `name` since `since` (ms epoch), oldest first. */
  validationFailures(name: string, since: number): Promise<Array<{ at: number; detail: string }>>;
}

export interface CertificateStore {
  list(): Promise<CertificateRow[]>;
  get(lineage: string): Promise<CertificateRow | null>;
  /** Writes what a scan found, all rows at once. */
  upsert(rows: readonly CertificateFacts[]): Promise<void>;
  delete(lineage: string): Promise<void>;
  deleteExcept(lineages: readonly string[]): Promise<void>;
  revocation(lineage: string): Promise<RevocationRecord | null>;
  setRevocation(lineage: string, record: RevocationRecord): Promise<void>;
}

/** Sites a panel described through the agent (not in the config file). */
export interface SiteStore {
  list(): Promise<SiteRow[]>;
  upsert(domain: string, site: Record<string, unknown>, source: string): Promise<void>;
  delete(domain: string): Promise<void>;
}

/** Notifications, each delivered once to each notify tap, however many processes deliver. */
export interface OutboxStore {
  /** Queues a notification once per key; false when that key was queued before. */
  enqueue(key: string, kind: string, payload: string, at?: number): Promise<boolean>;
  /** Claims the notifications due (not claimed by a live process): two deliverers never send one twice. */
  claim(now?: number, limit?: number): Promise<OutboxRow[]>;
  markDeliveredTo(id: number, plugin: string): Promise<void>;
  settle(id: number, result: { delivered: true } | { delivered: false; error: string; retryAt: number }): Promise<void>;
  list(): Promise<OutboxEntry[]>;
}

/** Plugins' undo steps (changes outside nginx's files), run after a failure or by recovery. */
export interface UndoStore {
  add(step: { runId: string; plugin: string; kind: string; payload: string; when: 'always' | 'failure'; owner?: string }): Promise<number>;
  list(filter?: { runId?: string; state?: 'pending' | 'open' }): Promise<UndoStepRow[]>;
  /** True for exactly one caller, only while the step is pending (or its runner died). */
  claim(id: number): Promise<boolean>;
  finish(id: number, error?: string): Promise<void>;
}

/** Signed agent requests seen: a second one inside the window is a replay. */
export interface ReplayStore {
  /** Records a signature until `expiresAt`; false when it was seen already. */
  remember(signature: string, expiresAt: number, now?: number): Promise<boolean>;
}

export interface RateLimitStore {
  /** The limit a CA (by its directory URL, or "letsencrypt") put on this account, if any. */
  get(server: string): Promise<RateLimitRecord | null>;
  set(server: string, record: RateLimitRecord): Promise<void>;
}

export interface RenewRunStore {
  put(runId: string, lineages: readonly RenewRunLineage[]): Promise<void>;
  /** The lineages `put` recorded for the run, removed from the store. */
  take(runId: string): Promise<RenewRunLineage[]>;
}

export interface DnsProgressStore {
  get(domain: string): Promise<DnsProgressRecord | null>;
  set(domain: string, record: DnsProgressRecord): Promise<void>;
}

/** A node of a fleet (issue 24), as its last heartbeat left it. */
export interface FleetNodeRow {
  node: string;
  seenAt: number;
}

/** An HTTP-01 token (or a pre-flight probe) every node of the fleet serves under /.well-known/acme-challenge/. */
export interface FleetChallengeRow {
  token: string;
  content: string;
  node: string;
  at: number;
}

/** A lineage as the node that obtained it published it: every node installs it. `key` may be encrypted (enc:v1:...). */
export interface FleetLineageRow {
  id: string;
  names: string[];
  serial: string;
  notAfter: number;
  cert: string;
  chain: string;
  fullchain: string;
  key: string;
  node: string;
  at: number;
}

/** What a node serves for a lineage (its first name over SNI), as it last looked. */
export interface FleetServedRow {
  node: string;
  lineage: string;
  serial: string | null;
  error: string | null;
  at: number;
}

/**
 * The fleet's shared records (issue 24): nodes' heartbeats, published challenge tokens and each node's
 * acknowledgement, the lineages every node installs, and what each node serves. Every method is one statement or
 * one small transaction: a store over the network implements each as such.
 */
export interface FleetStore {
  heartbeat(node: string, at?: number): Promise<void>;
  nodes(): Promise<FleetNodeRow[]>;
  publishChallenge(row: FleetChallengeRow): Promise<void>;
  /** Removes the token and its acknowledgements. */
  withdrawChallenge(token: string): Promise<void>;
  challenges(): Promise<FleetChallengeRow[]>;
  ack(token: string, node: string): Promise<void>;
  acks(token: string): Promise<string[]>;
  /** Keeps the newer of two publications of one lineage (by notAfter, then at). */
  putLineage(row: FleetLineageRow): Promise<void>;
  /** Each lineage's id and serial, for a cheap poll. */
  lineageSerials(): Promise<Array<{ id: string; serial: string }>>;
  lineage(id: string): Promise<FleetLineageRow | null>;
  reportServed(rows: readonly FleetServedRow[]): Promise<void>;
  served(): Promise<FleetServedRow[]>;
}

/**
 * The CA's ARI (RFC 9773) answer for a lineage's current certificate: its suggested renewal window, when to ask
 * again (Retry-After, kept between 6 hours and a day) and the moment autossl picked inside the window.
 */
export interface AriWindowRecord {
  /** The RFC 9773 certificate id the answer is for (a renewed certificate has another: asked anew). */
  certId: string;
  serial: string;
  /** The suggested window (ms epoch); null when the CA has no renewalInfo or the answer failed. */
  start: number | null;
  end: number | null;
  explanationUrl: string | null;
  /** The random moment inside the window a renewal is due (RFC 9773 section 4.2). */
  renewAt: number | null;
  fetchedAt: number;
  nextFetchAt: number;
  /** Why the last fetch gave no window (no renewalInfo in the directory, HTTP error, malformed answer). */
  error: string | null;
}

export interface AriWindowStore {
  get(lineage: string): Promise<AriWindowRecord | null>;
  list(): Promise<Array<AriWindowRecord & { lineage: string }>>;
  set(lineage: string, record: AriWindowRecord): Promise<void>;
  delete(lineage: string): Promise<void>;
}

/**
 * Consecutive failed authorizations of one name with one ACME account (src/renewal/backoff.ts): past a threshold no
 * order is placed before `until`, so the CA never pauses the name. A success removes the record.
 */
export interface BackoffRecord {
  /** Consecutive failed authorizations (autossl's orders and certbot's renewals), since the last success. */
  failures: number;
  lastError: string;
  lastAt: number;
  /** No order for the name before this (ms epoch); null below the threshold. */
  until: number | null;
  /** The CA paused the account for the name: the page that lifts it (Let's Encrypt's self-service portal). */
  unpauseUrl: string | null;
}

export interface BackoffStore {
  /** `account`: the CA's directory URL (one certbot account per CA), or "letsencrypt". */
  get(account: string, name: string): Promise<BackoffRecord | null>;
  list(): Promise<Array<BackoffRecord & { account: string; name: string }>>;
  set(account: string, name: string, record: BackoffRecord): Promise<void>;
  clear(account: string, name: string): Promise<void>;
}

export interface Store {
  /** "sqlite", or the name a custom store gives itself. */
  readonly kind: string;
  /** Where it keeps its data, for messages (a directory, a URL without credentials). */
  readonly location: string;
  /** True when it could only be opened for reading: writes fail, the callers that only report skip them. */
  readonly readOnly: boolean;
  readonly jobs: JobStore;
  readonly attempts: AttemptStore;
  readonly certificates: CertificateStore;
  readonly sites: SiteStore;
  readonly outbox: OutboxStore;
  readonly undo: UndoStore;
  readonly replay: ReplayStore;
  readonly rateLimits: RateLimitStore;
  readonly renewRuns: RenewRunStore;
  readonly dnsProgress: DnsProgressStore;
  readonly ariWindows: AriWindowStore;
  readonly backoff: BackoffStore;
  /** Locks per name, per block, per job: a store shared by several nodes brings locks they share. */
  readonly locker: Locker;
  /** The fleet's records (issue 24); absent in a store that has none (a fleet needs them). */
  readonly fleet?: FleetStore;
  close(): Promise<void>;
}

/** What a custom store module's default export is given. */
export interface StoreContext {
  config: Readonly<AutoSslConfig>;
  /** The `options` of the config's `store: { module, options }`. */
  options: Record<string, unknown>;
  readOnly: boolean;
  /** Opens the built-in SQLite store of this config (for a store that wraps it). */
  sqlite(): Store;
}

export type StoreFactory = (ctx: StoreContext) => Store;
