/**
 * certbot's deploy hook: a renewed lineage goes through the pipeline from `issue` on, so every plugin's
 * vhost/validate/reload/verify/finally taps run on every renewal; then the renewal (or its failure) is notified.
 */
import fs from 'node:fs';
import path from 'node:path';
import { insideAutosslCertonly } from '../certbot/hooks.js';
import { readLineage } from '../certbot/lineage.js';
import { covers, readCertificate } from '../issuer/certificate.js';
import type { LineageFiles as Lineage } from '../issuer/issuer.js';
import { uploadDirOf } from '../issuer/upload.js';
import type { Installer } from '../installer/installer.js';
import { siteOfName } from '../config/schema.js';
import { normalizeDomain } from '../domain.js';
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

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/** Validates certbot's RENEWED_LINEAGE / RENEWED_DOMAINS before anything is touched. */
export function validateDeployEnv(configDir: string, env: NodeJS.ProcessEnv): { name: string; domains: string[] } {
  const lineage = env.RENEWED_LINEAGE;
  const domainsRaw = env.RENEWED_DOMAINS;
  const refuse = (why: string): never => {
    throw new AutoSslError('HOOK_INPUT_INVALID', `Refusing the deploy hook: ${why}. Nothing was touched.`, {
      hint: 'autossl deploy-hook is meant to be run by certbot after a renewal (see autossl install-hooks).',
    });
  };
  if (!lineage) refuse('RENEWED_LINEAGE is not set');
  if (domainsRaw === undefined || domainsRaw.trim() === '') refuse('RENEWED_DOMAINS is not set');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(lineage!)) refuse('RENEWED_LINEAGE contains control characters');
  if (lineage!.length > 4096 || domainsRaw!.length > 100_000) refuse('RENEWED_LINEAGE or RENEWED_DOMAINS is far too long');
  if (!path.isAbsolute(lineage!) || lineage!.split('/').includes('..') || lineage!.split('/').includes('.'))
    refuse(`RENEWED_LINEAGE ${JSON.stringify(lineage)} is not a plain absolute path`);
  const live = path.resolve(configDir, 'live');
  if (path.dirname(path.resolve(lineage!)) !== live) refuse(`RENEWED_LINEAGE ${JSON.stringify(lineage)} is not a lineage directory inside ${live}`);
  const name = path.basename(lineage!);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) refuse(`the lineage name ${JSON.stringify(name)} is not a certbot certificate name`);
  let realLive: string;
  let realLineage: string;
  let realConfig: string;
  try {
    realConfig = fs.realpathSync(configDir);
    realLive = fs.realpathSync(live);
    realLineage = fs.realpathSync(lineage!);
  } catch {
    return refuse(`RENEWED_LINEAGE ${JSON.stringify(lineage)} does not exist`);
  }
  if (path.dirname(realLineage) !== realLive) refuse(`RENEWED_LINEAGE ${JSON.stringify(lineage)} is a symlink leading outside ${live}`);
  for (const f of ['cert.pem', 'chain.pem', 'fullchain.pem', 'privkey.pem']) {
    let real: string;
    try {
      real = fs.realpathSync(path.join(lineage!, f));
    } catch {
      return refuse(`${path.join(lineage!, f)} does not exist`);
    }
    if (!isInside(real, realConfig)) refuse(`${path.join(lineage!, f)} leads outside ${configDir} (to ${real})`);
    if (!fs.statSync(real).isFile()) refuse(`${path.join(lineage!, f)} is not a regular file`);
  }
  const domains: string[] = [];
  for (const d of domainsRaw!.split(/[ ]+/).filter(Boolean)) {
    try {
      domains.push(normalizeDomain(d, { allowWildcard: true }));
    } catch (error) {
      refuse(`RENEWED_DOMAINS holds an invalid domain: ${(error as Error).message}`);
    }
  }
  return { name, domains };
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
  const { name, domains } = validateDeployEnv(config.certbot.configDir, env);
  // certbot 5 runs the deploy hook inside autossl's own certonly: the issue run installs it (once), and an issue
  // is no renewal to notify about
  if (insideAutosslCertonly(env)) return { lineage: name, domains, ok: true, skipped: true, changedFiles: [], serial: '', served: [] };
  await core.recoverFirst();
  const lineage = readLineage(config.certbot.configDir, name);
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
