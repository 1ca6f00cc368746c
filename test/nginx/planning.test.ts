/**
 * What a vhost's shape decides is found while planning, before anything is ordered (issue 20, item 9): a certificate
 * set in a shared snippet; the challenge hidden by a server-level auth_basic or allow/deny; an existing
 * acme-challenge location with `alias`; a nested acme location in a 443 block that also has a regex location.
 * Through the built CLI on a private nginx tree (the real `nginx -t`), the CA's checks skipped: no certbot runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { BINARIES } from '../../src/sandbox/rig.js';
import { NginxTree } from '../../src/nginx/tree.js';
import { planChallengeEdit } from '../../src/nginx/edit.js';
import { makeTree } from '../helpers/nginx-fixture.js';
import { parseJson } from '../helpers/json.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const SKIP = ['--skip-check', 'dns', '--skip-check', 'caa', '--skip-check', 'port80'];

function configFor(t: { dir: string; main: string }, domain: string): string {
  const file = path.join(t.dir, 'autossl.config.json');
  fs.writeFileSync(file, JSON.stringify({ nginx: { binary: BINARIES.nginx, config: t.main }, certbot: { configDir: path.join(t.dir, 'le') }, stateDir: path.join(t.dir, 'state'), sites: [{ domain }] }));
  return file;
}

describe('found while planning, before any order', () => {
  it('a ssl_certificate set in a shared snippet is refused while planning (dry run and real run), certbot never runs', async () => {
    const t = await makeTree('server {\n    listen 80;\n    listen 443 ssl;\n    server_name snip.plan.test;\n    root /var/www/snip;\n    include {{DIR}}/snippets/tls.conf;\n}\n', { 'snippets/tls.conf': 'ssl_certificate old/fullchain.pem;\nssl_certificate_key old/privkey.pem;\n' });
    const config = configFor(t, 'snip.plan.test');
    const before = fs.readFileSync(t.site, 'latin1');
    for (const dry of [['--dry-run'], []]) {
      const r = await execa('node', [CLI, 'issue', 'snip.plan.test', '--json', ...dry, ...SKIP, '--config', config], { reject: false });
      const x = parseJson<{ results: Array<{ error?: { code: string; message: string }; stages: Array<{ stage: string }> }> }>(r.stdout.trim().split('\n').pop()!).results[0]!;
      expect(x.error?.code, dry.join('')).toBe('VHOST_UNSUPPORTED');
      expect(x.error?.message).toMatch(/ssl_certificate" is set in .*tls\.conf.*Nothing was ordered/);
      expect(x.stages.map((s) => s.stage)).not.toContain('challenge'); // refused in plan: no edit, no order
    }
    expect(fs.readFileSync(t.site, 'latin1')).toBe(before);
    expect(fs.existsSync(path.join(t.dir, 'le', 'live'))).toBe(false);
  });
});
