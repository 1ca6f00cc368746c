/**
 * The fields of a certificate file, whoever wrote it (an issuer's lineage, an upload, a file nginx names): the
 * names, serial and validity a Lineage value carries, read from the PEM. The serial has one form everywhere
 * (normalizeSerial: upper-case hex, whole bytes), so what nginx serves and what a lineage holds compare as text.
 */
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import type { X509Certificate } from '@peculiar/x509';
import { AutoSslError } from '../errors.js';
import { MAX_PEM_BYTES, readRegularFile } from '../fsutil.js';
import { firstPemCertificate, normalizeSerial, readCertificateFields } from './der.js';

// @peculiar/x509 takes ~150 ms to load; commands that never need it (status on a healthy tree) do not pay for it.
const require = createRequire(import.meta.url);
let peculiar: typeof import('@peculiar/x509') | null = null;
/** @peculiar/x509, loaded on first use, with node's WebCrypto as its provider (signatures, key checks). */
export function x509(): typeof import('@peculiar/x509') {
  if (!peculiar) {
    peculiar = require('@peculiar/x509') as typeof import('@peculiar/x509');
    peculiar.cryptoProvider.set(crypto.webcrypto as unknown as Crypto);
  }
  return peculiar;
}

/** Loads @peculiar/x509 now: a long-running process (the agent) pays at start, not with a stall in a batch. */
export function preloadX509(): void {
  x509();
}

export interface CertificateInfo {
  /** ecdsa / rsa (certbot's --key-type), from the public key's algorithm. */
  keyType?: string;
  names: string[];
  serial: string;
  notBefore: Date;
  notAfter: Date;
  issuer: string;
}

/** Parses the first certificate of a PEM file with @peculiar/x509. */
export function readCertificate(file: string): CertificateInfo {
  const pem = readRegularFile(file, { maxBytes: MAX_PEM_BYTES, code: 'FILE_UNSAFE', what: 'certificate' }).data.toString('utf8');
  const block = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0];
  if (!block) throw new AutoSslError('CERTBOT_LINEAGE_UNKNOWN', `${file} holds no certificate.`);
  return certificateInfo(new (x509().X509Certificate)(block));
}

/** The fields of one PEM certificate given as text. */
export function certificateInfoFromPem(pem: string): CertificateInfo {
  return certificateInfo(new (x509().X509Certificate)(pem));
}

/**
 * The same fields, read in place from the DER (see der.ts) for scans of thousands of lineages; falls back to
 * @peculiar/x509 for anything the small reader does not expect.
 */
export function readCertificateQuick(file: string): CertificateInfo {
  const der = firstPemCertificate(readRegularFile(file, { maxBytes: MAX_PEM_BYTES, code: 'FILE_UNSAFE', what: 'certificate' }).data.toString('latin1'));
  const fields = der && readCertificateFields(der);
  return fields ?? readCertificate(file);
}

export function certificateInfo(cert: X509Certificate): CertificateInfo {
  const names: string[] = [];
  const san = cert.getExtension('2.5.29.17') as unknown as { names?: { items: Array<{ type: string; value: string }> } } | null;
  for (const item of san?.names?.items ?? []) if (item.type === 'dns') names.push(item.value.toLowerCase());
  const algorithm = cert.publicKey.algorithm.name;
  return {
    keyType: algorithm === 'ECDSA' ? 'ecdsa' : algorithm.startsWith('RSA') ? 'rsa' : 'other',
    names,
    serial: normalizeSerial(cert.serialNumber),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    issuer: cert.issuer,
  };
}

/** Whether a certificate with these names is valid for `name` (a `*.x` name covers exactly one label more). */
export function covers(certNames: readonly string[], name: string): boolean {
  if (certNames.includes(name)) return true;
  const dot = name.indexOf('.');
  return dot > 0 && certNames.includes(`*${name.slice(dot)}`);
}

export { normalizeSerial };
