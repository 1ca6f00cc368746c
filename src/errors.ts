/**
 * Every failure a user can see is an AutoSslError: a stable `code` for machines (panels, scripts,
 * tests), a message that names the problem, and a `hint` that names the fix.
 * Codes are part of the public interface: add new ones, never rename.
 */
export const ERROR_CODES = {
  CONFIG_NOT_FOUND: 'Create autossl.config.json (see README "Configuration") or pass --config FILE.',
  CONFIG_INVALID: 'Fix the named key in the config file; docs/configuration.md lists every key, its type and default.',
  DOMAIN_INVALID: 'Use a plain DNS name such as example.com: letters, digits and hyphens, dot-separated.',
  VHOST_NOT_FOUND: 'Add the domain to a server_name of a server block nginx loads (port 80), then run again.',
  VHOST_AMBIGUOUS: 'Give the site a "vhost" file in the config (the file holding the block to edit), or remove the duplicate server_name.',
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
  CHALLENGE_UNROUTABLE: "Serve /.well-known/acme-challenge/ from the site's document root over port 80 (see the message).",
  TLS_VERIFY_FAILED:
    'nginx did not serve the new certificate after reload: check which server block answers the name on port 443 and that nginx reloaded (its error log).',
  DNS_NO_RECORDS: 'Create an A (and, if this server has IPv6, an AAAA) record for the name pointing at this server, wait for it to propagate, then run again.',
  DNS_MISMATCH: 'Point the A record at this server (see the addresses expected), wait for DNS to propagate, then run again.',
  DNS_AAAA_MISMATCH: "Let's Encrypt tries IPv6 first: point the AAAA record at this server, or delete it if this server has no IPv6.",
  DNS_SERVFAIL: "The name's DNS servers answer SERVFAIL (often broken DNSSEC or a dead nameserver); fix the zone, then run again.",
  DNS_TIMEOUT: "The name's DNS servers did not answer in time; check the zone's nameservers, or raise preflight.timeoutMs.",
  CAA_FORBIDS: 'Add a CAA record allowing Let\'s Encrypt: 0 issue "letsencrypt.org" (beside the existing ones).',
  CLOUDFLARE_PROXIED:
    'The name is proxied by Cloudflare (orange cloud): turn the proxy off (grey cloud) while issuing, or use the DNS-01 challenge ("challenge": "dns-01" with a DNS provider plugin).',
  PORT80_UNREACHABLE: 'Open port 80 to the internet (cloud firewall / security group / ufw) and make sure nginx listens on it.',
  CHALLENGE_NOT_SERVED:
    "Make /.well-known/acme-challenge/ reach nginx's static files for this name (autossl issue adds the location when it can; check other server blocks and proxies in front).",
  REDIRECT_INVALID: 'Redirect HTTP only to http:// or https:// on the standard ports (80, 443), or exempt /.well-known/acme-challenge/ from the redirect.',
  VALIDATION_BUDGET_EXHAUSTED: "Fix the reported problem and wait until the time given: Let's Encrypt blocks a name after 5 failed validations in an hour.",
  TIMEOUT: 'A step took far longer than it should; the message names it. Check that the named service is running.',
  PLUGIN_LOAD_FAILED: 'Check the plugin path or package name in the config; it must export { name, apply }.',
  ISSUER_LOAD_FAILED:
    'Check the issuer module path in the config ("issuer": { "module": "./x.mjs" }); it must export { name, find, list, obtain, renew } or a function returning it.',
  ISSUER_FAILED: 'The configured issuer could not obtain or renew the certificate; the message says why.',
  FLEET_ACK_TIMEOUT:
    'A node of the fleet did not serve the challenge token in time: check that "autossl fleet run" runs on it and reaches the store (README "Several nodes").',
  PLUGIN_ERROR: 'A plugin failed; the message names it. Check its options or disable it in the config.',
  SANDBOX_FAILED: 'The demo sandbox could not start; the message names the service. Run as root on Debian/Ubuntu.',
  STATE_UNAVAILABLE:
    'autossl cannot use its state directory (stateDir in the config): make it a writable directory owned by the user running autossl. With store.postgres: make the database reachable from this host with the role and password of the connection string.',
  JOURNAL_CONFLICT:
    'A file autossl had edited was changed since; compare it with the backup named in the message, fix it by hand, then run "autossl recover --discard <journal>".',
  JOURNAL_DAMAGED:
    'A journal of an interrupted run cannot be read; its backups are kept beside it. Check the named files by hand, then run "autossl recover --discard <journal>".',
  WILDCARD_NEEDS_DNS01: 'A wildcard name can only be validated over DNS: give the site "challenge": "dns-01" and configure a DNS provider plugin.',
  DNS_PROVIDER_MISSING: 'DNS-01 needs a DNS provider plugin in the config\'s "plugins" (one that answers the "challenge" hook for dns-01 sites).',
  DNS_PROPAGATION_TIMEOUT: 'The TXT record did not become visible in time; check the DNS provider, or raise dns01.propagationTimeoutMs.',
  UNDO_FAILED: 'A plugin could not undo a change it made outside nginx; autossl keeps the step and retries it at "autossl recover" and every later run.',
  HOOK_INPUT_INVALID: 'This command is run by certbot with its own environment (see autossl install-hooks); do not run it by hand.',
  VHOST_CERT_CONFLICT:
    'One server block serves these names but can hold one certificate: put them on one certificate (aliases of one site; for a wildcard server_name, the DNS-01 challenge so the wildcard is ordered), or give them separate server blocks. Nothing was ordered or written.',
  LINEAGE_CONFLICT:
    'Another process created a certificate lineage of that name meanwhile; autossl never overwrites one. Check "certbot certificates", then run again (the existing lineage is reused when it covers the names).',
  RATE_LIMITED:
    "Let's Encrypt refuses new orders for this account until the time given; autossl places none before then. Fix what used the limit (repeated orders for one set of names, failed validations), then run again after that time.",
  PROFILE_UNSUPPORTED:
    'The certbot autossl runs cannot ask the CA for a certificate profile: --preferred-profile/--required-profile came with certbot 4.0. Install certbot 4.0 or newer (pip, snap, or Debian 13), or remove "profile" from the site and defaults.',
  PROFILE_UNKNOWN: 'Use a profile the CA\'s directory lists (meta.profiles; `autossl check` shows them), or remove "profile" from the site and defaults.',
  BACKING_OFF:
    "Fix what the last error says (the name must answer the CA's challenge), then run again after the time given, or sooner with --skip-check backoff; a success clears the back-off.",
  ACME_PAUSED:
    'The CA paused this account for the name after too many failed validations: fix the cause, then open the unpause URL the message gives in a browser (a page of the CA) before asking again; until then autossl asks once a day at most.',
  INTERRUPTED: 'The run was killed before this domain finished; nothing of it was left half-done. Run autossl issue again for it.',
  INTERNAL: 'This is a bug in autossl; please report it with the command you ran.',
  CLOUDFLARE_AUTH_FAILED:
    "Check the Cloudflare API token named in the config: it must be active, allowed from this server's address, and have Zone:Zone:Read and Zone:DNS:Edit on the zone.",
  CLOUDFLARE_ZONE_NOT_FOUND: "Add the domain's zone to the Cloudflare account (and activate it), or give the API token access to that zone (Zone:Zone:Read).",
  CLOUDFLARE_RECORD_NOT_FOUND: "The DNS record was deleted or replaced in Cloudflare meanwhile; check the zone's DNS records in the Cloudflare dashboard.",
  CLOUDFLARE_RECORD_INVALID:
    'A DNS name or value given to the Cloudflare client is not valid (see the message); fix the config value or report the plugin that passed it.',
  CLOUDFLARE_RATE_LIMITED:
    'Cloudflare allows 1200 API requests per 5 minutes per user; wait a few minutes (other tools using the same account count too), then run again.',
  CLOUDFLARE_UNAVAILABLE:
    "Cloudflare's API could not be reached or kept failing (network, timeout or 5xx): check this server reaches api.cloudflare.com over HTTPS and Cloudflare's status page, then run again.",
  CLOUDFLARE_API_ERROR:
    'Cloudflare refused the request; its error code and message are quoted above. Fix what it names in the Cloudflare dashboard or the config, then run again.',
  CERT_CUSTOM:
    "This domain serves an uploaded certificate, which autossl does not renew: upload the renewed certificate, or issue a Let's Encrypt one (autossl issue, /ssl/issue-async) to replace it.",
  USAGE_INVALID: 'Run "autossl --help": it lists every command and its options.',
  JOB_NOT_FOUND: 'autossl jobs (or GET /v1/jobs) lists the recent jobs; older ones are forgotten.',
  JOB_RUNNING: 'A job is issuing this domain now: wait for it to end (GET /v1/jobs/{id}, autossl jobs), then ask again.',
  CANCELLED: 'The domain was taken out of its batch before it started (deleted meanwhile); nothing was done for it.',
  UPLOAD_INVALID: 'Upload the server certificate (then its chain) and its own unencrypted private key, in PEM form, valid now and for the domain.',
  AGENT_AUTH_FAILED:
    'Sign the request as the README "Agent" section shows: X-Timestamp (RFC 3339, within 300 s of the agent\'s clock) and X-Signature = hex HMAC-SHA256(token, timestamp + METHOD + path + body), with a token from the agent\'s tokens file.',
  AGENT_REPLAYED:
    'Every request needs a fresh X-Timestamp and signature; this exact request was already received. Send it again with a new timestamp if it was meant twice.',
  AGENT_RATE_LIMITED: 'Too many requests with this token; wait the seconds given in Retry-After, or raise agent.rateLimit in the config.',
  AGENT_BAD_REQUEST: 'Send a JSON object with the fields the route documents (GET /v1/openapi.json lists them).',
  AGENT_NOT_FOUND: 'The agent has no such route or record; GET /v1/openapi.json lists the routes.',
  CERT_RECENTLY_ISSUED:
    "Nothing to do: the certificate is new and served, and it renews by itself when due. A new one can be ordered a day after it was issued (Let's Encrypt allows 5 identical certificates a week).",
  AGENT_QUEUE_FULL:
    'The agent holds agent.maxQueued domains to issue already; send this one again once /health shows the queue shorter (Retry-After gives the seconds), or raise agent.maxQueued.',
  AGENT_STOPPING: 'The agent is shutting down and takes no new work; send the request again once it is back (systemd restarts it).',
  AGENT_BUSY: 'The agent is at one of its limits (agent.limits: bodies being received); send the request again in a moment.',
  FILE_UNSAFE: 'autossl reads only regular files of bounded size (never a FIFO, device or socket): make the named path a regular file, or a symlink to one.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * What kind of failure a code is: `input` (the request, the config or the command line is wrong: exit 2, HTTP
 * 4xx), `conflict` (the world is not in the state the request needs), `unavailable` (a service or resource
 * autossl needs is missing or busy), `failed` (the work was tried and failed), `internal` (a bug).
 */
