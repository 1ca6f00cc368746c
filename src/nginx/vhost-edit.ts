/**
 * The `vhost` hook's payload (`VhostEdit`): two builders (`https`, `http`, see pipeline/directives.ts) holding the
 * directives and blocks to ensure in the TLS server and in the port-80 server, plus removals and identity rules.
 * Plugins fill them on the `vhost` hook; statementsOf() reads them back as statements, each word through the
 * writer's gate.
 */
import fs from 'node:fs';
import { AutoSslError, quote } from '../errors.js';
import { parseConfig } from './parse.js';
import type { NewStatement } from './splice.js';
import type { ServerBlock } from './tree.js';
import { serverView, type ServerView } from './view.js';
import { nginxValue } from './value.js';
import type { DomainContext } from '../pipeline/context.js';
import { Directives } from '../pipeline/directives.js';
import { installTargets, locateServers } from './locate.js';

/** How a directive is told apart from others of its name when deciding whether it is "already there". */
export type IdentityRule = 'name' | 'first-arg';

/** The `vhost` hook's payload. */
export interface VhostEdit {
  /** The certificate's names; the first is the main one. */
  names: string[];
  /** Directives and blocks to ensure in the server that answers TLS for the names (`edit.https.add(name, value)`). */
  https: Directives;
  /** Directives and blocks to ensure in the server that answers plain HTTP on port 80. */
  http: Directives;
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

/** An empty server block to fill through the builder (`add(name, value)`, `block(...)`). */
export function newServerTree(): Directives {
  return new Directives();
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
      if (typeof name !== 'string' || !/^[a-z_][a-z0-9_]*$/.test(name))
        throw new AutoSslError('PLUGIN_ERROR', `edit.remove: ${quote(name)} is not a directive name.`);
      if (firstArg !== undefined && (typeof firstArg !== 'string' || /[\u0000-\u001f]/.test(firstArg)))
        throw new AutoSslError('PLUGIN_ERROR', `edit.remove: the first argument must be a plain string, got ${quote(firstArg)}.`);
      removals.push({ where, name, ...(firstArg === undefined ? {} : { firstArg }) });
    },
    identity,
    keyBy(name, rule) {
      if (rule !== 'name' && rule !== 'first-arg')
        throw new AutoSslError('PLUGIN_ERROR', `edit.keyBy: the rule must be "name" or "first-arg", got ${quote(rule)}.`);
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
    const views = (m: Map<string, ServerBlock | null>): ServerView[] =>
      [...new Set([...m.values()].filter((s): s is ServerBlock => s !== null))].map(serverView);
    edit.current = { https: views(located.https), http: views(located.http) };
  } catch {
    // the edit itself reports what cannot be found, with the error it deserves
  }
  return edit;
}

/**
 * Reads the builder back into statements, validating every value with our own nginx lexer; each word then passes the
 * writer's gate (nginxValue), which refuses control and bidi characters and writes the word's UTF-8 bytes.
 */
export function statementsOf(item: Directives, owner = 'vhost edit'): NewStatement[] {
  const out: NewStatement[] = [];
  for (const { name, value, block } of item.list()) {
    // a name that is not a string (a plugin in plain JavaScript) is refused below like any non-name
    const what = `value of "${String(name)}" (${owner})`;
    if (value !== '') nginxValue(value, { what, kind: 'words', variables: true, code: 'PLUGIN_ERROR' });
    let parsed;
    try {
      parsed = parseConfig(`${name} ${value};`, owner);
    } catch {
      throw new AutoSslError('PLUGIN_ERROR', `${owner}: the value ${JSON.stringify(value)} of "${name}" is not valid nginx syntax.`);
    }
    const directive = parsed.children[0];
    if (parsed.children.length !== 1 || directive?.kind !== 'directive' || directive.block || !/^[a-z_][a-z0-9_]*$/.test(name)) {
      throw new AutoSslError('PLUGIN_ERROR', `${owner}: "${name} ${value}" must be exactly one directive (no ";", "{" or "}" in a value).`);
    }
    const statement: NewStatement = {
      name,
      args: directive.words.slice(1).map((w) => nginxValue(w.raw, { what, kind: 'words', variables: true, code: 'PLUGIN_ERROR' })),
    };
    if (block) statement.children = statementsOf(block, owner);
    out.push(statement);
  }
  return out;
}

/**
 * A path as a plugin value (the builder takes JS strings; statementsOf() writes them): refused when nginx
 * would read it as anything but one literal word, so it never needs quotes.
 */
export function pathToken(value: string, what = 'path'): string {
  nginxValue(value, { what });
  return value;
}
