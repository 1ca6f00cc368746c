/**
 * A small typed client for the part of Cloudflare's API v4 that autossl's Cloudflare plugins use: find the zone
 * of a name, list / create / patch / delete its DNS records. Shared by `plugins/cloudflare-proxy` (grey-cloud a
 * name while HTTP-01 runs) and `plugins/cloudflare-dns` (DNS-01 TXT records).
 *
 * Why not the official `cloudflare` npm package (7.3.0, measured on Node 20): 120 MB and 17,310 files installed
 * (more than all of autossl's dependencies together), about 0.44 s added to start-up against 0.013 s for this
 * file, and its built-in retry sleeps whatever Retry-After says with no upper bound. Its types are good and it
 * takes a base URL, but this client needs six routes. Wire facts (envelope, codes, HTTP statuses, sources):
 * the comment block of test/helpers/cloudflare-standin.ts.
 *
 * Guarantees:
 * - The token is only ever put in the Authorization header. It is kept in a private field, and every text that
 *   comes back from the server is scrubbed of it before it can reach an error message.
 * - Every name, id and value is validated before any request is made (CLOUDFLARE_RECORD_INVALID).
 * - HTTP 429 is waited out while the total wait for one call stays within `maxRetryWaitMs`, then
 *   CLOUDFLARE_RATE_LIMITED; 5xx answers, network errors and timeouts are retried `retries` times with backoff,
 *   then CLOUDFLARE_UNAVAILABLE.
 * - Cloudflare's errors become AutoSslErrors with a stable code; `details.cloudflareErrors` keeps Cloudflare's own
 *   `[{code, message}]` (scrubbed) and `details.status` the HTTP status.
 */
import net from 'node:net';
import { AutoSslError, type ErrorCode } from 'autossl';

export const CLOUDFLARE_API = 'https://api.cloudflare.com/client/v4';

/** Cloudflare's error codes this client gives a meaning to (sources in the wire note). */
export const CF_CODES = {
  /** Invalid request headers (malformed Authorization header, e.g. a Global API Key sent as a Bearer token). */
  INVALID_HEADERS: 6003,
  INVALID_AUTH_HEADER_FORMAT: 6111,
  /** Invalid access token (also "Cannot use the access token from location: ..." for IP-restricted tokens). */
  INVALID_TOKEN: 9109,
  /** Authentication error: the token is valid but not allowed to do this on this zone. */
  AUTHENTICATION_ERROR: 10000,
  RECORD_NOT_FOUND: 81044,
  /** An A, AAAA or CNAME record with that host already exists (CNAME beside A/AAAA). */
  HOST_CONFLICT: 81053,
  /** A CNAME record with that host already exists (A/AAAA beside a CNAME). */
  CNAME_CONFLICT: 81054,
  /** "Record already exists." (older wording of the identical-record refusal). */
  RECORD_EXISTS: 81057,
  /** "An identical record already exists." */
  IDENTICAL_RECORD_EXISTS: 81058,
} as const;

const AUTH_CODES = new Set<number>([
  CF_CODES.INVALID_HEADERS,
  CF_CODES.INVALID_AUTH_HEADER_FORMAT,
  9103,
  9106,
  CF_CODES.INVALID_TOKEN,
  CF_CODES.AUTHENTICATION_ERROR,
]);
/** What certbot-dns-cloudflare (PR #10725) and lexicon treat as "the TXT record is already there". */
const IDENTICAL_CODES = new Set<number>([CF_CODES.RECORD_EXISTS, CF_CODES.IDENTICAL_RECORD_EXISTS]);

export type RecordType = 'A' | 'AAAA' | 'CNAME' | 'TXT' | 'CAA' | 'MX' | 'NS';
const RECORD_TYPES: readonly string[] = ['A', 'AAAA', 'CNAME', 'TXT', 'CAA', 'MX', 'NS'];

export interface CloudflareMessage {
  code: number;
  message: string;
}

/** Cloudflare's response envelope. */
export interface Envelope<T> {
  success: boolean;
  errors: CloudflareMessage[];
  messages: CloudflareMessage[];
  result: T;
  result_info?: ResultInfo;
}

export interface ResultInfo {
  page: number;
  per_page: number;
  count: number;
  total_count: number;
  total_pages: number;
}