export type ErrorKind = 'input' | 'conflict' | 'unavailable' | 'failed' | 'internal';

const INPUT: readonly ErrorCode[] = [
  'USAGE_INVALID',
  'JOB_NOT_FOUND',
  'UPLOAD_INVALID',
  'AGENT_AUTH_FAILED',
  'AGENT_BAD_REQUEST',
  'AGENT_NOT_FOUND',
  'CONFIG_NOT_FOUND',
  'CONFIG_INVALID',
  'DOMAIN_INVALID',
  'HOOK_INPUT_INVALID',
  'WILDCARD_NEEDS_DNS01',
  'PLUGIN_LOAD_FAILED',
  'ISSUER_LOAD_FAILED',
  'NGINX_PARSE_ERROR',
  'VHOST_NOT_FOUND',
  'VHOST_AMBIGUOUS',
  'DNS_PROVIDER_MISSING',
  'CLOUDFLARE_AUTH_FAILED',
  'CLOUDFLARE_RECORD_INVALID',
  'CLOUDFLARE_ZONE_NOT_FOUND',
  'FILE_UNSAFE',
  'PROFILE_UNSUPPORTED',
  'PROFILE_UNKNOWN',
];
const CONFLICT: readonly ErrorCode[] = [
  'CERT_CUSTOM',
  'CERT_RECENTLY_ISSUED',
  'JOB_RUNNING',
  'AGENT_REPLAYED',
  'AGENT_RATE_LIMITED',
  'VHOST_CHANGED',
  'JOURNAL_CONFLICT',
  'VHOST_CERT_CONFLICT',
  'LOCK_TIMEOUT',
  'VALIDATION_BUDGET_EXHAUSTED',
  'CLOUDFLARE_RECORD_NOT_FOUND',
  'LINEAGE_CONFLICT',
  'RATE_LIMITED',
  'BACKING_OFF',
  'ACME_PAUSED',
];
const UNAVAILABLE: readonly ErrorCode[] = [
  'AGENT_STOPPING',
  'AGENT_QUEUE_FULL',
  'AGENT_BUSY',
  'STATE_UNAVAILABLE',
  'NGINX_NOT_FOUND',
  'CERTBOT_NOT_FOUND',
  'SANDBOX_FAILED',
  'JOURNAL_DAMAGED',
  'CLOUDFLARE_RATE_LIMITED',
  'CLOUDFLARE_UNAVAILABLE',
];

