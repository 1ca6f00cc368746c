/**
 * What no client of the agent can exceed, signed or not (agent.limits in the config). An unauthenticated client
 * must not be able to hold memory, descriptors or the event loop: a review took the agent from 71 to 588 MB with
 * 2,000 connections each sending part of a 261 KB body, and 20,400 connections used up its descriptors so signed
 * calls hung.
 *
 * - Connections: at most `connections` open (node closes more as it accepts them: server.maxConnections, no
 *   Socket object made), at most `connectionsPerAddress` from one source (an IPv6 client counts by its /64, which
 *   one host owns whole). Closed at accept, before a byte is read.
 * - Time: the headers within `headersTimeoutMs`, the body within `bodyTimeoutMs` of the headers, a kept-alive
 *   connection closed after `idleTimeoutMs` without a request, a TLS handshake within `headersTimeoutMs`.
 * - Bytes: the signature headers are checked before the body is read (server.ts, onRequest): a request without a
 *   well-formed, fresh X-Timestamp/X-Signature never has its body read. The HMAC itself covers the body, so a
 *   forged but well-formed signature can make the agent read a body: all bodies being received count against
 *   `bodyBytesInFlight`, and a body that would pass it is refused (503 AGENT_BUSY) instead of buffered.
 * A request refused before its body arrived has its connection closed once answered (the rest is never read).
 */
import net from 'node:net';
import type { Server } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AgentLimits } from '../config/schema.js';

/** fastify/node server options for the limits (node checks its timeouts every `connectionsCheckingInterval`). */
export function serverTimeoutOptions(limits: AgentLimits): { requestTimeout: number; keepAliveTimeout: number; server: Record<string, number> } {
  return {
    // the backstop of the two timeouts below: node's own clock over headers and body together
    requestTimeout: limits.headersTimeoutMs + limits.bodyTimeoutMs,
    keepAliveTimeout: limits.idleTimeoutMs,
    server: {
      headersTimeout: limits.headersTimeoutMs,
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
      handshakeTimeout: limits.headersTimeoutMs,
    },
  };
}

/** The unit's LimitNOFILE for a connection cap: the cap twice over, and room for nginx -t, certbot, SQLite. */
export function agentNoFileLimit(connections: number): number {
  return Math.max(8192, connections * 2 + 1024);
}

/** The key connections are counted under: an IPv4 address, or an IPv6 address's /64. */
export function addressKey(address: string | undefined): string {
  if (!address) return '?';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (net.isIPv4(address)) return address;
  if (!net.isIPv6(address)) return address;
  const [head = '', tail = ''] = address.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = address.includes('::') ? (tail ? tail.split(':') : []) : [];
  const groups = [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/**
 * Caps open connections in all and per source; `limits()` is read at every connection (a SIGHUP may change it).
 * Returns the open count per source (tests, logs).
 */
export function capConnections(server: Server, limits: () => AgentLimits): Map<string, number> {
  const open = new Map<string, number>();
  server.maxConnections = limits().connections;
  server.on('connection', (socket: net.Socket) => {
    const { connections, connectionsPerAddress } = limits();
    server.maxConnections = connections;
    const key = addressKey(socket.remoteAddress);
    const n = (open.get(key) ?? 0) + 1;
    if (n > connectionsPerAddress) {
      // nothing is read or written: the cheapest refusal there is once the kernel accepted
      socket.destroy();
      return;
    }
    open.set(key, n);
    socket.once('close', () => {
      const left = (open.get(key) ?? 1) - 1;
      if (left > 0) open.set(key, left);
      else open.delete(key);
    });
  });
  return open;
}

/** An error of the body reader: the HTTP status, the answer's code and hint. */
export class BodyRefused extends Error {
  constructor(message: string, readonly statusCode: number, readonly answerCode: 'AGENT_BAD_REQUEST' | 'AGENT_BUSY', readonly hint: string) {
    super(message);
  }
}

/**
 * The body parser: the raw bytes (what was signed), read within the body timeout, at most `maxBytes()`, and only
 * while all bodies being received stay within `limits().bodyBytesInFlight`.
 */
export function bodyReader(limits: () => AgentLimits, maxBytes: () => number): (req: FastifyRequest, payload: NodeJS.ReadableStream, done: (err: Error | null, body?: Buffer) => void) => void {
  let inFlight = 0;
  return (req, payload, done) => {
    const max = maxBytes();
    const declared = Number(req.headers['content-length']);
    if (declared > max) {
      done(Object.assign(new Error('body too large'), { code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413 }));
      return;
    }
    const { bodyTimeoutMs, bodyBytesInFlight } = limits();
    const chunks: Buffer[] = [];
    let got = 0;
    let finished = false;
    const finish = (err: Error | null): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      inFlight -= got;
      payload.removeListener('data', onData);
      // what is left of a refused body is never read: the connection is closed once answered
      if (err) {
        payload.pause();
        done(err);
      }
      else done(null, Buffer.concat(chunks, got));
    };
    const onData = (chunk: Buffer): void => {
      got += chunk.length;
      inFlight += chunk.length;
      if (got > max) return finish(Object.assign(new Error('body too large'), { code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413 }));
      if (inFlight > bodyBytesInFlight) {
        return finish(new BodyRefused(`The agent is receiving ${bodyBytesInFlight} bytes of request bodies already (agent.limits.bodyBytesInFlight); this one is refused unread.`, 503, 'AGENT_BUSY', 'Send the request again in a moment; if the panel sends many large uploads at once, raise agent.limits.bodyBytesInFlight.'));
      }
      chunks.push(chunk);
    };
    const timer = setTimeout(() => {
      finish(new BodyRefused(`The body did not arrive within ${bodyTimeoutMs} ms (agent.limits.bodyTimeoutMs).`, 408, 'AGENT_BAD_REQUEST', 'Send the whole body at once, right after the headers.'));
    }, bodyTimeoutMs);
    timer.unref();
    payload.on('data', onData);
    payload.once('end', () => finish(null));
    payload.once('error', (e: Error) => finish(e));
  };
}

/** After the answer: a connection whose request was not read to its end is closed (its rest is never read). */
export function closeUnreadConnection(req: FastifyRequest, _reply: FastifyReply, next: () => void): void {
  if (!req.raw.complete) req.raw.socket?.destroy();
  next();
}
