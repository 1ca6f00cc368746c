/**
 * The configuration: defaults, and validation whose errors name the bad key and what was expected.
 * Paths in a config file are resolved against the file's directory.
 */
import path from 'node:path';
import { AutoSslError, quote } from '../errors.js';
import { normalizeDomain, normalizeDomains } from '../domain.js';
import { defaultConcurrency } from '../certbot/orders.js';
import { nginxValueProblem } from '../nginx/value.js';

export interface PluginSpec {
  /** A package name or a file path (relative to the config file). */
  module: string;
  options: Record<string, unknown>;
}

/** Where autossl keeps its state: "sqlite" (state.db under stateDir) or a module whose default export is a StoreFactory. */
export type StoreSpec = 'sqlite' | PluginSpec;

export interface SiteConfig {
  domain: string;
  aliases: string[];
  /** How the CA checks control of the names; the default is defaults.challenge. Wildcards need dns-01. */
  challenge?: 'http-01' | 'dns-01';
  documentRoot?: string;
  /** The vhost file; found by server_name when absent. */
  vhost?: string;
  redirect?: boolean;
  hsts?: boolean;
  /** certbot's --cert-name; the domain when absent. */
  certName?: string;
  /**
   * The other names of the server block that serves the site: `keep` (default) leaves them out of the certificate
   * (they keep answering as before, no redirect or HSTS); `cover` adds those whose own pre-flight passes.
   */
  blockNames?: 'keep' | 'cover';
}

export interface AutoSslConfig {
  /** The file the config was read from, if any. */
  filepath?: string;
  /** Discovered on this server with no config file (the CLI's zero-config runs): the hooks it installs run so too. */
  zeroConfig?: boolean;
  /** Where relative paths and plugin packages are looked up: the config file's directory. */
  configDir: string;
  certbot: {
    binary: string;
    configDir: string;
    workDir: string;
    logsDir: string;
    server?: string;
    email?: string;
    keyType: 'ecdsa' | 'rsa';
    extraArgs: string[];
    env: Record<string, string>;
    timeoutMs: number;
    /**
     * The CA's revocation status of a certificate, as a URL with `{serial}` (hex) answering JSON with "Status"
     * (pebble's management API). Unset: the CRL named in the certificate.
     */
    revocationStatusUrl?: string;
  };
  nginx: {
    binary: string;
    config: string;
    reloadCommand?: string[];
    extraArgs: string[];
    httpsPort: number;
    http2: boolean;
    /** How long a run waits for another autossl process to finish its config edit. */
    lockTimeoutMs: number;
  };
  /** This server's public addresses (pre-flight compares DNS with them). */
  serverAddresses: string[];
  /** autossl's own state: journal of in-flight edits, locks. */
  stateDir: string;
  /** Webroot for sites whose vhost has no usable document root. */
  challengeDir: string;
  defaults: {
    redirect: boolean;
    hsts: boolean;
    challenge: 'http-01' | 'dns-01';
    /** A domain taking longer than this is reported with the stage it is stuck in. */
    domainTimeoutMs: number;
    /** A domain taking longer than this fails with TIMEOUT (naming the stage and plugin) and is rolled back. */
    deadlineMs: number;
    /** How long after reload the TLS check keeps trying to see the new certificate. */
    verifyTimeoutMs: number;
  };
  batch: {
    /** certbot processes at once (each new order in a private directory set, adopted after). */
    concurrency: number;
    /** Order new lineages in private certbot directories, in parallel (false: one certbot at a time). */
    privateOrders: boolean;
    /** How long the HTTPS edits of a batch wait for more domains to join one nginx -t and reload. */
    installWindowMs: number;
  };
  notify: {
    /** A notification whose delivery failed is tried again after this (doubling per attempt, at most 6 hours). */
    retryBaseMs: number;
  };
  dns01: {
    /** How long to wait for a TXT record to be visible before telling certbot to go on. */
    propagationTimeoutMs: number;
    /** Resolvers asked for the TXT record (default: preflight.resolvers, else the system's). */
    resolvers: string[];
  };
  renewal: {
    /** The renewal window: the last this-fraction of a certificate's lifetime (1/3: the last 30 of 90 days). */
    windowFraction: number;
  };
  preflight: {
    /** Every probe (DNS query, HTTP fetch) gives up after this long. */
    timeoutMs: number;
    /** DNS resolvers ("1.1.1.1", "127.0.0.1:8053"); empty = the system's. */
    resolvers: string[];
    /** Ask the zone's authoritative servers (no caches in between). */
    authoritative: boolean;
    /** Domains checked at once by `autossl check`. */
    concurrency: number;
    /** Cloudflare's proxy ranges; the shipped list when absent. */
    cloudflareRanges?: string[];
    /** Refuse a name after this many failed ACME validations within the window (Let's Encrypt's limit is 5 an hour). */
    maxFailedValidations: number;
    failedValidationWindowMinutes: number;
  };
  plugins: PluginSpec[];
  /** Who obtains certificates: the built-in certbot, or a module (see src/issuer/issuer.ts). */
  issuer: 'certbot' | PluginSpec;
  /** The Store (and its Locker); "sqlite" when absent. */
  store?: StoreSpec;
  sites: SiteConfig[];
  /** `autossl agent`: the signed HTTP API a hosting panel drives. */
  agent: AgentConfig;
}

