/**
 * From a server as Debian leaves it to a managed one, against the real system paths without touching the host:
 * in a private mount namespace (root, `unshare -m`), /etc, /var and /run are overlays (every write lands in a
 * temporary directory) and temporary directories are bind-mounted over /etc/nginx (a Debian-style tree:
 * sites-available + sites-enabled, five vhosts of different shapes, one served by a certbot lineage the way
 * `certbot --nginx` leaves it), /etc/letsencrypt (an ACME account registered at pebble, that lineage, a cli.ini
 * naming the CA) and /etc/autossl. The system nginx binary runs on that tree (loopback listens only).
 *  - `autossl init` finds the five sites, the lineage and the account; the config it writes loads;
 *  - `autossl issue --all` with it: the four new ones issued (pebble: four orders), the existing one reused
 *    with no order and its vhost untouched;
 *  - with no config at all: `status` lists the lineages and `issue <domain>` works, saying what it used.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig, BINARIES, stopNginx } from '../../scripts/sandbox/rig.js';
import { loadConfig } from '../../src/config/load.js';
import { parseJson } from '../helpers/json.js';
import { writeLineage } from '../helpers/certs.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
let rig: AcmeRig;
let T: string;
let OUT: string;

const NGINX_CONF = `user www-data;
worker_processes 1;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log;
events { worker_connections 128; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    server_names_hash_bucket_size 128;
    include /etc/nginx/conf.d/*.conf;
    include /etc/nginx/sites-enabled/*;
}
`;

const www = (name: string): string => path.join(T, 'www', name);
const VHOSTS: Record<string, string> = {
  default: 'server {\n\tlisten 127.0.0.1:80 default_server;\n\tserver_name _;\n\treturn 444;\n}\n',
  static: `server {\n\tlisten 127.0.0.1:80;\n\tserver_name static.init.test;\n\troot ${'{www}'}/static;\n\tindex index.html;\n}\n`,
  php: `server {\n\tlisten 127.0.0.1:80;\n\tserver_name php.init.test www.php.init.test;\n\troot {www}/php;\n\tindex index.php;\n\tlocation / {\n\t\ttry_files $uri $uri/ /index.php?$args;\n\t}\n\tlocation ~ /\\. {\n\t\tdeny all;\n\t}\n}\n`,
  app: 'server {\n\tlisten 127.0.0.1:80;\n\tserver_name app.init.test;\n\tlocation / {\n\t\tproxy_pass http://127.0.0.1:3999;\n\t}\n}\n',
  two: `server {\n\tlisten 127.0.0.1:80;\n\tlisten [::1]:80;\n\tserver_name two.init.test;\n\troot {www}/two;\n}\n`,
  existing: `server {\n\tserver_name existing.init.test;\n\troot {www}/existing;\n\n\tlisten 127.0.0.1:443 ssl; # managed by Certbot\n\tssl_certificate /etc/letsencrypt/live/existing.init.test/fullchain.pem; # managed by Certbot\n\tssl_certificate_key /etc/letsencrypt/live/existing.init.test/privkey.pem; # managed by Certbot\n}\nserver {\n\tif ($host = existing.init.test) {\n\t\treturn 301 https://$host$request_uri;\n\t} # managed by Certbot\n\n\tlisten 127.0.0.1:80;\n\tserver_name existing.init.test;\n\treturn 404; # managed by Certbot\n}\n`,
};
const SITES = ['static.init.test', 'php.init.test', 'app.init.test', 'two.init.test', 'existing.init.test'];

const ordersOf = (name: string): number => fs.readFileSync(rig.info.pebbleLog, 'utf8').split(`Value:"${name}"`).length - 1;
const read = (f: string): string => fs.readFileSync(path.join(OUT, f), 'utf8');

beforeAll(async () => {
  rig = await AcmeRig.start();
  // the namespace's nginx takes the loopback ports
  await stopNginx(path.join(rig.info.nginxPrefix, 'nginx.pid'));
  T = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-init-'));
  fs.chmodSync(T, 0o755);
  OUT = path.join(T, 'out');
  fs.mkdirSync(OUT);
  const etcNginx = path.join(T, 'etc-nginx');
  for (const d of ['sites-available', 'sites-enabled', 'conf.d', 'snippets']) fs.mkdirSync(path.join(etcNginx, d), { recursive: true });
  fs.writeFileSync(path.join(etcNginx, 'nginx.conf'), NGINX_CONF);
  fs.copyFileSync('/etc/nginx/mime.types', path.join(etcNginx, 'mime.types'));
  for (const [name, text] of Object.entries(VHOSTS)) {
    fs.writeFileSync(path.join(etcNginx, 'sites-available', name), text.replaceAll('{www}', path.join(T, 'www')));
    fs.symlinkSync(`/etc/nginx/sites-available/${name}`, path.join(etcNginx, 'sites-enabled', name));
  }
  for (const s of ['static', 'php', 'two', 'existing', 'zero']) {
    fs.mkdirSync(www(s), { recursive: true });
    fs.writeFileSync(path.join(www(s), 'index.html'), `<h1>${s}</h1>\n`);
  }
  // certbot's state: an account at pebble (made by certbot itself), the lineage certbot --nginx left, cli.ini
  const etcLe = path.join(T, 'etc-le');
  const register = await rig.certbot(['register', '--agree-tos', '-m', 'admin@init.test'], {
    configDir: etcLe,
    workDir: path.join(T, 'le-work'),
    logsDir: path.join(T, 'le-logs'),
  });
  expect(register.exitCode, register.stderr).toBe(0);
  await writeLineage(etcLe, 'existing.init.test', 90, 60);
  const conf = path.join(etcLe, 'renewal', 'existing.init.test.conf');
  fs.writeFileSync(conf, fs.readFileSync(conf, 'utf8').replaceAll(etcLe, '/etc/letsencrypt'));
  fs.writeFileSync(path.join(etcLe, 'cli.ini'), `# as an admin might keep it\nserver = ${rig.info.acmeDirectory}\n`);
  fs.mkdirSync(path.join(T, 'etc-autossl'));
  fs.mkdirSync(path.join(T, 'work'));

  const script = `
set -u
T=${T}
OUT=${OUT}
CLI="node ${CLI}"
# a private view: every write to /etc, /var lands in $T/ov; /run is empty (no systemd, no host pid files)
for d in etc var; do mkdir -p $T/ov/$d-up $T/ov/$d-work; mount -t overlay overlay -o lowerdir=/$d,upperdir=$T/ov/$d-up,workdir=$T/ov/$d-work /$d || exit 90; done
mount -t tmpfs tmpfs /run || exit 91
mkdir -p /etc/nginx /etc/letsencrypt /etc/autossl /var/log/nginx /var/lib/nginx /var/lib/letsencrypt /var/log/letsencrypt
mount --bind $T/etc-nginx /etc/nginx && mount --bind $T/etc-le /etc/letsencrypt && mount --bind $T/etc-autossl /etc/autossl || exit 92
${BINARIES.nginx} || exit 93
# on the way out nginx quits, and is waited for (its pid gone, 10 s at most) before the namespace's mounts go
trap 'p=$(cat /run/nginx.pid); ${BINARIES.nginx} -s quit; for i in $(seq 200); do kill -0 $p 2>/dev/null || break; sleep 0.05; done' EXIT
export REQUESTS_CA_BUNDLE=${rig.info.caCert}
cd $T/work
# init's scratch directories go here: none may be left
export TMPDIR=$T/tmp && mkdir -p $TMPDIR
# Debian's certbot package: cron renews when systemd is not PID 1 (setup must not add a second schedule)
mkdir -p /etc/cron.d && printf '0 */12 * * * root test -x /usr/bin/certbot -a \\! -d /run/systemd/system && certbot -q renew\n' > /etc/cron.d/certbot
sha256sum /etc/nginx/sites-available/existing > $OUT/existing.before
$CLI init --resolver 127.0.0.1:8053 --address 127.0.0.1 --address ::1 > $OUT/init.out 2>&1; echo $? > $OUT/init.rc
cp /etc/autossl/autossl.config.yaml $OUT/config.yaml 2>/dev/null
$CLI init > $OUT/init2.out 2>&1; echo $? > $OUT/init2.rc
ls -A $TMPDIR > $OUT/tmp.ls
$CLI issue --all --json > $OUT/issue.json 2> $OUT/issue.err; echo $? > $OUT/issue.rc
sha256sum /etc/nginx/sites-available/existing > $OUT/existing.after
stat -c '%n %F' /etc/nginx/sites-enabled/* > $OUT/enabled.ls
grep -l ssl_certificate /etc/nginx/sites-available/* > $OUT/available.ssl
$CLI setup --agent --systemd-dir $OUT/units > $OUT/setup.out 2>&1; echo $? > $OUT/setup.rc
stat -c %a /etc/autossl/agent-tokens > $OUT/tokens.mode
# no config at all from here on
mv /etc/autossl/autossl.config.yaml $OUT/moved.yaml
$CLI status --json > $OUT/status.json 2> $OUT/status.err; echo $? > $OUT/status.rc
printf 'server {\\n\\tlisten 127.0.0.1:80;\\n\\tserver_name zero.init.test;\\n\\troot %s;\\n}\\n' ${www('zero')} > /etc/nginx/sites-available/zero
ln -s /etc/nginx/sites-available/zero /etc/nginx/sites-enabled/zero && ${BINARIES.nginx} -s reload
# until the reloaded nginx serves the new site (10 s at most)
for i in $(seq 200); do curl -s -H 'Host: zero.init.test' http://127.0.0.1/ | grep -q '<h1>zero</h1>' && break; sleep 0.05; done
# no resolver to ask here but the system's: the DNS, CAA and port-80 checks are skipped (pebble resolves through challtestsrv)
$CLI issue zero.init.test --skip-check dns --skip-check caa --skip-check port80 --json > $OUT/zero.json 2> $OUT/zero.err; echo $? > $OUT/zero.rc
$CLI issue existing.init.test --json > $OUT/zero-existing.json 2> $OUT/zero-existing.err; echo $? > $OUT/zero-existing.rc
ls /var/lib/autossl > $OUT/state.ls 2>&1
`;
  const run = await execa('unshare', ['-m', '--propagation', 'private', 'bash', '-c', script], { reject: false, timeout: 600_000 });
  expect(run.exitCode, `${run.stdout}\n${run.stderr}`).toBe(0);
}, 700_000);

afterAll(async () => {
  await rig?.stop();
});

describe('init, zero-config runs and existing certbot installations', () => {
  it('init finds the five sites, the certbot lineage and the account; the config it writes loads; it never overwrites one', async () => {
    expect(read('init.rc').trim(), read('init.out')).toBe('0');
    const text = read('config.yaml');
    const config = await loadConfig({ file: path.join(OUT, 'config.yaml') });
    expect(config.sites.map((s) => s.domain).sort()).toEqual([...SITES].sort());
    expect(config.sites.find((s) => s.domain === 'php.init.test')?.aliases).toEqual(['www.php.init.test']);
    expect(config.nginx.config).toBe('/etc/nginx/nginx.conf');
    expect(config.certbot).toMatchObject({ configDir: '/etc/letsencrypt', server: rig.info.acmeDirectory, email: 'admin@init.test' });
    expect(config.preflight.resolvers).toEqual(['127.0.0.1:8053']);
    expect(text).toMatch(/# served now with certbot lineage existing\.init\.test \(CN=existing\.init\.test; \d+ days left\)/);
    expect(text).toMatch(/# ACME account [0-9a-f]+ at https:\/\/127\.0\.0\.1:14000\/dir \(admin@init\.test\)|email: "admin@init\.test"/);
    expect(text).toContain('/etc/nginx/sites-enabled/php:1');
    expect(read('init.out')).toMatch(/wrote \/etc\/autossl\/autossl\.config\.yaml: 5 sites \(1 served with a certificate now\)/);
    // a second init refuses to overwrite
    expect(read('init2.rc').trim()).toBe('2');
    expect(read('init2.out')).toMatch(/CONFIG_INVALID: .*exists already/);
    // its pre-flight checks ran with a scratch state directory, removed after (one was left per run)
    expect(
      read('tmp.ls')
        .split('\n')
        .filter((f) => f.startsWith('autossl-init-')),
    ).toEqual([]);
  });

  it('issue --all with it: the four new sites issued (four orders), the existing one reused with no order and its vhost untouched', () => {
    expect(read('issue.rc').trim(), read('issue.err') + read('issue.json').slice(-2000)).toBe('0');
    const summary = parseJson<{ results: Array<{ domain: string; ok: boolean; reused: boolean; changes: unknown[] }> }>(read('issue.json'));
    expect(summary.results.map((r) => [r.domain, r.ok]).sort()).toEqual(SITES.map((d) => [d, true]).sort());
    expect(summary.results.find((r) => r.domain === 'existing.init.test')).toMatchObject({ reused: true, changes: [] });
    for (const d of SITES.filter((x) => x !== 'existing.init.test')) expect(ordersOf(d), d).toBe(1);
    expect(ordersOf('existing.init.test')).toBe(0);
    expect(read('existing.after')).toBe(read('existing.before'));
    // Debian's sites-enabled links stay links: every edit landed in the sites-available file they point at
    expect(
      read('enabled.ls')
        .trim()
        .split('\n')
        .filter((l) => !l.includes('/default '))
        .sort(),
    ).toEqual(SITES.map((d) => `/etc/nginx/sites-enabled/${d.replace('.init.test', '')} symbolic link`).sort());
    expect(read('available.ssl').trim().split('\n').sort()).toEqual(SITES.map((d) => `/etc/nginx/sites-available/${d.replace('.init.test', '')}`).sort());
  });

  it('with no config: status lists the lineages, and issue <domain> works with what the server has, saying so', () => {
    expect(read('status.err')).toMatch(
      /no config file; using what this server has: nginx \/etc\/nginx\/nginx\.conf .*certbot \/etc\/letsencrypt.*autossl init/,
    );
    const status = JSON.parse(read('status.json')) as { certificates: Array<{ lineage: string | null; domain: string }> };
    expect(status.certificates.map((c) => c.lineage)).toEqual(expect.arrayContaining(['existing.init.test', 'static.init.test']));
    expect(read('zero.rc').trim(), read('zero.err') + read('zero.json').slice(-1500)).toBe('0');
    expect(read('zero.err')).toContain('no config file; using what this server has');
    expect(ordersOf('zero.init.test')).toBe(1);
    // the certbot-managed domain, with no config: its lineage reused, nothing ordered, nothing edited
    expect(read('zero-existing.rc').trim(), read('zero-existing.json').slice(-1500)).toBe('0');
    expect(parseJson<{ results: Array<{ reused: boolean; changes: unknown[] }> }>(read('zero-existing.json')).results[0]).toMatchObject({
      reused: true,
      changes: [],
    });
    expect(ordersOf('existing.init.test')).toBe(0);
  });

  it("setup installs certbot's hooks and writes the agent's unit to run this autossl with this config; with no systemd, certbot's cron job renews (no second schedule)", () => {
    expect(read('setup.rc').trim(), read('setup.out')).toBe('0');
    for (const phase of ['deploy', 'pre', 'post']) expect(fs.existsSync(path.join(T, 'etc-le', 'renewal-hooks', phase, 'autossl')), phase).toBe(true);
    expect(fs.readFileSync(path.join(OUT, 'units', 'autossl-agent.service'), 'utf8')).toContain(
      `${fs.realpathSync(CLI)} agent --config /etc/autossl/autossl.config.yaml`,
    );
    expect(fs.existsSync(path.join(OUT, 'units', 'autossl-renew.timer'))).toBe(false);
    expect(read('setup.out')).toMatch(/done  cron runs certbot renew already \(\/etc\/cron\.d\/certbot: 0 \*\/12 \* \* \* root .*certbot -q renew\)/);
    expect(read('setup.out')).not.toMatch(/twice a day from cron/);
    expect(read('setup.out')).toMatch(/todo  systemd does not run this machine: start the agent/);
    expect(read('tokens.mode').trim()).toBe('600');
  });

  it('nothing on the host changed: every write went to the overlay', () => {
    expect(fs.existsSync('/etc/autossl/autossl.config.yaml') && fs.readFileSync('/etc/autossl/autossl.config.yaml', 'utf8') === read('moved.yaml')).toBe(false);
    expect(read('state.ls')).toContain('state.db');
    expect(fs.existsSync(path.join(T, 'ov', 'var-up', 'lib', 'autossl', 'state.db'))).toBe(true);
    void crypto;
  });
});
