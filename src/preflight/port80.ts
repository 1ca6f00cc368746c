/**
 * The HTTP-01 self-check: fetch http://<name>/.well-known/acme-challenge/<token> the way the CA does, from
 * each address the name resolves to, and compare the body. Redirects are followed as Let's Encrypt follows
 * them: only to http or https, only on ports 80 and 443, at most 10; certificate errors after a redirect to
 * https are ignored (the CA ignores them too). A redirect to another host is followed where `crossHost` says the CA
 * would land (see redirect-hosts.ts): this server's address for a host that resolves here, or a failure naming the
 * address the CA would reach instead.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

export interface ProbeResult {
  address: string;
  ok: boolean;
  code?: 'PORT80_UNREACHABLE' | 'CHALLENGE_NOT_SERVED' | 'REDIRECT_INVALID';
  message: string;
  /** A hint fitting this failure better than the code's own. */
  hint?: string;
  /** Which server block answered, when nginx says (the Server header and the final URL). */
  final?: string;
}

interface Response {
  status: number;
  location?: string;
  body: string;
  server?: string;
}

function get(url: URL, address: string, timeoutMs: number): Promise<Response> {
  return new Promise((resolve, reject) => {
    const secure = url.protocol === 'https:';
    const options = {
      host: address,
      port: url.port ? Number(url.port) : secure ? 443 : 80,
      path: url.pathname + url.search,
      method: 'GET',
      headers: { Host: url.host, 'User-Agent': 'autossl-preflight', Accept: '*/*', Connection: 'close' },
      timeout: timeoutMs,
      servername: net.isIP(url.hostname) ? undefined : url.hostname,
      rejectUnauthorized: false,
      agent: false as const,
    };
    const req = (secure ? https : http).request(options, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (chunk: string) => {
        if (body.length < 8192) body += chunk;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, location: res.headers.location, body, server: String(res.headers.server ?? '') || undefined }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end();
  });
}

/** Where the CA would go for a redirect to another host: this server's address to probe, or why not. */
export type CrossHost = (from: string, host: string, current: string) => Promise<{ address: string } | { message: string; hint?: string }>;

export async function probeChallenge(
  name: string,
  address: string,
  token: string,
  expected: string,
  timeoutMs: number,
  crossHost?: CrossHost,
): Promise<ProbeResult> {
  const deadline = Date.now() + timeoutMs;
  const hostPart = net.isIPv6(address) ? `[${address}]` : address;
  let url = new URL(`http://${name}/.well-known/acme-challenge/${token}`);
  let target = address;
  for (let hop = 0; hop <= 10; hop++) {
    let res: Response;
    try {
      res = await get(url, target, Math.max(1, deadline - Date.now()));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const why =
        code === 'ECONNREFUSED'
          ? 'connection refused'
          : code === 'ETIMEDOUT'
            ? `no answer within ${timeoutMs} ms (a firewall dropping port ${url.port || (url.protocol === 'https:' ? 443 : 80)}?)`
            : (error as Error).message;
      return {
        address,
        ok: false,
        code: 'PORT80_UNREACHABLE',
        message: `${url.protocol === 'https:' ? 'https' : 'http'}://${hostPart}:${url.port || (url.protocol === 'https:' ? 443 : 80)} for ${url.host}: ${why}`,
      };
    }
    if (res.status >= 300 && res.status < 400 && res.location) {
      let next: URL;
      try {
        next = new URL(res.location, url);
      } catch {
        return { address, ok: false, code: 'REDIRECT_INVALID', message: `redirect to an invalid URL ${JSON.stringify(res.location)}` };
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:')
        return { address, ok: false, code: 'REDIRECT_INVALID', message: `redirect to ${next.protocol} (Let's Encrypt follows only http and https)` };
      if (next.port && next.port !== '80' && next.port !== '443')
        return {
          address,
          ok: false,
          code: 'REDIRECT_INVALID',
          message: `redirect to port ${next.port} (${next.href}); Let's Encrypt follows redirects only to ports 80 and 443`,
        };
      if (next.hostname !== url.hostname && !net.isIP(next.hostname)) {
        // another host: the CA resolves it and goes there; so does this check, when told how
        if (!crossHost)
          return {
            address,
            ok: false,
            code: 'REDIRECT_INVALID',
            message: `redirect to another host ${next.host}; point the challenge path at this server instead`,
          };
        const where = await crossHost(url.hostname, next.hostname, target);
        if ('message' in where) return { address, ok: false, code: 'REDIRECT_INVALID', message: where.message, hint: where.hint };
        target = where.address;
      }
      if (net.isIP(next.hostname)) target = next.hostname;
      url = next;
      continue;
    }
    if (res.status === 200 && res.body.trim() === expected) return { address, ok: true, message: `served from ${url.href}`, final: url.href };
    const answered = res.server ? ` (answered by ${res.server})` : '';
    const what =
      res.status === 200 ? `the wrong content (${JSON.stringify(res.body.slice(0, 60))}): another server block or app answered` : `HTTP ${res.status}`;
    return { address, ok: false, code: 'CHALLENGE_NOT_SERVED', message: `${url.href} via ${hostPart} returned ${what}${answered}`, final: url.href };
  }
  return { address, ok: false, code: 'REDIRECT_INVALID', message: 'more than 10 redirects' };
}
