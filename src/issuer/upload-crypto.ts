/**
 * The cryptographic checks of an upload, before a byte of it is written (issue 19: an RSA-1024 key or a
 * SHA-1-signed leaf was written, then refused by `nginx -t`; a CA:TRUE leaf was loaded by nginx and refused only by
 * the TLS check; a chain with an expired intermediate was accepted). Each refusal is UPLOAD_INVALID naming the
 * certificate and the fix. The names an upload must cover are checked elsewhere (upload.ts, and the block's names
 * where it is installed); this file is only about the certificates and the key themselves.
 *
 *  - the key: RSA of at least 2048 bits, or EC on P-256, P-384 or P-521 (what browsers and nginx's OpenSSL take);
 *  - no certificate of the chain signed with SHA-1 or MD5 (a self-signed root at its end excepted: its own
 *    signature is never checked by a client);
 *  - the server certificate is not a CA (basicConstraints CA:TRUE) and the key is its own;
 *  - every certificate valid now (not before its notBefore, not after its notAfter);
 *  - each certificate signed by the next one (its signature verifies with the next one's key): the chain's order.
 */
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { AutoSslError } from '../errors.js';

const require = createRequire(import.meta.url);

function refuse(message: string, hint: string): never {
  throw new AutoSslError('UPLOAD_INVALID', message, { hint });
}

const CURVES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

/** What a certificate of the upload is called in a message: its place and subject. */
function nameOf(cert: crypto.X509Certificate, i: number): string {
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1];
  return `certificate ${i + 1}${i === 0 ? ' (the server certificate)' : ''}${cn ? ` "${cn.slice(0, 80)}"` : ''}`;
}

/** The hash a certificate is signed with, lower-case ("sha-1", "sha-256"...), or null when it cannot be read. */
function signatureHash(cert: crypto.X509Certificate): string | null {
  try {
    const { X509Certificate } = require('@peculiar/x509') as typeof import('@peculiar/x509');
    const alg = new X509Certificate(cert.raw).signatureAlgorithm as { name?: string; hash?: { name?: string } };
    return (alg.hash?.name ?? alg.name ?? '').toLowerCase() || null;
  } catch {
    return null;
  }
}

/** The private key's strength: refused below RSA-2048 or off P-256/P-384/P-521. */
export function checkKeyStrength(key: crypto.KeyObject): void {
  const type = key.asymmetricKeyType;
  if (type === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048)
      refuse(
        `The private key is RSA-${bits}; at least RSA-2048 is required (browsers and nginx's OpenSSL refuse weaker keys).`,
        'Make a new key and certificate request (openssl req -newkey rsa:2048, or ec:P-256), have the certificate issued again, then upload both.',
      );
    return;
  }
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve ?? '';
    if (!CURVES[curve])
      refuse(
        `The private key is EC on ${curve || 'an unnamed curve'}; P-256, P-384 or P-521 is required.`,
        'Make a new key on P-256 (openssl ecparam -name prime256v1 -genkey), have the certificate issued again, then upload both.',
      );
    return;
  }
  refuse(
    `The private key is ${type ?? 'of an unknown type'}; an RSA (2048 bits or more) or EC (P-256, P-384, P-521) key is required.`,
    'Upload an RSA or EC key with the certificate issued for it.',
  );
}

/**
 * Checks the chain (server certificate first) and its key; throws UPLOAD_INVALID at the first problem. `now`
 * decides "valid now".
 */
export function checkUploadCrypto(certs: readonly crypto.X509Certificate[], key: crypto.KeyObject, now = Date.now()): void {
  checkKeyStrength(key);
  const leaf = certs[0]!;
  if (!leaf.checkPrivateKey(key)) {
    const other = certs.findIndex((c) => c.checkPrivateKey(key));
    refuse(
      other > 0
        ? 'The private key belongs to a certificate further down the chain, not to the first one.'
        : 'The private key does not belong to this certificate.',
      other > 0 ? 'Put the server certificate first, then its intermediates.' : "Upload the key that was generated with this certificate's request (CSR).",
    );
  }
  // after the key: a chain sent CA first says "out of order", not "a CA certificate"
  if (leaf.ca)
    refuse(
      `${nameOf(leaf, 0)} is a CA certificate (basicConstraints CA:TRUE), not one for a server.`,
      'Upload the certificate issued for your domain first, the CA certificates after it (a self-signed one made with openssl req -x509 needs -addext basicConstraints=critical,CA:FALSE).',
    );
  certs.forEach((cert, i) => {
    const from = Date.parse(cert.validFrom);
    const to = Date.parse(cert.validTo);
    if (to <= now)
      refuse(
        `${nameOf(cert, i)} expired on ${new Date(to).toISOString()}.`,
        i === 0
          ? 'Upload the renewed certificate.'
          : 'Get the current intermediate certificate from your CA (its repository or the email with the certificate) and upload the chain again.',
      );
    // a day of clock skew between the CA and this server is tolerated
    if (from > now + 86_400_000)
      refuse(`${nameOf(cert, i)} is not valid before ${new Date(from).toISOString()}.`, 'Upload it once it is valid, or check the server clock.');
    const selfSignedRoot = i > 0 && i === certs.length - 1 && cert.checkIssued(cert);
    const hash = signatureHash(cert);
    if (!selfSignedRoot && hash && /^(sha-?1|md5|md2)$/.test(hash.replace(/with.*$/, ''))) {
      refuse(
        `${nameOf(cert, i)} is signed with ${hash.toUpperCase()}, which browsers and OpenSSL refuse.`,
        'Have the certificate issued again with SHA-256 (every CA does this for free), then upload it.',
      );
    }
  });
  for (let i = 0; i + 1 < certs.length; i++) {
    const [child, parent] = [certs[i]!, certs[i + 1]!];
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) {
      refuse(
        `Certificate ${i + 2} of the upload did not sign certificate ${i + 1}: the chain is out of order or incomplete.`,
        'Send the server certificate first, then each intermediate in order (the one that signed the previous).',
      );
    }
    if (!parent.ca)
      refuse(
        `${nameOf(parent, i + 1)} signed certificate ${i + 1} but is not a CA certificate.`,
        'Send the intermediates your CA gave with the certificate, in order.',
      );
  }
}