export interface Zone {
  id: string;
  name: string;
  /** "active" once the zone's nameservers are Cloudflare's; "pending", "initializing", "moved" otherwise. */
  status: string;
  paused?: boolean;
  type?: string;
  name_servers?: string[];
}

/**
 * A DNS record as Cloudflare returns it. `ttl: 1` means "automatic" (Cloudflare serves 300 s); proxied records
 * always show `ttl: 1`. `zone_id`, `zone_name` and `locked` are optional: the current API schema no longer lists
 * them, older answers carry them.
 */
export interface DnsRecord {
  id: string;
  name: string;
  type: string;
  content: string;
  proxiable: boolean;
  proxied: boolean;
  ttl: number;
  comment?: string | null;
  tags?: string[];
  created_on: string;
  modified_on: string;
  meta?: Record<string, unknown>;
  zone_id?: string;
  zone_name?: string;
  locked?: boolean;
}

export interface NewRecord {
  type: RecordType;
  /** The full name (example.com, www.example.com, _acme-challenge.example.com); a trailing dot is dropped. */
  name: string;
  content: string;
  /** 1 (automatic) or 30..86400 seconds. Cloudflare's default is 1. */
  ttl?: number;
  proxied?: boolean;
  comment?: string;
  tags?: string[];
}

/** Only the fields given are sent, and Cloudflare's PATCH changes only the fields sent. */
export type RecordPatch = Partial<NewRecord>;

export interface RecordFilter {
  type?: RecordType;
  name?: string;
  content?: string;
}

export interface CloudflareClientOptions {
  /** An API token (Bearer). Needs Zone:Zone:Read and Zone:DNS:Edit on the zones it is used for. */
  token: string;
  /** Default https://api.cloudflare.com/client/v4; tests point it at the local stand-in. */
  baseUrl?: string;
  /** Default the global fetch. */
  fetch?: typeof globalThis.fetch;
  /** The longest total time one call may spend waiting out 429 answers (default 60 s). */
  maxRetryWaitMs?: number;
  /** Per HTTP request (default 15 s). */
  timeoutMs?: number;
  /** Retries after a 5xx answer, a network error or a timeout (default 2). */
  retries?: number;
  /** Page size for record listings (default 100, Cloudflare's own default). */
  perPage?: number;
}

const DEFAULTS = { maxRetryWaitMs: 60_000, timeoutMs: 15_000, retries: 2, perPage: 100 };
/** Used when a 429 comes without Retry-After (Cloudflare documents that it sends one). */
const DEFAULT_RETRY_AFTER_MS = 5_000;
const MAX_PAGES = 1_000;
const ID = /^[0-9a-f]{32}$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const LABEL = /^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)$/;

function invalid(message: string): never {
  throw new AutoSslError('CLOUDFLARE_RECORD_INVALID', message);
}

/** A value shown in a message: JSON-quoted (control characters cannot forge lines) and cut short. */
function show(value: unknown, max = 120): string {
  const text = typeof value === 'string' ? value : String(value);
  const shown = JSON.stringify(text.slice(0, max));
  return text.length > max ? `${shown.slice(0, -1)}..." (${text.length} characters)` : shown;
}

/**
 * A DNS name as Cloudflare stores it: lower case, no trailing dot, labels of letters, digits, "-" and "_"
 * (`_acme-challenge`), an optional leading "*" label. Anything else is refused before a request is made.
 */
export function dnsName(input: unknown, what = 'name'): string {
  if (typeof input !== 'string') invalid(`The ${what} must be a string, got ${typeof input}.`);
  if (CONTROL.test(input)) invalid(`The ${what} ${show(input)} contains a control character.`);
  if (/[^\x21-\x7e]/.test(input)) invalid(`The ${what} ${show(input)} contains whitespace or non-ASCII characters; use punycode (xn--...).`);
  let name = input.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0 || name.length > 253) invalid(`The ${what} ${show(input)} must be 1 to 253 characters long.`);
  const labels = name.split('.');
  if (labels.length < 2) invalid(`The ${what} ${show(input)} needs at least two labels, like example.com.`);
  labels.forEach((label, i) => {
    if (i === 0 && label === '*') return;
    if (!LABEL.test(label))
      invalid(`The ${what} ${show(input)} has an invalid label ${show(label)}: 1 to 63 letters, digits, "-" or "_", not starting or ending with "-".`);
  });
  return name;
}

