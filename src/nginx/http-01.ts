/**
 * HTTP-01 challenge planning (kept apart from the HTTPS edit, as certbot keeps http_01.py apart from its
 * configurator): follows the CA's request the way nginx would and makes sure it reaches the webroot as a static file.
 */
import path from 'node:path';
import { AutoSslError } from '../errors.js';
import { argValues, childDirectives, type Directive } from './parse.js';
import { replaceStatement, type NewStatement } from './splice.js';
import {
  ACME_PREFIX,
  challengeRouting,
  directiveLocation,
  effectiveParent,
  parseLocation,
  routeEnv,
  routeRequest,
  type Request,
  type Route,
} from './routing.js';
import { aliasTokenDir, webrootForAlias } from './alias-webroot.js';
import type { NginxTree, ServerBlock } from './tree.js';
import { nginxValue } from './value.js';
import { serverLabel, locateServers, ensureBlockEditable, fileRoot } from './locate.js';
import { PlanBuilder, type FileEdit } from './plan-builder.js';
import { ensureStatements } from './ensure.js';

/** The challenge location; `open`: the block asks for a password or denies addresses, which the CA must pass. */
export function acmeLocation(webroot: string, open = false): NewStatement {
  return {
    name: 'location',
    args: ['^~', ACME_PREFIX],
    children: [
      { name: 'root', args: [nginxValue(webroot, { what: 'challenge webroot' })] },
      { name: 'default_type', args: ['"text/plain"'] },
      { name: 'try_files', args: ['$uri', '=404'] },
      ...(open
        ? [
            { name: 'auth_basic', args: ['off'] },
            { name: 'allow', args: ['all'] },
          ]
        : []),
    ],
  };
}

export interface ChallengePlan {
  edits: FileEdit[];
  /** The directory certbot's webroot authenticator writes tokens into. */
  webroot: string;
  /** A symlink the webroot needs before certbot runs (an existing `alias` challenge location: see alias-webroot.ts). */
  link?: { path: string; target: string };
  notes: string[];
}

/** Where the CA's request for a name ends up: the block (after following redirects inside this nginx) and how. */
interface Reach {
  name: string;
  /** The port-80 block that receives the request first. */
  plain: ServerBlock;
  /** The block the request ends in, and its route there. */
  final: ServerBlock;
  route: Route;
  /** How it got there ("through the redirect to https://..."). */
  via: string[];
}

function follow(tree: NginxTree, name: string, plain: ServerBlock): Reach {
  let server = plain;
  let req: Request = { scheme: 'http', host: name, uri: `${ACME_PREFIX}autossl-probe-token` };
  const via: string[] = [];
  for (let hop = 0; hop < 5; hop++) {
    const route = routeRequest(server, req, routeEnv(tree));
    if (route.kind !== 'redirect' || !route.to) return { name, plain, final: server, route, via };
    const to = route.to;
    // the CA follows redirects to http or https on the standard ports only
    if (!(to.scheme === 'http' && to.port === 80) && !(to.scheme === 'https' && to.port === 443)) return { name, plain, final: server, route, via };
    const next = tree.findServers(to.host)[to.scheme === 'https' ? 'https' : 'http'][0];
    if (!next) return { name, plain, final: server, route, via };
    via.push(`${route.reason} to ${to.scheme}://${to.host}${to.uri.startsWith(ACME_PREFIX) ? '' : to.uri}`);
    server = next;
    req = { scheme: to.scheme, host: to.host, uri: to.uri };
  }
  return { name, plain, final: server, route: { kind: 'uncertain', via: server.directive, reason: 'more than 5 redirects' }, via };
}

/**
 * Makes sure the CA's request for every name reaches the challenge directory as a static file, following the
 * config the way nginx would (the server's rewrite phase first, then locations; redirects to HTTPS into the TLS
 * block, as the CA follows them). Nothing is changed where it already does. Otherwise the challenge is placed where
 * the request ends up: a `location ^~ /.well-known/acme-challenge/` (in the TLS block when a redirect leads there),
 * or, for a server-level `return` in the way, that return moved into `location /` beside it. What cannot be made
 * to work (a server-level `if` autossl cannot evaluate) is refused before anything is ordered.
 */
