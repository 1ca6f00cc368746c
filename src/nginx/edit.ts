/**
 * The HTTPS edits, planned as splices on the files of a loaded NginxTree. Each edit is idempotent: planning
 * it again on its own output yields no splice. Nothing here writes a file; see transaction.ts for that.
 *
 * Edits arrive as a `VhostEdit`: two nginx-conf trees (`https`, `http`) holding the directives and blocks to
 * ensure in the TLS server and in the port-80 server. Plugins change those trees through nginx-conf's API on the
 * `vhost` hook; this module decides where each statement goes in the user's file and what "already there"
 * means for it (see `ensureKey`).
 */
import nginxConf from 'nginx-conf';
import type { NginxConfItem } from 'nginx-conf/dist/src/conf.js';
import { AutoSslError } from '../errors.js';
import { normalizeDomain } from '../domain.js';
import { argValues, childDirectives, parseConfig, type Directive, type ParsedConfig } from './parse.js';
import { isPlainHttp, listenAddress, optionName, parseListen, SOCKET_OPTIONS, type Listen } from './listen.js';
import { insertAfter, insertAtBlockStart, insertBlockAfter, replaceArgs, replaceStatement, spliceAndVerify, type NewStatement, type Splice } from './splice.js';
import { ACME_PREFIX, challengeRouting, parseLocation } from './routing.js';
import { readConfigFile, type NginxTree, type ServerBlock } from './tree.js';

const { NginxConfFile } = nginxConf;

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
  return { names, https: newServerTree(), http: newServerTree(), redirect };
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

/** Finds the server blocks for the names; refuses names nginx does not serve and ambiguous matches. */
export function locateServers(tree: NginxTree, names: readonly string[]): { http: Map<string, ServerBlock | null>; https: Map<string, ServerBlock | null> } {
  for (const n of names) normalizeDomain(n); // a domain never reaches a config line unvalidated
  const http = new Map<string, ServerBlock | null>();
  const https = new Map<string, ServerBlock | null>();
  for (const name of names) {
    const found = tree.findServers(name);
    if (found.http.length > 1) {
      throw new AutoSslError('VHOST_AMBIGUOUS', `${name} is served on port 80 by ${found.http.length} server blocks equally: ${found.http.map(serverLabel).join(', ')}.`);
    }
    if (found.https.length > 1) {
      throw new AutoSslError('VHOST_AMBIGUOUS', `${name} is served over TLS by ${found.https.length} server blocks equally: ${found.https.map(serverLabel).join(', ')}.`);
    }
    if (found.http.length === 0 && found.https.length === 0) {
      if (tree.errors.length) {
        // the name may well be in a file autossl could not read: never guess, say where the syntax breaks
        throw new AutoSslError('NGINX_PARSE_ERROR', `${name} was not found, and autossl cannot read ${tree.errors.map((e) => e.message).join('; ')}.`, { details: tree.errors[0]!.details });
      }
      throw new AutoSslError('VHOST_NOT_FOUND', `No server block in ${tree.mainFile} or its includes has server_name ${name}.`);
    }
    http.set(name, found.http[0] ?? null);
    https.set(name, found.https[0] ?? null);
  }
  return { http, https };
}

function ensureBlockEditable(tree: NginxTree, server: ServerBlock): void {
  const broken = tree.errors.find((e) => (e.details.file as string | undefined) === server.file);
  if (broken) throw broken;
}

/**
 * What "already there" means for a statement: two statements with the same key are the same setting.
 * Repeatable directives are keyed by their first argument (one add_header per header name).
 */
function ensureKey(statement: { name: string; args: string[] }): string {
  const repeatable = ['add_header', 'proxy_set_header', 'fastcgi_param', 'set', 'more_set_headers', 'include', 'map', 'error_page'];
  if (statement.name === 'location') return `location ${statement.args.join(' ')}`;
  if (repeatable.includes(statement.name)) return `${statement.name} ${(statement.args[0] ?? '').toLowerCase()}`;
  return statement.name;
}

function existingKey(d: Directive): string {
  return ensureKey({ name: d.name, args: d.words.slice(1).map((w) => w.raw) });
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

/** Ensures generic statements (not listen) in a server block: add what is missing, update what differs. */
function ensureStatements(builder: PlanBuilder, server: ServerBlock, statements: readonly NewStatement[], label: string): void {
  const existing = new Map<string, Directive>();
  for (const d of childDirectives(server.directive)) existing.set(existingKey(d), d);
  const missingLocations: NewStatement[] = [];
  const missing: NewStatement[] = [];
  for (const statement of statements) {
    if (statement.name === 'listen') continue;
    const current = existing.get(ensureKey(statement));
    if (!current) {
      (statement.children ? missingLocations : missing).push(statement);
      continue;
    }
    if (statement.children) continue; // a block the user already has is theirs: never rewritten
    const currentArgs = current.words.slice(1).map((w) => w.raw);
    if (currentArgs.join(' ') !== statement.args.join(' ')) {
      builder.add(server.config, replaceArgs(current, statement.args, `${label}: ${statement.name} ${currentArgs.join(' ')} -> ${statement.args.join(' ')}`));
    }
  }
  // A setting written in a snippet this server includes is shared with other servers: not ours to change.
  for (const statement of [...missing]) {
    for (const inc of server.includes) {
      const { config } = readConfigFile(inc);
      const shared = config?.children.find((n): n is Directive => n.kind === 'directive' && existingKey(n) === ensureKey(statement));
      if (!shared) continue;
      const sharedArgs = shared.words.slice(1).map((w) => w.raw).join(' ');
      if (sharedArgs !== statement.args.join(' ')) {
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
  const located = locateServers(tree, edit.names);
  const builder = new PlanBuilder();
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
    ensureStatements(builder, target, httpsStatements, label);
    addEndpoints(tlsEndpoints, target, name, port, tls === null);
  }
  if (httpStatements.length || edit.redirect) {
    const httpDone = new Set<ServerBlock>();
    for (const name of edit.names) {
      const plain = located.http.get(name) ?? null;
      if (!plain || httpDone.has(plain)) continue;
      httpDone.add(plain);
      ensureBlockEditable(tree, plain);
      const label = `server ${plain.names[0] ?? ''} (${serverLabel(plain)})`;
      ensureStatements(builder, plain, httpStatements, label);
      if (edit.redirect) planRedirect(builder, plain, located.https.get(name) ?? null, label);
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
function planRedirect(builder: PlanBuilder, plain: ServerBlock, tls: ServerBlock | null, label: string): void {
  const routing = challengeRouting(plain);
  const hasServerReturn = childDirectives(plain.directive).some((d) => d.name === 'return');
  if (hasServerReturn) return; // already a redirect block (the challenge stage made it challenge-safe)
  if (tls && tls !== plain) {
    // a separate port-80 block: it becomes the redirect unless it serves a site of its own
    if (childDirectives(plain.directive, 'location').some((d) => parseLocation(d)?.path === '/')) return;
    ensureStatements(builder, plain, [REDIRECT], label);
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
export function planChallengeEdit(tree: NginxTree, names: readonly string[], opts: { documentRoot?: string; fallbackWebroot: string }): ChallengePlan {
  const located = locateServers(tree, names);
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
    ensureStatements(builder, server, [acmeLocation(webroot)], label);
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
