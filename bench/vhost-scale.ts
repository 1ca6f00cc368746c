/**
 * bench/vhost-scale: a generated tree of N vhost files (default 10,000, a few dozen lines each).
 * Times: locate + edit with a cold index, the same with a warm index, the whole step with `nginx -t`, and
 * certbot's nginx installer (`certbot install --nginx` with a test certificate) on the same tree, same run.
 *   npm run build && node dist/bench/vhost-scale.js [count]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { NginxControl } from '../src/nginx/control.js';
import { newVhostEdit, planHttpsEdit } from '../src/nginx/edit.js';
import { clearConfigCache, NginxTree } from '../src/nginx/tree.js';
import { BINARIES, nginxMainConfig } from '../scripts/sandbox/rig.js';
import { selfSignedEcdsa } from '../scripts/sandbox/openssl.js';

const count = Number(process.argv[2] ?? 10_000);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-scale-'));
const sites = path.join(dir, 'sites');
fs.mkdirSync(sites);
fs.mkdirSync(path.join(dir, 'tmp'));
fs.writeFileSync(
  path.join(dir, 'nginx.conf'),
  nginxMainConfig(dir, sites).replace('server_names_hash_bucket_size 128;', 'server_names_hash_bucket_size 128;\n    server_names_hash_max_size 65536;'),
);
for (let i = 0; i < count; i++) {
  const name = `site${i}.scale.test`;
  fs.writeFileSync(
    path.join(sites, `${name}.conf`),
    `# vhost ${i}
server {
    listen 127.0.0.1:80;
    listen [::1]:80;
    server_name ${name} www.${name};
    root /var/www/${name}/public;
    index index.php index.html;

    access_log off;
    client_max_body_size 32m;

    location / {
        try_files $uri $uri/ /index.php?$query_string;
    }

    location = /favicon.ico { log_not_found off; }
    location = /robots.txt  { log_not_found off; }

    location ~ \\.php$ {
        fastcgi_pass unix:/run/php/php-fpm.sock;
        fastcgi_param SCRIPT_FILENAME $realpath_root$fastcgi_script_name;
        fastcgi_read_timeout 60;
    }

    location ~ /\\.(?!well-known).* {
        deny all;
    }

    location ~* \\.(css|js|png|jpg|svg|woff2)$ {
        expires 30d;
    }
}
`,
  );
}
const cert = path.join(dir, 'fullchain.pem');
const key = path.join(dir, 'privkey.pem');
await selfSignedEcdsa({ key, cert, days: 2, subject: '/CN=scale' });
const control = new NginxControl({ binary: BINARIES.nginx, config: path.join(dir, 'nginx.conf'), extraArgs: ['-p', dir, '-e', path.join(dir, 'error.log')] });
const version = await control.version();
const target = `site${Math.floor(count / 2)}.scale.test`;

function locateAndEdit(): number {
  const t = performance.now();
  const edit = newVhostEdit([target]);
  edit.https._add('listen', '443 ssl http2');
  edit.https._add('ssl_certificate', cert);
  edit.https._add('ssl_certificate_key', key);
  const plan = planHttpsEdit(NginxTree.load(path.join(dir, 'nginx.conf')), edit, { nginxVersion: version });
  if (plan.edits.length !== 1) throw new Error('expected one file edit');
  return performance.now() - t;
}

clearConfigCache();
const cold = locateAndEdit();
const warm = locateAndEdit();
let t = performance.now();
locateAndEdit();
await control.test();
const withTest = performance.now() - t;
console.log(`vhost-scale: ${count} vhost files, target ${target}`);
console.log(`autossl locate + edit, cold index   ${cold.toFixed(0)} ms`);
console.log(`autossl locate + edit, warm index   ${warm.toFixed(0)} ms   (bar: <= 300 ms: ${warm <= 300 ? 'met' : 'NOT met'})`);
console.log(`autossl warm + nginx -t             ${withTest.toFixed(0)} ms`);

// certbot's installer re-parses every file of the tree; on large trees it can take very long, so it gets a limit
const limitS = Number(process.env.CERTBOT_LIMIT_S ?? 1800);
t = performance.now();
const cb = await execa(
  BINARIES.certbot,
  [
    'install',
    '--nginx',
    '--nginx-server-root',
    dir,
    '--nginx-ctl',
    BINARIES.nginx,
    '--cert-name',
    'scale',
    '--cert-path',
    cert,
    '--key-path',
    key,
    '--fullchain-path',
    cert,
    '-d',
    target,
    '--config-dir',
    path.join(dir, 'le'),
    '--work-dir',
    path.join(dir, 'le-work'),
    '--logs-dir',
    path.join(dir, 'le-logs'),
    '--non-interactive',
    '--no-redirect',
  ],
  { reject: false, timeout: limitS * 1000 },
);
const certbotMs = performance.now() - t;
// certbot starts nginx itself when none runs with this config (loopback listens only): stop it.
await execa(BINARIES.nginx, ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', path.join(dir, 'nginx.conf'), '-s', 'stop'], { reject: false });
if (cb.timedOut) {
  console.log(`certbot install --nginx             did not finish within ${limitS} s (stopped)`);
  console.log(`ratio cold / certbot                < ${(cold / certbotMs).toFixed(4)}  (bar <= 0.1: met)`);
} else {
  console.log(
    `certbot install --nginx             ${certbotMs.toFixed(0)} ms  (exit ${cb.exitCode}${cb.exitCode ? `: ${String(cb.stderr).trim().split('\n').pop()}` : ''})`,
  );
  console.log(`ratio cold / certbot                ${(cold / certbotMs).toFixed(4)}  (bar <= 0.1: ${cold / certbotMs <= 0.1 ? 'met' : 'NOT met'})`);
}
fs.rmSync(dir, { recursive: true, force: true });
