/**
 * The HTTPS edits, planned as splices on the files of a loaded NginxTree. Each edit is idempotent: planning
 * it again on its own output yields no splice. Nothing here writes a file; see transaction.ts for that.
 *
 * Edits arrive as a `VhostEdit`: two nginx-conf trees (`https`, `http`) holding the directives and blocks to
 * ensure in the TLS server and in the port-80 server. Plugins change those trees through nginx-conf's API on the
 * `vhost` hook; this module decides where each statement goes in the user's file and what "already there"
 * means for it (see `ensureKey`).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import nginxConf from 'nginx-conf';
import type { NginxConfItem } from 'nginx-conf/dist/src/conf.js';
import { AutoSslError } from '../errors.js';
import { normalizeDomain } from '../domain.js';
import { argValues, childDirectives, parseConfig, type Directive, type ParsedConfig } from './parse.js';
import { isPlainHttp, listenAddress, optionName, parseListen, SOCKET_OPTIONS, type Listen } from './listen.js';
import { indentOf, indentUnit, insertAfter, insertAtBlockStart, insertBlockAfter, removeStatement, renderStatements, replaceArgs, replaceStatement, spliceAndVerify, type NewStatement, type Splice } from './splice.js';
import { ACME_PREFIX, challengeRouting, directiveLocation, effectiveParent, parseLocation, routeEnv, routeRequest, type Request, type Route } from './routing.js';
import { answeredNames, covers, uncovered } from './names.js';
import { defaultServerAnswers } from './default-server.js';
import { aliasTokenDir, webrootForAlias } from './alias-webroot.js';
import { readConfigFile, type NginxTree, type ServerBlock } from './tree.js';
import { serverView, type ServerView } from './view.js';
import { nginxValue, valueFromFile } from './value.js';
import { quote } from '../errors.js';
import { readCertificateQuick } from '../certbot/lineage.js';
import type { DomainContext } from '../pipeline/context.js';

const { NginxConfFile } = nginxConf;

/** How a directive is told apart from others of its name when deciding whether it is "already there". */
export type IdentityRule = 'name' | 'first-arg';

/** The `vhost` hook's payload. */
export interface VhostEdit {
  /** The certificate's names; the first is the main one. */
  names: string[];
  /** Directives and blocks to ensure in the server that answers TLS for the names. */
  https: NginxConfItem;
  /** Directives and blocks to ensure in the server that answers plain HTTP on port 80. */
  http: NginxConfItem;
  /** Redirect plain HTTP to HTTPS (the ACME challenge stays reachable over HTTP). */
  redirect: boolean;
  /** The server blocks as they are now, read-only: the TLS server and the port-80 server of the names. */
  current: { https: readonly ServerView[]; http: readonly ServerView[] };
  /** Takes directives out of the TLS (`https`) or port-80 (`http`) server: by name, or only the one whose first argument is `firstArg`. */
  remove(where: 'https' | 'http', name: string, firstArg?: string): void;
  removals: Array<{ where: 'https' | 'http'; name: string; firstArg?: string }>;
  /**
   * Overrides the rule deciding when a directive of this name is "already there" (see IDENTITY in edit.ts):
   * `first-arg` for a directive a block may hold once per key, `name` for one it holds once.
   */
  keyBy(name: string, rule: IdentityRule): void;
  identity: Map<string, IdentityRule>;
  /** The vhost file the site's config names: only server blocks in it are edited. */
  vhostFile?: string;
  /** The key type of the certificate being installed (one block may hold an RSA and an ECDSA pair). */
  keyType?: string;
  /** The HTTP-01 webroot: a redirect to HTTPS keeps the challenge served there, where the CA's request lands. */
  webroot?: string;
}

/** An empty `server { }` tree to fill through nginx-conf's API (`_add(name, value)`). */
export function newServerTree(): NginxConfItem {
  let item: NginxConfItem | undefined;
  NginxConfFile.createFromSource('server {\n}\n', (err, conf) => {
    if (err || !conf) throw err ?? new Error('nginx-conf did not create a tree');
    item = conf.nginx.server![0]!;
  });
  return item!;
}

export function newVhostEdit(names: string[], redirect = false): VhostEdit {
  const removals: VhostEdit['removals'] = [];
  const identity = new Map<string, IdentityRule>();
  return {
    names,
    https: newServerTree(),
    http: newServerTree(),
    redirect,
    current: { https: [], http: [] },
    removals,
    remove(where, name, firstArg) {
      if (where !== 'https' && where !== 'http') throw new AutoSslError('PLUGIN_ERROR', `edit.remove: "where" must be "https" or "http", got ${quote(where)}.`);
      if (typeof name !== 'string' || !/^[a-z_][a-z0-9_]*$/.test(name)) throw new AutoSslError('PLUGIN_ERROR', `edit.remove: ${quote(name)} is not a directive name.`);
      if (firstArg !== undefined && (typeof firstArg !== 'string' || /[\u0000-\u001f]/.test(firstArg))) throw new AutoSslError('PLUGIN_ERROR', `edit.remove: the first argument must be a plain string, got ${quote(firstArg)}.`);
      removals.push({ where, name, ...(firstArg === undefined ? {} : { firstArg }) });
    },
    identity,
    keyBy(name, rule) {
      if (rule !== 'name' && rule !== 'first-arg') throw new AutoSslError('PLUGIN_ERROR', `edit.keyBy: the rule must be "name" or "first-arg", got ${quote(rule)}.`);
      identity.set(name, rule);
    },
  };
}