function recordId(input: unknown, what: string): string {
  if (typeof input !== 'string' || !ID.test(input)) invalid(`The ${what} ${show(input)} is not a Cloudflare identifier (32 hex digits).`);
  return input;
}

function validateContent(type: string, content: unknown): string {
  if (typeof content !== 'string') invalid(`The content of a ${type} record must be a string, got ${typeof content}.`);
  if (CONTROL.test(content)) invalid(`The content ${show(content)} of a ${type} record contains a control character.`);
  if (content.length === 0 || content.length > 4096) invalid(`The content of a ${type} record must be 1 to 4096 characters long.`);
  if (type === 'A' && !net.isIPv4(content)) invalid(`The content ${show(content)} of an A record is not an IPv4 address.`);
  if (type === 'AAAA' && !net.isIPv6(content)) invalid(`The content ${show(content)} of an AAAA record is not an IPv6 address.`);
  if (type === 'CNAME') return dnsName(content, 'CNAME target');
  return content;
}

function validateType(type: unknown): RecordType {
  if (typeof type !== 'string' || !RECORD_TYPES.includes(type)) invalid(`The record type ${show(type)} is not one of ${RECORD_TYPES.join(', ')}.`);
  return type as RecordType;
}

function validateFields(fields: RecordPatch, typeForContent: string | undefined): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (fields.type !== undefined) body.type = validateType(fields.type);
  if (fields.name !== undefined) body.name = dnsName(fields.name);
  if (fields.content !== undefined) body.content = validateContent(typeForContent ?? 'TXT', fields.content);
  if (fields.ttl !== undefined) {
    const ttl = fields.ttl;
    if (!Number.isInteger(ttl) || !(ttl === 1 || (ttl >= 30 && ttl <= 86_400))) invalid(`The ttl ${show(ttl)} must be 1 (automatic) or 30 to 86400 seconds.`);
    body.ttl = ttl;
  }
  if (fields.proxied !== undefined) {
    if (typeof fields.proxied !== 'boolean') invalid(`"proxied" must be true or false, got ${show(fields.proxied)}.`);
    body.proxied = fields.proxied;
  }
  if (fields.comment !== undefined) {
    if (typeof fields.comment !== 'string' || CONTROL.test(fields.comment) || fields.comment.length > 500)
      invalid(`The comment ${show(fields.comment)} must be a string of at most 500 characters without control characters.`);
    body.comment = fields.comment;
  }
  if (fields.tags !== undefined) {
    if (!Array.isArray(fields.tags) || fields.tags.some((t) => typeof t !== 'string' || CONTROL.test(t) || t.length === 0 || t.length > 128))
      invalid('"tags" must be a list of non-empty strings without control characters.');
    body.tags = [...fields.tags];
  }
  return body;
}

/** TXT content compares equal with or without the surrounding quotes Cloudflare may add. */
function sameTxt(a: string, b: string): boolean {
  const unquote = (s: string) => (s.length >= 2 && s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : s);
  return unquote(a) === unquote(b);
}

/** Seconds (or an HTTP date) to milliseconds; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(value)) return Math.ceil(Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

interface RequestSpec {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: Record<string, unknown>;
  /** Words for messages: "create TXT _acme-challenge.example.com". */
  what: string;
}

export class CloudflareClient {
  readonly #token: string;
  readonly baseUrl: string;
  readonly #fetch: typeof globalThis.fetch;
  readonly maxRetryWaitMs: number;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly perPage: number;

