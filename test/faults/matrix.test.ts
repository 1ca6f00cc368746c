/**
 * Fault matrix against the real binaries (pebble, certbot, a private nginx on 127.0.0.1), driven through the
 * built CLI: `nginx -t` failing after the edit, reload failing, certbot SIGKILLed mid-order, the nginx binary
 * missing, the state database locked by another process. Each case leaves every config file byte-identical
 * (sha256), nginx serving what it served (an HTTP GET, and no TLS edit served), no journal and no lock, and ends
 * with a coded error: exit 1 or 2, never 0, never INTERNAL, never a stack trace.
 * (The process killed at each step: killed.test.ts; a full filesystem: full-disk.test.ts.)
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig, BINARIES, stopNginx } from '../../scripts/sandbox/rig.js';
import { NginxControl } from '../../src/nginx/control.js';
import { servedSerial } from '../../src/stages/verify-tls.js';
import { writeLineage } from '../helpers/certs.js';
import {
  answer,
  cli,
  expectCoded,
  reloadAndServe,
  expectSameSnapshot,
  httpGet,
  journals,
  locks,
  PHP_SITE,
  snapshot,
  STATIC_SITE,
  tempFiles,
} from './helpers.js';

let rig: AcmeRig;
let nginx: NginxControl;
let stateDir: string;

beforeAll(async () => {
  rig = await AcmeRig.start();
  stateDir = path.join(rig.info.dir, 'state');
  nginx = new NginxControl({ binary: BINARIES.nginx, config: rig.info.nginxConf, extraArgs: rig.nginxArgs });
});

afterAll(async () => {
  await rig?.stop();
});

/** A site of its own for one case, loaded by nginx. */
async function site(name: string, shape = PHP_SITE): Promise<string> {
  const { file } = rig.addSite(name, shape, { index: `${name} index\n` });
  await reloadAndServe([...rig.nginxArgs, '-c', rig.info.nginxConf], name);
  return file;
}

/** A config of its own for one case (the rig's certbot, nginx and state directory), plus `extra`. */
function config(name: string, extra: Record<string, unknown> = {}, files: Record<string, string> = {}): string {
  for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(rig.info.dir, f), text, { mode: 0o755 });
  const base = rig.autosslConfig() as Record<string, Record<string, unknown>>;
  const { nginx: ng, certbot: cb, ...rest } = extra as Record<string, Record<string, unknown>>;
  const file = path.join(rig.info.dir, `${name}.config.json`);
  fs.writeFileSync(file, JSON.stringify({ ...base, ...rest, nginx: { ...base.nginx, ...ng }, certbot: { ...base.certbot, ...cb } }));
  return file;
}

const configFiles = (): Map<string, string> => snapshot(rig.info.nginxConf, rig.info.sitesDir, path.join(rig.info.nginxPrefix, 'fastcgi_params'));
const tlsServed = (domain: string): Promise<boolean> =>
  servedSerial('127.0.0.1', 443, domain, 1000).then(
    () => true,
    () => false,
  );

/** What every case leaves: nginx -t passes, the site still served over HTTP, no TLS for it, nothing left in stateDir. */
async function expectServingAsBefore(domain: string): Promise<void> {
  await expect(nginx.test()).resolves.toBeUndefined();
  const page = await httpGet(domain);
  expect(page.status).toBe(200);
  expect(page.body).toBe(`${domain} index\n`);
  // nginx reloads asynchronously: old workers may answer for a moment before TLS is no longer served
  await expect
    .poll(() => tlsServed(domain), { timeout: 5000, interval: 100, message: `${domain} is served over TLS: nginx runs an edit that was rolled back on disk` })
    .toBe(false);
  expect(journals(stateDir)).toEqual([]);
  expect(locks(stateDir)).toEqual([]);
  expect(tempFiles(rig.info.sitesDir)).toEqual([]);
}

