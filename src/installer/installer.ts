/**
 * The Installer seam (certbot's Installer, next to the Authenticator side of the `challenge`/`issue` hooks): what
 * the pipeline and the engine ask of the web server, and nothing more. It locates the blocks that answer a name,
 * plans and applies the HTTP-01 challenge edit and the TLS edit (through the domain's transaction, validated by
 * the server's own config test; on an in-memory copy in a dry run), tests, reloads, and says what is served per
 * name over TLS (SNI). nginx is the built-in one (nginx-installer.ts); the editor stays byte-exact behind it.
 *
 * A config snapshot (`C`) is the installer's own: the pipeline hands it back to the installer's planners, never
 * looks inside it.
 */
import type { DomainContext, DomainPlan } from '../pipeline/context.js';
import type { ChallengePlan, EditPlan, FileEdit, IdentityRule, VhostEdit } from '../nginx/edit.js';
import type { DirectiveView, ServerView } from '../nginx/view.js';
import type { EditTransaction } from '../nginx/transaction.js';
import type { RecoveryReport } from '../nginx/journal-recovery.js';
import type { CrossHostHop } from '../nginx/redirect-hops.js';
import type { StaplingWarning } from '../nginx/stapling.js';
import type { UninstallPlan } from '../nginx/uninstall.js';
import type { PlanLineages } from '../nginx/plan-names.js';
import type { HeldLock, Locker } from '../store/locker.js';

export type {
  ChallengePlan,
  EditPlan,
  FileEdit,
  IdentityRule,
  VhostEdit,
  DirectiveView,
  ServerView,
  EditTransaction,
  RecoveryReport,
  CrossHostHop,
  StaplingWarning,
  UninstallPlan,
  PlanLineages,
};
/** A path as a `vhost` hook value: refused when the server would read it as anything but one literal word. */
export { pathToken } from '../nginx/edit.js';
/** Directives a block may hold once per key (their first argument): see "When is a directive already there". */
export { REPEATABLE_BY_KEY } from '../nginx/edit.js';

/** A block that answers a name: where it is, its names, its sockets (`127.0.0.1:443 ssl`). */
export interface BlockInfo {
  file: string;
  line: number;
  serverNames: string[];
  sockets: string[];
}

/** The blocks answering each name, on port 80 and over TLS (null: none answers it there). */
export interface LocatedBlocks {
  http: Map<string, BlockInfo | null>;
  https: Map<string, BlockInfo | null>;
}

/** A certificate path the server's config names: as written, resolved, and where it is written. */
export interface CertificatePath {
  file: string;
  line: number;
  path: string;
  resolved: string;
}

/** A certificate file a block names: the path resolved, and the line that names it (a snippet's, when included). */
export interface CertificateRef {
  path: string;
  file: string;
  line: number;
}

/** A block with a TLS listen: where to connect to it, and the certificate files it names (a path with variables left out). */
export interface TlsBlock {
  block: BlockInfo;
  endpoint: { host: string; port: number };
  certificates: CertificateRef[];
}

/** A block that would hold a certificate, with the names it would hold it for (Installer.sites). */
export interface SiteBlock {
  /** The names, in config order: the first is the site's domain. */
  names: string[];
  block: BlockInfo;
  /** The document root the block (else the first block naming the name) serves, when a plain absolute path. */
  root?: string;
  /** The certificate path a TLS block names itself; null: not a TLS block, or none of its own. */
  certificate: string | null;
  /** The exact names (no patterns) the block answers, on port 80 and over TLS. */
  answered(): string[];
}

/** Where to check over TLS that a certificate is served: host, port and the name sent as SNI. */
export interface TlsEndpoint {
  host: string;
  port: number;
  servername: string;
}

export interface ChallengeOptions {
  /** The site's document root: the webroot when given. */
  documentRoot?: string;
  /** Where tokens go when no block serves a root of its own. */
  fallbackWebroot: string;
  /** Only blocks in this file are edited. */
  vhostFile?: string;
}

export interface TlsOptions {
  /** The TLS port when the edit names none. */
  httpsPort?: number;
  /** Certificates under these directories are kept apart (uploads): a wildcard spread leaves their blocks alone. */
  keepCertificatesUnder?: readonly string[];
}

