/**
 * Uploaded ("custom") certificates: a certificate and key a hosting customer bought elsewhere. Checked completely
 * before anything is written (PEM, chain order, the key matches, the names cover the domain, not expired), then
 * kept under `<stateDir>/custom/<domain>/<fingerprint>/` in a lineage's shape (cert, chain, fullchain, privkey),
 * so the installer treats it like any certificate. certbot never sees it, so it is never renewed; status shows it
 * as "custom" and says when it expires.
 */
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { AutoSslConfig } from '../config/schema.js';
import { AutoSslError } from '../errors.js';
import type { LineageFiles as Lineage } from './issuer.js';
import { covers, certificateInfoFromPem, type CertificateInfo } from './certificate.js';
import { checkUploadCrypto } from './upload-crypto.js';

/** Where uploads are kept. */
export function customCertificatesDir(config: Pick<AutoSslConfig, 'stateDir'>): string {
  return path.join(config.stateDir, 'custom');
}

/** An upload as the panel sends it: the certificate (the chain after it, in one text) and the private key. */
export interface Upload {
  certificate: unknown;
  privateKey: unknown;
}

export interface CheckedUpload {
  domain: string;
  /** The server certificate, then the chain, each a PEM block with "\n" line ends. */
  certificates: string[];
  key: string;
  info: CertificateInfo;
  /** sha256 of the server certificate's DER, hex. */
  fingerprint: string;
  notes: string[];
}

const MAX_PEM_CHARS = 64 * 1024;
const CERT_BLOCK = /-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END CERTIFICATE-----/g;
const KEY_BLOCK = /^-----BEGIN (RSA |EC )?PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END \1?PRIVATE KEY-----$/;

/** What openssl prints around PEM blocks (pkcs12 -nodes exports): attribute lines, kept out of the check. */
const ATTRIBUTE_LINE = /^(Bag Attributes|Key Attributes|localKeyID:|friendlyName:|subject=|issuer=|<No Attributes>)/i;

/**
 * PEM as people paste it: each line trimmed (a textarea indents, a copy adds trailing spaces), openssl's attribute
 * lines dropped, and for the key the `EC PARAMETERS` block `openssl ecparam -genkey` puts before it.
 */
function cleanPem(text: string, key = false): string {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !ATTRIBUTE_LINE.test(l));
  const joined = lines.join('\n');
  return key ? joined.replace(/-----BEGIN EC PARAMETERS-----[\s\S]*?-----END EC PARAMETERS-----\n?/g, '').trim() : joined;
}

function refuse(message: string, hint: string): never {
  throw new AutoSslError('UPLOAD_INVALID', message, { hint });
}

/**
 * Checks an upload for `domain`; throws UPLOAD_INVALID naming what is wrong. `now` decides "expired". JSON
 * escapes and a panel's trimming are expected: "\r\n" line ends and a missing final newline are fine.
 */