export interface AgentConfig {
  /** host:port ("127.0.0.1:7443", "[::1]:7443"); anything but loopback needs `tls`. */
  listen: string;
  /** The shared secrets, one per line (several for rotation); the file must not be readable by group or others. */
  tokensFile: string;
  /** Serve HTTPS with this certificate and key (a panel on another host must use it). */
  tls?: { cert: string; key: string };
  /**
   * The document root of a panel's domain, from the request's user name: "/home/{username}/public_html" or
   * "/home/{username}/{domain}/public". Absent: found from the vhost, as for any site.
   */
  documentRoot?: string;
  /** Issue requests arriving within this long of each other join one batch (a panel sends one per domain). */
  batchWindowMs: number;
  /**
   * Per token: sustained requests per second, and the burst allowed above it. `perSecond`/`burst` bound the calls
   * that change something; read-only calls (a panel's status loop over every domain) have their own, far larger
   * `readPerSecond`/`readBurst`. /ssl/issue-async is not limited here: it is queued, up to `maxQueued`.
   */
  rateLimit: { perSecond: number; burst: number; readPerSecond: number; readBurst: number };
  /** Domains accepted by /ssl/issue-async and not finished, at most (past it: 503 AGENT_QUEUE_FULL). */
  maxQueued: number;
  /** Request bodies larger than this are refused (413) before they are read. */
  maxBodyBytes: number;
  /** What no client, signed or not, can exceed (agent/limits.ts): connections, timeouts, bodies being received. */
  limits: AgentLimits;
  /** /ssl/renew answers within this long (the panel waits 120 s); past it, 202 with the job id. */
  syncTimeoutMs: number;
  /** How long a stop waits for running certificate orders before leaving them to the next start. */
  stopTimeoutMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'silent';
}

export interface AgentLimits {
  /** Open connections in all; more are closed as they are accepted (the unit's LimitNOFILE is far above). */
  connections: number;
  /** Open connections from one source address. */
  connectionsPerAddress: number;
  /** The request line and headers must arrive within this long of the connection (or the previous answer). */
  headersTimeoutMs: number;
  /** The whole body must arrive within this long of the headers. */
  bodyTimeoutMs: number;
  /** A kept-alive connection with no request is closed after this long. */
  idleTimeoutMs: number;
  /** Bytes of bodies being received (their signature not checked yet), all connections together. */
  bodyBytesInFlight: number;
}

export const DEFAULT_CONFIG: AutoSslConfig = {
  certbot: {
    binary: 'certbot',
    configDir: '/etc/letsencrypt',
    workDir: '/var/lib/letsencrypt',
    logsDir: '/var/log/letsencrypt',
    keyType: 'ecdsa',
    extraArgs: [],
    env: {},
    timeoutMs: 120_000,
  },
  configDir: process.cwd(),
  nginx: { binary: 'nginx', config: '/etc/nginx/nginx.conf', extraArgs: [], httpsPort: 443, http2: true, lockTimeoutMs: 120_000 },
  serverAddresses: [],
  stateDir: '/var/lib/autossl',
  challengeDir: '/var/lib/autossl/acme-challenge',
  defaults: { redirect: false, hsts: false, challenge: 'http-01', domainTimeoutMs: 30_000, deadlineMs: 600_000, verifyTimeoutMs: 5_000 },
  dns01: { propagationTimeoutMs: 120_000, resolvers: [] },
  notify: { retryBaseMs: 60_000 },
  batch: { concurrency: defaultConcurrency(), privateOrders: true, installWindowMs: 2_000 },
  renewal: { windowFraction: 1 / 3 },
  preflight: { timeoutMs: 3_000, resolvers: [], authoritative: false, concurrency: 64, maxFailedValidations: 3, failedValidationWindowMinutes: 60 },
  plugins: [],
  issuer: 'certbot',
  sites: [],
  agent: {
    listen: '127.0.0.1:7443',
    tokensFile: '/etc/autossl/agent-tokens',
    batchWindowMs: 1500,
    // a panel of 10,000 domains re-checks them all in one loop: every status call fits in the read burst, every
    // issue-async in the queue (twice over)
    rateLimit: { perSecond: 50, burst: 500, readPerSecond: 2000, readBurst: 20_000 },
    maxQueued: 20_000,
    maxBodyBytes: 256 * 1024,
    limits: { connections: 256, connectionsPerAddress: 64, headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000, idleTimeoutMs: 72_000, bodyBytesInFlight: 8 * 1024 * 1024 },
    syncTimeoutMs: 100_000,
    stopTimeoutMs: 90_000,
    logLevel: 'info',
  },
};

