/**
 * Where does a request end up? Answers it for one server block the way nginx processes a request
 * ("How nginx processes a request", ngx_http_core_find_location, ngx_http_rewrite_module):
 *  1. the server's rewrite phase: its `return`, `rewrite`, `if`, `set` and `break`, in order, before any location
 *     is chosen (certbot's redirect, `if ($host = d) { return 301 https://$host$request_uri; }`, lives here);
 *  2. location selection: an exact `=` match wins; otherwise the longest prefix is remembered; a `^~` longest
 *     prefix stops the search; otherwise regexes are tried in order of appearance and the first match wins;
 *     otherwise the longest prefix (nested locations the same way);
 *  3. the location's own rewrite phase, then its content handler: static files from `root`, or something else.
 * When an answer is uncertain (a condition on a variable autossl cannot know, a rewrite that changes the URI), it
 * says so rather than guessing: the editor then adds an explicit location or refuses before anything is ordered.
 */
import { argValues, childDirectives, lineColumn, type Directive } from './parse.js';
import type { ServerBlock } from './tree.js';
import { findLocation, parseLocation, regexTest } from './location-match.js';
import { children, effectiveParent, type RouteEnv } from './route-env.js';

// what routing's callers name here (the location search and the tree's maps and includes are files of their own)
export { parseLocation } from './location-match.js';
export { effectiveParent, mapsOf, routeEnv, type MapIndex, type RouteEnv } from './route-env.js';

export const ACME_PREFIX = '/.well-known/acme-challenge/';

/** Directives that hand a request to something other than the static file handler. */
const NOT_STATIC = new Set([
  'proxy_pass',
  'fastcgi_pass',
  'uwsgi_pass',
  'scgi_pass',
  'grpc_pass',
  'memcached_pass',
  'deny',
  'internal',
  'alias',
  'auth_request',
  'content_by_lua',
  'content_by_lua_block',
  'content_by_lua_file',
  'rewrite_by_lua_block',
  'access_by_lua_block',
  'error_page',
  'auth_basic',
]);

/** A request as the CA makes it. */
export interface Request {
  scheme: 'http' | 'https';
  host: string;
  uri: string;
}

export interface RedirectTarget {
  scheme: 'http' | 'https';
  host: string;
  port: number;
  uri: string;
}

export type Route =
  /** Served as a static file from `root`. */
  | { kind: 'static'; root: string; reason: string }
  /** Redirected; `to` is null when the target holds what autossl cannot work out. */
  | { kind: 'redirect'; status: number; to: RedirectTarget | null; via: Directive; reason: string }
  /**
   * Answered by something else: an app, a deny, a fixed status. `access`: static files, but behind an `auth_basic` or
   * `deny` the location inherits (a challenge location of its own must turn them off: `auth_basic off; allow all;`).
   */
  | { kind: 'handled'; via: Directive | null; reason: string; access?: true }
  /** Depends on what autossl cannot know (a condition on a variable, a URI rewrite). */
  | { kind: 'uncertain'; via: Directive; reason: string };

/** The CA's validation request: what nginx's variables hold for it (GET, no query string, no cookies). */
const CA_REQUEST: Record<string, string> = {
  request_method: 'GET',
  args: '',
  query_string: '',
  is_args: '',
  http_cookie: '',
  http_referer: '',
  http_user_agent: "Mozilla/5.0 (compatible; Let's Encrypt validation server; +https://www.letsencrypt.org)",
  content_length: '',
  content_type: '',
};

/**
 * One request through one server block's rewrite rules: what the variables hold (nginx's own, the CA's request,
 * the config's maps; not what `set` assigned, nor anything about the client), and what each rule decides.
 */
class Evaluation {
  /** Variables a `set` assigned: their value depends on what autossl did not follow. */
  private readonly assigned = new Set<string>();

  constructor(
    private readonly req: Request,
    private readonly server: ServerBlock,
    private readonly env: RouteEnv,
  ) {}