export function planChallengeEdit(
  tree: NginxTree,
  names: readonly string[],
  opts: { documentRoot?: string; fallbackWebroot: string; vhostFile?: string },
): ChallengePlan {
  const located = locateServers(tree, names, { vhostFile: opts.vhostFile });
  const builder = new PlanBuilder();
  const notes: string[] = [];
  const reaches: Reach[] = [];
  for (const name of names) {
    const plain = located.http.get(name) ?? null;
    if (!plain) {
      throw new AutoSslError('VHOST_NOT_FOUND', `No server block answers plain HTTP on port 80 for ${name}; HTTP-01 validation needs one.`, {
        hint: `Add ${name} to the server_name of a port-80 server block (a redirect block is enough), or use DNS-01 ("challenge": "dns-01" with a DNS provider plugin).`,
      });
    }
    reaches.push(follow(tree, name, plain));
  }
  // One webroot per certificate: certbot's -w applies to every name that follows it.
  // roots read from files are bytes: the webroot is the path they name (certbot writes there, acmeLocation() encodes it)
  const servedRoot = reaches.map((r) => (r.route.kind === 'static' ? fileRoot(r.route.root) : undefined)).find((r) => r !== undefined);
  const ownRoot = reaches
    .map((r) =>
      fileRoot(
        childDirectives(r.plain.directive, 'root')
          .map((d) => argValues(d)[0])
          .pop(),
      ),
    )
    .find((r) => r && r.startsWith('/') && !r.includes('$'));
  let webroot = opts.documentRoot ?? servedRoot ?? ownRoot ?? tlsRoot(tree, names) ?? opts.fallbackWebroot;
  let link: ChallengePlan['link'];
  const handled = new Set<ServerBlock>();
  for (const reach of reaches) {
    const { final, route } = reach;
    if (handled.has(final)) continue;
    handled.add(final);
    ensureBlockEditable(tree, final);
    const label = `server ${final.names[0] ?? ''} (${serverLabel(final)})`;
    const through = reach.via.length ? ` (reached ${reach.via.join(', then ')})` : '';
    if (route.kind === 'static' && fileRoot(route.root) === webroot) {
      notes.push(`${label}: challenge ${route.reason}${through}`);
      continue;
    }
    const routing = challengeRouting(final, reach.name, final === reach.plain ? 'http' : 'https', routeEnv(tree));
    if (routing.existing && route.kind === 'handled' && route.access && effectiveParent(routing.existing) === final.directive) {
      throw new AutoSslError('CHALLENGE_UNROUTABLE', `${label} already has "location ${argValues(routing.existing).join(' ')}", and ${route.reason}.`, {
        hint: 'Add "auth_basic off; allow all;" to that location (the CA sends no password and comes from anywhere), then run again.',
      });
    }
    const aliasDir = routing.existing ? aliasTokenDir(routing.existing) : null;
    if (
      routing.existing &&
      aliasDir &&
      reaches.length === 1 &&
      !opts.documentRoot &&
      childDirectives(routing.existing).every(
        (d) => ['alias', 'default_type', 'try_files', 'allow', 'auth_basic'].includes(d.name) && (d.name !== 'auth_basic' || argValues(d)[0] === 'off'),
      )
    ) {
      // the location is used as it stands: certbot writes where its alias reads
      const found = webrootForAlias(aliasDir, path.dirname(opts.fallbackWebroot));
      webroot = found.webroot;
      link = found.link;
      notes.push(
        `${label}: challenge served by its own location from ${aliasDir} (alias)${found.link ? `; certbot writes there through ${found.link.path}` : ''}${through}`,
      );
      continue;
    }
    if (routing.existing) {
      const root = fileRoot(
        childDirectives(routing.existing, 'root')
          .map((d) => argValues(d)[0])
          .pop(),
      );
      const blocked = childDirectives(routing.existing).find(
        (d) => d.name !== 'root' && d.name !== 'default_type' && d.name !== 'try_files' && d.name !== 'allow',
      );
      if (root && !blocked && reaches.length === 1 && !opts.documentRoot) {
        notes.push(`${label}: challenge served by its own location from ${root}${through}`);
        webroot = root;
        continue;
      }
      throw new AutoSslError(
        'CHALLENGE_UNROUTABLE',
        `${label} already has "location ${argValues(routing.existing).join(' ')}" and it does not serve files from ${webroot}${blocked ? ` (it uses "${blocked.name}")` : ''}.`,
        {
          hint: `Make that location serve static files: "root ${webroot};" and no return/proxy_pass, then run again.`,
        },
      );
    }
    // the server's rewrite phase decides before any location: a location cannot help, the return must move
    const serverLevel = route.kind !== 'static' && route.via && effectiveParent(route.via) === final.directive && route.via.name !== 'location';
    if (serverLevel && route.via!.name === 'return') {
      const ret = route.via!;
      const others = childDirectives(final.directive, 'location');
      const rewriting = childDirectives(final.directive).filter((d) => d !== ret && ['return', 'rewrite', 'if'].includes(d.name));
      if (others.length || rewriting.length) {
        throw new AutoSslError(
          'CHALLENGE_UNROUTABLE',
          `${label} answers every request with a server-level "${describeDirective(ret)}" (${directiveLocation(final, ret)}), before any location, and has other locations or rewrite rules autossl will not reorder.`,
          {
            hint: `Exempt /.well-known/acme-challenge/ from it yourself (move the "return" into "location /" and add "location ^~ /.well-known/acme-challenge/ { root ${webroot}; }"), or use DNS-01.`,
          },
        );
      }
      const locations = [acmeLocation(webroot), { name: 'location', args: ['/'], children: [{ name: 'return', args: ret.words.slice(1).map((w) => w.raw) }] }];
      for (const splice of replaceStatement(final.config, ret, locations, `${label}: move server-level return into location / beside the ACME location`))
        builder.add(final.config, splice);
      notes.push(`${label}: server-level "${describeDirective(ret)}" moved into "location /" so the challenge gets through${through}`);
      continue;
    }
    if (serverLevel && (route.kind === 'uncertain' || route.kind === 'handled' || route.kind === 'redirect')) {
      throw new AutoSslError(
        'CHALLENGE_UNROUTABLE',
        `For ${reach.name}, ${label} decides at ${directiveLocation(final, route.via!)} before any location: ${route.reason}${route.kind === 'redirect' ? ' (to a place outside this nginx, or one autossl cannot work out)' : ''}; a challenge location could not be reached.`,
        {
          hint: `Make that rule skip /.well-known/acme-challenge/ (or put it inside "location /"), or use DNS-01. Nothing was ordered.`,
        },
      );
    }
    // a redirect decided in a location: a `location ^~ /.well-known/acme-challenge/` wins over it when that location
    // is a regex or a shorter prefix (`location / { return 301 https://... }` on a block with no TLS yet)
    const deciding = route.kind === 'redirect' && route.via ? effectiveParent(route.via) : null;
    const spec = deciding?.name === 'location' ? parseLocation(deciding) : null;
    const outranked =
      spec !== null &&
      (spec.modifier === '~' ||
        spec.modifier === '~*' ||
        (spec.modifier !== '=' && ACME_PREFIX.startsWith(spec.path) && spec.path.length < ACME_PREFIX.length));
    if (route.kind === 'redirect' && !outranked) {
      throw new AutoSslError('CHALLENGE_UNROUTABLE', `For ${reach.name}, ${label} redirects the challenge (${route.reason}) to a place outside this nginx.`, {
        hint: 'Serve /.well-known/acme-challenge/ before that redirect, or use DNS-01. Nothing was ordered.',
      });
    }
    ensureStatements(builder, final, [acmeLocation(webroot, route.kind === 'handled' && route.access === true)], label, { prefix: tree.prefix });
    notes.push(`${label}: challenge not served (${routing.reason}); adding location ^~ ${ACME_PREFIX}${through}`);
  }
  return { edits: builder.build(), webroot, notes, ...(link ? { link } : {}) };
}

function describeDirective(d: Directive): string {
  return [d.name, ...argValues(d)].join(' ');
}

function tlsRoot(tree: NginxTree, names: readonly string[]): string | undefined {
  for (const name of names) {
    const tls = tree.findServers(name).https[0];
    const root =
      tls &&
      fileRoot(
        childDirectives(tls.directive, 'root')
          .map((d) => argValues(d)[0])
          .pop(),
      );
    if (root && !root.includes('$')) return root;
  }
  return undefined;
}
