/**
 * A small client that signs exactly as the Opterius panel does (`autossl agent call`, the tests, the benchmark):
 * the body's bytes as given, the path without its query, an RFC 3339 timestamp in the panel's form.
 */
import http from 'node:http';
import https from 'node:https';
import { AutoSslError } from '../errors.js';
import { rfc3339, sign } from './auth.js';

export interface AgentResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json(): unknown;
}

export interface CallOptions {
  /** The agent's base URL: http://127.0.0.1:7443 */
  url: string;
  token: string | Buffer;
  /** Send these headers as they are (tests of bad signatures); the signature headers are not computed then. */
  headers?: Record<string, string>;
  /** Trust this CA (PEM) for an https agent; `insecure` accepts any certificate (the panel's withoutVerifying). */
  ca?: string | Buffer;
  insecure?: boolean;
  timeoutMs?: number;
  now?: Date;
  agent?: http.Agent;
}

/** The headers the panel sends for a request. */
export function signedHeaders(token: string | Buffer, method: string, pathWithQuery: string, body: string | Buffer, now = new Date()): Record<string, string> {
  const timestamp = rfc3339(now);
  return {
    'X-Timestamp': timestamp,
    'X-Signature': sign(token, timestamp, method.toUpperCase(), pathWithQuery.split('?')[0]!, body),
    'Content-Type': 'application/json',
  };
}

/** Sends one signed request (body: a string or bytes sent exactly as given). */
export function call(method: string, pathWithQuery: string, body: string | Buffer, options: CallOptions): Promise<AgentResponse> {
  const url = new URL(pathWithQuery, options.url);
  const headers = options.headers ?? signedHeaders(options.token, method, pathWithQuery, body, options.now);
  const data = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      url,
      {
        method: method.toUpperCase(),
        headers: { ...headers, 'Content-Length': String(data.length) },
        timeout: options.timeoutMs ?? 130_000,
        ...(url.protocol === 'https:' ? { ca: options.ca, rejectUnauthorized: !options.insecure } : {}),
        ...(options.agent ? { agent: options.agent } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, json: () => JSON.parse(text) as unknown });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(new AutoSslError('TIMEOUT', `The agent at ${options.url} did not answer within ${(options.timeoutMs ?? 130_000) / 1000} s.`)),
    );
    req.on('error', (error) =>
      reject(
        error instanceof AutoSslError
          ? error
          : new AutoSslError('AGENT_NOT_FOUND', `Cannot reach the agent at ${options.url}: ${(error as Error).message}`, {
              hint: 'Start it (autossl agent, or systemctl start autossl-agent) and check agent.listen in the config.',
            }),
      ),
    );
    req.end(data);
  });
}
