/**
 * What a vhost's shape decides is found while planning, before anything is ordered (issue 20, item 9): a certificate
 * set in a shared snippet; the challenge hidden by a server-level auth_basic or allow/deny; an existing
 * acme-challenge location with `alias`; a nested acme location in a 443 block that also has a regex location.
 * Through the built CLI on a private nginx tree (the real `nginx -t`), the CA's checks skipped: no certbot runs.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { BINARIES, stopNginx } from '../../scripts/sandbox/rig.js';
import { clearConfigCache, NginxTree } from '../../src/nginx/tree.js';
import { planChallengeEdit } from '../../src/nginx/edit.js';
import { challengeRouting, routeEnv } from '../../src/nginx/routing.js';
import { ensureAliasLink } from '../../src/nginx/alias-webroot.js';
import { makeTree, writeTreeConfig, type NginxSandboxTree } from '../helpers/nginx-fixture.js';
import { parseJson } from '../helpers/json.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const SKIP = ['--skip-check', 'dns', '--skip-check', 'caa', '--skip-check', 'port80'];

function configFor(t: { dir: string; main: string }, domain: string): string {
  return writeTreeConfig(t, { sites: [{ domain }] });
}

/**
 * What the CA gets for a token written into `webroot`, from this tree served by a real nginx on 127.0.0.1:80 (the
 * test runs in its own network namespace): the status, and the body when 200.
 */
async function fetchToken(t: NginxSandboxTree, host: string, webroot: string): Promise<{ status: number; body: string }> {
  const dir = path.join(webroot, '.well-known', 'acme-challenge');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'tok-123'), 'token-body\n');
  for (let d = dir; d.startsWith(t.dir); d = path.dirname(d)) fs.chmodSync(d, 0o755);
  await execa(BINARIES.nginx, ['-p', t.dir, '-e', path.join(t.dir, 'error.log'), '-c', t.main]);
  try {
    // node:http, not fetch: fetch does not send a Host header of its own choosing
    return await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: 80, path: '/.well-known/acme-challenge/tok-123', headers: { Host: host } }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: res.statusCode === 200 ? body : '' }));
      });
      req.on('error', reject);
      req.end();
    });
  } finally {
    await stopNginx(path.join(t.dir, 'nginx.pid'));
  }
}

/** planChallengeEdit as `issue` runs it, written to disk. */
function challengeEdit(t: NginxSandboxTree, name: string): { webroot: string; notes: string[] } {
  const plan = planChallengeEdit(NginxTree.load(t.main), [name], { fallbackWebroot: path.join(t.dir, 'acme') });
  for (const e of plan.edits) fs.writeFileSync(e.file, e.after, 'latin1');
  clearConfigCache();
  return plan;
}

