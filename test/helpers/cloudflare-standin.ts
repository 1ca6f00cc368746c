/**
 * A local stand-in for the part of Cloudflare's API v4 that autossl's Cloudflare plugins use, for tests only.
 * It listens on 127.0.0.1 (an ephemeral port by default) and serves https://api.cloudflare.com/client/v4's paths
 * under http://127.0.0.1:PORT/client/v4.
 *
 * Sources for the wire facts below: developers.cloudflare.com/fundamentals/api/reference/limits (1200 requests
 * per 5 minutes, 429, retry-after in seconds, Ratelimit headers); the `cloudflare` npm package 7.3.0's generated
 * types (record fields, ttl 1 = automatic, zone list filters); answers quoted in public issue threads: 9109
 * "Invalid access token" with HTTP 403 (caddy-dns/cloudflare#3, jeessy2/ddns-go#1341), 6003/6111 with HTTP 400
 * (NewFuture/DDNS#152, kissgyorgy/cloudflare-dyndns#40), 10000 "Authentication error" with 403
 * (cloudflare/terraform-provider-cloudflare#913), 81058 with 400 (jeessy2/ddns-go#1378), 81053 with 400
 * (terraform-provider-cloudflare#1247), 81054 (favonia/cloudflare-ddns#990), 81044 "Record does not exist."
 * (zanjie1999/cloudflare-api-v4-ddns#5; its HTTP status was not shown there: 404 here), 9005
 * (yulewang/cloudflare-api-v4-ddns#16), 9000 and 9015 (cisagov/manage.get.gov#5244); certbot PR #10725 for
 * 81057/81058 on TXT creation; error_chain dropped for DNS validation errors since October 2024
 * (cloudflare/cloudflare-docs#15317); PATCH keeping unsent fields (proxied) where PUT resets them
 * (nickbabcock/dness#201, openwrt/packages#6364).
 *
 * What it models (as the real API behaves, per the sources in the note):
 * - The envelope {success, errors: [{code, message}], messages, result, result_info} and its field names;
 *   result_info {page, per_page, count, total_count, total_pages} on lists; pagination with page/per_page
 *   (zones: default 20, at most 50; records: default 100).
 * - Routes: GET /zones?name=&status= (exact name, case-insensitive), GET /zones/{id},
 *   GET/POST /zones/{id}/dns_records (filters type=, name= or name.exact=, content= or content.exact=, proxied=;
 *   all must match), GET/PATCH/DELETE /zones/{id}/dns_records/{id}. DELETE answers {id}.
 * - Records with id, zone_id, zone_name, name, type, content, proxiable, proxied, ttl, locked, comment, tags,
 *   created_on, modified_on, meta, settings. Names are stored lower case, fully qualified, without a trailing
 *   dot ("@" and relative names are completed with the zone name). A/AAAA/CNAME are proxiable; a proxied record
 *   always shows ttl 1 ("automatic"); default ttl 1, default proxied false.
 * - PATCH changes only the fields sent; the result is validated like a new record.
 * - Refusals with Cloudflare's codes and HTTP statuses: 81058 "An identical record already exists." (400) for
 *   the same type, name and content; 81053 (CNAME beside A/AAAA/CNAME) and 81054 (A/AAAA beside a CNAME);
 *   81044 "Record does not exist." (404); 9000 bad name, 9005/9006 bad A/AAAA content, 9004 proxied on a type
 *   that cannot be; 9015 content over 4096 bytes.
 * - Token checks: no or malformed `Authorization: Bearer` (Cloudflare tokens are 40 characters of
 *   [A-Za-z0-9_-]) gets 400 with 6003 "Invalid request headers" (error_chain 6111); a well-formed but unknown
 *   token 403 with 9109 "Invalid access token"; a known token outside its zones, or writing without edit
 *   permission, 403 with 10000 "Authentication error". Zone listings show only the token's zones.
 * - Rate limit per token (1200 requests per 300 s by default): then 429 with Retry-After (seconds) and a JSON
 *   error; Ratelimit / Ratelimit-Policy headers on every answer. Tests inject 429s and 5xx on chosen routes.
 * - Write-through to pebble-challtestsrv's management API, so what pebble (and any resolver pointed at
 *   challtestsrv) sees is what the stand-in holds: for each name, A/AAAA answers are the records' contents when
 *   no A/AAAA/CNAME record of the name is proxied, and the configured "Cloudflare edge" addresses when any is
 *   (Cloudflare treats the name as proxied; its edge answers with its own A and AAAA); an unproxied CNAME becomes
 *   a challtestsrv CNAME; every TXT record of a name becomes one TXT answer (quotes around the content dropped).
 *   challtestsrv's /set-txt APPENDS a value and /clear-txt removes all values of the name (likewise /add-a and
 *   /clear-a), so each change re-syncs the whole set of the changed kind for that name (clear, then add each),
 *   which keeps apex + wildcard (two values on one _acme-challenge name) right. The API answer is sent only after
 *   the write-through finished; a failed write-through answers 502 and is kept in `writeThroughErrors`.
 *
 * What it does not model:
 * - Other routes (PUT overwrite, batch, zone settings, /user/tokens/verify), other record types' content rules,
 *   `match=any`, name/content operators other than exact, ordering options (lists keep creation order), the
 *   `settings`/`private_routing` semantics, record comments' and tags' plan limits, Enterprise minimum TTL 30.
 * - Propagation delay (Cloudflare's edge takes a few seconds; here DNS changes as soon as the API answers), DNS
 *   TTLs (challtestsrv answers with TTL 0), wildcard matching in DNS (challtestsrv answers only the literal name,
 *   so "*.example.com" is served for a query of "*.example.com" only), CNAME flattening, private-address
 *   restrictions on proxiable.
 * - The exact codes of some refusals whose real code the sources did not show: a malformed zone/record id is
 *   404 with 7003, an unknown route 404 with 7000, an unsupported method 405 with 7001, a bad body 400 with
 *   9207, other validation failures (missing fields, TTL range, type) 400 with 1004 "DNS Validation Error"; the
 *   429 body says code 971. Clients should key on the HTTP status and the codes listed above, not these.
 * - A short window during a re-sync where a kind of answer of the changed name is empty (challtestsrv then falls
 *   back to its -defaultIPv4 for A queries, if one is set).
 */
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface StandinToken {
  token: string;
  /** Zone names this token may see and change (default: all). */
  zones?: string[];
  /** May it create, change and delete records (Zone:DNS:Edit)? Default true. */
  edit?: boolean;
}

