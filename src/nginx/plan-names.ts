/**
 * Planning what one certificate must cover (the Installer's planNames; the plan stage is src/stages/plan.ts), from what the server blocks serve:
 *  - one block, one certificate: a server block holds one certificate (per key type), so configured sites whose
 *    names land on the same block share one certificate, planned identically from either site (the lineage of the
 *    site first in the config), instead of each re-pointing the block away from the other;
 *  - a block already serving other names over HTTPS with a certificate that covers them is never re-pointed to one
 *    that does not: those names are added (`blockNames: "cover"`) or the run is refused before any order
 *    (VHOST_CERT_CONFLICT);
 *  - `blockNames: "cover"` adds the block's other names; one whose pre-flight fails is left out, and said so.
 */
import path from 'node:path';
import type { AutoSslConfig, SiteConfig } from '../config/schema.js';
import { AutoSslError } from '../errors.js';
import { covers, readCertificateQuick } from '../issuer/certificate.js';
import type { DomainPlan } from '../pipeline/context.js';
import { blockLabel, lostCover, servedCover } from './block-cover.js';
import { servedCertificatePath, tlsInstallProblem, TLS_INSTALL_HINT } from './edit.js';
import { certificateBlock } from './locate.js';
import { answeredNames } from './names.js';
import { lineColumn } from './parse.js';
import { routeEnv, routeRequest } from './routing.js';
import { sharedCertificateHint, sharedCertificateProblem } from './shared-snippets.js';
import type { NginxTree, ServerBlock } from './tree.js';
import { serverView } from './view.js';

/** The issuer's lineages as planning needs them: the lineage a served certificate path is in, and a lineage's fullchain path. */
export interface PlanLineages {
  of(file: string): string | undefined;
  fullchain(id: string): string;
}

function label(server: ServerBlock): string {
  return `${server.file}:${lineColumn(server.config.source, server.directive.start).line}`;
}

/** The names of the certificate a TLS block serves now (the first pair that can be read), or null. */
export function servedCertificateNames(tree: NginxTree, block: ServerBlock): string[] | null {
  for (const d of serverView(block).directives) {
    if (d.name !== 'ssl_certificate' || !d.args[0] || d.args[0].includes('$')) continue;
    try {
      return readCertificateQuick(path.isAbsolute(d.args[0]) ? d.args[0] : path.join(tree.prefix, d.args[0])).names;
    } catch {
      continue;
    }
  }
  return null;
}

/**
 * The certbot lineage a block serves now, when it covers every planned name and the block answers every name on it
 * (the certificate `certbot --nginx` installed): its name and names, the planned domain first.
 */
function servedLineage(
  lineages: PlanLineages,
  tree: NginxTree,
  blocks: ReadonlySet<ServerBlock>,
  planned: readonly string[],
): { name: string; names: string[] } | null {
  for (const block of blocks) {
    if (!block.listens.some((l) => l.ssl)) continue;
    const file = servedCertificatePath(tree, block);
    const name = file ? lineages.of(file) : undefined;
    if (!file || !name) continue;
    let certNames: string[];
    try {
      certNames = readCertificateQuick(file).names;
    } catch {
      continue;
    }
    const answered = new Set([...answeredNames(tree, block, 'https').exact, ...answeredNames(tree, block, 'http').exact]);
    if (!planned.every((n) => covers(certNames, n)) || !certNames.every((n) => answered.has(n) || n.startsWith('*.'))) continue;
    return { name, names: [planned[0]!, ...certNames.filter((n) => n !== planned[0])] };
  }
  return null;
}

/** Configured sites (other than `site`) whose names land on one of `blocks`. */
export function sitesSharing(config: AutoSslConfig, tree: NginxTree, site: SiteConfig, blocks: ReadonlySet<ServerBlock>): SiteConfig[] {
  return config.sites.filter(
    (s) =>
      s.domain !== site.domain &&
      [s.domain, ...s.aliases].some((n) => {
        const b = certificateBlock(tree, n, s.vhost);
        return b !== null && blocks.has(b);
      }),
  );
}

