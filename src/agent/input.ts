/**
 * What a panel sends, made safe before anything uses it. The Opterius panel stores domains as typed (mixed case,
 * stray spaces, Unicode), and user names that only Laravel's alpha_dash checked: each value is normalised or
 * refused here with a message saying what is wrong, and nothing unchecked reaches a path, a config line or a
 * subprocess. Vhosts are found by server_name in the nginx tree only: no request names a file.
 */
import { domainToASCII } from 'node:url';
import { AutoSslError, quote } from '../errors.js';
import { normalizeDomain } from '../domain.js';

function bad(message: string, hint?: string): never {
  throw new AutoSslError('AGENT_BAD_REQUEST', message, hint ? { hint } : {});
}

/** A domain as a panel sends it: trimmed, lower-cased, Unicode turned into punycode, then the project's gate. */
export function panelDomain(value: unknown, field = 'domain'): string {
  if (typeof value !== 'string') bad(`"${field}" must be a string, got ${quote(value)}.`);
  const trimmed = value.trim();
  // eslint-disable-next-line no-control-regex
  const ascii = /[^\x00-\x7f]/.test(trimmed) && !/[\u0000-\u001f\s/\\@:]/.test(trimmed) ? domainToASCII(trimmed) : trimmed;
  if (!ascii) bad(`"${field}" ${quote(value)} is not a domain name.`);
  try {
    return normalizeDomain(ascii);
  } catch (error) {
    return bad(`"${field}": ${(error as AutoSslError).message}`, (error as AutoSslError).hint);
  }
}

const UNIX_USER = /^[a-z_][a-z0-9_-]{0,31}$/;

/**
 * A Unix user name (what the panel's account names are on the server): lower case, digits, "_" and "-", at most
 * 32, not starting with a digit or "-". Empty or absent means "not given" (the panel's recheck sends "").
 */
export function panelUsername(value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') bad(`"username" must be a string, got ${quote(value)}.`);
  if (!UNIX_USER.test(value)) bad(`"username" ${quote(value)} is not a Unix user name (lower-case letters, digits, "_" and "-", at most 32, starting with a letter or "_").`);
  return value;
}

/** An email address, checked for shape only (the ACME account's address is certbot.email in the config). */
export function panelEmail(value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string' || value.length > 254 || !/^[^\s@,;<>"'\\]+@[^\s@,;<>"'\\]+\.[^\s@,;<>"'\\]+$/.test(value)) bad(`"email" ${quote(value)} is not an email address.`);
  return value;
}

/** The document root template filled for a user ({username}, {domain}); undefined when it needs a missing user. */
export function documentRootFor(template: string | undefined, username: string | undefined, domain: string): string | undefined {
  if (!template) return undefined;
  if (template.includes('{username}') && !username) return undefined;
  return template.replaceAll('{username}', username ?? '').replaceAll('{domain}', domain);
}
