/**
 * The handover of a dead node's batch (src/fleet/handover.ts) on a store whose owner stamps are pids (SQLite): a
 * job whose process is gone is taken once, its unfinished domains (only those) run again under the same job id and
 * never forced; the job ends on the outcome of all its domains, the dead node's included; a refusal before anything
 * ran is said per domain; an unreachable store leaves the job to this node, tried again next round.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AutoSsl, IssueOptions } from '../../src/engine/types.js';
import { AutoSslError } from '../../src/errors.js';
import { JobHandover } from '../../src/fleet/handover.js';
import { ownerStamp } from '../../src/lock.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';

const settings = { node: 'n2', liveMs: 15_000, ackTimeoutMs: 1000, pollMs: 50 };
/** A process that is not running (pid_max is at most 2^22). */
const DEAD = '99999999 1';

let dir: string;
let store: SqliteStore;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-handover-'));
  store = new SqliteStore(dir);
});

afterEach(async () => {
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A job a dead process left running: `done`/`failed` are the outcomes it recorded before it died. */
async function deadJob(id: string, domains: string[], outcomes: Record<string, 'done' | 'failed' | 'issuing'>): Promise<void> {
  await store.jobs.create({ id, kind: 'issue', source: 'agent', domains, options: { force: true } });
  for (const [d, state] of Object.entries(outcomes)) await store.jobs.updateDomain(id, d, { state, finished: state !== 'issuing' });
  const db = new Database(path.join(dir, 'state.db'));
  db.prepare('UPDATE jobs SET owner = ? WHERE id = ?').run(DEAD, id);
  db.close();
}

/** An engine whose issue records its calls and settles each domain as `outcome` says. */
function engine(outcome: (domain: string, call: number) => 'done' | 'failed' | Error) {
  const calls: Array<{ domains: readonly string[]; options: IssueOptions }> = [];
  const fake = {
    async issue(domains: readonly string[], options: IssueOptions = {}) {
      calls.push({ domains, options });
      for (const d of domains) {
        const o = outcome(d, calls.length);
        if (o instanceof Error) throw o;
        await store.jobs.updateDomain(options.jobId!, d, { state: o, finished: true });
      }
      return [];
    },
  };
  return { calls, engine: fake as unknown as AutoSsl };
}

describe('the handover of a dead node’s batch', () => {
  it('runs only the unfinished domains, under the same job, never forced; the job ends on all its domains', async () => {
    await deadJob('j1', ['a.test', 'b.test', 'c.test', 'd.test'], { 'a.test': 'done', 'b.test': 'failed', 'c.test': 'issuing' });
    await deadJob('j2', ['e.test', 'f.test'], { 'e.test': 'done' });
    const { calls, engine: e } = engine(() => 'done');
    const lines: string[] = [];
    const handover = new JobHandover(
      e,
      () => store,
      settings,
      (m) => lines.push(m),
    );
    expect((await handover.round()).sort()).toEqual(['j1', 'j2']);
    const byJob = Object.fromEntries(calls.map((c) => [c.options.jobId, c]));
    expect(byJob.j1!.domains).toEqual(['c.test', 'd.test']);
    expect(byJob.j1!.options).toMatchObject({ jobId: 'j1', force: false, source: 'agent' });
    expect(byJob.j2!.domains).toEqual(['f.test']);
    const j1 = (await store.jobs.get('j1'))!;
    expect(j1.state).toBe('failed'); // b.test failed on the dead node
    expect(j1.owner).toBe(ownerStamp());
    expect(j1.options).toEqual({ force: true, handedOver: [{ node: 'n2', from: DEAD, at: expect.any(Number) }] });
    expect((await store.jobs.get('j2'))!.state).toBe('done');
    expect(lines).toContainEqual(expect.stringContaining('job j2: done, finished by n2'));
    // taken: no other round (this node's or another's) finds them again
    expect(
      await new JobHandover(
        e,
        () => store,
        settings,
        () => {},
      ).round(),
    ).toEqual([]);
    expect(calls).toHaveLength(2);
  });

  it('a refusal before anything ran fails each open domain with its code; the store unreachable leaves the job to this node, tried again', async () => {
    await deadJob('j3', ['*.w.test', 'g.test'], {});
    const refused = engine(() => new AutoSslError('WILDCARD_NEEDS_DNS01', 'needs DNS-01'));
    await new JobHandover(
      refused.engine,
      () => store,
      settings,
      () => {},
    ).round();
    const j3 = (await store.jobs.get('j3'))!;
    expect(j3.state).toBe('failed');
    expect(j3.domains.map((d) => [d.state, d.code])).toEqual([
      ['failed', 'WILDCARD_NEEDS_DNS01'],
      ['failed', 'WILDCARD_NEEDS_DNS01'],
    ]);
    expect(j3.domains[0]!.message).toContain('Node n2 took over the job');

    await deadJob('j4', ['h.test'], {});
    const flaky = engine((_, call) => (call === 1 ? new AutoSslError('STATE_UNAVAILABLE', 'database gone') : 'done'));
    const handover = new JobHandover(
      flaky.engine,
      () => store,
      settings,
      () => {},
    );
    await expect(handover.round()).rejects.toMatchObject({ code: 'STATE_UNAVAILABLE' });
    expect((await store.jobs.get('j4'))!.state).toBe('running'); // this node's now: nobody else takes it
    expect(await store.jobs.orphaned()).toEqual([]);
    expect(await handover.round()).toEqual(['j4']);
    expect((await store.jobs.get('j4'))!.state).toBe('done');
  });
});
