/** Certificates with chosen validity periods, generated with @peculiar/x509 (no CA needed for status tests). */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { normalizeSerial } from '../../src/issuer/der.js';

x509.cryptoProvider.set(crypto.webcrypto as unknown as Crypto);

const DAY = 86_400_000;
let keys: CryptoKeyPair | null = null;

async function keyPair(): Promise<CryptoKeyPair> {
  keys ??= (await crypto.webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  return keys;
}

export async function makeCertificatePem(names: string[], notBefore: Date, notAfter: Date, serial = crypto.randomBytes(8).toString('hex')): Promise<string> {
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: `01${serial}`,
    name: `CN=${names[0]}`,
    notBefore,
    notAfter,
    keys: await keyPair(),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension(names.map((n) => ({ type: 'dns' as const, value: n })))],
  });
  return cert.toString('pem') + '\n';
}

/** A certbot-style lineage: live/<name>/*.pem (symlinks into archive/) and renewal/<name>.conf. */
export async function writeLineage(configDir: string, name: string, lifetimeDays: number, daysLeft: number, now = Date.now()): Promise<void> {
  const notAfter = new Date(now + daysLeft * DAY);
  const notBefore = new Date(notAfter.getTime() - lifetimeDays * DAY);
  const pem = await makeCertificatePem([name], notBefore, notAfter);
  const archive = path.join(configDir, 'archive', name);
  const live = path.join(configDir, 'live', name);
  fs.mkdirSync(archive, { recursive: true });
  fs.mkdirSync(live, { recursive: true });
  fs.mkdirSync(path.join(configDir, 'renewal'), { recursive: true });
  const pkcs8 = Buffer.from(await crypto.webcrypto.subtle.exportKey('pkcs8', (await keyPair()).privateKey)).toString('base64');
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
  for (const f of ['cert', 'chain', 'fullchain', 'privkey']) {
    fs.writeFileSync(path.join(archive, `${f}1.pem`), f === 'privkey' ? keyPem : pem);
    fs.rmSync(path.join(live, `${f}.pem`), { force: true });
    fs.symlinkSync(`../../archive/${name}/${f}1.pem`, path.join(live, `${f}.pem`));
  }
  fs.writeFileSync(
    path.join(configDir, 'renewal', `${name}.conf`),
    `version = 2.1.0\narchive_dir = ${archive}\n` +
      ['cert', 'privkey', 'chain', 'fullchain'].map((k) => `${k} = ${path.join(live, `${k}.pem`)}`).join('\n') +
      '\n\n[renewalparams]\nkey_type = ecdsa\n',
  );
}

function pemKey(pkcs8: ArrayBuffer): string {
  const b64 = Buffer.from(pkcs8).toString('base64');
  return `-----BEGIN PRIVATE KEY-----\n${b64.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

/**
 * A small CA and a server certificate it signed (with its own new key): what a customer uploads. The leaf and
 * the CA are PEM; `chain` is the leaf then the CA (an "intermediate" for the chain check).
 */
export async function makeSignedCertificate(
  names: string[],
  notBefore: Date,
  notAfter: Date,
): Promise<{ leaf: string; ca: string; chain: string; key: string; serial: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256' } as const;
  const caKeys = (await crypto.webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const leafKeys = (await crypto.webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: `01${crypto.randomBytes(8).toString('hex')}`,
    name: 'CN=autossl test upload CA',
    notBefore: new Date(Date.now() - 10 * DAY),
    notAfter: new Date(Date.now() + 400 * DAY),
    keys: caKeys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  const serial = `02${crypto.randomBytes(8).toString('hex')}`;
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: `CN=${names[0]}`,
    issuer: ca.subject,
    notBefore,
    notAfter,
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension(names.map((n) => ({ type: 'dns' as const, value: n }))), new x509.BasicConstraintsExtension(false)],
  });
  const leafPem = leaf.toString('pem') + '\n';
  const caPem = ca.toString('pem') + '\n';
  return {
    leaf: leafPem,
    ca: caPem,
    chain: leafPem + caPem,
    key: pemKey(await crypto.webcrypto.subtle.exportKey('pkcs8', leafKeys.privateKey)),
    serial: normalizeSerial(serial),
  };
}
