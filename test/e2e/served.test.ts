/**
 * What is served, end to end (pebble, certbot, a private nginx, all real on 127.0.0.1):
 *  - a reissue serves the new certificate (one reload, even when no vhost byte changes);
 *  - a block's other names keep answering as before (redirect and HSTS for covered names only), or are covered
 *    when asked; an alias added later expands the lineage and is served;
 *  - one block, one certificate: two sites on one block are both served, and status says so, or says mismatch
 *    with the file and line when an admin re-points the block by hand;
 *  - vhosts certbot --nginx already edited (the real certbot writes them here) are taken over cleanly.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig, BINARIES } from '../../scripts/sandbox/rig.js';
import { readCertificate } from '../../src/issuer/certificate.js';
import { servedSerial } from '../../src/stages/verify-tls.js';
import { sha256 } from '../../src/nginx/transaction.js';
import { parseJson } from '../helpers/json.js';
import { servedEventually } from '../helpers/served.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');

interface Answer {
  status: number;
  location?: string;
  body: string;
  headers: http.IncomingHttpHeaders;
  authorized?: boolean;
}

function request(url: string, host: string, ca?: string): Promise<Answer> {
  const u = new URL(url);
  const secure = u.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).request(
      {
        host: '127.0.0.1',
        port: secure ? 443 : 80,
        path: u.pathname,
        headers: { Host: host },
        agent: false,
        ...(secure ? { servername: host, ca, rejectUnauthorized: false } : {}),
      },
      (res) => {
        // read before the body ends: the socket is let go afterwards
        const authorized = secure ? (res.socket as import('node:tls').TLSSocket).authorized : undefined;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, body, headers: res.headers, authorized }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function makeCli(rig: () => AcmeRig) {
  return (args: string[], config: string) => execa('node', [CLI, ...args, '--config', config], { reject: false, env: { AUTOSSL_DEBUG: '1' } });
}

const liveCert = (rig: AcmeRig, name: string) => readCertificate(path.join(rig.certbotDirs().configDir, 'live', name, 'cert.pem'));

function writeConfig(rig: AcmeRig, file: string, extra: Record<string, unknown>): string {
  const full = path.join(rig.info.dir, file);
  fs.writeFileSync(full, JSON.stringify(rig.autosslConfig(extra), null, 2));
  return full;
}

describe('what is served (autossl-managed blocks)', () => {
  let rig: AcmeRig;
  let root: string;
  let reloads: string;
  const cli = makeCli(() => rig);
  const site = (name: string, names: string) =>
    rig.addSite(name, `server {\n    listen 127.0.0.1:80;\n    server_name ${names};\n    root {root};\n}\n`, { index: `<h1>${name}</h1>\n` });
  // every reload of nginx, counted: the command the config names logs a line, then reloads for real
  const counted = () => ({
    nginx: {
      binary: BINARIES.nginx,
      config: rig.info.nginxConf,
      extraArgs: rig.nginxArgs,
      reloadCommand: ['/bin/sh', '-c', `echo reload >> ${reloads} && exec ${BINARIES.nginx} ${rig.nginxArgs.join(' ')} -c ${rig.info.nginxConf} -s reload`],
    },
  });
  const reloadCount = () => (fs.existsSync(reloads) ? fs.readFileSync(reloads, 'utf8').trim().split('\n').length : 0);

  beforeAll(async () => {
    rig = await AcmeRig.start();
    reloads = path.join(rig.info.dir, 'reloads.log');
    site('re.served.test', 're.served.test');
    site('a.two.test', 'a.two.test b.two.test');
    site('c.cover.test', 'c.cover.test d.cover.test');
    site('e.alias.test', 'e.alias.test f.alias.test');
    site('ts.test', 'ts.test www.ts.test');
    // port 80 only redirects to HTTPS, and nothing serves TLS yet: server-level, and inside location /
    rig.addSite(
      'rs.redir.test',
      'server {\n    listen 127.0.0.1:80;\n    server_name {name};\n    root {root};\n    return 301 https://$host$request_uri;\n}\n',
      { index: '<h1>rs</h1>\n' },
    );
    rig.addSite(
      'rl.redir.test',
      'server {\n    listen 127.0.0.1:80;\n    server_name {name};\n    root {root};\n\n    location / {\n        return 301 https://$host$request_uri;\n    }\n}\n',
      { index: '<h1>rl</h1>\n' },
    );
    await rig.reloadNginx();
    root = await rig.issuingRoot();
  });

  afterAll(async () => {
    await rig?.stop();
  });

  it('issue, then issue --force: exit 0, nginx serves the serial now in live/, with one reload', async () => {
    const config = writeConfig(rig, 're.json', { ...counted(), sites: [{ domain: 're.served.test' }] });
    expect((await cli(['issue', 're.served.test'], config)).exitCode).toBe(0);
    const file = path.join(rig.info.sitesDir, 're.served.test.conf');
    const bytes = sha256(fs.readFileSync(file));
    const before = reloadCount();
    const run = await cli(['issue', 're.served.test', '--force', '--json'], config);
    expect(run.exitCode, run.stdout).toBe(0);
    const serial = liveCert(rig, 're.served.test').serial;
    expect(parseJson(run.stdout).results[0].serial).toBe(serial);
    expect(await servedEventually('re.served.test', serial)).toBe(serial);
    expect(reloadCount() - before).toBe(1);
    expect(sha256(fs.readFileSync(file))).toBe(bytes); // no vhost byte changed: the reload alone serves it
    // and through autossl renew --force, the deploy hook re-serves it too
    expect((await cli(['install-hooks'], config)).exitCode).toBe(0);
    const renewed = await cli(['renew', '--force', '--cert-name', 're.served.test', '--json'], config);
    expect(renewed.exitCode, renewed.stdout).toBe(0);
    expect(await servedEventually('re.served.test', liveCert(rig, 're.served.test').serial)).toBe(liveCert(rig, 're.served.test').serial);
    expect(liveCert(rig, 're.served.test').serial).not.toBe(serial);
  });

  it('port 80 that only redirects to HTTPS (server-level or in location /): the site is served over HTTPS with no redirect loop; uninstall takes it back', async () => {
    const config = writeConfig(rig, 'redir.json', { sites: [{ domain: 'rs.redir.test' }, { domain: 'rl.redir.test' }] });
    const run = await cli(['issue', '--all', '--json'], config);
    expect(
      run.exitCode,
      JSON.stringify(parseJson<{ results: Array<{ domain: string; error?: unknown }> }>(run.stdout).results.map((r) => [r.domain, r.error])),
    ).toBe(0);
    for (const [name, body] of [
      ['rs.redir.test', '<h1>rs</h1>'],
      ['rl.redir.test', '<h1>rl</h1>'],
    ] as const) {
      const plain = await request('http://x/', name);
      expect(plain.status, name).toBe(301);
      expect(plain.location).toBe(`https://${name}/`);
      // HTTPS answers the site itself (it redirected to itself forever when TLS went into the redirecting block)
      const secure = await request('https://x/', name, root);
      expect([secure.status, secure.body.trim(), secure.authorized], name).toEqual([200, body, true]);
      expect(await servedEventually(name, liveCert(rig, name).serial)).toBe(liveCert(rig, name).serial);
    }
    const again = await cli(['issue', '--all', '--json'], config);
    expect(parseJson(again.stdout).results.map((r: { changes: unknown[] }) => r.changes)).toEqual([[], []]); // a second run changes nothing
    const file = path.join(rig.info.sitesDir, 'rs.redir.test.conf');
    const un = await cli(['uninstall', 'rs.redir.test', '--json'], config);
    expect(un.exitCode, un.stdout).toBe(0);
    expect(fs.readFileSync(file, 'utf8')).not.toMatch(/ssl_certificate|443/);
    expect((await request('http://x/', 'rs.redir.test')).status).toBe(301); // port 80 redirects as it did
  });

  it("a block's other name keeps answering over HTTP exactly as before: redirect and HSTS for the covered name only", async () => {
    const config = writeConfig(rig, 'two.json', { sites: [{ domain: 'a.two.test', redirect: true, hsts: true }] });
    const file = path.join(rig.info.sitesDir, 'a.two.test.conf');
    const bBefore = await request('http://b.two.test/', 'b.two.test');
    expect(bBefore.status).toBe(200);
    const dry = await cli(['issue', 'a.two.test', '--dry-run'], config);
    expect(dry.stdout).toMatch(/also answers b\.two\.test on port 80, which the certificate does not cover/);
    const run = await cli(['issue', 'a.two.test', '--json'], config);
    expect(run.exitCode, run.stdout).toBe(0);
    const aHttp = await request('http://a.two.test/x', 'a.two.test');
    expect([aHttp.status, aHttp.location]).toEqual([301, 'https://a.two.test/x']);
    const aHttps = await request('https://a.two.test/', 'a.two.test', root);
    expect(aHttps.authorized).toBe(true);
    expect(aHttps.headers['strict-transport-security']).toBe('max-age=31536000');
    const bAfter = await request('http://b.two.test/', 'b.two.test');
    expect([bAfter.status, bAfter.body, bAfter.location]).toEqual([bBefore.status, bBefore.body, bBefore.location]);
    expect((await request('https://b.two.test/', 'b.two.test', root)).headers['strict-transport-security']).toBeUndefined();
    const bytes = sha256(fs.readFileSync(file));
    const again = await cli(['issue', 'a.two.test', '--json'], config);
    expect(again.exitCode).toBe(0);
    expect(sha256(fs.readFileSync(file))).toBe(bytes);
    const check = await cli(['check', 'a.two.test', '--skip-check', 'port80'], config);
    expect(check.stdout).toMatch(/\[!\] names +.*also answers b\.two\.test/);
  });

  it('blockNames "cover": one certificate for both names, both redirected and served', async () => {
    const config = writeConfig(rig, 'cover.json', { sites: [{ domain: 'c.cover.test', blockNames: 'cover', redirect: true, hsts: true }] });
    const run = await cli(['issue', 'c.cover.test', '--json'], config);
    expect(run.exitCode, run.stdout).toBe(0);
    expect([...liveCert(rig, 'c.cover.test').names].sort()).toEqual(['c.cover.test', 'd.cover.test']);
    for (const name of ['c.cover.test', 'd.cover.test']) {
      const plain = await request('http://x/', name);
      expect([plain.status, plain.location]).toEqual([301, `https://${name}/`]);
      const secure = await request('https://x/', name, root);
      expect(secure.authorized, name).toBe(true);
      expect(secure.headers['strict-transport-security']).toBe('max-age=31536000');
    }
  });

  it('an alias added later: issue again, the lineage lists both names and nginx serves it for the alias', async () => {
    expect((await cli(['issue', 'e.alias.test'], writeConfig(rig, 'alias1.json', { sites: [{ domain: 'e.alias.test' }] }))).exitCode).toBe(0);
    expect(liveCert(rig, 'e.alias.test').names).toEqual(['e.alias.test']);
    const config = writeConfig(rig, 'alias2.json', { sites: [{ domain: 'e.alias.test', aliases: ['f.alias.test'] }] });
    const run = await cli(['issue', 'e.alias.test', '--json'], config);
    expect(run.exitCode, run.stdout).toBe(0);
    const cert = liveCert(rig, 'e.alias.test');
    expect([...cert.names].sort()).toEqual(['e.alias.test', 'f.alias.test']);
    const f = await request('https://x/', 'f.alias.test', root);
    expect(f.authorized).toBe(true);
    expect(await servedEventually('f.alias.test', cert.serial)).toBe(cert.serial);
  });

  it('one block, two sites: both names served by one certificate, status exits 0; a hand re-point is a mismatch with file and line', async () => {
    const config = writeConfig(rig, 'ts.json', { sites: [{ domain: 'ts.test' }, { domain: 'www.ts.test' }] });
    const first = await cli(['issue', 'ts.test', '--json'], config);
    expect(first.exitCode, first.stdout).toBe(0);
    expect(parseJson(first.stdout).results[0].notes.join(' ')).toMatch(/ts\.test and www\.ts\.test are served by the same server block/);
    const second = await cli(['issue', 'www.ts.test', '--json'], config);
    expect(second.exitCode, second.stdout).toBe(0);
    const cert = liveCert(rig, 'ts.test');
    expect([...cert.names].sort()).toEqual(['ts.test', 'www.ts.test']);
    for (const name of ['ts.test', 'www.ts.test']) {
      expect((await request('https://x/', name, root)).authorized, name).toBe(true);
      expect(await servedEventually(name, cert.serial)).toBe(cert.serial);
    }
    const status = await cli(['status', '--json'], config);
    expect(status.exitCode, status.stdout).toBe(0);
    // an admin points the block at another lineage by hand
    const file = path.join(rig.info.sitesDir, 'ts.test.conf');
    const original = fs.readFileSync(file, 'latin1');
    const other = path.join(rig.certbotDirs().configDir, 'live', 're.served.test');
    fs.writeFileSync(file, original.replaceAll(`${path.join(rig.certbotDirs().configDir, 'live', 'ts.test')}/`, `${other}/`), 'latin1');
    try {
      const line = original.split('\n').findIndex((l) => l.includes('server {')) + 1;
      const bad = await cli(['status', '--json'], config);
      expect(bad.exitCode).toBe(1);
      const rows = parseJson(bad.stdout).certificates as Array<{ domain: string; state: string; vhosts: string[]; lastError: { message: string } | null }>;
      const ts = rows.find((r) => r.domain === 'ts.test')!;
      expect(ts.state).toBe('mismatch');
      expect(ts.vhosts).toEqual([`${file}:${line}`]);
      expect(ts.lastError!.message).toContain('which covers re.served.test, not ts.test');
      expect(rows[0]!.state).toBe('mismatch'); // most urgent first
      const probe = await cli(['status', '--probe'], config);
      expect(probe.stdout).toMatch(/probe 127\.0\.0\.1:443: serves serial [0-9a-f]+/);
    } finally {
      fs.writeFileSync(file, original, 'latin1');
    }
  });
});

describe('vhosts certbot --nginx already edited', () => {
  let rig: AcmeRig;
  let root: string;
  const cli = makeCli(() => rig);
  const certbotNginx = async (name: string) => {
    const run = await rig.certbot([
      '--nginx',
      '--redirect',
      '--nginx-server-root',
      rig.info.nginxPrefix,
      '--nginx-ctl',
      BINARIES.nginx,
      '-d',
      name,
      '--agree-tos',
      '--register-unsafely-without-email',
    ]);
    expect(run.exitCode, run.stderr).toBe(0);
  };

  beforeAll(async () => {
    rig = await AcmeRig.start();
    rig.addSite(
      'cbr.served.test',
      `server {\n    listen 127.0.0.1:80;\n    server_name {name};\n    root {root};\n    index index.html;\n\n    location / {\n        try_files $uri $uri/ =404;\n    }\n}\n`,
    );
    // an app behind a proxy: the TLS block does not serve the webroot (nothing listens on 3999: 502 from nginx)
    rig.addSite(
      'cba.served.test',
      `server {\n    listen 127.0.0.1:80;\n    server_name {name};\n\n    location / {\n        proxy_pass http://127.0.0.1:3999;\n    }\n}\n`,
    );
    await rig.reloadNginx();
    root = await rig.issuingRoot();
    await certbotNginx('cbr.served.test');
    await certbotNginx('cba.served.test');
  });

  afterAll(async () => {
    await rig?.stop();
  });

  for (const [name, shape] of [
    ['cbr.served.test', 'static'],
    ['cba.served.test', 'proxied app'],
  ] as const) {
    it(`takes over certbot's redirect shape (${shape}): new serial served, exactly one redirect, no change on a second run`, async () => {
      const config = writeConfig(rig, `${name}.json`, { sites: [{ domain: name, redirect: true, hsts: true }] });
      const file = path.join(rig.info.sitesDir, `${name}.conf`);
      const before = fs.readFileSync(file, 'latin1');
      expect(before).toContain('# managed by Certbot');
      const old = liveCert(rig, name).serial;
      const run = await cli(['issue', name, '--force', '--json'], config);
      expect(run.exitCode, run.stdout).toBe(0);
      const serial = liveCert(rig, name).serial;
      expect(serial).not.toBe(old);
      expect(await servedEventually(name, serial)).toBe(serial);
      // one redirect: http -> https, and the https answer is not another redirect
      const first = await request('http://x/page', name);
      expect([first.status, first.location]).toEqual([301, `https://${name}/page`]);
      const second = await request(`https://${name}/page`, name, root);
      expect(second.authorized).toBe(true);
      expect(second.status).not.toBe(301);
      expect(second.headers['strict-transport-security']).toBe('max-age=31536000');
      const after = fs.readFileSync(file, 'latin1');
      expect(after.match(/return 301/g)).toHaveLength(1); // certbot's redirect, no second one beside it
      expect(after).toContain('# managed by Certbot'); // comments kept on the lines whose arguments changed
      await execa(BINARIES.nginx, [...rig.nginxArgs, '-c', rig.info.nginxConf, '-t']);
      const again = await cli(['issue', name, '--json'], config);
      expect(again.exitCode, again.stdout).toBe(0);
      expect(fs.readFileSync(file, 'latin1')).toBe(after);
    });
  }
});
