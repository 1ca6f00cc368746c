/**
 * A reload is done when nginx's old workers stopped accepting (src/nginx/reload-wait.ts): `nginx -s reload` only
 * signals the master, whose old workers answer with the old config until they handle their quit. Right after
 * NginxControl.reload() returns, every new connection must get the new certificate (served.test.ts met an old
 * worker once, under load: the issue's own check had seen the new serial, the next client did not).
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BINARIES, stopNginx } from '../../scripts/sandbox/rig.js';
import { selfSignedEcdsa } from '../../scripts/sandbox/openssl.js';
import { NginxControl } from '../../src/nginx/control.js';
import { acceptingWorkers, pidFileOf } from '../../src/nginx/reload-wait.js';
import { servedSerial } from '../../src/installer/sni.js';

let dir: string;
let port: number;
let control: NginxControl;
const pidFile = () => path.join(dir, 'nginx.pid');

async function newCert(name: string): Promise<string> {
  const cert = path.join(dir, `${name}.pem`);
  const key = path.join(dir, `${name}.key`);
  await selfSignedEcdsa({ key, cert, days: 2, subject: `/CN=${name}` });
  const out = await execa(BINARIES.openssl, ['x509', '-in', cert, '-noout', '-serial']);
  return out.stdout
    .replace(/^serial=/, '')
    .trim()
    .toUpperCase();
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const p = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(p));
    });
  });
}

function writeConfig(cert: string): void {
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    `worker_processes 2;
pid ${pidFile()};
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path ${dir}/tmp;
    proxy_temp_path ${dir}/tmp;
    fastcgi_temp_path ${dir}/tmp;
    uwsgi_temp_path ${dir}/tmp;
    scgi_temp_path ${dir}/tmp;
    server {
        listen 127.0.0.1:${port} ssl;
        server_name reload.test;
        ssl_certificate ${dir}/${cert}.pem;
        ssl_certificate_key ${dir}/${cert}.key;
        return 204;
    }
}
`,
  );
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-reload-'));
  fs.mkdirSync(path.join(dir, 'tmp'));
  port = await freePort();
  writeConfig('a');
  control = new NginxControl({ binary: BINARIES.nginx, config: path.join(dir, 'nginx.conf') });
}, 30_000);

afterAll(async () => {
  await stopNginx(pidFile());
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('reload', () => {
  it('the pid file comes from the main config: absolute, quoted, relative to -p; a commented one is none', () => {
    const file = path.join(dir, 'probe.conf');
    fs.writeFileSync(file, '# pid /nope.pid;\nuser www-data;\n  pid "/run/x.pid" ;\nevents {}\n');
    expect(pidFileOf(file)).toBe('/run/x.pid');
    fs.writeFileSync(file, 'pid logs/nginx.pid;\n');
    expect(pidFileOf(file, ['-p', '/srv/ngx'])).toBe('/srv/ngx/logs/nginx.pid');
    expect(pidFileOf(file)).toBeNull();
    fs.writeFileSync(file, '#pid /nope.pid;\nevents {}\n');
    expect(pidFileOf(file)).toBeNull();
  });

  it('once reload() returns, no old worker answers: 30 connections right after each of 5 reloads all get the new certificate', async () => {
    const serials = [await newCert('a')];
    await execa(BINARIES.nginx, ['-c', path.join(dir, 'nginx.conf')]);
    await expect.poll(() => servedSerial('127.0.0.1', port, 'reload.test').catch(() => null), { timeout: 10_000, interval: 50 }).toBe(serials[0]);
    for (let round = 1; round <= 5; round++) {
      serials.push(await newCert(`c${round}`));
      const before = acceptingWorkers(pidFile());
      expect(before).toHaveLength(2); // the wait has something to wait for: the master and its workers are seen
      writeConfig(`c${round}`);
      await control.reload();
      const seen: string[] = [];
      for (let i = 0; i < 30; i++) seen.push(await servedSerial('127.0.0.1', port, 'reload.test'));
      expect(new Set(seen), `round ${round}`).toEqual(new Set([serials[round]]));
      expect(acceptingWorkers(pidFile()).filter((p) => before.includes(p))).toEqual([]);
    }
  }, 120_000);
});
