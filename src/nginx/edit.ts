/**
 * The HTTPS edits, planned as splices on the files of a loaded NginxTree. Each edit is idempotent: planning
 * it again on its own output yields no splice. Nothing here writes a file; see transaction.ts for that.
 *
 * Edits arrive as a `VhostEdit`: two nginx-conf trees (`https`, `http`) holding the directives and blocks to
 * ensure in the TLS server and in the port-80 server. Plugins change those trees through nginx-conf's API on the
 * `vhost` hook; this module decides where each statement goes in the user's file and what "already there"
 * means for it (see `ensureKey`).
 */
import path from 'node:path';
import nginxConf from 'nginx-conf';
import type { NginxConfItem } from 'nginx-conf/dist/src/conf.js';
import { AutoSslError } from '../errors.js';
import { normalizeDomain } from '../domain.js';
import { argValues, childDirectives, parseConfig, type Directive, type ParsedConfig } from './parse.js';
import { isPlainHttp, listenAddress, optionName, parseListen, SOCKET_OPTIONS, type Listen } from './listen.js';
import { insertAfter, insertAtBlockStart, insertBlockAfter, removeStatement, replaceArgs, replaceStatement, spliceAndVerify, type NewStatement, type Splice } from './splice.js';
import { ACME_PREFIX, challengeRouting, parseLocation } from './routing.js';
import { readConfigFile, type NginxTree, type ServerBlock } from './tree.js';
import { serverView, type ServerView } from './view.js';
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

/** The `vhost` hook's payload for a domain run: what to ensure, and a read-only view of what is there now. */
export function vhostEditFor(ctx: DomainContext): VhostEdit {
  const edit = newVhostEdit([...ctx.plan.names], ctx.plan.redirect);
  edit.vhostFile = ctx.plan.site.vhost;
  edit.keyType = ctx.certificate?.keyType ?? ctx.services.config.certbot.keyType;
  try {
    const located = locateServers(ctx.services.loadTree(ctx.dryRun ? ctx.overlay : undefined), edit.names, { vhostFile: edit.vhostFile });
    const views = (m: Map<string, ServerBlock | null>): ServerView[] => [...new Set([...m.values()].filter((s): s is ServerBlock => s !== null))].map(serverView);
    edit.current = { https: views(located.https), http: views(located.http) };
  } catch {
    // the edit itself reports what cannot be found, with the error it deserves
  }
  return edit;
}

const ITEM_API = new Set(['toString']);