/** The webroot certbot renews a lineage with (`webroot_path` in its renewal config), if it uses one. */
function renewalWebroot(renewalConf: string): string | undefined {
  if (!renewalConf) return undefined;
  try {
    const m = /^webroot_path\s*=\s*([^,\n]+)/m.exec(fs.readFileSync(renewalConf, 'utf8'));
    return m?.[1]?.trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The `vhost` hook's payload for a domain run: what to ensure, and a read-only view of what is there now. */
export function vhostEditFor(ctx: DomainContext): VhostEdit {
  const edit = newVhostEdit([...ctx.plan.names], ctx.plan.redirect);
  edit.vhostFile = ctx.plan.site.vhost;
  edit.keyType = ctx.certificate?.keyType ?? ctx.services.config.certbot.keyType;
  edit.webroot = ctx.challenge?.type === 'http-01' ? ctx.challenge.webroot : ctx.lineage ? renewalWebroot(ctx.lineage.renewalConf) : undefined;
  try {
    const tree = ctx.services.loadTree(ctx.dryRun ? ctx.overlay : undefined);
    const located = locateServers(tree, installTargets(tree, edit.names), { vhostFile: edit.vhostFile });
    const views = (m: Map<string, ServerBlock | null>): ServerView[] => [...new Set([...m.values()].filter((s): s is ServerBlock => s !== null))].map(serverView);
    edit.current = { https: views(located.https), http: views(located.http) };
  } catch {
    // the edit itself reports what cannot be found, with the error it deserves
  }
  return edit;
}

const ITEM_API = new Set(['toString']);

/**
 * Reads an nginx-conf tree back into statements, validating every value with our own nginx lexer; each word then
 * passes the writer's gate (nginxValue), which refuses control and bidi characters and writes the word's UTF-8 bytes.
 */
export function statementsOf(item: NginxConfItem, owner = 'vhost edit'): NewStatement[] {
  const out: NewStatement[] = [];
  for (const key of Object.keys(item)) {
    if (key.startsWith('_') || ITEM_API.has(key)) continue;
    const list = item[key];
    if (!Array.isArray(list)) continue;
    for (const child of list) {
      const value = child._value === undefined || child._value === null ? '' : String(child._value);
      if (value !== '') nginxValue(value, { what: `value of "${child._name}" (${owner})`, kind: 'words', variables: true, code: 'PLUGIN_ERROR' });
      let parsed;
      try {
        parsed = parseConfig(`${child._name} ${value};`, owner);
      } catch {
        throw new AutoSslError('PLUGIN_ERROR', `${owner}: the value ${JSON.stringify(value)} of "${child._name}" is not valid nginx syntax.`);
      }
      const directive = parsed.children[0];
      if (parsed.children.length !== 1 || directive?.kind !== 'directive' || directive.block || !/^[a-z_][a-z0-9_]*$/.test(child._name)) {
        throw new AutoSslError('PLUGIN_ERROR', `${owner}: "${child._name} ${value}" must be exactly one directive (no ";", "{" or "}" in a value).`);
      }
      const hasChildren = Object.keys(child).some((k) => !k.startsWith('_') && !ITEM_API.has(k) && Array.isArray(child[k]));
      const statement: NewStatement = { name: child._name, args: directive.words.slice(1).map((w) => nginxValue(w.raw, { what: `value of "${child._name}" (${owner})`, kind: 'words', variables: true, code: 'PLUGIN_ERROR' })) };
      if (hasChildren || child.__isBlock || child._name === 'location') statement.children = statementsOf(child, owner);
      out.push(statement);
    }
  }
  return out;
}

// -------------------------------------------------------------------------------------------------------------

export interface FileEdit {
  file: string;
  before: string;
  after: string;
  changes: string[];
}

export interface EditPlan {
  edits: FileEdit[];
  /** What the user should know about the edit (names the certificate leaves out...). */
  notes: string[];
  /** Where to check over TLS that the certificate is served: host, port and the name to send as SNI. */
  tlsEndpoints: Array<{ host: string; port: number; servername: string }>;
}

export interface HttpsOptions {
  /** nginx version as [major, minor, patch], to choose `listen ... http2` (< 1.25.1) or `http2 on;`. */
  nginxVersion: [number, number, number];
  /** The TLS port when the edit's `listen` does not name one. */
  httpsPort?: number;
  /**
   * Certificates kept apart (uploaded ones, under these directories): a wildcard spread over the blocks of the names
   * it covers leaves a block serving one of them alone.
   */
  keepCertificatesUnder?: readonly string[];
}

/** The first readable-looking certificate path a block's own ssl_certificate names (absolute), or null. */
export function servedCertificatePath(tree: NginxTree, block: ServerBlock): string | null {
  for (const d of childDirectives(block.directive, 'ssl_certificate')) {
    const p = fileRoot(argValues(d)[0]); // the file's bytes as the path they name
    if (p && !p.includes('$')) return path.isAbsolute(p) ? p : path.join(tree.prefix, p);
  }
  return null;
}

/**
 * The names a certificate is installed on. A wildcard that no block answers literally (the Opterius panel's
 * "wildcard for example.com": `*.example.com` with one vhost per subdomain) stands for every name a block answers
 * exactly that it covers, except blocks serving a certificate kept apart (an upload stays where it is).
 */
export function installTargets(tree: NginxTree, names: readonly string[], keepUnder: readonly string[] = []): string[] {
  const out: string[] = [];
  const kept = (block: ServerBlock): boolean => {
    const p = servedCertificatePath(tree, block);
    return p !== null && keepUnder.some((dir) => p.startsWith(path.resolve(dir) + path.sep));
  };
  for (const n of names) {
    if (!n.startsWith('*.')) {
      if (!out.includes(n)) out.push(n);
      continue;
    }
    const found = tree.findServers(n);
    if (found.http.length || found.https.length) {
      out.push(n);
      continue;
    }
    for (const server of tree.servers) {
      for (const raw of server.names) {
        let name: string;
        try {
          name = normalizeDomain(raw);
        } catch {
          continue;
        }
        if (out.includes(name) || names.includes(name) || !covers([n], name)) continue;
        const located = tree.findServers(name);
        if ((located.https[0] ?? located.http[0]) !== server || kept(server)) continue;
        out.push(name);
      }
    }
  }
  return out;
}

/** Groups splices by file, splices and verifies each file. */
export class PlanBuilder {
  private readonly splices = new Map<string, { config: ParsedConfig; list: Splice[] }>();
  add(config: ParsedConfig, splice: Splice | null): void {
    if (!splice) return;
    const entry = this.splices.get(config.file) ?? { config, list: [] };
    entry.list.push(splice);
    this.splices.set(config.file, entry);
  }
  build(): FileEdit[] {
    const edits: FileEdit[] = [];
    for (const { config, list } of this.splices.values()) {
      const after = spliceAndVerify(config, list);
      if (after !== config.source) edits.push({ file: config.file, before: config.source, after, changes: list.map((s) => s.why) });
    }
    return edits;
  }
}

export function serverLabel(server: ServerBlock): string {
  const { line } = lineOf(server.config.source, server.directive.start);
  return `${server.file}:${line}`;
}

function lineOf(source: string, offset: number): { line: number } {
  let line = 1;
  for (let i = 0; i < offset; i++) if (source.charCodeAt(i) === 10) line++;
  return { line };
}

export interface LocateOptions {
  /** Only server blocks in this file (the site's configured "vhost") are candidates. */
  vhostFile?: string;
}

/** Finds the server blocks for the names; refuses names nginx does not serve and ambiguous matches. */
export function locateServers(tree: NginxTree, names: readonly string[], options: LocateOptions = {}): { http: Map<string, ServerBlock | null>; https: Map<string, ServerBlock | null> } {
  for (const n of names) normalizeDomain(n, { allowWildcard: true }); // a domain never reaches a config line unvalidated
  if (tree.loop) throw tree.loop; // nginx cannot load it: refused while planning, before any order or nginx -t
  const http = new Map<string, ServerBlock | null>();
  const https = new Map<string, ServerBlock | null>();
  const vhostFile = options.vhostFile ? path.resolve(options.vhostFile) : undefined;
  const pick = (name: string, found: ServerBlock[], where: string): ServerBlock | null => {
    let candidates = found;
    if (vhostFile && found.length) {
      candidates = found.filter((s) => path.resolve(s.file) === vhostFile);
      if (!candidates.length) {
        throw new AutoSslError('VHOST_NOT_FOUND', `${name} is served ${where} by ${found.map(serverLabel).join(', ')}, not by a block in the site's configured vhost ${vhostFile}.`, {
          hint: `Put ${name} in a server_name of ${vhostFile}, or fix the site's "vhost" in the config.`,
        });
      }
    }
    if (candidates.length > 1) {
      throw new AutoSslError('VHOST_AMBIGUOUS', `${name} is served ${where} by ${candidates.length} server blocks equally: ${candidates.map(serverLabel).join(', ')}.`);
    }
    return candidates[0] ?? null;
  };
  for (const name of names) {
    const found = tree.findServers(name);
    if (found.http.length === 0 && found.https.length === 0) {
      if (tree.errors.length) {
        // the name may well be in a file autossl could not read: never guess, say where the syntax breaks
        throw new AutoSslError('NGINX_PARSE_ERROR', `${name} was not found, and autossl cannot read ${tree.errors.map((e) => e.message).join('; ')}.`, { details: tree.errors[0]!.details });
      }
      throw new AutoSslError('VHOST_NOT_FOUND', `No server block in ${tree.mainFile} or its includes has server_name ${name}.`);
    }
    http.set(name, pick(name, found.http, 'on port 80'));
    https.set(name, pick(name, found.https, 'over TLS'));
  }
  return { http, https };
}

export function ensureBlockEditable(tree: NginxTree, server: ServerBlock): void {
  const broken = tree.errors.find((e) => (e.details.file as string | undefined) === server.file);
  if (broken) throw broken;
}

/**
 * Directives nginx lets one block hold several times, once per key (their first argument: a header, a parameter, a
 * variable, a status code).
 */
export const REPEATABLE_BY_KEY: readonly string[] = [
  'add_header', 'add_trailer', 'more_set_headers', 'more_clear_headers', 'proxy_set_header', 'proxy_hide_header', 'proxy_pass_header',
  'fastcgi_param', 'fastcgi_hide_header', 'uwsgi_param', 'scgi_param', 'grpc_set_header', 'set', 'map', 'include', 'error_page',
  'ssl_conf_command', 'sub_filter', 'env', 'allow', 'deny',
];

/** The values nginx sees for raw argument text ("a" and a are the same argument). */
function valuesOf(args: readonly string[]): string[] {
  if (!args.length) return [];
  try {
    return parseConfig(`x ${args.join(' ')};`).children.flatMap((n) => (n.kind === 'directive' ? n.words.slice(1).map((w) => w.value) : []));
  } catch {
    return [...args];
  }
}

/** The key type (rsa / ecdsa) of the certificate a path holds, or null when it cannot be read. */
export function certificateKeyType(file: string): string | null {
  try {
    return readCertificateQuick(file).keyType ?? null;
  } catch {
    return null;
  }
}

/**
 * When a statement is "already there": two statements with the same identity are the same setting, so an existing
 * one with other arguments is replaced and a missing one is added. The rule, in order:
 *  1. `location`: the same modifier and path;
 *  2. `ssl_certificate` / `ssl_certificate_key`: a block may hold one pair per key type (RSA and ECDSA); the pair of
 *     the new certificate's key type is the same setting, and a block with a single pair has just that one;
 *  3. a directive the edit names with `keyBy(name, rule)`: that rule;
 *  4. a directive in REPEATABLE_BY_KEY, or one the block already holds more than once: the same name and first
 *     argument (case-insensitive);
 *  5. any other directive: the same name (nginx allows it once per block).
 */
class Identities {
  private readonly counts = new Map<string, number>();
  private readonly certTypes: Array<string | null>;

  constructor(
    private readonly server: ServerBlock,
    private readonly rules: ReadonlyMap<string, IdentityRule>,
    private readonly keyType: string | undefined,
    private readonly prefix: string,
  ) {
    for (const d of childDirectives(server.directive)) this.counts.set(d.name, (this.counts.get(d.name) ?? 0) + 1);
    this.certTypes = childDirectives(server.directive, 'ssl_certificate').map((d) => {
      const p = fileRoot(argValues(d)[0]);
      return p && !p.includes('$') ? certificateKeyType(path.isAbsolute(p) ? p : path.join(this.prefix, p)) : null;
    });
  }

  private certSlot(type: string | null | undefined): string {
    // one pair: it is the one to re-point, whatever its type (also a stale path whose file is gone)
    if (this.certTypes.length <= 1) return 'pair';
    return type ?? 'unknown';
  }

  of(name: string, args: readonly string[], existing?: Directive): string {
    if (name === 'location') {
      const values = valuesOf(args);
      const spec = parseLocation({ kind: 'directive', name, words: [{ raw: name, value: name, start: 0, end: 0, quoted: false }, ...values.map((v) => ({ raw: v, value: v, start: 0, end: 0, quoted: false }))], start: 0, end: 0, innerComments: [], parent: null });
      return spec ? `location ${spec.modifier} ${spec.path}` : `location ${values.join(' ')}`;
    }
    if (name === 'ssl_certificate' || name === 'ssl_certificate_key') {
      if (!existing) return `${name} ${this.certSlot(this.keyType)}`;
      const index = childDirectives(this.server.directive, name).indexOf(existing);
      return `${name} ${this.certSlot(this.certTypes[index])}`;
    }
    const rule = this.rules.get(name) ?? (REPEATABLE_BY_KEY.includes(name) || (this.counts.get(name) ?? 0) > 1 ? 'first-arg' : 'name');
    if (rule === 'name') return name;
    return `${name} ${(valuesOf(args.slice(0, 1))[0] ?? '').toLowerCase()}`;
  }
}

/** The statement after which new server-level lines read best: the last of these names present. */
function anchorFor(server: Directive, names: readonly string[]): Directive | null {
  const children = childDirectives(server);
  for (const name of names) {
    const found = children.filter((d) => d.name === name).pop();
    if (found) return found;
  }
  return null;
}

function placeStatements(builder: PlanBuilder, server: ServerBlock, statements: NewStatement[], anchorNames: readonly string[], why: string): void {
  if (statements.length === 0) return;
  const anchor = anchorFor(server.directive, anchorNames);
  builder.add(server.config, anchor ? insertAfter(server.config, anchor, statements, why) : insertAtBlockStart(server.config, server.directive, statements, why));
}

export interface EnsureRules {
  identity?: ReadonlyMap<string, IdentityRule>;
  keyType?: string;
  prefix: string;
}

/** Ensures generic statements (not listen) in a server block: add what is missing, update what differs. */
function ensureStatements(builder: PlanBuilder, server: ServerBlock, statements: readonly NewStatement[], label: string, rules: EnsureRules): void {
  const ids = new Identities(server, rules.identity ?? new Map(), rules.keyType, rules.prefix);
  const existing = new Map<string, Directive>();
  for (const d of childDirectives(server.directive)) {
    const id = ids.of(d.name, d.words.slice(1).map((w) => w.raw), d);
    if (!existing.has(id)) existing.set(id, d);
  }
  const missingLocations: NewStatement[] = [];
  const missing: NewStatement[] = [];
  for (const statement of statements) {
    if (statement.name === 'listen') continue;
    const current = existing.get(ids.of(statement.name, statement.args));
    if (!current) {
      (statement.children ? missingLocations : missing).push(statement);
      continue;
    }
    if (statement.children) continue; // a block the user already has is theirs: never rewritten
    const currentArgs = current.words.slice(1).map((w) => w.raw);
    if (valuesOf(currentArgs).join('\u0000') !== valuesOf(statement.args).join('\u0000')) {
      builder.add(server.config, replaceArgs(current, statement.args, `${label}: ${statement.name} ${currentArgs.join(' ')} -> ${statement.args.join(' ')}`));
    }
  }
  // A setting written in a snippet this server includes is shared with other servers: not ours to change.
  for (const statement of [...missing]) {
    for (const inc of server.includes) {
      const { config } = readConfigFile(inc);
      const shared = config?.children.find((n): n is Directive => n.kind === 'directive' && ids.of(n.name, n.words.slice(1).map((w) => w.raw)) === ids.of(statement.name, statement.args));
      if (!shared) continue;
      const sharedArgs = shared.words.slice(1).map((w) => w.raw).join(' ');
      if (valuesOf(shared.words.slice(1).map((w) => w.raw)).join('\u0000') !== valuesOf(statement.args).join('\u0000')) {
        throw new AutoSslError('VHOST_UNSUPPORTED', `${label}: "${statement.name}" is set in ${inc}, a file it includes (and other servers may too), to ${sharedArgs}.`, {
          hint: `Move "${statement.name}" out of ${inc} into the server block, or point it at ${statement.args.join(' ')} yourself.`,
        });
      }
      missing.splice(missing.indexOf(statement), 1);
    }
  }
  placeStatements(builder, server, missing, ['ssl_certificate_key', 'ssl_certificate', 'server_name', 'listen'], `${label}: add ${missing.map((s) => s.name).join(', ')}`);
  if (missingLocations.length) {
    const firstLocation = childDirectives(server.directive, 'location')[0];
    const why = `${label}: add ${missingLocations.map((s) => [s.name, ...s.args].join(' ')).join(', ')}`;
    const anchor = firstLocation ? null : anchorFor(server.directive, ['root', 'index', 'ssl_certificate_key', 'server_name', 'listen']);
    if (anchor) builder.add(server.config, insertAfter(server.config, anchor, missingLocations, why));
    else if (firstLocation) {
      // before the first location: after the statement preceding it, or at the start of the block
      const children = childDirectives(server.directive);
      const prev = children[children.indexOf(firstLocation) - 1];
      builder.add(server.config, prev ? insertAfter(server.config, prev, missingLocations, why) : insertAtBlockStart(server.config, server.directive, missingLocations, why));
    } else builder.add(server.config, insertAtBlockStart(server.config, server.directive, missingLocations, why));
  }
}

/** Takes out the directives a plugin asked to remove (only from the block itself: a snippet is shared). */
function applyRemovals(builder: PlanBuilder, server: ServerBlock, removals: VhostEdit['removals'], label: string): void {
  for (const r of removals) {
    for (const d of childDirectives(server.directive, r.name)) {
      if (r.firstArg !== undefined && (argValues(d)[0] ?? '').toLowerCase() !== r.firstArg.toLowerCase()) continue;
      builder.add(server.config, removeStatement(server.config, d, `${label}: remove ${r.name}${r.firstArg ? ` ${r.firstArg}` : ''}`));
    }
    for (const inc of server.includes) {
      const { config } = readConfigFile(inc);
      const shared = config?.children.some((n) => n.kind === 'directive' && n.name === r.name && (r.firstArg === undefined || (argValues(n)[0] ?? '').toLowerCase() === r.firstArg.toLowerCase()));
      if (shared) {
        throw new AutoSslError('VHOST_UNSUPPORTED', `${label}: "${r.name}" is set in ${inc}, a file it includes (other servers may too); autossl does not remove it there.`, { hint: `Remove "${r.name}" from ${inc} yourself, or move it into the server blocks that need it.` });
      }
    }
  }
}

function versionAtLeast(v: [number, number, number], want: [number, number, number]): boolean {
  for (let i = 0; i < 3; i++) if (v[i]! !== want[i]!) return v[i]! > want[i]!;
  return true;
}

/** nginx 1.25.1 made `listen ... http2` obsolete: HTTP/2 is then `http2 on;` in the server block. */
export function usesHttp2Directive(nginxVersion: [number, number, number]): boolean {
  return versionAtLeast(nginxVersion, [1, 25, 1]);
}

/**
 * Listens added by this plan, per socket: nginx allows `default_server` and the socket options once per
 * address:port across the whole config, so one added for one block takes the socket for the next.
 */
type PlannedListens = Map<string, string[]>;

/** Is any listen on this socket, anywhere in the tree or added earlier in this plan, carrying a socket option / default_server? */
function socketTaken(tree: NginxTree, planned: PlannedListens, socket: string, what: 'socket' | 'default'): boolean {
  const has = (options: readonly string[]): boolean => options.some((o) => (what === 'default' ? o === 'default_server' || o === 'default' : SOCKET_OPTIONS.includes(optionName(o))));
  return (tree.listensBySocket.get(socket) ?? []).some((l) => has(l.options)) || has(planned.get(socket) ?? []);
}

/** The `listen ... ssl` lines a plain-HTTP block needs, mirroring its own port-80 addresses (IPv6 included). */
function mirrorListens(tree: NginxTree, server: ServerBlock, port: number, http2Listen: boolean, planned: PlannedListens): { add: NewStatement[]; upgrade: Array<{ listen: Listen; args: string[] }>; sources: Listen[] } {
  const add: NewStatement[] = [];
  const upgrade: Array<{ listen: Listen; args: string[] }> = [];
  const sources = server.listens.filter(isPlainHttp);
  const mine = new Set<string>();
  if (sources.some((l) => l.implicit)) add.push({ name: 'listen', args: ['80'] }); // keep the *:80 an explicit listen would otherwise drop
  for (const source of sources) {
    const address = listenAddress(source, port);
    const socket = parseListen({ kind: 'directive', name: 'listen', words: [{ raw: 'listen', value: 'listen', start: 0, end: 0, quoted: false }, { raw: address, value: address, start: 0, end: 0, quoted: false }], start: 0, end: 0, innerComments: [], parent: null }).socket;
    if (mine.has(socket)) continue;
    mine.add(socket);
    const already = server.listens.find((l) => l.socket === socket);
    if (already) {
      if (!already.ssl && !already.implicit) upgrade.push({ listen: already, args: [...already.directive.words.slice(1).map((w) => w.raw), 'ssl'] });
      continue;
    }
    const args = [address, 'ssl'];
    if (http2Listen) args.push('http2');
    // Options nginx allows once per socket are carried over only when nobody else on that socket set one.
    if (!socketTaken(tree, planned, socket, 'default') && source.options.some((o) => o === 'default_server')) args.push('default_server');
    const ipv6only = source.options.find((o) => optionName(o) === 'ipv6only');
    if (ipv6only && !socketTaken(tree, planned, socket, 'socket')) args.push(ipv6only);
    planned.set(socket, [...(planned.get(socket) ?? []), ...args.slice(1)]);
    add.push({ name: 'listen', args });
  }
  return { add, upgrade, sources };
}

/**
 * A stable, nginx-safe variable suffix for a server block: its first name and a short hash of all its names (the
 * same block gets the same maps on every run; blocks sharing a first name do not share them).
 */
export function blockId(server: ServerBlock): string {
  const name = (server.names.find((n) => !n.startsWith('~')) ?? 'server').replace(/[^a-z0-9]+/gi, '_').replace(/^_|_$/g, '').toLowerCase().slice(0, 40) || 'server';
  return `${name}_${crypto.createHash('sha1').update(server.names.join(' ')).digest('hex').slice(0, 6)}`;
}

/** A `map` statement: the variable set from `source` by the entries (`default` first). */
function mapStatement(source: string, variable: string, entries: ReadonlyArray<[string, string]>): NewStatement {
  return { name: 'map', args: [`"${source}"`, variable], children: entries.map(([k, v]) => ({ name: k, args: [v] })) };
}

/** http-level statements (maps) to put right before a server block, by block: one splice each. */
class BeforeBlocks {
  private readonly byBlock = new Map<ServerBlock, NewStatement[]>();
  add(server: ServerBlock, statement: NewStatement): void {
    this.byBlock.set(server, [...(this.byBlock.get(server) ?? []), statement]);
  }
  /** Adds each missing map before its block, replaces one that differs, leaves an identical one alone. */
  flush(builder: PlanBuilder, label: (s: ServerBlock) => string): void {
    for (const [server, statements] of this.byBlock) {
      const siblings = server.directive.parent ? childDirectives(server.directive.parent) : childDirectives(server.config);
      const missing: NewStatement[] = [];
      for (const st of statements) {
        const existing = siblings.find((d) => d.name === 'map' && argValues(d)[1] === st.args[1]);
        if (!existing) {
          missing.push(st);
          continue;
        }
        const have = childDirectives(existing).map((d) => [d.name, ...argValues(d)].join('\u0000'));
        const want = st.children!.map((c) => [valuesOf([c.name])[0] ?? c.name, ...valuesOf(c.args)].join('\u0000'));
        if (have.join('\n') !== want.join('\n') || valuesOf([st.args[0]!])[0] !== argValues(existing)[0]) {
          for (const splice of replaceStatement(server.config, existing, [st], `${label(server)}: update map ${st.args[1]}`)) builder.add(server.config, splice);
        }
      }
      if (missing.length) builder.add(server.config, insertBefore(server.config, server.directive, missing, `${label(server)}: add ${missing.map((m) => `map ${m.args[1]}`).join(', ')}`));
    }
  }
}

/** Inserts statements on their own lines before `anchor`, at its indentation, a blank line between. */
function insertBefore(config: ParsedConfig, anchor: Directive, statements: readonly NewStatement[], why: string): Splice {
  const { source, eol } = config;
  const lineStart = source.lastIndexOf('\n', anchor.start - 1) + 1;
  const indent = indentOf(source, anchor.start);
  const lines = renderStatements(statements, indent, indentUnit(config), eol);
  if (/^[ \t]*$/.test(source.slice(lineStart, anchor.start))) {
    return { start: lineStart, end: lineStart, text: lines.map((l) => l + eol).join('') + eol, kind: 'insert', why };
  }
  return { start: anchor.start, end: anchor.start, text: lines.join(eol).trimStart() + eol + eol + indent, kind: 'insert', why };
}

export const HSTS_HEADER_NAME = 'strict-transport-security';

/**
 * Plans the HTTPS edit for a certificate: TLS listens, certificate paths and the statements of `edit.https`
 * in the TLS server of each name; `edit.http` statements and the optional redirect in the port-80 server.
 * Redirects and HSTS reach only the names the certificate covers: a block that also answers for other names keeps
 * answering them as before (see names.ts).
 */
export function planHttpsEdit(tree: NginxTree, edit: VhostEdit, opts: HttpsOptions): EditPlan {
  const targets = installTargets(tree, edit.names, opts.keepCertificatesUnder);
  const located = locateServers(tree, targets, { vhostFile: edit.vhostFile });
  const builder = new PlanBuilder();
  const before = new BeforeBlocks();
  const notes: string[] = [];
  const rules: EnsureRules = { identity: edit.identity, keyType: edit.keyType, prefix: tree.prefix };
  const httpsRemovals = edit.removals.filter((r) => r.where === 'https');
  const httpRemovals = edit.removals.filter((r) => r.where === 'http');
  const httpsStatements = statementsOf(edit.https, 'vhost hook (https)');
  const httpStatements = statementsOf(edit.http, 'vhost hook (http)');
  // `listen <port> ssl [http2]` in the https tree means: mirror the block's port-80 addresses on <port>.
  const listenSpec = httpsStatements.find((s) => s.name === 'listen');
  const port = listenSpec ? Number(/(\d+)$/.exec(listenSpec.args[0] ?? '')?.[1] ?? opts.httpsPort ?? 443) : (opts.httpsPort ?? 443);
  const http2 = listenSpec?.args.includes('http2') ?? false;
  const newHttp2 = usesHttp2Directive(opts.nginxVersion);
  const planned: PlannedListens = new Map();
  const label = (server: ServerBlock): string => `server ${server.names[0] ?? ''} (${serverLabel(server)})`;
  const done = new Set<ServerBlock>();
  /** Blocks whose port-80 listens this edit turns into TLS ones (their port 80 moves to a new redirect block). */
  const movedListens = new Set<ServerBlock>();
  const tlsEndpoints: EditPlan['tlsEndpoints'] = [];
  const httpUncovered = (plain: ServerBlock): string[] => [...uncovered(answeredNames(tree, plain, 'http'), edit.names), ...defaultServerAnswers(plain)];
  for (const name of targets) {
    const tls = located.https.get(name) ?? null;
    const plain = located.http.get(name) ?? null;
    const target = tls ?? plain!;
    if (done.has(target)) {
      addEndpoints(tlsEndpoints, target, name, port, tls === null);
      continue;
    }
    done.add(target);
    ensureBlockEditable(tree, target);
    const tlsLeftOut = uncovered(answeredNames(tree, target, 'https', tls === null), edit.names);
    if (tlsLeftOut.length) notes.push(`${label(target)} also answers ${tlsLeftOut.join(', ')} over TLS, which the certificate does not cover: those get no HSTS`);
    if (!tls && listenSpec) {
      const problem = tlsInstallProblem(tree, [name], port);
      if (problem) throw new AutoSslError('VHOST_UNSUPPORTED', problem, { hint: TLS_INSTALL_HINT });
    }
    if (!tls && listenSpec && redirectsToItself(tree, target, edit.names, port)) {
      // Its port 80 answers only with a redirect to HTTPS on a name it serves itself: TLS listens in this block would
      // redirect HTTPS to itself forever. The TLS side becomes a block of its own beside it (the site's directives
      // without the redirect); the port-80 block stays as it is, still redirecting, still serving the challenge.
      const { add } = mirrorListens(tree, target, port, http2 && !newHttp2, planned);
      if (http2 && newHttp2) add.push({ name: 'http2', args: ['on'] });
      const names = targets.filter((n) => located.http.get(n) === target && !located.https.get(n));
      const site = tlsSiteStatements(target);
      const block: NewStatement = { name: 'server', args: [], children: [...add, { name: 'server_name', args: names }, ...site.statements, ...httpsStatements.filter((st) => st.name !== 'listen')] };
      builder.add(target.config, insertBlockAfter(target.config, target.directive, [block], `${label(target)}: add a TLS server beside it for ${names.join(', ')} (its port 80 only redirects to HTTPS)`));
      notes.push(`${label(target)} answers port 80 only with a redirect to HTTPS: the certificate goes into a new TLS server block beside it, with the block's other lines`);
      addEndpoints(tlsEndpoints, target, name, port, true);
      continue;
    }
    if (!tls && listenSpec) {
      const { add, upgrade, sources } = mirrorListens(tree, target, port, http2 && !newHttp2, planned);
      const movable = sources.length === add.length && sources.every((l) => !l.implicit && l.directive.parent === target.directive);
      if (edit.redirect && movable && httpUncovered(target).length === 0 && !alreadyRedirects(tree, target, edit.names)) {
        // The port-80 listens move to a new redirect block (planRedirect); here they become the TLS ones.
        sources.forEach((l, i) => builder.add(target.config, replaceArgs(l.directive, add[i]!.args, `${label(target)}: listen ${l.socket} -> ${add[i]!.args.join(' ')} (port 80 moves to a redirect block)`)));
        add.length = 0;
        movedListens.add(target);
      }
      for (const u of upgrade) builder.add(target.config, replaceArgs(u.listen.directive, u.args, `${label(target)}: add ssl to listen ${u.listen.socket}`));
      if (http2 && newHttp2 && !childDirectives(target.directive, 'http2').length) add.push({ name: 'http2', args: ['on'] });
      placeStatements(builder, target, add, ['listen'], `${label(target)}: ${add.map((s) => [s.name, ...s.args].join(' ')).join('; ')}`);
    }
    // HSTS only for covered names when the block answers for others too: a per-host value (empty = no header)
    const statements = tlsLeftOut.length ? httpsStatements.map((st) => hstsPerHost(st, target, edit.names, before)) : httpsStatements;
    ensureStatements(builder, target, statements, label(target), rules);
    applyRemovals(builder, target, httpsRemovals, label(target));
    addEndpoints(tlsEndpoints, target, name, port, tls === null);
  }
  if (httpStatements.length || httpRemovals.length || edit.redirect) {
    const httpDone = new Set<ServerBlock>();
    for (const name of targets) {
      const plain = located.http.get(name) ?? null;
      if (!plain || httpDone.has(plain)) continue;
      httpDone.add(plain);
      ensureBlockEditable(tree, plain);
      ensureStatements(builder, plain, httpStatements, label(plain), rules);
      applyRemovals(builder, plain, httpRemovals, label(plain));
      if (!edit.redirect) continue;
      const leftOut = httpUncovered(plain);
      if (leftOut.length) notes.push(`${label(plain)} also answers ${leftOut.join(', ')} on port 80, which the certificate does not cover: those keep answering over HTTP as before; only the certificate's names are redirected`);
      const tlsTarget = located.https.get(name) ?? plain;
      planRedirect({ tree, builder, before, rules, certNames: edit.names, webroot: edit.webroot }, plain, tlsTarget, label, leftOut.length > 0, movedListens.has(plain));
    }
  }
  before.flush(builder, label);
  return { edits: builder.build(), tlsEndpoints, notes };
}

/** `add_header Strict-Transport-Security ...` made per host: a map gives the header's value for covered names only. */
function hstsPerHost(statement: NewStatement, target: ServerBlock, certNames: readonly string[], before: BeforeBlocks): NewStatement {
  if (statement.name !== 'add_header' || (valuesOf(statement.args.slice(0, 1))[0] ?? '').toLowerCase() !== HSTS_HEADER_NAME) return statement;
  const value = statement.args[1];
  if (value === undefined) return statement;
  const variable = `$autossl_hsts_${blockId(target)}`;
  before.add(target, mapStatement('$host', variable, [['default', '""'], ...hostEntries(certNames, value)]));
  return { ...statement, args: [statement.args[0]!, variable, ...statement.args.slice(2)] };
}

/** Map entries for the certificate's names: exact ones as they are, `*.x` as a regex for one label. */
function hostEntries(certNames: readonly string[], value: string, prefix = ''): Array<[string, string]> {
  return certNames.map((n): [string, string] => (n.startsWith('*.') ? [`"~^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[^.]+${n.slice(1).replace(/\./g, '\\.')}$"`, value] : [`"${prefix}${n}"`, value]));
}

function addEndpoints(out: EditPlan['tlsEndpoints'], server: ServerBlock, name: string, port: number, mirrored: boolean): void {
  const sockets = mirrored ? server.listens.filter(isPlainHttp).map((l) => ({ host: l.host, port })) : server.listens.filter((l) => l.ssl && !l.unix).map((l) => ({ host: l.host, port: l.port ?? port }));
  // a wildcard name is checked with a name it covers (SNI cannot be "*.x")
  const servername = name.startsWith('*.') ? `autossl-check${name.slice(1)}` : name;
  for (const s of sockets) {
    const host = s.host === '*' ? '127.0.0.1' : s.host === '[::]' ? '::1' : s.host.replace(/^\[|\]$/g, '');
    if (!out.some((e) => e.host === host && e.port === s.port && e.servername === servername)) out.push({ host, port: s.port, servername });
  }
}

/**
 * Whether plain HTTP requests to this block for one of the names are redirected to HTTPS on a name this same block
 * answers: then TLS cannot be added to the block itself (HTTPS would redirect to itself).
 */
function redirectsToItself(tree: NginxTree, plain: ServerBlock, names: readonly string[], port: number): boolean {
  const mine = names.filter((n) => tree.findServers(n).http[0] === plain);
  return mine.some((n) => {
    const route = routeRequest(plain, { scheme: 'http', host: n, uri: '/' }, routeEnv(tree));
    return route.kind === 'redirect' && route.to?.scheme === 'https' && route.to.port === port && tree.findServers(route.to.host).http[0] === plain;
  });
}

/** A directive as a new statement (its words as written). */
export function copyStatement(d: Directive): NewStatement {
  const kids = d.block ? d.block.children.filter((c): c is Directive => c.kind === 'directive').map(copyStatement) : undefined;
  return kids ? { name: d.name, args: d.words.slice(1).map((w) => w.raw), children: kids } : { name: d.name, args: d.words.slice(1).map((w) => w.raw) };
}

/** Whether a statement redirects to an https:// URL (`return 301 https://...`, `rewrite ^ https://... permanent`). */
function redirectsToHttps(d: Directive): boolean {
  const args = d.words.slice(1).map((w) => w.value);
  if (d.name === 'return') return (args.length === 1 ? args[0] : /^30[12378]$/.test(args[0] ?? '') ? args[1] : undefined)?.startsWith('https://') === true;
  if (d.name === 'rewrite') return args[1]?.startsWith('https://') === true;
  return false;
}

/**
 * What a redirect-only port-80 block says about the site, for its new TLS twin: everything but its listens, names,
 * the challenge location and the redirect to HTTPS itself (a `return`/`rewrite` to https://, or an `if` or a
 * location holding nothing else). Every other rule comes along: a `location /private/ { return 403; }`, a guard
 * `if`, a named location, a server-level rewrite protect the site over HTTPS as they did over HTTP.
 * A Lua body cannot be carried over as a statement: it is named, and the run refused while planning.
 */
export function tlsSiteStatements(plain: ServerBlock): { statements: NewStatement[]; left: string[] } {
  const statements: NewStatement[] = [];
  const left: string[] = [];
  const onlyRedirects = (x: Directive): boolean => {
    const inner = childDirectives(x);
    return inner.length > 0 && inner.every(redirectsToHttps);
  };
  for (const d of childDirectives(plain.directive)) {
    if (d.name === 'listen' || d.name === 'server_name' || redirectsToHttps(d)) continue;
    if (d.name === 'if' && onlyRedirects(d)) continue;
    if (d.name === 'location') {
      const path = parseLocation(d)?.path;
      if (path === ACME_PREFIX || path === ACME_PREFIX.slice(0, -1)) continue;
      if (onlyRedirects(d)) continue;
    }
    const verbatim = (x: Directive): boolean => x.block?.verbatim !== undefined || childDirectives(x).some(verbatim);
    if (verbatim(d)) {
      left.push(`${d.name} ${argValues(d).join(' ')}`.trim());
      continue;
    }
    statements.push(copyStatement(d));
  }
  return { statements, left };
}

/**
 * Why the certificate cannot be installed for these names in a block that has no TLS yet, or null. Asked while
 * planning (before any order) and again by the HTTPS edit: a port-80 block whose redirect target autossl cannot
 * work out (`return 301 $target`) could redirect HTTPS to itself once TLS is added to it; a redirect-only block
 * whose site lines cannot be carried into a TLS block of its own (a Lua body) cannot get one.
 */
export function tlsInstallProblem(tree: NginxTree, names: readonly string[], port = 443): string | null {
  for (const n of names) {
    if (n.startsWith('*.') || tree.findServers(n).https[0]) continue; // a wildcard is DNS-01: no port-80 routing
    const plain = tree.findServers(n).http[0];
    if (!plain) continue;
    const route = routeRequest(plain, { scheme: 'http', host: n, uri: '/' }, routeEnv(tree));
    const label = `server ${plain.names[0] ?? ''} (${serverLabel(plain)})`;
    if (route.kind === 'redirect' && !route.to) {
      return `${label} answers ${n} on port 80 with a redirect whose target autossl cannot work out (${route.reason}); with TLS added to that block, HTTPS could redirect to itself forever.`;
    }
    if (redirectsToItself(tree, plain, [n], port)) {
      const { left } = tlsSiteStatements(plain);
      if (left.length) return `${label} only redirects ${n} to HTTPS, so the certificate needs a TLS server block of its own, and autossl cannot copy ${left.join('; ')} into it.`;
    }
  }
  return null;
}

export const TLS_INSTALL_HINT = 'Write the redirect with a literal target (return 301 https://$host$request_uri;), or add a TLS server block for the name yourself (then autossl only points it at the certificate). Nothing was ordered.';

const REDIRECT: NewStatement = { name: 'location', args: ['/'], children: [{ name: 'return', args: ['301', 'https://$host$request_uri'] }] };

/** Whether plain HTTP requests for these names already end in a redirect to HTTPS on the same host (certbot's shape). */
export function alreadyRedirects(tree: NginxTree, plain: ServerBlock, names: readonly string[]): boolean {
  const mine = names.filter((n) => tree.findServers(n).http[0] === plain);
  return mine.length > 0 && mine.every((n) => {
    const route = routeRequest(plain, { scheme: 'http', host: n, uri: '/' }, routeEnv(tree));
    return route.kind === 'redirect' && route.to?.scheme === 'https' && route.to.host === n;
  });
}

interface RedirectContext {
  tree: NginxTree;
  builder: PlanBuilder;
  before: BeforeBlocks;
  rules: EnsureRules;
  certNames: readonly string[];
  webroot?: string;
}

/**
 * HTTP -> HTTPS redirect that keeps the ACME challenge reachable (renewals need it). In order:
 *  - nothing when the block already redirects these names (certbot's `if ($host = ...)` shape): never a second one;
 *  - the port-80 listens were moved to TLS by this edit: a new port-80 block beside it, with the challenge location
 *    and `location / { return 301 ... }`;
 *  - a separate port-80 block that serves nothing of its own (no locations, no root): its `location /` redirects;
 *  - otherwise (the block also answers names the certificate does not cover, keeps serving port 80, or has a site
 *    of its own): per host, a `map` on "$scheme:$host" and one server-level `if`, so only the certificate's names
 *    are redirected; the challenge then arrives at the TLS block, which gets the challenge location if it does not
 *    serve the webroot already.
 */
function planRedirect(c: RedirectContext, plain: ServerBlock, tlsTarget: ServerBlock, label: (s: ServerBlock) => string, uncoveredNames: boolean, listensMoved: boolean): void {
  const { tree, builder } = c;
  if (alreadyRedirects(tree, plain, c.certNames)) return;
  const routing = challengeRouting(plain, undefined, 'http', routeEnv(tree));
  if (!uncoveredNames && listensMoved) {
    // One block served both: its port-80 listens became TLS ones; port 80 moves to a new redirect block beside it.
    const moved = plain.listens.filter((l) => isPlainHttp(l) && !l.implicit && l.directive.parent === plain.directive);
    const names = childDirectives(plain.directive, 'server_name').flatMap((d) => d.words.slice(1).map((w) => w.raw));
    const acme = routing.existing
      ? { name: 'location', args: routing.existing.words.slice(1).map((w) => w.raw), children: childDirectives(routing.existing).map((d) => ({ name: d.name, args: d.words.slice(1).map((w) => w.raw) })) }
      : acmeLocation(c.webroot ?? fileRoot(routing.webroot) ?? '/var/lib/autossl/acme-challenge');
    const block: NewStatement = { name: 'server', args: [], children: [...moved.map((l) => ({ name: 'listen', args: l.directive.words.slice(1).map((w) => w.raw) })), { name: 'server_name', args: names }, acme, REDIRECT] };
    builder.add(plain.config, insertBlockAfter(plain.config, plain.directive, [block], `${label(plain)}: add a port-80 server that redirects to HTTPS`));
    return;
  }
  const servesNothing = childDirectives(plain.directive).every((d) => ['listen', 'server_name', 'location', 'return', 'access_log', 'error_log'].includes(d.name)) && childDirectives(plain.directive, 'location').every((d) => parseLocation(d)?.path === ACME_PREFIX || parseLocation(d)?.path === ACME_PREFIX.slice(0, -1));
  if (!uncoveredNames && tlsTarget !== plain && servesNothing) {
    // a separate port-80 block with nothing of its own: it becomes the redirect (the challenge location stays first)
    if (childDirectives(plain.directive).some((d) => d.name === 'return')) return; // made challenge-safe by the challenge stage
    ensureStatements(builder, plain, [REDIRECT], label(plain), c.rules);
    return;
  }
  const variable = `$autossl_redirect_${blockId(plain)}`;
  c.before.add(plain, mapStatement('$scheme:$host', variable, [['default', '0'], ...hostEntries(c.certNames, '1', 'http:')]));
  if (!childDirectives(plain.directive, 'if').some((d) => argValues(d).join(' ').replace(/[()\s]/g, '') === variable)) {
    const statement: NewStatement = { name: 'if', args: [`(${variable})`], children: [{ name: 'return', args: ['301', 'https://$host$request_uri'] }] };
    builder.add(plain.config, insertAtBlockStart(plain.config, plain.directive, [statement], `${label(plain)}: redirect the certificate's names to HTTPS (${variable})`));
  }
  // the CA follows the redirect: the challenge must be served where it lands
  if (c.webroot && tlsTarget !== plain) {
    const name = c.certNames.find((n) => !n.startsWith('*.')) ?? c.certNames[0]!;
    const landing = challengeRouting(tlsTarget, name, 'https', routeEnv(tree));
    if (!(landing.served && fileRoot(landing.webroot) === c.webroot) && !landing.existing) ensureStatements(builder, tlsTarget, [acmeLocation(c.webroot)], label(tlsTarget), { prefix: tree.prefix });
  }
}

/** The challenge location; `open`: the block asks for a password or denies addresses, which the CA must pass. */
export function acmeLocation(webroot: string, open = false): NewStatement {
  return {
    name: 'location',
    args: ['^~', ACME_PREFIX],
    children: [
      { name: 'root', args: [nginxValue(webroot, { what: 'challenge webroot' })] },
      { name: 'default_type', args: ['"text/plain"'] },
      { name: 'try_files', args: ['$uri', '=404'] },
      ...(open ? [{ name: 'auth_basic', args: ['off'] }, { name: 'allow', args: ['all'] }] : []),
    ],
  };
}

/**
 * A path as a plugin value (the nginx-conf tree takes JS strings; statementsOf() writes them): refused when nginx
 * would read it as anything but one literal word, so it never needs quotes.
 */
export function pathToken(value: string, what = 'path'): string {
  nginxValue(value, { what });
  return value;
}

export interface ChallengePlan {
  edits: FileEdit[];
  /** The directory certbot's webroot authenticator writes tokens into. */
  webroot: string;
  /** A symlink the webroot needs before certbot runs (an existing `alias` challenge location: see alias-webroot.ts). */
  link?: { path: string; target: string };
  notes: string[];
}

/** Where the CA's request for a name ends up: the block (after following redirects inside this nginx) and how. */
interface Reach {
  name: string;
  /** The port-80 block that receives the request first. */
  plain: ServerBlock;
  /** The block the request ends in, and its route there. */
  final: ServerBlock;
  route: Route;
  /** How it got there ("through the redirect to https://..."). */
  via: string[];
}

function follow(tree: NginxTree, name: string, plain: ServerBlock): Reach {
  let server = plain;
  let req: Request = { scheme: 'http', host: name, uri: `${ACME_PREFIX}autossl-probe-token` };
  const via: string[] = [];
  for (let hop = 0; hop < 5; hop++) {
    const route = routeRequest(server, req, routeEnv(tree));
    if (route.kind !== 'redirect' || !route.to) return { name, plain, final: server, route, via };
    const to = route.to;
    // the CA follows redirects to http or https on the standard ports only
    if (!(to.scheme === 'http' && to.port === 80) && !(to.scheme === 'https' && to.port === 443)) return { name, plain, final: server, route, via };
    const next = tree.findServers(to.host)[to.scheme === 'https' ? 'https' : 'http'][0];
    if (!next) return { name, plain, final: server, route, via };
    via.push(`${route.reason} to ${to.scheme}://${to.host}${to.uri.startsWith(ACME_PREFIX) ? '' : to.uri}`);
    server = next;
    req = { scheme: to.scheme, host: to.host, uri: to.uri };
  }
  return { name, plain, final: server, route: { kind: 'uncertain', via: server.directive, reason: 'more than 5 redirects' }, via };
}

/**
 * Makes sure the CA's request for every name reaches the challenge directory as a static file, following the
 * config the way nginx would (the server's rewrite phase first, then locations; redirects to HTTPS into the TLS
 * block, as the CA follows them). Nothing is changed where it already does. Otherwise the challenge is placed where
 * the request ends up: a `location ^~ /.well-known/acme-challenge/` (in the TLS block when a redirect leads there),
 * or, for a server-level `return` in the way, that return moved into `location /` beside it. What cannot be made
 * to work (a server-level `if` autossl cannot evaluate) is refused before anything is ordered.
 */
export function planChallengeEdit(tree: NginxTree, names: readonly string[], opts: { documentRoot?: string; fallbackWebroot: string; vhostFile?: string }): ChallengePlan {
  const located = locateServers(tree, names, { vhostFile: opts.vhostFile });
  const builder = new PlanBuilder();
  const notes: string[] = [];
  const reaches: Reach[] = [];
  for (const name of names) {
    const plain = located.http.get(name) ?? null;
    if (!plain) {
      throw new AutoSslError('VHOST_NOT_FOUND', `No server block answers plain HTTP on port 80 for ${name}; HTTP-01 validation needs one.`, {
        hint: `Add ${name} to the server_name of a port-80 server block (a redirect block is enough), or use DNS-01 ("challenge": "dns-01" with a DNS provider plugin).`,
      });
    }
    reaches.push(follow(tree, name, plain));
  }
  // One webroot per certificate: certbot's -w applies to every name that follows it.
  // roots read from files are bytes: the webroot is the path they name (certbot writes there, acmeLocation() encodes it)
  const servedRoot = reaches.map((r) => (r.route.kind === 'static' ? fileRoot(r.route.root) : undefined)).find((r) => r !== undefined);
  const ownRoot = reaches.map((r) => fileRoot(childDirectives(r.plain.directive, 'root').map((d) => argValues(d)[0]).pop())).find((r) => r && r.startsWith('/') && !r.includes('$'));
  let webroot = opts.documentRoot ?? servedRoot ?? ownRoot ?? tlsRoot(tree, names) ?? opts.fallbackWebroot;
  let link: ChallengePlan['link'];
  const handled = new Set<ServerBlock>();
  for (const reach of reaches) {
    const { final, route } = reach;
    if (handled.has(final)) continue;
    handled.add(final);
    ensureBlockEditable(tree, final);
    const label = `server ${final.names[0] ?? ''} (${serverLabel(final)})`;
    const through = reach.via.length ? ` (reached ${reach.via.join(', then ')})` : '';
    if (route.kind === 'static' && fileRoot(route.root) === webroot) {
      notes.push(`${label}: challenge ${route.reason}${through}`);
      continue;
    }
    const routing = challengeRouting(final, reach.name, final === reach.plain ? 'http' : 'https', routeEnv(tree));
    if (routing.existing && route.kind === 'handled' && route.access && effectiveParent(routing.existing) === final.directive) {
      throw new AutoSslError('CHALLENGE_UNROUTABLE', `${label} already has "location ${argValues(routing.existing).join(' ')}", and ${route.reason}.`, {
        hint: 'Add "auth_basic off; allow all;" to that location (the CA sends no password and comes from anywhere), then run again.',
      });
    }
    const aliasDir = routing.existing ? aliasTokenDir(routing.existing) : null;
    if (routing.existing && aliasDir && reaches.length === 1 && !opts.documentRoot && childDirectives(routing.existing).every((d) => ['alias', 'default_type', 'try_files', 'allow', 'auth_basic'].includes(d.name) && (d.name !== 'auth_basic' || argValues(d)[0] === 'off'))) {
      // the location is used as it stands: certbot writes where its alias reads
      const found = webrootForAlias(aliasDir, path.dirname(opts.fallbackWebroot));
      webroot = found.webroot;
      link = found.link;
      notes.push(`${label}: challenge served by its own location from ${aliasDir} (alias)${found.link ? `; certbot writes there through ${found.link.path}` : ''}${through}`);
      continue;
    }
    if (routing.existing) {
      const root = fileRoot(childDirectives(routing.existing, 'root').map((d) => argValues(d)[0]).pop());
      const blocked = childDirectives(routing.existing).find((d) => d.name !== 'root' && d.name !== 'default_type' && d.name !== 'try_files' && d.name !== 'allow');
      if (root && !blocked && reaches.length === 1 && !opts.documentRoot) {
        notes.push(`${label}: challenge served by its own location from ${root}${through}`);
        webroot = root;
        continue;
      }
      throw new AutoSslError('CHALLENGE_UNROUTABLE', `${label} already has "location ${argValues(routing.existing).join(' ')}" and it does not serve files from ${webroot}${blocked ? ` (it uses "${blocked.name}")` : ''}.`, {
        hint: `Make that location serve static files: "root ${webroot};" and no return/proxy_pass, then run again.`,
      });
    }
    // the server's rewrite phase decides before any location: a location cannot help, the return must move
    const serverLevel = route.kind !== 'static' && route.via && effectiveParent(route.via) === final.directive && route.via.name !== 'location';
    if (serverLevel && route.via!.name === 'return') {
      const ret = route.via!;
      const others = childDirectives(final.directive, 'location');
      const rewriting = childDirectives(final.directive).filter((d) => d !== ret && ['return', 'rewrite', 'if'].includes(d.name));
      if (others.length || rewriting.length) {
        throw new AutoSslError('CHALLENGE_UNROUTABLE', `${label} answers every request with a server-level "${describeDirective(ret)}" (${directiveLocation(final, ret)}), before any location, and has other locations or rewrite rules autossl will not reorder.`, {
          hint: `Exempt /.well-known/acme-challenge/ from it yourself (move the "return" into "location /" and add "location ^~ /.well-known/acme-challenge/ { root ${webroot}; }"), or use DNS-01.`,
        });
      }
      const locations = [acmeLocation(webroot), { name: 'location', args: ['/'], children: [{ name: 'return', args: ret.words.slice(1).map((w) => w.raw) }] }];
      for (const splice of replaceStatement(final.config, ret, locations, `${label}: move server-level return into location / beside the ACME location`)) builder.add(final.config, splice);
      notes.push(`${label}: server-level "${describeDirective(ret)}" moved into "location /" so the challenge gets through${through}`);
      continue;
    }
    if (serverLevel && (route.kind === 'uncertain' || route.kind === 'handled' || route.kind === 'redirect')) {
      throw new AutoSslError('CHALLENGE_UNROUTABLE', `For ${reach.name}, ${label} decides at ${directiveLocation(final, route.via!)} before any location: ${route.reason}${route.kind === 'redirect' ? ' (to a place outside this nginx, or one autossl cannot work out)' : ''}; a challenge location could not be reached.`, {
        hint: `Make that rule skip /.well-known/acme-challenge/ (or put it inside "location /"), or use DNS-01. Nothing was ordered.`,
      });
    }
    // a redirect decided in a location: a `location ^~ /.well-known/acme-challenge/` wins over it when that location
    // is a regex or a shorter prefix (`location / { return 301 https://... }` on a block with no TLS yet)
    const deciding = route.kind === 'redirect' && route.via ? effectiveParent(route.via) : null;
    const spec = deciding?.name === 'location' ? parseLocation(deciding) : null;
    const outranked = spec !== null && (spec.modifier === '~' || spec.modifier === '~*' || (spec.modifier !== '=' && ACME_PREFIX.startsWith(spec.path) && spec.path.length < ACME_PREFIX.length));
    if (route.kind === 'redirect' && !outranked) {
      throw new AutoSslError('CHALLENGE_UNROUTABLE', `For ${reach.name}, ${label} redirects the challenge (${route.reason}) to a place outside this nginx.`, {
        hint: 'Serve /.well-known/acme-challenge/ before that redirect, or use DNS-01. Nothing was ordered.',
      });
    }
    ensureStatements(builder, final, [acmeLocation(webroot, route.kind === 'handled' && route.access === true)], label, { prefix: tree.prefix });
    notes.push(`${label}: challenge not served (${routing.reason}); adding location ^~ ${ACME_PREFIX}${through}`);
  }
  return { edits: builder.build(), webroot, notes, ...(link ? { link } : {}) };
}

/** A path (a root, a certificate) read from a file as the path it names (see value.ts). */
function fileRoot(root: string | undefined): string | undefined {
  return root === undefined ? undefined : valueFromFile(root);
}

function describeDirective(d: Directive): string {
  return [d.name, ...argValues(d)].join(' ');
}

function tlsRoot(tree: NginxTree, names: readonly string[]): string | undefined {
  for (const name of names) {
    const tls = tree.findServers(name).https[0];
    const root = tls && fileRoot(childDirectives(tls.directive, 'root').map((d) => argValues(d)[0]).pop());
    if (root && !root.includes('$')) return root;
  }
  return undefined;
}
