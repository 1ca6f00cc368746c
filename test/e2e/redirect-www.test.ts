/**
 * The www→apex redirect block (issue 20, item 1), all real: pebble + challtestsrv + a private nginx + certbot,
 * through the built CLI. `server { listen 80; server_name www.x; return 301 $scheme://x$request_uri; }` beside the
 * apex's own block (h5bp's layout), and the same names as one site (`aliases`): the CA follows the redirect to the
 * apex, so must the port-80 self-check; the TLS block for www redirects to the apex as the port-80 block did.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig } from '../../scripts/sandbox/rig.js';
import { readCertificate } from '../../src/issuer/certificate.js';
import { sha256 } from '../../src/nginx/transaction.js';
import { parseJson } from '../helpers/json.js';
import { servedEventually } from '../helpers/served.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');

let rig: AcmeRig;
let configFile: string;
const files: Record<string, string> = {};

function cli(args: string[], file = configFile) {
  return execa('node', [CLI, ...args, '--config', file], { reject: false });
}

/** `status` over these sites only (the others of the file are not issued yet, and status rightly says so). */
function status(sites: Array<Record<string, unknown>>) {
  const file = path.join(rig.info.dir, `status-${String(sites[0]!.domain)}.json`);
  fs.writeFileSync(file, JSON.stringify(rig.autosslConfig({ sites })));
  return cli(['status'], file);
}

/** A plain-HTTP GET to 127.0.0.1:80 with this Host header (an IP for the bare IP). */
function plain(host: string): Promise<{ status: number; location?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: 80, path: '/', headers: { Host: host } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function get(name: string, ca: string): Promise<{ status: number; location?: string; authorized: boolean }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: 443, servername: name, path: '/page?x=1', headers: { Host: name }, ca }, (res) => {
      const authorized = (res.socket as import('node:tls').TLSSocket).authorized;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, authorized }));
    });
    req.on('error', reject);
    req.end();
  });
}

const apex = (name: string) => `server {\n    listen 127.0.0.1:80;\n    server_name ${name};\n    root {root};\n}\n`;
const www = (name: string) => `server {\n    listen 127.0.0.1:80;\n    server_name www.${name};\n    return 301 $scheme://${name}$request_uri;\n}\n`;

beforeAll(async () => {
  rig = await AcmeRig.start();
  for (const name of ['example.test', 'pair.test', 'far.test', 'lone.test']) {
    files[name] = rig.addSite(name, apex(name)).file;
    files[`www.${name}`] = rig.addSite(`www.${name}`, www(name)).file;
  }
  await rig.reloadNginx();
  configFile = rig.writeAutosslConfig({
    sites: [
      { domain: 'example.test' },
      { domain: 'www.example.test' },
      { domain: 'pair.test', aliases: ['www.pair.test'] },
      { domain: 'www.far.test' },
      { domain: 'dflt.test', redirect: true },
    ],
  });
});

afterAll(async () => {
  await rig?.stop();
});

