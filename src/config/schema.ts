/**
 * The configuration: the schema of keys.ts filled with its defaults and checked by Ajv; then what JSON Schema
 * cannot say (paths resolved against the config file's directory, domain names normalised, a name in one site only,
 * a non-loopback agent only over TLS). Every error is CONFIG_INVALID naming the key and what it takes.
 */
import path from 'node:path';
import type { ErrorObject, ValidateFunction } from 'ajv';
import type { TSchema } from '@sinclair/typebox';
import { AutoSslError, quote } from '../errors.js';
import { normalizeDomain, normalizeDomains } from '../domain.js';
import { nginxValueProblem } from '../nginx/value.js';
import { ConfigSchema, RUNTIME_DEFAULT, annotations, type RawConfig, type SiteConfig } from './keys.js';
import { FORMATS, parseListenAddress } from './formats.js';
import generatedValidator from './validate-config.generated.js';

export type { SiteConfig, AgentConfig, AgentLimits } from './keys.js';
export { parseListenAddress };

export interface PluginSpec {
  /** A package name or a file path (relative to the config file). */
  module: string;
  options: Record<string, unknown>;
}

/**
 * Where autossl keeps its state: "sqlite" (state.db under stateDir), PostgreSQL (a connection string, or "$AUTOSSL_STORE_POSTGRES" to read
 * AUTOSSL_STORE_POSTGRES when the store opens), or a module whose default export is a StoreFactory.
 */
export type StoreSpec = 'sqlite' | { postgres: string } | PluginSpec;

export type AutoSslConfig = Omit<RawConfig, 'plugins' | 'store' | 'issuer'> & {
  /** The file the config was read from, if any. */
  filepath?: string;
  /** Discovered on this server with no config file (the CLI's zero-config runs): the hooks it installs run so too. */
  zeroConfig?: boolean;
  /** Where relative paths and plugin packages are looked up: the config file's directory. */
  configDir: string;
  plugins: PluginSpec[];
  /** The Store (and its Locker); "sqlite" when absent. */
  store?: StoreSpec;
  /** Who obtains certificates: the built-in certbot, or a module (see src/issuer/issuer.ts). */
  issuer: 'certbot' | PluginSpec;
};

type Json = Record<string, unknown>;
type Node = TSchema & { properties?: Record<string, Node>; items?: Node | Node[]; type?: string | string[]; patternProperties?: Record<string, Node> };

