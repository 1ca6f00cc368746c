/**
 * An existing `location /.well-known/acme-challenge/ { alias /var/www/acme/; }` serves tokens from the alias
 * directory itself, while certbot's webroot authenticator writes to `<webroot>/.well-known/acme-challenge/`. The
 * location is used as it is: when the alias already ends in `.well-known/acme-challenge`, its parent is the
 * webroot; otherwise autossl keeps a webroot of its own whose `.well-known/acme-challenge` is a symlink to the alias
 * directory (certbot writes through it, nginx reads the directory directly; renewals reuse the same path).
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { argValues, childDirectives, type Directive } from './parse.js';
import { ACME_PREFIX, parseLocation } from './routing.js';

/** Where an acme-challenge prefix location with `alias` puts the tokens (absolute, no trailing slash), or null. */
export function aliasTokenDir(location: Directive): string | null {
  const spec = parseLocation(location);
  const alias = childDirectives(location, 'alias')
    .map((d) => argValues(d)[0])
    .pop();
  if (!spec || spec.modifier === '~' || spec.modifier === '~*' || !alias || alias.includes('$') || !path.isAbsolute(alias)) return null;
  // alias replaces the location's path: the token at ACME_PREFIX + T is read from alias + (ACME_PREFIX minus the path) + T
  const rest = ACME_PREFIX.slice(spec.path.length);
  return path.resolve(alias + rest);
}

export interface AliasWebroot {
  /** What certbot is given as `-w`. */
  webroot: string;
  /** A symlink to create: `<webroot>/.well-known/acme-challenge` -> `target` (none when the alias already fits). */
  link?: { path: string; target: string };
}

/** The webroot that lands tokens in `tokenDir`; `ownDir` is where autossl keeps webroots of its own. */
export function webrootForAlias(tokenDir: string, ownDir: string): AliasWebroot {
  const suffix = `${path.sep}.well-known${path.sep}acme-challenge`;
  if (tokenDir.endsWith(suffix)) return { webroot: tokenDir.slice(0, -suffix.length) || path.sep };
  const webroot = path.join(ownDir, `alias-${crypto.createHash('sha1').update(tokenDir).digest('hex').slice(0, 12)}`);
  return { webroot, link: { path: path.join(webroot, '.well-known', 'acme-challenge'), target: tokenDir } };
}

/**
 * Creates the symlink (and the alias directory, readable by nginx's workers) when it is not there yet. Made under a
 * temporary name and renamed into place, so runs for the same alias at once never see it missing or fail on it.
 */
export async function ensureAliasLink(link: { path: string; target: string }): Promise<void> {
  await fs.mkdir(link.target, { recursive: true, mode: 0o755 });
  if ((await fs.readlink(link.path).catch(() => null)) === link.target) return;
  await fs.mkdir(path.dirname(link.path), { recursive: true, mode: 0o755 });
  const st = await fs.lstat(link.path).catch(() => null);
  // a plain directory a self-check made there before the link existed: autossl's own, and only tokens
  if (st && !st.isSymbolicLink()) await fs.rm(link.path, { force: true, recursive: true });
  const tmp = `${link.path}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`;
  await fs.symlink(link.target, tmp);
  await fs.rename(tmp, link.path);
}
