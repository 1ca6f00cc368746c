/**
 * What a panel does to one domain's certificate besides issuing it: install an uploaded one, or take HTTPS off
 * (the panel's "delete"). Both go through the same editor as everything else (planned under the config lock,
 * journaled, `nginx -t`, rolled back on failure) and both check everything they can before writing anything.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { AutoSslError, toAutoSslError } from './errors.js';
import { normalizeDomain } from './domain.js';
import { checkUpload, customCertificatesDir, finishUpload, uploadDirOf, writeUpload, type Upload } from './issuer/upload.js';
import { siteFor } from './config/schema.js';
import type { EngineCore } from './engine.js';
import { certbotSettings } from './stages/issue-certbot.js';
import { withLocked } from './store/locker.js';
import type { DomainResult } from './pipeline/pipeline.js';

export interface UninstallResult {
  domain: string;
  ok: boolean;
  error?: AutoSslError;
  /** Files changed (before/after), as made. */
  files: Array<{ file: string; before: string; after: string }>;
  /** certbot lineages deleted (`certbot delete`) and uploads removed, because nothing serves them any more. */
  deleted: string[];
  /** Certificates left in place because other blocks still serve them. */
  kept: Array<{ certificate: string; reason: string }>;
  notes: string[];
}

/**
 * Takes HTTPS off a domain: its blocks back to plain HTTP (validated, reloaded, rolled back on failure), then the
 * certificate it served is deleted when nothing else serves it (`certbot delete` for a lineage, the directory for
 * an upload). A lineage another block still serves is kept, and said so.
 */
export async function uninstall(core: EngineCore, input: unknown): Promise<UninstallResult> {
  return withBlockLock(core, input, () => uninstallLocked(core, input));
}

/**
 * Runs `fn` holding the locks of the blocks serving the domain: an issue, upload or uninstall of another name of
 * the same block waits, then plans on what this one left.
 */