type Json = Record<string, unknown>;

class Validator {
  constructor(private readonly source: string, private readonly baseDir: string) {}

  fail(key: string, expected: string, got: unknown): never {
    // quote() never stringifies a whole object: a hostile value (an alias bomb) cannot blow up the message
    const shown = quote(got, 80);
    throw new AutoSslError('CONFIG_INVALID', `${this.source}: "${key}" must be ${expected}, got ${shown}.`, { details: { key } });
  }

  object(value: unknown, key: string): Json {
    if (value === undefined) return {};
    if (typeof value !== 'object' || value === null || Array.isArray(value)) this.fail(key, 'an object', value);
    return value as Json;
  }

  known(obj: Json, key: string, allowed: readonly string[]): void {
    for (const k of Object.keys(obj)) {
      if (!allowed.includes(k)) this.fail(`${key ? `${key}.` : ''}${k}`, `one of the known keys (${allowed.join(', ')})`, k);
    }
  }

  string(value: unknown, key: string, fallback: string): string;
  string(value: unknown, key: string, fallback?: undefined): string | undefined;
  string(value: unknown, key: string, fallback?: string): string | undefined {
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'string' || value.length === 0) this.fail(key, 'a non-empty string', value);
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f]/.test(value)) this.fail(key, 'a string without control characters', value);
    return value;
  }

  path(value: unknown, key: string, fallback: string): string;
  path(value: unknown, key: string, fallback?: undefined): string | undefined;
  path(value: unknown, key: string, fallback?: string): string | undefined {
    const s = this.string(value, key, fallback as string);
    return s === undefined ? undefined : path.resolve(this.baseDir, s);
  }

  /**
   * A path autossl writes into nginx's files (`root`, `ssl_certificate`): nginx expands "$" even inside quotes
   * ("/srv/$host" would become a path chosen by each request's Host header), and no escape exists for it.
   */
  nginxPath(value: unknown, key: string, fallback: string): string;
  nginxPath(value: unknown, key: string, fallback?: undefined): string | undefined;
  nginxPath(value: unknown, key: string, fallback?: string): string | undefined {
    const p = this.path(value, key, fallback as string);
    // the value goes into nginx files: the writer's own rule, checked when the config loads, before any order
    const problem = p === undefined ? null : nginxValueProblem(p);
    if (problem) this.fail(key, `a path nginx reads as written (${problem}): no "$", whitespace, quotes, ";", "{", "}", "#", backslash, control or bidi characters`, value);
    return p;
  }

  /** A command: a bare name is looked up on PATH; anything with a slash is a path. */
  command(value: unknown, key: string, fallback: string): string {
    const s = this.string(value, key, fallback);
    return s.includes('/') ? path.resolve(this.baseDir, s) : s;
  }

  boolean(value: unknown, key: string, fallback: boolean): boolean {
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') this.fail(key, 'true or false', value);
    return value;
  }

  integer(value: unknown, key: string, fallback: number, min: number, max: number): number {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) this.fail(key, `an integer from ${min} to ${max}`, value);
    return value;
  }

  strings(value: unknown, key: string, fallback: string[]): string[] {
    if (value === undefined) return fallback;
    if (!Array.isArray(value)) this.fail(key, 'a list of strings', value);
    return value.map((v, i) => this.string(v, `${key}[${i}]`, undefined) ?? this.fail(`${key}[${i}]`, 'a non-empty string', v));
  }
}

const IP = /^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f:]+:[0-9a-f:.]*)$/i;

