/**
 * What no client of the agent can exceed, signed or not (agent.limits in the config). An unauthenticated client
 * must not be able to hold memory, descriptors or the event loop: a review took the agent from 71 to 588 MB with
 * 2,000 connections each sending part of a 261 KB body, and 20,400 connections used up its descriptors so signed
 * calls hung.
 *
 * - Connections: at most `connectionsPerAddress` from one source (an IPv6 client counts by its /64, which one
 *   host owns whole), closed at accept before a byte is read; at most `connections` in all, plus a small reserve
 *   only a source that signed a request lately (the panel) may use.
 * - Time: the headers within `headersTimeoutMs`, the body within `bodyTimeoutMs` of the headers, a kept-alive
 *   connection closed after `idleTimeoutMs` without a request, a TLS handshake within `headersTimeoutMs`.
 * - Bytes: the signature headers are checked before the body is read (server.ts, onRequest): a request without a
 *   well-formed, fresh X-Timestamp/X-Signature never has its body read. The HMAC itself covers the body, so a
 *   forged but well-formed signature can make the agent read a body: all bodies being received count against
 *   `bodyBytesInFlight`, and a body that would pass it is refused (503 AGENT_BUSY) instead of buffered.
 * What a refused request still sends is read and dropped, never kept; one whose body stalled is closed (408).
 */
import net from 'node:net';
import type { Server } from 'node:http';
import type { FastifyRequest } from 'fastify';
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
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

/** The open connections, and which of them have carried a request whose signature checked out. */
export interface ConnectionCaps {
  /** Open connections per source key (tests, logs). */
  open: Map<string, number>;
  /** The socket carried a signed request: its source may use the reserve when the agent is full. */
  prove(socket: net.Socket | undefined): void;
}

/** How long a source that sent a signed request may use the reserve when the agent is full. */
const TRUST_MS = 15 * 60_000;

/** Connections above the cap kept for sources that signed a request lately (the panel). */
function reserveFor(connections: number): number {
  return Math.max(16, Math.ceil(connections / 8));
}

/**
 * Caps open connections per source, and in all; `limits()` is read at every connection (a SIGHUP may change it).
 * When `connections` are open, a new connection is refused unless its source sent a signed request in the last
 * 15 minutes (the panel): that one gets a slot of a small reserve above the cap, so a flood from many addresses
 * cannot keep the panel out. A refused connection is closed as node accepts it, before a Socket is made of it;
 * nothing is read from it.
 */
export function capConnections(server: Server, limits: () => AgentLimits): ConnectionCaps {
  const open = new Map<string, number>();
  // sources that carried a signed request within TRUST_MS: the panel's address(es)
  const trusted = new Map<string, number>();
  let total = 0;
  // whether a connection from this source may be accepted now (counted only once node made its Socket, below)
  const mayOpen = (address: string | undefined): boolean => {
    const { connections, connectionsPerAddress } = limits();
    const key = addressKey(address);
    if ((open.get(key) ?? 0) + 1 > connectionsPerAddress) return false;
    server.maxConnections = connections + reserveFor(connections);
    if (total < connections) return true;
    // full: only a source that signed a request lately gets in, into the reserve
    const until = trusted.get(key);
    return until !== undefined && until >= Date.now();
  };
  const count = (socket: net.Socket): void => {
    const key = addressKey(socket.remoteAddress);
    total++;
    open.set(key, (open.get(key) ?? 0) + 1);
    socket.once('close', () => {
      total--;
      const left = (open.get(key) ?? 1) - 1;
      if (left > 0) open.set(key, left);
      else open.delete(key);
    });
  };
  // Refused at the accepted handle, before node makes a Socket of it: 20,000 refused connections made Sockets
  // enough to grow the heap by ~30 MB before the collector caught up (test/agent/flood.test.ts, RSS < 150 MB).
  server.on('listening', () => refuseAtHandle(server, mayOpen));
  // What reaches 'connection' was admitted at the handle, unless node has no such handle (then it is decided here,
  // still before the HTTP or TLS server's own listener gives a refused socket a parser, timers and a request).
  const emit = server.emit.bind(server) as (event: string | symbol, ...args: unknown[]) => boolean;
  server.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
    if (event === 'connection') {
      const socket = args[0] as net.Socket;
      if (!mayOpen(socket.remoteAddress)) {
        // nothing is read or written: the cheapest refusal there is once a Socket exists
        socket.destroy();
        return false;
      }
      count(socket);
    }
    return emit(event, ...args);
  }) as Server['emit'];
  return {
    open,
    prove: (socket) => {
      if (!socket) return;
      if (trusted.size > 10_000) trusted.clear(); // many tokens' holders, many addresses: start over
      trusted.set(addressKey(socket.remoteAddress), Date.now() + TRUST_MS);
    },
  };
}

