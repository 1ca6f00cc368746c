/**
 * Scanning what exists: every certbot lineage (`live/*` with `renewal/*.conf`), parsed with @peculiar/x509 and
 * recorded in the state store; a lineage whose cert.pem has not changed (device, inode, size, mtime) is not
 * parsed again. Plus what each vhost's `ssl_certificate` points at: a vhost pointing at a missing or expired file
 * is a finding of its own.
 */
import fs from 'node:fs';
import path from 'node:path';
import { readCertificate } from '../certbot/lineage.js';
import { argValues, walkDirectives } from '../nginx/parse.js';
import type { NginxTree } from '../nginx/tree.js';
import type { CertificateRow, StateStore } from '../state/store.js';

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

function keyTypeOf(renewalConf: string): string | null {
  try {
    return /^key_type\s*=\s*(\S+)/m.exec(fs.readFileSync(renewalConf, 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

/** Updates the store from certbot's config dir; returns the lineages found. */
export function scanLineages(configDir: string, store: StateStore, vhostRefs: readonly VhostCertificateRef[] = []): CertificateRow[] {
  const live = path.join(configDir, 'live');
  let names: string[] = [];
  try {
    names = fs.readdirSync(live).filter((n) => n !== 'README' && !n.startsWith('.'));
  } catch {
    names = [];
  }
  const known = new Map(store.certificates().map((c) => [c.lineage, c]));
  const vhostsByLineage = new Map<string, string[]>();
  for (const ref of vhostRefs) {
    if (!ref.lineage) continue;
    const list = vhostsByLineage.get(ref.lineage) ?? [];
    if (!list.includes(ref.file)) list.push(ref.file);
    vhostsByLineage.set(ref.lineage, list);
  }
  const updates: Array<Parameters<StateStore['upsertCertificate']>[0]> = [];
  for (const name of names) {
    const certPath = path.join(live, name, 'cert.pem');
    const key = fileKey(certPath);
    const vhosts = (vhostsByLineage.get(name) ?? []).sort();
    const prior = known.get(name);
    if (prior && key && prior.fileKey === key) {
      if (JSON.stringify(prior.vhosts) !== JSON.stringify(vhosts)) updates.push({ ...prior, vhosts });
      continue;
    }
    if (!key) {
      updates.push({ lineage: name, names: prior?.names ?? [], certPath, fileKey: null, notBefore: null, notAfter: null, serial: null, issuer: null, keyType: null, vhosts });
      continue;
    }
    try {
      const info = readCertificate(certPath);
      updates.push({ lineage: name, names: info.names, certPath, fileKey: key, notBefore: info.notBefore.getTime(), notAfter: info.notAfter.getTime(), serial: info.serial, issuer: info.issuer, keyType: keyTypeOf(path.join(configDir, 'renewal', `${name}.conf`)), vhosts });
    } catch {
      updates.push({ lineage: name, names: prior?.names ?? [], certPath, fileKey: key, notBefore: null, notAfter: null, serial: null, issuer: null, keyType: null, vhosts });
    }
  }
  store.db.transaction(() => {
    for (const u of updates) store.upsertCertificate(u);
  }).immediate();
  store.deleteCertificatesExcept(names);
  return store.certificates();
}

/** Every ssl_certificate in the nginx tree, resolved and checked. */
export function vhostCertificateRefs(tree: NginxTree, configDir: string): VhostCertificateRef[] {
  const live = path.resolve(configDir, 'live') + path.sep;
  const refs: VhostCertificateRef[] = [];
  const cache = new Map<string, { missing: boolean; notAfter?: number }>();
  for (const [file, config] of tree.files) {
    for (const d of walkDirectives(config.children)) {
      if (d.name !== 'ssl_certificate') continue;
      const p = argValues(d)[0];
      if (!p || p.includes('$') || p.startsWith('data:')) continue;
      const full = path.isAbsolute(p) ? p : path.join(tree.prefix, p);
      let info = cache.get(full);
      if (!info) {
        try {
          info = { missing: false, notAfter: readCertificate(full).notAfter.getTime() };
        } catch {
          info = { missing: !fs.existsSync(full) };
        }
        cache.set(full, info);
      }
      const lineage = full.startsWith(live) ? full.slice(live.length).split(path.sep)[0] : undefined;
      let line = 1;
      for (let i = 0; i < d.start; i++) if (config.source.charCodeAt(i) === 10) line++;
      refs.push({ file, line, path: p, lineage, ...info });
    }
  }
  return refs;
}