  /** The value nginx gives a variable for this request, or undefined when autossl cannot know it. */
  variable(name: string, depth = 0): string | undefined {
    if (this.assigned.has(name)) return undefined;
    if (name in CA_REQUEST) return CA_REQUEST[name];
    if (name.startsWith('arg_') || name.startsWith('cookie_')) return '';
    switch (name) {
      case 'host':
      case 'http_host':
        return this.req.host;
      case 'server_name':
        return this.server.names[0] ?? '';
      case 'scheme':
        return this.req.scheme;
      case 'https':
        return this.req.scheme === 'https' ? 'on' : '';
      case 'request_uri':
      case 'uri':
      case 'document_uri':
        return this.req.uri;
      case 'server_port':
        return this.req.scheme === 'https' ? '443' : '80';
      default:
        return depth < 4 ? this.mapValue(name, depth) : undefined;
    }
  }

  /** Substitutes the variables of a value, or undefined when one is not known. */
  expand(text: string, depth = 0): string | undefined {
    let unknown = false;
    const out = text.replace(/\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))/g, (_, a: string | undefined, b: string | undefined) => {
      const value = this.variable((a ?? b)!, depth);
      if (value === undefined) unknown = true;
      return value ?? '';
    });
    return unknown ? undefined : out;
  }

  /** What a `map` gives for this request: exact keys, then regexes in order, then `default`; undefined if unsure. */
  private mapValue(name: string, depth: number): string | undefined {
    const map = this.env.maps.get(name);
    const sourceText = map && argValues(map)[0];
    if (!map || sourceText === undefined) return undefined;
    const source = this.expand(sourceText, depth + 1);
    if (source === undefined) return undefined;
    const known = (value: string): string | undefined => (value.includes('$') ? undefined : value);
    let fallback = '';
    const regexes: Array<[string, boolean, string]> = [];
    for (const entry of childDirectives(map)) {
      const [value = ''] = argValues(entry);
      if (entry.name === 'default') fallback = value;
      else if (entry.name === 'hostnames' || entry.name === 'include' || entry.name === 'volatile') return undefined;
      else if (entry.name.startsWith('~')) regexes.push([entry.name.replace(/^~\*?/, ''), entry.name.startsWith('~*'), value]);
      else if (entry.name.replace(/^\\/, '') === source) return known(value);
    }
    for (const [pattern, ci, value] of regexes) {
      const hit = regexTest(pattern, ci, source);
      if (hit === null) return undefined;
      if (hit) return known(value);
    }
    return known(fallback);
  }

  /** An `if` condition: true, false, or null when it depends on what autossl cannot know. */
  condition(d: Directive): boolean | null {
    const words = argValues(d);
    if (!words.length) return null;
    // `if ($host = a)` arrives as "($host", "=", "a)": strip the parentheses nginx strips
    const args = [...words];
    args[0] = args[0]!.replace(/^\(/, '');
    args[args.length - 1] = args[args.length - 1]!.replace(/\)$/, '');
    const [left, op, right] = args.filter((a) => a !== '');
    if (!left?.startsWith('$')) return null; // -f, -d, -e, -x: the file system at request time
    const value = this.expand(left);
    if (value === undefined) return null;
    if (op === undefined) return value !== '' && value !== '0';
    if (right === undefined) return null;
    switch (op) {
      case '=':
        return value === right;
      case '!=':
        return value !== right;
      case '~':
      case '~*':
      case '!~':
      case '!~*': {
        const hit = regexTest(right, op.endsWith('*'), value);
        if (hit === null) return null;
        return op.startsWith('!') ? !hit : hit;
      }
      default:
        return null;
    }
  }

  private target(text: string): RedirectTarget | null {
    const url = this.expand(text);
    if (url === undefined) return null;
    const { req } = this;
    if (url.startsWith('/')) return { scheme: req.scheme, host: req.host, port: req.scheme === 'https' ? 443 : 80, uri: url };
    try {
      const u = new URL(url);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
      const scheme = u.protocol === 'https:' ? 'https' : 'http';
      return { scheme, host: u.hostname.toLowerCase(), port: u.port ? Number(u.port) : scheme === 'https' ? 443 : 80, uri: `${u.pathname}${u.search}` };
    } catch {
      return null;
    }
  }

  /** A `return` as a route: a redirect (with its target worked out when it can be) or a fixed answer. */
  private returnRoute(d: Directive): Route {
    const [first, second] = argValues(d);
    let target: string | undefined;
    let status = 302;
    if (first !== undefined && /^\d+$/.test(first)) {
      const code = Number(first);
      if (![301, 302, 303, 307, 308].includes(code)) return { kind: 'handled', via: d, reason: `"${describe(d)}" answers ${code}` };
      status = code;
      target = second;
    } else target = first; // `return URL` is a 302
    if (target === undefined) return { kind: 'handled', via: d, reason: `"${describe(d)}" answers without a location` };
    return { kind: 'redirect', status, to: this.target(target), via: d, reason: `"${describe(d)}" redirects` };
  }

  /**
   * The rewrite phase of a block (server or location): `return`, `rewrite`, `if`, `set`, `break` in order. Returns
   * the route they decide, or null when they let the request through to location matching / the content handler.
   */
  rewritePhase(list: readonly Directive[]): Route | null {
    for (const d of list) {
      switch (d.name) {
        case 'return':
          return this.returnRoute(d);
        case 'break':
          return null;
        case 'set': {
          const name = argValues(d)[0]?.replace(/^\$/, '');
          if (name) this.assigned.add(name);
          continue;
        }
        case 'rewrite': {
          const [pattern, replacement, flag] = argValues(d);
          if (pattern === undefined || replacement === undefined) continue;
          const hit = regexTest(pattern, false, this.req.uri);
          if (hit === false) continue;
          if (hit === null) return { kind: 'uncertain', via: d, reason: `"${describe(d)}" uses a regex autossl cannot evaluate` };
          if (flag === 'redirect' || flag === 'permanent' || /^(https?:\/\/|\$scheme)/.test(replacement)) {
            return {
              kind: 'redirect',
              status: flag === 'permanent' ? 301 : 302,
              to: /\$\d/.test(replacement) ? null : this.target(replacement),
              via: d,
              reason: `"${describe(d)}" redirects`,
            };
          }
          return { kind: 'uncertain', via: d, reason: `"${describe(d)}" rewrites the URI` };
        }
        case 'if': {
          const inside = children(d, this.env);
          const verdict = this.condition(d);
          if (verdict === false) continue;
          // an `if` that only sets variables decides nothing itself: those variables just become unknown
          if (verdict === null && inside.every((c) => c.name === 'set')) {
            for (const c of inside) this.rewritePhase([c]);
            continue;
          }
          if (verdict === null) return { kind: 'uncertain', via: d, reason: `"${describe(d)}" depends on what autossl cannot know` };
          const decided = this.rewritePhase(inside);
          if (decided) return decided;
          // an `if` holding content-phase directives (proxy_pass...) takes the request over
          const content = inside.find((c) => NOT_STATIC.has(c.name) || c.name.endsWith('_pass'));
          if (content) return { kind: 'handled', via: d, reason: `"${describe(d)}" hands the request to "${content.name}"` };
          continue;
        }
        default:
          continue;
      }
    }
    return null;
  }
}