/** The accepted-connection handle node's TCP server hands its `onconnection` (node's own TCPWrap). */
interface AcceptedHandle {
  getpeername?(out: { address?: string }): number;
  close(): void;
}

/**
 * Wraps the listening handle's accept callback so a refused connection is closed as a bare handle, as node itself
 * does past server.maxConnections. This is node's internal TCP handle (stable since node 0.x, used the same way by
 * node's own net.js on 20 and 24); when it is not there, or has no getpeername, nothing is wrapped and refusals
 * happen on the Socket instead.
 */
function refuseAtHandle(server: Server, mayOpen: (address: string | undefined) => boolean): void {
  const handle = (server as unknown as { _handle?: { onconnection?: (err: number, client?: AcceptedHandle) => void } })._handle;
  const accept = handle?.onconnection;
  if (!handle || typeof accept !== 'function') return;
  handle.onconnection = function (this: unknown, err: number, client?: AcceptedHandle): void {
    if (!err && client && typeof client.getpeername === 'function') {
      const peer: { address?: string } = {};
      if (client.getpeername(peer) === 0 && !mayOpen(peer.address)) {
        client.close();
        return;
      }
    }
    accept.call(this, err, client);
  };
}

/** An error of the body reader: the HTTP status, the answer's code and hint. */
export class BodyRefused extends Error {
  constructor(
    message: string,
    readonly statusCode: number,
    readonly answerCode: 'AGENT_BAD_REQUEST' | 'AGENT_BUSY',
    readonly hint: string,
  ) {
    super(message);
  }
}

/**
 * The body parser: the raw bytes (what was signed), read within the body timeout, at most `maxBytes()`, and only
 * while all bodies being received stay within `limits().bodyBytesInFlight`.
 */
export function bodyReader(
  limits: () => AgentLimits,
  maxBytes: () => number,
): (req: FastifyRequest, payload: NodeJS.ReadableStream, done: (err: Error | null, body?: Buffer) => void) => void {
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
      // what is left of a refused body is read and dropped, never kept (node keeps the connection for the next
      // request, within the timeouts); a body that stalled is not waited for: its connection is closed (408)
      if (err) {
        if (err instanceof BodyRefused && err.statusCode === 408) payload.pause();
        else payload.resume();
        done(err);
      } else done(null, Buffer.concat(chunks, got));
    };
    const onData = (chunk: Buffer): void => {
      got += chunk.length;
      inFlight += chunk.length;
      if (got > max) return finish(Object.assign(new Error('body too large'), { code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413 }));
      if (inFlight > bodyBytesInFlight) {
        return finish(
          new BodyRefused(
            `The agent is receiving ${bodyBytesInFlight} bytes of request bodies already (agent.limits.bodyBytesInFlight); this one is refused unread.`,
            503,
            'AGENT_BUSY',
            'Send the request again in a moment; if the panel sends many large uploads at once, raise agent.limits.bodyBytesInFlight.',
          ),
        );
      }
      // a copy: a chunk is a slice of the socket's 64 KB read buffer, and keeping the slice keeps all of it
      // (held bodies would weigh several times what they count against the budget)
      chunks.push(Buffer.from(chunk));
    };
    const timer = setTimeout(() => {
      finish(
        new BodyRefused(
          `The body did not arrive within ${bodyTimeoutMs} ms (agent.limits.bodyTimeoutMs).`,
          408,
          'AGENT_BAD_REQUEST',
          'Send the whole body at once, right after the headers.',
        ),
      );
    }, bodyTimeoutMs);
    timer.unref();
    payload.on('data', onData);
    payload.once('end', () => finish(null));
    payload.once('error', (e: Error) => finish(e));
    // a client gone mid-body: its bytes leave the budget now, not at the timeout
    payload.once('close', () =>
      finish(new BodyRefused('The client closed the connection before the body ended.', 400, 'AGENT_BAD_REQUEST', 'Send the whole body.')),
    );
  };
}
