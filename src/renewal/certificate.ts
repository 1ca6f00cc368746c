/**
 * One domain's certificate as it is served now: what a panel asks for every domain on every page load
 * (`/ssl/status`), so it reads only what that one answer needs: the block nginx picks for the name over TLS, the
 * certificate it points at (parsed once per file version), and the lineage's last attempt from the state store.
 */
import path from 'node:path';
import type { AutoSslConfig } from '../config/schema.js';
import { memoByStat } from '../fsutil.js';
import { covers, readCertificateQuick, type CertificateInfo } from '../issuer/certificate.js';
import type { Installer } from '../installer/installer.js';
import type { Store } from '../store/store.js';
import { renewalWindowStart, type CertState } from './status.js';
import { ariStatus, type AriStatus } from './ari-pass.js';
import { sameSerial } from './ari.js';

export interface DomainCertificate {
  domain: string;
  /** A certificate covering the name is served and has not expired. */
  exists: boolean;
  /** A server block answers the name (on port 80 or over TLS). */
  vhost: boolean;
  state: CertState;
  names: string[];
  notAfter: string | null;
  notBefore: string | null;
  daysLeft: number | null;
  serial: string | null;
  issuer: string | null;
  /** The certbot lineage (live/<name>/), or "custom" for an uploaded certificate, or null. */
  lineage: string | null;
  /** Where nginx serves it from: the block's file:line. */
  servedBy: string | null;
  lastError: { code: string | null; message: string | null; at: string | null } | null;
  /** The CA's ARI window for the served certificate, as the last renewal pass asked it (null: none known). */
  ari: AriStatus | null;
}

const info = memoByStat<CertificateInfo>((file) => readCertificateQuick(file));

const DAY = 86_400_000;

/** `snapshot`: the installer's config as loaded (a panel's page load reuses one for a second). */
export async function certificateOf<C>(
  config: AutoSslConfig,
  installer: Installer<C>,
  snapshot: C,
  store: Store | null,
  domain: string,
  now = Date.now(),
): Promise<DomainCertificate> {
  const sample = domain.startsWith('*.') ? `autossl-check${domain.slice(1)}` : domain;
  const served = installer.servedFiles(snapshot, sample);
  const block = served.block;
  const out: DomainCertificate = {
    domain,
    exists: false,
    vhost: served.answered,
    state: 'missing',
    names: [],
    notAfter: null,
    notBefore: null,
    daysLeft: null,
    serial: null,
    issuer: null,
    lineage: null,
    servedBy: null,
    lastError: null,
    ari: null,
  };
  if (!block) return out;
  out.servedBy = `${block.file}:${block.line}`;
  const live = path.resolve(config.certbot.configDir, 'live') + path.sep;
  const custom = path.resolve(config.stateDir, 'custom') + path.sep;
  let chosen: { path: string; info: CertificateInfo } | null = null;
  let first: { path: string; info: CertificateInfo } | null = null;
  for (const { path: p } of served.certificates) {
    const i = info(p);
    if (!i) continue;
    first ??= { path: p, info: i };
    if (covers(i.names, domain)) {
      chosen = { path: p, info: i };
      break;
    }
  }
  const cert = chosen ?? first;
  if (!cert) return out;
  out.names = cert.info.names;
  out.notAfter = cert.info.notAfter.toISOString();
  out.notBefore = cert.info.notBefore.toISOString();
  out.daysLeft = Math.floor(((cert.info.notAfter.getTime() - now) / DAY) * 10) / 10;
  out.serial = cert.info.serial;
  out.issuer = cert.info.issuer;
  out.lineage = cert.path.startsWith(live) ? cert.path.slice(live.length).split(path.sep)[0]! : cert.path.startsWith(custom) ? 'custom' : null;
  const row = out.lineage && out.lineage !== 'custom' && store ? await store.certificates.get(out.lineage) : null;
  if (row?.lastErrorCode || row?.lastErrorMessage)
    out.lastError = { code: row.lastErrorCode, message: row.lastErrorMessage, at: row.lastErrorAt ? new Date(row.lastErrorAt).toISOString() : null };
  if (!chosen) out.state = 'mismatch';
  else if (now >= cert.info.notAfter.getTime()) out.state = 'expired';
  else if (row?.lastOutcome === 'failed' && row.consecutiveFailures > 0) out.state = 'failing';
  else if (out.lineage !== 'custom' && now >= renewalWindowStart(cert.info.notBefore.getTime(), cert.info.notAfter.getTime(), config.renewal.windowFraction))
    out.state = 'due';
  else out.state = 'ok';
  // the CA's window for this very certificate (a renewed one has none until the next pass asks)
  const ari = out.lineage && out.lineage !== 'custom' && store ? await store.ariWindows.get(out.lineage).catch(() => null) : null;
  if (ari && out.serial && sameSerial(ari.serial, out.serial)) {
    out.ari = ariStatus(ari, out.serial, now);
    if (out.state === 'ok' && (out.ari.state === 'open' || out.ari.state === 'past')) out.state = 'due';
  }
  out.exists = chosen !== null && out.state !== 'expired';
  return out;
}
