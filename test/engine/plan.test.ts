/** How a site's config shapes the run: the vhost file it names, and when an existing certificate is reused. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/schema.js';
import { createAutoSsl } from '../../src/engine.js';
import { BINARIES } from '../../scripts/sandbox/rig.js';
import { makeTree } from '../helpers/nginx-fixture.js';
import { writeLineage } from '../helpers/certs.js';

const SKIP = ['dns', 'caa', 'port80'];

describe('a site\'s "vhost"', () => {
  it('picks the block in that file when the name is in two files; without it the run is refused as ambiguous', async () => {
    const t = await makeTree('server {\n    listen 80;\n    server_name twice.example.test;\n    root /var/www/a;\n}\n', {
      'sites/zz-other.conf': 'server {\n    listen 80;\n    server_name twice.example.test;\n    root /var/www/b;\n}\n',
    });
    const other = path.join(t.dir, 'sites', 'zz-other.conf');
    const base = { nginx: { binary: BINARIES.nginx, config: t.main }, certbot: { configDir: path.join(t.dir, 'le') }, stateDir: path.join(t.dir, 'state') };
    const ambiguous = await createAutoSsl(validateConfig(base));
    const [refused] = await ambiguous.issue(['twice.example.test'], { dryRun: true, skipChecks: SKIP });
    expect(refused!.error?.code).toBe('VHOST_AMBIGUOUS');
    for (const vhost of [other, t.site]) {
      const engine = await createAutoSsl(validateConfig({ ...base, sites: [{ domain: 'twice.example.test', vhost }] }));
      const [r] = await engine.issue(['twice.example.test'], { dryRun: true, skipChecks: SKIP });
      expect(r!.ok, r!.error?.message).toBe(true);
      expect(r!.files.map((f) => f.file)).toEqual([vhost]);
    }
    // a vhost that does not hold the name: a clear refusal naming both
    const wrong = await createAutoSsl(validateConfig({ ...base, sites: [{ domain: 'twice.example.test', vhost: path.join(t.dir, 'nginx.conf') }] }));
    const [w] = await wrong.issue(['twice.example.test'], { dryRun: true, skipChecks: SKIP });
    expect(w!.error?.code).toBe('VHOST_NOT_FOUND');
    expect(w!.error?.message).toContain("not by a block in the site's configured vhost");
    expect(fs.readFileSync(other, 'latin1')).toContain('root /var/www/b;');
  });
});

describe('reusing an existing certificate', () => {
  it('follows renewal.windowFraction: 20 of 90 days left is reused with a 1/5 window, renewed with the default 1/3', async () => {
    const t = await makeTree('server {\n    listen 80;\n    server_name reuse.example.test;\n    root /var/www;\n}\n');
    const le = path.join(t.dir, 'le');
    await writeLineage(le, 'reuse.example.test', 90, 20);
    const base = { nginx: { binary: BINARIES.nginx, config: t.main }, certbot: { configDir: le }, stateDir: path.join(t.dir, 'state') };
    const [narrow] = await (
      await createAutoSsl(validateConfig({ ...base, renewal: { windowFraction: 0.2 } }))
    ).issue(['reuse.example.test'], { dryRun: true, skipChecks: SKIP });
    expect(narrow!.reused).toBe(true);
    const [wide] = await (await createAutoSsl(validateConfig(base))).issue(['reuse.example.test'], { dryRun: true, skipChecks: SKIP });
    expect(wide!.ok).toBe(true);
    expect(wide!.reused).toBe(false);
  });
});

describe("the vhost hook's payload", () => {
  it('shows plugins the block as it is (snippets included), and takes out what a plugin removes', async () => {
    const t = await makeTree(
      'server {\n    listen 80;\n    listen 443 ssl;\n    server_name view.example.test;\n    ssl_certificate {{DIR}}/old/fullchain.pem;\n    ssl_certificate_key {{DIR}}/old/privkey.pem;\n    add_header X-Old "1";\n    include {{DIR}}/snippets/extra.conf;\n}\n',
      {
        'snippets/extra.conf': 'add_header X-From-Snippet "1";\n',
      },
    );
    let seen: Array<{ name: string; args: readonly string[]; file: string }> = [];
    const plugin = {
      name: 'viewer',
      apply(hooks: import('../../src/pipeline/hooks.js').Hooks) {
        hooks.vhost.tapPromise('viewer', async (edit) => {
          seen = edit.current.https.flatMap((b) => b.directives.map((d) => ({ name: d.name, args: d.args, file: d.file })));
          expect(Object.isFrozen(edit.current.https[0])).toBe(true);
          edit.remove('https', 'add_header', 'x-old');
          return edit;
        });
      },
    };
    const config = validateConfig({
      nginx: { binary: BINARIES.nginx, config: t.main },
      certbot: { configDir: path.join(t.dir, 'le') },
      stateDir: path.join(t.dir, 'state'),
    });
    const [r] = await (await createAutoSsl(config, [plugin])).issue(['view.example.test'], { dryRun: true, skipChecks: SKIP });
    expect(r!.ok, r!.error?.message).toBe(true);
    expect(seen).toContainEqual({ name: 'add_header', args: ['X-Old', '1'], file: t.site });
    expect(seen).toContainEqual({ name: 'add_header', args: ['X-From-Snippet', '1'], file: path.join(t.dir, 'snippets', 'extra.conf') });
    const after = r!.files[0]!.after;
    expect(after).not.toContain('X-Old');
    expect(after).toContain(`ssl_certificate ${path.join(t.dir, 'le', 'live', 'view.example.test', 'fullchain.pem')};`);
    expect(after).toContain('include');
  });
});