export function validateConfig(raw: unknown, source = 'config', baseDir = process.cwd()): AutoSslConfig {
  const v = new Validator(source, baseDir);
  const root = v.object(raw, '(top level)');
  const TOP = ['certbot', 'nginx', 'serverAddresses', 'stateDir', 'challengeDir', 'defaults', 'renewal', 'preflight', 'dns01', 'notify', 'batch', 'plugins', 'store', 'issuer', 'sites', 'agent'];
  const keys = Object.keys(root);
  // (a misspelt key, {"cerbot": ...}, is still named below: only keys no config would have, or many of them, are not)
  if (keys.length && !keys.some((k) => TOP.includes(k)) && (keys.length > 2 || keys.some((k) => !/^[A-Za-z][A-Za-z0-9_]*$/.test(k)))) {
    // not an autossl config at all (a wrong --config, /etc/shadow): its content is not echoed into terminals and logs
    throw new AutoSslError('CONFIG_INVALID', `${source} is not an autossl config: none of its ${keys.length} top-level key${keys.length > 1 ? 's is' : ' is'} one autossl knows.`, { hint: `Point --config at the autossl config (autossl.config.json or .yaml; "autossl init" writes one). Known keys: ${TOP.join(', ')}.` });
  }
  v.known(root, '', TOP);
  const batch = v.object(root.batch, 'batch');
  v.known(batch, 'batch', ['concurrency', 'privateOrders', 'installWindowMs']);
  const notify = v.object(root.notify, 'notify');
  v.known(notify, 'notify', ['retryBaseMs']);
  const dns01 = v.object(root.dns01, 'dns01');
  v.known(dns01, 'dns01', ['propagationTimeoutMs', 'resolvers']);
  const dnsResolvers = v.strings(dns01.resolvers, 'dns01.resolvers', []);
  for (const [i, r] of dnsResolvers.entries()) if (!/^(\d{1,3}(\.\d{1,3}){3}(:\d+)?|\[[0-9a-f:]+\](:\d+)?|[0-9a-f:]+)$/i.test(r)) v.fail(`dns01.resolvers[${i}]`, 'an IP address, optionally with :port', r);
  const rn = v.object(root.renewal, 'renewal');
  v.known(rn, 'renewal', ['windowFraction']);
  if (rn.windowFraction !== undefined && (typeof rn.windowFraction !== 'number' || !(rn.windowFraction > 0 && rn.windowFraction < 1))) v.fail('renewal.windowFraction', 'a number between 0 and 1 (1/3 renews in the last third of the lifetime)', rn.windowFraction);
  const pf = v.object(root.preflight, 'preflight');
  v.known(pf, 'preflight', ['timeoutMs', 'resolvers', 'authoritative', 'concurrency', 'cloudflareRanges', 'maxFailedValidations', 'failedValidationWindowMinutes']);
  const resolvers = v.strings(pf.resolvers, 'preflight.resolvers', []);
  for (const [i, r] of resolvers.entries()) if (!/^(\d{1,3}(\.\d{1,3}){3}(:\d+)?|\[[0-9a-f:]+\](:\d+)?|[0-9a-f:]+)$/i.test(r)) v.fail(`preflight.resolvers[${i}]`, 'an IP address, optionally with :port', r);
  const cfRanges = pf.cloudflareRanges === undefined ? undefined : v.strings(pf.cloudflareRanges, 'preflight.cloudflareRanges', []);
  for (const [i, r] of (cfRanges ?? []).entries()) if (!/^[0-9a-f:.]+\/\d{1,3}$/i.test(r)) v.fail(`preflight.cloudflareRanges[${i}]`, 'a CIDR range like 104.16.0.0/13', r);
  const d = DEFAULT_CONFIG;

  const cb = v.object(root.certbot, 'certbot');
  v.known(cb, 'certbot', ['binary', 'configDir', 'workDir', 'logsDir', 'server', 'email', 'keyType', 'extraArgs', 'env', 'timeoutMs', 'revocationStatusUrl']);
  const keyType = v.string(cb.keyType, 'certbot.keyType', d.certbot.keyType);
  if (keyType !== 'ecdsa' && keyType !== 'rsa') v.fail('certbot.keyType', '"ecdsa" or "rsa"', keyType);
  const server = v.string(cb.server, 'certbot.server');
  if (server !== undefined && !/^https:\/\/[^\s]+$/.test(server)) v.fail('certbot.server', 'an https:// ACME directory URL', server);
  const revocationStatusUrl = v.string(cb.revocationStatusUrl, 'certbot.revocationStatusUrl');
  if (revocationStatusUrl !== undefined && !/^https?:\/\/[^\s]+\{serial\}[^\s]*$/.test(revocationStatusUrl)) v.fail('certbot.revocationStatusUrl', 'an http(s):// URL with {serial} in it', revocationStatusUrl);
  const email = v.string(cb.email, 'certbot.email');
  if (email !== undefined && !/^[^\s@,;]+@[^\s@,;]+\.[^\s@,;]+$/.test(email)) v.fail('certbot.email', 'an email address (or leave it out to register without one)', email);
  const env = v.object(cb.env, 'certbot.env');
  for (const [k, val] of Object.entries(env)) v.string(val, `certbot.env.${k}`);
  const extraArgs = v.strings(cb.extraArgs, 'certbot.extraArgs', []);
  for (const [i, a] of extraArgs.entries()) if (!a.startsWith('-')) v.fail(`certbot.extraArgs[${i}]`, 'a certbot option starting with "-" (option values go in the same string: "--rsa-key-size=4096")', a);

  const ng = v.object(root.nginx, 'nginx');
  v.known(ng, 'nginx', ['binary', 'config', 'reloadCommand', 'extraArgs', 'httpsPort', 'http2', 'lockTimeoutMs']);

  const defaults = v.object(root.defaults, 'defaults');
  v.known(defaults, 'defaults', ['redirect', 'hsts', 'challenge', 'domainTimeoutMs', 'deadlineMs', 'verifyTimeoutMs']);
  const defaultChallenge = challengeOf(defaults.challenge, 'defaults.challenge', v) ?? d.defaults.challenge;

  const addresses = v.strings(root.serverAddresses, 'serverAddresses', []);
  for (const [i, a] of addresses.entries()) if (!IP.test(a)) v.fail(`serverAddresses[${i}]`, 'an IPv4 or IPv6 address', a);

  if (root.plugins !== undefined && !Array.isArray(root.plugins)) v.fail('plugins', 'a list of plugin names, paths, or [name, options]', root.plugins);
  const plugins: PluginSpec[] = ((root.plugins as unknown[] | undefined) ?? []).map((p, i) => {
    const key = `plugins[${i}]`;
    if (typeof p === 'string') return { module: resolvePluginPath(v.string(p, key)!, baseDir), options: {} };
    if (Array.isArray(p) && typeof p[0] === 'string') return { module: resolvePluginPath(p[0], baseDir), options: v.object(p[1], `${key}[1]`) };
    return v.fail(key, 'a plugin name or path, or [name, options]', p);
  });
  const store = storeOf(root.store, baseDir, v);

  let issuer: AutoSslConfig['issuer'] = 'certbot';
  if (root.issuer !== undefined && root.issuer !== 'certbot') {
    const spec = v.object(root.issuer, 'issuer');
    v.known(spec, 'issuer', ['module', 'options']);
    const module = typeof spec.module === 'string' && (spec.module.startsWith('.') || spec.module.startsWith('/')) ? spec.module : v.fail('issuer.module', 'the path of an issuer module ("./my-issuer.mjs", relative to the config file)', spec.module);
    issuer = { module: resolvePluginPath(module, baseDir), options: spec.options === undefined ? {} : v.object(spec.options, 'issuer.options') };
  }

  if (root.sites !== undefined && !Array.isArray(root.sites)) v.fail('sites', 'a list of sites', root.sites);
  const sites: SiteConfig[] = ((root.sites as unknown[] | undefined) ?? []).map((s, i) => {
    const key = `sites[${i}]`;
    const site = v.object(s, key);
    v.known(site, key, ['domain', 'aliases', 'documentRoot', 'vhost', 'redirect', 'hsts', 'certName', 'challenge', 'blockNames']);
    if (site.blockNames !== undefined && site.blockNames !== 'keep' && site.blockNames !== 'cover') v.fail(`${key}.blockNames`, '"keep" or "cover"', site.blockNames);
    const challenge = challengeOf(site.challenge, `${key}.challenge`, v);
    const dns01 = (challenge ?? defaultChallenge) === 'dns-01';
    const domain = normalizeForConfig(site.domain, `${key}.domain`, v, dns01);
    const aliases = v.strings(site.aliases, `${key}.aliases`, []).map((a, j) => normalizeForConfig(a, `${key}.aliases[${j}]`, v, dns01));
    const certName = v.string(site.certName, `${key}.certName`);
    if (certName !== undefined && !isCertName(certName)) v.fail(`${key}.certName`, 'a certbot certificate name (letters, digits, ".", "-", "_"; no "..")', certName);
    return {
      domain,
      aliases: aliases.filter((a) => a !== domain),
      challenge,
      blockNames: site.blockNames as SiteConfig['blockNames'],
      documentRoot: v.nginxPath(site.documentRoot, `${key}.documentRoot`),
      vhost: v.path(site.vhost, `${key}.vhost`),
      redirect: site.redirect === undefined ? undefined : v.boolean(site.redirect, `${key}.redirect`, false),
      hsts: site.hsts === undefined ? undefined : v.boolean(site.hsts, `${key}.hsts`, false),
      certName,
    };
  });
  const seen = new Map<string, string>();
  for (const s of sites) {
    for (const name of [s.domain, ...s.aliases]) {
      const other = seen.get(name);
      if (other !== undefined) v.fail('sites', `a list naming each domain once (${name} is in the site ${other} already)`, s.domain);
      seen.set(name, s.domain);
    }
  }

  const reloadCommand = ng.reloadCommand === undefined ? undefined : v.strings(ng.reloadCommand, 'nginx.reloadCommand', []);
  if (reloadCommand && reloadCommand.length === 0) v.fail('nginx.reloadCommand', 'a non-empty argument list such as ["systemctl", "reload", "nginx"]', reloadCommand);

  const stateDir = v.nginxPath(root.stateDir, 'stateDir', d.stateDir); // uploads and the challenge directory under it are named in nginx files
  const agent = agentConfig(v, root.agent);
  return {
    filepath: path.isAbsolute(source) ? source : undefined,
    configDir: baseDir,
    certbot: {
      binary: v.command(cb.binary, 'certbot.binary', d.certbot.binary),
      configDir: v.nginxPath(cb.configDir, 'certbot.configDir', d.certbot.configDir),
      workDir: v.path(cb.workDir, 'certbot.workDir', d.certbot.workDir),
      logsDir: v.path(cb.logsDir, 'certbot.logsDir', d.certbot.logsDir),
      server,
      email,
      keyType: keyType as 'ecdsa' | 'rsa',
      extraArgs,
      env: env as Record<string, string>,
      timeoutMs: v.integer(cb.timeoutMs, 'certbot.timeoutMs', d.certbot.timeoutMs, 1000, 3_600_000),
      ...(revocationStatusUrl ? { revocationStatusUrl } : {}),
    },
    nginx: {
      binary: v.command(ng.binary, 'nginx.binary', d.nginx.binary),
      config: v.path(ng.config, 'nginx.config', d.nginx.config),
      reloadCommand,
      extraArgs: v.strings(ng.extraArgs, 'nginx.extraArgs', []),
      httpsPort: v.integer(ng.httpsPort, 'nginx.httpsPort', d.nginx.httpsPort, 1, 65535),
      http2: v.boolean(ng.http2, 'nginx.http2', d.nginx.http2),
      lockTimeoutMs: v.integer(ng.lockTimeoutMs, 'nginx.lockTimeoutMs', d.nginx.lockTimeoutMs, 100, 3_600_000),
    },
    serverAddresses: addresses,
    stateDir,
    challengeDir: v.nginxPath(root.challengeDir, 'challengeDir', root.stateDir === undefined ? d.challengeDir : path.join(stateDir, 'acme-challenge')),
    defaults: {
      redirect: v.boolean(defaults.redirect, 'defaults.redirect', d.defaults.redirect),
      hsts: v.boolean(defaults.hsts, 'defaults.hsts', d.defaults.hsts),
      challenge: defaultChallenge,
      domainTimeoutMs: v.integer(defaults.domainTimeoutMs, 'defaults.domainTimeoutMs', d.defaults.domainTimeoutMs, 1000, 3_600_000),
      deadlineMs: v.integer(defaults.deadlineMs, 'defaults.deadlineMs', d.defaults.deadlineMs, 1000, 86_400_000),
      verifyTimeoutMs: v.integer(defaults.verifyTimeoutMs, 'defaults.verifyTimeoutMs', d.defaults.verifyTimeoutMs, 100, 600_000),
    },
    dns01: {
      propagationTimeoutMs: v.integer(dns01.propagationTimeoutMs, 'dns01.propagationTimeoutMs', d.dns01.propagationTimeoutMs, 0, 3_600_000),
      resolvers: dnsResolvers,
    },
    batch: {
      concurrency: v.integer(batch.concurrency, 'batch.concurrency', d.batch.concurrency, 1, 256),
      privateOrders: v.boolean(batch.privateOrders, 'batch.privateOrders', d.batch.privateOrders),
      installWindowMs: v.integer(batch.installWindowMs, 'batch.installWindowMs', d.batch.installWindowMs, 0, 60_000),
    },
    notify: { retryBaseMs: v.integer(notify.retryBaseMs, 'notify.retryBaseMs', d.notify.retryBaseMs, 0, 86_400_000) },
    renewal: { windowFraction: (rn.windowFraction as number | undefined) ?? d.renewal.windowFraction },
    preflight: {
      timeoutMs: v.integer(pf.timeoutMs, 'preflight.timeoutMs', d.preflight.timeoutMs, 100, 120_000),
      resolvers,
      authoritative: v.boolean(pf.authoritative, 'preflight.authoritative', d.preflight.authoritative),
      concurrency: v.integer(pf.concurrency, 'preflight.concurrency', d.preflight.concurrency, 1, 1024),
      cloudflareRanges: cfRanges,
      maxFailedValidations: v.integer(pf.maxFailedValidations, 'preflight.maxFailedValidations', d.preflight.maxFailedValidations, 1, 100),
      failedValidationWindowMinutes: v.integer(pf.failedValidationWindowMinutes, 'preflight.failedValidationWindowMinutes', d.preflight.failedValidationWindowMinutes, 1, 10_080),
    },
    plugins,
    issuer,
    ...(store === 'sqlite' ? {} : { store }),
    sites,
    agent,
  };
}

