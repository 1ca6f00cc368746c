/**
 * Which certbot autossl runs with, and what it does itself: from 4.0 it renews at 1/3 of the lifetime left (1/2
 * under 10 days) and takes --preferred-profile/--required-profile; from 4.1 it asks the CA's ARI (RFC 9773) and
 * renews inside its window. Debian 12 ships 2.1 and Ubuntu 24.04 2.9, with none of that: there autossl does it.
 */
import fs from 'node:fs';
import { spawnOffLoop } from '../spawn.js';

export interface CertbotVersion {
  major: number;
  minor: number;
  patch: number;
  /** As certbot prints it ("2.1.0"). */
  text: string;
}

/** "certbot 2.1.0" (certbot --version); null for anything else. */
export function parseCertbotVersion(output: string): CertbotVersion | null {
  const m = /\bcertbot\s+(\d+)\.(\d+)(?:\.(\d+))?\S*/i.exec(output);
  if (!m) return null;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0), text: m[0].replace(/^certbot\s+/i, '') };
}

export function atLeast(v: CertbotVersion | null, major: number, minor: number): boolean {
  return !!v && (v.major > major || (v.major === major && v.minor >= minor));
}

/** certbot >= 4.1 renews by the CA's ARI window itself. */
export const certbotDoesAri = (v: CertbotVersion | null): boolean => atLeast(v, 4, 1);

/** Per binary and its file version: one `certbot --version` (about 0.6 s of Python start) per process. */
const known = new Map<string, Promise<CertbotVersion | null>>();

export function certbotVersion(settings: { binary: string; env?: Record<string, string> }): Promise<CertbotVersion | null> {
  let stamp = '';
  try {
    const st = fs.statSync(settings.binary);
    stamp = `${st.ino}:${st.mtimeMs}`;
  } catch {
    stamp = ''; // a bare name on PATH
  }
  const key = `${settings.binary}\0${stamp}`;
  let pending = known.get(key);
  if (!pending) {
    pending = spawnOffLoop(settings.binary, ['--version'], { env: { ...process.env, ...settings.env }, timeoutMs: 30_000 })
      .result.then((r) => parseCertbotVersion(`${r.stdout}\n${r.stderr}`))
      .catch(() => null);
    known.set(key, pending);
  }
  return pending;
}