export interface StandinZone {
  name: string;
  /** Default "active". */
  status?: 'active' | 'pending' | 'initializing' | 'moved';
  id?: string;
}

export interface StandinOptions {
  tokens: Array<string | StandinToken>;
  zones: Array<string | StandinZone>;
  /** pebble-challtestsrv's management API; default http://127.0.0.1:8055; null: no write-through. */
  challtestsrv?: string | null;
  /** What a proxied name resolves to; default { ipv4: ['127.0.0.100'], ipv6: [] }. */
  edge?: { ipv4?: string[]; ipv6?: string[] };
  /** Default 1200 requests per 300 s per token; null: none. */
  rateLimit?: { requests: number; windowSeconds: number } | null;
  /** Default 0: an ephemeral port. */
  port?: number;
}

export interface LoggedRequest {
  method: string;
  /** Path without /client/v4 and without the query, e.g. /zones/<id>/dns_records/<id>. */
  path: string;
  query: Record<string, string>;
  /** The parsed JSON body, or the raw text when it was not JSON, or undefined. */
  body: unknown;
  status: number;
  /** Set when the answer was injected (failNext / rateLimitNext). */
  injected?: boolean;
}

export interface Fault {
  /** How many matching requests it applies to (default 1). */
  count?: number;
  /** Only requests with this method / whose path (without /client/v4) matches. */
  method?: string;
  path?: string | RegExp;
  /** Answer with this status (and body/headers) instead of handling the request. */
  status?: number;
  body?: string | Record<string, unknown>;
  headers?: Record<string, string>;
  /** Wait this long before answering (with `status`, or handling it normally when no status is given). */
  delayMs?: number;
}

interface StoredRecord {
  id: string;
  zoneId: string;
  name: string;
  type: string;
  content: string;
  proxied: boolean;
  ttl: number;
  comment: string | null;
  tags: string[];
  settings: Record<string, unknown>;
  created_on: string;
  modified_on: string;
  comment_modified_on?: string;
  tags_modified_on?: string;
}

interface Zone {
  id: string;
  name: string;
  status: string;
  created_on: string;
}

interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly errors: Array<{ code: number; message: string; error_chain?: Array<{ code: number; message: string }> }>,
  ) {
    super(errors.map((e) => e.message).join('; '));
  }
}

const PREFIX = '/client/v4';
const TOKEN_FORMAT = /^[A-Za-z0-9_-]{40}$/;
const ID = /^[0-9a-f]{32}$/;
const PROXIABLE = new Set(['A', 'AAAA', 'CNAME']);
const TYPES = new Set(['A', 'AAAA', 'CNAME', 'TXT', 'CAA', 'MX', 'NS']);
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** A token in Cloudflare's format (40 characters of [A-Za-z0-9_-]). */
export function makeToken(): string {
  return crypto.randomBytes(30).toString('base64url');
}

const newId = (): string => crypto.randomBytes(16).toString('hex');
const now = (): string => new Date().toISOString();
const refuse = (status: number, code: number, message: string): never => {
  throw new Refusal(status, [{ code, message }]);
};
const unquoteTxt = (content: string): string => (/^"[^"]*"$/.test(content) ? content.slice(1, -1) : content);

export class CloudflareStandin {
  /** Every request, in order. */
  readonly requests: LoggedRequest[] = [];
  /** Failed write-throughs to challtestsrv (should stay empty). */
  readonly writeThroughErrors: string[] = [];
  readonly edge: { ipv4: string[]; ipv6: string[] };
  url = '';

  private readonly server: http.Server;
  private readonly tokens = new Map<string, StandinToken>();
  private readonly zones: Zone[] = [];
  private readonly records = new Map<string, StoredRecord>();
  private readonly faults: Array<Fault & { left: number }> = [];
  private readonly usage = new Map<string, number[]>();
  private readonly synced = new Map<string, { a: string; aaaa: string; cname: string; txt: string }>();
  private readonly challtestsrv: string | null;
  private readonly rateLimit: { requests: number; windowSeconds: number } | null;
  private syncChain: Promise<void> = Promise.resolve();

