/**
 * Uploaded certificates in `status` and /v1/certificates: each one a vhost serves, with its names, expiry and
 * state (autossl never renews one: `due` once it is in the last third of its lifetime says "upload the renewed
 * one"). Expired and missing ones are reported by statusRows already (as any file a vhost points at).
 */
import path from 'node:path';
import type { AutoSslConfig } from '../config/schema.js';
import { uploadDirOf } from '../issuer/upload.js';
import { normalizeSerial, readCertificateQuick } from '../issuer/certificate.js';
import type { VhostCertificateRef } from './scan.js';
import { renewalWindowStart, type StatusRow } from './status.js';

const DAY = 86_400_000;

export function uploadRows(config: AutoSslConfig, refs: readonly VhostCertificateRef[], now: number): StatusRow[] {
  const byFile = new Map<string, VhostCertificateRef[]>();
  for (const ref of refs) {
    if (ref.lineage || ref.missing || (ref.notAfter !== undefined && ref.notAfter <= now) || !path.isAbsolute(ref.path) || !uploadDirOf(config, ref.path))
      continue;
    byFile.set(path.resolve(ref.path), [...(byFile.get(path.resolve(ref.path)) ?? []), ref]);
  }
  const rows: StatusRow[] = [];
  for (const [file, users] of byFile) {
    let info;
    try {
      info = readCertificateQuick(file);
    } catch {
      continue; // unreadable: the vhost's nginx -t says so; nothing to list
    }
    const notBefore = info.notBefore.getTime();
    const notAfter = info.notAfter.getTime();
    const renewFrom = renewalWindowStart(notBefore, notAfter, config.renewal.windowFraction);
    const due = now >= renewFrom;
    rows.push({
      lineage: 'custom',
      domain: info.names[0] ?? file,
      names: info.names,
      state: due ? 'due' : 'ok',
      notAfter: new Date(notAfter).toISOString(),
      daysLeft: Math.floor(((notAfter - now) / DAY) * 10) / 10,
      renewFrom: new Date(renewFrom).toISOString(),
      lastError: due
        ? {
            code: 'CERT_CUSTOM',
            message: `an uploaded certificate (${file}), which autossl does not renew: upload the renewed one before ${new Date(notAfter).toISOString()}`,
            at: null,
          }
        : null,
      consecutiveFailures: 0,
      vhosts: [...new Set(users.map((u) => `${u.file}:${u.line}`))],
      serial: normalizeSerial(info.serial),
    });
  }
  return rows;
}
