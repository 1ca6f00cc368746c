/** The state store under concurrent writers: 8 processes recording outcomes at once lose no record. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { StateStore } from '../../src/state/store.js';

describe('state store', () => {
  it('8 processes recording outcomes at once lose no record', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-state-'));
    const module = path.resolve('dist/src/state/store.js');
    const script = `
      import { StateStore } from ${JSON.stringify(module)};
      const store = new StateStore(${JSON.stringify(dir)});
      const worker = Number(process.argv[1]);
      for (let i = 0; i < 250; i++) {
        store.recordAttempt({ kind: 'issue', domain: 'w' + worker + '.test', ok: i % 3 !== 0, code: i % 3 ? undefined : 'CERTBOT_FAILED', message: 'attempt ' + i });
        if (i % 5 === 0) store.recordValidationFailure('w' + worker + '.test', 'detail ' + i);
      }
      store.close();
    `;
    await Promise.all(Array.from({ length: 8 }, (_, w) => execa('node', ['--input-type=module', '-e', script, String(w)])));
    const store = new StateStore(dir);
    const attempts = store.attempts();
    expect(attempts).toHaveLength(8 * 250);
    for (let w = 0; w < 8; w++) {
      const mine = store.attempts(`w${w}.test`);
      expect(mine).toHaveLength(250);
      expect(mine.map((a) => a.message)).toEqual(Array.from({ length: 250 }, (_, i) => `attempt ${i}`)); // in order, none lost
      expect(store.validationFailures(`w${w}.test`, 0)).toHaveLength(50);
    }
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    store.close();
  });

  it('migrates a fresh database and opens an existing one', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-state-'));
    new StateStore(dir).close();
    const again = new StateStore(dir);
    expect(again.db.pragma('user_version', { simple: true })).toBe(4);
    expect(again.sites()).toEqual([]);
    expect(again.rememberSignature('a'.repeat(64), Date.now() + 1000)).toBe(true);
    expect(again.rememberSignature('a'.repeat(64), Date.now() + 1000)).toBe(false); // a replay
    // private: only root reads the database (nginx gets through the directory to acme-challenge/, never into it)
    expect(fs.statSync(path.join(dir, 'state.db')).mode & 0o077).toBe(0);
    again.close();
  });
});