export function checkUpload(domain: string, upload: Upload, now = Date.now()): CheckedUpload {
  const { certificate, privateKey } = upload;
  if (typeof certificate !== 'string' || !certificate.trim())
    refuse(
      'The certificate is missing or not text.',
      'Send the certificate in PEM form ("-----BEGIN CERTIFICATE-----"...), the server certificate first, then its chain.',
    );
  if (typeof privateKey !== 'string' || !privateKey.trim())
    refuse('The private key is missing or not text.', 'Send the private key in PEM form ("-----BEGIN PRIVATE KEY-----"...).');
  if (certificate.length > MAX_PEM_CHARS || privateKey.length > MAX_PEM_CHARS)
    refuse(`The upload is larger than ${MAX_PEM_CHARS / 1024} KB.`, 'A certificate with its chain is a few KB: send only the PEM blocks.');
  const certText = cleanPem(certificate);
  const blocks = certText.match(CERT_BLOCK) ?? [];
  if (!blocks.length)
    refuse('The certificate holds no PEM certificate block.', 'Paste the certificate as PEM text, starting with "-----BEGIN CERTIFICATE-----".');
  const outside = certText.replace(CERT_BLOCK, '').trim();
  if (outside)
    refuse(
      `The certificate text holds something besides certificates (${JSON.stringify(outside.slice(0, 40))}).`,
      'Send only "-----BEGIN CERTIFICATE-----" blocks in the certificate field; the key goes in private_key.',
    );
  if (blocks.length > 10)
    refuse(`The certificate holds ${blocks.length} certificates; a chain has a few.`, 'Send the server certificate and its intermediates only.');
  const keyText = cleanPem(privateKey, true);
  if (/ENCRYPTED/.test(keyText))
    refuse(
      'The private key is encrypted with a passphrase; nginx would ask for it on every start.',
      'Decrypt it first (openssl pkey -in key.pem -out plain.pem), then upload the plain key.',
    );
  if (!KEY_BLOCK.test(keyText))
    refuse('The private key is not one PEM private key block.', 'Send exactly one "-----BEGIN PRIVATE KEY-----" (or RSA/EC PRIVATE KEY) block.');
  const pems = blocks.map((b) => `${b.replace(/\r\n/g, '\n')}\n`);
  let certs: crypto.X509Certificate[];
  try {
    certs = pems.map((p) => new crypto.X509Certificate(p));
  } catch (error) {
    return refuse(`A certificate in the upload cannot be read: ${(error as Error).message}.`, 'Export the certificate again in PEM form.');
  }
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey(keyText.replace(/\r\n/g, '\n'));
  } catch (error) {
    return refuse(`The private key cannot be read: ${(error as Error).message}.`, 'Export the key again in PEM form (unencrypted).');
  }
  // the key's strength, the signatures' hashes, CA:TRUE, every certificate's dates, the order (upload-crypto.ts)
  checkUploadCrypto(certs, key, now);
  const leaf = certs[0]!;
  const fingerprint = leaf.fingerprint256.replace(/:/g, '').toLowerCase();
  const info = certificateInfoFromPem(pems[0]!);
  if (!covers(info.names, domain))
    refuse(
      `The certificate is for ${info.names.join(', ') || '(no DNS names)'}, which does not cover ${domain}.`,
      `Upload a certificate whose names (subjectAltName) include ${domain} or *.${domain.split('.').slice(1).join('.')}.`,
    );
  const notes: string[] = [];
  if (certs.length === 1 && leaf.checkIssued(leaf)) notes.push(`the certificate for ${domain} is self-signed: browsers will warn`);
  else if (certs.length === 1) notes.push(`the upload has no intermediate certificates: some clients will fail to build the chain`);
  return { domain, certificates: pems, key: `${keyText.replace(/\r\n/g, '\n')}\n`, info, fingerprint, notes };
}

/**
 * Writes a checked upload as a lineage-shaped directory; `created` is false when the same certificate was already
 * there (uploaded again). Written into a temporary directory renamed into place (never half a certificate), the
 * key last. Before any of it, a marker `.pending-<fp>` holding this process's id: a run killed before
 * finishUpload() leaves it, and recoverUploads() removes what it names unless nginx serves it (a key left under
 * state/custom/ for ever, otherwise).
 */
