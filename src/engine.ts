/**
 * The engine: the one API the CLI, the agent and plugin authors use. One per process. This file is its composition
 * root: the kernel (engine/core.ts: hooks with the built-in stages and the configured plugins applied, the shared
 * services, a context per domain run) and the services over it (issue, preview, recovery, sites; renewal in
 * src/renewal), put together as `AutoSsl`.
 *
 * The engine prints nothing: what happens goes to whoever listens (`engine.on(listener)`, or `onEvent` per call).
 * Commands that change things first finish what a killed run left behind (file journals, undo steps); commands
 * that only read report it instead.
 */
import type { AutoSslConfig } from './config/schema.js';
import type { Plugin } from './pipeline/plugin.js';
import type { Store } from './store/store.js';
import { status } from './renewal/status-report.js';
import { checkCertName, renew } from './renewal/renew.js';
import { deploy } from './renewal/deploy-hook.js';
import { renewHook } from './renewal/renew-hook.js';
import { dnsHook } from './renewal/dns-hook.js';
import { deliverOutbox } from './renewal/outbox.js';
import { renewThroughIssuer } from './renewal/issuer-renew.js';
import { createKernel } from './engine/core.js';
import { issueService, type IssueService } from './engine/issue-service.js';
import { previewService } from './engine/preview-service.js';
import { recoveryService } from './engine/recovery-service.js';
import { sitesService } from './engine/sites-service.js';
import type { AutoSsl, CreateOptions, EngineCore } from './engine/types.js';

export type { DomainResult } from './pipeline/pipeline.js';
export type { AutoSsl, BlockRef, CheckResult, CreateOptions, EngineCore, IssueOptions, PreviewResult, RecoverReport } from './engine/types.js';
export { mapBounded } from './bounded.js';

/** Internal: the engine's state store, for the agent's job bookkeeping (src/agent/jobs.ts). A symbol survives `{ ...engine }`. */
const STATE = Symbol('autossl.state');

/** The state store of an engine createAutoSsl made (or of a copy of one); null for any other object. */
export function engineState(engine: AutoSsl): (() => Store) | null {
  return (engine as AutoSsl & { [STATE]?: () => Store })[STATE] ?? null;
}

/** Internal: the engine's kernel, for the fleet node (src/fleet/node.ts), which installs lineages through the pipeline. */
const CORE = Symbol('autossl.core');

/** The kernel of an engine createAutoSsl made; null for any other object. */
export function engineCore(engine: AutoSsl): EngineCore | null {
  return (engine as AutoSsl & { [CORE]?: EngineCore })[CORE] ?? null;
}

export async function createAutoSsl(fileConfig: AutoSslConfig, options: CreateOptions | readonly Plugin[] = {}): Promise<AutoSsl> {
  const opts: CreateOptions = Array.isArray(options) ? { plugins: options as readonly Plugin[] } : (options as CreateOptions);
  const k = await createKernel(fileConfig, opts);
  let issuing: IssueService | null = null;
  const recovery = recoveryService(k, () => issuing!, opts.recovered === true);
  k.recoverFirst = recovery.recoverFirst;
  issuing = issueService(k, recovery.reportPending);
  const preview = previewService(k);
  const sites = sitesService(k);

  const engine: AutoSsl & { [STATE]: () => Store; [CORE]: EngineCore } = {
    config: k.config,
    hooks: k.hooks,
    on(listener) {
      k.listeners.add(listener);
      return () => k.listeners.delete(listener);
    },
    issue: issuing.issue,
    jobs: async (limit = 20) => k.readState().jobs.list(limit),
    job: async (id) => k.readState().jobs.get(id),
    check: preview.check,
    preview: preview.preview,
    dnsProvider: preview.dnsProvider,
    status: (options = {}) => status(k, k.readState(), options.now, options.probe === true),
    async renew(options = {}) {
      checkCertName(k, options.certName); // before recovery or the state database
      await recovery.recoverFirst();
      // certbot renews its lineages itself (Issuer.renewDue: `certbot renew`, its deploy hook installs them); another issuer is driven by autossl
      if (k.config.issuer === 'certbot') return renew(k, options);
      // --pass-only runs before certbot's own renewals: another issuer has none, autossl renews its lineages
      return options.passOnly ? { results: [], notifications: { delivered: 0, failed: [], pending: 0 }, hookErrors: [] } : renewThroughIssuer(k, options);
    },
    // the hooks validate certbot's environment before anything else (recovery included) touches anything
    deploy: (env) => deploy(k, env),
    renewHook: (phase, env) => renewHook(k, phase, env),
    dnsHook: (phase, env) => dnsHook(k, phase, env),
    recover: recovery.recover,
    pendingRecovery: recovery.pendingRecovery,
    installHooks: async () => k.services.issuer.installHooks?.() ?? [],
    deliverNotifications: () => deliverOutbox(k),
    registerSite: sites.registerSite,
    unregisterSite: sites.unregisterSite,
    certificate: sites.certificate,
    uninstall: sites.uninstall,
    installCertificate: sites.installCertificate,
    dnsProgress: sites.dnsProgress,
    close: () => k.close(),
    [STATE]: k.state,
    [CORE]: k,
  };
  return engine;
}
