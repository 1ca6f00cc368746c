/**
 * Ensuring statements in a server block: what "already there" means for a directive (its identity), where missing
 * lines go, and the removals a plugin asks for. Shared by the HTTPS, redirect and HTTP-01 planning.
 */
import path from 'node:path';
import { AutoSslError } from '../errors.js';
import { argValues, childDirectives, parseConfig, type Directive } from './parse.js';
import { insertAfter, insertAtBlockStart, removeStatement, replaceArgs, type NewStatement } from './splice.js';
import { parseLocation } from './routing.js';
import { readConfigFile, type ServerBlock } from './tree.js';
import { readCertificateQuick } from '../issuer/certificate.js';
import type { IdentityRule, VhostEdit } from './vhost-edit.js';
import { fileRoot } from './locate.js';
import { PlanBuilder } from './plan-builder.js';

/**
 * Directives nginx lets one block hold several times, once per key (their first argument: a header, a parameter, a
 * variable, a status code).
 */
export const REPEATABLE_BY_KEY: readonly string[] = [
  'add_header',
  'add_trailer',
  'more_set_headers',
  'more_clear_headers',
  'proxy_set_header',
  'proxy_hide_header',
  'proxy_pass_header',
  'fastcgi_param',
  'fastcgi_hide_header',
  'uwsgi_param',
  'scgi_param',
  'grpc_set_header',
  'set',
  'map',
  'include',
  'error_page',
  'ssl_conf_command',
  'sub_filter',
  'env',
  'allow',
  'deny',
];

/** The values nginx sees for raw argument text ("a" and a are the same argument). */
export function valuesOf(args: readonly string[]): string[] {
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
      const spec = parseLocation({
        kind: 'directive',
        name,
        words: [{ raw: name, value: name, start: 0, end: 0, quoted: false }, ...values.map((v) => ({ raw: v, value: v, start: 0, end: 0, quoted: false }))],
        start: 0,
        end: 0,
        innerComments: [],
        parent: null,
      });
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

export function placeStatements(builder: PlanBuilder, server: ServerBlock, statements: NewStatement[], anchorNames: readonly string[], why: string): void {
  if (statements.length === 0) return;
  const anchor = anchorFor(server.directive, anchorNames);
  builder.add(
    server.config,
    anchor ? insertAfter(server.config, anchor, statements, why) : insertAtBlockStart(server.config, server.directive, statements, why),
  );
}

export interface EnsureRules {
  identity?: ReadonlyMap<string, IdentityRule>;
  keyType?: string;
  prefix: string;
}

/** Ensures generic statements (not listen) in a server block: add what is missing, update what differs. */
export function ensureStatements(builder: PlanBuilder, server: ServerBlock, statements: readonly NewStatement[], label: string, rules: EnsureRules): void {
  const ids = new Identities(server, rules.identity ?? new Map(), rules.keyType, rules.prefix);
  const existing = new Map<string, Directive>();
  for (const d of childDirectives(server.directive)) {
    const id = ids.of(
      d.name,
      d.words.slice(1).map((w) => w.raw),
      d,
    );
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
      const shared = config?.children.find(
        (n): n is Directive =>
          n.kind === 'directive' &&
          ids.of(
            n.name,
            n.words.slice(1).map((w) => w.raw),
          ) === ids.of(statement.name, statement.args),
      );
      if (!shared) continue;
      const sharedArgs = shared.words
        .slice(1)
        .map((w) => w.raw)
        .join(' ');
      if (valuesOf(shared.words.slice(1).map((w) => w.raw)).join('\u0000') !== valuesOf(statement.args).join('\u0000')) {
        throw new AutoSslError(
          'VHOST_UNSUPPORTED',
          `${label}: "${statement.name}" is set in ${inc}, a file it includes (and other servers may too), to ${sharedArgs}.`,
          {
            hint: `Move "${statement.name}" out of ${inc} into the server block, or point it at ${statement.args.join(' ')} yourself.`,
          },
        );
      }
      missing.splice(missing.indexOf(statement), 1);
    }
  }
  placeStatements(
    builder,
    server,
    missing,
    ['ssl_certificate_key', 'ssl_certificate', 'server_name', 'listen'],
    `${label}: add ${missing.map((s) => s.name).join(', ')}`,
  );
  if (missingLocations.length) {
    const firstLocation = childDirectives(server.directive, 'location')[0];
    const why = `${label}: add ${missingLocations.map((s) => [s.name, ...s.args].join(' ')).join(', ')}`;
    const anchor = firstLocation ? null : anchorFor(server.directive, ['root', 'index', 'ssl_certificate_key', 'server_name', 'listen']);
    if (anchor) builder.add(server.config, insertAfter(server.config, anchor, missingLocations, why));
    else if (firstLocation) {
      // before the first location: after the statement preceding it, or at the start of the block
      const children = childDirectives(server.directive);
      const prev = children[children.indexOf(firstLocation) - 1];
      builder.add(
        server.config,
        prev ? insertAfter(server.config, prev, missingLocations, why) : insertAtBlockStart(server.config, server.directive, missingLocations, why),
      );
    } else builder.add(server.config, insertAtBlockStart(server.config, server.directive, missingLocations, why));
  }
}

/** Takes out the directives a plugin asked to remove (only from the block itself: a snippet is shared). */
export function applyRemovals(builder: PlanBuilder, server: ServerBlock, removals: VhostEdit['removals'], label: string): void {
  for (const r of removals) {
    for (const d of childDirectives(server.directive, r.name)) {
      if (r.firstArg !== undefined && (argValues(d)[0] ?? '').toLowerCase() !== r.firstArg.toLowerCase()) continue;
      builder.add(server.config, removeStatement(server.config, d, `${label}: remove ${r.name}${r.firstArg ? ` ${r.firstArg}` : ''}`));
    }
    for (const inc of server.includes) {
      const { config } = readConfigFile(inc);
      const shared = config?.children.some(
        (n) => n.kind === 'directive' && n.name === r.name && (r.firstArg === undefined || (argValues(n)[0] ?? '').toLowerCase() === r.firstArg.toLowerCase()),
      );
      if (shared) {
        throw new AutoSslError(
          'VHOST_UNSUPPORTED',
          `${label}: "${r.name}" is set in ${inc}, a file it includes (other servers may too); autossl does not remove it there.`,
          { hint: `Remove "${r.name}" from ${inc} yourself, or move it into the server blocks that need it.` },
        );
      }
    }
  }
}
