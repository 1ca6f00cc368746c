/**
 * Zero-config renewals (issue 20, item 3): with no config file and no `autossl setup`, `autossl issue <domain>`
 * leaves certbot able to renew the lineage *and have it served*: the run installs certbot's deploy hook (and says
 * so), so `certbot renew --force-renewal` alone (certbot's own command, nothing of autossl's around it) ends with
 * nginx serving the new serial. Without the hook, the same renewal leaves nginx on the old certificate: `status`
 * (still no config) says `mismatch` and exits 1.
 *
 * As init.test.ts, against the system paths without touching the host: a private mount namespace where /etc, /var
 * are overlays and /run is empty, sandbox directories bind-mounted over /etc/nginx and /etc/letsencrypt (an ACME
 * account registered at pebble, a cli.ini naming it). The system nginx binary serves that tree on loopback.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig, BINARIES, stopNginx } from '../../scripts/sandbox/rig.js';
import { parseJson } from '../helpers/json.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const DOMAIN = 'zr.zero.test';
let rig: AcmeRig;
let T: string;
let OUT: string;

const NGINX_CONF = `worker_processes 1;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log;
events { worker_connections 64; }
http {
    access_log off;
    include /etc/nginx/sites-enabled/*;
}
`;

const read = (f: string): string => fs.readFileSync(path.join(OUT, f), 'utf8');
const rc = (f: string): string => read(`${f}.rc`).trim();

beforeAll(async () => {
  rig = await AcmeRig.start();
  await stopNginx(path.join(rig.info.nginxPrefix, 'nginx.pid')); // the namespace's own nginx takes the loopback ports
  T = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-zero-'));
  fs.chmodSync(T, 0o755);
  OUT = path.join(T, 'out');
  fs.mkdirSync(OUT);
  const etcNginx = path.join(T, 'etc-nginx');
  fs.mkdirSync(path.join(etcNginx, 'sites-enabled'), { recursive: true });
  fs.writeFileSync(path.join(etcNginx, 'nginx.conf'), NGINX_CONF);
  fs.mkdirSync(path.join(T, 'www'));
  fs.writeFileSync(path.join(T, 'www', 'index.html'), '<h1>zero</h1>\n');
  fs.writeFileSync(path.join(etcNginx, 'sites-enabled', 'zr'), `server {\n\tlisten 127.0.0.1:80;\n\tserver_name ${DOMAIN};\n\troot ${T}/www;\n}\n`);
  const etcLe = path.join(T, 'etc-le');
  const register = await rig.certbot(['register', '--agree-tos', '-m', 'admin@zero.test'], {
    configDir: etcLe,
    workDir: path.join(T, 'le-work'),
    logsDir: path.join(T, 'le-logs'),
  });
  expect(register.exitCode, register.stderr).toBe(0);
  fs.writeFileSync(path.join(etcLe, 'cli.ini'), `server = ${rig.info.acmeDirectory}\n`);

  // the serial nginx serves for the domain, asked until it is the one in live/ (nginx reloads gracefully) or 5 s
  const script = `
set -u
T=${T}
OUT=${OUT}
CLI="node ${CLI}"
for d in etc var; do mkdir -p $T/ov/$d-up $T/ov/$d-work; mount -t overlay overlay -o lowerdir=/$d,upperdir=$T/ov/$d-up,workdir=$T/ov/$d-work /$d || exit 90; done
mount -t tmpfs tmpfs /run || exit 91
mkdir -p /etc/nginx /etc/letsencrypt /var/log/nginx /var/lib/nginx /var/lib/letsencrypt /var/log/letsencrypt
rm -f /etc/autossl/autossl.config.yaml /etc/autossl/autossl.config.json
mount --bind $T/etc-nginx /etc/nginx && mount --bind $T/etc-le /etc/letsencrypt || exit 92
${BINARIES.nginx} || exit 93
# on the way out nginx quits, and is waited for (its pid gone, 10 s at most) before the namespace's mounts go
trap 'p=$(cat /run/nginx.pid); ${BINARIES.nginx} -s quit; for i in $(seq 200); do kill -0 $p 2>/dev/null || break; sleep 0.05; done' EXIT
export REQUESTS_CA_BUNDLE=${rig.info.caCert}
cd $T
served() { echo | ${BINARIES.openssl} s_client -connect 127.0.0.1:443 -servername ${DOMAIN} 2>/dev/null | ${BINARIES.openssl} x509 -noout -serial | sed 's/^serial=//'; }
onfile() { ${BINARIES.openssl} x509 -in /etc/letsencrypt/live/${DOMAIN}/cert.pem -noout -serial | sed 's/^serial=//'; }
settle() { for i in $(seq 50); do [ "$(served)" = "$(onfile)" ] && break; sleep 0.1; done; served > $OUT/$1.served; onfile > $OUT/$1.file; }
renew() { ${BINARIES.certbot} renew --force-renewal --non-interactive --no-random-sleep-on-renew --config-dir /etc/letsencrypt --work-dir /var/lib/letsencrypt --logs-dir /var/log/letsencrypt > $OUT/$1.out 2>&1; echo $? > $OUT/$1.rc; }
ls -A /etc/letsencrypt/renewal-hooks/deploy > $OUT/hooks-before.ls 2>&1
# no config file, no setup: what the server has
$CLI issue ${DOMAIN} --skip-check dns --skip-check caa --skip-check port80 > $OUT/issue.out 2>&1; echo $? > $OUT/issue.rc
ls -A /etc/letsencrypt/renewal-hooks/deploy > $OUT/hooks.ls 2>&1
settle issued
# certbot's own renewal, alone
renew renew1
settle renewed
$CLI status --json > $OUT/status1.json 2> $OUT/status1.err; echo $? > $OUT/status1.rc
# the same renewal without the hook: nginx keeps the old certificate, and status (no config) says so
rm /etc/letsencrypt/renewal-hooks/deploy/autossl
renew renew2
# a wait for nothing to happen: no reload comes, nginx keeps serving the old certificate
sleep 1
served > $OUT/stale.served; onfile > $OUT/stale.file
$CLI status --json > $OUT/status2.json 2> $OUT/status2.err; echo $? > $OUT/status2.rc
${BINARIES.nginx} -s reload; settle reloaded
$CLI status --json > $OUT/status3.json 2> $OUT/status3.err; echo $? > $OUT/status3.rc
`;
  const run = await execa('unshare', ['-m', '--propagation', 'private', 'bash', '-c', script], { reject: false, timeout: 600_000 });
  expect(run.exitCode, `${run.stdout}\n${run.stderr}`).toBe(0);
}, 700_000);

afterAll(async () => {
  await rig?.stop();
});

interface Status {
  certificates: Array<{
    lineage: string;
    domain: string;
    state: string;
    serial: string | null;
    lastError: { code: string | null; message: string | null } | null;
  }>;
}

describe('zero-config issue, then certbot renew alone', () => {
  it("the issue installs certbot's deploy hook and says so", () => {
    expect(rc('issue'), read('issue.out')).toBe('0');
    expect(read('hooks-before.ls')).not.toContain('autossl');
    expect(read('hooks.ls').trim()).toBe('autossl');
    expect(read('issue.out')).toMatch(
      /installed certbot's deploy hook \/etc\/letsencrypt\/renewal-hooks\/deploy\/autossl \(no config file: it discovers this server as this run did\)/,
    );
    expect(read('issued.served').trim()).toBe(read('issued.file').trim());
  });

  it('certbot renew --force-renewal alone: the new serial is served, status exits 0', () => {
    expect(rc('renew1'), read('renew1.out')).toBe('0');
    expect(read('renewed.file').trim()).not.toBe(read('issued.file').trim());
    expect(read('renewed.served').trim()).toBe(read('renewed.file').trim());
    expect(rc('status1'), read('status1.err') + read('status1.json')).toBe('0');
  });

  it('without the hook nginx keeps the old certificate, and status with no config says mismatch (exit 1) until nginx reloads', () => {
    expect(rc('renew2'), read('renew2.out')).toBe('0');
    const stale = read('stale.served').trim();
    const file = read('stale.file').trim();
    expect(stale).toBe(read('renewed.file').trim());
    expect(file).not.toBe(stale);
    expect(rc('status2'), read('status2.err')).toBe('1');
    const row = parseJson<Status>(read('status2.json')).certificates.find((c) => c.lineage === DOMAIN)!;
    expect(row).toMatchObject({ state: 'mismatch', serial: file, lastError: { code: 'CERT_NOT_LOADED' } });
    expect(row.lastError!.message).toContain(`presents serial ${stale} for ${DOMAIN}, but lineage ${DOMAIN}'s certificate is serial ${file}`);
    expect(rc('status3'), read('status3.err') + read('status3.json')).toBe('0');
  });
});
