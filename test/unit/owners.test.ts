/**
 * Who owns a lock, a journal or a private order: a zombie (killed, not yet reaped by a late init) is dead, and a
 * private order directory another run is setting up right now (no owner file yet) is not removed from under it.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ownerAlive, processStartTime } from '../../src/lock.js';
import { recoverPrivateOrders } from '../../src/certbot/orders.js';
import type { CertbotSettings } from '../../src/certbot/certbot.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-owners-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('owners', () => {
  it('a zombie process is not alive, though kill(pid, 0) still answers for it', async () => {
    // sh starts a short child, then becomes `sleep 5`, which never reaps it: the child stays a zombie
    const sh = spawn('/bin/sh', ['-c', 'sleep 0.2 & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const pid = Number(await new Promise<string>((resolve) => sh.stdout.once('data', (d: Buffer) => resolve(d.toString()))));
      const stamp = `${pid} ${processStartTime(pid)}`;
      expect(ownerAlive(stamp)).toBe(true);
      await expect.poll(() => fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]![0], { timeout: 5000 }).toBe('Z');
      expect(() => process.kill(pid, 0)).not.toThrow();
      expect(ownerAlive(stamp)).toBe(false);
    } finally {
      sh.kill('SIGKILL');
    }
  });

  it('recovery leaves a private order being set up (no owner file yet) and removes an old ownerless one', async () => {
    const stateDir = path.join(dir, 'state');
    const fresh = path.join(stateDir, 'orders', 'new.test-aaaaaa');
    const old = path.join(stateDir, 'orders', 'old.test-bbbbbb');
    for (const d of [fresh, old]) fs.mkdirSync(path.join(d, 'config'), { recursive: true });
    const longAgo = new Date(Date.now() - 3_600_000);
    fs.utimesSync(old, longAgo, longAgo);
    const main = {
      configDir: path.join(dir, 'le'),
      workDir: path.join(dir, 'work'),
      logsDir: path.join(dir, 'logs'),
      timeoutMs: 1000,
    } as unknown as CertbotSettings;
    expect(await recoverPrivateOrders(main, stateDir)).toEqual([]);
    expect(fs.existsSync(fresh)).toBe(true);
    expect(fs.existsSync(old)).toBe(false);
  });
});