export function errorKind(code: ErrorCode): ErrorKind {
  if (code === 'INTERNAL') return 'internal';
  if (INPUT.includes(code)) return 'input';
  if (CONFLICT.includes(code)) return 'conflict';
  if (UNAVAILABLE.includes(code)) return 'unavailable';
  return 'failed';
}

/** At most this many characters of any value quoted in a message: a hostile value cannot flood a log line. */
export const MAX_QUOTED = 120;

/** A value shown in a message: JSON-quoted (so control characters cannot forge lines) and cut short. */
export function quote(value: unknown, max = MAX_QUOTED): string {
  let text: string;
  if (typeof value === 'string') text = value.length > max * 4 ? value.slice(0, max * 4) : value;
  else if (value === undefined) return 'nothing';
  else if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  else if (Array.isArray(value)) return `a list of ${value.length}`;
  else if (typeof value === 'object')
    return `an object with keys ${quote(
      Object.keys(value as object)
        .slice(0, 5)
        .join(', '),
    )}`;
  else text = String(value);
  // JSON escapes controls but not bidi/format characters or separators: a U+202E would reorder the message
  const shown = printable(JSON.stringify(text.slice(0, max)));
  return text.length > max ? `${shown.slice(0, -1)}..." (${text.length} characters)` : shown;
}