export async function writeUpload(
  config: Pick<AutoSslConfig, 'stateDir'>,
  upload: CheckedUpload,
): Promise<{ lineage: Lineage; dir: string; created: boolean; marker?: string }> {
  const base = path.join(customCertificatesDir(config), upload.domain);
  const id = upload.fingerprint.slice(0, 16);
  const dir = path.join(base, id);
  const lineage: Lineage = {
    name: `custom:${upload.domain}`,
    cert: path.join(dir, 'cert.pem'),
    chain: path.join(dir, 'chain.pem'),
    fullchain: path.join(dir, 'fullchain.pem'),
    privkey: path.join(dir, 'privkey.pem'),
    renewalConf: '',
  };
  const same = await fsp.readFile(lineage.fullchain, 'utf8').then(
    (t) => t === upload.certificates.join(''),
    () => false,
  );
  const sameKey =
    same &&
    (await fsp.readFile(lineage.privkey, 'utf8').then(
      (t) => t === upload.key,
      () => false,
    ));
  if (sameKey) return { lineage, dir, created: false };
  await fsp.mkdir(base, { recursive: true, mode: 0o700 });
  const marker = path.join(base, `${PENDING}${id}`);
  let tmp: string | null = null;
  try {
    await fsp.writeFile(marker, `${process.pid}\n`, { mode: 0o600 });
    tmp = await fsp.mkdtemp(path.join(base, `${TEMP}${id}-`));
    await fsp.writeFile(path.join(tmp, 'cert.pem'), upload.certificates[0]!, { mode: 0o644 });
    await fsp.writeFile(path.join(tmp, 'chain.pem'), upload.certificates.slice(1).join(''), { mode: 0o644 });
    await fsp.writeFile(path.join(tmp, 'fullchain.pem'), upload.certificates.join(''), { mode: 0o644 });
    await fsp.writeFile(path.join(tmp, 'privkey.pem'), upload.key, { mode: 0o600 });
    await fsp.rm(dir, { recursive: true, force: true }); // a damaged copy of the same certificate
    await fsp.rename(tmp, dir);
  } catch (error) {
    if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
    await fsp.rm(marker, { force: true });
    throw new AutoSslError('WRITE_FAILED', `Cannot write the uploaded certificate under ${base}: ${(error as Error).message}`, { cause: error });
  }
  return { lineage, dir, created: true, marker };
}

/** The upload's run is over (installed, or its directory removed): its marker goes. */
export async function finishUpload(written: { marker?: string }): Promise<void> {
  if (written.marker) await fsp.rm(written.marker, { force: true });
}

const PENDING = '.pending-';
const TEMP = '.upload-';

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * What killed uploads left: for each marker whose process is gone, its temporary directories, and its upload
 * directory unless a path nginx's config names (`referenced`) lies in it; then the marker. Temporary directories
 * without a marker (older versions) go too. Returns the directories removed.
 */
export async function recoverUploads(config: Pick<AutoSslConfig, 'stateDir'>, referenced: ReadonlySet<string>): Promise<string[]> {
  const root = customCertificatesDir(config);
  const removed: string[] = [];
  const list = (dir: string): Promise<string[]> => fsp.readdir(dir).catch(() => []);
  for (const domain of await list(root)) {
    const base = path.join(root, domain);
    const entries = await list(base);
    const live = new Set<string>();
    for (const e of entries.filter((n) => n.startsWith(PENDING))) {
      const id = e.slice(PENDING.length);
      const pid = Number((await fsp.readFile(path.join(base, e), 'utf8').catch(() => '')).trim());
      if (alive(pid)) {
        live.add(id);
        continue;
      }
      const dir = path.join(base, id);
      const served = [...referenced].some((p) => p.startsWith(dir + path.sep));
      if (
        !served &&
        (await fsp.stat(dir).then(
          () => true,
          () => false,
        ))
      ) {
        await fsp.rm(dir, { recursive: true, force: true });
        removed.push(dir);
      }
      await fsp.rm(path.join(base, e), { force: true });
    }
    for (const e of entries.filter((n) => n.startsWith(TEMP))) {
      if ([...live].some((id) => e.startsWith(`${TEMP}${id}-`))) continue;
      await fsp.rm(path.join(base, e), { recursive: true, force: true });
      removed.push(path.join(base, e));
    }
  }
  return removed;
}

/** The upload directory a certificate path lies in (`<custom>/<domain>/<fp>`), or null. */
export function uploadDirOf(config: Pick<AutoSslConfig, 'stateDir'>, file: string): string | null {
  const root = customCertificatesDir(config) + path.sep;
  if (!path.resolve(file).startsWith(root)) return null;
  const parts = path.resolve(file).slice(root.length).split(path.sep);
  return parts.length >= 3 ? path.join(root, parts[0]!, parts[1]!) : null;
}