  constructor(options: CloudflareClientOptions) {
    const token = options?.token;
    // The token itself is never quoted, not even in this message.
    if (typeof token !== 'string' || token.length === 0 || token.length > 512 || !/^[\x21-\x7e]+$/.test(token) || /["\\]/.test(token)) {
      throw new AutoSslError(
        'CLOUDFLARE_AUTH_FAILED',
        'The Cloudflare API token is missing or malformed (it must be one line of printable characters, no spaces).',
      );
    }
    this.#token = token;
    const baseUrl = (options.baseUrl ?? CLOUDFLARE_API).replace(/\/+$/, '');
    let parsed: URL;
    try {
      parsed = new URL(baseUrl);
    } catch {
      invalid(`The Cloudflare API base URL ${show(baseUrl)} is not a URL.`);
    }
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') invalid(`The Cloudflare API base URL ${show(baseUrl)} must be http(s).`);
    this.baseUrl = baseUrl;
    this.#fetch = options.fetch ?? globalThis.fetch;
    const num = (key: 'maxRetryWaitMs' | 'timeoutMs' | 'retries' | 'perPage', min: number, max: number): number => {
      const v = options[key];
      if (v === undefined) return DEFAULTS[key];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
        invalid(`Cloudflare client option "${key}" must be an integer from ${min} to ${max}, got ${show(v)}.`);
      return v;
    };
    this.maxRetryWaitMs = num('maxRetryWaitMs', 0, 3_600_000);
    this.timeoutMs = num('timeoutMs', 1, 600_000);
    this.retries = num('retries', 0, 10);
    this.perPage = num('perPage', 1, 5_000);
  }

  /**
   * The active zone holding `name`: asks `GET /zones?name=` for the name itself, then each parent
   * (a.b.example.com, b.example.com, example.com), and takes the first active zone of exactly that name.
   * A zone that exists but is not active (pending nameserver change) is skipped: its records are not what the
   * world resolves. Auth errors stop the walk at once.
   */
  findZone(name: string): Promise<Zone> {
    return this.#guard(() => this.#findZone(name));
  }

  async #findZone(name: string): Promise<Zone> {
    let fqdn = dnsName(name);
    if (fqdn.startsWith('*.')) fqdn = fqdn.slice(2);
    const labels = fqdn.split('.');
    const inactive: string[] = [];
    const tried: string[] = [];
    for (let i = 0; i <= labels.length - 2; i++) {
      const candidate = labels.slice(i).join('.');
      tried.push(candidate);
      const zones = await this.#listAll<Zone>({ method: 'GET', path: '/zones', query: { name: candidate }, what: `look up zone ${candidate}` }, 50);
      const exact = zones.filter((z) => typeof z?.name === 'string' && z.name.toLowerCase() === candidate);
      const active = exact.find((z) => z.status === 'active');
      if (active) {
        if (typeof active.id !== 'string' || !ID.test(active.id)) throw this.#malformed('GET', '/zones', `zone ${candidate} has no valid id`);
        return active;
      }
      for (const z of exact) inactive.push(`${z.name} (status ${show(z.status)})`);
    }
    const why = inactive.length > 0 ? ` Zones found but not active (their nameservers are not Cloudflare's yet): ${inactive.join(', ')}.` : '';
    throw new AutoSslError('CLOUDFLARE_ZONE_NOT_FOUND', `No active Cloudflare zone holds ${fqdn}: tried ${tried.join(', ')}.${why}`, {
      details: { name: fqdn, tried },
    });
  }

  /** Every record matching the filter (exact name, case-insensitive), following pagination. */
  listRecords(zoneId: string, filter: RecordFilter = {}): Promise<DnsRecord[]> {
    return this.#guard(() => this.#listRecords(zoneId, filter));
  }