/** What a level's access directives leave in force: its own `auth_basic` / `allow`+`deny` list replace the inherited ones. */
interface Access {
  auth: Directive | undefined;
  rules: Directive[];
}

function accessOf(list: readonly Directive[], inherited: Access): Access {
  const auth = list.filter((d) => d.name === 'auth_basic').pop() ?? inherited.auth;
  const own = list.filter((d) => d.name === 'allow' || d.name === 'deny');
  return { auth, rules: own.length ? own : inherited.rules };
}

/** `auth_basic off` and `allow`: they open a location rather than close it. */
function isOpenAccess(d: Directive): boolean {
  return (d.name === 'auth_basic' && argValues(d)[0] === 'off') || d.name === 'allow';
}

function describe(d: Directive): string {
  return [d.name, ...argValues(d)].join(' ');
}

/** Where a request for `req` ends up in this server block (`maps`: the config's maps, see mapsOf). */
export function routeRequest(server: ServerBlock, req: Request, env: RouteEnv = { maps: new Map() }): Route {
  const evaluation = new Evaluation(req, server, env);
  const serverLevel = children(server.directive, env);
  const early = evaluation.rewritePhase(serverLevel);
  if (early) return early;
  let root = serverLevel
    .filter((d) => d.name === 'root')
    .map((d) => argValues(d)[0])
    .pop();
  const scope: Directive = server.directive;
  // the access phase runs after the rewrite phase: what each level sets is inherited unless a location sets its own
  let access = accessOf(serverLevel, { auth: undefined, rules: [] });
  const found = findLocation(children(scope, env, 'location'), req.uri, env);
  if (found.uncertain)
    return { kind: 'uncertain', via: found.uncertain, reason: `location "${argValues(found.uncertain).join(' ')}" uses a regex autossl cannot evaluate` };
  for (const chosen of found.chain) {
    const inside = children(chosen, env);
    const phase = evaluation.rewritePhase(inside);
    if (phase) return phase;
    access = accessOf(inside, access);
    const blocker = inside.find((d) => (NOT_STATIC.has(d.name) && !isOpenAccess(d)) || d.name.endsWith('_pass'));
    if (blocker) return { kind: 'handled', via: chosen, reason: `location "${argValues(chosen).join(' ')}" uses "${blocker.name}"` };
    const tryFiles = inside.find((d) => d.name === 'try_files');
    if (tryFiles && !argValues(tryFiles)[0]?.startsWith('$uri')) {
      return { kind: 'handled', via: chosen, reason: `location "${argValues(chosen).join(' ')}" routes through try_files ${argValues(tryFiles).join(' ')}` };
    }
    const locRoot = inside
      .filter((d) => d.name === 'root')
      .map((d) => argValues(d)[0])
      .pop();
    if (locRoot) root = locRoot;
  }
  const closed = access.auth && argValues(access.auth)[0] !== 'off' ? access.auth : access.rules.find((d) => d.name === 'deny');
  if (closed)
    return {
      kind: 'handled',
      via: null,
      access: true,
      reason: `"${describe(closed)}" (${effectiveParent(closed)?.name === 'location' ? 'in its location' : 'at server level'}) keeps the CA out: it sends no password and comes from any address`,
    };
  if (!root) return { kind: 'handled', via: null, reason: 'the server block has no "root"' };
  if (root.includes('$')) return { kind: 'handled', via: null, reason: `its root "${root}" depends on a variable` };
  return { kind: 'static', root, reason: `served as a static file from ${root}` };
}

