/**
 * Would this server block serve `/.well-known/acme-challenge/<token>` as a static file, and from where?
 * Answers it the way nginx picks a location ("How nginx processes a request", ngx_http_core_find_location):
 * an exact `=` match wins; otherwise the longest prefix is remembered; a `^~` longest prefix stops the search;
 * otherwise regexes are tried in order of appearance and the first match wins; otherwise the longest prefix.
 * When the answer is uncertain (server-level `if`, `rewrite`, an app handler), it says "not served", so the
 * editor adds an explicit `^~` location: that can only make the challenge reachable, never break the site.
 */
import { argValues, childDirectives, type Directive } from './parse.js';
import type { ServerBlock } from './tree.js';

export const ACME_PREFIX = '/.well-known/acme-challenge/';

interface LocationSpec {
  directive: Directive;
  modifier: '=' | '^~' | '~' | '~*' | '';
  path: string;
}

export function parseLocation(directive: Directive): LocationSpec | null {
  const args = argValues(directive);
  if (args.length === 0) return null;
  let modifier: LocationSpec['modifier'] = '';
  let path: string;
  if (args.length >= 2 && ['=', '^~', '~', '~*'].includes(args[0]!)) {
    modifier = args[0] as LocationSpec['modifier'];
    path = args[1]!;
  } else {
    // [\s\S], not ".": a quoted path may hold a newline (`location "/a\n b"`), which nginx accepts
    const m = /^(=|\^~|~\*|~)?([\s\S]*)$/.exec(args[0]!)!;
    modifier = (m[1] ?? '') as LocationSpec['modifier'];
    path = m[2]!;
  }
  if (path.startsWith('@')) return null; // named location: never matched by a URI
  return { directive, modifier, path };
}

function pickLocation(locations: readonly Directive[], uri: string): Directive | null {
  let longest: LocationSpec | null = null;
  const regexes: LocationSpec[] = [];
  for (const d of locations) {
    const spec = parseLocation(d);
    if (!spec) continue;
    if (spec.modifier === '=') {
      if (spec.path === uri) return d;
      continue;
    }
    if (spec.modifier === '~' || spec.modifier === '~*') {
      regexes.push(spec);
      continue;
    }
    if (uri.startsWith(spec.path) && (!longest || spec.path.length > longest.path.length)) longest = spec;
  }
  if (longest?.modifier === '^~') return longest.directive;
  for (const spec of regexes) {
    try {
      if (new RegExp(spec.path.replace(/\(\?P</g, '(?<'), spec.modifier === '~*' ? 'i' : '').test(uri)) return spec.directive;
    } catch {
      return spec.directive; // a regex we cannot evaluate: assume it catches the request (the cautious answer)
    }
  }
  return longest?.directive ?? null;
}

/** Directives that hand a request to something other than the static file handler. */
const NOT_STATIC = new Set([
  'proxy_pass', 'fastcgi_pass', 'uwsgi_pass', 'scgi_pass', 'grpc_pass', 'memcached_pass', 'return', 'rewrite',
  'deny', 'internal', 'alias', 'auth_request', 'content_by_lua', 'content_by_lua_block', 'content_by_lua_file',
  'rewrite_by_lua_block', 'access_by_lua_block', 'if', 'error_page',
]);

export interface ChallengeRouting {
  served: boolean;
  /** The directory certbot must write to, when served. */
  webroot?: string;
  /** An existing location whose path is exactly the challenge prefix (a new one would be a duplicate). */
  existing?: Directive;
  reason: string;
}

export function challengeRouting(server: ServerBlock): ChallengeRouting {
  const uri = `${ACME_PREFIX}autossl-probe-token`;
  const children = childDirectives(server.directive);
  const existing = childDirectives(server.directive, 'location').find((d) => {
    const spec = parseLocation(d);
    return spec && spec.modifier !== '~' && spec.modifier !== '~*' && (spec.path === ACME_PREFIX || spec.path === ACME_PREFIX.slice(0, -1));
  });
  for (const d of children) {
    if (d.name === 'return' || d.name === 'rewrite') return { served: false, existing, reason: `a server-level "${d.name}" runs before any location` };
    if (d.name === 'if') return { served: false, existing, reason: 'a server-level "if" may intercept the request' };
  }
  let root = children.filter((d) => d.name === 'root').map((d) => argValues(d)[0]).pop();
  let scope: Directive = server.directive;
  for (;;) {
    const chosen = pickLocation(childDirectives(scope, 'location'), uri);
    if (!chosen) break;
    const inside = childDirectives(chosen);
    const blocker = inside.find((d) => NOT_STATIC.has(d.name) || d.name.endsWith('_pass'));
    if (blocker) return { served: false, existing, reason: `location "${argValues(chosen).join(' ')}" uses "${blocker.name}"` };
    const tryFiles = inside.find((d) => d.name === 'try_files');
    if (tryFiles && !argValues(tryFiles)[0]?.startsWith('$uri')) {
      return { served: false, existing, reason: `location "${argValues(chosen).join(' ')}" routes through try_files ${argValues(tryFiles).join(' ')}` };
    }
    const locRoot = inside.filter((d) => d.name === 'root').map((d) => argValues(d)[0]).pop();
    if (locRoot) root = locRoot;
    scope = chosen;
    if (childDirectives(chosen, 'location').length === 0) break;
  }
  if (!root) return { served: false, existing, reason: 'the server block has no "root"' };
  if (root.includes('$')) return { served: false, existing, reason: `its root "${root}" depends on a variable` };
  return { served: true, webroot: root, existing, reason: `served as a static file from ${root}` };
}