  async #listRecords(zoneId: string, filter: RecordFilter): Promise<DnsRecord[]> {
    const zone = recordId(zoneId, 'zone id');
    const query: Record<string, string | undefined> = {};
    if (filter.type !== undefined) query.type = validateType(filter.type);
    if (filter.name !== undefined) query.name = dnsName(filter.name);
    if (filter.content !== undefined) query.content = validateContent(filter.type ?? 'TXT', filter.content);
    const what = `list ${filter.type ?? ''} records${filter.name ? ` of ${query.name}` : ''}`.replace(/\s+/g, ' ');
    return this.#listAll<DnsRecord>({ method: 'GET', path: `/zones/${zone}/dns_records`, query, what }, this.perPage);
  }

  /** One record by id (CLOUDFLARE_RECORD_NOT_FOUND when it is gone). */
  getRecord(zoneId: string, id: string): Promise<DnsRecord> {
    return this.#guard(() => this.#getRecord(zoneId, id));
  }

  async #getRecord(zoneId: string, id: string): Promise<DnsRecord> {
    const path = `/zones/${recordId(zoneId, 'zone id')}/dns_records/${recordId(id, 'record id')}`;
    return (await this.#request<DnsRecord>({ method: 'GET', path, what: `read record ${id}` })).result;
  }

  createRecord(zoneId: string, record: NewRecord): Promise<DnsRecord> {
    return this.#guard(() => this.#createRecord(zoneId, record));
  }

  async #createRecord(zoneId: string, record: NewRecord): Promise<DnsRecord> {
    const zone = recordId(zoneId, 'zone id');
    if (record?.type === undefined || record.name === undefined || record.content === undefined) invalid('A new record needs a type, a name and a content.');
    const body = validateFields(record, validateType(record.type));
    return (await this.#request<DnsRecord>({ method: 'POST', path: `/zones/${zone}/dns_records`, body, what: `create ${body.type} record ${body.name}` }))
      .result;
  }

  /**
   * Changes only the given fields (PATCH). To restore a proxy: `patchRecord(zone, id, { proxied: true })`.
   * When `content` is given without `type`, it is validated as free text; give `type` to have it checked as an
   * address or a name.
   */
  patchRecord(zoneId: string, id: string, patch: RecordPatch): Promise<DnsRecord> {
    return this.#guard(() => this.#patchRecord(zoneId, id, patch));
  }

  async #patchRecord(zoneId: string, id: string, patch: RecordPatch): Promise<DnsRecord> {
    const path = `/zones/${recordId(zoneId, 'zone id')}/dns_records/${recordId(id, 'record id')}`;
    const body = validateFields(patch ?? {}, patch?.type);
    if (Object.keys(body).length === 0) invalid('A record patch needs at least one field to change.');
    return (await this.#request<DnsRecord>({ method: 'PATCH', path, body, what: `change record ${id} (${Object.keys(body).join(', ')})` })).result;
  }

  deleteRecord(zoneId: string, id: string): Promise<{ id: string }> {
    return this.#guard(() => this.#deleteRecord(zoneId, id));
  }

  async #deleteRecord(zoneId: string, id: string): Promise<{ id: string }> {
    const path = `/zones/${recordId(zoneId, 'zone id')}/dns_records/${recordId(id, 'record id')}`;
    return (await this.#request<{ id: string }>({ method: 'DELETE', path, what: `delete record ${id}` })).result;
  }

  /**
   * Creates a TXT record; an identical one already there (81057/81058: a leftover of a killed run, the apex and
   * wildcard of one order asking for the same value, a concurrent run) counts as success, as in
   * certbot-dns-cloudflare (PR #10725). `created` tells which happened: a record this call did not create may
   * belong to another run.
   */
  createTxt(zoneId: string, name: string, content: string, options: { ttl?: number; comment?: string } = {}): Promise<{ record: DnsRecord; created: boolean }> {
    return this.#guard(() => this.#createTxt(zoneId, name, content, options));
  }

  async #createTxt(
    zoneId: string,
    name: string,
    content: string,
    options: { ttl?: number; comment?: string },
  ): Promise<{ record: DnsRecord; created: boolean }> {
    const fqdn = dnsName(name);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        return { record: await this.createRecord(zoneId, { type: 'TXT', name: fqdn, content, ...options }), created: true };
      } catch (error) {
        const codes = ((error as AutoSslError).details?.cloudflareErrors as CloudflareMessage[] | undefined)?.map((e) => e.code) ?? [];
        if (!codes.some((c) => IDENTICAL_CODES.has(c))) throw error;
      }
      // Compared without quotes: Cloudflare may store TXT content quoted.
      const existing = (await this.listRecords(zoneId, { type: 'TXT', name: fqdn })).find((r) => sameTxt(r.content, content));
      if (existing) return { record: existing, created: false };
      // It was deleted between the two calls: create it once more.
    }
    throw new AutoSslError('CLOUDFLARE_API_ERROR', `Cloudflare said a TXT record ${fqdn} with this value exists, but it is not listed; tried twice.`, {
      details: { name: fqdn },
    });
  }

  async #listAll<T>(spec: RequestSpec, perPage: number): Promise<T[]> {
    const out: T[] = [];
    for (let page = 1; page <= MAX_PAGES; page++) {
      const envelope = await this.#request<T[]>({ ...spec, query: { ...spec.query, page, per_page: perPage } });
      if (!Array.isArray(envelope.result)) throw this.#malformed(spec.method, spec.path, 'the result is not a list');
      out.push(...envelope.result);
      const info = envelope.result_info;
      const totalPages = info && Number.isInteger(info.total_pages) ? info.total_pages : undefined;
      if (totalPages !== undefined ? page >= totalPages : envelope.result.length < perPage) return out;
      if (envelope.result.length === 0) return out;
    }
    throw this.#malformed(spec.method, spec.path, `more than ${MAX_PAGES} pages`);
  }

  #scrub(text: string): string {
    return text.includes(this.#token) ? text.split(this.#token).join('[token]') : text;
  }

  /** Every public method runs through this: no error leaves the client with the token in it. */
  async #guard<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw this.#clean(error);
    }
  }

  #clean(error: unknown): AutoSslError {
    if (error instanceof AutoSslError) {
      // A caller may pass the token as a value (content, name): validation messages quote values.
      if (!`${error.message}\n${JSON.stringify(error.details)}`.includes(this.#token)) return error;
      return new AutoSslError(error.code, this.#scrub(error.message), {
        hint: error.hint,
        details: JSON.parse(this.#scrub(JSON.stringify(error.details))) as Record<string, unknown>,
      });
    }
    return new AutoSslError('INTERNAL', `Cloudflare client: ${this.#scrub(String((error as Error)?.message ?? error)).slice(0, 500)}`);
  }

  #malformed(method: string, path: string, why: string, status?: number): AutoSslError {
    return new AutoSslError(
      'CLOUDFLARE_API_ERROR',
      `Cloudflare API ${method} ${path} answered something that is not Cloudflare's API v4 envelope (${why}); is the base URL ${show(this.baseUrl)} right?`,
      { details: { method, path, status } },
    );
  }

  async #request<T>(spec: RequestSpec): Promise<Envelope<T>> {
    const { method, path } = spec;
    const url = new URL(this.baseUrl + path);
    for (const [key, value] of Object.entries(spec.query ?? {})) if (value !== undefined) url.searchParams.set(key, String(value));
    const headers: Record<string, string> = { Authorization: `Bearer ${this.#token}`, Accept: 'application/json', 'User-Agent': 'autossl-cloudflare' };
    if (spec.body) headers['Content-Type'] = 'application/json';
    const body = spec.body ? JSON.stringify(spec.body) : undefined;
    let rateLimitWaited = 0;
    let failures = 0;
    const where = `${method} ${path}`;
    for (;;) {
      let status: number;
      let text: string;
      let retryAfter: string | null;
      try {
        const res = await this.#fetch(url, { method, headers, body, signal: AbortSignal.timeout(this.timeoutMs), redirect: 'error' });
        status = res.status;
        retryAfter = res.headers.get('retry-after');
        text = await res.text();
      } catch (error) {
        const timedOut = (error as Error)?.name === 'TimeoutError' || (error as Error)?.name === 'AbortError';
        const cause = (error as { cause?: { code?: unknown; message?: unknown } })?.cause;
        const reason = timedOut
          ? `no answer within ${this.timeoutMs} ms`
          : this.#scrub(String(cause?.code ?? cause?.message ?? (error as Error)?.message ?? error));
        if (failures++ < this.retries) {
          await sleep(backoff(failures));
          continue;
        }
        throw new AutoSslError(
          'CLOUDFLARE_UNAVAILABLE',
          `Cloudflare API did not answer ${where} (to ${spec.what}): ${show(reason)}, after ${failures} attempts.`,
          { details: { method, path, timedOut, attempts: failures } },
        );
      }

      if (status === 429) {
        // At least 1 s a time (Cloudflare rounds up to whole seconds), so a "Retry-After: 0" loop still ends at the bound.
        const waitMs = Math.max(1000, parseRetryAfter(retryAfter) ?? DEFAULT_RETRY_AFTER_MS);
        if (rateLimitWaited + waitMs <= this.maxRetryWaitMs) {
          rateLimitWaited += waitMs;
          await sleep(waitMs);
          continue;
        }
        const asked = retryAfter === null ? 'without saying how long to wait' : `to wait ${Math.ceil(waitMs / 1000)} s (Retry-After)`;
        throw new AutoSslError(
          'CLOUDFLARE_RATE_LIMITED',
          `Cloudflare API rate limit hit on ${where} (to ${spec.what}): it asked ${asked}, beyond the ${Math.round(this.maxRetryWaitMs / 1000)} s this run may wait${rateLimitWaited > 0 ? ` (already waited ${Math.round(rateLimitWaited / 1000)} s)` : ''}.`,
          { details: { method, path, status, retryAfterMs: waitMs, waitedMs: rateLimitWaited } },
        );
      }

      let envelope: Envelope<T> | undefined;
      try {
        const parsed = JSON.parse(text) as Envelope<T>;
        if (parsed && typeof parsed === 'object' && typeof parsed.success === 'boolean') envelope = parsed;
      } catch {
        envelope = undefined;
      }

      if (status >= 500) {
        if (failures++ < this.retries) {
          await sleep(backoff(failures));
          continue;
        }
        const said = envelope ? this.#describe(envelope.errors) : '';
        throw new AutoSslError(
          'CLOUDFLARE_UNAVAILABLE',
          `Cloudflare API answered HTTP ${status} to ${where} (to ${spec.what})${said ? `: ${said}` : ''}, after ${failures} attempts.`,
          { details: { method, path, status, attempts: failures, cloudflareErrors: this.#errors(envelope) } },
        );
      }
      if (!envelope) throw this.#malformed(method, path, `HTTP ${status}, not JSON`, status);
      if (envelope.success && status >= 200 && status < 300) return envelope;
      throw this.#fail(status, envelope, where, spec.what);
    }
  }

  #errors(envelope: Envelope<unknown> | undefined): CloudflareMessage[] {
    const list = Array.isArray(envelope?.errors) ? envelope.errors : [];
    return list.slice(0, 10).map((e) => ({ code: Number(e?.code), message: this.#scrub(String(e?.message ?? '')).slice(0, 500) }));
  }

  #describe(errors: unknown): string {
    return this.#errors({ errors } as Envelope<unknown>)
      .map((e) => `${e.code} ${show(e.message)}`)
      .join('; ');
  }

  #fail(status: number, envelope: Envelope<unknown>, where: string, what: string): AutoSslError {
    const errors = this.#errors(envelope);
    const codes = errors.map((e) => e.code);
    const said = this.#describe(envelope.errors) || 'no error given';
    const details = { status, cloudflareErrors: errors, request: where };
    let code: ErrorCode = 'CLOUDFLARE_API_ERROR';
    let message = `Cloudflare refused ${where} (to ${what}): HTTP ${status}: ${said}.`;
    // A 403 is a token problem when Cloudflare says so by code, or by naming a missing permission (zone.list...);
    // other 403s (e.g. 1038, API not offered for some TLDs) are not.
    const permission = status === 403 && errors.some((e) => /permission|not authori[sz]ed|unauthori[sz]ed/i.test(e.message));
    if (codes.some((c) => AUTH_CODES.has(c)) || status === 401 || permission) {
      code = 'CLOUDFLARE_AUTH_FAILED';
      const why = codes.includes(CF_CODES.INVALID_TOKEN)
        ? 'the token is not valid (revoked, mistyped, expired, or not allowed from this address)'
        : codes.includes(CF_CODES.INVALID_HEADERS) || codes.includes(CF_CODES.INVALID_AUTH_HEADER_FORMAT)
          ? 'the token is malformed (a Global API Key is not an API token)'
          : 'the token is not allowed to do this on this zone (it needs Zone:Zone:Read and Zone:DNS:Edit)';
      message = `Cloudflare rejected the API token on ${where} (to ${what}): ${why}. Cloudflare said: ${said}.`;
    } else if (codes.includes(CF_CODES.RECORD_NOT_FOUND)) {
      code = 'CLOUDFLARE_RECORD_NOT_FOUND';
      message = `Cloudflare has no such DNS record (${where}, to ${what}): ${said}.`;
    }
    return new AutoSslError(code, message, { details });
  }
}

function backoff(failures: number): number {
  return Math.min(250 * 2 ** (failures - 1), 4_000);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
