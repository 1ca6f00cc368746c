/**
 * certbot's deploy hook, the certbot issuer's side (Issuer.renewedLineage): the lineage certbot says it renewed
 * (RENEWED_LINEAGE, RENEWED_DOMAINS), checked before anything is touched. The pipeline run that installs it is
 * autossl's (src/renewal/deploy-hook.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { normalizeDomain } from '../domain.js';
import { AutoSslError } from '../errors.js';

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
