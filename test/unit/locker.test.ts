/** The built-in Locker: a lock file per key under its directory, whatever the key; holders of one key take turns. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileLocker } from '../../src/store/locker.js';

describe('FileLocker', () => {
  it('a hostile key (slashes, "..", Unicode, bidi controls) stays one file inside the lock directory', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-locker-'));
    const dir = path.join(root, 'locks');
    const locker = new FileLocker(dir);
    for (const key of ['../../escape', '/etc/passwd', '..', 'order-\u202eevil\u0000.test', 'order-ｅｘａｍｐｌｅ.test']) {
      const held = await locker.lock(key, 1000, 'a test lock');
      expect(fs.readdirSync(root)).toEqual(['locks']); // nothing beside the directory
      const files = fs.readdirSync(dir);
      expect(files).toHaveLength(1);
      expect(files[0]).toMatch(/^[A-Za-z0-9_][A-Za-z0-9._-]*\.lock$/);
      await held.release();
      expect(fs.readdirSync(dir)).toEqual([]);
    }
  });

  it('the second holder of a key waits for the first to release it; another key does not wait', async () => {
    const locker = new FileLocker(path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-locker-')), 'locks'));
    const order: string[] = [];
    const first = await locker.lock('order-a.test', 5000, 'a test lock');
    const second = locker.lock('order-a.test', 5000, 'a test lock').then((h) => (order.push('second'), h));
    const other = await locker.lock('order-b.test', 5000, 'a test lock');
    order.push('other');
    await other.release();
    order.push('first released');
    await first.release();
    await (await second).release();
    expect(order).toEqual(['other', 'first released', 'second']);
  });
});