describe('fault matrix', () => {
  it('nginx -t fails after the HTTPS edit (a plugin adds an unknown directive): NGINX_TEST_FAILED, both edits rolled back', async () => {
    const domain = 'ngxt.fault.test';
    const file = await site(domain);
    await writeLineage(path.join(rig.info.dir, 'certbot', 'config'), domain, 90, 80); // reused: the run is about the edit
    const cfg = config(
      'ngxt',
      { plugins: ['./broken-plugin.mjs'], sites: [{ domain }] },
      {
        'broken-plugin.mjs': `export default { name: 'broken', apply(hooks) { hooks.vhost.tapPromise({ name: 'broken', stage: 100 }, async (edit) => (edit.https._add('no_such_directive', 'on'), edit)); } };\n`,
      },
    );
    const before = configFiles();
    const run = await cli(['issue', domain, '--json'], cfg);
    const error = expectCoded(run, ['NGINX_TEST_FAILED'], 'nginx -t');
    expect(error.message).toContain('unknown directive "no_such_directive"');
    expect((answer(run.stdout) as { results: Array<{ rolledBack: string[] }> }).results[0]!.rolledBack).toEqual([file]);
    expectSameSnapshot(before, configFiles());
    await expectServingAsBefore(domain);
  });

  it('nginx -t fails because another file was broken by hand: NGINX_TEST_FAILED naming it, nothing changed', async () => {
    const domain = 'broken-other.fault.test';
    await site(domain);
    // nginx keeps running the config it loaded; the file on disk is broken after that
    const other = path.join(rig.info.sitesDir, 'zz-hand-broken.conf');
    fs.writeFileSync(other, 'server {\n    listen 127.0.0.1:80;\n    server_name hand.fault.test;\n    hand_typo on;\n}\n');
    try {
      const cfg = config('broken-other', { sites: [{ domain }] });
      const before = configFiles();
      const run = await cli(['issue', domain, '--json'], cfg);
      const error = expectCoded(run, ['NGINX_TEST_FAILED'], 'broken other file');
      expect(error.message).toContain(other);
      expectSameSnapshot(before, configFiles());
      const page = await httpGet(domain);
      expect(page.status).toBe(200);
      expect(journals(stateDir)).toEqual([]);
      expect(locks(stateDir)).toEqual([]);
    } finally {
      fs.rmSync(other);
    }
    await expectServingAsBefore(domain);
  });

  it('the reload command fails at the challenge: NGINX_RELOAD_FAILED, the challenge edit rolled back', async () => {
    const domain = 'reload-fails.fault.test';
    await site(domain);
    const cfg = config(
      'reload-fails',
      { nginx: { reloadCommand: [path.join(rig.info.dir, 'reload-fails.sh')] }, sites: [{ domain }] },
      {
        'reload-fails.sh': '#!/bin/sh\necho "nginx.service is not active, cannot reload." >&2\nexit 1\n',
      },
    );
    const before = configFiles();
    const run = await cli(['issue', domain, '--json'], cfg);
    const error = expectCoded(run, ['NGINX_RELOAD_FAILED'], 'reload fails');
    expect(error.message).toContain('cannot reload');
    expectSameSnapshot(before, configFiles());
    await expectServingAsBefore(domain);
  });

  it('the reload command reloads nginx but reports failure (after the HTTPS edit): the restored files are reloaded too', async () => {
    const domain = 'reload-lies.fault.test';
    await site(domain, STATIC_SITE); // no challenge edit: the one reload is the one after the HTTPS edit
    // a certificate that is reused (no order needed for this case)
    await writeLineage(path.join(rig.info.dir, 'certbot', 'config'), domain, 90, 80);
    const reload = `${BINARIES.nginx} ${rig.nginxArgs.join(' ')} -c ${rig.info.nginxConf} -s reload`;
    const cfg = config(
      'reload-lies',
      { nginx: { reloadCommand: [path.join(rig.info.dir, 'reload-lies.sh')] }, sites: [{ domain }] },
      {
        // systemctl reload timing out after nginx took the signal looks like this
        'reload-lies.sh': `#!/bin/sh\n${reload} || exit 1\necho "Job for nginx.service failed because a timeout was exceeded." >&2\nexit 1\n`,
      },
    );
    const before = configFiles();
    const run = await cli(['issue', domain, '--json'], cfg);
    expectCoded(run, ['NGINX_RELOAD_FAILED'], 'reload lies');
    expectSameSnapshot(before, configFiles());
    await expectServingAsBefore(domain);
  });

  it('nginx not running during issue: NGINX_RELOAD_FAILED, the challenge edit rolled back', async () => {
    const domain = 'nginx-down.fault.test';
    await site(domain);
    const cfg = config('nginx-down', { sites: [{ domain }] });
    const before = configFiles();
    await stopNginx(path.join(rig.info.nginxPrefix, 'nginx.pid'));
    try {
      const run = await cli(['issue', domain, '--json'], cfg);
      expectCoded(run, ['NGINX_RELOAD_FAILED'], 'nginx down');
      expectSameSnapshot(before, configFiles());
    } finally {
      await execa(BINARIES.nginx, [...rig.nginxArgs, '-c', rig.info.nginxConf]);
    }
    await expectServingAsBefore(domain);
  });

  it('certbot SIGKILLed mid-order (challenge answered, waiting for the CA): CERTBOT_FAILED, the challenge edit rolled back', async () => {
    const domain = 'certbot-killed.fault.test';
    await site(domain);
    const webroot = path.join(rig.info.wwwDir, domain);
    const killed = path.join(rig.info.dir, 'certbot-killed');
    // execs the real certbot; a watcher kills it (SIGKILL) as soon as its challenge token is in the webroot: the
    // order exists, the challenge is answered, certbot is polling the CA
    const wrapper = `#!/bin/sh
me=$$
( while kill -0 $me 2>/dev/null; do
    if [ -n "$(ls -A ${webroot}/.well-known/acme-challenge 2>/dev/null)" ]; then kill -9 $me; echo killed > ${killed}; exit 0; fi
    sleep 0.01
  done ) &
exec ${BINARIES.certbot} "$@"
`;
    const cfg = config(
      'certbot-killed',
      { certbot: { binary: path.join(rig.info.dir, 'certbot-killer.sh') }, sites: [{ domain, documentRoot: webroot }] },
      { 'certbot-killer.sh': wrapper },
    );
    const before = configFiles();
    const run = await cli(['issue', domain, '--json'], cfg);
    expect(fs.existsSync(killed), `certbot was not killed: ${run.stdout}`).toBe(true);
    const error = expectCoded(run, ['CERTBOT_FAILED'], 'certbot killed');
    expect(error.message).toMatch(/SIGKILL/);
    expect(fs.existsSync(path.join(rig.info.dir, 'certbot', 'config', 'live', domain))).toBe(false);
    expectSameSnapshot(before, configFiles());
    await expectServingAsBefore(domain);
  });

  it('the nginx binary missing: NGINX_NOT_FOUND before any file is written or any certificate ordered', async () => {
    for (const shape of [PHP_SITE, STATIC_SITE]) {
      const domain = shape === PHP_SITE ? 'no-nginx.fault.test' : 'no-nginx-static.fault.test';
      const file = await site(domain, shape);
      const cfg = config('no-nginx', { nginx: { binary: path.join(rig.info.dir, 'no', 'such', 'nginx') }, sites: [{ domain }] });
      const before = configFiles();
      const inode = fs.statSync(file).ino;
      const pebbleLog = fs.readFileSync(rig.info.pebbleLog, 'utf8').length;
      const run = await cli(['issue', domain, '--json'], cfg);
      const error = expectCoded(run, ['NGINX_NOT_FOUND'], `nginx missing (${domain})`);
      expect(error.message).toContain(path.join(rig.info.dir, 'no', 'such', 'nginx'));
      expectSameSnapshot(before, configFiles());
      expect(fs.statSync(file).ino, 'the vhost was rewritten').toBe(inode);
      expect(fs.readFileSync(rig.info.pebbleLog, 'utf8').slice(pebbleLog), 'an order reached the CA').not.toContain(domain);
      expect(fs.existsSync(path.join(rig.info.dir, 'certbot', 'config', 'live', domain))).toBe(false);
      await expectServingAsBefore(domain);
    }
  });

  it('the state database locked by another process past the wait: a coded error, no hang, nothing changed', async () => {
    const domain = 'db-locked.fault.test';
    await site(domain);
    const cfg = config('db-locked', { sites: [{ domain }] });
    expect((await cli(['recover'], cfg)).exitCode).toBe(0); // the database exists
    const ready = path.join(rig.info.dir, 'db-locked.ready');
    // another process holds the write lock (BEGIN EXCLUSIVE) until it is killed
    const holder = execa(
      'node',
      [
        '--input-type=module',
        '-e',
        `
      import Database from 'better-sqlite3';
      import fs from 'node:fs';
      const db = new Database(${JSON.stringify(path.join(stateDir, 'state.db'))});
      db.exec('BEGIN EXCLUSIVE');
      fs.writeFileSync(${JSON.stringify(ready)}, 'locked');
      globalThis.keep = db; // a collected connection would be closed, and its lock released
      setInterval(() => {}, 1000);
    `,
      ],
      { reject: false, cwd: path.resolve(import.meta.dirname, '../..') },
    );
    try {
      // until the holder has the lock, or has died (the next line then says why)
      await expect.poll(() => fs.existsSync(ready) || holder.exitCode !== null, { timeout: 5000, interval: 25 }).toBe(true);
      expect(fs.existsSync(ready), String((await Promise.race([holder, Promise.resolve({ stderr: 'still running' })])).stderr)).toBe(true);
      const before = configFiles();
      const env = { AUTOSSL_STATE_BUSY_TIMEOUT_MS: '500' };
      const started = Date.now();
      for (const args of [
        ['issue', domain, '--json'],
        ['renew', '--json'],
      ]) {
        const run = await cli(args, cfg, { env, timeoutMs: 20_000 });
        const error = expectCoded(run, ['STATE_UNAVAILABLE', 'LOCK_TIMEOUT'], args[0]);
        expect(error.message).toMatch(/locked/);
        expect(error.hint).toMatch(/another (autossl )?process/i);
      }
      expect(Date.now() - started, 'waited far past the busy timeout').toBeLessThan(10_000);
      expectSameSnapshot(before, configFiles());
      // status only reads: it answers while the database is locked
      const status = await cli(['status', '--json'], cfg, { env, timeoutMs: 20_000 });
      expect(status.stderr).not.toMatch(/INTERNAL/);
      expect([0, 1]).toContain(status.exitCode);
      expect(answer(status.stdout)).toHaveProperty('certificates');
    } finally {
      holder.kill('SIGKILL');
      await holder;
    }
    await expectServingAsBefore(domain);
  });

  it('the state database locked mid-run (after the certificate is served): the run still succeeds, and says what it could not record', async () => {
    const domain = 'db-locked-late.fault.test';
    await site(domain);
    await writeLineage(path.join(rig.info.dir, 'certbot', 'config'), domain, 90, 80); // reused: no order needed here
    // a plugin takes the database's write lock on its own connection once the new certificate is served
    const cfg = config(
      'db-locked-late',
      { plugins: ['./lock-late.mjs'], sites: [{ domain }] },
      {
        'lock-late.mjs': `import Database from ${JSON.stringify(path.resolve(import.meta.dirname, '../../node_modules/better-sqlite3/lib/index.js'))};
export default { name: 'lock-late', apply(hooks, api) {
  hooks.verify.tapPromise({ name: 'lock-late', stage: 1000 }, async () => {
    globalThis.lockLate = new Database(api.config.stateDir + '/state.db');
    globalThis.lockLate.exec('BEGIN EXCLUSIVE');
  });
} };
`,
      },
    );
    // (the human output: it prints warnings as they happen)
    const run = await cli(['issue', domain], cfg, { env: { AUTOSSL_STATE_BUSY_TIMEOUT_MS: '300' }, timeoutMs: 30_000 });
    const all = run.stdout + run.stderr;
    expect(all).not.toMatch(/INTERNAL|PLUGIN_ERROR|FAIL/);
    expect(run.exitCode, all.slice(0, 3000)).toBe(0);
    expect(all).toMatch(new RegExp(`ok +${domain.replaceAll('.', '\\.')}: HTTPS with existing certificate`));
    expect(all).toMatch(/warning: STATE_UNAVAILABLE: could not record this attempt in autossl's state \(.*locked/);
    expect(await tlsServed(domain)).toBe(true);
  });
});
