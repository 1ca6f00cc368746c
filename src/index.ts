/**
 * autossl's public API: everything the CLI, the agent, and plugin authors use. Import from "autossl" only; the
 * files behind it may move.
 *
 *     import { createAutoSsl, loadConfig } from 'autossl';
 *     const engine = await createAutoSsl(await loadConfig());
 *     const [result] = await engine.issue(['example.com']);
 */
export { createAutoSsl } from './engine.js';
export type { AutoSsl, BlockRef, CheckResult, CreateOptions, IssueOptions, PreviewResult, RecoverReport } from './engine.js';
export type { DomainResult } from './pipeline/pipeline.js';
export type { DomainCertificate } from './renewal/certificate.js';
export type { UninstallResult } from './manage.js';
export type { Upload } from './issuer/upload.js';

export { loadConfig } from './config/load.js';
export { DEFAULT_CONFIG, validateConfig } from './config/schema.js';
export type { AutoSslConfig, PluginSpec, SiteConfig, StoreSpec } from './config/schema.js';

export { definePlugin, isPlugin } from './pipeline/plugin.js';
export { Directives } from './pipeline/directives.js';
export type { DirectiveEntry } from './pipeline/directives.js';
export type { Plugin, PluginApi, PluginDefinition, PluginFactory } from './pipeline/plugin.js';
export { createHooks, HOOK_ORDER, STAGE } from './pipeline/hooks.js';
export type { HookName, Hooks, StageName } from './pipeline/hooks.js';
export type {
  ChallengeSetup,
  ChallengeType,
  DnsRecord,
  DnsSolver,
  DomainContext,
  DomainPlan,
  Finding,
  JsonValue,
  Notification,
  Outcome,
  RenewEvent,
  RunMode,
  Services,
  StageEvent,
  UndoHandle,
  UndoWhen,
} from './pipeline/context.js';
export type { CertificateInfo } from './issuer/certificate.js';
export type { LineageFiles as Lineage } from './issuer/issuer.js';
export { REPEATABLE_BY_KEY } from './installer/installer.js';
export type { IdentityRule, VhostEdit, DirectiveView, ServerView, Installer } from './installer/installer.js';
export type { DeliveryReport } from './renewal/outbox.js';
export type { DeployResult } from './renewal/deploy-hook.js';
export type { RenewOutcome, RenewReport } from './renewal/renew.js';
export type { StatusReport } from './renewal/status-report.js';
export type { CertState, StatusRow } from './renewal/status.js';
export type { Store, StoreContext, StoreFactory } from './store/store.js';
export type { HeldLock, Locker } from './store/locker.js';

export { AutoSslError, ERROR_CODES, errorKind, isAutoSslError, toAutoSslError } from './errors.js';
export type { ErrorCode, ErrorKind } from './errors.js';
export { normalizeDomain, normalizeDomains } from './domain.js';
export { CLOUDFLARE_RANGES, cloudflareMatcher } from './preflight/cloudflare.js';
