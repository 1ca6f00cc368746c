/**
 * What a server block serves over TLS now, name by name, and what re-pointing it at another certificate would take
 * off HTTPS. A block answers more names than its exact server_names: `*.wild.test` or `~^(.+)\.rx\.test$` answer
 * names nobody can list, so "the block's names" also means the names on the certificate it serves now and the
 * configured names that land on it (what was issued for it before), each checked against nginx's own choice of
 * block for that name (SNI).
 */
import path from 'node:path';
import { covers, readCertificateQuick } from '../issuer/certificate.js';
import { matchServerName } from './listen.js';
import { answeredNames, coversPattern } from './names.js';
import { lineColumn } from './parse.js';
import type { NginxTree, ServerBlock } from './tree.js';
import { serverView } from './view.js';

export interface BlockCover {
  block: ServerBlock;
  /** The names of the certificate the block serves now, or null (no TLS, or no readable certificate). */
  served: string[] | null;
  /** Plain names nginx sends to this block over TLS and that are served a certificate covering them now. */
  names: string[];
  /** Wildcards (`*.x`) the block answers over TLS and the served certificate covers: only a `*.x` certificate keeps them. */
  patterns: string[];
}

/** A name nginx matches a wildcard with (SNI cannot be "*.x"). */
function sampleOf(name: string): string {
  return name.startsWith('*.') ? `autossl-check${name.slice(1)}` : name;
}

export function blockLabel(block: ServerBlock): string {
  return `${block.file}:${lineColumn(block.config.source, block.directive.start).line}`;
}

/** The names on the first readable certificate the block points at (a `$variable` path says nothing fixed). */
function servedNames(tree: NginxTree, block: ServerBlock): string[] | null {
  for (const d of serverView(block).directives) {
    if (d.name !== 'ssl_certificate' || !d.args[0] || d.args[0].includes('$') || d.args[0].startsWith('data:')) continue;
    try {
      const names = readCertificateQuick(path.isAbsolute(d.args[0]) ? d.args[0] : path.join(tree.prefix, d.args[0])).names;
      if (names.length) return names;
    } catch {
      continue;
    }
  }
  return null;
}

/**
 * What `block` serves a covering certificate for over TLS now. `known`: names the caller knows were issued or
 * configured (the config's sites); each counts only where nginx picks this block for it.
 */
export function servedCover(tree: NginxTree, block: ServerBlock, known: readonly string[] = []): BlockCover {
  const served = block.listens.some((l) => l.ssl) ? servedNames(tree, block) : null;
  if (!served) return { block, served, names: [], patterns: [] };
  // the block's own names first (cheap), nginx's choice over the whole tree only for a name it could answer
  const mine = (n: string): boolean => block.names.some((p) => matchServerName(p, sampleOf(n)) !== null) && tree.findServers(sampleOf(n)).https[0] === block;
  const names = new Set<string>();
  for (const n of answeredNames(tree, block, 'https').exact) if (covers(served, n)) names.add(n);
  for (const n of [...served, ...known]) if (!n.startsWith('*.') && !names.has(n) && covers(served, n) && mine(n)) names.add(n);
  const patterns = new Set<string>();
  for (const p of answeredNames(tree, block, 'https').patterns) if (coversPattern(served, p)) patterns.add(p.startsWith('.') ? `*${p}` : p);
  // a wildcard on the certificate whose names this block answers (a regex server_name, a `.x` name): served too
  for (const n of served) if (n.startsWith('*.') && mine(n)) patterns.add(n);
  return { block, served, names: [...names], patterns: [...patterns] };
}

/** What a certificate for `certNames` on the block would leave uncovered of what it serves covered now. */
export function lostCover(cover: BlockCover, certNames: readonly string[]): { names: string[]; patterns: string[] } {
  return {
    names: cover.names.filter((n) => !covers(certNames, n)),
    patterns: cover.patterns.filter((p) => !certNames.includes(p)),
  };
}

/**
 * The uploaded certificate's check against its block (separate from the upload's own crypto checks): names of the
 * block the upload covers come along; a name or wildcard served covered over HTTPS now that it does not cover is a
 * VHOST_CERT_CONFLICT. Returns the names to install for, the domain first, or the lost names.
 */
export function uploadCover(
  tree: NginxTree,
  block: ServerBlock,
  domain: string,
  uploadNames: readonly string[],
  known: readonly string[] = [],
): { names: string[]; lost: string[] } {
  const names = [domain];
  for (const n of new Set([...answeredNames(tree, block, 'http').exact, ...answeredNames(tree, block, 'https').exact]))
    if (!names.includes(n) && covers(uploadNames, n)) names.push(n);
  const lost = lostCover(servedCover(tree, block, known), uploadNames);
  return { names, lost: [...lost.names, ...lost.patterns] };
}
