/**
 * The redirects to other hosts the CA's HTTP-01 request meets in this nginx's config, followed as the CA follows
 * them (Let's Encrypt: http or https, ports 80 and 443, up to 10 hops). Where those hosts lead is pre-flight's
 * question (src/preflight/redirect-hosts.ts); the Installer answers this one (Installer.challengeRedirects).
 */
import { ACME_PREFIX, routeEnv, routeRequest, type Request } from './routing.js';
import type { NginxTree } from './tree.js';

/** One redirect to another host on the CA's way to the token, as this nginx's config routes it. */
export interface CrossHostHop {
  from: string;
  host: string;
}

/**
 * The redirects to other hosts the CA's request for `name` meets in this nginx (followed as the CA follows them),
 * and whether the config could be followed to the end: a hop to a host no block here answers, or a redirect
 * whose target autossl cannot work out, is left for the real request to tell (`complete: false`).
 */
export function crossHostHops(tree: NginxTree, name: string): { hops: CrossHostHop[]; complete: boolean } {
  const hops: CrossHostHop[] = [];
  let server = tree.findServers(name).http[0];
  let req: Request = { scheme: 'http', host: name, uri: `${ACME_PREFIX}autossl-probe-token` };
  for (let hop = 0; server && hop < 10; hop++) {
    const route = routeRequest(server, req, routeEnv(tree));
    if (route.kind !== 'redirect') return { hops, complete: route.kind !== 'uncertain' };
    const to = route.to;
    if (!to) return { hops, complete: false };
    if (!(to.scheme === 'http' && to.port === 80) && !(to.scheme === 'https' && to.port === 443)) return { hops, complete: true }; // the self-check names it
    if (to.host !== req.host) hops.push({ from: req.host, host: to.host });
    server = tree.findServers(to.host)[to.scheme][0];
    req = { scheme: to.scheme, host: to.host, uri: to.uri };
  }
  return { hops, complete: server !== undefined };
}
