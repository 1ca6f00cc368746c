/**
 * Scanning what exists: every certbot lineage (`live/*` with `renewal/*.conf`), parsed with @peculiar/x509 and
 * recorded in the state store; a lineage whose cert.pem has not changed (device, inode, size, mtime) is not
 * parsed again. Plus what each vhost's `ssl_certificate` points at: a vhost pointing at a missing or expired file
 * is a finding of its own.
 */
import fs from 'node:fs';
import path from 'node:path';
import { readCertificateQuick as readCertificate } from '../issuer/certificate.js';
import type { CertificatePath } from '../installer/installer.js';
import type { CertificateRow, Store } from '../store/store.js';
import type { Lineage } from '../issuer/issuer.js';

export interface VhostCertificateRef {
  file: string;
  line: number;
  /** The path as written in ssl_certificate. */
  path: string;
  /** The lineage it belongs to, when it points into certbot's live directory. */
  lineage?: string;
  missing: boolean;
  /** notAfter of the file it points at, when readable. */
  notAfter?: number;
}

function fileKey(file: string): string | null {
  try {
    const st = fs.statSync(file); // follows certbot's live -> archive symlink, so a renewal changes the key
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return null;
  }
}

/** Updates the store from certbot's config dir; returns the lineages found. */
export async function scanLineages(configDir: string, store: Store, vhostRefs: readonly VhostCertificateRef[] = []): Promise<CertificateRow[]> {
  const live = path.join(configDir, 'live');
  let names: string[] = [];
  try {
    names = fs.readdirSync(live).filter((n) => n !== 'README' && !n.startsWith('.'));
  } catch {
    names = [];
  }
  const known = new Map((await store.certificates.list()).map((c) => [c.lineage, c]));
  const vhostsByLineage = new Map<string, string[]>();
  for (const ref of vhostRefs) {
    if (!ref.lineage) continue;
    const list = vhostsByLineage.get(ref.lineage) ?? [];
    if (!list.includes(ref.file)) list.push(ref.file);
    vhostsByLineage.set(ref.lineage, list);
  }
  const updates: CertificateRow[] = [];
  const rows: CertificateRow[] = [];
  for (const name of names.sort()) {
    const certPath = path.join(live, name, 'cert.pem');
    const key = fileKey(certPath);
    const list = vhostsByLineage.get(name);
    const vhosts = list ? list.sort() : NO_VHOSTS;
    const prior = known.get(name);
    if (prior && key && prior.fileKey === key) {
      if (prior.vhosts.length !== vhosts.length || prior.vhosts.some((v, i) => v !== vhosts[i])) {
        prior.vhosts = vhosts;
        updates.push(prior);
      }
      rows.push(prior);
      continue;
    }
    // a new or changed certificate (renewed: the live symlink now leads to another archive file)
    let info: ReturnType<typeof readCertificate> | null = null;
    let unreadable: string | undefined;
    if (key) {
      try {
        info = readCertificate(certPath);
      } catch (error) {
        info = null;
        unreadable = `${certPath} cannot be read as a certificate: ${(error as Error).message.split('\n')[0]}`;
      }
    } else unreadable = `${certPath} does not exist (or cannot be opened)`;
    const row = certificateRow(
      name,
      certPath,
      info ? { ...info, notBefore: info.notBefore.getTime(), notAfter: info.notAfter.getTime(), key } : null,
      prior,
      vhosts,
    );
    updates.push(row);
    rows.push(unreadable ? Object.assign(row, { unreadable }) : row);
  }
  const present = new Set(names);
  const gone = [...known.keys()].filter((l) => !present.has(l));
  // a read-only state directory (status by a user who cannot write it) still gets the answer, just not the cache
  if (store.readOnly) return rows;
  if (updates.length) await store.certificates.upsert(updates);
  if (gone.length) await store.certificates.deleteExcept(names);
  return rows;
}

const NO_VHOSTS: string[] = [];

type RowFields = Pick<CertificateRow, 'names' | 'notBefore' | 'notAfter' | 'serial' | 'issuer'> & { keyType?: string | null; key: string | null };

/** A lineage's row: what its certificate says (null: unreadable), the attempts the store knew kept. */
function certificateRow(lineage: string, certPath: string, info: RowFields | null, prior: CertificateRow | undefined, vhosts: string[]): CertificateRow {
  return {
    lineage,
    names: info ? info.names : (prior?.names ?? []),
    certPath,
    // only a certificate that was read is cached: an unreadable one is looked at again (and said why) every time
    fileKey: info ? info.key : null,
    notBefore: info ? info.notBefore : null,
    notAfter: info ? info.notAfter : null,
    serial: info ? info.serial : null,
    issuer: info ? info.issuer : null,
    keyType: info?.keyType ?? null,
    vhosts,
    lastAttemptAt: prior?.lastAttemptAt ?? null,
    lastAttemptKind: prior?.lastAttemptKind ?? null,
    lastOutcome: prior?.lastOutcome ?? null,
    lastErrorCode: prior?.lastErrorCode ?? null,
    lastErrorMessage: prior?.lastErrorMessage ?? null,
    lastErrorAt: prior?.lastErrorAt ?? null,
    consecutiveFailures: prior?.consecutiveFailures ?? 0,
    renewedAt: prior?.renewedAt ?? null,
  };
}

/**
 * The rows of an issuer's lineages (the values it returned: another issuer than certbot keeps its own layout),
 * recorded in the store as certbot's are.
 */
export async function issuedLineageRows(lineages: readonly Lineage[], store: Store, vhostRefs: readonly VhostCertificateRef[] = []): Promise<CertificateRow[]> {
  const known = new Map((await store.certificates.list()).map((c) => [c.lineage, c]));
  const rows = [...lineages]
    .sort((a, b) => a.id.localeCompare(b.id))
    .map((l) => {
      const vhosts = [...new Set(vhostRefs.filter((r) => r.lineage === l.id).map((r) => r.file))].sort();
      const fields = {
        names: l.names,
        notBefore: l.notBefore.getTime(),
        notAfter: l.notAfter.getTime(),
        serial: l.serial,
        issuer: null,
        key: fileKey(l.certPath),
      };
      return certificateRow(l.id, l.certPath, fields, known.get(l.id), vhosts);
    });
  if (store.readOnly) return rows;
  if (rows.length) await store.certificates.upsert(rows);
  await store.certificates.deleteExcept(rows.map((r) => r.lineage));
  return rows;
}

/** Every certificate path the server's config names (Installer.certificatePaths), checked. */
export function vhostCertificateRefs(
  lines: readonly CertificatePath[],
  configDir: string,
  lineageOfPath?: (file: string) => string | undefined,
): VhostCertificateRef[] {
  const live = path.resolve(configDir, 'live') + path.sep;
  const refs: VhostCertificateRef[] = [];
  const cache = new Map<string, { missing: boolean; notAfter?: number }>();
  for (const { file, line, path: p, resolved: full } of lines) {
    let info = cache.get(full);
    if (!info) {
      try {
        info = { missing: false, notAfter: readCertificate(full).notAfter.getTime() };
      } catch {
        info = { missing: !fs.existsSync(full) };
      }
      cache.set(full, info);
    }
    // another issuer says which of its lineages a path is in; certbot's are live/<name>/
    const lineage = lineageOfPath ? lineageOfPath(full) : full.startsWith(live) ? full.slice(live.length).split(path.sep)[0] : undefined;
    refs.push({ file, line, path: p, lineage, ...info });
  }
  return refs;
}
