/**
 * End to end, all real: pebble + challtestsrv + a private nginx on 127.0.0.1 + certbot, driven through the
 * built CLI (`node dist/src/cli.js`). Runs in CI (.ci/run installs the Debian packages); it never skips.
 */
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig } from '../../scripts/sandbox/rig.js';
import { createAutoSsl } from '../../src/engine.js';
import { loadConfig } from '../../src/config/load.js';
import { readCertificate } from '../../src/issuer/certificate.js';
import { sha256 } from '../../src/nginx/transaction.js';
import { servedSerial } from '../../src/stages/verify-tls.js';
import { parseJson } from '../helpers/json.js';
import { servedEventually } from '../helpers/served.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');

const SHAPES: Record<string, { names: string[]; conf: string }> = {
  'static.e2e.test': {
    names: ['static.e2e.test', 'www.static.e2e.test'],
    conf: `server {\n    listen 127.0.0.1:80;\n    server_name static.e2e.test www.static.e2e.test;\n    root {root};\n    index index.html;\n}\n`,
  },
  'php.e2e.test': {
    names: ['php.e2e.test'],
    conf: `server {\n    listen 127.0.0.1:80;\n    server_name php.e2e.test;\n    root {root};\n    index index.php;\n\n    location / {\n        try_files $uri /index.php?$query_string;\n    }\n\n    location ~ /\\. {\n        deny all;\n    }\n\n    location ~ \\.php$ {\n        fastcgi_pass 127.0.0.1:9000;\n        include fastcgi_params;\n    }\n}\n`,
  },
  'app.e2e.test': {
    names: ['app.e2e.test'],
    conf: `server {\n    listen 127.0.0.1:80;\n    server_name app.e2e.test;\n\n    location / {\n        proxy_pass http://127.0.0.1:3999;\n        proxy_set_header Host $host;\n    }\n}\n`,
  },
  'dual.e2e.test': {
    names: ['dual.e2e.test'],
    conf: `server {\n    listen 127.0.0.1:80;\n    listen [::1]:80;\n    server_name dual.e2e.test;\n    root {root};\n}\n`,
  },
  'fail.e2e.test': {
    names: ['fail.e2e.test'],
    conf: `server {\n    listen 127.0.0.1:80;\n    server_name fail.e2e.test;\n    root {root};\n\n    location / {\n        try_files $uri /index.php;\n    }\n\n    location ~ /\\. {\n        deny all;\n    }\n}\n`,
  },
};

const PLUGIN = `// a user plugin, loaded from the config by path: adds a header through the vhost hook
export default {
  name: 'e2e-header',
  apply(hooks, api) {
    hooks.vhost.tapPromise({ name: 'e2e-header', stage: 100 }, async (edit) => {
      edit.https._add('add_header', 'X-Autossl-Plugin "' + api.options.value + '" always');
      return edit;
    });
  },
};
`;

let rig: AcmeRig;
let configFile: string;
const files: Record<string, string> = {};

function cli(args: string[]) {
  return execa('node', [CLI, ...args, '--config', configFile], { reject: false });
}

function get(domain: string, host: string, ca: string): Promise<{ status: number; headers: Record<string, unknown>; body: string; authorized: boolean }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host, port: 443, servername: domain, path: '/', headers: { Host: domain }, ca }, (res) => {
      let body = '';
      const authorized = (res.socket as import('node:tls').TLSSocket).authorized;
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, authorized }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  rig = await AcmeRig.start();
  fs.writeFileSync(path.join(rig.info.nginxPrefix, 'fastcgi_params'), 'fastcgi_param QUERY_STRING $query_string;\n');
  for (const [name, shape] of Object.entries(SHAPES)) files[name] = rig.addSite(name, shape.conf).file;
  await rig.reloadNginx();
  fs.writeFileSync(path.join(rig.info.dir, 'header-plugin.mjs'), PLUGIN);
  configFile = path.join(rig.info.dir, 'autossl.config.json');
  fs.writeFileSync(
    configFile,
    JSON.stringify(
      rig.autosslConfig({
        plugins: [['./header-plugin.mjs', { value: 'e2e' }]],
        sites: Object.entries(SHAPES).map(([domain, s]) => ({ domain, aliases: s.names.slice(1) })),
      }),
      null,
      2,
    ),
  );
});

afterAll(async () => {
  await rig?.stop();
});