  private constructor(options: StandinOptions) {
    for (const t of options.tokens) {
      const token = typeof t === 'string' ? { token: t } : t;
      if (!TOKEN_FORMAT.test(token.token))
        throw new Error('stand-in tokens must look like Cloudflare tokens: 40 characters of [A-Za-z0-9_-] (use makeToken())');
      this.tokens.set(token.token, token);
    }
    for (const z of options.zones) {
      const zone = typeof z === 'string' ? { name: z } : z;
      this.zones.push({ id: zone.id ?? newId(), name: zone.name.toLowerCase(), status: zone.status ?? 'active', created_on: now() });
    }
    this.challtestsrv = options.challtestsrv === undefined ? 'http://127.0.0.1:8055' : options.challtestsrv;
    this.edge = { ipv4: options.edge?.ipv4 ?? ['127.0.0.100'], ipv6: options.edge?.ipv6 ?? [] };
    this.rateLimit = options.rateLimit === undefined ? { requests: 1200, windowSeconds: 300 } : options.rateLimit;
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(`stand-in bug: ${String(error)}`);
      });
    });
  }

  static async start(options: StandinOptions): Promise<CloudflareStandin> {
    const standin = new CloudflareStandin(options);
    await new Promise<void>((resolve, reject) => {
      standin.server.once('error', reject);
      standin.server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
    });
    const { port } = standin.server.address() as AddressInfo;
    standin.url = `http://127.0.0.1:${port}${PREFIX}`;
    return standin;
  }

  async close(): Promise<void> {
    await this.syncChain;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  zoneId(name: string): string {
    const zone = this.zones.find((z) => z.name === name.toLowerCase());
    if (!zone) throw new Error(`stand-in has no zone ${name}`);
    return zone.id;
  }

  /** What the API would list, across zones (copies). */
  listRecords(filter: { name?: string; type?: string } = {}): Array<Record<string, unknown>> {
    return [...this.records.values()]
      .filter((r) => (filter.name === undefined || r.name === filter.name.toLowerCase()) && (filter.type === undefined || r.type === filter.type))
      .map((r) => this.recordJson(r));
  }

  /** Adds a record as a user would in the dashboard (no request logged); writes through. */
  async addRecord(
    zoneName: string,
    record: { type: string; name: string; content: string; proxied?: boolean; ttl?: number; comment?: string },
  ): Promise<Record<string, unknown>> {
    const zone = this.zones.find((z) => z.name === zoneName.toLowerCase());
    if (!zone) throw new Error(`stand-in has no zone ${zoneName}`);
    const stored = this.create(zone, record);
    await this.sync([stored.name]);
    return this.recordJson(stored);
  }

  /** Changes a record by hand (no request logged); writes through. */
  async editRecord(id: string, patch: Record<string, unknown>): Promise<Record<string, unknown>> {
    const record = this.records.get(id);
    if (!record) throw new Error(`stand-in has no record ${id}`);
    const before = record.name;
    this.patch(record, patch);
    await this.sync([before, record.name]);
    return this.recordJson(record);
  }

  /** Deletes a record by hand (no request logged); writes through. */
  async removeRecord(id: string): Promise<void> {
    const record = this.records.get(id);
    if (!record) throw new Error(`stand-in has no record ${id}`);
    this.records.delete(id);
    await this.sync([record.name]);
  }

  /** The next `count` requests (optionally only on a route) answer as given instead of being handled. */
  failNext(fault: Fault): void {
    this.faults.push({ ...fault, left: fault.count ?? 1 });
  }

  /** The next `count` requests answer 429 with Retry-After: `retryAfterSeconds`. */
  rateLimitNext(count: number, retryAfterSeconds: number, route: { method?: string; path?: string | RegExp } = {}): void {
    this.failNext({
      ...route,
      count,
      status: 429,
      headers: { 'Retry-After': String(retryAfterSeconds) },
      body: { success: false, errors: [{ code: 971, message: 'Please wait and consider throttling your request speed' }], messages: [], result: null },
    });
  }

  clearRequests(): void {
    this.requests.length = 0;
  }

  // ---- HTTP ----

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > 1_000_000) break;
      chunks.push(chunk as Buffer);
    }
    const raw = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const method = (req.method ?? 'GET').toUpperCase();
    const path = url.pathname.startsWith(PREFIX) ? url.pathname.slice(PREFIX.length) || '/' : url.pathname;
    let body: unknown;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw);
      } catch {
        body = raw;
      }
    }
    const entry: LoggedRequest = { method, path, query: Object.fromEntries(url.searchParams), body, status: 0 };
    this.requests.push(entry);

    const fault = this.takeFault(method, path);
    // a fault asked for: the stand-in answers late on purpose (timeouts are tested with it)
    if (fault?.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
    let answer: Answer;
    if (fault?.status !== undefined) {
      entry.injected = true;
      answer = { status: fault.status, headers: fault.headers, body: fault.body ?? defaultFaultBody(fault.status) };
    } else {
      try {
        answer = await this.route(req, method, path, url.searchParams, raw, url.pathname.startsWith(PREFIX));
      } catch (error) {
        if (!(error instanceof Refusal)) throw error;
        answer = { status: error.status, body: { success: false, errors: error.errors, messages: [], result: null } };
      }
    }
    entry.status = answer.status;
    const headers: Record<string, string> = {
      'Content-Type': 'application/json',
      Server: 'cloudflare',
      'CF-RAY': `${crypto.randomBytes(8).toString('hex')}-LHR`,
      ...this.rateLimitHeaders(req),
      ...answer.headers,
    };
    const text = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
    if (typeof answer.body === 'string' && !answer.headers?.['Content-Type']) headers['Content-Type'] = text.startsWith('<') ? 'text/html' : 'text/plain';
    res.writeHead(answer.status, headers);
    res.end(text);
  }

  private takeFault(method: string, path: string): Fault | undefined {
    const i = this.faults.findIndex(
      (f) =>
        (f.method === undefined || f.method.toUpperCase() === method) &&
        (f.path === undefined || (typeof f.path === 'string' ? f.path === path : f.path.test(path))),
    );
    if (i < 0) return undefined;
    const fault = this.faults[i]!;
    if (--fault.left <= 0) this.faults.splice(i, 1);
    return fault;
  }

  private bearer(req: http.IncomingMessage): string | undefined {
    return /^Bearer ([^\s]+)$/.exec(req.headers.authorization ?? '')?.[1];
  }

  private rateLimitHeaders(req: http.IncomingMessage): Record<string, string> {
    if (!this.rateLimit) return {};
    const token = this.bearer(req);
    const used = token ? (this.usage.get(token) ?? []).length : 0;
    return {
      Ratelimit: `"default";r=${Math.max(0, this.rateLimit.requests - used)};t=${this.rateLimit.windowSeconds}`,
      'Ratelimit-Policy': `"default";q=${this.rateLimit.requests};w=${this.rateLimit.windowSeconds}`,
    };
  }

  private async route(req: http.IncomingMessage, method: string, path: string, query: URLSearchParams, raw: string, underPrefix: boolean): Promise<Answer> {
    if (!underPrefix) refuse(404, 7000, 'No route for that URI');

    // Authentication, as the real API does it before routing.
    const header = req.headers.authorization;
    const token = this.bearer(req);
    if (!header || !token || !TOKEN_FORMAT.test(token)) {
      throw new Refusal(400, [
        { code: 6003, message: 'Invalid request headers', error_chain: [{ code: 6111, message: 'Invalid format for Authorization header' }] },
      ]);
    }
    const grant = this.tokens.get(token);
    if (!grant) refuse(403, 9109, 'Invalid access token');

    if (this.rateLimit) {
      const windowMs = this.rateLimit.windowSeconds * 1000;
      const t = Date.now();
      const used = (this.usage.get(token!) ?? []).filter((at) => at > t - windowMs);
      if (used.length >= this.rateLimit.requests) {
        this.usage.set(token!, used);
        const retryAfter = Math.max(1, Math.ceil((used[0]! + windowMs - t) / 1000));
        return {
          status: 429,
          headers: { 'Retry-After': String(retryAfter) },
          body: {
            success: false,
            errors: [
              {
                code: 971,
                message: `More than ${this.rateLimit.requests} requests per ${this.rateLimit.windowSeconds} seconds reached. Please wait and consider throttling your request speed`,
              },
            ],
            messages: [],
            result: null,
          },
        };
      }
      used.push(t);
      this.usage.set(token!, used);
    }

    const visible = (zone: Zone) => grant!.zones === undefined || grant!.zones.map((n) => n.toLowerCase()).includes(zone.name);
    const parts = path.split('/').filter(Boolean);
    if (parts[0] !== 'zones') refuse(404, 7000, 'No route for that URI');

    if (parts.length === 1) {
      if (method !== 'GET') refuse(405, 7001, `Method ${method} not available for that URI.`);
      const name = (query.get('name') ?? query.get('name.equal'))?.toLowerCase();
      const status = query.get('status');
      const zones = this.zones.filter((z) => visible(z) && (name === undefined || z.name === name) && (!status || z.status === status));
      return this.page(
        zones.map((z) => this.zoneJson(z)),
        query,
        20,
        50,
      );
    }

    const zoneId = parts[1]!;
    if (!ID.test(zoneId)) refuse(404, 7003, `Could not route to ${path}, perhaps your object identifier is invalid?`);
    const zone = this.zones.find((z) => z.id === zoneId);
    if (!zone || !visible(zone)) refuse(403, 10000, 'Authentication error');

    if (parts.length === 2) {
      if (method !== 'GET') refuse(405, 7001, `Method ${method} not available for that URI.`);
      return this.ok(this.zoneJson(zone!));
    }
    if (parts[2] !== 'dns_records' || parts.length > 4) refuse(404, 7000, 'No route for that URI');
    const writes = method === 'POST' || method === 'PATCH' || method === 'DELETE' || method === 'PUT';
    if (writes && grant!.edit === false) refuse(403, 10000, 'Authentication error');

    if (parts.length === 3) {
      if (method === 'GET') return this.listAnswer(zone!, query);
      if (method === 'POST') {
        const stored = this.create(zone!, this.parseBody(raw));
        await this.sync([stored.name]);
        return this.ok(this.recordJson(stored));
      }
      refuse(405, 7001, `Method ${method} not available for that URI.`);
    }

    const id = parts[3]!;
    if (!ID.test(id)) refuse(404, 7003, `Could not route to ${path}, perhaps your object identifier is invalid?`);
    const record = this.records.get(id);
    if (method !== 'GET' && method !== 'PATCH' && method !== 'DELETE') refuse(405, 7001, `Method ${method} not available for that URI.`);
    if (!record || record.zoneId !== zone!.id) refuse(404, 81044, 'Record does not exist.');
    if (method === 'GET') return this.ok(this.recordJson(record!));
    if (method === 'PATCH') {
      const before = record!.name;
      this.patch(record!, this.parseBody(raw));
      await this.sync([before, record!.name]);
      return this.ok(this.recordJson(record!));
    }
    this.records.delete(id);
    await this.sync([record!.name]);
    return this.ok({ id });
  }

  private parseBody(raw: string): Record<string, unknown> {
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      body = undefined;
    }
    if (!body || typeof body !== 'object' || Array.isArray(body)) refuse(400, 9207, 'Request body is invalid.');
    return body as Record<string, unknown>;
  }

  private ok(result: unknown): Answer {
    return { status: 200, body: { success: true, errors: [], messages: [], result } };
  }

  private page(items: unknown[], query: URLSearchParams, defaultPerPage: number, maxPerPage: number): Answer {
    const int = (key: string, fallback: number) => {
      const v = query.get(key);
      if (v === null) return fallback;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) refuse(400, 1004, `Invalid ${key} parameter.`);
      return n;
    };
    const perPage = Math.min(int('per_page', defaultPerPage), maxPerPage);
    const page = int('page', 1);
    const slice = items.slice((page - 1) * perPage, page * perPage);
    return {
      status: 200,
      body: {
        success: true,
        errors: [],
        messages: [],
        result: slice,
        result_info: { page, per_page: perPage, count: slice.length, total_count: items.length, total_pages: Math.max(1, Math.ceil(items.length / perPage)) },
      },
    };
  }

  private listAnswer(zone: Zone, query: URLSearchParams): Answer {
    const type = query.get('type');
    const name = (query.get('name') ?? query.get('name.exact'))?.toLowerCase().replace(/\.$/, '');
    const content = query.get('content') ?? query.get('content.exact');
    const proxied = query.get('proxied');
    const items = [...this.records.values()].filter(
      (r) =>
        r.zoneId === zone.id &&
        (!type || r.type === type) &&
        (name === undefined || r.name === name) &&
        (content === null || r.content === content) &&
        (proxied === null || String(r.proxied) === proxied),
    );
    return this.page(
      items.map((r) => this.recordJson(r)),
      query,
      100,
      5_000_000,
    );
  }

  // ---- records ----

  private fullName(zone: Zone, input: unknown): string {
    if (typeof input !== 'string' || input.length === 0) refuse(400, 9000, 'DNS name is invalid.');
    let name = (input as string).toLowerCase();
    if (name === '@') name = zone.name;
    if (name.endsWith('.')) name = name.slice(0, -1);
    if (name !== zone.name && !name.endsWith(`.${zone.name}`)) name = `${name}.${zone.name}`;
    const labels = name.split('.');
    if (name.length > 253 || CONTROL.test(name) || !labels.every((l, i) => LABEL.test(l) || (i === 0 && l === '*'))) refuse(400, 9000, 'DNS name is invalid.');
    return name;
  }

  /** Cloudflare's checks on a record as it would be stored; `self` is excluded from the duplicate checks. */
  private validate(zone: Zone, r: StoredRecord, self?: string): void {
    if (!TYPES.has(r.type)) refuse(400, 1004, 'DNS Validation Error');
    if (typeof r.content !== 'string' || r.content.length === 0) refuse(400, 1004, 'DNS Validation Error');
    if (Buffer.byteLength(r.content) > 4096) refuse(400, 9015, 'Record content exceeds the allowed length of 4096 wire format bytes.');
    if (r.type === 'A' && !net.isIPv4(r.content)) refuse(400, 9005, 'Content for A record must be a valid IPv4 address.');
    if (r.type === 'AAAA' && !net.isIPv6(r.content)) refuse(400, 9006, 'Content for AAAA record must be a valid IPv6 address.');
    if (r.type === 'CNAME' && !/^[a-z0-9_.-]+$/i.test(r.content)) refuse(400, 9007, 'Content for CNAME record is invalid.');
    if (typeof r.proxied !== 'boolean') refuse(400, 1004, 'DNS Validation Error');
    if (r.proxied && !PROXIABLE.has(r.type)) refuse(400, 9004, 'This record type cannot be proxied.');
    if (!Number.isInteger(r.ttl) || !(r.ttl === 1 || (r.ttl >= 60 && r.ttl <= 86_400))) refuse(400, 1004, 'DNS Validation Error');
    const others = [...this.records.values()].filter((o) => o.zoneId === zone.id && o.id !== self && o.name === r.name);
    const same = (a: StoredRecord) =>
      a.type === 'TXT' ? unquoteTxt(a.content) === unquoteTxt(r.content) : a.content.toLowerCase() === r.content.toLowerCase();
    if (others.some((o) => o.type === r.type && same(o))) refuse(400, 81058, 'An identical record already exists.');
    if (r.type === 'CNAME' && others.some((o) => PROXIABLE.has(o.type))) refuse(400, 81053, 'An A, AAAA, or CNAME record with that host already exists.');
    if ((r.type === 'A' || r.type === 'AAAA') && others.some((o) => o.type === 'CNAME')) refuse(400, 81054, 'A CNAME record with that host already exists.');
  }

  private create(zone: Zone, body: Record<string, unknown>): StoredRecord {
    const t = now();
    const record: StoredRecord = {
      id: newId(),
      zoneId: zone.id,
      name: this.fullName(zone, body.name),
      type: typeof body.type === 'string' ? body.type.toUpperCase() : '',
      content: body.content as string,
      proxied: body.proxied === undefined ? false : (body.proxied as boolean),
      ttl: body.ttl === undefined ? 1 : (body.ttl as number),
      comment: typeof body.comment === 'string' ? body.comment : null,
      tags: Array.isArray(body.tags) ? body.tags.map(String) : [],
      settings: body.settings && typeof body.settings === 'object' ? (body.settings as Record<string, unknown>) : {},
      created_on: t,
      modified_on: t,
    };
    if (record.type === 'CNAME' && typeof record.content === 'string') record.content = record.content.toLowerCase().replace(/\.$/, '');
    this.validate(zone, record);
    if (record.proxied) record.ttl = 1;
    if (record.comment !== null) record.comment_modified_on = t;
    if (record.tags.length > 0) record.tags_modified_on = t;
    this.records.set(record.id, record);
    return record;
  }

  private patch(record: StoredRecord, body: Record<string, unknown>): void {
    const zone = this.zones.find((z) => z.id === record.zoneId)!;
    const next: StoredRecord = { ...record, tags: [...record.tags] };
    if ('name' in body) next.name = this.fullName(zone, body.name);
    if ('type' in body) next.type = typeof body.type === 'string' ? body.type.toUpperCase() : '';
    if ('content' in body) next.content = body.content as string;
    if ('proxied' in body) next.proxied = body.proxied as boolean;
    if ('ttl' in body) next.ttl = body.ttl as number;
    if ('comment' in body) next.comment = typeof body.comment === 'string' ? body.comment : null;
    if ('tags' in body) next.tags = Array.isArray(body.tags) ? body.tags.map(String) : [];
    if ('settings' in body && body.settings && typeof body.settings === 'object') next.settings = body.settings as Record<string, unknown>;
    if (next.type === 'CNAME' && typeof next.content === 'string') next.content = next.content.toLowerCase().replace(/\.$/, '');
    this.validate(zone, next, record.id);
    if (next.proxied) next.ttl = 1;
    const t = now();
    next.modified_on = t;
    if ('comment' in body) next.comment_modified_on = t;
    if ('tags' in body) next.tags_modified_on = t;
    Object.assign(record, next);
  }

  private zoneJson(z: Zone): Record<string, unknown> {
    return {
      id: z.id,
      name: z.name,
      status: z.status,
      paused: false,
      type: 'full',
      development_mode: 0,
      name_servers: ['ada.ns.cloudflare.com', 'bob.ns.cloudflare.com'],
      original_name_servers: null,
      original_registrar: null,
      original_dnshost: null,
      modified_on: z.created_on,
      created_on: z.created_on,
      activated_on: z.status === 'active' ? z.created_on : null,
      meta: { step: 2, custom_certificate_quota: 0, page_rule_quota: 3, phishing_detected: false },
      owner: { id: null, type: 'user', email: null },
      account: { id: '0123456789abcdef0123456789abcdef', name: 'autossl stand-in account' },
      permissions: ['#dns_records:edit', '#dns_records:read', '#zone:read'],
      plan: {
        id: '0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee',
        name: 'Free Website',
        price: 0,
        currency: 'USD',
        frequency: '',
        is_subscribed: false,
        can_subscribe: false,
        legacy_id: 'free',
        legacy_discount: false,
        externally_managed: false,
      },
    };
  }

  private recordJson(r: StoredRecord): Record<string, unknown> {
    const zone = this.zones.find((z) => z.id === r.zoneId)!;
    return {
      id: r.id,
      zone_id: r.zoneId,
      zone_name: zone.name,
      name: r.name,
      type: r.type,
      content: r.content,
      proxiable: PROXIABLE.has(r.type),
      proxied: r.proxied,
      ttl: r.ttl,
      locked: false,
      settings: { ...r.settings },
      meta: { auto_added: false, managed_by_apps: false, managed_by_argo_tunnel: false },
      comment: r.comment,
      tags: [...r.tags],
      created_on: r.created_on,
      modified_on: r.modified_on,
      ...(r.comment_modified_on ? { comment_modified_on: r.comment_modified_on } : {}),
      ...(r.tags_modified_on ? { tags_modified_on: r.tags_modified_on } : {}),
    };
  }

  // ---- write-through to pebble-challtestsrv ----

  /** Re-syncs the DNS answers of these names; serialised so two changes never interleave. */
  private sync(names: string[]): Promise<void> {
    const run = this.syncChain.then(async () => {
      for (const name of new Set(names)) await this.syncName(name);
    });
    this.syncChain = run.catch(() => undefined);
    return run.catch((error: unknown) => {
      this.writeThroughErrors.push(String(error));
      throw new Refusal(502, [{ code: 10001, message: `stand-in: write-through to challtestsrv failed: ${String(error)}` }]);
    });
  }

  private async syncName(name: string): Promise<void> {
    if (!this.challtestsrv) return;
    const records = [...this.records.values()].filter((r) => r.name === name);
    const addressing = records.filter((r) => PROXIABLE.has(r.type));
    const proxied = addressing.some((r) => r.proxied);
    const want = {
      a: proxied ? [...this.edge.ipv4] : records.filter((r) => r.type === 'A').map((r) => r.content),
      aaaa: proxied ? [...this.edge.ipv6] : records.filter((r) => r.type === 'AAAA').map((r) => r.content),
      cname: proxied
        ? []
        : records
            .filter((r) => r.type === 'CNAME')
            .map((r) => r.content)
            .slice(0, 1),
      txt: records.filter((r) => r.type === 'TXT').map((r) => unquoteTxt(r.content)),
    };
    const have = this.synced.get(name) ?? { a: '[]', aaaa: '[]', cname: '[]', txt: '[]' };
    const host = `${name}.`;
    if (have.a !== JSON.stringify(want.a)) {
      await this.post('/clear-a', { host });
      if (want.a.length > 0) await this.post('/add-a', { host, addresses: want.a });
    }
    if (have.aaaa !== JSON.stringify(want.aaaa)) {
      await this.post('/clear-aaaa', { host });
      if (want.aaaa.length > 0) await this.post('/add-aaaa', { host, addresses: want.aaaa });
    }
    if (have.cname !== JSON.stringify(want.cname)) {
      await this.post('/clear-cname', { host });
      if (want.cname.length > 0) await this.post('/set-cname', { host, target: `${want.cname[0]}.` });
    }
    if (have.txt !== JSON.stringify(want.txt)) {
      await this.post('/clear-txt', { host });
      for (const value of want.txt) await this.post('/set-txt', { host, value });
    }
    this.synced.set(name, { a: JSON.stringify(want.a), aaaa: JSON.stringify(want.aaaa), cname: JSON.stringify(want.cname), txt: JSON.stringify(want.txt) });
  }

  private async post(endpoint: string, body: Record<string, unknown>): Promise<void> {
    const res = await fetch(`${this.challtestsrv}${endpoint}`, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(5000) });
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`challtestsrv ${endpoint} answered HTTP ${res.status}`);
  }
}

function defaultFaultBody(status: number): string | Record<string, unknown> {
  if (status >= 500) {
    const reason = http.STATUS_CODES[status] ?? 'Error';
    // What Cloudflare's edge sends when the API behind it fails: an HTML page, not the JSON envelope.
    return `<html>\r\n<head><title>${status} ${reason}</title></head>\r\n<body>\r\n<center><h1>${status} ${reason}</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n`;
  }
  return { success: false, errors: [{ code: 1000, message: `injected ${status}` }], messages: [], result: null };
}
