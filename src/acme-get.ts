/**
 * One small GET to an ACME CA's directory or renewalInfo (the ARI pass and the profile check read them): a
 * User-Agent (pebble 2.10 refuses requests without one, RFC 8555 §6.1 asks for it), the answer capped at 256 KiB,
 * a timeout, the CA's own trust roots for a private CA. The caller decides what a status means.
 */
import http from 'node:http';
import https from 'node:https';

export interface AcmeAnswer {
  status: number;
  body: string;
  retryAfter: string | undefined;
}

export function acmeGet(url: string, ca: Buffer | undefined, timeoutMs: number): Promise<AcmeAnswer> {
  return new Promise((resolve, reject) => {
    const secure = url.startsWith('https:');
    const req = (secure ? https : http).get(
      url,
      { timeout: timeoutMs, headers: { accept: 'application/json', 'user-agent': 'autossl' }, ...(ca && secure ? { ca } : {}) },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
          if (body.length > 256 * 1024) req.destroy(new Error('answer too large'));
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, retryAfter: res.headers['retry-after'] }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}
