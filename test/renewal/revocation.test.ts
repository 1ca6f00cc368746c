/**
 * Revocation from a real CRL (what Let's Encrypt publishes): a CA of the test's own signs a certificate naming a
 * CRL on 127.0.0.1 and the CRL; the CRL's signature is checked against chain.pem, its entries against the serial.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/schema.js';
import { checkRevocation, revocationOf } from '../../src/renewal/revocation.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';

x509.cryptoProvider.set(crypto.webcrypto as unknown as Crypto);
const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-revocation-'));
const crls = new Map<string, Buffer>();
let server: http.Server;
let base = '';

const keys = () => crypto.webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;

async function lineage(name: string, ca: { cert: x509.X509Certificate; keys: CryptoKeyPair }, crlUrl: string | null) {
  const leafKeys = await keys();
  const serial = `0a${crypto.randomBytes(8).toString('hex')}`;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: `CN=${name}`,
    issuer: ca.cert.subject,
    notBefore: new Date(Date.now() - 3_600_000),
    notAfter: new Date(Date.now() + 30 * 86_400_000),
    signingAlgorithm: alg,
    publicKey: leafKeys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: crlUrl ? [new x509.CRLDistributionPointsExtension([crlUrl])] : [],
  });
  const d = path.join(dir, name);
  fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(d, 'cert.pem'), cert.toString('pem'));
  fs.writeFileSync(path.join(d, 'chain.pem'), ca.cert.toString('pem'));
  return { name, cert: path.join(d, 'cert.pem'), chain: path.join(d, 'chain.pem'), serial: cert.serialNumber.toLowerCase().replace(/^0+/, '') };
}

async function makeCa() {
  const k = await keys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=revocation test CA',
    keys: k,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  return { cert, keys: k };
}

async function publish(file: string, ca: { cert: x509.X509Certificate; keys: CryptoKeyPair }, revoked: string[]) {
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subject,
    thisUpdate: new Date(),
    nextUpdate: new Date(Date.now() + 86_400_000),
    signingAlgorithm: alg,
    signingKey: ca.keys.privateKey,
    entries: revoked.map((serialNumber) => ({ serialNumber, revocationDate: new Date() })),
  });
  crls.set(`/${file}`, Buffer.from(crl.rawData));
}

const config = validateConfig({ stateDir: path.join(dir, 'state'), preflight: { timeoutMs: 2000 } });

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const body = crls.get(req.url ?? '');
    res.statusCode = body ? 200 : 404;
    res.end(body ?? 'no');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(() => {
  server?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("revocation from the certificate's CRL", () => {
  it('revoked when its CRL lists the serial, good when not, unknown without a CRL or with one another key signed', async () => {
    const ca = await makeCa();
    const revoked = await lineage('revoked.test', ca, `${base}/one.crl`);
    const kept = await lineage('kept.test', ca, `${base}/one.crl`);
    await publish('one.crl', ca, [revoked.serial]);
    expect(await checkRevocation(config, revoked)).toBe('revoked');
    expect(await checkRevocation(config, kept)).toBe('good');
    expect(await checkRevocation(config, await lineage('nocrl.test', ca, null))).toBe('none');

    const forger = await makeCa();
    const victim = await lineage('forged.test', ca, `${base}/forged.crl`);
    await publish('forged.crl', forger, [victim.serial]);
    expect(await checkRevocation(config, victim)).toBe('unknown');
    expect(await checkRevocation(config, await lineage('gone.test', ca, `${base}/missing.crl`))).toBe('unknown');
  });

  it('the store keeps a revoked serial for good and asks again about a good one when told to', async () => {
    const ca = await makeCa();
    const cert = await lineage('kept-state.test', ca, `${base}/two.crl`);
    await publish('two.crl', ca, []);
    const store = new SqliteStore(path.join(dir, 'state'));
    try {
      expect(await revocationOf(config, store, cert, cert.serial)).toBe('good');
      // the CA revokes it: the kept "good" answer stands until it is old or a fresh answer is asked for
      await publish('two.crl', ca, [cert.serial]);
      expect(await revocationOf(config, store, cert, cert.serial)).toBe('good');
      // (a CRL fetched in this process is kept a while too: the same serial, re-signed naming a new CRL URL)
      const moved = { ...cert };
      fs.writeFileSync(
        moved.cert,
        (
          await x509.X509CertificateGenerator.create({
            serialNumber: `0${cert.serial}`,
            subject: 'CN=kept-state.test',
            issuer: ca.cert.subject,
            notBefore: new Date(Date.now() - 3_600_000),
            notAfter: new Date(Date.now() + 86_400_000),
            signingAlgorithm: alg,
            publicKey: ca.keys.publicKey,
            signingKey: ca.keys.privateKey,
            extensions: [new x509.CRLDistributionPointsExtension([`${base}/three.crl`])],
          })
        ).toString('pem'),
      );
      await publish('three.crl', ca, [cert.serial]);
      expect(await revocationOf(config, store, moved, cert.serial, { fresh: true })).toBe('revoked');
      crls.delete('/three.crl');
      expect(await revocationOf(config, store, moved, cert.serial)).toBe('revoked'); // for good, no CRL asked
    } finally {
      await store.close();
    }
  });
});