describe('autossl issue (pebble, certbot, nginx)', () => {
  const ok = ['static.e2e.test', 'php.e2e.test', 'app.e2e.test', 'dual.e2e.test'];

  it('issues and installs certificates for four vhost shapes', async () => {
    const run = await cli(['issue', ...ok, '--json']);
    expect(run.stderr).toBe('');
    const report = parseJson(run.stdout) as { ok: boolean; results: Array<{ domain: string; ok: boolean; lineage: { fullchain: string } }> };
    expect(report.results.map((r) => [r.domain, r.ok])).toEqual(ok.map((d) => [d, true]));
    expect(run.exitCode).toBe(0);
    const root = await rig.issuingRoot();
    for (const domain of ok) {
      const live = path.join(rig.info.dir, 'certbot', 'config', 'live', domain);
      for (const f of ['fullchain.pem', 'privkey.pem', 'cert.pem', 'chain.pem']) expect(fs.existsSync(path.join(live, f)), `${domain} ${f}`).toBe(true);
      const cert = readCertificate(path.join(live, 'cert.pem'));
      expect([...cert.names].sort()).toEqual([...SHAPES[domain]!.names].sort());
      // through nginx, chained to pebble's issuing root (Node verifies the chain against it)
      const res = await get(domain, '127.0.0.1', root);
      expect(res.authorized).toBe(true);
      expect(await servedEventually(domain, cert.serial)).toBe(cert.serial);
      expect(res.headers['x-autossl-plugin']).toBe('e2e'); // the custom plugin from the config ran
    }
    const page = await get('static.e2e.test', '127.0.0.1', root);
    expect(page.status).toBe(200);
    expect(page.body).toContain('static.e2e.test');
    // the alias is on the same certificate and served too
    expect((await get('www.static.e2e.test', '127.0.0.1', root)).authorized).toBe(true);
    // IPv4 + IPv6 shape: TLS on [::1] as well
    expect(await servedSerial('::1', 443, 'dual.e2e.test')).toBe(readCertificate(path.join(rig.info.dir, 'certbot/config/live/dual.e2e.test/cert.pem')).serial);
  });

  it('changes no vhost byte on a second issue', async () => {
    const before = Object.fromEntries(ok.map((d) => [d, sha256(fs.readFileSync(files[d]!))]));
    const run = await cli(['issue', ...ok, '--json']);
    expect(run.exitCode).toBe(0);
    const report = parseJson(run.stdout) as { results: Array<{ reused: boolean; changes: unknown[] }> };
    expect(report.results.every((r) => r.reused && r.changes.length === 0)).toBe(true);
    for (const d of ok) expect(sha256(fs.readFileSync(files[d]!))).toBe(before[d]);
  });

  it('a failing certbot leaves the vhost byte-identical, nginx serving, and reports CERTBOT_FAILED with the ACME error', async () => {
    // the CA resolves the name to an address where nothing answers on port 80
    await rig.dns('/add-a', { host: 'fail.e2e.test', addresses: ['127.0.0.9'] });
    const before = sha256(fs.readFileSync(files['fail.e2e.test']!));
    // pre-flight would catch this (DNS_MISMATCH); skip it so that certbot itself fails at the CA
    const run = await cli(['issue', 'fail.e2e.test', '--json', '--skip-check', 'dns', '--skip-check', 'port80']);
    expect(run.exitCode).toBe(1);
    const report = parseJson(run.stdout) as {
      results: Array<{ error: { code: string; message: string; details: { problems: Array<{ detail: string }> } }; rolledBack: string[] }>;
    };
    const result = report.results[0]!;
    expect(result.error.code).toBe('CERTBOT_FAILED');
    expect(result.error.details.problems.length).toBeGreaterThan(0);
    expect(result.error.message).toMatch(/127\.0\.0\.9/);
    expect(result.rolledBack).toEqual([files['fail.e2e.test']]); // the challenge edit was made, then undone
    expect(sha256(fs.readFileSync(files['fail.e2e.test']!))).toBe(before);
    // nginx still serves everything else
    expect((await get('static.e2e.test', '127.0.0.1', await rig.issuingRoot())).status).toBe(200);
  });

  it('after 3 failed validations in an hour the 4th attempt is refused without calling certbot', async () => {
    const skip = ['--skip-check', 'dns', '--skip-check', 'port80'];
    for (let i = 0; i < 2; i++) {
      const again = await cli(['issue', 'fail.e2e.test', '--json', ...skip]);
      expect(parseJson(again.stdout).results[0].error.code).toBe('CERTBOT_FAILED');
    }
    const logs = path.join(rig.info.dir, 'certbot', 'logs', 'letsencrypt.log');
    const logBefore = fs.statSync(logs).mtimeMs;
    const ordersBefore = fs.readFileSync(rig.info.pebbleLog, 'utf8').split('Value:"fail.e2e.test"').length;
    const run = await cli(['issue', 'fail.e2e.test', '--json', ...skip]);
    expect(run.exitCode).toBe(1);
    const error = parseJson(run.stdout).results[0].error as { code: string; message: string };
    expect(error.code).toBe('VALIDATION_BUDGET_EXHAUSTED');
    expect(error.message).toMatch(/failed validation 3 times .*next try allowed at \d{4}-\d\d-\d\dT/);
    expect(fs.statSync(logs).mtimeMs).toBe(logBefore); // certbot did not run
    expect(fs.readFileSync(rig.info.pebbleLog, 'utf8').split('Value:"fail.e2e.test"').length).toBe(ordersBefore);
    // `check` tells it too, before anyone runs issue again (issue 12, defect 9)
    const check = await cli(['check', 'fail.e2e.test', ...skip]);
    expect(check.exitCode).toBe(1);
    expect(check.stdout).toMatch(/\[x\] budget +VALIDATION_BUDGET_EXHAUSTED/);
    expect(fs.statSync(logs).mtimeMs).toBe(logBefore);
    await rig.dns('/clear-a', { host: 'fail.e2e.test' });
  });

  it('a domain whose DNS points elsewhere is refused with DNS_MISMATCH and no order reaches pebble', async () => {
    const name = 'elsewhere.e2e.test';
    const { file } = rig.addSite(name, `server {\n    listen 127.0.0.1:80;\n    server_name ${name};\n    root {root};\n}\n`);
    await rig.dns('/add-a', { host: name, addresses: ['127.0.0.9'] });
    const before = sha256(fs.readFileSync(file));
    const run = await cli(['issue', name, '--json']);
    expect(run.exitCode).toBe(1);
    const error = parseJson(run.stdout).results[0].error as { code: string; message: string };
    expect(error.code).toBe('DNS_MISMATCH');
    expect(error.message).toContain('127.0.0.9');
    expect(fs.readFileSync(rig.info.pebbleLog, 'utf8')).not.toContain(name);
    expect(sha256(fs.readFileSync(file))).toBe(before);
    // and `autossl check` says the same, with the fix
    const check = await cli(['check', name]);
    expect(check.exitCode).toBe(1);
    expect(check.stdout).toMatch(/\[x\] dns +DNS_MISMATCH/);
    expect(check.stdout).toContain('fix: Point the A record at this server');
  });

  it('refuses hostile domains before any file write or subprocess', async () => {
    // (a NUL byte cannot travel in argv at all; it is refused through the engine API below)
    const hostile = ['a.com;', 'a.com\n}', 'a.com{', '../x', '-a.com', `${'a'.repeat(250)}.com`, `${'b'.repeat(64)}.com`, '$host', 'a b', '`id`.a.com'];
    const logs = path.join(rig.info.dir, 'certbot', 'logs', 'letsencrypt.log');
    const logBefore = fs.statSync(logs).mtimeMs;
    const shas = Object.fromEntries(Object.entries(files).map(([d, f]) => [d, sha256(fs.readFileSync(f))]));
    for (const domain of hostile) {
      // `--` so that "-a.com" reaches autossl as a domain rather than as an option
      const run = await execa('node', [CLI, 'issue', '--json', '--config', configFile, '--', domain], { reject: false });
      expect(run.exitCode, domain).toBe(2);
      const out = parseJson(run.stdout) as { error: { code: string; message: string } };
      expect(out.error.code).toBe('DOMAIN_INVALID');
      expect(out.error.message).toMatch(/^Invalid domain /);
    }
    const engine = await createAutoSsl(await loadConfig({ file: configFile }));
    // the engine refuses the whole call, as the CLI does: no stage, no recovery, no state database
    await expect(engine.issue(['a\u0000.com'])).rejects.toMatchObject({ code: 'DOMAIN_INVALID' });
    expect(fs.statSync(logs).mtimeMs).toBe(logBefore); // certbot never ran
    for (const [d, f] of Object.entries(files)) expect(sha256(fs.readFileSync(f))).toBe(shas[d]);
  });

  it('--dry-run prints the vhost diff and touches nothing', async () => {
    const name = 'dry.e2e.test';
    const { file } = rig.addSite(name, `server {\n    listen 127.0.0.1:80;\n    server_name ${name};\n    root {root};\n}\n`);
    const before = sha256(fs.readFileSync(file));
    const run = await execa('node', [CLI, 'issue', name, '--dry-run', '--config', configFile], { reject: false });
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain('+    listen 127.0.0.1:443 ssl');
    expect(run.stdout).toContain('+    ssl_certificate ');
    expect(sha256(fs.readFileSync(file))).toBe(before);
    expect(fs.existsSync(path.join(rig.info.dir, 'certbot', 'config', 'live', name))).toBe(false);
  });
});