export function planNames(config: AutoSslConfig, tree: NginxTree, plan: DomainPlan, lineages: PlanLineages): DomainPlan {
  const blocks = new Set<ServerBlock>();
  for (const n of plan.names) {
    const b = certificateBlock(tree, n, plan.site.vhost);
    if (b) blocks.add(b);
  }
  if (!blocks.size) return plan;
  let names = [...plan.names];
  const notes = [...plan.notes];
  let certName = plan.certName;
  // a domain no config names, served already with a certbot lineage (certbot --nginx set it up): that lineage, as it is
  const adopted = config.sites.some((s) => s.domain === plan.site.domain) ? null : servedLineage(lineages, tree, blocks, names);
  if (adopted) {
    if (adopted.names.join(' ') !== names.join(' ') || adopted.name !== certName)
      notes.push(`${plan.site.domain} is served with certbot's lineage ${adopted.name} (${adopted.names.join(', ')}): kept as it is`);
    names = adopted.names;
    certName = adopted.name;
  }
  // one block, one certificate: the configured sites sharing these blocks get one certificate, whichever runs
  const sharing = sitesSharing(config, tree, plan.site, blocks);
  if (sharing.length) {
    const group = [plan.site, ...sharing].sort((a, b) => config.sites.indexOf(a) - config.sites.indexOf(b));
    for (const s of sharing) for (const n of [s.domain, ...s.aliases]) if (!names.includes(n)) names.push(n);
    const first = group[0]!;
    certName = first.certName ?? first.domain.replace(/^\*\./, '');
    notes.push(
      `${group.map((s) => s.domain).join(' and ')} are served by the same server block (${[...blocks].map(label).join(', ')}), which holds one certificate: one certificate (lineage ${certName}) covers ${names.join(', ')}`,
    );
  }
  // names the block answers for that are not in the certificate yet
  const optional: string[] = [];
  const mustKeep: string[] = [];
  for (const block of blocks) {
    const served = block.listens.some((l) => l.ssl) ? servedCertificateNames(tree, block) : null;
    const answeredTls = answeredNames(tree, block, 'https').exact;
    const answeredHttp = answeredNames(tree, block, 'http').exact;
    for (const n of new Set([...answeredHttp, ...answeredTls])) {
      if (covers(names, n)) continue;
      const servedNow = served !== null && answeredTls.includes(n) && covers(served, n);
      if (plan.site.blockNames === 'cover') optional.push(n);
      else if (servedNow) mustKeep.push(n);
    }
  }
  if (mustKeep.length) {
    throw new AutoSslError(
      'VHOST_CERT_CONFLICT',
      `The server block ${[...blocks].map(label).join(', ')} serves ${mustKeep.join(', ')} over HTTPS today with a certificate that covers ${mustKeep.length > 1 ? 'them' : 'it'}; a certificate for ${names.join(', ')} alone would take ${mustKeep.length > 1 ? 'them' : 'it'} off HTTPS. Nothing was ordered.`,
      {
        hint: `Add ${mustKeep.join(', ')} to the site's aliases, or give the site "blockNames": "cover" (names whose pre-flight fails are then left out), or move ${mustKeep.length > 1 ? 'them' : 'it'} to a server block of ${mustKeep.length > 1 ? 'their' : 'its'} own.`,
        details: { names: mustKeep, blocks: [...blocks].map(label) },
      },
    );
  }
  for (const n of optional) if (!names.includes(n)) names.push(n);
  names = keepBlockCover(config, tree, plan, blocks, names, notes);
  // what the HTTPS edit would refuse (a redirect whose target cannot be worked out) is refused now, before any order
  const problem = tlsInstallProblem(tree, names, config.nginx.httpsPort);
  if (problem) throw new AutoSslError('VHOST_UNSUPPORTED', problem, { hint: TLS_INSTALL_HINT });
  // ...and a certificate set in a snippet the block shares with others, which the HTTPS edit will not change
  const fullchain = lineages.fullchain(certName);
  for (const block of blocks) {
    const shared = sharedCertificateProblem(block, fullchain, `server ${block.names[0] ?? ''} (${label(block)})`);
    if (shared) throw new AutoSslError('VHOST_UNSUPPORTED', shared, { hint: sharedCertificateHint(fullchain) });
  }
  notes.push(
    ...redirectTargetNotes(
      tree,
      names,
      config.sites.flatMap((s) => [s.domain, ...s.aliases]),
    ),
  );
  if (optional.length)
    notes.push(`blockNames "cover": adding ${optional.join(', ')} (the block's other names) to the certificate, each only if its own pre-flight passes`);
  return { ...plan, names, certName, notes, optionalNames: [...plan.optionalNames, ...optional.filter((n) => !plan.optionalNames.includes(n))] };
}

/**
 * `issue www.example.com` where www's port-80 block redirects to example.com: the new TLS block redirects there over
 * HTTPS too, so a visitor of https://www.example.com lands on https://example.com, which must have a certificate
 * of its own (unless a configured site names it). Said while planning (the run still goes on: the redirect is the user's), naming what to issue.
 */
