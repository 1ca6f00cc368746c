/**
 * The fleet's Locker: PostgreSQL session advisory locks. A holder SIGKILLed loses its lock with its connection, so
 * another node takes it at once (no stale lock file to wait out); processes contending for one key hold it one at a
 * time; a wait that runs out is LOCK_TIMEOUT naming the holder; any key (Unicode, bidi controls, "..") is a lock.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgStore } from '../../src/store/postgres/index.js';
import { PgLocker } from '../../src/store/postgres/locker.js';
import { PG_PASSWORD, startPostgres, type PgCluster } from '../helpers/postgres.js';

const LOCKER = path.resolve('dist/src/store/postgres/locker.js');
let cluster: PgCluster;
let url: string;

beforeAll(async () => {
  cluster = await startPostgres();
  url = await cluster.createDatabase('locks');
});

afterAll(async () => {
  await cluster?.stop();
});

/** A node (a process of its own) that takes `key` and says "held", then holds it until killed. */
function holder(key: string) {
  const script = `
    import { PgLocker } from ${JSON.stringify(LOCKER)};
    await new PgLocker(process.argv[1]).lock(process.argv[2], 60000, 'a test lock');
    process.stdout.write('held\\n');
    setInterval(() => {}, 1000);
  `;
  const child = execa('node', ['--input-type=module', '-e', script, url, key], { reject: false });
  const held = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('held') && resolve());
    void child.then((r) => reject(new Error(`the holder ended first: ${r.stderr}`)));
  });
  return { child, held };
}

describe('PgLocker (PostgreSQL advisory locks)', () => {
  it('a holder SIGKILLed loses the lock with its connection: another node takes it promptly', async () => {
    const key = 'order-killed.test';
    const node1 = holder(key);
    await node1.held;
    const locker = new PgLocker(url);
    // held by node 1: a short wait runs out, naming the holder's session
    await expect(locker.lock(key, 300, 'The order of killed.test')).rejects.toMatchObject({
      code: 'LOCK_TIMEOUT',
      message: expect.stringMatching(/^The order of killed\.test is locked by "autossl .* \d+.*"/),
    });
    const started = Date.now();
    const taking = locker.lock(key, 30_000, 'The order of killed.test');
    node1.child.kill('SIGKILL');
    const held = await taking;
    expect(Date.now() - started).toBeLessThan(5_000);
    await held.release();
  });

  it('three processes contending for one key hold it one at a time; another key does not wait', async () => {
    const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-pglock-')), 'log');
    const script = `
      import fs from 'node:fs';
      import { PgLocker } from ${JSON.stringify(LOCKER)};
      const locker = new PgLocker(process.argv[1]);
      for (let i = 0; i < 3; i++) {
        const held = await locker.lock('order-shared.test', 60000, 'a test lock');
        fs.appendFileSync(process.argv[2], 'in ' + process.pid + '\\n');
        await new Promise((r) => setTimeout(r, 150));
        fs.appendFileSync(process.argv[2], 'out ' + process.pid + '\\n');
        await held.release();
      }
    `;
    const other = new PgLocker(url);
    const runs = Array.from({ length: 3 }, () => execa('node', ['--input-type=module', '-e', script, url, log], { reject: false }));
    await expect.poll(() => fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('in '), { timeout: 30_000 }).toBe(true);
    const started = Date.now();
    await (await other.lock('order-other.test', 5_000, 'another lock')).release();
    expect(Date.now() - started).toBeLessThan(2_000);
    for (const r of await Promise.all(runs)) expect(r.exitCode, r.stderr).toBe(0);
    const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(18);
    for (let i = 0; i < lines.length; i += 2) {
      const pid = lines[i]!.split(' ')[1];
      expect([lines[i], lines[i + 1]]).toEqual([`in ${pid}`, `out ${pid}`]); // nobody entered while another held it
    }
  });

  it('in one process: the second taker of a key waits for the first; hostile keys are locks like any', async () => {
    const locker = new PgLocker(url);
    for (const key of ['../../escape', 'order-\u202eevil\u0000.test', 'order-ｅｘａｍｐｌｅ.test', 'x'.repeat(5000)]) {
      const first = await locker.lock(key, 5_000, 'a test lock');
      await expect(locker.lock(key, 200, 'a test lock')).rejects.toMatchObject({ code: 'LOCK_TIMEOUT' });
      const second = locker.lock(key, 10_000, 'a test lock');
      await first.release();
      await (await second).release();
    }
    expect(locker.location).not.toContain(PG_PASSWORD);
  });
});

describe('presence: which process of the fleet is alive', () => {
  it('a job another node runs is not orphaned while that node lives, and is once it is SIGKILLed', async () => {
    const store = new PgStore(url);
    try {
      // node B: another host (a UTS namespace of its own), recording a job and staying alive
      const script = `
        import { PgStore } from ${JSON.stringify(path.resolve('dist/src/store/postgres/index.js'))};
        const store = new PgStore(process.argv[1]);
        await store.jobs.create({ id: 'job-node-b', kind: 'issue', source: 'agent', domains: ['b.test'] });
        process.stdout.write('created\\n');
        setInterval(() => {}, 1000);
      `;
      const child = execa('unshare', ['--uts', 'sh', '-c', 'hostname node-b && exec node --input-type=module -e "$0" "$1"', script, url], { reject: false });
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (d: Buffer) => d.toString().includes('created') && resolve());
        void child.then((r) => reject(new Error(`node B ended first: ${r.stderr}`)));
      });
      expect((await store.jobs.get('job-node-b'))!.owner).toMatch(/^\d+ \S+ @node-b$/);
      expect((await store.jobs.orphaned()).map((j) => j.id)).toEqual([]); // its pid means nothing here: its session says alive
      child.kill('SIGKILL');
      await expect.poll(async () => (await store.jobs.orphaned()).map((j) => j.id), { timeout: 10_000 }).toEqual(['job-node-b']);
    } finally {
      await store.close();
    }
  });
});