/**
 * A message as a terminal shows it without being steered: whatever text a message quotes (a domain, a path, nginx's
 * or certbot's output), bidi and format characters, separators and controls other than newline and tab are written
 * as \uXXXX, so a U+202E in an argument cannot reorder the line or fake another one.
 */
export function printable(text: string): string {
  return text.replace(/[\p{Cf}\p{Zl}\p{Zp}\u0000-\u0008\u000b-\u001f\u007f-\u009f]/gu, (ch) => {
    const cp = ch.codePointAt(0)!;
    return cp > 0xffff ? `\\u{${cp.toString(16)}}` : `\\u${cp.toString(16).padStart(4, '0')}`;
  });
}

export class AutoSslError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;
  /** Machine-readable extras: the file and line, the ACME error, the plugin name... */
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: { hint?: string; details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(printable(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AutoSslError';
    this.code = code;
    this.hint = printable(options.hint ?? ERROR_CODES[code]);
    this.details = options.details ?? {};
  }

  toJSON(): { code: ErrorCode; message: string; hint: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, hint: this.hint, details: this.details };
  }
}

/**
 * Whether a value is an AutoSslError, also one made by another copy of this package (a plugin package that
 * brought its own autossl): recognised by shape, not by class identity.
 */
export function isAutoSslError(error: unknown): error is AutoSslError {
  if (error instanceof AutoSslError) return true;
  const e = error as { name?: unknown; code?: unknown; hint?: unknown } | null;
  return typeof e === 'object' && e !== null && e.name === 'AutoSslError' && typeof e.code === 'string' && e.code in ERROR_CODES && typeof e.hint === 'string';
}

/** Anything thrown from anywhere becomes an AutoSslError, so callers only ever handle one type. */
export function toAutoSslError(error: unknown): AutoSslError {
  if (error instanceof AutoSslError) return error;
  if (isAutoSslError(error)) {
    return new AutoSslError(error.code, error.message, { hint: error.hint, details: (error as AutoSslError).details ?? {}, cause: error });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new AutoSslError('INTERNAL', message.slice(0, 2000), { cause: error });
}
