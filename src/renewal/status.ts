/**
 * `autossl status`: every certificate with its state, most urgent first.
 *   expired  past notAfter
 *   revoked  the CA revoked it (see revocation.ts): in date and served, but no client should trust it
 *   mismatch a configured name is not served with a certificate that covers it (the block nginx picks for it over
 *            TLS points at another certificate, or at an old copy of its lineage), or nothing serves it over TLS
 *   failing  the last renewal (or issue) attempt failed
 *   backing-off  a name's authorizations failed too often in a row: no order before a time (see backoff.ts)
 *   due      inside the renewal window (the last third of its lifetime by default, the last half under 10 days; or
 *            inside the CA's ARI window) and not renewed
 *   missing  a vhost points at a certificate file that does not exist (or a lineage lost its cert.pem)
 *   ok       none of the above
 * The window is a fraction of each certificate's own lifetime, so 90-, 45- and 6-day certificates are all judged
 * by their own clocks.
 */
import { normalizeSerial } from '../issuer/der.js';
import type { CertificateRow } from '../store/store.js';
import type { VhostCertificateRef } from './scan.js';
import { renewalWindowStart } from './due.js';
import type { AriStatus } from './ari-pass.js';

export type CertState = 'expired' | 'revoked' | 'mismatch' | 'failing' | 'backing-off' | 'due' | 'missing' | 'ok';

export const URGENCY: Record<CertState, number> = { expired: 0, revoked: 0, mismatch: 1, missing: 2, failing: 3, 'backing-off': 3, due: 4, ok: 5 };

export interface StatusRow {
  lineage: string;
  domain: string;
  names: string[];
  state: CertState;
  notAfter: string | null;
  daysLeft: number | null;
  /** When the renewal window opens (ISO). */
  renewFrom: string | null;
  lastError: { code: string | null; message: string | null; at: string | null } | null;
  consecutiveFailures: number;
  vhosts: string[];
  serial: string | null;
  /** The CA's ARI window for the current certificate, when asked (see ari-pass.ts). */
  ari?: AriStatus;
  /** With `status --probe`: what a TLS connection with the name as SNI was served. */
  probe?: { address: string; serial: string | null; ok: boolean; error?: string };
}

// the window is relative to each certificate's lifetime (half of it under 10 days): see due.ts
export { renewalWindowStart } from './due.js';

export function classify(
  cert: Pick<CertificateRow, 'notBefore' | 'notAfter' | 'lastOutcome' | 'consecutiveFailures'>,
  now: number,
  windowFraction: number,
): CertState {
  if (cert.notAfter === null || cert.notBefore === null) return 'missing';
  if (now >= cert.notAfter) return 'expired';
  if (cert.lastOutcome === 'failed' && cert.consecutiveFailures > 0) return 'failing';
  if (now >= renewalWindowStart(cert.notBefore, cert.notAfter, windowFraction)) return 'due';
  return 'ok';
}

const DAY = 86_400_000;

export function statusRows(certs: readonly CertificateRow[], refs: readonly VhostCertificateRef[], now: number, windowFraction: number): StatusRow[] {
  const rows: StatusRow[] = certs.map((c) => ({
    lineage: c.lineage,
    domain: c.names[0] ?? c.lineage,
    names: c.names,
    state: classify(c, now, windowFraction),
    notAfter: c.notAfter === null ? null : new Date(c.notAfter).toISOString(),
    daysLeft: c.notAfter === null ? null : Math.floor(((c.notAfter - now) / DAY) * 10) / 10,
    renewFrom: c.notAfter === null || c.notBefore === null ? null : new Date(renewalWindowStart(c.notBefore, c.notAfter, windowFraction)).toISOString(),
    lastError: (c as { unreadable?: string }).unreadable
      ? { code: 'CERT_UNREADABLE', message: (c as { unreadable?: string }).unreadable!, at: null }
      : c.lastErrorCode || c.lastErrorMessage
        ? { code: c.lastErrorCode, message: c.lastErrorMessage, at: c.lastErrorAt ? new Date(c.lastErrorAt).toISOString() : null }
        : null,
    consecutiveFailures: c.consecutiveFailures,
    vhosts: c.vhosts,
    serial: c.serial === null ? null : normalizeSerial(c.serial), // a row stored before serials were kept as openssl prints them
  }));
  // vhosts pointing at files that are not (or no longer) certbot lineages autossl tracks
  for (const ref of refs) {
    if (ref.lineage && certs.some((c) => c.lineage === ref.lineage) && !ref.missing) continue;
    const expired = ref.notAfter !== undefined && ref.notAfter <= now;
    if (!ref.missing && !expired) continue;
    rows.push({
      lineage: ref.lineage ?? '',
      domain: `${ref.file}:${ref.line}`,
      names: [],
      state: ref.missing ? 'missing' : 'expired',
      notAfter: ref.notAfter ? new Date(ref.notAfter).toISOString() : null,
      daysLeft: ref.notAfter ? Math.floor(((ref.notAfter - now) / DAY) * 10) / 10 : null,
      renewFrom: null,
      lastError: {
        code: ref.missing ? 'CERT_FILE_MISSING' : 'CERT_FILE_EXPIRED',
        message: `ssl_certificate ${ref.path} ${ref.missing ? 'does not exist' : 'has expired'}`,
        at: null,
      },
      consecutiveFailures: 0,
      vhosts: [ref.file],
      serial: null,
    });
  }
  return rows.sort((a, b) => URGENCY[a.state] - URGENCY[b.state] || (a.daysLeft ?? -1e9) - (b.daysLeft ?? -1e9) || a.domain.localeCompare(b.domain));
}

export function needsAttention(rows: readonly StatusRow[]): boolean {
  return rows.some((r) => r.state !== 'ok');
}
