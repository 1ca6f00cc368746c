/** The state store under concurrent writers: 8 processes recording outcomes at once lose no record. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { MIGRATIONS } from '../../src/store/sqlite/open.js';

describe('state store', () => {
  it('8 processes recording outcomes at once lose no record', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-state-'));
    const module = path.resolve('dist/src/store/sqlite/index.js');
    const script = `
      import { SqliteStore } from ${JSON.stringify(module)};
      const store = new SqliteStore(${JSON.stringify(dir)});
      const worker = Number(process.argv[1]);
      for (let i = 0; i < 250; i++) {
        await store.attempts.record({ kind: 'issue', domain: 'w' + worker + '.test', ok: i % 3 !== 0, code: i % 3 ? undefined : 'CERTBOT_FAILED', message: 'attempt ' + i });
        if (i % 5 === 0) await store.attempts.recordValidationFailure('w' + worker + '.test', 'detail ' + i);
      }
      await store.close();
    `;
    await Promise.all(Array.from({ length: 8 }, (_, w) => execa('node', ['--input-type=module', '-e', script, String(w)])));
    const store = new SqliteStore(dir);
    const attempts = await store.attempts.list();
    expect(attempts).toHaveLength(8 * 250);
    for (let w = 0; w < 8; w++) {
      const mine = await store.attempts.list(`w${w}.test`);
      expect(mine).toHaveLength(250);
      expect(mine.map((a) => a.message)).toEqual(Array.from({ length: 250 }, (_, i) => `attempt ${i}`)); // in order, none lost
      expect(await store.attempts.validationFailures(`w${w}.test`, 0)).toHaveLength(50);
    }
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    await store.close();
  });

  it('migrates a fresh database and opens an existing one', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-state-'));
    await new SqliteStore(dir).close();
    const again = new SqliteStore(dir);
    expect(again.db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    expect(await again.sites.list()).toEqual([]);
    expect(await again.replay.remember('a'.repeat(64), Date.now() + 1000)).toBe(true);
    expect(await again.replay.remember('a'.repeat(64), Date.now() + 1000)).toBe(false); // a replay
    // the CA's ARI window per lineage, replaced as a whole when asked again
    const w = {
      certId: 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE',
      serial: '87654321',
      start: 1000,
      end: 2000,
      explanationUrl: null,
      renewAt: 1500,
      fetchedAt: 900,
      nextFetchAt: 22_500_900,
      error: null,
    };
    await again.ariWindows.set('a.test', w);
    expect(await again.ariWindows.get('a.test')).toEqual(w);
    await again.ariWindows.set('a.test', { ...w, start: null, end: null, renewAt: null, error: 'HTTP 503' });
    expect(await again.ariWindows.list()).toEqual([{ lineage: 'a.test', ...w, start: null, end: null, renewAt: null, error: 'HTTP 503' }]);
    await again.ariWindows.delete('a.test');
    expect(await again.ariWindows.get('a.test')).toBeNull();
    // private: only root reads the database (nginx gets through the directory to acme-challenge/, never into it)
    expect(fs.statSync(path.join(dir, 'state.db')).mode & 0o077).toBe(0);
    await again.close();
  });

  it('moves what the untyped kv table held into its typed tables, and drops kv', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-state-'));
    const old = new Database(path.join(dir, 'state.db'));
    for (const m of MIGRATIONS.slice(0, 4)) old.exec(m);
    old.pragma('user_version = 4');
    const put = old.prepare('INSERT INTO kv (key, value, at) VALUES (?, ?, 1000)');
    put.run('ratelimit:https://ca.test/dir', JSON.stringify({ until: 4_000_000_000_000, message: 'too many' }));
    put.run(
      'renew:run-1',
      JSON.stringify([
        { name: 'a.test', due: true, serial: '0a' },
        { name: 'b.test', due: false, serial: null },
      ]),
    );
    put.run('dns-progress:w.test', JSON.stringify({ phase: 'le_verify', message: 'visible', at: 2000 }));
    put.run('revocation:a.test', JSON.stringify({ serial: '0a', state: 'revoked', at: 3000, source: 'crl' }));
    put.run('agent:requeued:job-1', '2026-01-01T00:00:00.000Z');
    old.close();
    const store = new SqliteStore(dir);
    try {
      expect(store.db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
      expect(store.db.prepare("SELECT name FROM sqlite_master WHERE name = 'kv'").all()).toEqual([]);
      expect(await store.rateLimits.get('https://ca.test/dir')).toEqual({ until: 4_000_000_000_000, message: 'too many' });
      expect(await store.renewRuns.take('run-1')).toEqual([
        { name: 'a.test', due: true, serial: '0a' },
        { name: 'b.test', due: false, serial: null },
      ]);
      expect(await store.renewRuns.take('run-1')).toEqual([]); // taken once
      expect(await store.dnsProgress.get('w.test')).toEqual({ phase: 'le_verify', message: 'visible', at: 2000 });
      expect(await store.certificates.revocation('a.test')).toEqual({ serial: '0a', state: 'revoked', at: 3000, source: 'crl' });
      expect(await store.jobs.markRequeued('job-1')).toBe(false); // queued again before the upgrade: not twice
      expect(await store.jobs.markRequeued('job-2')).toBe(true);
    } finally {
      await store.close();
    }
  });
});