describe('found while planning, before any order', () => {
  it('a ssl_certificate set in a shared snippet is refused while planning (dry run and real run), certbot never runs', async () => {
    const t = await makeTree(
      'server {\n    listen 80;\n    listen 443 ssl;\n    server_name snip.plan.test;\n    root /var/www/snip;\n    include {{DIR}}/snippets/tls.conf;\n}\n',
      { 'snippets/tls.conf': 'ssl_certificate old/fullchain.pem;\nssl_certificate_key old/privkey.pem;\n' },
    );
    const config = configFor(t, 'snip.plan.test');
    const before = fs.readFileSync(t.site, 'latin1');
    for (const dry of [['--dry-run'], []]) {
      const r = await execa('node', [CLI, 'issue', 'snip.plan.test', '--json', ...dry, ...SKIP, '--config', config], { reject: false });
      const x = parseJson<{ results: Array<{ error?: { code: string; message: string }; stages: Array<{ stage: string }> }> }>(
        r.stdout.trim().split('\n').pop()!,
      ).results[0]!;
      expect(x.error?.code, dry.join('')).toBe('VHOST_UNSUPPORTED');
      expect(x.error?.message).toMatch(/ssl_certificate" is set in .*tls\.conf.*Nothing was ordered/);
      expect(x.stages.map((s) => s.stage)).not.toContain('challenge'); // refused in plan: no edit, no order
    }
    expect(fs.readFileSync(t.site, 'latin1')).toBe(before);
    expect(fs.existsSync(path.join(t.dir, 'le', 'live'))).toBe(false);
  });

  it('a server-level auth_basic or allow/deny no longer hides the challenge: the location autossl adds turns them off for itself', async () => {
    const t = await makeTree(
      'server {\n    listen 127.0.0.1:80;\n    server_name auth.plan.test;\n    root {{DIR}}/www;\n    auth_basic "Staff only";\n    auth_basic_user_file {{DIR}}/htpasswd;\n}\n\nserver {\n    listen 127.0.0.1:80;\n    server_name acl.plan.test;\n    root {{DIR}}/www;\n    allow 10.9.9.9;\n    deny all;\n}\n',
      { htpasswd: 'staff:$apr1$x$y\n' },
    );
    const www = path.join(t.dir, 'www');
    expect((await fetchToken(t, 'auth.plan.test', www)).status).toBe(401);
    expect((await fetchToken(t, 'acl.plan.test', www)).status).toBe(403);
    for (const name of ['auth.plan.test', 'acl.plan.test']) {
      const plan = challengeEdit(t, name);
      expect(plan.webroot).toBe(www);
      expect(plan.notes.join('\n')).toMatch(/keeps the CA out/);
    }
    expect(fs.readFileSync(t.site, 'latin1')).toContain('auth_basic off;');
    await expect(t.control.test()).resolves.toBeUndefined();
    expect(await fetchToken(t, 'auth.plan.test', www)).toEqual({ status: 200, body: 'token-body\n' });
    expect(await fetchToken(t, 'acl.plan.test', www)).toEqual({ status: 200, body: 'token-body\n' });
    // a second plan changes nothing
    expect(challengeEdit(t, 'auth.plan.test').notes.join('')).not.toMatch(/adding location/);
    expect(planChallengeEdit(NginxTree.load(t.main), ['acl.plan.test'], { fallbackWebroot: path.join(t.dir, 'acme') }).edits).toEqual([]);
  });

  it('an existing acme-challenge location with alias is used as it stands: its directory gets the tokens (it was refused, CHALLENGE_UNROUTABLE)', async () => {
    const t = await makeTree(
      'server {\n    listen 127.0.0.1:80;\n    server_name alias.plan.test;\n    root {{DIR}}/www;\n    location /.well-known/acme-challenge/ {\n        alias {{DIR}}/acme-alias/;\n    }\n    location / {\n        try_files $uri /index.php;\n    }\n}\n\nserver {\n    listen 127.0.0.1:80;\n    server_name wk.plan.test;\n    location /.well-known/acme-challenge {\n        alias {{DIR}}/le/.well-known/acme-challenge;\n    }\n}\n',
    );
    const before = fs.readFileSync(t.site, 'latin1');
    const plan = challengeEdit(t, 'alias.plan.test');
    expect(fs.readFileSync(t.site, 'latin1')).toBe(before); // nothing to edit
    expect(plan.notes.join('\n')).toContain(`from ${path.join(t.dir, 'acme-alias')} (alias)`);
    const full = planChallengeEdit(NginxTree.load(t.main), ['alias.plan.test'], { fallbackWebroot: path.join(t.dir, 'acme') });
    expect(full.link).toEqual({ path: path.join(full.webroot, '.well-known', 'acme-challenge'), target: path.join(t.dir, 'acme-alias') });
    await ensureAliasLink(full.link!);
    // what certbot writes under the webroot is what nginx serves through the alias
    expect(await fetchToken(t, 'alias.plan.test', full.webroot)).toEqual({ status: 200, body: 'token-body\n' });
    expect(fs.existsSync(path.join(t.dir, 'acme-alias', 'tok-123'))).toBe(true);
    // an alias already ending in .well-known/acme-challenge: its parent is the webroot, no link needed
    const wk = planChallengeEdit(NginxTree.load(t.main), ['wk.plan.test'], { fallbackWebroot: path.join(t.dir, 'acme') });
    expect(wk).toMatchObject({ edits: [], webroot: path.join(t.dir, 'le') });
    expect(wk.link).toBeUndefined();
    // through the CLI: the dry run no longer refuses it
    const config = configFor(t, 'alias.plan.test');
    const dry = await execa('node', [CLI, 'issue', 'alias.plan.test', '--dry-run', ...SKIP, '--config', config], { reject: false });
    expect(dry.stdout).not.toContain('CHALLENGE_UNROUTABLE');
    expect(dry.exitCode, dry.stdout).toBe(0);
  });

  it('a nested acme location inside a 443 block that also has a regex location: routing picks what nginx picks (checked against nginx itself)', async () => {
    // the five ways a nested challenge location meets a regex: nginx searches the longest prefix's nested locations
    // before that level's regexes; a nested regex ends the search, a nested ^~ does not (the outer regex still wins)
    const shapes: Record<string, string> = {
      'nested-regex': 'location / {\n        location ~ ^/\\.well-known/acme-challenge/ { root {{DIR}}/acme; }\n    }\n    location ~ /\\. { return 403; }',
      'nested-caret': 'location / {\n        location ^~ /.well-known/acme-challenge/ { root {{DIR}}/acme; }\n    }\n    location ~ /\\. { return 403; }',
      'nested-prefix':
        'location / {\n        location /.well-known/acme-challenge/ { root {{DIR}}/acme; }\n        location ~ \\.x$ { return 404; }\n    }\n    location ~ /\\. { return 403; }',
      'nested-under-wk':
        'location /.well-known/ {\n        location ^~ /.well-known/acme-challenge/ { root {{DIR}}/acme; }\n    }\n    location ~ \\.php$ { return 403; }',
      'outer-caret':
        'location ^~ /.well-known/ {\n        location /.well-known/acme-challenge/ { root {{DIR}}/acme; }\n    }\n    location ~ /\\. { return 403; }',
    };
    const site = Object.entries(shapes)
      .map(
        ([n, body]) =>
          `server {\n    listen 127.0.0.1:443 ssl;\n    server_name ${n}.plan.test;\n    ssl_certificate {{DIR}}/old/fullchain.pem;\n    ssl_certificate_key {{DIR}}/old/privkey.pem;\n    root {{DIR}}/www;\n    ${body}\n}\n`,
      )
      .join('\n');
    const t = await makeTree(site);
    const acme = path.join(t.dir, 'acme', '.well-known', 'acme-challenge');
    fs.mkdirSync(acme, { recursive: true });
    fs.writeFileSync(path.join(acme, 'tok-9'), 'from-acme\n');
    for (let d = acme; d.startsWith(t.dir); d = path.dirname(d)) fs.chmodSync(d, 0o755);
    await expect(t.control.test()).resolves.toBeUndefined();
    await execa(BINARIES.nginx, ['-p', t.dir, '-e', path.join(t.dir, 'error.log'), '-c', t.main]);
    const nginxServes = (host: string) =>
      new Promise<boolean>((resolve, reject) => {
        const req = https.request(
          { host: '127.0.0.1', port: 443, servername: host, path: '/.well-known/acme-challenge/tok-9', headers: { Host: host }, rejectUnauthorized: false },
          (res) => {
            let body = '';
            res.on('data', (c) => (body += c));
            res.on('end', () => resolve(res.statusCode === 200 && body === 'from-acme\n'));
          },
        );
        req.on('error', reject);
        req.end();
      });
    try {
      const tree = NginxTree.load(t.main);
      const verdicts: Record<string, [boolean, boolean]> = {};
      for (const n of Object.keys(shapes)) {
        const host = `${n}.plan.test`;
        const routing = challengeRouting(tree.findServers(host).https[0]!, host, 'https', routeEnv(tree));
        verdicts[n] = [await nginxServes(host), routing.served && routing.webroot === path.join(t.dir, 'acme')];
      }
      for (const [n, [nginx, autossl]] of Object.entries(verdicts)) expect(autossl, `${n}: nginx ${nginx ? 'serves' : 'does not serve'} the token`).toBe(nginx);
      expect(verdicts['nested-regex']![0]).toBe(true); // the shape the trial hit: recognised now
      expect(verdicts['nested-caret']![0]).toBe(false);
    } finally {
      await stopNginx(path.join(t.dir, 'nginx.pid'));
    }
  });
});