function redirectTargetNotes(tree: NginxTree, names: readonly string[], configured: readonly string[]): string[] {
  const notes: string[] = [];
  for (const n of names) {
    if (n.startsWith('*.')) continue;
    const plain = tree.findServers(n).http[0];
    if (!plain) continue;
    const route = routeRequest(plain, { scheme: 'http', host: n, uri: '/' }, routeEnv(tree));
    if (route.kind !== 'redirect' || !route.to) continue;
    const target = route.to.host.toLowerCase();
    // a configured site gets its own certificate from autossl (in this run or its own)
    if (target === n || covers(names, target) || configured.includes(target)) continue;
    const tls = tree.findServers(target).https[0];
    const served = tls ? servedCertificateNames(tree, tls) : null;
    if (served && covers(served, target)) continue;
    notes.push(
      `${n} redirects to ${target}, which nginx does not serve over HTTPS with a certificate for it: visitors of https://${n} will be sent to https://${target} and get a certificate error there; issue ${target} too (\`autossl issue ${target}\`, or ${n} as its alias)`,
    );
  }
  return notes;
}

/**
 * Names a wildcard or regex server_name answers are served a covering certificate now too (issued for them before,
 * or configured): the new certificate keeps covering them, the union of what the block serves with HTTPS and the
 * new names. A wildcard the block serves covered (`*.x`, an upload or an earlier wildcard order) can only stay
 * covered by a wildcard: ordered over DNS-01 when the site has a DNS provider, else refused before any order.
 */
function keepBlockCover(
  config: AutoSslConfig,
  tree: NginxTree,
  plan: DomainPlan,
  blocks: ReadonlySet<ServerBlock>,
  planned: string[],
  notes: string[],
): string[] {
  const names = [...planned];
  const known = config.sites.flatMap((s) => [s.domain, ...s.aliases]);
  const patterns: string[] = [];
  const kept: string[] = [];
  for (const block of blocks) {
    const listed = new Set([...answeredNames(tree, block, 'http').exact, ...answeredNames(tree, block, 'https').exact]);
    const lost = lostCover(servedCover(tree, block, known), names);
    // names listed in server_name are the blockNames rule's (above); the others only a pattern answers
    for (const n of lost.names)
      if (!listed.has(n) && !names.includes(n)) {
        names.push(n);
        kept.push(n);
      }
    for (const p of lost.patterns) if (!patterns.includes(p)) patterns.push(p);
  }
  if (kept.length)
    notes.push(
      `${kept.join(', ')} ${kept.length > 1 ? 'are' : 'is'} served over HTTPS by the same server block (${[...blocks].map(blockLabel).join(', ')}) now: kept on the certificate`,
    );
  if (!patterns.length) return tooMany(plan, blocks, names);
  if (plan.challenge === 'dns-01') {
    // a name one label under the wildcard is redundant with it: Let's Encrypt refuses such an order
    const kept = [...patterns, ...names.filter((n) => !patterns.includes(n) && !covers(patterns, n))];
    notes.push(
      `the server block serves ${patterns.join(', ')} over HTTPS now: ordered over DNS-01 with the wildcard (${kept.join(', ')}), so every name it answers stays covered`,
    );
    return tooMany(plan, blocks, kept);
  }
  throw new AutoSslError(
    'VHOST_CERT_CONFLICT',
    `The server block ${[...blocks].map(blockLabel).join(', ')} serves ${patterns.join(', ')} over HTTPS today with a wildcard certificate; a certificate for ${names.join(', ')} would take every other name it answers off HTTPS, and a wildcard can only be ordered over DNS-01. Nothing was ordered.`,
    {
      hint: `Give ${plan.site.domain} the DNS-01 challenge with a DNS provider plugin ("challenge": "dns-01"), so autossl orders ${patterns.join(', ')} with it, or upload a certificate covering ${[...patterns, ...names].join(', ')}, or move ${plan.site.domain} to a server block of its own.`,
      details: { names: patterns, blocks: [...blocks].map(blockLabel) },
    },
  );
}

/** Let's Encrypt puts at most 100 names on a certificate: a block whose names outgrow that needs a wildcard. */
function tooMany(plan: DomainPlan, blocks: ReadonlySet<ServerBlock>, names: string[]): string[] {
  if (names.length <= 100) return names;
  throw new AutoSslError(
    'VHOST_CERT_CONFLICT',
    `The server block ${[...blocks].map(blockLabel).join(', ')} serves ${names.length} names over HTTPS that one certificate must cover, more than the 100 a Let's Encrypt certificate holds. Nothing was ordered.`,
    {
      hint: `Give ${plan.site.domain} the DNS-01 challenge with a DNS provider plugin and order the block's wildcard, or split the block.`,
      details: { names: names.length, blocks: [...blocks].map(blockLabel) },
    },
  );
}