export interface Installer<C = unknown> {
  readonly name: string;
  /** The server's config as it is (with `overlay`: files replaced by these texts, a dry run's planned edits). */
  load(overlay?: ReadonlyMap<string, string>): C;
  /** The blocks that answer the names; refuses names the server does not serve and ambiguous matches. */
  locate(config: C, names: readonly string[], options?: { vhostFile?: string }): LocatedBlocks;
  /**
   * The blocks the server picks for a name, on port 80 and over TLS, as it picks them (several: equally good
   * matches; none: the default server answers). For messages that say which block answered; never refuses.
   */
  blocksFor(config: C, name: string): { http: BlockInfo[]; https: BlockInfo[] };
  /**
   * Every certificate path the server's config names (nginx: each ssl_certificate line), in config order; paths with
   * variables and inline (data:) certificates are left out. Status checks that each exists and how long it lasts.
   */
  certificatePaths(config: C): CertificatePath[];
  /**
   * What the server answers a name with over TLS: the block it picks (null: none has the name over TLS), where to
   * connect to it (its first TLS listen: null when it has none), the certificate files it names in its order (an
   * inline `data:` one left out), and whether one of its certificate paths holds a variable (that one left out too);
   * `answered`: some block has the name, on port 80 or over TLS.
   */
  servedFiles(
    config: C,
    name: string,
  ): { answered: boolean; block: BlockInfo | null; endpoint: { host: string; port: number } | null; certificates: CertificateRef[]; variable: boolean };
  /**
   * The certificate path the TLS block the server picks for `name` names itself (its own first one, not one it
   * inherits), resolved; null: no TLS block has the name, or it names none of its own.
   */
  ownCertificate(config: C, name: string): string | null;
  /**
   * What re-pointing the TLS block the server picks for `name` at a certificate for `certNames` would take off
   * HTTPS: the names (its own, and those of `known` it answers) and wildcard patterns it serves covered now that
   * `certNames` does not cover. Empty when no TLS block has the name.
   */
  lostCover(config: C, name: string, certNames: readonly string[], known: readonly string[]): { names: string[]; patterns: string[] };
  /**
   * Every name the server answers that `accept` takes (it returns the name as a domain, or null to leave it out),
   * one entry per block that would hold its certificate (a name's TLS block, else its port-80 block), in config order.
   */
  sites(config: C, accept: (raw: string) => string | null): SiteBlock[];
  /** Every certificate and key path the server's config names (resolved): what may not be deleted. */
  referencedFiles(config: C): Set<string>;
  /**
   * Plans taking HTTPS off a domain (its blocks back to plain HTTP, the inverse of the TLS edit): the edits, notes,
   * the certificate files the blocks pointed at, and whether it was served over TLS at all. Throws VHOST_NOT_FOUND
   * when no block answers it.
   */
  planUninstall(config: C, domain: string, options: { vhostFile?: string; aliases?: readonly string[]; known?: readonly string[] }): UninstallPlan;
  /**
   * The block an uploaded certificate for `domain` goes into (its TLS block, else its port-80 block), the names of
   * it the certificate covers (the domain first) and those it serves covered over HTTPS now that `uploadNames` does
   * not (installing would take them off HTTPS). Throws VHOST_NOT_FOUND when no block answers the domain.
   */
  uploadTarget(
    config: C,
    domain: string,
    uploadNames: readonly string[],
    options: { vhostFile?: string; known?: readonly string[] },
  ): { block: BlockInfo; names: string[]; lost: string[] };
  /** Applies edits outside a domain run (uninstall): planned, written through `tx` and validated under the config lock. */
  edit(tx: EditTransaction, label: string, plan: (config: C) => FileEdit[]): Promise<FileEdit[]>;
  /** Takes back every write of `tx` (under the config lock); returns the files restored. */
  revertTransaction(tx: EditTransaction): Promise<string[]>;
  /** Every block with a TLS listen, in config order. */
  tlsBlocks(config: C): TlsBlock[];
  /** When the running server last read its certificates (epoch ms): a file written after it is not served yet; null: unknown. */
  loadedAt(config: C): number | null;
  /** Configuration the server warns about on every reload (nginx: ssl_stapling for a certificate without an OCSP URL). */
  configWarnings(config: C): StaplingWarning[];
  /** Why the server's config cannot be read as the server reads it (what is served is then unknown); empty: it can. */
  configErrors(config: C): string[];
  /**
   * Per block that will hold the certificate for `names` (a name's TLS block, else its port-80 block), the names it
   * answers over HTTP that the certificate leaves uncovered: they keep answering as before, without redirect or HSTS.
   */
  uncoveredNames(config: C, names: readonly string[], vhostFile?: string): Array<{ block: BlockInfo; names: string[] }>;
  /**
   * How the server answers the CA's HTTP-01 request for a name: the block it picks on port 80 (null: none has the
   * name, the default server answers), and whether that block serves the token (from `webroot`) or why not.
   */
  challengeRoute(config: C, name: string): { block: BlockInfo | null; served: boolean; webroot?: string; reason: string };
  /**
   * The redirects to other hosts the CA's request for `name` meets in the server's config (followed as the CA follows
   * them), and whether the config could be followed to the end (`complete: false`: the real request will tell).
   */
  challengeRedirects(config: C, name: string): { hops: CrossHostHop[]; complete: boolean };
  /**
   * What one certificate must cover, from the blocks the plan's names land on (a block holds one certificate): the
   * names the block serves covered now (kept, or refused with VHOST_CERT_CONFLICT), the sites sharing the block (one
   * certificate), a lineage `certbot --nginx` installed (adopted), and what the TLS edit would refuse
   * (VHOST_UNSUPPORTED): all before any order. `lineages`: the lineage a served path is in, a lineage's fullchain.
   */
  planNames(config: C, plan: DomainPlan, lineages: PlanLineages): DomainPlan;
  /** Plans the edit that makes the CA's HTTP-01 request for every name reach a webroot as a static file. */
  planChallenge(config: C, names: readonly string[], options: ChallengeOptions): ChallengePlan;
  /** What a challenge plan needs on disk before the CA asks (a link where an existing location reads tokens). */
  prepareChallenge(plan: ChallengePlan): Promise<void>;
  /** The `vhost` hook's payload for a domain run: what to ensure, and a read-only view of what is there now. */
  tlsEdit(ctx: DomainContext): VhostEdit;
  /** Plans the TLS edit: listens, certificate paths and the payload's statements (sync: it runs under the config lock). */
  planTls(config: C, edit: VhostEdit, options: TlsOptions & { serverVersion: [number, number, number] }): EditPlan;
  /** The server's version, for planTls. */
  version(): Promise<[number, number, number]>;
  /**
   * Applies what `plan` plans for this domain: for real under the config lock (planned against the files as they are
   * then, written through the domain's transaction, validated), or in a dry run on the domain's overlay.
   */
  apply(ctx: DomainContext, plan: (config: C) => FileEdit[]): Promise<FileEdit[]>;
  /** Takes back every write of this domain's transaction (under the config lock); returns the files restored. */
  revert(ctx: DomainContext): Promise<string[]>;
  /**
   * The server's config test (`nginx -t`): throws with the server's own words. `underConfigLock`: waits for edits
   * being written and validated by other runs (a rollback must not judge another run's unvalidated edit).
   */
  test(options?: { underConfigLock?: boolean }): Promise<void>;
  /** Makes the server load its config; concurrent asks share one reload. */
  reload(): Promise<void>;
  /** A domain run's transaction: every write journaled, so a failure (or the next start after a kill) takes it back. */
  transaction(label: string): EditTransaction;
  /** Locks the blocks that answer the names (per block, through the store's Locker) for a run that edits them. */
  lockBlocks(locker: Locker, names: readonly string[], vhostFile?: string): Promise<HeldLock | null>;
  /** Restores files a killed run left half-edited (under the config lock). */
  recover(): Promise<RecoveryReport>;
  /** What recover() would do, without doing it. */
  pendingRecovery(): Promise<RecoveryReport & { restorable: string[] }>;
  /** Drops a journal whose file changed since (the user resolved it by hand). */
  discardJournal(journal: string): Promise<void>;
  /** The serial of the certificate served at an endpoint for its SNI name. */
  served(endpoint: TlsEndpoint, timeoutMs?: number): Promise<string>;
}
