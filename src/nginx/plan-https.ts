/**
 * The HTTPS edit for a certificate: TLS listens, certificate paths and the `vhost` hook's statements in the TLS server
 * of each name, the port-80 statements and the optional redirect. Nothing here writes a file (see transaction.ts).
 */
import { AutoSslError } from '../errors.js';
import { childDirectives } from './parse.js';
import { isPlainHttp } from './listen.js';
import { insertBlockAfter, replaceArgs, type NewStatement } from './splice.js';
import { answeredNames, uncovered } from './names.js';
import { defaultServerAnswers } from './default-server.js';
import type { NginxTree, ServerBlock } from './tree.js';
import { statementsOf, type VhostEdit } from './vhost-edit.js';
import { installTargets, serverLabel, locateServers, ensureBlockEditable } from './locate.js';
import { PlanBuilder, type FileEdit } from './plan-builder.js';
import { applyRemovals, ensureStatements, placeStatements, type EnsureRules } from './ensure.js';
import { mirrorListens, usesHttp2Directive, type PlannedListens } from './listen-mirror.js';
import { BeforeBlocks } from './host-maps.js';
import { hstsPerHost } from './hsts.js';
import { redirectsToItself, tlsSiteStatements, tlsInstallProblem, TLS_INSTALL_HINT } from './tls-twin.js';
import { alreadyRedirects, planRedirect } from './redirect.js';

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
    if (tlsLeftOut.length)
      notes.push(`${label(target)} also answers ${tlsLeftOut.join(', ')} over TLS, which the certificate does not cover: those get no HSTS`);
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
      const block: NewStatement = {
        name: 'server',
        args: [],
        children: [...add, { name: 'server_name', args: names }, ...site.statements, ...httpsStatements.filter((st) => st.name !== 'listen')],
      };
      builder.add(
        target.config,
        insertBlockAfter(
          target.config,
          target.directive,
          [block],
          `${label(target)}: add a TLS server beside it for ${names.join(', ')} (its port 80 only redirects to HTTPS)`,
        ),
      );
      notes.push(
        `${label(target)} answers port 80 only with a redirect to HTTPS: the certificate goes into a new TLS server block beside it, with the block's other lines`,
      );
      addEndpoints(tlsEndpoints, target, name, port, true);
      continue;
    }
    if (!tls && listenSpec) {
      const { add, upgrade, sources } = mirrorListens(tree, target, port, http2 && !newHttp2, planned);
      const movable = sources.length === add.length && sources.every((l) => !l.implicit && l.directive.parent === target.directive);
      if (edit.redirect && movable && httpUncovered(target).length === 0 && !alreadyRedirects(tree, target, edit.names)) {
        // The port-80 listens move to a new redirect block (planRedirect); here they become the TLS ones.
        sources.forEach((l, i) =>
          builder.add(
            target.config,
            replaceArgs(l.directive, add[i]!.args, `${label(target)}: listen ${l.socket} -> ${add[i]!.args.join(' ')} (port 80 moves to a redirect block)`),
          ),
        );
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
      if (leftOut.length)
        notes.push(
          `${label(plain)} also answers ${leftOut.join(', ')} on port 80, which the certificate does not cover: those keep answering over HTTP as before; only the certificate's names are redirected`,
        );
      const tlsTarget = located.https.get(name) ?? plain;
      planRedirect(
        { tree, builder, before, rules, certNames: edit.names, webroot: edit.webroot },
        plain,
        tlsTarget,
        label,
        leftOut.length > 0,
        movedListens.has(plain),
      );
    }
  }
  before.flush(builder, label);
  return { edits: builder.build(), tlsEndpoints, notes };
}

function addEndpoints(out: EditPlan['tlsEndpoints'], server: ServerBlock, name: string, port: number, mirrored: boolean): void {
  const sockets = mirrored
    ? server.listens.filter(isPlainHttp).map((l) => ({ host: l.host, port }))
    : server.listens.filter((l) => l.ssl && !l.unix).map((l) => ({ host: l.host, port: l.port ?? port }));
  // a wildcard name is checked with a name it covers (SNI cannot be "*.x")
  const servername = name.startsWith('*.') ? `autossl-check${name.slice(1)}` : name;
  for (const s of sockets) {
    const host = s.host === '*' ? '127.0.0.1' : s.host === '[::]' ? '::1' : s.host.replace(/^\[|\]$/g, '');
    if (!out.some((e) => e.host === host && e.port === s.port && e.servername === servername)) out.push({ host, port: s.port, servername });
  }
}
