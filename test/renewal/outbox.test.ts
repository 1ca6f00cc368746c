/** status reports queued notifications only when a notify plugin exists to deliver them (none would wait forever). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createAutoSsl, validateConfig } from '../../src/index.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { makeTree } from '../helpers/nginx-fixture.js';
import { BINARIES } from '../../src/sandbox/rig.js';

describe('the notification outbox in status', () => {
  it('with no notify plugin nothing is reported queued; with one, the undelivered ones are', async () => {
    const t = await makeTree('server {\n    listen 80;\n    server_name ob.test;\n    root /var/www/ob;\n}\n');
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-outbox-'));
    const store = new SqliteStore(stateDir);
    await store.outbox.enqueue('renewal-failed:ob.test:1', 'renewal-failed', JSON.stringify({ kind: 'renewal-failed' }));
    await store.close();
    const base = { nginx: { binary: BINARIES.nginx, config: t.main }, certbot: { configDir: path.join(t.dir, 'le') }, stateDir };
    const plain = await createAutoSsl(validateConfig(base, 'test', t.dir));
    expect((await plain.status()).pendingNotifications).toBe(0);
    await plain.close();
    const plugin = path.join(t.dir, 'notify.mjs');
    fs.writeFileSync(plugin, "export default { name: 'n', apply(hooks) { hooks.notify.tapPromise('n', async () => {}); } };\n");
    const withPlugin = await createAutoSsl(validateConfig({ ...base, plugins: [plugin] }, 'test', t.dir));
    expect((await withPlugin.status()).pendingNotifications).toBe(1);
    await withPlugin.close();
  });
});
