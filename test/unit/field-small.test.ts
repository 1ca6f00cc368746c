/**
 * Smaller findings of the field trials (issue 20, item 9): `setup` on a machine without systemd where cron already
 * runs `certbot renew` advises no second schedule; `uninstall` of a config file's site says the next
 * `issue --all` puts HTTPS back.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/schema.js';
import { createAutoSsl } from '../../src/engine.js';
import { BINARIES } from '../../scripts/sandbox/rig.js';
import { runSetup } from '../../src/setup/setup.js';
import { makeTree, writeTreeConfig } from '../helpers/nginx-fixture.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');

// Debian's certbot package, as it ships /etc/cron.d/certbot
const DEBIAN_CRON = `# /etc/cron.d/certbot: crontab entries for the certbot package\nSHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\n\n0 */12 * * * root test -x /usr/bin/certbot -a \\! -d /run/systemd/system && perl -e 'sleep int(rand(43200))' && certbot -q renew --no-random-sleep-on-renew\n`;

describe('setup without systemd', () => {
  it('finds the cron job that already runs certbot renew and adds no second schedule; with none it advises one; with certbot.timer its drop-in runs autossl renew --pass-only first', async () => {
    const t = await makeTree('server {\n    listen 80;\n    server_name cron.setup.test;\n    root /var/www;\n}\n');
    const file = path.join(t.dir, 'autossl.config.json');
    const config = validateConfig(
      { nginx: { binary: BINARIES.nginx, config: t.main }, certbot: { configDir: path.join(t.dir, 'le') }, stateDir: path.join(t.dir, 'state') },
      file,
      t.dir,
    );
    const cronDir = path.join(t.dir, 'cron.d');
    fs.mkdirSync(cronDir);
    fs.writeFileSync(
      path.join(cronDir, 'e2scrub_all'),
      '30 3 * * 0 root test -e /run/systemd/system || SERVICE_MODE=1 /usr/lib/x86_64-linux-gnu/e2fsprogs/e2scrub_all_cron\n',
    );
    fs.writeFileSync(path.join(cronDir, 'commented'), '# 0 3 * * * root certbot renew\n');
    const engine = await createAutoSsl(config);
    try {
      const none = await runSetup(engine, { systemd: false, cronDir, systemdDir: path.join(t.dir, 'units-none') });
      expect(none.todo.join('\n')).toMatch(/run "autossl renew" twice a day from cron/);
      expect(fs.existsSync(path.join(t.dir, 'units-none', 'autossl-renew.timer'))).toBe(true);

      fs.writeFileSync(path.join(cronDir, 'certbot'), DEBIAN_CRON);
      const found = await runSetup(engine, { systemd: false, cronDir, systemdDir: path.join(t.dir, 'units') });
      // cron's line is the admin's: autossl's pass before it is advised, never edited in
      expect(found.todo).toEqual([expect.stringContaining('put "autossl renew --pass-only &&" before certbot in that cron line')]);
      expect(found.done.join('\n')).toContain(`cron runs certbot renew already (${path.join(cronDir, 'certbot')}: 0 */12 * * * root`);
      expect(fs.existsSync(path.join(t.dir, 'units'))).toBe(false); // no autossl-renew units beside it
      for (const phase of ['deploy', 'pre', 'post']) expect(fs.existsSync(path.join(t.dir, 'le', 'renewal-hooks', phase, 'autossl')), phase).toBe(true);

      // certbot.timer renews: a drop-in runs autossl's own pass before each of its certbot renew, no timer of autossl's
      fs.rmSync(path.join(cronDir, 'certbot'));
      const timer = await runSetup(engine, { systemd: false, certbotTimer: true, cronDir, systemdDir: path.join(t.dir, 'units-timer') });
      expect(timer.done.join('\n')).toContain('autossl renew --pass-only runs before each certbot renew of certbot.timer');
      expect(fs.readdirSync(path.join(t.dir, 'units-timer'))).toEqual(['certbot.service.d']);
      const dropIn = fs.readFileSync(path.join(t.dir, 'units-timer', 'certbot.service.d', 'autossl.conf'), 'utf8');
      const pre = dropIn.split('\n').filter((l) => l.startsWith('ExecStartPre='));
      expect(pre).toEqual([`ExecStartPre=-${process.execPath} ${fs.realpathSync(process.argv[1]!)} renew --pass-only --config ${file}`]);
      expect(dropIn).toMatch(/^\[Service\]$/m);
    } finally {
      await engine.close();
    }
  });
});

describe('uninstall of a site the config file lists', () => {
  it('says the next issue --all puts HTTPS back (the site stays in the file)', async () => {
    const t = await makeTree('server {\n    listen 80;\n    server_name kept.un.test www.kept.un.test;\n    root /var/www/kept;\n}\n');
    const config = writeTreeConfig(t, { sites: [{ domain: 'kept.un.test', aliases: ['www.kept.un.test'] }] });
    const site = await execa('node', [CLI, 'uninstall', 'kept.un.test', '--config', config], { reject: false });
    expect(site.exitCode, site.stderr).toBe(0);
    expect(site.stdout).toContain(
      `note  kept.un.test is still a site in ${config}: the next "autossl issue --all" puts HTTPS back; take it out of the config to keep it HTTP-only`,
    );
    const alias = await execa('node', [CLI, 'uninstall', 'www.kept.un.test', '--config', config, '--json'], { reject: false });
    expect((JSON.parse(alias.stdout) as { notes: string[] }).notes).toContain(
      `www.kept.un.test is still a name of the site kept.un.test in ${config}: the next "autossl issue --all" puts HTTPS back; take it out of the config to keep it HTTP-only`,
    );
  });
});

describe('README', () => {
  it('explains the mismatch state, where the command lands (npm prefix -g) and the prepare warning at a global install', () => {
    const readme = fs.readFileSync(path.resolve(import.meta.dirname, '../../README.md'), 'utf8');
    expect(readme).toMatch(/`mismatch` \(what nginx serves is not the certificate on disk/);
    expect(readme).toContain('`$(npm prefix -g)/bin/autossl`');
    expect(readme).toMatch(/\*\*The `prepare` warning:\*\* npm 11 also prints `autossl@<version> \(prepare: tsc -p tsconfig\.json\)`/);
  });
});
