/**
 * A port-80 block that only redirects to HTTPS on a name it serves itself cannot take TLS listens (HTTPS would
 * redirect to itself): its TLS side becomes a block of its own beside it. What goes into that twin, and what makes
 * such an install impossible (asked while planning, before any order).
 */
import { argValues, childDirectives, type Directive } from './parse.js';
import type { NewStatement } from './splice.js';
import { ACME_PREFIX, parseLocation, routeEnv, routeRequest } from './routing.js';
import type { NginxTree, ServerBlock } from './tree.js';
import { serverLabel } from './locate.js';

/**
 * Whether plain HTTP requests to this block for one of the names are redirected to HTTPS on a name this same block
 * answers: then TLS cannot be added to the block itself (HTTPS would redirect to itself).
 */
export function redirectsToItself(tree: NginxTree, plain: ServerBlock, names: readonly string[], port: number): boolean {
  const mine = names.filter((n) => tree.findServers(n).http[0] === plain);
  return mine.some((n) => {
    const route = routeRequest(plain, { scheme: 'http', host: n, uri: '/' }, routeEnv(tree));
    return route.kind === 'redirect' && route.to?.scheme === 'https' && route.to.port === port && tree.findServers(route.to.host).http[0] === plain;
  });
}

/** A directive as a new statement (its words as written). */
export function copyStatement(d: Directive): NewStatement {
  const kids = d.block ? d.block.children.filter((c): c is Directive => c.kind === 'directive').map(copyStatement) : undefined;
  return kids ? { name: d.name, args: d.words.slice(1).map((w) => w.raw), children: kids } : { name: d.name, args: d.words.slice(1).map((w) => w.raw) };
}

/** Whether a statement redirects to an https:// URL (`return 301 https://...`, `rewrite ^ https://... permanent`). */
function redirectsToHttps(d: Directive): boolean {
  const args = d.words.slice(1).map((w) => w.value);
  if (d.name === 'return') return (args.length === 1 ? args[0] : /^30[12378]$/.test(args[0] ?? '') ? args[1] : undefined)?.startsWith('https://') === true;
  if (d.name === 'rewrite') return args[1]?.startsWith('https://') === true;
  return false;
}

/**
 * What a redirect-only port-80 block says about the site, for its new TLS twin: everything but its listens, names,
 * the challenge location and the redirect to HTTPS itself (a `return`/`rewrite` to https://, or an `if` or a
 * location holding nothing else). Every other rule comes along: a `location /private/ { return 403; }`, a guard
 * `if`, a named location, a server-level rewrite protect the site over HTTPS as they did over HTTP.
 * A Lua body cannot be carried over as a statement: it is named, and the run refused while planning.
 */
export function tlsSiteStatements(plain: ServerBlock): { statements: NewStatement[]; left: string[] } {
  const statements: NewStatement[] = [];
  const left: string[] = [];
  const onlyRedirects = (x: Directive): boolean => {
    const inner = childDirectives(x);
    return inner.length > 0 && inner.every(redirectsToHttps);
  };
  for (const d of childDirectives(plain.directive)) {
    if (d.name === 'listen' || d.name === 'server_name' || redirectsToHttps(d)) continue;
    if (d.name === 'if' && onlyRedirects(d)) continue;
    if (d.name === 'location') {
      const path = parseLocation(d)?.path;
      if (path === ACME_PREFIX || path === ACME_PREFIX.slice(0, -1)) continue;
      if (onlyRedirects(d)) continue;
    }
    const verbatim = (x: Directive): boolean => x.block?.verbatim !== undefined || childDirectives(x).some(verbatim);
    if (verbatim(d)) {
      left.push(`${d.name} ${argValues(d).join(' ')}`.trim());
      continue;
    }
    statements.push(copyStatement(d));
  }
  return { statements, left };
}

/**
 * Why the certificate cannot be installed for these names in a block that has no TLS yet, or null. Asked while
 * planning (before any order) and again by the HTTPS edit: a port-80 block whose redirect target autossl cannot
 * work out (`return 301 $target`) could redirect HTTPS to itself once TLS is added to it; a redirect-only block
 * whose site lines cannot be carried into a TLS block of its own (a Lua body) cannot get one.
 */
export function tlsInstallProblem(tree: NginxTree, names: readonly string[], port = 443): string | null {
  for (const n of names) {
    if (n.startsWith('*.') || tree.findServers(n).https[0]) continue; // a wildcard is DNS-01: no port-80 routing
    const plain = tree.findServers(n).http[0];
    if (!plain) continue;
    const route = routeRequest(plain, { scheme: 'http', host: n, uri: '/' }, routeEnv(tree));
    const label = `server ${plain.names[0] ?? ''} (${serverLabel(plain)})`;
    if (route.kind === 'redirect' && !route.to) {
      return `${label} answers ${n} on port 80 with a redirect whose target autossl cannot work out (${route.reason}); with TLS added to that block, HTTPS could redirect to itself forever.`;
    }
    if (redirectsToItself(tree, plain, [n], port)) {
      const { left } = tlsSiteStatements(plain);
      if (left.length)
        return `${label} only redirects ${n} to HTTPS, so the certificate needs a TLS server block of its own, and autossl cannot copy ${left.join('; ')} into it.`;
    }
  }
  return null;
}

export const TLS_INSTALL_HINT =
  'Write the redirect with a literal target (return 301 https://$host$request_uri;), or add a TLS server block for the name yourself (then autossl only points it at the certificate). Nothing was ordered.';