/** A copy of `value` with every absent key that has a default filled (only objects the schema describes are copied). */
function withDefaults(schema: Node, value: unknown): unknown {
  const a = annotations(schema);
  if (value === undefined || (value === null && schema.type === 'string')) {
    // (a YAML "email:" with nothing after it is null: absent, as it always was for a string)
    if (a[RUNTIME_DEFAULT]) return a[RUNTIME_DEFAULT]();
    if (schema.default === undefined) return undefined;
    value = structuredClone(schema.default);
  }
  if (schema.type === 'object' && schema.properties && isObject(value)) {
    const out: Json = { ...value };
    for (const [key, sub] of Object.entries(schema.properties)) {
      const filled = withDefaults(sub, value[key]);
      if (filled === undefined) delete out[key];
      else Object.defineProperty(out, key, { value: filled, enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  if (schema.type === 'array' && schema.items && !Array.isArray(schema.items) && schema.items.type === 'object' && Array.isArray(value)) {
    const items = schema.items;
    return value.map((v) => withDefaults(items, v));
  }
  return value;
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Ajv's code for ConfigSchema, generated ahead (npm run config:validator; compiling it at each start cost a CLI run
 * ~0.15 s of CPU). Options: verbose, so each error carries the schema node it failed in and the value (what the
 * message names); strict; allowUnionTypes; allErrors off.
 */
function validator(): ValidateFunction {
  return generatedValidator as unknown as ValidateFunction;
}

/** "sites[0].aliases[1]" for the instance path /sites/0/aliases/1 of `root`. */
function keyOf(root: unknown, instancePath: string, last?: string): string {
  let key = '';
  let node = root;
  const parts = instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
  if (last !== undefined) parts.push(last);
  for (const part of parts) {
    key += Array.isArray(node) ? `[${part}]` : `${key ? '.' : ''}${part}`;
    node = isObject(node) || Array.isArray(node) ? (node as Json)[part] : undefined;
  }
  return key;
}

function choices(values: readonly unknown[]): string {
  return values.length === 2 ? values.map((v) => JSON.stringify(v)).join(' or ') : `one of ${values.join(', ')}`;
}

/** What a schema node takes, in words ("an integer from 1 to 65535"). */
export function expectedOf(schema: Node, keyword = 'type'): string {
  const a = annotations(schema);
  if (keyword === 'format' && typeof schema.format === 'string' && !a.expected) return FORMATS[schema.format]?.expected ?? `a ${schema.format}`;
  // (a list where a string belongs is "a non-empty string" whatever the string's own rule: the value is not one at all)
  if (a.expected && !(keyword === 'type' && schema.type === 'string')) return a.expected;
  if (Array.isArray(schema.enum)) return choices(schema.enum);
  switch (schema.type) {
    case 'integer':
      return `an integer from ${schema.minimum} to ${schema.maximum}`;
    case 'number':
      return `a number from ${schema.minimum ?? schema.exclusiveMinimum} to ${schema.maximum ?? schema.exclusiveMaximum}`;
    case 'boolean':
      return 'true or false';
    case 'string':
      return 'a non-empty string';
    case 'array':
      return !Array.isArray(schema.items) && schema.items?.type === 'string' ? 'a list of strings' : 'a list';
    default:
      return 'an object';
  }
}

function fail(source: string, key: string, expected: string, got: unknown): never {
  // quote() never stringifies a whole object: a hostile value (an alias bomb) cannot blow up the message
  // a key is the file's text too ({"A\nB": ...}): escaped as JSON escapes it, so it cannot break the line
  throw new AutoSslError('CONFIG_INVALID', `${source}: "${JSON.stringify(key).slice(1, -1)}" must be ${expected}, got ${quote(got, 80)}.`, {
    details: { key },
  });
}

function jsonType(value: unknown): string {
  return Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value === 'number' ? 'number' : typeof value;
}

/**
 * The error to report of a failed union: the one of the only branch of the value's JSON type ({"store": {"pool": 3}}
 * names store.pool), else the union's own (what it takes, in its `expected`).
 */
function unionBranch(errors: ErrorObject[], union: ErrorObject): ErrorObject {
  let branches = (union.schema as Node[])
    .map((b, i) => ({ b, i }))
    .filter(({ b }) => b.type === jsonType(union.data) || (b.type === 'integer' && typeof union.data === 'number'));
  // several object branches ({ module, options } or { postgres }): the one that knows a key of the value
  if (branches.length > 1 && isObject(union.data))
    branches = branches.filter(({ b }) => Object.keys(union.data as Json).some((k) => b.properties?.[k] !== undefined));
  if (branches.length !== 1) return union;
  const prefix = `${union.schemaPath}/${branches[0]!.i}/`;
  const inner = errors.filter((e) => e !== union && e.schemaPath.startsWith(prefix));
  const last = inner[inner.length - 1];
  if (!last) return union;
  const chosen = last.keyword === 'anyOf' ? unionBranch(inner, last) : inner[0]!;
  // the value itself is wrong (not a key inside it): the union says best what it takes
  return chosen.instancePath === union.instancePath && chosen.keyword !== 'additionalProperties' && chosen.keyword !== 'required' ? union : chosen;
}

/** Ajv's error as autossl's: the key, what it takes, what it got. */
function refusal(source: string, root: unknown, errors: ErrorObject[]): never {
  // with allErrors off, Ajv stops at the first failure: the last error is it (a failed union comes after its branches)
  let e = errors[errors.length - 1]!;
  if (e.keyword === 'anyOf') e = unionBranch(errors, e);
  const parent = e.parentSchema as Node;
  if (e.keyword === 'additionalProperties') {
    const extra = (e.params as { additionalProperty: string }).additionalProperty;
    return fail(source, keyOf(root, e.instancePath, extra), `one of the known keys (${Object.keys(parent.properties ?? {}).join(', ')})`, extra);
  }
  if (e.keyword === 'propertyNames') {
    const name = (e.params as { propertyName: string }).propertyName;
    return fail(source, keyOf(root, e.instancePath, name), expectedOf(parent, 'propertyNames'), name);
  }
  if (e.keyword === 'required') {
    const missing = (e.params as { missingProperty: string }).missingProperty;
    return fail(source, keyOf(root, e.instancePath, missing), expectedOf(parent.properties![missing]!, 'required'), undefined);
  }
  return fail(source, keyOf(root, e.instancePath) || '(top level)', expectedOf(parent, e.keyword), e.data);
}

const TOP = Object.keys(ConfigSchema.properties);

export function validateConfig(raw: unknown, source = 'config', baseDir = process.cwd()): AutoSslConfig {
  if (raw === undefined) raw = {};
  if (!isObject(raw)) return fail(source, '(top level)', 'an object', raw);
  const keys = Object.keys(raw);
  // (a misspelt key, {"cerbot": ...}, is still named below: only keys no config would have, or many of them, are not)
  if (keys.length && !keys.some((k) => TOP.includes(k)) && (keys.length > 2 || keys.some((k) => !/^[A-Za-z][A-Za-z0-9_]*$/.test(k)))) {
    // not an autossl config at all (a wrong --config, /etc/shadow): its content is not echoed into terminals and logs
    throw new AutoSslError(
      'CONFIG_INVALID',
      `${source} is not an autossl config: none of its ${keys.length} top-level key${keys.length > 1 ? 's is' : ' is'} one autossl knows.`,
      { hint: `Point --config at the autossl config (autossl.config.json or .yaml; "autossl init" writes one). Known keys: ${TOP.join(', ')}.` },
    );
  }
  const filled = withDefaults(ConfigSchema, raw) as Json;
  const check = validator();
  if (!check(filled)) refusal(source, filled, check.errors ?? []);
  const config = resolvePaths(ConfigSchema, filled, '', source, baseDir) as RawConfig;
  // the challenge directory follows a configured stateDir unless it is configured itself
  if (raw.challengeDir === undefined && raw.stateDir !== undefined) config.challengeDir = path.join(config.stateDir, 'acme-challenge');
  const plugins = (filled.plugins as Array<string | [string, Json?]>).map((p): PluginSpec =>
    typeof p === 'string' ? { module: resolvePluginPath(p, baseDir), options: {} } : { module: resolvePluginPath(p[0], baseDir), options: p[1] ?? {} },
  );
  const sites = config.sites.map((s, i) => normalizeSite(s, `sites[${i}]`, source, config.defaults.challenge));
  const seen = new Map<string, string>();
  for (const s of sites) {
    for (const name of [s.domain, ...s.aliases]) {
      const other = seen.get(name);
      if (other !== undefined) fail(source, 'sites', `a list naming each domain once (${name} is in the site ${other} already)`, s.domain);
      seen.set(name, s.domain);
    }
  }
  checkAgent(config.agent, source);
  const { store: rawStore, issuer: rawIssuer, ...rest } = config;
  const store = storeOf(rawStore, baseDir);
  const issuer =
    rawIssuer === undefined || rawIssuer === 'certbot' ? 'certbot' : { module: path.resolve(baseDir, rawIssuer.module), options: rawIssuer.options ?? {} };
  return {
    ...rest,
    filepath: path.isAbsolute(source) ? source : undefined,
    configDir: baseDir,
    plugins,
    ...(store === 'sqlite' ? {} : { store }),
    issuer,
    sites,
  };
}

/** Every string whose schema has a pathKind, resolved against the config's directory; nginx's paths checked. */
function resolvePaths(schema: Node, value: unknown, key: string, source: string, baseDir: string): unknown {
  const kind = annotations(schema).pathKind;
  if (kind && typeof value === 'string') {
    if (kind === 'command' && !value.includes('/')) return value; // a bare name is looked up on PATH
    const resolved = path.resolve(baseDir, value);
    // the value goes into nginx files: the writer's own rule, checked when the config loads, before any order
    // (nginx expands "$" even inside quotes, "/srv/$host" would be a path chosen by each request's Host header)
    const problem = kind === 'nginx' ? nginxValueProblem(resolved) : null;
    if (problem)
      fail(
        source,
        key,
        `a path nginx reads as written (${problem}): no "$", whitespace, quotes, ";", "{", "}", "#", backslash, control or bidi characters`,
        value,
      );
    return resolved;
  }
  if (schema.properties && isObject(value)) {
    const out: Json = { ...value };
    for (const [k, sub] of Object.entries(schema.properties))
      if (value[k] !== undefined) out[k] = resolvePaths(sub, value[k], key ? `${key}.${k}` : k, source, baseDir);
    return out;
  }
  if (schema.items && !Array.isArray(schema.items) && Array.isArray(value)) {
    const items = schema.items;
    return value.map((v, i) => resolvePaths(items, v, `${key}[${i}]`, source, baseDir));
  }
  return value;
}

function normalizeSite(site: SiteConfig, key: string, source: string, defaultChallenge: SiteConfig['challenge']): SiteConfig {
  const dns01 = (site.challenge ?? defaultChallenge) === 'dns-01';
  const domain = normalizeForConfig(site.domain, `${key}.domain`, source, dns01);
  const aliases = site.aliases.map((a, j) => normalizeForConfig(a, `${key}.aliases[${j}]`, source, dns01));
  return { ...site, domain, aliases: aliases.filter((a) => a !== domain) };
}

function normalizeForConfig(value: unknown, key: string, source: string, allowWildcard: boolean): string {
  try {
    return normalizeDomain(value, { allowWildcard });
  } catch (error) {
    const wildcard = typeof value === 'string' && value.startsWith('*.') && !allowWildcard;
    return fail(
      source,
      key,
      wildcard
        ? 'a plain domain name: wildcards need "challenge": "dns-01" on the site (or in defaults)'
        : `a domain name (${(error as AutoSslError).message})`,
      value,
    );
  }
}

/** What the agent's keys mean together: TLS off loopback, the placeholders of the document root template. */
function checkAgent(agent: RawConfig['agent'], source: string): void {
  if (!parseListenAddress(agent.listen)!.loopback && !agent.tls)
    fail(
      source,
      'agent.listen',
      'a loopback address (127.0.0.1, [::1]) unless "agent.tls" is set: a panel on another host must reach the agent over HTTPS, or its signed requests (and certificate keys sent with /ssl/upload) cross the network in the clear',
      agent.listen,
    );
  const template = agent.documentRoot;
  if (template === undefined) return;
  if (/\{(?!username\}|domain\})[^}]*\}/.test(template)) fail(source, 'agent.documentRoot', 'a path with only {username} and {domain} placeholders', template);
  const problem = nginxValueProblem(template.replaceAll('{username}', 'user').replaceAll('{domain}', 'example.com'));
  if (problem) fail(source, 'agent.documentRoot', `a path template nginx reads as written (${problem})`, template);
}

/** `store`: "sqlite", a module's path or package name, or { module, options } (loaded as plugins are). */
function storeOf(value: RawConfig['store'], baseDir: string): StoreSpec {
  if (value === undefined || value === 'sqlite') return 'sqlite';
  if (value === 'postgres') return { postgres: '$AUTOSSL_STORE_POSTGRES' };
  if (typeof value === 'object' && 'postgres' in value) return { postgres: value.postgres };
  if (typeof value === 'string') return { module: resolvePluginPath(value, baseDir), options: {} };
  return value.module === 'sqlite' && value.options === undefined
    ? 'sqlite'
    : { module: resolvePluginPath(value.module, baseDir), options: value.options ?? {} };
}

function resolvePluginPath(spec: string, baseDir: string): string {
  return spec.startsWith('.') || spec.startsWith('/') ? path.resolve(baseDir, spec) : spec; // "autossl:webhook" and package names as given
}

/** Every default, as a config with no file gets them. */
export const DEFAULT_CONFIG: AutoSslConfig = {
  ...(withDefaults(ConfigSchema, {}) as Omit<RawConfig, 'store' | 'issuer'>),
  configDir: process.cwd(),
  plugins: [],
  issuer: 'certbot',
};

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
