/** The HTTP -> HTTPS redirect for a certificate's names, keeping the ACME challenge reachable. */
import { argValues, childDirectives } from './parse.js';
import { isPlainHttp } from './listen.js';
import { insertAtBlockStart, insertBlockAfter, type NewStatement } from './splice.js';
import { ACME_PREFIX, challengeRouting, parseLocation, routeEnv, routeRequest } from './routing.js';
import type { NginxTree, ServerBlock } from './tree.js';
import { fileRoot } from './locate.js';
import { PlanBuilder } from './plan-builder.js';
import { ensureStatements, type EnsureRules } from './ensure.js';
import { blockId, hostEntries, mapStatement, type BeforeBlocks } from './host-maps.js';
import { acmeLocation } from './http-01.js';

export const REDIRECT: NewStatement = { name: 'location', args: ['/'], children: [{ name: 'return', args: ['301', 'https://$host$request_uri'] }] };

/** Whether plain HTTP requests for these names already end in a redirect to HTTPS on the same host (certbot's shape). */
export function alreadyRedirects(tree: NginxTree, plain: ServerBlock, names: readonly string[]): boolean {
  const mine = names.filter((n) => tree.findServers(n).http[0] === plain);
  return (
    mine.length > 0 &&
    mine.every((n) => {
      const route = routeRequest(plain, { scheme: 'http', host: n, uri: '/' }, routeEnv(tree));
      return route.kind === 'redirect' && route.to?.scheme === 'https' && route.to.host === n;
    })
  );
}

export interface RedirectContext {
  tree: NginxTree;
  builder: PlanBuilder;
  before: BeforeBlocks;
  rules: EnsureRules;
  certNames: readonly string[];
  webroot?: string;
}

/**
 * HTTP -> HTTPS redirect that keeps the ACME challenge reachable (renewals need it). In order:
 *  - nothing when the block already redirects these names (certbot's `if ($host = ...)` shape): never a second one;
 *  - the port-80 listens were moved to TLS by this edit: a new port-80 block beside it, with the challenge location
 *    and `location / { return 301 ... }`;
 *  - a separate port-80 block that serves nothing of its own (no locations, no root): its `location /` redirects;
 *  - otherwise (the block also answers names the certificate does not cover, keeps serving port 80, or has a site
 *    of its own): per host, a `map` on "$scheme:$host" and one server-level `if`, so only the certificate's names
 *    are redirected; the challenge then arrives at the TLS block, which gets the challenge location if it does not
 *    serve the webroot already.
 */
export function planRedirect(
  c: RedirectContext,
  plain: ServerBlock,
  tlsTarget: ServerBlock,
  label: (s: ServerBlock) => string,
  uncoveredNames: boolean,
  listensMoved: boolean,
): void {
  const { tree, builder } = c;
  if (alreadyRedirects(tree, plain, c.certNames)) return;
  const routing = challengeRouting(plain, undefined, 'http', routeEnv(tree));
  if (!uncoveredNames && listensMoved) {
    // One block served both: its port-80 listens became TLS ones; port 80 moves to a new redirect block beside it.
    const moved = plain.listens.filter((l) => isPlainHttp(l) && !l.implicit && l.directive.parent === plain.directive);
    const names = childDirectives(plain.directive, 'server_name').flatMap((d) => d.words.slice(1).map((w) => w.raw));
    const acme = routing.existing
      ? {
          name: 'location',
          args: routing.existing.words.slice(1).map((w) => w.raw),
          children: childDirectives(routing.existing).map((d) => ({ name: d.name, args: d.words.slice(1).map((w) => w.raw) })),
        }
      : acmeLocation(c.webroot ?? fileRoot(routing.webroot) ?? '/var/lib/autossl/acme-challenge');
    const block: NewStatement = {
      name: 'server',
      args: [],
      children: [
        ...moved.map((l) => ({ name: 'listen', args: l.directive.words.slice(1).map((w) => w.raw) })),
        { name: 'server_name', args: names },
        acme,
        REDIRECT,
      ],
    };
    builder.add(plain.config, insertBlockAfter(plain.config, plain.directive, [block], `${label(plain)}: add a port-80 server that redirects to HTTPS`));
    return;
  }
  const servesNothing =
    childDirectives(plain.directive).every((d) => ['listen', 'server_name', 'location', 'return', 'access_log', 'error_log'].includes(d.name)) &&
    childDirectives(plain.directive, 'location').every((d) => parseLocation(d)?.path === ACME_PREFIX || parseLocation(d)?.path === ACME_PREFIX.slice(0, -1));
  if (!uncoveredNames && tlsTarget !== plain && servesNothing) {
    // a separate port-80 block with nothing of its own: it becomes the redirect (the challenge location stays first)
    if (childDirectives(plain.directive).some((d) => d.name === 'return')) return; // made challenge-safe by the challenge stage
    ensureStatements(builder, plain, [REDIRECT], label(plain), c.rules);
    return;
  }
  const variable = `$autossl_redirect_${blockId(plain)}`;
  c.before.add(plain, mapStatement('$scheme:$host', variable, [['default', '0'], ...hostEntries(c.certNames, '1', 'http:')]));
  if (
    !childDirectives(plain.directive, 'if').some(
      (d) =>
        argValues(d)
          .join(' ')
          .replace(/[()\s]/g, '') === variable,
    )
  ) {
    const statement: NewStatement = { name: 'if', args: [`(${variable})`], children: [{ name: 'return', args: ['301', 'https://$host$request_uri'] }] };
    builder.add(
      plain.config,
      insertAtBlockStart(plain.config, plain.directive, [statement], `${label(plain)}: redirect the certificate's names to HTTPS (${variable})`),
    );
  }
  // the CA follows the redirect: the challenge must be served where it lands
  if (c.webroot && tlsTarget !== plain) {
    const name = c.certNames.find((n) => !n.startsWith('*.')) ?? c.certNames[0]!;
    const landing = challengeRouting(tlsTarget, name, 'https', routeEnv(tree));
    if (!(landing.served && fileRoot(landing.webroot) === c.webroot) && !landing.existing)
      ensureStatements(builder, tlsTarget, [acmeLocation(c.webroot)], label(tlsTarget), { prefix: tree.prefix });
  }
}
