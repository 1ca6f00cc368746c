/**
 * The ARI certificate id of a Lineage value (RFC 9773 section 4.1): base64url(AKI keyIdentifier) "."
 * base64url(serial DER content). The RFC's own example: keyIdentifier 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:
 * DE:01:C8:D4 and serial 0x87654321 (DER 00 87 65 43 21: the leading zero kept) give "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE".
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { readLineageFiles } from '../../src/issuer/issuer.js';
import { selfSignedEcdsa } from '../../scripts/sandbox/openssl.js';
import { makeCertificatePem } from '../helpers/certs.js';

const AKI = '69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4';

async function leaf(serial: string): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-ari-'));
  const ssl = (...args: string[]) => execa('openssl', args, { cwd: dir });
  await selfSignedEcdsa({
    key: 'ca.key',
    cert: 'ca.pem',
    days: 2,
    subject: '/CN=ari test CA',
    extra: ['-addext', `subjectKeyIdentifier=${AKI}`, '-addext', 'basicConstraints=critical,CA:TRUE'],
    cwd: dir,
  });
  await ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=ari.test');
  fs.writeFileSync(path.join(dir, 'ext'), 'subjectAltName=DNS:ari.test,DNS:www.ari.test\nauthorityKeyIdentifier=keyid\n');
  await ssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', serial, '-days', '2', '-out', 'cert.pem', '-extfile', 'ext');
  return path.join(dir, 'cert.pem');
}

describe('Lineage value', () => {
  it("has the ARI id of RFC 9773's example, names, serial and dates from the certificate", async () => {
    const cert = await leaf('0x87654321');
    const l = readLineageFiles({ id: 'ari.test', certPath: cert, chainPath: cert, fullchainPath: cert, keyPath: cert });
    expect(l.ariCertId).toBe('aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE');
    expect(l.serial).toBe('87654321');
    expect(l.names.sort()).toEqual(['ari.test', 'www.ari.test']);
    expect(l.notAfter.getTime()).toBeGreaterThan(l.notBefore.getTime());
  });

  it('takes a serial without the high bit as it is (no zero byte added)', async () => {
    const cert = await leaf('0x0102');
    const l = readLineageFiles({ id: 'ari.test', certPath: cert, chainPath: cert, fullchainPath: cert, keyPath: cert });
    expect(l.ariCertId).toBe(`aYhba4dGQEHhs3uEe6CuLN4ByNQ.${Buffer.from([1, 2]).toString('base64url')}`);
    expect(l.serial).toBe('0102');
  });

  it('is still a lineage when its certificate has no Authority Key Identifier (self-signed): no ARI id, names and dates read', async () => {
    // a certbot lineage of a self-signed certificate was not found at all (issue reordered it; init's existing site)
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-ari-')), 'cert.pem');
    fs.writeFileSync(file, await makeCertificatePem(['self.test'], new Date(Date.now() - 86_400_000), new Date(Date.now() + 86_400_000)));
    const l = readLineageFiles({ id: 'self.test', certPath: file, chainPath: file, fullchainPath: file, keyPath: file });
    expect(l.ariCertId).toBeUndefined();
    expect(l.names).toEqual(['self.test']);
  });
});
