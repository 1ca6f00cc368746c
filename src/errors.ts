/**
 * Every failure a user can see is an AutoSslError: a stable `code` for machines (panels, scripts,
 * tests), a message that names the problem, and a `hint` that names the fix.
 * Codes are part of the public interface: add new ones, never rename.
 */
export const ERROR_CODES = {
  CONFIG_NOT_FOUND: 'Create autossl.config.json (see README "Configuration") or pass --config FILE.',
  CONFIG_INVALID: 'Fix the named key in the config file; the README lists every key and its type.',
  DOMAIN_INVALID: 'Use a plain DNS name such as example.com: letters, digits and hyphens, dot-separated.',
  VHOST_NOT_FOUND: 'Add the domain to a server_name of a server block nginx loads (port 80), then run again.',
  VHOST_AMBIGUOUS: 'Give the site a "vhost" file in the config so autossl knows which server block to edit.',
  VHOST_UNSUPPORTED: 'Edit this server block by hand once (see the message); autossl will keep it up to date after.',
  VHOST_CHANGED: 'Another program changed the file while autossl was editing it; run the command again.',
  VHOST_EDIT_UNSAFE: 'autossl refused an edit that would have changed more than intended; please report this file.',
  NGINX_PARSE_ERROR: 'Fix the nginx syntax at the named file:line:column (nginx -t shows the same), then run again.',
  NGINX_TEST_FAILED: 'The file was restored. Fix what nginx reports at the named file and line, then run again.',
  NGINX_RELOAD_FAILED: 'Check nginx is running (nginx -s reload by hand shows why) and that the reload command is right.',
  NGINX_NOT_FOUND: 'Install nginx, or set nginx.binary in the config to its path.',
  WRITE_FAILED: 'The file was left as it was. Check free disk space and permissions on the named path.',
  LOCK_TIMEOUT: 'Another autossl process holds the lock; wait for it to finish, or remove a stale lock file named in the message.',
  CERTBOT_NOT_FOUND: 'Install certbot (apt-get install certbot), or set certbot.binary in the config.',
  CERTBOT_FAILED: 'Read the ACME error above: it says what the CA saw. Fix it, then run again.',
  CERTBOT_LINEAGE_UNKNOWN: 'certbot succeeded but did not say where it saved the certificate; check certbot.configDir.',
  CHALLENGE_UNROUTABLE: 'Serve /.well-known/acme-challenge/ from the site\'s document root over port 80 (see the message).',
  TLS_VERIFY_FAILED: 'nginx did not serve the new certificate after reload; the vhost was restored. Check for another server block with the same name on port 443.',
  DNS_NO_RECORDS: 'Create an A (and, if this server has IPv6, an AAAA) record for the name pointing at this server, wait for it to propagate, then run again.',
  DNS_MISMATCH: 'Point the A record at this server (see the addresses expected), wait for DNS to propagate, then run again.',
  DNS_AAAA_MISMATCH: 'Let\'s Encrypt tries IPv6 first: point the AAAA record at this server, or delete it if this server has no IPv6.',
  DNS_SERVFAIL: 'The name\'s DNS servers answer SERVFAIL (often broken DNSSEC or a dead nameserver); fix the zone, then run again.',
  DNS_TIMEOUT: 'The name\'s DNS servers did not answer in time; check the zone\'s nameservers, or raise preflight.timeoutMs.',
  CAA_FORBIDS: 'Add a CAA record allowing Let\'s Encrypt: 0 issue "letsencrypt.org" (beside the existing ones).',
  CLOUDFLARE_PROXIED: 'The name is proxied by Cloudflare (orange cloud): turn the proxy off (grey cloud) while issuing, or use the cloudflare-dns01 plugin.',
  PORT80_UNREACHABLE: 'Open port 80 to the internet (cloud firewall / security group / ufw) and make sure nginx listens on it.',
  CHALLENGE_NOT_SERVED: 'Make /.well-known/acme-challenge/ reach nginx\'s static files for this name (autossl issue adds the location when it can; check other server blocks and proxies in front).',
  REDIRECT_INVALID: 'Redirect HTTP only to http:// or https:// on the standard ports (80, 443), or exempt /.well-known/acme-challenge/ from the redirect.',
  VALIDATION_BUDGET_EXHAUSTED: 'Fix the reported problem and wait until the time given: Let\'s Encrypt blocks a name after 5 failed validations in an hour.',
  TIMEOUT: 'A step took far longer than it should; the message names it. Check that the named service is running.',
  PLUGIN_LOAD_FAILED: 'Check the plugin path or package name in the config; it must export { name, apply }.',
  PLUGIN_ERROR: 'A plugin failed; the message names it. Check its options or disable it in the config.',
  SANDBOX_FAILED: 'The demo sandbox could not start; the message names the service. Run as root on Debian/Ubuntu.',
  INTERNAL: 'This is a bug in autossl; please report it with the command you ran.',
  FILE_UNSAFE: 'autossl reads only regular files of bounded size (never a FIFO, device or socket): make the named path a regular file, or a symlink to one.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class AutoSslError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;
  /** Machine-readable extras: the file and line, the ACME error, the plugin name... */
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: { hint?: string; details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AutoSslError';
    this.code = code;
    this.hint = options.hint ?? ERROR_CODES[code];
    this.details = options.details ?? {};
  }

  toJSON(): { code: ErrorCode; message: string; hint: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, hint: this.hint, details: this.details };
  }
}

/** Anything thrown from anywhere becomes an AutoSslError, so callers only ever handle one type. */
export function toAutoSslError(error: unknown): AutoSslError {
  if (error instanceof AutoSslError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new AutoSslError('INTERNAL', message, { cause: error });
}
