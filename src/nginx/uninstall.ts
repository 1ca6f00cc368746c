/**
 * The inverse of the HTTPS edit: a domain's server blocks back to plain HTTP (`autossl uninstall`, the panel's
 * "delete certificate"). Planned as splices like every other edit, validated with `nginx -t` and rolled back on
 * failure by the caller; nothing here writes a file.
 *
 * It undoes the two shapes the HTTPS edit (and certbot's installer) leave:
 *  - one block serving both ports: its TLS listens, certificate pairs, HSTS header and per-host redirect go (the
 *    port-80 listens were there all along);
 *  - a TLS block beside a port-80 block that only redirects to it (the port-80 listens moved to TLS, certbot's
 *    `return 404` block, autossl's redirect block): the TLS block takes the redirect block's listens back and the
 *    redirect block goes.
 * Anything else (a TLS-only block beside a port-80 block with a site of its own) has no single "HTTP-only" form:
 * it is refused, naming the block, before anything is written.
 */
import path from 'node:path';
import { AutoSslError } from '../errors.js';
import { argValues, childDirectives, type Directive } from './parse.js';
import { isPlainHttp } from './listen.js';
import { ACME_PREFIX, parseLocation } from './routing.js';
import { removeStatement, replaceStatement, type NewStatement } from './splice.js';
import { readConfigFile, type NginxTree, type ServerBlock } from './tree.js';
import {
  alreadyRedirects,
  blockId,
  copyStatement,
  tlsSiteStatements,
  ensureBlockEditable,
  HSTS_HEADER_NAME,
  locateServers,
  PlanBuilder,
  servedCertificatePath,
  serverLabel,
  type FileEdit,
} from './edit.js';
import { answeredNames } from './names.js';
import { servedCover } from './block-cover.js';
import { covers, readCertificateQuick } from '../issuer/certificate.js';

export interface UninstallPlan {
  edits: FileEdit[];
  notes: string[];
  /** The certificate files the blocks pointed at (absolute): what may be deleted once nothing else serves them. */
  certificates: string[];
  /** False when the domain was not served over TLS at all: nothing to do. */
  served: boolean;
}

/** Directives that mean TLS and nothing else: meaningless (or refused by nginx) once the block has no TLS listen. */
const TLS_ONLY = new Set(['ssl_certificate', 'ssl_certificate_key', 'ssl', 'http2', 'http3', 'quic_retry', 'ssl_early_data', 'ssl_dhparam']);

/**
 * An `include` of TLS settings only (certbot --nginx's `include /etc/letsencrypt/options-ssl-nginx.conf`): every
 * directive of every file it names is an `ssl_*` one, so it says nothing once the block has no TLS listen. An
 * include of anything else is the site's own and stays.
 */
function includesTlsOnly(tree: NginxTree, d: Directive): boolean {
  const target = argValues(d)[0];
  if (d.name !== 'include' || !target || target.includes('*') || target.includes('$')) return false;
  const { config } = readConfigFile(path.isAbsolute(target) ? target : path.join(tree.prefix, target));
  const inside = config?.children.filter((n): n is Directive => n.kind === 'directive') ?? [];
  return inside.length > 0 && inside.every((n) => n.name.startsWith('ssl_') && !n.block);
}

/** A server-level `if (...) { return 30x https://... }`: autossl's per-host redirect or certbot's `$scheme`/`$host` one. */
function isHttpsRedirectIf(d: Directive): boolean {
  if (d.name !== 'if' || !d.block) return false;
  const inner = childDirectives(d);
  return (
    inner.length === 1 &&
    inner[0]!.name === 'return' &&
    /^30[1278]$/.test(argValues(inner[0]!)[0] ?? '') &&
    (argValues(inner[0]!)[1] ?? '').startsWith('https://')
  );
}

/** A port-80 block with nothing of its own: listens, names, the challenge, and a redirect to HTTPS. */
function onlyRedirects(tree: NginxTree, plain: ServerBlock, names: readonly string[]): boolean {
  const own = childDirectives(plain.directive).every((d) => {
    if (['listen', 'server_name', 'return', 'access_log', 'error_log'].includes(d.name)) return true;
    if (d.name === 'if') return isHttpsRedirectIf(d);
    if (d.name !== 'location') return false;
    const spec = parseLocation(d);
    return (
      spec?.path === ACME_PREFIX || spec?.path === ACME_PREFIX.slice(0, -1) || (spec?.path === '/' && childDirectives(d).every((c) => c.name === 'return'))
    );
  });
  return own && alreadyRedirects(tree, plain, names);
}

/** The maps autossl put before a block for its per-host redirect and HSTS. */
function autosslMaps(server: ServerBlock): Array<{ map: Directive; server: ServerBlock }> {
  const id = blockId(server);
  const siblings = server.directive.parent ? childDirectives(server.directive.parent) : childDirectives(server.config);
  return siblings
    .filter((d) => d.name === 'map' && (argValues(d)[1] === `$autossl_redirect_${id}` || argValues(d)[1] === `$autossl_hsts_${id}`))
    .map((map) => ({ map, server }));
}

