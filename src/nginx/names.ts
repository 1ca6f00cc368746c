/**
 * Which names a server block answers for, and which of them a certificate covers. A block often serves more names
 * than the site autossl was asked about (`server_name shop.example old-shop.example;`, a `*.example.com` block):
 * redirects and HSTS must reach only the names the certificate covers, or the others break.
 */
import { normalizeDomain } from '../domain.js';
import type { NginxTree, ServerBlock } from './tree.js';
import { covers } from '../issuer/certificate.js';

export interface Answered {
  /** Exact names nginx sends to this block (no other block wins them). */
  exact: string[];
  /** Wildcard and regex names of the block: they answer names nobody can list. */
  patterns: string[];
}

function isPattern(name: string): boolean {
  return name.startsWith('~') || name.includes('*') || name.startsWith('.');
}

/** A plain DNS name, or null for what a server_name may hold that is not one (`_`, `""`, an IP address...). */
function plainName(name: string): string | null {
  try {
    return normalizeDomain(name);
  } catch {
    return null;
  }
}

/**
 * The names this block answers for on plain HTTP (`http`) or over TLS (`https`), with nginx's precedence over the
 * whole tree. `becomingTls`: the block gets its TLS listens in this edit, so it answers over TLS every name no
 * other TLS block takes.
 */
export function answeredNames(tree: NginxTree, block: ServerBlock, port: 'http' | 'https', becomingTls = false): Answered {
  const exact: string[] = [];
  const patterns: string[] = [];
  for (const raw of block.names) {
    if (isPattern(raw)) {
      patterns.push(raw);
      continue;
    }
    const name = plainName(raw);
    if (!name || exact.includes(name)) continue;
    const found = tree.findServers(name)[port];
    if (found.length ? found[0] === block : becomingTls) exact.push(name);
  }
  return { exact, patterns };
}

/** Whether every name a server_name pattern matches is covered (only `*.x` by a certificate holding `*.x`). */
export function coversPattern(certNames: readonly string[], pattern: string): boolean {
  if (pattern.startsWith('*.')) return certNames.includes(pattern);
  if (pattern.startsWith('.')) return certNames.includes(pattern.slice(1)) && certNames.includes(`*${pattern}`);
  return false; // regexes and trailing wildcards (www.example.*): no certificate covers them
}

/** The names (and patterns) of a block a certificate with `certNames` leaves uncovered. */
export function uncovered(answered: Answered, certNames: readonly string[]): string[] {
  return [...answered.exact.filter((n) => !covers(certNames, n)), ...answered.patterns.filter((p) => !coversPattern(certNames, p))];
}
