/**
 * A job a killed process left running is recovered by one process: two starting at once (the CLI and the agent,
 * two CLI runs) take the job's lock through the store's Locker, and the second finds it recovered already. The
 * store is the counting one (test/helpers/counting-store.mjs), plugged in through the config.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/schema.js';
import { createAutoSsl } from '../../src/engine.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { BINARIES } from '../../scripts/sandbox/rig.js';
import { makeTree } from '../helpers/nginx-fixture.js';

const STORE = path.resolve(import.meta.dirname, '../helpers/counting-store.mjs');

describe('recovering a killed job', () => {
  it('two processes starting at once: one recovers the job (its domain INTERRUPTED once, the job finished once)', async () => {
    const t = await makeTree('server {\n    listen 80;\n    server_name orphan.example.test;\n    root /var/www/o;\n}\n');
    const stateDir = path.join(t.dir, 'state');
    const seeded = new SqliteStore(stateDir);
    await seeded.jobs.create({ id: 'killed-job', kind: 'issue', source: 'cli', domains: ['orphan.example.test'] });
    seeded.db.prepare('UPDATE jobs SET owner = ? WHERE id = ?').run('999999999 -', 'killed-job'); // its process is gone
    await seeded.close();
    const countsFile = path.join(t.dir, 'store-calls.log');
    const config = validateConfig(
      {
        nginx: { binary: BINARIES.nginx, config: t.main, reloadCommand: ['/bin/true'] },
        certbot: { configDir: path.join(t.dir, 'le') },
        stateDir,
        challengeDir: path.join(t.dir, 'acme'),
        store: { module: STORE, options: { countsFile, delays: { 'jobs.orphaned': 300, 'jobs.get': 300 } } },
      },
      'test',
      t.dir,
    );
    // both see the job orphaned and running (the answers come 300 ms late) before either has recovered it
    const [a, b] = await Promise.all([createAutoSsl(config), createAutoSsl(config)]);
    try {
      await Promise.all([a.recover(), b.recover()]);
      const lines = fs.readFileSync(countsFile, 'utf8').split('\n');
      expect(lines.filter((l) => l === 'locker.lock job-killed-job')).toHaveLength(2); // both asked
      expect(lines.filter((l) => l === 'jobs.finish')).toHaveLength(2); // interrupted, then failed: by one of them
      expect(lines.filter((l) => l === 'jobs.updateDomain')).toHaveLength(1);
      expect(await a.job('killed-job')).toMatchObject({ state: 'failed', domains: [{ domain: 'orphan.example.test', state: 'failed', code: 'INTERRUPTED' }] });
    } finally {
      await a.close();
      await b.close();
    }
  });
});
