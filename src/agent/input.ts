/**
 * What a panel sends, made safe before anything uses it. The Opterius panel stores domains as typed (mixed case,
 * stray spaces, Unicode), and user names that only Laravel's alpha_dash checked: each value is normalised or
 * refused here with a message saying what is wrong, and nothing unchecked reaches a path, a config line or a
 * subprocess. Vhosts are found by server_name in the nginx tree only: no request names a file.
 */
import { domainToASCII } from 'node:url';
import { AutoSslError, quote } from '../errors.js';
import { normalizeDomain } from '../domain.js';
import { Email, Username } from './fields.js';

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

/**
 * An account name as the panel's own `useradd` creates it (fields.ts: Username). Laravel's alpha_dash (the panel's
 * form check) lets letters of any script through; those are not Unix accounts, and each of them is one more way into
 * a path nginx reads (U+013B was written as ";" when files were narrowed to latin1). Never a "/", ".", space, control
 * or shell character, so it is safe in a document-root path. Empty or absent means "not given" (recheck sends "").
 */
const ACCOUNT = new RegExp(Username.pattern!);

export function panelUsername(value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') bad(`"username" must be a string, got ${quote(value)}.`);
  if (!ACCOUNT.test(value)) {
    bad(
      `"username" ${quote(value)} is not a Unix account name: ASCII lower-case letters, digits, "_" and "-", starting with a letter or "_", at most 32.`,
      'Send the hosting account\'s Unix user name as useradd created it (e.g. "alice", "web_1"); nothing was written.',
    );
  }
  return value;
}

const EMAIL = new RegExp(Email.pattern!);

/**
 * The email the panel sends is not used (the ACME account's address is certbot.email in the config), and the panel
 * may build it from a domain with a stray space ("admin@" + domain): any text is taken, but never a control
 * character (nothing with a line break passes anywhere).
 */
export function panelEmail(value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string' || value.length > Email.maxLength! || !EMAIL.test(value)) bad(`"email" ${quote(value)} is not an email address.`);
  return value.trim();
}

/** The document root template filled for a user ({username}, {domain}); undefined when it needs a missing user. */
export function documentRootFor(template: string | undefined, username: string | undefined, domain: string): string | undefined {
  if (!template) return undefined;
  if (template.includes('{username}') && !username) return undefined;
  return template.replaceAll('{username}', username ?? '').replaceAll('{domain}', domain);
}