describe('the www→apex redirect block', () => {
  it('a www block redirecting to the apex in its own block: both names served over HTTPS, www answering 301 to the apex over HTTPS; status exit 0', async () => {
    // the preview says what it could not check (it fetches nothing), and agrees with the real run below
    const dry = await cli(['issue', 'www.example.test', '--dry-run']);
    expect(dry.exitCode, dry.stdout).toBe(0);
    expect(dry.stdout).toContain('port80: not fetched (a dry run writes no token)');
    expect(dry.stdout).not.toContain('redirects to example.test'); // the apex is a configured site: it gets its own
    const run = await cli(['issue', 'example.test', 'www.example.test', '--json']);
    const report = parseJson(run.stdout) as { results: Array<{ domain: string; ok: boolean; error?: { code: string; message: string } }> };
    expect(report.results.map((r) => [r.domain, r.ok, r.error?.code])).toEqual([
      ['example.test', true, undefined],
      ['www.example.test', true, undefined],
    ]);
    expect(run.exitCode).toBe(0);
    const root = await rig.issuingRoot();
    for (const name of ['example.test', 'www.example.test']) {
      const cert = readCertificate(path.join(rig.info.dir, 'certbot/config/live', name, 'cert.pem'));
      expect(await servedEventually(name, cert.serial)).toBe(cert.serial);
    }
    const wwwTls = await get('www.example.test', root);
    expect(wwwTls.authorized).toBe(true);
    expect(wwwTls.status).toBe(301);
    expect(wwwTls.location).toBe('https://example.test/page?x=1');
    expect((await get('example.test', root)).status).toBe(404); // the apex serves its own root (no /page there)
    const st = await status([{ domain: 'example.test' }, { domain: 'www.example.test' }]);
    expect(st.stdout + st.stderr).not.toMatch(/REDIRECT_INVALID/);
    expect(st.exitCode, st.stdout).toBe(0);
  });

  it('www alone, its apex neither configured nor served over HTTPS: the plan says visitors would land on an apex without a certificate', async () => {
    const dry = await cli(['issue', 'www.lone.test', '--dry-run']);
    expect(dry.exitCode, dry.stdout + dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/note .*www\.lone\.test redirects to lone\.test, which nginx does not serve over HTTPS.*issue lone\.test too/);
  });

  it('the same names as one site (aliases): one certificate on both blocks, www answering 301 to the apex over HTTPS', async () => {
    const run = await cli(['issue', 'pair.test', '--json']);
    const report = parseJson(run.stdout) as { results: Array<{ ok: boolean; error?: { code: string; message: string } }> };
    expect(report.results[0]!.error).toBeUndefined();
    expect(run.exitCode).toBe(0);
    const cert = readCertificate(path.join(rig.info.dir, 'certbot/config/live/pair.test/cert.pem'));
    expect([...cert.names].sort()).toEqual(['pair.test', 'www.pair.test']);
    expect(await servedEventually('www.pair.test', cert.serial)).toBe(cert.serial);
    expect(await servedEventually('pair.test', cert.serial)).toBe(cert.serial);
    const wwwTls = await get('www.pair.test', await rig.issuingRoot());
    expect(wwwTls.status).toBe(301);
    expect(wwwTls.location).toBe('https://pair.test/page?x=1');
    const st = await status([{ domain: 'pair.test', aliases: ['www.pair.test'] }]);
    expect(st.exitCode, st.stdout).toBe(0);
  });

  it('a redirect to a host that resolves elsewhere: --dry-run and the real run reach the same verdict, and nothing is ordered', async () => {
    // www.far.test points here; far.test (where its port-80 block redirects) points at another machine
    await rig.dns('/add-a', { host: 'far.test', addresses: ['127.0.0.9'] });
    const before = sha256(fs.readFileSync(files['www.far.test']!));
    const dry = await cli(['issue', 'www.far.test', '--dry-run', '--json']);
    const real = await cli(['issue', 'www.far.test', '--json']);
    const dryError = (parseJson(dry.stdout) as { results: Array<{ error?: { code: string; message: string } }> }).results[0]!.error;
    const realError = (parseJson(real.stdout) as { results: Array<{ error?: { code: string; message: string } }> }).results[0]!.error;
    expect(dry.exitCode).toBe(1);
    expect(real.exitCode).toBe(1);
    expect(dryError?.code).toBe('REDIRECT_INVALID');
    expect(realError?.code).toBe(dryError?.code);
    for (const e of [dryError!, realError!]) {
      expect(e.message).toContain('far.test');
      expect(e.message).toContain('127.0.0.9'); // named as what the CA would reach
    }
    expect(fs.readFileSync(rig.info.pebbleLog, 'utf8')).not.toContain('www.far.test');
    expect(sha256(fs.readFileSync(files['www.far.test']!))).toBe(before);
    await rig.dns('/clear-a', { host: 'far.test' });
  });
});

describe('the default server with redirect: true (issue 20, item 6)', () => {
  it("redirects only the certificate's names: the bare IP and a parked name answer as before", async () => {
    // the site is the default server of 127.0.0.1:80 (the rig's catch-all goes)
    fs.rmSync(path.join(rig.info.sitesDir, '000-default.conf'));
    const { file } = rig.addSite('dflt.test', 'server {\n    listen 127.0.0.1:80 default_server;\n    server_name dflt.test;\n    root {root};\n}\n');
    await rig.reloadNginx();
    const before = { ip: await plain('127.0.0.1'), parked: await plain('parked.test') };
    expect(before.ip.status).toBe(200);
    expect(before.parked.body).toContain('dflt.test');
    const run = await cli(['issue', 'dflt.test', '--json']);
    const result = (parseJson(run.stdout) as { results: Array<{ ok: boolean; error?: unknown; notes: string[] }> }).results[0]!;
    expect(result.error).toBeUndefined();
    expect(run.exitCode).toBe(0);
    expect(result.notes.join('\n')).toMatch(/every other Host on 127\.0\.0\.1:80 \(the default server/);
    const cert = readCertificate(path.join(rig.info.dir, 'certbot/config/live/dflt.test/cert.pem'));
    expect(await servedEventually('dflt.test', cert.serial)).toBe(cert.serial);
    // the certificate's name is redirected to HTTPS...
    await expect.poll(async () => (await plain('dflt.test')).location).toBe('https://dflt.test/');
    // ...every other Host the default server answers is not
    expect(await plain('127.0.0.1')).toEqual(before.ip);
    expect(await plain('parked.test')).toEqual(before.parked);
    expect(fs.readFileSync(file, 'utf8')).toMatch(/listen 127\.0\.0\.1:80 default_server;/); // port 80 stays the default here
  });
});
