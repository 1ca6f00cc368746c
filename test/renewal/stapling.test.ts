/**
 * Issue 23 item 6, leftovers of the OCSP era: `status` names each TLS block whose effective `ssl_stapling on`
 * meets a certificate without an OCSP responder URL (nginx warns on every reload); what it names is exactly what
 * the real `nginx -t` warns about. And autossl never writes ssl_stapling itself: the edits `issue` makes on every
 * fixture shape add none.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { BINARIES } from '../../scripts/sandbox/rig.js';
import { NginxTree } from '../../src/nginx/tree.js';
import { staplingWithoutOcsp, hasOcspUrl } from '../../src/nginx/stapling.js';
import { parseJson } from '../helpers/json.js';
import { FIXTURES, loadFixture, makeTree, runIssueEdits } from '../helpers/nginx-fixture.js';

x509.cryptoProvider.set(crypto.webcrypto as unknown as Crypto);
const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

function pem(label: string, der: ArrayBuffer): string {
  return `-----BEGIN ${label}-----\n${Buffer.from(der)
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')}\n-----END ${label}-----\n`;
}

/** A CA and a leaf it signed (fullchain: leaf then CA, as Let's Encrypt's), with or without an OCSP URL. */
async function chain(dir: string, name: string, ocsp: boolean): Promise<{ fullchain: string; key: string }> {
  const caKeys = (await crypto.webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const keys = (await crypto.webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const notBefore = new Date(Date.now() - 3_600_000);
  const notAfter = new Date(Date.now() + 30 * 86_400_000);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${name} CA`,
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: `CN=${name}`,
    issuer: ca.subject,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: name }]),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
      ...(ocsp ? [new x509.AuthorityInfoAccessExtension({ ocsp: [new x509.GeneralName('url', 'http://ocsp.stapling.test')] })] : []),
    ],
  });
  fs.mkdirSync(path.join(dir, name), { recursive: true });
  const fullchain = path.join(dir, name, 'fullchain.pem');
  const key = path.join(dir, name, 'privkey.pem');
  fs.writeFileSync(fullchain, leaf.toString('pem') + '\n' + ca.toString('pem') + '\n');
  fs.writeFileSync(key, pem('PRIVATE KEY', await crypto.webcrypto.subtle.exportKey('pkcs8', keys.privateKey)));
  return { fullchain, key };
}

const tls = (name: string, c: { fullchain: string; key: string }, extra = '') =>
  `server {\n    listen 127.0.0.1:443 ssl;\n    server_name ${name};\n    ssl_certificate ${c.fullchain};\n    ssl_certificate_key ${c.key};\n${extra}}\n`;

describe('ssl_stapling on for a certificate without an OCSP URL', () => {
  it("names exactly the blocks the real nginx -t warns about (http-level on inherited, a block's own off, a responder, a certificate with a URL)", async () => {
    const t = await makeTree('');
    const certs = path.join(t.dir, 'certs');
    const inherits = await chain(certs, 'inherits.stapling.test', false);
    const off = await chain(certs, 'off.stapling.test', false);
    const withUrl = await chain(certs, 'url.stapling.test', true);
    const responder = await chain(certs, 'responder.stapling.test', false);
    const own = await chain(certs, 'own.stapling.test', false);
    expect(hasOcspUrl(withUrl.fullchain)).toBe(true);
    expect(hasOcspUrl(inherits.fullchain)).toBe(false);
    // the http context turns it on (a conf.d-style file included at http level), as old tutorials did
    fs.writeFileSync(path.join(t.dir, 'sites', '00-ssl.conf'), 'ssl_stapling on;\nssl_stapling_verify on;\n');
    fs.writeFileSync(
      t.site,
      [
        tls('inherits.stapling.test', inherits),
        tls('off.stapling.test', off, '    ssl_stapling off;\n'),
        tls('url.stapling.test', withUrl),
        tls('responder.stapling.test', responder, '    ssl_stapling_responder http://ocsp.elsewhere.test;\n'),
        'server {\n    listen 127.0.0.1:80;\n    server_name plain.stapling.test;\n}\n',
      ].join('\n'),
    );
    fs.writeFileSync(path.join(t.dir, 'sites', 'own.conf'), tls('own.stapling.test', own, '    ssl_stapling on;\n'));

    const found = staplingWithoutOcsp(NginxTree.load(t.main));
    expect(found.map((w) => w.serverNames[0]).sort()).toEqual(['inherits.stapling.test', 'own.stapling.test']);
    expect(found.find((w) => w.serverNames[0] === 'inherits.stapling.test')).toMatchObject({
      code: 'STAPLING_WITHOUT_OCSP',
      certificate: inherits.fullchain,
      staplingAt: `${path.join(t.dir, 'sites', '00-ssl.conf')}:1`,
    });
    expect(found.find((w) => w.serverNames[0] === 'own.stapling.test')!.staplingAt).toBe(`${path.join(t.dir, 'sites', 'own.conf')}:6`);

    // nginx itself: the same certificates, no others
    const run = await execa(BINARIES.nginx, ['-t', '-p', t.dir, '-e', path.join(t.dir, 'error.log'), '-c', t.main], { reject: false });
    expect(run.exitCode, run.stderr).toBe(0);
    const warned = [...run.stderr.matchAll(/"ssl_stapling" ignored, no OCSP responder URL in the certificate "([^"]+)"/g)].map((m) => m[1]).sort();
    expect(warned).toEqual([inherits.fullchain, own.fullchain].sort());

    // autossl status: in --json (warnings) and in its text, with the block's file and line
    const configFile = path.join(t.dir, 'autossl.config.json');
    fs.writeFileSync(
      configFile,
      JSON.stringify({
        nginx: { binary: BINARIES.nginx, config: t.main, extraArgs: ['-p', t.dir, '-e', path.join(t.dir, 'error.log')] },
        certbot: { configDir: path.join(t.dir, 'le') },
        stateDir: path.join(t.dir, 'state'),
      }),
    );
    const json = await execa('node', [CLI, 'status', '--json', '--config', configFile], { reject: false });
    const warnings = (parseJson(json.stdout) as { warnings: Array<{ code: string; certificate: string; file: string; line: number }> }).warnings;
    expect(warnings.map((w) => [w.code, w.certificate]).sort()).toEqual(
      [
        ['STAPLING_WITHOUT_OCSP', inherits.fullchain],
        ['STAPLING_WITHOUT_OCSP', own.fullchain],
      ].sort(),
    );
    const text = await execa('node', [CLI, 'status', '--config', configFile], { reject: false });
    expect(text.stdout).toContain(`warning STAPLING_WITHOUT_OCSP: ${path.join(t.dir, 'sites', 'own.conf')}:1 (own.stapling.test)`);
  });

  const fixtures = fs
    .readdirSync(FIXTURES)
    .filter((n) => fs.existsSync(path.join(FIXTURES, n, 'site.conf')))
    .sort();
  it('autossl never writes ssl_stapling: the edits of issue on every fixture shape add none', async () => {
    expect(fixtures.length).toBeGreaterThan(20);
    for (const name of fixtures) {
      const { tree, fixtureCase } = await loadFixture(name);
      const edits = await runIssueEdits(tree, fixtureCase);
      for (const e of edits) expect((e.after.match(/ssl_stapling/g) ?? []).length, `${name}: ${e.file}`).toBe((e.before.match(/ssl_stapling/g) ?? []).length);
    }
  });
});
