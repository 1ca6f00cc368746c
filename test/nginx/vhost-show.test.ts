import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../../src/nginx/transaction.js';
import { httpsListenLines, makeTree, writeTreeConfig } from '../helpers/nginx-fixture.js';
import { parseJson } from '../helpers/json.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');

describe('autossl vhost show', () => {
  it('names the file and block serving a domain and prints the HTTPS diff, touching nothing', async () => {
    const t = await makeTree(
      '# first\nserver {\n    listen 80;\n    server_name other.example.test;\n}\n\nserver {\n    listen 80;\n    listen [::]:80;\n    server_name show.example.test www.show.example.test;\n    root /var/www/show;\n}\n',
    );
    const config = writeTreeConfig(t);
    const before = sha256(fs.readFileSync(t.site));
    const run = await execa('node', [CLI, 'vhost', 'show', 'www.show.example.test', '--diff', '--config', config]);
    expect(run.stdout).toContain(`www.show.example.test (port 80): ${t.site}:7  server_name show.example.test www.show.example.test  listen *:80, [::]:80`);
    expect(run.stdout).toContain('www.show.example.test (TLS): no server block');
    const https = await httpsListenLines(['443', '[::]:443']);
    for (const line of https.listens) expect(run.stdout).toContain(`+    ${line}`);
    if (https.http2On) expect(run.stdout).toContain('+    http2 on;');
    expect(run.stdout).toContain(`+    ssl_certificate ${path.join(t.dir, 'le')}/live/www.show.example.test/fullchain.pem;`);
    expect(sha256(fs.readFileSync(t.site))).toBe(before);
    const json = parseJson((await execa('node', [CLI, 'vhost', 'show', 'show.example.test', '--json', '--config', config])).stdout) as {
      http: Array<{ file: string; line: number }>;
    };
    expect(json.http[0]).toMatchObject({ file: t.site, line: 7 });
  });

  it('on a config nginx -t rejects as it stands, vhost show --diff and issue --dry-run say it is broken before the edit (non-zero exit); VHOST_NOT_FOUND is exit 2 in every command', async () => {
    // parses fine for autossl, but nginx refuses it: an unknown directive in another block
    const t = await makeTree(
      'server {\n    listen 80;\n    server_name broken.example.test;\n    root /var/www/b;\n}\n\nserver {\n    listen 80;\n    server_name other.example.test;\n    no_such_directive on;\n}\n',
    );
    const config = writeTreeConfig(t, { sites: [{ domain: 'broken.example.test' }] });
    const before = sha256(fs.readFileSync(t.site));
    const skip = ['--skip-check', 'dns', '--skip-check', 'caa', '--skip-check', 'port80'];
    const show = await execa('node', [CLI, 'vhost', 'show', 'broken.example.test', '--diff', '--config', config], { reject: false });
    expect(show.exitCode).toBe(1);
    expect(show.stderr).toMatch(/NGINX_TEST_FAILED: The nginx config is broken as it stands, before any edit.*no_such_directive/);
    expect(show.stdout).not.toContain('+    listen 443 ssl');
    const dry = await execa('node', [CLI, 'issue', 'broken.example.test', '--dry-run', '--json', ...skip, '--config', config], { reject: false });
    expect(dry.exitCode).toBe(1);
    const error = parseJson<{ results: Array<{ error: { code: string; message: string } }> }>(dry.stdout.trim().split('\n').pop()!).results[0]!.error;
    expect(error.code).toBe('NGINX_TEST_FAILED');
    expect(error.message).toMatch(/broken as it stands.*no_such_directive/);
    expect(sha256(fs.readFileSync(t.site))).toBe(before);

    // a name no block serves: exit 2 from issue (real and dry run), vhost show and check alike
    fs.writeFileSync(t.site, fs.readFileSync(t.site, 'latin1').replace('    no_such_directive on;\n', ''), 'latin1');
    for (const args of [
      ['issue', 'nowhere.example.test', ...skip],
      ['issue', 'nowhere.example.test', '--dry-run', ...skip],
      ['vhost', 'show', 'nowhere.example.test'],
      ['check', 'nowhere.example.test', '--skip-check', 'dns', '--skip-check', 'caa'],
    ]) {
      const run = await execa('node', [CLI, ...args, '--config', config], { reject: false });
      expect(run.stdout + run.stderr, args.join(' ')).toContain('VHOST_NOT_FOUND');
      expect(run.exitCode, args.join(' ')).toBe(2);
    }
  });
});
