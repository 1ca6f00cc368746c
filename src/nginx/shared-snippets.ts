/**
 * A server block that takes its certificate from a snippet it includes (`include snippets/ssl.conf;` holding
 * `ssl_certificate`): other servers may include the same file, so the HTTPS edit never changes it and refuses when
 * it names another certificate. Asked while planning, so that refusal comes before an order, not after it.
 */
import { argValues, type Directive } from './parse.js';
import { readConfigFile, type ServerBlock } from './tree.js';

/** Why the certificate at `fullchain` cannot be installed in this block because of a shared snippet, or null. */
export function sharedCertificateProblem(block: ServerBlock, fullchain: string, label: string): string | null {
  for (const inc of block.includes) {
    const { config } = readConfigFile(inc);
    const shared = config?.children.find((n): n is Directive => n.kind === 'directive' && n.name === 'ssl_certificate');
    if (!shared || argValues(shared)[0] === fullchain) continue;
    return `${label}: "ssl_certificate" is set in ${inc}, a file it includes (and other servers may too), to ${argValues(shared).join(' ')}; autossl does not change shared snippets. Nothing was ordered.`;
  }
  return null;
}

export function sharedCertificateHint(fullchain: string): string {
  return `Move "ssl_certificate" and "ssl_certificate_key" out of the snippet into the server block, or point them at ${fullchain} yourself.`;
}
