/**
 * The engine as one API, end to end against pebble, certbot and a private nginx (all real, on 127.0.0.1):
 * domains sharing one file, the preview being the bytes issue writes, a plugin package found beside the config,
 * DNS-01 with a wildcard through certbot's manual hooks (renewed by certbot on its own), plugin taps on a renewal
 * certbot starts itself, and notifications that survive a receiver being down.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import dns from 'node:dns';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig } from '../../scripts/sandbox/rig.js';
import { readCertificate } from '../../src/issuer/certificate.js';
import { servedSerial } from '../../src/stages/verify-tls.js';
import { createAutoSsl } from '../../src/engine.js';
import { loadConfig } from '../../src/config/load.js';
import { linesOutsideTargets } from '../helpers/confined.js';
import { parseJson } from '../helpers/json.js';
import { dnsPluginSource } from '../helpers/dns-plugin.js';
import { servedEventually } from '../helpers/served.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');

const LOG_PLUGIN = `import fs from 'node:fs';
// records which hooks ran, in order, and adds a header through the vhost hook
export default (options) => ({
  name: 'test-log',
  apply(hooks) {
    const log = (line) => fs.appendFileSync(options.file, line + '\\n');
    hooks.vhost.tapPromise({ name: 'test-log', stage: 100 }, async (edit, ctx) => {
      log('vhost ' + ctx.mode + ' ' + ctx.domain);
      edit.https._add('add_header', 'X-Test-Log "1" always');
      return edit;
    });
    hooks.finally.tapPromise('test-log', async (ctx, outcome) => log('finally ' + ctx.mode + ' ' + ctx.domain + ' ' + outcome.ok));
    hooks.notify.tapPromise('test-log', async (n) => log('notify ' + n.kind + ' ' + n.lineage));
    hooks.beforeRenew.tapPromise('test-log', async (e) => log('beforeRenew ' + e.startedBy + ' ' + e.lineages.filter((l) => l.due).map((l) => l.name).join(',')));
    hooks.afterRenew.tapPromise('test-log', async (e) => log('afterRenew ' + e.startedBy));
  },
});
`;

// a plugin published as a package, installed beside the config (node_modules), found by its name
const STAMP_PACKAGE = {
  'package.json': JSON.stringify({ name: 'autossl-plugin-stamp', version: '1.0.0', type: 'module', exports: { '.': { import: './index.js' } } }),
  'index.js': `export default { name: 'stamp', apply(hooks) { hooks.vhost.tapPromise('stamp', async (edit) => { edit.https._add('add_header', 'X-Stamp "stamped" always'); return edit; }); } };\n`,
};

const SHARED = Array.from({ length: 10 }, (_, i) => `s${i + 1}.shared.test`);

let rig: AcmeRig;
let root: string;
let logFile: string;
let mainConfig: string;
let sharedConfig: string;
let receiverPort: number;

function cli(args: string[], config = mainConfig) {
  return execa('node', [CLI, ...args, '--config', config], { reject: false });
}

function get(domain: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; authorized: boolean }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: 443, servername: domain, path: '/', headers: { Host: domain }, ca: root }, (res) => {
      const authorized = (res.socket as import('node:tls').TLSSocket).authorized;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, authorized }));
    });
    req.on('error', reject);
    req.end();
  });
}

const liveCert = (name: string) => readCertificate(path.join(rig.certbotDirs().configDir, 'live', name, 'cert.pem'));
const logLines = () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').trim().split('\n') : []);

beforeAll(async () => {
  rig = await AcmeRig.start();
  const dir = rig.info.dir;
  // ten sites in one file, each block with its own root
  const wwwShared = SHARED.map((name) => {
    const r = path.join(rig.info.wwwDir, name);
    fs.mkdirSync(r, { recursive: true });
    fs.writeFileSync(path.join(r, 'index.html'), `<h1>${name}</h1>\n`);
    return `server {\n    listen 127.0.0.1:80;\n    server_name ${name};\n    root ${r};\n}\n`;
  });
  fs.writeFileSync(path.join(rig.info.sitesDir, 'shared.conf'), `# ten customers in one file\n\n${wwwShared.join('\n')}`);
  rig.addSite('preview.engine.test', `server {\n    listen 127.0.0.1:80;\n    server_name {name};\n    root {root};\n}\n`);
  rig.addSite('wild.engine.test', `server {\n    listen 127.0.0.1:80;\n    server_name {name} *.{name};\n    root {root};\n}\n`);
  rig.addSite('renew.engine.test', `server {\n    listen 127.0.0.1:80;\n    server_name {name};\n    root {root};\n}\n`);
  rig.addSite('fail.engine.test', `server {\n    listen 127.0.0.1:80;\n    server_name {name};\n    root {root};\n}\n`);
  await rig.reloadNginx();
  root = await rig.issuingRoot();
  logFile = path.join(dir, 'hooks.log');
  fs.writeFileSync(path.join(dir, 'log-plugin.mjs'), LOG_PLUGIN);
  fs.writeFileSync(path.join(dir, 'dns-provider.mjs'), dnsPluginSource());
  const pkg = path.join(dir, 'node_modules', 'autossl-plugin-stamp');
  fs.mkdirSync(pkg, { recursive: true });
  for (const [f, text] of Object.entries(STAMP_PACKAGE)) fs.writeFileSync(path.join(pkg, f), text);
  // a port where nothing listens yet: the webhook receiver comes up later in the test
  receiverPort = await new Promise<number>((resolve) => {
    const s = http.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
  mainConfig = path.join(dir, 'autossl.config.json');
  fs.writeFileSync(
    mainConfig,
    JSON.stringify(
      rig.autosslConfig({
        plugins: [
          ['./log-plugin.mjs', { file: logFile }],
          'autossl-plugin-stamp',
          './dns-provider.mjs',
          ['autossl:webhook', { url: `http://127.0.0.1:${receiverPort}/hook`, secret: 'engine-test-secret-0123', retries: 0 }],
        ],
        notify: { retryBaseMs: 0 },
        sites: [
          { domain: 'preview.engine.test', hsts: true },
          { domain: 'wild.engine.test', aliases: ['*.wild.engine.test'], challenge: 'dns-01' },
          { domain: 'renew.engine.test' },
          { domain: 'fail.engine.test' },
        ],
      }),
      null,
      2,
    ),
  );
  sharedConfig = path.join(dir, 'shared.config.json');
  fs.writeFileSync(
    sharedConfig,
    JSON.stringify(rig.autosslConfig({ stateDir: path.join(dir, 'state-shared'), sites: SHARED.map((domain) => ({ domain })) }), null, 2),
  );
});

afterAll(async () => {
  await rig?.stop();
});

describe('the engine end to end', () => {
  it('issues 10 domains whose server blocks share one file in one issue --all: all served, each edit inside its own block', async () => {
    const file = path.join(rig.info.sitesDir, 'shared.conf');
    const before = fs.readFileSync(file, 'latin1');
    const run = await cli(['issue', '--all', '--json'], sharedConfig);
    const report = parseJson(run.stdout) as { results: Array<{ domain: string; ok: boolean; error?: { code: string; message: string } }> };
    expect(report.results.map((r) => [r.domain, r.ok, r.error?.code])).toEqual(SHARED.map((d) => [d, true, undefined]));
    expect(run.exitCode).toBe(0);
    const after = fs.readFileSync(file, 'latin1');
    expect(linesOutsideTargets(before, after, SHARED)).toEqual([]);
    // each block points at its own lineage (a block's edit never landed in a neighbour)
    const blocks = after.split(/\n(?=server \{)/).filter((b) => b.startsWith('server {'));
    expect(blocks).toHaveLength(10);
    for (const [i, block] of blocks.entries()) {
      expect(block).toContain(`server_name ${SHARED[i]};`);
      expect(block).toContain(`/live/${SHARED[i]}/fullchain.pem;`);
      expect(block.match(/ssl_certificate /g)).toHaveLength(1);
    }
    for (const name of SHARED) {
      const res = await get(name);
      expect(res.authorized, name).toBe(true);
      expect(await servedEventually(name, liveCert(name).serial)).toBe(liveCert(name).serial);
    }
  });

  it('vhost show --diff runs the real vhost hooks: its preview is exactly what the following issue writes', async () => {
    const file = path.join(rig.info.sitesDir, 'preview.engine.test.conf');
    const show = await cli(['vhost', 'show', 'preview.engine.test', '--diff']);
    expect(show.exitCode, show.stderr).toBe(0);
    expect(show.stdout).toContain('+    add_header X-Test-Log "1" always;'); // a plugin's tap
    expect(show.stdout).toContain('+    add_header X-Stamp "stamped" always;'); // the package beside the config
    expect(show.stdout).toContain('+    add_header Strict-Transport-Security "max-age=31536000" always;'); // HSTS
    const engine = await createAutoSsl(await loadConfig({ file: mainConfig }));
    const preview = await engine.preview('preview.engine.test');
    await engine.close();
    expect(preview.ok).toBe(true);
    expect(preview.files.map((f) => f.file)).toEqual([file]);
    const run = await cli(['issue', 'preview.engine.test', '--json']);
    expect(run.exitCode, run.stdout).toBe(0);
    expect(fs.readFileSync(file, 'latin1')).toBe(preview.files[0]!.after);
    // the plugin package's tap ran in the real issue: its header is served
    const res = await get('preview.engine.test');
    expect(res.authorized).toBe(true);
    expect(res.headers['x-stamp']).toBe('stamped');
    expect(res.headers['strict-transport-security']).toBe('max-age=31536000');
  });

  it("DNS-01: a wildcard and its apex through certbot's manual hooks, served for a subdomain, no TXT left, renewed by certbot alone", async () => {
    const run = await cli(['issue', 'wild.engine.test', '--json']);
    const report = parseJson(run.stdout) as { results: Array<{ ok: boolean; error?: { code: string; message: string } }> };
    expect(report.results[0]!.error).toBeUndefined();
    expect(run.exitCode).toBe(0);
    const cert = liveCert('wild.engine.test');
    expect([...cert.names].sort()).toEqual(['*.wild.engine.test', 'wild.engine.test']);
    for (const host of ['a.wild.engine.test', 'wild.engine.test']) {
      expect((await get(host)).authorized, host).toBe(true);
      expect(await servedEventually(host, cert.serial)).toBe(cert.serial);
    }
    const resolver = new dns.promises.Resolver();
    resolver.setServers(['127.0.0.1:8053']);
    await expect(resolver.resolveTxt('_acme-challenge.wild.engine.test')).rejects.toMatchObject({ code: expect.stringMatching(/ENODATA|ENOTFOUND/) });
    // certbot's own renewal (certbot.timer) renews it with the hooks stored in the lineage
    const renewed = await rig.certbot(['renew', '--force-renewal', '--cert-name', 'wild.engine.test']);
    expect(renewed.exitCode, renewed.stderr).toBe(0);
    expect(liveCert('wild.engine.test').serial).not.toBe(cert.serial);
    await expect(resolver.resolveTxt('_acme-challenge.wild.engine.test')).rejects.toMatchObject({ code: expect.stringMatching(/ENODATA|ENOTFOUND/) });
  });

  it('a renewal certbot starts itself runs the plugins: beforeRenew, vhost, finally, notify, afterRenew, in that order', async () => {
    expect((await cli(['issue', 'renew.engine.test'])).exitCode).toBe(0);
    const hooks = await cli(['install-hooks']);
    expect(hooks.exitCode, hooks.stderr).toBe(0);
    const before = liveCert('renew.engine.test').serial;
    const mark = logLines().length;
    const run = await rig.certbot(['renew', '--force-renewal', '--cert-name', 'renew.engine.test']);
    expect(run.exitCode, run.stderr).toBe(0);
    const serial = liveCert('renew.engine.test').serial;
    expect(serial).not.toBe(before);
    expect(await servedEventually('renew.engine.test', serial)).toBe(serial);
    expect(logLines().slice(mark)).toEqual([
      'beforeRenew certbot renew.engine.test',
      'vhost deploy renew.engine.test',
      'finally deploy renew.engine.test true',
      'notify renewed renew.engine.test',
      'afterRenew certbot',
    ]);
  });

  it('a notification whose receiver is down stays queued: status still prints, the next renew delivers it exactly once', async () => {
    expect((await cli(['issue', 'fail.engine.test'])).exitCode).toBe(0);
    await rig.dns('/add-a', { host: 'fail.engine.test', addresses: ['127.0.0.9'] });
    const failed = await cli(['renew', '--force', '--cert-name', 'fail.engine.test', '--json']);
    expect(failed.exitCode).toBe(1);
    expect(parseJson(failed.stdout).results[0].outcome).toBe('failed');
    const status = await cli(['status']);
    expect(status.exitCode).toBe(1);
    expect(status.stdout).toMatch(/fail\.engine\.test .* failing /);
    expect(status.stdout).toMatch(/notification\(s\) queued/);
    // the receiver comes back
    const received: Array<{ event: string; lineage: string; key: string }> = [];
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        received.push(JSON.parse(body));
        res.end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(receiverPort, '127.0.0.1', () => r()));
    try {
      await rig.dns('/clear-a', { host: 'fail.engine.test' });
      expect((await cli(['renew'])).exitCode).toBe(0);
      expect(received.filter((n) => n.event === 'renewal-failed' && n.lineage === 'fail.engine.test')).toHaveLength(1);
      await cli(['renew']);
      expect(received.filter((n) => n.event === 'renewal-failed' && n.lineage === 'fail.engine.test')).toHaveLength(1);
      expect(new Set(received.map((n) => n.key)).size).toBe(received.length); // nothing delivered twice
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
