/**
 * `listen` and `server_name` semantics, as nginx applies them (ngx_http_core_module: listen, server_name;
 * "How nginx processes a request").
 */
import v8 from 'node:v8';
import vm from 'node:vm';
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
export const SOCKET_OPTIONS = [
  'ipv6only',
  'reuseport',
  'backlog',
  'rcvbuf',
  'sndbuf',
  'fastopen',
  'deferred',
  'bind',
  'accept_filter',
  'so_keepalive',
  'setfib',
];

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

/**
 * Regexes from users' files (server_name, location) run against names from the command line, so a regex with
 * catastrophic backtracking (`~^(a|aa)+$` against `aaaa...ab`) must not hang the process. Two tiers:
 *  - V8's linear-time engine (the `l` flag) for every pattern it can run: no backreferences or lookarounds. It is
 *    behind a V8 flag that only makes the `l` flag legal (other regexes are untouched), set once on first use.
 *    It has no case-insensitive mode: a case-insensitive pattern takes it only when it has no uppercase letters
 *    (uppercase escapes such as \D change meaning if lowercased), matched against the lowercased input.
 *  - Everything else runs in a node:vm context with a time limit, its answer cached per (pattern, input):
 *    starting the watchdog costs ~0.1 ms a call, so only the few patterns the linear engine refuses pay it.
 * PCRE's (?P<name>...) is read as JavaScript's (?<name>...); a pattern JavaScript cannot compile gives null.
 */
export const REGEX_TIME_LIMIT_MS = 50;

interface Compiled {
  linear: RegExp | null;
  guarded: RegExp | null;
}

const regexCache = new Map<string, Compiled>();
// answers of the guarded path, a time-out (null) too: a slow pattern costs its limit once per input
const guardedResults = new Map<string, boolean | null>();
const GUARDED_RESULTS_MAX = 10_000;
const timeouts: Array<{ pattern: string; host: string }> = [];
const TIMEOUTS_KEPT = 100;
let linearEngine: boolean | undefined;
let guardContext: vm.Context | undefined;
let guardScript: vm.Script | undefined;

function linearAvailable(): boolean {
  if (linearEngine === undefined) {
    try {
      new RegExp('a', 'l');
      linearEngine = true;
    } catch {
      try {
        v8.setFlagsFromString('--enable-experimental-regexp-engine');
        new RegExp('a', 'l');
        linearEngine = true;
      } catch {
        linearEngine = false; // a V8 without the engine: every pattern takes the guarded path
      }
    }
  }
  return linearEngine;
}

function compile(pattern: string, caseInsensitive: boolean): Compiled {
  const cacheKey = `${caseInsensitive ? 'i' : '-'}${pattern}`;
  let compiled = regexCache.get(cacheKey);
  if (compiled) return compiled;
  const source = pattern.replace(/\(\?P</g, '(?<');
  let linear: RegExp | null = null;
  let guarded: RegExp | null = null;
  if ((!caseInsensitive || !/[A-Z]/.test(source)) && linearAvailable()) {
    try {
      linear = new RegExp(source, 'l');
    } catch {
      linear = null; // not linear-time (backreferences, lookarounds) or not JavaScript: try the guarded path
    }
  }
  if (!linear) {
    try {
      guarded = new RegExp(source, caseInsensitive ? 'i' : '');
    } catch {
      guarded = null; // a PCRE feature JavaScript lacks
    }
  }
  compiled = { linear, guarded };
  regexCache.set(cacheKey, compiled);
  return compiled;
}

function guardedTest(key: string, re: RegExp, input: string): boolean | null {
  if (guardedResults.has(key)) return guardedResults.get(key) ?? null;
  guardContext ??= vm.createContext(Object.create(null) as object);
  guardScript ??= new vm.Script('re.test(input)');
  guardContext.re = re;
  guardContext.input = input;
  let matched: boolean | null;
  try {
    matched = guardScript.runInContext(guardContext, { timeout: REGEX_TIME_LIMIT_MS }) === true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ERR_SCRIPT_EXECUTION_TIMEOUT') throw error;
    matched = null;
  } finally {
    guardContext.re = null;
    guardContext.input = null;
  }
  if (guardedResults.size >= GUARDED_RESULTS_MAX) guardedResults.clear();
  guardedResults.set(key, matched);
  return matched;
}

/**
 * Whether `pattern` (nginx's regex, PCRE spelling) matches `input`, in bounded time: true or false, or null when it
 * cannot be told (JavaScript cannot compile the pattern, or it ran out of time). Callers pick the cautious reading
 * of null: a server_name that does not match; a location that may catch the request.
 */
export function testRegexBounded(pattern: string, input: string, caseInsensitive: boolean): boolean | null {
  const re = compile(pattern, caseInsensitive);
  if (re.linear) return re.linear.test(caseInsensitive ? input.toLowerCase() : input);
  if (!re.guarded) return null;
  const key = `${caseInsensitive ? 'i' : '-'}${pattern}\u0000${input}`;
  const fresh = !guardedResults.has(key);
  const matched = guardedTest(key, re.guarded, input);
  if (matched === null && fresh) {
    timeouts.push({ pattern, host: input });
    if (timeouts.length > TIMEOUTS_KEPT) timeouts.shift();
  }
  return matched;
}

/** Regexes that ran out of time, with the input they were tried on (most recent last, at most 100). */
export function regexTimeouts(): ReadonlyArray<{ pattern: string; host: string }> {
  return timeouts;
}

export function matchServerName(pattern: string, host: string): NameMatch | null {
  const p = pattern.toLowerCase();
  if (p.startsWith('~')) {
    // nginx matches server_name regexes case-insensitively. A pattern JavaScript cannot compile never matches
    // here (such a block is never chosen); one that runs out of time does not match either: nginx's PCRE gives up
    // on such a match too and fails the request rather than choose a server.
    return testRegexBounded(pattern.slice(1), host, true) === true ? { kind: 'regex' } : null;
  }
  if (p === host) return { kind: 'exact' };
  if (p.startsWith('*.')) return host.endsWith(p.slice(1)) ? { kind: 'leading', length: p.length } : null;
  if (p.startsWith('.')) return host === p.slice(1) || host.endsWith(p) ? { kind: 'leading', length: p.length } : null;
  if (p.endsWith('.*')) return host.startsWith(p.slice(0, -1)) ? { kind: 'trailing', length: p.length } : null;
  return null;
}
