/**
 * certbot's deploy hook: a renewed lineage goes through the pipeline from `issue` on, so every plugin's
 * vhost/validate/reload/verify/finally taps run on every renewal; then the renewal (or its failure) is notified.
 */
import path from 'node:path';
import { covers, readCertificate } from '../issuer/certificate.js';
import type { LineageFiles as Lineage } from '../issuer/issuer.js';
import { uploadDirOf } from '../issuer/upload.js';
import type { Installer } from '../installer/installer.js';
import { siteOfName } from '../config/schema.js';
import type { EngineCore } from '../engine.js';
import { AutoSslError, toAutoSslError } from '../errors.js';
import type { DomainResult } from '../pipeline/pipeline.js';
import { scanLineages, vhostCertificateRefs } from './scan.js';
import { statusRows } from './status.js';
import { deliverOutbox, enqueue, notification } from './outbox.js';

export interface DeployResult {
  lineage: string;
  domains: string[];
  ok: boolean;
  /** Run inside autossl's own certonly (an issue): nothing done, the issue installs the certificate itself. */
  skipped?: boolean;
  error?: AutoSslError;
  changedFiles: string[];
  serial: string;
  served: Array<{ host: string; port: number; servername: string }>;
  /** The pipeline run (absent when no vhost serves the lineage's names over TLS). */
  run?: DomainResult;
}

/**
 * Whether the name's TLS block serves a certificate other than this lineage that covers it: an upload (kept out of
 * renewal) or another lineage (a wildcard spread over subdomain blocks). A renewal never takes a block from it.
 */
function servedByAnother<C>(config: EngineCore['config'], installer: Installer<C>, snapshot: C, name: string, lineage: string): boolean {
  const p = installer.ownCertificate(snapshot, name);
  if (!p) return false;
  const full = path.resolve(p);
  if (uploadDirOf(config, full)) return true;
  const live = path.resolve(config.certbot.configDir, 'live') + path.sep;
  if (!full.startsWith(live) || full.slice(live.length).split(path.sep)[0] === lineage) return false;
  try {
    return covers(readCertificate(full).names, name);
  } catch {
    return false;
  }
}

/** Re-pointing the block serving `name` at a certificate for `certNames` would take another name (or wildcard) it serves covered off HTTPS. */
function uncoversOthers<C>(config: EngineCore['config'], installer: Installer<C>, snapshot: C, name: string, certNames: readonly string[]): boolean {
  const lost = installer.lostCover(
    snapshot,
    name,
    certNames,
    config.sites.flatMap((s) => [s.domain, ...s.aliases]),
  );
  return lost.names.length + lost.patterns.length > 0;
}

/**
 * A renewed lineage into nginx: the names nginx already serves over TLS go through the pipeline from `issue` on
 * (vhost re-pointed, nginx -t, reload, TLS check, plugins); with none, nginx reloads to load the new files.
 */
export async function deployLineage(
  core: EngineCore,
  lineage: Lineage,
  certNames: readonly string[],
  domains: readonly string[],
  serial: string,
): Promise<DeployResult> {
  const { config } = core;
  const name = lineage.name;
  const store = core.services.state();
  // Only names nginx already serves over TLS are re-pointed; a name without a TLS server is left alone.
  const { installer } = core.services;
  const snapshot = installer.load();
  const tlsNames = domains.filter(
    (d) =>
      installer.blocksFor(snapshot, d).https.length === 1 &&
      !servedByAnother(config, installer, snapshot, d, name) &&
      !uncoversOthers(config, installer, snapshot, d, certNames),
  );
  const result: DeployResult = { lineage: name, domains: [...domains], ok: true, changedFiles: [], serial, served: [] };
  if (!tlsNames.length) {
    // nothing to re-point; nginx may still serve these files by a path of its own: reload to load them
    try {
      await installer.test();
      await installer.reload();
      await store.attempts.record({ kind: 'deploy', domain: domains[0] ?? name, lineage: name, ok: true });
    } catch (error) {
      result.ok = false;
      result.error = toAutoSslError(error);
      await store.attempts.record({
        kind: 'deploy',
        domain: domains[0] ?? name,
        lineage: name,
        ok: false,
        code: result.error.code,
        message: result.error.message,
      });
    }
  } else {
    const site = tlsNames.map((n) => siteOfName(config, n)).find((s) => s !== undefined);
    const { ctx, abort } = core.context(tlsNames[0]!, 'deploy', {
      lineage,
      // a lineage autossl does not manage keeps its vhost as it is: no redirect or HSTS it was not asked for
      plan: {
        names: tlsNames,
        certName: name,
        redirect: site ? (site.redirect ?? config.defaults.redirect) : false,
        hsts: site ? (site.hsts ?? config.defaults.hsts) : false,
      },
    });
    ctx.needsReload = true; // the certificate files behind the vhost's paths changed
    const run = await core.run(ctx, abort);
    result.run = run;
    result.ok = run.ok;
    result.error = run.error;
    result.changedFiles = run.files.map((f) => f.file);
    result.served = run.ok ? ctx.tlsEndpoints : [];
  }
  return result;
}

export async function deploy(core: EngineCore, env: NodeJS.ProcessEnv): Promise<DeployResult> {
  const { config } = core;
  const { issuer } = core.services;
  // the issuer says which of its lineages was renewed (certbot: RENEWED_LINEAGE), checked before anything is touched
  if (!issuer.renewedLineage) {
    throw new AutoSslError('HOOK_INPUT_INVALID', `Refusing the deploy hook: the issuer ${issuer.name} runs none. Nothing was touched.`, {
      hint: 'autossl renew renews and installs the lineages of this issuer itself.',
    });
  }
  const { id: name, domains } = issuer.renewedLineage(env);
  // certbot 5 runs the deploy hook inside autossl's own certonly: the issue run installs it (once), and an issue
  // is no renewal to notify about
  if (issuer.insideOwnOrder?.(env)) return { lineage: name, domains, ok: true, skipped: true, changedFiles: [], serial: '', served: [] };
  await core.recoverFirst();
  const lineage = issuer.files?.(name) ?? null;
  if (!lineage) throw new AutoSslError('CERTBOT_LINEAGE_UNKNOWN', `certbot has no renewal config for ${name}.`);
  const store = core.services.state();
  const info = readCertificate(lineage.cert);
  const result = await deployLineage(core, lineage, info.names, domains, info.serial);
  const { installer } = core.services;
  const refs = vhostCertificateRefs(installer.certificatePaths(installer.load()), config.certbot.configDir);
  const rows = statusRows(await scanLineages(config.certbot.configDir, store, refs), refs, Date.now(), config.renewal.windowFraction);
  const row = rows.find((r) => r.lineage === name) ?? { lineage: name, names: info.names, notAfter: info.notAfter.toISOString(), daysLeft: null };
  const kind = result.ok ? 'renewed' : 'deploy-failed';
  await enqueue(
    store,
    notification(core, kind, `${kind}:${name}:${info.serial}`, row, result.error ? { code: result.error.code, message: result.error.message } : undefined),
  );
  await deliverOutbox(core);
  return result;
}
