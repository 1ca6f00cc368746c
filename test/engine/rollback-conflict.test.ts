/**
 * A rollback that cannot merge (another writer changed the lines this run wrote) says so in the run's own result,
 * names the file and where its bytes before the run are kept, and leaves no journal behind: later commands do not
 * warn that "a killed run left work behind".
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/schema.js';
import { createAutoSsl } from '../../src/engine.js';
import { pendingRecovery } from '../../src/nginx/journal-recovery.js';
import type { Hooks } from '../../src/pipeline/hooks.js';
import { BINARIES } from '../../scripts/sandbox/rig.js';
import { makeSignedCertificate } from '../helpers/certs.js';
import { makeTree } from '../helpers/nginx-fixture.js';

const DAY = 86_400_000;

describe('a rollback that cannot merge', () => {
  it('is in the result (file and kept copy named), and no journal is left to nag later commands', async () => {
    const t = await makeTree('server {\n    listen 80;\n    server_name rb.test;\n    root /var/www/rb;\n}\n');
    let written = '';
    // another writer rewrites the line this run added, then the run fails: its edit cannot be merged out
    const meddler = {
      name: 'meddler',
      apply(hooks: Hooks) {
        hooks.validate.tapPromise({ name: 'meddler' }, async () => {
          const text = fs.readFileSync(t.site, 'latin1');
          written = text.replace(/ssl_certificate_key [^;]*;/, 'ssl_certificate_key /elsewhere/key.pem;');
          fs.writeFileSync(t.site, written, 'latin1');
          throw new Error('boom');
        });
      },
    };
    const stateDir = path.join(t.dir, 'state');
    const engine = await createAutoSsl(
      validateConfig({
        nginx: { binary: BINARIES.nginx, config: t.main, extraArgs: ['-p', t.dir, '-e', path.join(t.dir, 'error.log')], reloadCommand: ['/bin/true'] },
        certbot: { configDir: path.join(t.dir, 'le') },
        stateDir,
      }),
      { plugins: [meddler] },
    );
    const c = await makeSignedCertificate(['rb.test'], new Date(Date.now() - DAY), new Date(Date.now() + 30 * DAY));
    const result = await engine.installCertificate('rb.test', { certificate: c.chain, privateKey: c.key });
    await engine.close();
    expect(result.ok).toBe(false);
    expect(written).toContain('/elsewhere/key.pem');
    expect(result.error!.message).toContain("The rollback could not take this run's edit back out of");
    expect(result.error!.message).toContain(t.site);
    const kept = (result.error!.details.rollback as { kept: Array<{ file: string; backup: string }> }).kept;
    expect(kept).toEqual([{ file: t.site, backup: expect.stringContaining(path.join(stateDir, 'rollback-conflicts')) }]);
    expect(fs.readFileSync(kept[0]!.backup, 'latin1')).toBe('server {\n    listen 80;\n    server_name rb.test;\n    root /var/www/rb;\n}\n');
    expect(fs.readFileSync(t.site, 'latin1')).toBe(written); // the other writer's bytes are never overwritten
    const pending = await pendingRecovery(path.join(stateDir, 'journal'));
    expect(pending.restorable).toEqual([]);
    expect(pending.conflicts).toEqual([]);
  });
});
