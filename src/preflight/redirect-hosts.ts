/**
 * Where a cross-host redirect of the HTTP-01 request leads. Let's Encrypt follows a redirect to another host (http or
 * https, ports 80 and 443, up to 10 hops) and resolves that host itself: `www.example.com` redirecting to
 * `example.com` validates when `example.com` points at this server too. One verdict for the self-check (which then
 * probes this server's address directly) and for the plan a dry run checks (which fetches nothing), so both say the
 * same thing about a redirect to a host that resolves elsewhere.
 */
import net from 'node:net';
import type { Resolution } from './dns.js';
import { normalizeIp } from './ips.js';

export type HostVerdict =
  /** The host resolves to this server: these of its addresses (IPv6 first, as the CA tries them) are probed. */
  | { here: true; addresses: string[] }
  /** It does not: the message names what the CA would reach instead. */
  | { here: false; message: string };

/** A redirect to an IP literal (`http://203.0.113.5/...`, `http://[2001:db8::1]/...`) resolves to itself, no DNS asked. */
export function literalResolution(host: string): Resolution | null {
  const bare = host.replace(/^\[|\]$/g, '');
  const family = net.isIP(bare);
  if (!family) return null;
  return { name: bare, a: family === 4 ? [bare] : [], aaaa: family === 6 ? [bare] : [], cnames: [] };
}

/** What a redirect from `from` to `host` leads the CA to, given the host's resolution and this server's addresses. */
export function hostVerdict(from: string, host: string, r: Resolution, ours: ReadonlySet<string>): HostVerdict {
  const all = [...r.aaaa, ...r.a];
  if (r.failure && all.length === 0)
    return { here: false, message: `${from} redirects the challenge to ${host}, whose DNS lookup failed (${r.failure.kind}); the CA would fail there too` };
  if (all.length === 0)
    return { here: false, message: `${from} redirects the challenge to ${host}, which has no A or AAAA record; the CA could not follow it` };
  const foreign = all.filter((a) => !ours.has(normalizeIp(a)));
  if (foreign.length) {
    return {
      here: false,
      message: `${from} redirects the challenge to ${host}, which resolves to ${foreign.join(', ')}, not this server (${[...ours].join(', ') || 'none detected'}): the CA would fetch the token from ${foreign.join(', ')}`,
    };
  }
  return { here: true, addresses: all };
}

export const ELSEWHERE_HINT =
  "Point that host's DNS at this server, or serve /.well-known/acme-challenge/ for the name here before the redirect (or use DNS-01). Nothing was ordered.";