async function withBlockLock<T>(core: EngineCore, input: unknown, fn: () => Promise<T>): Promise<T> {
  const domain = normalizeDomain(input);
  const lock = await core.services.installer.lockBlocks(core.services.state().locker, [domain], siteFor(core.config, domain).vhost);
  if (!lock) return fn(); // the config cannot be read: the command itself reports it
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

async function uninstallLocked(core: EngineCore, input: unknown): Promise<UninstallResult> {
  const { config, services } = core;
  const domain = normalizeDomain(input);
  await core.recoverFirst();
  const result: UninstallResult = { domain, ok: false, files: [], deleted: [], kept: [], notes: [] };
  const site = siteFor(config, domain);
  const { installer } = services;
  const tx = installer.transaction(`uninstall ${domain}`);
  let certificates: string[] = [];
  let reloaded = false;
  let served = true;
  let noVhost = false;
  try {
    const edits = await installer.edit(tx, domain, (snapshot) => {
      let plan;
      try {
        plan = installer.planUninstall(snapshot, domain, {
          vhostFile: site.vhost,
          aliases: site.aliases,
          known: config.sites.flatMap((s) => [s.domain, ...s.aliases]),
        });
      } catch (error) {
        // no vhost answers it (the panel deleted the domain first): nothing to edit, its lineage may still go
        if ((error as AutoSslError).code !== 'VHOST_NOT_FOUND') throw error;
        noVhost = true;
        plan = { edits: [], certificates: [], notes: [(error as AutoSslError).message], served: false };
      }
      certificates = plan.certificates;
      served = plan.served;
      result.notes = plan.notes;
      return plan.edits;
    });
    for (const e of edits) {
      const known = result.files.find((f) => f.file === e.file);
      if (known) known.after = e.after;
      else result.files.push({ file: e.file, before: e.before, after: e.after });
    }
    if (edits.length) {
      await installer.reload();
      reloaded = true;
    }
    await tx.commit();
  } catch (error) {
    const e = toAutoSslError(error);
    if (tx.files.length) {
      await installer.revertTransaction(tx).catch(() => undefined);
      if (reloaded || e.code === 'NGINX_RELOAD_FAILED')
        await installer
          .test()
          .then(() => installer.reload())
          .catch(() => undefined);
    }
    await record(core, domain, undefined, e);
    return { ...result, files: [], error: e };
  }
  // the certificates nothing serves any more go; a lineage or upload another block serves stays
  const still = installer.referencedFiles(installer.load());
  const { issuer } = services;
  const lineages = new Set<string>();
  const uploads = new Set<string>();
  // the domain's own lineage, if nothing serves it: not served over TLS (never installed, or its vhost went first),
  // or served with an upload that replaced it (certbot would renew it for ever with no vhost)
  let ownLineage: string | null = null;
  try {
    const lineage = await issuer.find(site.certName ?? domain);
    if (lineage && (!served || lineage.names.includes(domain))) ownLineage = lineage.id;
  } catch {
    // not a lineage name, or its certificate cannot be read
  }
  for (const c of certificates) {
    const full = path.resolve(c);
    const lineage = issuer.lineageOfPath?.(full);
    if (lineage) lineages.add(lineage);
    const upload = uploadDirOf(config, full);
    if (upload) uploads.add(upload);
  }
  if (ownLineage) lineages.add(ownLineage);
  if (noVhost && lineages.size === 0 && uploads.size === 0) {
    // nothing here knows the name: a typo, or deleted twice. Not a silent success.
    const error = new AutoSslError('VHOST_NOT_FOUND', `Nothing to uninstall for ${domain}: no server block answers it and it has no certificate here.`, {
      hint: `Check the spelling; "autossl status" lists the domains autossl knows. Nothing was changed.`,
    });
    return { ...result, notes: [], error };
  }
  for (const name of lineages) {
    const lineage = await issuer.find(name).catch(() => null);
    const users = [...still].filter(
      (p) => issuer.lineageOfPath?.(p) === name || (lineage && [lineage.fullchainPath, lineage.keyPath, lineage.certPath].includes(p)),
    );
    if (users.length) {
      result.kept.push({ certificate: name, reason: `other server blocks still serve it (${users.length} line${users.length > 1 ? 's' : ''})` });
      continue;
    }
    const error = await deleteLineage(core, name);
    if (error === 'absent') continue;
    if (error) {
      result.kept.push({ certificate: name, reason: error.message });
      result.notes.push(`the vhost is HTTP-only, but ${issuer.name} could not delete ${name}: ${error.message}`);
    } else result.deleted.push(name);
  }
  for (const dir of uploads) {
    if ([...still].some((p) => p.startsWith(dir + path.sep))) {
      result.kept.push({ certificate: dir, reason: 'other server blocks still serve it' });
      continue;
    }
    await fsp.rm(dir, { recursive: true, force: true });
    result.deleted.push(`upload ${path.relative(customCertificatesDir(config), dir)}`);
  }
  result.ok = true;
  if (result.files.length || result.deleted.length) await record(core, domain, [...lineages][0], undefined); // a no-op is not an attempt
  return result;
}

/**
 * The issuer's delete (`certbot delete`) under the lineage's order lock (an order of the same lineage never runs
 * meanwhile); 'absent': the issuer has no such lineage (or cannot delete its lineages), nothing was done.
 */
async function deleteLineage(core: EngineCore, name: string): Promise<AutoSslError | null | 'absent'> {
  const { issuer } = core.services;
  if (!issuer.remove) return 'absent';
  const settings = certbotSettings(core.config);
  try {
    return await withLocked(core.services.state().locker, `order-${name}`, settings.timeoutMs * 3, `The order of ${name}`, async () => {
      if (!(await issuer.remove!(name))) return 'absent' as const;
      try {
        await core.services.state().certificates.delete(name);
      } catch {
        // the record is a cache of what is on disk: the next status scan drops it anyway
      }
      return null;
    });
  } catch (error) {
    return toAutoSslError(error);
  }
}

async function record(core: EngineCore, domain: string, lineage: string | undefined, error: AutoSslError | undefined): Promise<void> {
  try {
    await core.services.state().attempts.record({ kind: 'uninstall', domain, lineage, ok: !error, code: error?.code, message: error?.message });
  } catch {
    // a report only
  }
}

/**
 * Installs an uploaded certificate for a domain: everything checked before a byte is written (the PEMs, the key,
 * the names, the dates, and that the domain's server block can take it without taking another name off HTTPS),
 * then written as a lineage-shaped directory and installed by the pipeline (vhost, nginx -t, reload, TLS check).
 * On failure the files are restored and the new upload directory removed.
 */
export async function installUpload(core: EngineCore, input: unknown, upload: Upload): Promise<DomainResult> {
  return withBlockLock(core, input, () => installUploadLocked(core, input, upload));
}

async function installUploadLocked(core: EngineCore, input: unknown, upload: Upload): Promise<DomainResult> {
  const { config, services } = core;
  const domain = normalizeDomain(input);
  const checked = checkUpload(domain, upload);
  const site = siteFor(config, domain);
  const { installer } = services;
  // the block's other names: those the upload covers come along; one served covered over HTTPS now (listed, or
  // answered by a wildcard or regex server_name) that it does not cover is a conflict
  const { block, names, lost } = installer.uploadTarget(installer.load(), domain, checked.info.names, {
    vhostFile: site.vhost,
    known: config.sites.flatMap((s) => [s.domain, ...s.aliases]),
  });
  const blockLabel = `${block.file}:${block.line}`;
  if (lost.length) {
    throw new AutoSslError(
      'VHOST_CERT_CONFLICT',
      `The server block serving ${domain} (${blockLabel}) also serves ${lost.join(', ')} over HTTPS, which the uploaded certificate (${checked.info.names.join(', ')}) does not cover; installing it would take ${lost.length > 1 ? 'them' : 'it'} off HTTPS. Nothing was written.`,
      {
        hint: `Upload a certificate that also covers ${lost.join(', ')}, or move ${lost.length > 1 ? 'them' : 'it'} to a server block of ${lost.length > 1 ? 'their' : 'its'} own.`,
        details: { names: lost, block: blockLabel },
      },
    );
  }
  await core.recoverFirst();
  const written = await writeUpload(config, checked);
  const { ctx, abort } = core.context(domain, 'install', {
    lineage: written.lineage,
    plan: { names, certName: written.lineage.name, notes: [...checked.notes] },
  });
  ctx.needsReload = true; // the same paths may hold new files
  const result = await core.run(ctx, abort);
  if (!result.ok && written.created) await fsp.rm(written.dir, { recursive: true, force: true });
  await finishUpload(written);
  if (result.ok) await pruneUploads(core, domain, written.dir);
  return result;
}

/** Older uploads of a domain that nothing serves any more. */
async function pruneUploads(core: EngineCore, domain: string, keep: string): Promise<void> {
  const base = path.join(customCertificatesDir(core.config), domain);
  let entries: string[];
  try {
    entries = await fsp.readdir(base);
  } catch {
    return;
  }
  const { installer } = core.services;
  const still = installer.referencedFiles(installer.load());
  for (const e of entries) {
    const dir = path.join(base, e);
    if (dir === keep || e.startsWith('.')) continue; // an upload being written (.upload-*, .pending-*)
    if ([...still].some((p) => p.startsWith(dir + path.sep))) continue;
    await fsp.rm(dir, { recursive: true, force: true });
  }
}