export interface ChallengeRouting {
  served: boolean;
  /** The directory certbot must write to, when served. */
  webroot?: string;
  /** An existing location whose path is exactly the challenge prefix (a new one would be a duplicate). */
  existing?: Directive;
  route: Route;
  reason: string;
}

/** How this block answers the CA's HTTP-01 request for `host` (over plain HTTP unless said otherwise). */
export function challengeRouting(
  server: ServerBlock,
  host = server.names.find((n) => !n.startsWith('~') && !n.includes('*')) ?? '',
  scheme: Request['scheme'] = 'http',
  env: RouteEnv = { maps: new Map() },
): ChallengeRouting {
  const existing = childDirectives(server.directive, 'location').find((d) => {
    const spec = parseLocation(d);
    return spec && spec.modifier !== '~' && spec.modifier !== '~*' && (spec.path === ACME_PREFIX || spec.path === ACME_PREFIX.slice(0, -1));
  });
  const route = routeRequest(server, { scheme, host, uri: `${ACME_PREFIX}autossl-probe-token` }, env);
  if (route.kind === 'static') return { served: true, webroot: route.root, existing, route, reason: route.reason };
  return { served: false, existing, route, reason: route.kind === 'uncertain' || route.kind === 'handled' || route.kind === 'redirect' ? route.reason : '' };
}

/** file:line of a directive of this server block, for messages. */
export function directiveLocation(server: ServerBlock, d: Directive): string {
  return `${server.file}:${lineColumn(server.config.source, d.start).line}`;
}