/** Whether a TLS block holds only the port-80 block's site statements plus TLS lines: the twin the HTTPS edit writes. */
function sameSite(tls: ServerBlock, plain: ServerBlock): boolean {
  const own = childDirectives(tls.directive).filter(
    (d) =>
      d.name !== 'listen' &&
      d.name !== 'server_name' &&
      !TLS_ONLY.has(d.name) &&
      !(d.name === 'add_header' && (argValues(d)[0] ?? '').toLowerCase() === HSTS_HEADER_NAME),
  );
  const site = tlsSiteStatements(plain);
  return site.left.length === 0 && JSON.stringify(own.map(copyStatement)) === JSON.stringify(site.statements);
}

export function planUninstall(
  tree: NginxTree,
  domain: string,
  opts: { vhostFile?: string; aliases?: readonly string[]; known?: readonly string[] } = {},
): UninstallPlan {
  const located = locateServers(tree, [domain], { vhostFile: opts.vhostFile });
  const tls = located.https.get(domain) ?? null;
  const plain = located.http.get(domain) ?? null;
  if (!tls) return { edits: [], notes: [`${domain} is not served over TLS: nothing to take back`], certificates: [], served: false };
  const label = `server ${tls.names[0] ?? ''} (${serverLabel(tls)})`;
  // the block's certificate must be this domain's: a name that only shares a block with a served one has nothing to take back
  const served = servedNames(tree, tls);
  if (served && !covers(served, domain))
    return {
      edits: [],
      notes: [`${label} serves a certificate for ${served.join(', ')}, not for ${domain}: nothing to take back`],
      certificates: [],
      served: false,
    };
  // ...and taking it off must not take other sites off HTTPS with it (its own aliases go along: www.<domain> too)
  const own = new Set([domain, `www.${domain}`, ...(opts.aliases ?? [])]);
  const others = answeredNames(tree, tls, 'https').exact.filter((n) => !own.has(n) && (!served || covers(served, n)));
  // ...nor names a wildcard or regex server_name answers that the certificate covers (b.wild.test beside a.wild.test)
  const cover = servedCover(tree, tls, opts.known);
  for (const n of [...cover.names, ...cover.patterns]) if (!own.has(n) && !others.includes(n)) others.push(n);
  if (others.length) {
    throw new AutoSslError(
      'VHOST_CERT_CONFLICT',
      `${label} also serves ${others.join(', ')} over HTTPS with the same certificate; taking ${domain} off HTTPS would take ${others.length > 1 ? 'them' : 'it'} off too. Nothing was changed.`,
      {
        hint: `Delete the site the block belongs to (${others[0]}) instead, or give ${domain} a server block of its own first.`,
      },
    );
  }
  ensureBlockEditable(tree, tls);
  const builder = new PlanBuilder();
  const notes: string[] = [];
  const certificates: string[] = [];

  // a TLS block beside a port-80 block that redirects to HTTPS and keeps a site of its own (the HTTPS edit adds such
  // a TLS block when port 80 only redirected): the whole TLS block goes, port 80 redirects as it did before
  // (only when the TLS block says nothing but what the port-80 block says: a TLS block written by hand is refused below)
  const twin =
    plain !== null &&
    plain !== tls &&
    !tls.listens.some((l) => isPlainHttp(l)) &&
    !onlyRedirects(tree, plain, [domain]) &&
    alreadyRedirects(tree, plain, [domain]) &&
    sameSite(tls, plain);
  // what only TLS needs, from the block itself; the same in a snippet it includes is shared with other servers
  for (const d of childDirectives(tls.directive)) {
    if (d.name === 'ssl_certificate' || d.name === 'ssl_certificate_key') {
      const p = argValues(d)[0];
      if (p && !p.includes('$')) certificates.push(path.isAbsolute(p) ? p : path.join(tree.prefix, p));
    }
    const hsts = d.name === 'add_header' && (argValues(d)[0] ?? '').toLowerCase() === HSTS_HEADER_NAME;
    const tlsSettings = includesTlsOnly(tree, d);
    if ((TLS_ONLY.has(d.name) || hsts || tlsSettings) && !twin)
      builder.add(
        tls.config,
        removeStatement(
          tls.config,
          d,
          `${label}: remove ${d.name}${hsts ? ' Strict-Transport-Security' : tlsSettings ? ` ${argValues(d)[0]} (TLS settings only)` : ''}`,
        ),
      );
  }
  for (const inc of tls.includes) {
    const { config } = readConfigFile(inc);
    const shared = config?.children.find((n): n is Directive => n.kind === 'directive' && (n.name === 'ssl_certificate' || n.name === 'ssl_certificate_key'));
    if (shared) {
      throw new AutoSslError(
        'VHOST_UNSUPPORTED',
        `${label} takes its certificate from ${inc}, a file it includes (other servers may too); autossl does not edit it there.`,
        {
          hint: `Move "ssl_certificate" and "ssl_certificate_key" from ${inc} into the server block, or take the block off HTTPS by hand.`,
        },
      );
    }
  }
  const tlsListens = tls.listens.filter((l) => !isPlainHttp(l) && !l.unix);
  const foreign = tlsListens.find((l) => l.directive.parent !== tls.directive);
  if (foreign) {
    throw new AutoSslError(
      'VHOST_UNSUPPORTED',
      `${label} gets its TLS listen from a file it includes (${foreign.directive.words.map((w) => w.raw).join(' ')}); autossl does not edit shared snippets.`,
      {
        hint: 'Move the TLS "listen" into the server block, or take the block off HTTPS by hand.',
      },
    );
  }

  if (plain === tls) {
    // one block for both ports: the TLS listens go, the port-80 ones stay; so does the per-host redirect
    for (const l of tlsListens) builder.add(tls.config, removeStatement(tls.config, l.directive, `${label}: remove listen ${l.socket} ssl`));
    for (const d of childDirectives(tls.directive))
      if (isHttpsRedirectIf(d)) builder.add(tls.config, removeStatement(tls.config, d, `${label}: remove the redirect to HTTPS`));
  } else if (plain && onlyRedirects(tree, plain, [domain])) {
    const plainLabel = `server ${plain.names[0] ?? ''} (${serverLabel(plain)})`;
    const strays = uncoveredByTls(tree, plain, tls);
    if (strays.length) {
      throw new AutoSslError(
        'VHOST_UNSUPPORTED',
        `${plainLabel} redirects ${strays.join(', ')} too, which ${label} does not serve; taking it away would leave them unanswered.`,
        {
          hint: `Take ${domain} out of ${plainLabel}'s server_name by hand, then run again.`,
        },
      );
    }
    if (plain.listens.some((l) => l.implicit || l.directive.parent !== plain.directive)) {
      throw new AutoSslError(
        'VHOST_UNSUPPORTED',
        `${plainLabel} takes its port-80 listen from nginx's default or a snippet; autossl cannot move it into ${label}.`,
        { hint: 'Give the port-80 block an explicit "listen 80;" line, then run again.' },
      );
    }
    // the TLS block answers port 80 again, on the redirect block's own listens (their options kept), and the redirect block goes
    const listens: NewStatement[] = plain.listens.map((l) => ({ name: 'listen', args: l.directive.words.slice(1).map((w) => w.raw) }));
    if (!tlsListens.length) throw new AutoSslError('VHOST_UNSUPPORTED', `${label} serves TLS without a listen of its own.`);
    for (const splice of replaceStatement(
      tls.config,
      tlsListens[0]!.directive,
      listens,
      `${label}: listen on port 80 again (${listens.map((l) => l.args.join(' ')).join('; ')})`,
    ))
      builder.add(tls.config, splice);
    for (const l of tlsListens.slice(1)) builder.add(tls.config, removeStatement(tls.config, l.directive, `${label}: remove listen ${l.socket} ssl`));
    builder.add(plain.config, removeStatement(plain.config, plain.directive, `${plainLabel}: remove the port-80 block that redirected to HTTPS`));
    notes.push(`${plainLabel} only redirected to HTTPS: removed; ${label} answers port 80 again`);
  } else if (twin) {
    builder.add(tls.config, removeStatement(tls.config, tls.directive, `${label}: remove the TLS server block`));
    notes.push(`${label} served ${domain} over TLS beside a port-80 block that redirects to HTTPS: removed; port 80 redirects as before`);
  } else {
    const why = plain ? `${plain.file}:${serverLabel(plain).split(':').pop()} serves its own site on port 80` : 'no block answers it on port 80';
    throw new AutoSslError('VHOST_UNSUPPORTED', `${label} serves ${domain} over TLS only, and ${why}: there is no single HTTP-only form to return it to.`, {
      hint: `Remove the TLS server block (or its certificate lines) by hand; autossl only takes back the shapes it (or certbot) writes.`,
    });
  }
  // the maps of the per-host redirect and HSTS (blocks with the same names share them: each goes once)
  const maps = new Map([...autosslMaps(tls), ...(plain ? autosslMaps(plain) : [])].map((m) => [m.map, m.server]));
  for (const [map, server] of maps) builder.add(server.config, removeStatement(server.config, map, `${label}: remove map ${argValues(map)[1]}`));
  return { edits: builder.build(), notes, certificates: [...new Set(certificates)], served: true };
}

/** The names on the first readable certificate the block points at (null when none can be read). */
function servedNames(tree: NginxTree, block: ServerBlock): string[] | null {
  const file = servedCertificatePath(tree, block);
  if (!file) return null;
  try {
    const names = readCertificateQuick(file).names;
    return names.length ? names : null; // no DNS names (a CN-only certificate): nothing to compare with
  } catch {
    return null;
  }
}

/** Names the port-80 block answers that the TLS block does not (they would lose their only answer). */
function uncoveredByTls(tree: NginxTree, plain: ServerBlock, tls: ServerBlock): string[] {
  const theirs = new Set(tls.names.map((n) => n.toLowerCase()));
  return plain.names.filter((n) => !theirs.has(n.toLowerCase()) && tree.findServers(n).http[0] === plain);
}
