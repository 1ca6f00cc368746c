/**
 * `listen` and `server_name` semantics, as nginx applies them (ngx_http_core_module: listen, server_name;
 * "How nginx processes a request").
 */
import type { Directive } from './parse.js';
import { argValues } from './parse.js';

export interface Listen {
  directive: Directive;
  /** Normalised host part: "*" for any IPv4 address, "[::]" style for IPv6, "unix:/path" for sockets. */
  host: string;
  port: number | null;
  ipv6: boolean;
  unix: boolean;
  ssl: boolean;
  http2: boolean;
  options: string[];
  /** The socket nginx binds: listens sharing it share socket options and the default server. */
  socket: string;
  /** True for the *:80 nginx assumes when a server block has no listen at all. */
  implicit?: boolean;
}

/** Options nginx accepts on only one listen per address:port ("duplicate listen options" otherwise). */
export const SOCKET_OPTIONS = ['ipv6only', 'reuseport', 'backlog', 'rcvbuf', 'sndbuf', 'fastopen', 'deferred', 'bind', 'accept_filter', 'so_keepalive', 'setfib'];

export function optionName(option: string): string {
  return option.split('=')[0]!;
}

const listenCache = new WeakMap<Directive, Listen>();

/** Parses a `listen` directive (cached per parsed directive: a warm tree load does not parse 10,000 again). */
export function parseListen(directive: Directive): Listen {
  let listen = listenCache.get(directive);
  if (!listen) {
    listen = parseListenUncached(directive);
    listenCache.set(directive, listen);
  }
  return listen;
}

function parseListenUncached(directive: Directive): Listen {
  const [address = '80', ...options] = argValues(directive);
  let host = '*';
  let port: number | null = 80;
  let ipv6 = false;
  let unix = false;
  if (address.startsWith('unix:')) {
    host = address;
    port = null;
    unix = true;
  } else if (address.startsWith('[')) {
    ipv6 = true;
    const close = address.indexOf(']');
    host = address.slice(0, close + 1).toLowerCase();
    const rest = address.slice(close + 1);
    if (rest.startsWith(':')) port = Number(rest.slice(1));
  } else if (/^\d+$/.test(address)) {
    port = Number(address);
  } else if (address.includes(':')) {
    const i = address.lastIndexOf(':');
    host = address.slice(0, i).toLowerCase();
    port = Number(address.slice(i + 1));
  } else {
    host = address.toLowerCase();
  }
  if (host === '0.0.0.0') host = '*';
  if (host === '[::0]' || host === '[0:0:0:0:0:0:0:0]') host = '[::]';
  const ssl = options.includes('ssl');
  const http2 = options.includes('http2');
  return { directive, host, port, ipv6, unix, ssl, http2, options, socket: port === null ? host : `${host}:${port}` };
}

/** A server block with no `listen` listens on *:80 (nginx running as root). */
export function isPlainHttp(listen: Listen): boolean {
  return !listen.ssl && listen.port === 80;
}

/** The address part as written in a new `listen` line for the same host on another port. */
export function listenAddress(listen: Listen, port: number): string {
  if (listen.host === '*') return String(port);
  return `${listen.host}:${port}`;
}

// ---------------------------------------------------------------------------------------------------------
// server_name matching

export type NameMatch = { kind: 'exact' } | { kind: 'leading'; length: number } | { kind: 'trailing'; length: number } | { kind: 'regex' };

/** The rank nginx gives a match: exact, then the longest leading wildcard, the longest trailing one, regexes. */
export function matchRank(match: NameMatch): number {
  switch (match.kind) {
    case 'exact':
      return 3_000_000;
    case 'leading':
      return 2_000_000 + match.length;
    case 'trailing':
      return 1_000_000 + match.length;
    case 'regex':
      return 0;
  }
}

const regexCache = new Map<string, RegExp | null>();

function compileServerNameRegex(pattern: string): RegExp | null {
  let compiled = regexCache.get(pattern);
  if (compiled !== undefined) return compiled;
  try {
    // PCRE named groups (?P<name>...) are spelled (?<name>...) in JavaScript; nginx matches case-insensitively.
    compiled = new RegExp(pattern.replace(/\(\?P</g, '(?<'), 'i');
  } catch {
    compiled = null; // a PCRE feature JavaScript lacks: never matches here, so such a block is never chosen
  }
  regexCache.set(pattern, compiled);
  return compiled;
}

export function matchServerName(pattern: string, host: string): NameMatch | null {
  const p = pattern.toLowerCase();
  if (p.startsWith('~')) {
    const re = compileServerNameRegex(pattern.slice(1));
    return re && re.test(host) ? { kind: 'regex' } : null;
  }
  if (p === host) return { kind: 'exact' };
  if (p.startsWith('*.')) return host.endsWith(p.slice(1)) ? { kind: 'leading', length: p.length } : null;
  if (p.startsWith('.')) return host === p.slice(1) || host.endsWith(p) ? { kind: 'leading', length: p.length } : null;
  if (p.endsWith('.*')) return host.startsWith(p.slice(0, -1)) ? { kind: 'trailing', length: p.length } : null;
  return null;
}
