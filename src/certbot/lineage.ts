/**
 * A certbot lineage: `live/<name>/{cert,chain,fullchain,privkey}.pem` and `renewal/<name>.conf`.
 * Paths always come from what certbot wrote (its renewal config), never built from a domain by hand:
 * a wildcard `*.x` is stored as `x`, a clash becomes `x-0001`.
 */
import path from 'node:path';
import { AutoSslError } from '../errors.js';
import { MAX_PEM_BYTES, readRegularFile } from '../fsutil.js';
import type { LineageFiles } from '../issuer/issuer.js';

/** certbot's files of a lineage: the Issuer's LineageFiles (the certificate's fields: src/issuer/certificate.ts). */
export type Lineage = LineageFiles;

/** Reads `renewal/<name>.conf` ("cert = /path" lines). Returns null when certbot has no such lineage. */
export function readLineage(configDir: string, name: string): Lineage | null {
  if (!/^[A-Za-z0-9._*-]+$/.test(name) || name.includes('..')) {
    throw new AutoSslError('CONFIG_INVALID', `Invalid certificate name ${JSON.stringify(name)}.`);
  }
  const renewalConf = path.join(configDir, 'renewal', `${name}.conf`);
  let text: string;
  try {
    text = readRegularFile(renewalConf, { maxBytes: MAX_PEM_BYTES, code: 'FILE_UNSAFE', what: 'certbot renewal config' }).data.toString('utf8');
  } catch {
    return null;
  }
  const get = (key: string): string | undefined => new RegExp(`^${key}\\s*=\\s*(.+?)\\s*$`, 'm').exec(text)?.[1];
  const cert = get('cert');
  const chain = get('chain');
  const fullchain = get('fullchain');
  const privkey = get('privkey');
  if (!cert || !chain || !fullchain || !privkey) {
    throw new AutoSslError('CERTBOT_LINEAGE_UNKNOWN', `${renewalConf} does not name cert, chain, fullchain and privkey.`);
  }
  return { name, cert, chain, fullchain, privkey, renewalConf };
}