/** `store`: "sqlite", a module's path or package name, or { module, options } (loaded as plugins are). */
function storeOf(value: unknown, baseDir: string, v: Validator): StoreSpec {
  if (value === undefined || value === 'sqlite') return 'sqlite';
  if (typeof value === 'string' && value !== '') return { module: resolvePluginPath(value, baseDir), options: {} };
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    v.known(o, 'store', ['module', 'options']);
    if (typeof o.module !== 'string' || o.module === '') return v.fail('store.module', 'a store module\'s path or package name', o.module);
    return o.module === 'sqlite' && o.options === undefined ? 'sqlite' : { module: resolvePluginPath(o.module, baseDir), options: o.options === undefined ? {} : v.object(o.options, 'store.options') };
  }
  return v.fail('store', '"sqlite", a store module\'s path or package name, or { "module": ..., "options": {...} }', value);
}

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\]|localhost)$/;

/** Splits "host:port" / "[v6]:port" as the agent's `listen`; throws a message naming the expected form. */
export function parseListenAddress(value: string): { host: string; port: number; loopback: boolean } | null {
  const m = /^(\[[0-9a-fA-F:.]+\]|[0-9.]+|localhost):(\d{1,5})$/.exec(value);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port, loopback: LOOPBACK.test(m[1]!) };
}

