/**
 * The scan's quick DER reader must agree with @peculiar/x509 (the reference) on every field it reads, for
 * ECDSA and RSA certificates, and fall back to @peculiar/x509 for what it does not expect.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { readCertificate, readCertificateQuick } from '../../src/issuer/certificate.js';
import { firstPemCertificate, readCertificateFields } from '../../src/issuer/der.js';
import { BINARIES } from '../../scripts/sandbox/rig.js';
import { makeCertificatePem } from '../helpers/certs.js';
import { selfSignedEcdsa } from '../../scripts/sandbox/openssl.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-der-'));

async function openssl(name: string, keyArgs: string[], subject: string, san: string): Promise<string> {
  const file = path.join(dir, `${name}.pem`);
  await execa(BINARIES.openssl, [
    'req',
    '-x509',
    ...keyArgs,
    '-nodes',
    '-keyout',
    path.join(dir, `${name}.key`),
    '-out',
    file,
    '-days',
    '30',
    '-subj',
    subject,
    '-addext',
    `subjectAltName=${san}`,
  ]);
  return file;
}

describe('quick DER reader', () => {
  it('agrees with @peculiar/x509 on ECDSA and RSA certificates', async () => {
    const files = [
      await openssl(
        'ec',
        ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'],
        '/C=DE/O=Example Org/CN=ec.example.test',
        'DNS:ec.example.test,DNS:www.ec.example.test,IP:127.0.0.1',
      ),
      await openssl('rsa', ['-newkey', 'rsa:2048'], '/CN=rsa.example.test', 'DNS:rsa.example.test'),
    ];
    const generated = path.join(dir, 'gen.pem');
    fs.writeFileSync(
      generated,
      await makeCertificatePem(['gen.example.test', 'alt.example.test'], new Date(Date.UTC(2049, 0, 1)), new Date(Date.UTC(2051, 5, 1))),
    );
    files.push(generated); // GeneralizedTime after 2049
    for (const file of files) {
      const quick = readCertificateFields(firstPemCertificate(fs.readFileSync(file, 'latin1'))!);
      expect(quick, file).not.toBeNull();
      const reference = readCertificate(file);
      expect({ ...quick, notBefore: quick!.notBefore.getTime(), notAfter: quick!.notAfter.getTime() }).toEqual({
        ...reference,
        notBefore: reference.notBefore.getTime(),
        notAfter: reference.notAfter.getTime(),
      });
    }
    expect(readCertificate(files[1]!).keyType).toBe('rsa');
    expect(readCertificate(files[0]!).keyType).toBe('ecdsa');
  });

  it('falls back to @peculiar/x509 for an issuer it would have to escape', async () => {
    const file = await openssl('odd', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'], '/CN=odd\\, name.example.test', 'DNS:odd.example.test');
    expect(readCertificateFields(firstPemCertificate(fs.readFileSync(file, 'latin1'))!)).toBeNull();
    expect(readCertificateQuick(file)).toEqual(readCertificate(file));
  });

  it('returns null for bytes that are not a certificate', () => {
    expect(readCertificateFields(Buffer.from([0x30, 0x03, 0x02, 0x01]))).toBeNull();
    expect(readCertificateFields(Buffer.alloc(0))).toBeNull();
  });
});

describe('serials', () => {
  it('are printed as nginx and openssl x509 -serial print them: upper case, a leading zero kept', async () => {
    for (const set of ['0x0A1B2C3D4E', '0x8A1B2C3D', '0x01', '0x00FF00']) {
      const file = path.join(dir, `serial-${set}.pem`);
      await selfSignedEcdsa({ key: `${file}.key`, cert: file, days: 1, subject: '/CN=serial.example.test', extra: ['-set_serial', set] });
      const printed = (await execa(BINARIES.openssl, ['x509', '-in', file, '-noout', '-serial'])).stdout.replace(/^serial=/, '').trim();
      expect(readCertificate(file).serial, set).toBe(printed);
      expect(readCertificateQuick(file).serial, set).toBe(printed);
    }
    expect(readCertificate(path.join(dir, 'serial-0x0A1B2C3D4E.pem')).serial).toBe('0A1B2C3D4E');
  });
});
