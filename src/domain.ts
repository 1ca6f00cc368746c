import { domainToASCII } from 'node:url';
import { AutoSslError } from './errors.js';

/**
 * The one gate every domain passes before it reaches a file, a config line or a subprocess.
 * Only LDH names (RFC 1123) and a leading "*." wildcard get through; the error names what is wrong.
 */
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export interface DomainOptions {
  /** Allow "*.example.com" (DNS-01 only; HTTP-01 cannot validate wildcards). */
  allowWildcard?: boolean;
}

function refuse(input: string, why: string, hint?: string): never {
  // The value is shown escaped so a hostile value cannot forge output lines.
  throw new AutoSslError('DOMAIN_INVALID', `Invalid domain ${JSON.stringify(input)}: ${why}.`, hint ? { hint } : {});
}

/**
 * The ASCII (punycode) form of an internationalized name, when IDNA (UTS #46, node:url) gives one that passes this
 * gate itself; null for what has none (bidi controls, invalid labels). Only suggested, never used silently: the
 * name in nginx's server_name must be that form too, since browsers send it and nginx compares bytes.
 */
function asciiForm(raw: string, options: DomainOptions): string | null {
  const ascii = domainToASCII(raw.startsWith('*.') ? raw.slice(2) : raw);
  if (!ascii || /[^\x21-\x7e]/.test(ascii)) return null;
  try {
    return normalizeDomain(raw.startsWith('*.') ? `*.${ascii}` : ascii, options);
  } catch {
    return null;
  }
}

export function normalizeDomain(input: unknown, options: DomainOptions = {}): string {
  if (typeof input !== 'string') refuse(String(input), 'it must be a string');
  const raw = input;
  if (raw.length === 0) refuse(raw, 'it is empty');
  if (raw.length > 300) refuse(raw.slice(0, 40) + '...', `it is ${raw.length} characters long; a domain has at most 253`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(raw)) refuse(raw, 'it contains a control character (newline, NUL, tab...)');
  if (/\s/.test(raw)) refuse(raw, 'it contains whitespace');
  if (/[^\x21-\x7e]/.test(raw)) {
    const ascii = asciiForm(raw, options);
    if (ascii)
      refuse(
        raw,
        `it contains non-ASCII characters; its ASCII (punycode) form is ${ascii}`,
        `Use ${ascii}, and write that form in nginx's server_name too: browsers send it in Host and SNI, and nginx compares bytes (a server_name written in Unicode never matches them).`,
      );
    refuse(raw, 'it contains non-ASCII characters that have no ASCII (punycode) form');
  }
  let name = raw.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1); // the root dot of a fully qualified name
  let wildcard = false;
  if (name.startsWith('*.')) {
    if (!options.allowWildcard) refuse(raw, 'wildcards need the DNS-01 challenge; HTTP-01 cannot validate them');
    wildcard = true;
    name = name.slice(2);
  }
  const bad = name.match(/[^a-z0-9.-]/);
  if (bad) refuse(raw, `the character ${JSON.stringify(bad[0])} is not allowed in a domain (letters, digits, "-" and "." only)`);
  if (name.length > 253) refuse(raw, `it is ${name.length} characters long; a domain has at most 253`);
  const labels = name.split('.');
  if (labels.length < 2) refuse(raw, 'it needs at least two labels, like example.com');
  for (const label of labels) {
    if (label.length === 0) refuse(raw, 'it has an empty label (two dots in a row, or a leading dot)');
    if (label.length > 63) refuse(raw, `the label "${label.slice(0, 20)}..." is ${label.length} characters long; at most 63`);
    if (!LABEL.test(label)) refuse(raw, `the label "${label}" must start and end with a letter or digit`);
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) refuse(raw, 'it looks like an IP address; certificates here are for names');
  return wildcard ? `*.${name}` : name;
}

/** Normalise a list, dropping duplicates while keeping order (the first name is the certificate's main name). */
export function normalizeDomains(inputs: readonly unknown[], options: DomainOptions = {}): string[] {
  const out: string[] = [];
  for (const input of inputs) {
    const name = normalizeDomain(input, options);
    if (!out.includes(name)) out.push(name);
  }
  return out;
}