function agentConfig(v: Validator, raw: unknown): AgentConfig {
  const d = DEFAULT_CONFIG.agent;
  const a = v.object(raw, 'agent');
  v.known(a, 'agent', ['listen', 'tokensFile', 'tls', 'documentRoot', 'batchWindowMs', 'rateLimit', 'maxQueued', 'maxBodyBytes', 'limits', 'syncTimeoutMs', 'stopTimeoutMs', 'logLevel']);
  const listen = v.string(a.listen, 'agent.listen', d.listen);
  const parsed = parseListenAddress(listen);
  if (!parsed) v.fail('agent.listen', 'host:port, such as "127.0.0.1:7443" or "[::1]:7443"', listen);
  let tls: AgentConfig['tls'];
  if (a.tls !== undefined) {
    const t = v.object(a.tls, 'agent.tls');
    v.known(t, 'agent.tls', ['cert', 'key']);
    tls = { cert: v.path(t.cert, 'agent.tls.cert') ?? v.fail('agent.tls.cert', 'the path of a PEM certificate', t.cert), key: v.path(t.key, 'agent.tls.key') ?? v.fail('agent.tls.key', 'the path of its PEM key', t.key) };
  }
  if (!parsed!.loopback && !tls) v.fail('agent.listen', 'a loopback address (127.0.0.1, [::1]) unless "agent.tls" is set: a panel on another host must reach the agent over HTTPS, or its signed requests (and certificate keys sent with /ssl/upload) cross the network in the clear', listen);
  const documentRoot = v.string(a.documentRoot, 'agent.documentRoot');
  if (documentRoot !== undefined) {
    if (!documentRoot.startsWith('/')) v.fail('agent.documentRoot', 'an absolute path template such as "/home/{username}/public_html"', documentRoot);
    const unknown = /\{(?!username\}|domain\})[^}]*\}/.exec(documentRoot);
    if (unknown) v.fail('agent.documentRoot', 'a path with only {username} and {domain} placeholders', documentRoot);
    const problem = nginxValueProblem(documentRoot.replaceAll('{username}', 'user').replaceAll('{domain}', 'example.com'));
    if (problem) v.fail('agent.documentRoot', `a path template nginx reads as written (${problem})`, documentRoot);
  }
  const rl = v.object(a.rateLimit, 'agent.rateLimit');
  v.known(rl, 'agent.rateLimit', ['perSecond', 'burst', 'readPerSecond', 'readBurst']);
  const lim = v.object(a.limits, 'agent.limits');
  v.known(lim, 'agent.limits', Object.keys(d.limits));
  const limits: AgentLimits = {
    connections: v.integer(lim.connections, 'agent.limits.connections', d.limits.connections, 1, 1_000_000),
    connectionsPerAddress: v.integer(lim.connectionsPerAddress, 'agent.limits.connectionsPerAddress', d.limits.connectionsPerAddress, 1, 1_000_000),
    headersTimeoutMs: v.integer(lim.headersTimeoutMs, 'agent.limits.headersTimeoutMs', d.limits.headersTimeoutMs, 100, 60_000),
    bodyTimeoutMs: v.integer(lim.bodyTimeoutMs, 'agent.limits.bodyTimeoutMs', d.limits.bodyTimeoutMs, 100, 10_000),
    idleTimeoutMs: v.integer(lim.idleTimeoutMs, 'agent.limits.idleTimeoutMs', d.limits.idleTimeoutMs, 100, 600_000),
    bodyBytesInFlight: v.integer(lim.bodyBytesInFlight, 'agent.limits.bodyBytesInFlight', d.limits.bodyBytesInFlight, 1024, 1024 * 1024 * 1024),
  };
  const logLevel = v.string(a.logLevel, 'agent.logLevel', d.logLevel);
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'silent'].includes(logLevel)) v.fail('agent.logLevel', 'one of fatal, error, warn, info, debug, silent', logLevel);
  return {
    listen,
    tokensFile: v.path(a.tokensFile, 'agent.tokensFile', d.tokensFile),
    tls,
    documentRoot,
    batchWindowMs: v.integer(a.batchWindowMs, 'agent.batchWindowMs', d.batchWindowMs, 0, 60_000),
    rateLimit: { perSecond: v.integer(rl.perSecond, 'agent.rateLimit.perSecond', d.rateLimit.perSecond, 1, 1_000_000), burst: v.integer(rl.burst, 'agent.rateLimit.burst', d.rateLimit.burst, 1, 10_000_000), readPerSecond: v.integer(rl.readPerSecond, 'agent.rateLimit.readPerSecond', d.rateLimit.readPerSecond, 1, 1_000_000), readBurst: v.integer(rl.readBurst, 'agent.rateLimit.readBurst', d.rateLimit.readBurst, 1, 10_000_000) },
    maxQueued: v.integer(a.maxQueued, 'agent.maxQueued', d.maxQueued, 1, 10_000_000),
    maxBodyBytes: v.integer(a.maxBodyBytes, 'agent.maxBodyBytes', d.maxBodyBytes, 1024, 64 * 1024 * 1024),
    limits,
    syncTimeoutMs: v.integer(a.syncTimeoutMs, 'agent.syncTimeoutMs', d.syncTimeoutMs, 1000, 3_600_000),
    stopTimeoutMs: v.integer(a.stopTimeoutMs, 'agent.stopTimeoutMs', d.stopTimeoutMs, 0, 3_600_000),
    logLevel: logLevel as AgentConfig['logLevel'],
  };
}

