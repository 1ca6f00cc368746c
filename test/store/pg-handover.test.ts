/**
 * A dead node's batch is taken by one live node (src/fleet/handover.ts, issue 24): nodes are processes of their
 * own, each in a UTS namespace of its own (another host name: presence is the PostgreSQL session, not the pid).
 * Node B records a job and is SIGKILLed; four live nodes race for the orphaned job at once: exactly one takes it
 * (the job names it as owner and in options.handedOver), the job is no longer orphaned while the taker lives, and
 * when the taker dies in its turn the job is orphaned again and the next node takes it.
 */
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgStore } from '../../src/store/postgres/index.js';
import { startPostgres, type PgCluster } from '../helpers/postgres.js';

const STORE = path.resolve('dist/src/store/postgres/index.js');
const HANDOVER = path.resolve('dist/src/fleet/handover.js');
let cluster: PgCluster;
let url: string;
const children: ResultPromise[] = [];

beforeAll(async () => {
  cluster = await startPostgres();
  url = await cluster.createDatabase('handover');
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await cluster?.stop();
});

/** A process on host `host` running `script` (argv[1]: the database); resolves when it printed `until`. */
function node(host: string, script: string, until: string): { child: ResultPromise; out: () => string; ready: Promise<void> } {
  const child = execa('unshare', ['--uts', 'sh', '-c', `hostname ${host} && exec node --input-type=module -e "$0" "$1"`, script, url], {
    reject: false,
    stdin: 'pipe',
  });
  children.push(child);
  let out = '';
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(until)) resolve();
    });
    void child.then((r) => reject(new Error(`${host} ended first: ${r.stderr}`)));
  });
  return { child, out: () => out, ready };
}

/** A live node: connected, says "ready", claims the orphaned job on "go", says took/not, then stays alive. */
const claimer = `
  import { PgStore } from ${JSON.stringify(STORE)};
  import { claimOrphan } from ${JSON.stringify(HANDOVER)};
  import os from 'node:os';
  const store = new PgStore(process.argv[1]);
  await store.open();
  await store.presence.ensure();
  process.stdout.write('ready\\n');
  process.stdin.once('data', async () => {
    const [job] = await store.jobs.orphaned();
    const took = job ? await claimOrphan(store, job, os.hostname()) : false;
    process.stdout.write((took ? 'took' : 'not') + '\\n');
  });
  setInterval(() => {}, 1000);
`;

describe('the handover of a dead node’s job', () => {
  it('four live nodes race for it: exactly one takes it; when that one dies the next takes it', async () => {
    const store = new PgStore(url);
    try {
      const b = node(
        'node-b',
        `import { PgStore } from ${JSON.stringify(STORE)};
         const store = new PgStore(process.argv[1]);
         await store.jobs.create({ id: 'job-b', kind: 'issue', source: 'cli', domains: ['one.test', 'two.test'] });
         process.stdout.write('created\\n');
         setInterval(() => {}, 1000);`,
        'created',
      );
      await b.ready;
      b.child.kill('SIGKILL');
      await expect.poll(async () => (await store.jobs.orphaned()).map((j) => j.id), { timeout: 10_000 }).toEqual(['job-b']);

      const racers = ['node-c1', 'node-c2', 'node-c3', 'node-c4'].map((h) => ({ host: h, ...node(h, claimer, 'ready') }));
      await Promise.all(racers.map((r) => r.ready));
      for (const r of racers) r.child.stdin!.write('go\n');
      await expect.poll(() => racers.filter((r) => /took|not/.test(r.out())).length, { timeout: 20_000 }).toBe(4);
      const winners = racers.filter((r) => r.out().includes('took'));
      expect(winners.map((w) => w.host)).toHaveLength(1);
      const winner = winners[0]!;
      const job = (await store.jobs.get('job-b'))!;
      expect(job.state).toBe('running');
      expect(job.owner).toMatch(new RegExp(` @${winner.host}$`));
      expect(job.options.handedOver).toEqual([expect.objectContaining({ node: winner.host, from: expect.stringMatching(/ @node-b$/) })]);
      // the taker lives: nobody else sees the job as orphaned
      expect(await store.jobs.orphaned()).toEqual([]);

      // the taker dies in its turn: the job is orphaned again, and another node takes it
      winner.child.kill('SIGKILL');
      await expect.poll(async () => (await store.jobs.orphaned()).map((j) => j.id), { timeout: 10_000 }).toEqual(['job-b']);
      const next = node('node-d', claimer, 'ready');
      await next.ready;
      next.child.stdin!.write('go\n');
      await expect.poll(() => next.out(), { timeout: 20_000 }).toContain('took');
      const after = (await store.jobs.get('job-b'))!;
      expect(after.owner).toMatch(/ @node-d$/);
      expect((after.options.handedOver as Array<{ node: string }>).map((h) => h.node)).toEqual([winner.host, 'node-d']);
      // a stale claim (from the first dead owner) changes nothing
      expect(await store.jobs.takeOver('job-b', job.owner, { node: 'late' })).toBe(false);
      expect(await store.jobs.takeOver('job-b', (job.options.handedOver as Array<{ from: string }>)[0]!.from, { node: 'late' })).toBe(false);
    } finally {
      await store.close();
    }
  }, 90_000);
});
