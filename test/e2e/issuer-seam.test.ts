/**
 * The Issuer seam, end to end: a test issuer that signs with a local CA (test/helpers/local-ca-issuer.mjs, no
 * certbot, no ACME) is named in the config file and runs the whole pipeline against a real nginx: the certificate
 * is served over HTTPS (checked against the local CA with SNI), `status` says it is ok, and `engine.renew` renews
 * it through the issuer and the new serial is what nginx serves. Nothing of certbot's directories is written.
 */
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig } from '../../scripts/sandbox/rig.js';
import { createAutoSsl, type AutoSsl } from '../../src/engine.js';
import { loadConfig } from '../../src/config/load.js';
import { readLineageFiles } from '../../src/issuer/issuer.js';
import { servedEventually } from '../helpers/served.js';
import { selfSignedEcdsa } from '../../scripts/sandbox/openssl.js';

const ISSUER = path.resolve(import.meta.dirname, '../helpers/local-ca-issuer.mjs');
const DOMAIN = 'seam.issuer.test';
const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');

let rig: AcmeRig;
let engine: AutoSsl;
let ca: { cert: string; key: string };
let configFile: string;
let issuerDir: string;

/** A GET over TLS with SNI, verified against the local CA only. */
function get(name: string): Promise<{ status: number; authorized: boolean; serial: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port: 443, servername: name, path: '/', headers: { Host: name }, ca: fs.readFileSync(ca.cert), agent: false },
      (res) => {
        const socket = res.socket as import('node:tls').TLSSocket;
        const out = { status: res.statusCode ?? 0, authorized: socket.authorized, serial: socket.getPeerCertificate().serialNumber.toUpperCase() };
        res.resume();
        res.on('end', () => resolve(out));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  rig = await AcmeRig.start();
  const caDir = path.join(rig.info.dir, 'local-ca');
  fs.mkdirSync(caDir);
  ca = { cert: path.join(caDir, 'ca.pem'), key: path.join(caDir, 'ca.key') };
  await selfSignedEcdsa({
    key: ca.key,
    cert: ca.cert,
    days: 3,
    subject: '/CN=autossl test local CA',
    extra: ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
  });
  issuerDir = path.join(rig.info.dir, 'local-ca-lineages');
  fs.mkdirSync(issuerDir);
  rig.addSite(DOMAIN, `server {\n    listen 127.0.0.1:80;\n    server_name {name};\n    root {root};\n}\n`);
  await rig.reloadNginx();
  configFile = rig.writeAutosslConfig(
    {
      // relative to the config file, as a user writes it
      issuer: {
        module: path.relative(rig.info.dir, ISSUER).startsWith('.') ? path.relative(rig.info.dir, ISSUER) : `./${path.relative(rig.info.dir, ISSUER)}`,
        options: { dir: issuerDir, caCert: ca.cert, caKey: ca.key },
      },
      sites: [{ domain: DOMAIN }],
    },
    'autossl.json',
  );
  engine = await createAutoSsl(await loadConfig({ file: configFile }));
}, 60_000);

afterAll(async () => {
  await engine?.close();
  await rig?.stop();
});

describe('an issuer named in the config (a local CA, no certbot)', () => {
  let firstSerial: string;

  it('issues through it, and nginx serves the certificate over HTTPS (SNI, verified against the local CA)', async () => {
    const [r] = await engine.issue([DOMAIN]);
    expect(r!.error?.message).toBeUndefined();
    expect(r!.ok).toBe(true);
    expect(r!.lineage!.fullchain).toBe(path.join(issuerDir, DOMAIN, 'fullchain.pem'));
    // certbot never ran: its directories hold no lineage
    expect(fs.existsSync(path.join(rig.certbotDirs().configDir, 'live'))).toBe(false);
    const lineage = readLineageFiles({
      id: DOMAIN,
      certPath: path.join(issuerDir, DOMAIN, 'cert.pem'),
      chainPath: path.join(issuerDir, DOMAIN, 'chain.pem'),
      fullchainPath: r!.lineage!.fullchain,
      keyPath: r!.lineage!.privkey,
    });
    firstSerial = lineage.serial;
    expect(lineage.names).toEqual([DOMAIN]);
    expect(lineage.ariCertId).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(await servedEventually(DOMAIN, firstSerial)).toBe(firstSerial);
    const answer = await get(DOMAIN);
    expect(answer).toMatchObject({ status: 200, authorized: true });
    expect(answer.serial.replace(/^0+/, '')).toBe(firstSerial.replace(/^0+/, ''));
  });

  it('status lists the lineage the issuer keeps, ok, and needs no attention', async () => {
    const report = await engine.status();
    const row = report.certificates.find((c) => c.lineage === DOMAIN);
    expect(row).toMatchObject({ state: 'ok', names: [DOMAIN], serial: firstSerial });
    expect(report.certificates.filter((c) => c.state !== 'ok')).toEqual([]);
    expect(report.attention).toBe(false);
    // the CLI (dist) loads the same issuer module from the config file: exit 0, the lineage ok
    const cli = await execa('node', [CLI, 'status', '--json', '--config', configFile], { reject: false });
    expect(cli.exitCode, cli.stderr).toBe(0);
    const printed = JSON.parse(cli.stdout) as { certificates: Array<{ lineage: string; state: string; serial: string }> };
    expect(printed.certificates.find((c) => c.lineage === DOMAIN)).toMatchObject({ state: 'ok', serial: firstSerial });
  });

  it('engine.renew renews through the issuer and nginx serves the new serial', async () => {
    const report = await engine.renew({ force: true });
    expect(report.results).toEqual([expect.objectContaining({ lineage: DOMAIN, outcome: 'renewed' })]);
    const renewed = readLineageFiles({
      id: DOMAIN,
      certPath: path.join(issuerDir, DOMAIN, 'cert.pem'),
      chainPath: path.join(issuerDir, DOMAIN, 'chain.pem'),
      fullchainPath: path.join(issuerDir, DOMAIN, 'fullchain.pem'),
      keyPath: path.join(issuerDir, DOMAIN, 'privkey.pem'),
    });
    expect(renewed.serial).not.toBe(firstSerial);
    expect(await servedEventually(DOMAIN, renewed.serial)).toBe(renewed.serial);
    expect((await get(DOMAIN)).authorized).toBe(true);
    // not due, not forced: left alone
    const again = await engine.renew();
    expect(again.results).toEqual([expect.objectContaining({ lineage: DOMAIN, outcome: 'not-due' })]);
    const status = await engine.status();
    expect(status.certificates.find((c) => c.lineage === DOMAIN)).toMatchObject({ state: 'ok', serial: renewed.serial });
  });
});
