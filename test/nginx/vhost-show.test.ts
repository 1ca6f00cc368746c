import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { BINARIES } from '../../src/sandbox/rig.js';
import { sha256 } from '../../src/nginx/transaction.js';
import { httpsListenLines, makeTree } from '../helpers/nginx-fixture.js';
import { parseJson } from '../helpers/json.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');

describe('autossl vhost show', () => {
  it('names the file and block serving a domain and prints the HTTPS diff, touching nothing', async () => {
    const t = await makeTree('# first\nserver {\n    listen 80;\n    server_name other.example.test;\n}\n\nserver {\n    listen 80;\n    listen [::]:80;\n    server_name show.example.test www.show.example.test;\n    root /var/www/show;\n}\n');
    const config = path.join(t.dir, 'autossl.config.json');
    fs.writeFileSync(config, JSON.stringify({ nginx: { binary: BINARIES.nginx, config: t.main }, certbot: { configDir: path.join(t.dir, 'le') }, stateDir: path.join(t.dir, 'state') }));
    const before = sha256(fs.readFileSync(t.site));
    const run = await execa('node', [CLI, 'vhost', 'show', 'www.show.example.test', '--diff', '--config', config]);
    expect(run.stdout).toContain(`www.show.example.test (port 80): ${t.site}:7  server_name show.example.test www.show.example.test  listen *:80, [::]:80`);
    expect(run.stdout).toContain('www.show.example.test (TLS): no server block');
    const https = await httpsListenLines(['443', '[::]:443']);
    for (const line of https.listens) expect(run.stdout).toContain(`+    ${line}`);
    if (https.http2On) expect(run.stdout).toContain('+    http2 on;');
    expect(run.stdout).toContain(`+    ssl_certificate ${path.join(t.dir, 'le')}/live/www.show.example.test/fullchain.pem;`);
    expect(sha256(fs.readFileSync(t.site))).toBe(before);
    const json = parseJson((await execa('node', [CLI, 'vhost', 'show', 'show.example.test', '--json', '--config', config])).stdout) as { http: Array<{ file: string; line: number }> };
    expect(json.http[0]).toMatchObject({ file: t.site, line: 7 });
  });
});