/** Reads an nginx-conf tree back into statements, validating every value with our own nginx lexer. */
export function statementsOf(item: NginxConfItem, owner = 'vhost edit'): NewStatement[] {
  const out: NewStatement[] = [];
  for (const key of Object.keys(item)) {
    if (key.startsWith('_') || ITEM_API.has(key)) continue;
    const list = item[key];
    if (!Array.isArray(list)) continue;
    for (const child of list) {
      const value = child._value === undefined || child._value === null ? '' : String(child._value);
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
      const statement: NewStatement = { name: child._name, args: directive.words.slice(1).map((w) => w.raw) };
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
  /** Where to check over TLS that the certificate is served: host, port and the name to send as SNI. */
  tlsEndpoints: Array<{ host: string; port: number; servername: string }>;
}

export interface HttpsOptions {
  /** nginx version as [major, minor, patch], to choose `listen ... http2` (< 1.25.1) or `http2 on;`. */
  nginxVersion: [number, number, number];
  /** The TLS port when the edit's `listen` does not name one. */
  httpsPort?: number;
}

/** Groups splices by file, splices and verifies each file. */
class PlanBuilder {
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

function serverLabel(server: ServerBlock): string {
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

function ensureBlockEditable(tree: NginxTree, server: ServerBlock): void {
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
      const p = argValues(d)[0];
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

/** Is any listen on this socket, anywhere in the tree, already carrying a socket option / default_server? */
function socketTaken(tree: NginxTree, socket: string, what: 'socket' | 'default'): boolean {
  return (tree.listensBySocket.get(socket) ?? []).some((l) =>
    l.options.some((o) => (what === 'default' ? o === 'default_server' || o === 'default' : SOCKET_OPTIONS.includes(optionName(o)))),
  );
}

/** The `listen ... ssl` lines a plain-HTTP block needs, mirroring its own port-80 addresses (IPv6 included). */
function mirrorListens(tree: NginxTree, server: ServerBlock, port: number, http2Listen: boolean, planned: Set<string>): { add: NewStatement[]; upgrade: Array<{ listen: Listen; args: string[] }>; sources: Listen[] } {
  const add: NewStatement[] = [];
  const upgrade: Array<{ listen: Listen; args: string[] }> = [];
  const sources = server.listens.filter(isPlainHttp);
  if (sources.some((l) => l.implicit)) add.push({ name: 'listen', args: ['80'] }); // keep the *:80 an explicit listen would otherwise drop
  for (const source of sources) {
    const address = listenAddress(source, port);
    const socket = parseListen({ kind: 'directive', name: 'listen', words: [{ raw: 'listen', value: 'listen', start: 0, end: 0, quoted: false }, { raw: address, value: address, start: 0, end: 0, quoted: false }], start: 0, end: 0, innerComments: [], parent: null }).socket;
    if (planned.has(socket)) continue;
    planned.add(socket);
    const already = server.listens.find((l) => l.socket === socket);
    if (already) {
      if (!already.ssl && !already.implicit) upgrade.push({ listen: already, args: [...already.directive.words.slice(1).map((w) => w.raw), 'ssl'] });
      continue;
    }
    const args = [address, 'ssl'];
    if (http2Listen) args.push('http2');
    // Options nginx allows once per socket are carried over only when nobody else on that socket set one.
    if (!socketTaken(tree, socket, 'default') && source.options.some((o) => o === 'default_server')) args.push('default_server');
    const ipv6only = source.options.find((o) => optionName(o) === 'ipv6only');
    if (ipv6only && !socketTaken(tree, socket, 'socket')) args.push(ipv6only);
    add.push({ name: 'listen', args });
  }
  return { add, upgrade, sources };
}

/**
 * Plans the HTTPS edit for a certificate: TLS listens, certificate paths and the statements of `edit.https`
 * in the TLS server of each name; `edit.http` statements and the optional redirect in the port-80 server.
 */
export function planHttpsEdit(tree: NginxTree, edit: VhostEdit, opts: HttpsOptions): EditPlan {
  const located = locateServers(tree, edit.names, { vhostFile: edit.vhostFile });
  const builder = new PlanBuilder();
  const rules: EnsureRules = { identity: edit.identity, keyType: edit.keyType, prefix: tree.prefix };
  const httpsRemovals = edit.removals.filter((r) => r.where === 'https');
  const httpRemovals = edit.removals.filter((r) => r.where === 'http');
  const httpsStatements = statementsOf(edit.https, 'vhost hook (https)');
  const httpStatements = statementsOf(edit.http, 'vhost hook (http)');
  // `listen <port> ssl [http2]` in the https tree means: mirror the block's port-80 addresses on <port>.
  const listenSpec = httpsStatements.find((s) => s.name === 'listen');
  const port = listenSpec ? Number(/(\d+)$/.exec(listenSpec.args[0] ?? '')?.[1] ?? opts.httpsPort ?? 443) : (opts.httpsPort ?? 443);
  const http2 = listenSpec?.args.includes('http2') ?? false;
  const newHttp2 = versionAtLeast(opts.nginxVersion, [1, 25, 1]);
  const done = new Set<ServerBlock>();
  const tlsEndpoints: EditPlan['tlsEndpoints'] = [];
  for (const name of edit.names) {
    const tls = located.https.get(name) ?? null;
    const plain = located.http.get(name) ?? null;
    const target = tls ?? plain!;
    if (done.has(target)) {
      addEndpoints(tlsEndpoints, target, name, port, tls === null);
      continue;
    }
    done.add(target);
    ensureBlockEditable(tree, target);
    const label = `server ${target.names[0] ?? ''} (${serverLabel(target)})`;
    if (!tls && listenSpec) {
      const { add, upgrade, sources } = mirrorListens(tree, target, port, http2 && !newHttp2, new Set());
      if (edit.redirect && sources.length === add.length && sources.every((l) => !l.implicit && l.directive.parent === target.directive)) {
        // The port-80 listens move to a new redirect block (planRedirect); here they become the TLS ones.
        sources.forEach((l, i) => builder.add(target.config, replaceArgs(l.directive, add[i]!.args, `${label}: listen ${l.socket} -> ${add[i]!.args.join(' ')} (port 80 moves to a redirect block)`)));
        add.length = 0;
      }
      for (const u of upgrade) builder.add(target.config, replaceArgs(u.listen.directive, u.args, `${label}: add ssl to listen ${u.listen.socket}`));
      if (http2 && newHttp2 && !childDirectives(target.directive, 'http2').length) add.push({ name: 'http2', args: ['on'] });
      placeStatements(builder, target, add, ['listen'], `${label}: ${add.map((s) => [s.name, ...s.args].join(' ')).join('; ')}`);
    }
    ensureStatements(builder, target, httpsStatements, label, rules);
    applyRemovals(builder, target, httpsRemovals, label);
    addEndpoints(tlsEndpoints, target, name, port, tls === null);
  }
  if (httpStatements.length || httpRemovals.length || edit.redirect) {
    const httpDone = new Set<ServerBlock>();
    for (const name of edit.names) {
      const plain = located.http.get(name) ?? null;
      if (!plain || httpDone.has(plain)) continue;
      httpDone.add(plain);
      ensureBlockEditable(tree, plain);
      const label = `server ${plain.names[0] ?? ''} (${serverLabel(plain)})`;
      ensureStatements(builder, plain, httpStatements, label, rules);
      applyRemovals(builder, plain, httpRemovals, label);
      if (edit.redirect) planRedirect(builder, plain, located.https.get(name) ?? null, label, rules);
    }
  }
  return { edits: builder.build(), tlsEndpoints };
}

function addEndpoints(out: EditPlan['tlsEndpoints'], server: ServerBlock, name: string, port: number, mirrored: boolean): void {
  const sockets = mirrored ? server.listens.filter(isPlainHttp).map((l) => ({ host: l.host, port })) : server.listens.filter((l) => l.ssl && !l.unix).map((l) => ({ host: l.host, port: l.port ?? port }));
  for (const s of sockets) {
    const host = s.host === '*' ? '127.0.0.1' : s.host === '[::]' ? '::1' : s.host.replace(/^\[|\]$/g, '');
    if (!out.some((e) => e.host === host && e.port === s.port && e.servername === name)) out.push({ host, port: s.port, servername: name });
  }
}

const REDIRECT: NewStatement = { name: 'location', args: ['/'], children: [{ name: 'return', args: ['301', 'https://$host$request_uri'] }] };

/** HTTP -> HTTPS redirect that keeps /.well-known/acme-challenge/ reachable over plain HTTP. */
function planRedirect(builder: PlanBuilder, plain: ServerBlock, tls: ServerBlock | null, label: string, rules: EnsureRules): void {
  const routing = challengeRouting(plain);
  const hasServerReturn = childDirectives(plain.directive).some((d) => d.name === 'return');
  if (hasServerReturn) return; // already a redirect block (the challenge stage made it challenge-safe)
  if (tls && tls !== plain) {
    // a separate port-80 block: it becomes the redirect unless it serves a site of its own
    if (childDirectives(plain.directive, 'location').some((d) => parseLocation(d)?.path === '/')) return;
    ensureStatements(builder, plain, [REDIRECT], label, rules);
    return;
  }
  // One block serves both: move its port-80 listens into a new redirect block beside it.
  const moved = plain.listens.filter((l) => isPlainHttp(l) && !l.implicit && l.directive.parent === plain.directive);
  if (moved.length === 0) return;
  const names = childDirectives(plain.directive, 'server_name').flatMap((d) => d.words.slice(1).map((w) => w.raw));
  const acme = routing.existing
    ? { name: 'location', args: routing.existing.words.slice(1).map((w) => w.raw), children: childDirectives(routing.existing).map((d) => ({ name: d.name, args: d.words.slice(1).map((w) => w.raw) })) }
    : acmeLocation(routing.webroot ?? '/var/lib/autossl/acme-challenge');
  const block: NewStatement = {
    name: 'server',
    args: [],
    children: [
      ...moved.map((l) => ({ name: 'listen', args: l.directive.words.slice(1).map((w) => w.raw) })),
      { name: 'server_name', args: names },
      acme,
      REDIRECT,
    ],
  };
  builder.add(plain.config, insertBlockAfter(plain.config, plain.directive, [block], `${label}: add a port-80 server that redirects to HTTPS`));
}

export function acmeLocation(webroot: string): NewStatement {
  return {
    name: 'location',
    args: ['^~', ACME_PREFIX],
    children: [
      { name: 'root', args: [quoteIfNeeded(webroot)] },
      { name: 'default_type', args: ['"text/plain"'] },
      { name: 'try_files', args: ['$uri', '=404'] },
    ],
  };
}

/** Paths go into config lines quoted when they hold anything nginx would split or interpret. */
export function quoteIfNeeded(value: string): string {
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new AutoSslError('CONFIG_INVALID', `The path ${JSON.stringify(value)} contains a control character.`);
  if (/^[A-Za-z0-9_./@:+-]+$/.test(value)) return value;
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export interface ChallengePlan {
  edits: FileEdit[];
  /** The directory certbot's webroot authenticator writes tokens into. */
  webroot: string;
  notes: string[];
}

/**
 * Makes sure every port-80 server of the names serves the challenge directory as static files: nothing to do
 * where its routing already does; otherwise a `location ^~ /.well-known/acme-challenge/`, and a server-level
 * `return` moved into `location /` (it runs before any location and would redirect the challenge away).
 */
export function planChallengeEdit(tree: NginxTree, names: readonly string[], opts: { documentRoot?: string; fallbackWebroot: string; vhostFile?: string }): ChallengePlan {
  const located = locateServers(tree, names, { vhostFile: opts.vhostFile });
  const builder = new PlanBuilder();
  const notes: string[] = [];
  let webroot: string | undefined;
  const seen = new Set<ServerBlock>();
  const plainServers: ServerBlock[] = [];
  for (const name of names) {
    const plain = located.http.get(name) ?? null;
    if (!plain) {
      throw new AutoSslError('VHOST_NOT_FOUND', `No server block answers plain HTTP on port 80 for ${name}; HTTP-01 validation needs one.`, {
        hint: `Add ${name} to the server_name of a port-80 server block (a redirect block is enough), or use the DNS-01 plugin.`,
      });
    }
    if (!seen.has(plain)) {
      seen.add(plain);
      plainServers.push(plain);
    }
  }
  // One webroot per certificate: certbot's -w applies to every name that follows it.
  const routings = plainServers.map((s) => ({ server: s, routing: challengeRouting(s) }));
  for (const { routing } of routings) if (routing.served && !webroot && !opts.documentRoot) webroot = routing.webroot;
  const ownRoot = plainServers.map((s) => childDirectives(s.directive, 'root').map((d) => argValues(d)[0]).pop()).find((r) => r && r.startsWith('/') && !r.includes('$'));
  webroot ??= opts.documentRoot ?? ownRoot ?? tlsRoot(tree, names) ?? opts.fallbackWebroot;
  for (const { server, routing } of routings) {
    ensureBlockEditable(tree, server);
    const label = `server ${server.names[0] ?? ''} (${serverLabel(server)})`;
    if (routing.served && routing.webroot === webroot) {
      notes.push(`${label}: challenge ${routing.reason}`);
      continue;
    }
    if (routing.existing) {
      const root = childDirectives(routing.existing, 'root').map((d) => argValues(d)[0]).pop();
      const blocked = childDirectives(routing.existing).find((d) => d.name !== 'root' && d.name !== 'default_type' && d.name !== 'try_files' && d.name !== 'allow');
      if (root && !blocked && plainServers.length === 1 && !opts.documentRoot) {
        notes.push(`${label}: challenge served by its own location from ${root}`);
        webroot = root;
        continue;
      }
      throw new AutoSslError('CHALLENGE_UNROUTABLE', `${label} already has "location ${argValues(routing.existing).join(' ')}" and it does not serve files from ${webroot}${blocked ? ` (it uses "${blocked.name}")` : ''}.`, {
        hint: `Make that location serve static files: "root ${webroot};" and no return/proxy_pass, then run again.`,
      });
    }
    const serverReturn = childDirectives(server.directive).filter((d) => d.name === 'return');
    if (serverReturn.length) {
      const hasRoot = childDirectives(server.directive, 'location').some((d) => parseLocation(d)?.path === '/' && parseLocation(d)?.modifier === '');
      if (hasRoot || serverReturn.length > 1) {
        throw new AutoSslError('VHOST_UNSUPPORTED', `${label} has a server-level "return" (it runs before any location, so the challenge cannot get through) and a "location /" autossl cannot merge it into.`);
      }
      const ret = serverReturn[0]!;
      const locations = [acmeLocation(webroot), { name: 'location', args: ['/'], children: [{ name: 'return', args: ret.words.slice(1).map((w) => w.raw) }] }];
      for (const splice of replaceStatement(server.config, ret, locations, `${label}: move server-level return into location / beside the ACME location`)) builder.add(server.config, splice);
      notes.push(`${label}: server-level return moved into "location /" so the challenge gets through`);
      continue;
    }
    ensureStatements(builder, server, [acmeLocation(webroot)], label, { prefix: tree.prefix });
    notes.push(`${label}: challenge not served (${routing.reason}); adding location ^~ ${ACME_PREFIX}`);
  }
  return { edits: builder.build(), webroot, notes };
}

function tlsRoot(tree: NginxTree, names: readonly string[]): string | undefined {
  for (const name of names) {
    const tls = tree.findServers(name).https[0];
    const root = tls && childDirectives(tls.directive, 'root').map((d) => argValues(d)[0]).pop();
    if (root && !root.includes('$')) return root;
  }
  return undefined;
}