function normalizeForConfig(value: unknown, key: string, v: Validator, allowWildcard: boolean): string {
  try {
    return normalizeDomain(value, { allowWildcard });
  } catch (error) {
    const wildcard = typeof value === 'string' && value.startsWith('*.') && !allowWildcard;
    return v.fail(key, wildcard ? 'a plain domain name: wildcards need "challenge": "dns-01" on the site (or in defaults)' : `a domain name (${(error as AutoSslError).message})`, value);
  }
}

function challengeOf(value: unknown, key: string, v: Validator): 'http-01' | 'dns-01' | undefined {
  if (value === undefined) return undefined;
  if (value !== 'http-01' && value !== 'dns-01') v.fail(key, '"http-01" or "dns-01"', value);
  return value as 'http-01' | 'dns-01';
}

function resolvePluginPath(spec: string, baseDir: string): string {
  return spec.startsWith('.') || spec.startsWith('/') ? path.resolve(baseDir, spec) : spec; // "autossl:webhook" and package names as given
}

/** certbot's --cert-name as autossl accepts it (config, `renew --cert-name`): letters, digits, ".", "-", "_"; no "..". */
export function isCertName(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) && !name.includes('..') && name.length <= 200;
}

/** The configured site of a domain, or a bare one (the domain alone, the defaults). */
export function siteFor(config: AutoSslConfig, domain: string): SiteConfig {
  return config.sites.find((s) => s.domain === domain) ?? { domain, aliases: [] };
}

/** The site whose names include `name` (the domain or one of its aliases), if any. */
export function siteOfName(config: AutoSslConfig, name: string): SiteConfig | undefined {
  return config.sites.find((s) => s.domain === name || s.aliases.includes(name));
}

export { normalizeDomains };
