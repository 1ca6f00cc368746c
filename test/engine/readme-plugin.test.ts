/** The "Writing a plugin" example of docs/plugins.md, taken from that page itself and run through the engine. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/schema.js';
import { createAutoSsl } from '../../src/engine.js';
import { BINARIES } from '../../scripts/sandbox/rig.js';
import { makeTree } from '../helpers/nginx-fixture.js';

const README = fs.readFileSync(path.resolve(import.meta.dirname, '../../docs/plugins.md'), 'utf8');

function example(): string {
  const section = README.slice(README.indexOf('## Writing a plugin'));
  const m = /```js\n(\/\/ my-header\.mjs[\s\S]*?)```/.exec(section);
  if (!m) throw new Error('docs/plugins.md has no my-header.mjs example under "Writing a plugin"');
  return m[1]!;
}

describe('the README plugin example', () => {
  it('loads from the config by path, validates its options, and its vhost tap adds the header', async () => {
    const t = await makeTree('server {\n    listen 80;\n    server_name readme.example.test;\n    root /var/www;\n}\n');
    fs.writeFileSync(path.join(t.dir, 'my-header.mjs'), example());
    const base = { nginx: { binary: BINARIES.nginx, config: t.main }, certbot: { configDir: path.join(t.dir, 'le') }, stateDir: path.join(t.dir, 'state') };
    const config = validateConfig({ ...base, plugins: [['./my-header.mjs', { value: 'web-1' }]] }, path.join(t.dir, 'autossl.config.json'), t.dir);
    const logged: string[] = [];
    const engine = await createAutoSsl(config, { onEvent: (e) => e.stage === 'log' && logged.push(e.message ?? '') });
    const [r] = await engine.issue(['readme.example.test'], { dryRun: true, skipChecks: ['dns', 'caa', 'port80'] });
    expect(r!.ok, r!.error?.message).toBe(true);
    expect(r!.files[0]!.after).toContain('    add_header X-Served-By "web-1" always;\n');
    expect(logged).toContain('my-header: header added for readme.example.test');
    const bad = validateConfig({ ...base, plugins: [['./my-header.mjs', { value: 'x"; evil' }]] }, path.join(t.dir, 'autossl.config.json'), t.dir);
    await expect(createAutoSsl(bad)).rejects.toMatchObject({
      code: 'PLUGIN_LOAD_FAILED',
      message: expect.stringContaining('"value" must be a short plain string'),
    });
  });
});
