/**
 * The Store contract, run against every built-in backend (SQLite, and PostgreSQL on a private cluster this file
 * starts): the same calls give the same answers, so the engine cannot tell which one it runs on. Each test opens a
 * store of its own (a fresh state directory, a fresh database).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgStore } from '../../src/store/postgres/index.js';
import { MIGRATIONS } from '../../src/store/postgres/migrations.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/store.js';
import { startPostgres, type PgCluster } from '../helpers/postgres.js';

let cluster: PgCluster;
let dbCount = 0;

beforeAll(async () => {
  cluster = await startPostgres();
});

afterAll(async () => {
  await cluster?.stop();
});

interface Backend {
  name: string;
  /** A new, empty store, and how a child process opens the same one (the module and constructor argument). */
  fresh(): Promise<{ open: () => Store; module: string; className: string; arg: string }>;
}

const backends: Backend[] = [
  {
    name: 'sqlite',
    async fresh() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-contract-'));
      return { open: () => new SqliteStore(dir), module: path.resolve('dist/src/store/sqlite/index.js'), className: 'SqliteStore', arg: dir };
    },
  },
  {
    name: 'postgres',
    async fresh() {
      const url = await cluster.createDatabase(`contract_${process.pid}_${++dbCount}`);
      return { open: () => new PgStore(url), module: path.resolve('dist/src/store/postgres/index.js'), className: 'PgStore', arg: url };
    },
  },
];

describe.each(backends)('the Store contract on $name', (backend) => {
  async function withStore(fn: (store: Store) => Promise<void>): Promise<void> {
    const store = (await backend.fresh()).open();
    try {
      await fn(store);
    } finally {
      await store.close();
    }
  }

  it("8 processes recording outcomes at once lose no record, each one's in order", async () => {
    const fresh = await backend.fresh();
    const script = `
      import { ${fresh.className} as S } from ${JSON.stringify(fresh.module)};
      const store = new S(process.argv[2]);
      const worker = Number(process.argv[1]);
      for (let i = 0; i < 100; i++) {
        await store.attempts.record({ kind: 'issue', domain: 'w' + worker + '.test', ok: i % 3 !== 0, code: i % 3 ? undefined : 'CERTBOT_FAILED', message: 'attempt ' + i });
        if (i % 5 === 0) await store.attempts.recordValidationFailure('w' + worker + '.test', 'detail ' + i);
      }
      await store.close();
    `;
    await Promise.all(Array.from({ length: 8 }, (_, w) => execa('node', ['--input-type=module', '-e', script, String(w), fresh.arg])));
    const store = fresh.open();
    try {
      expect(await store.attempts.list()).toHaveLength(8 * 100);
      for (let w = 0; w < 8; w++) {
        const mine = await store.attempts.list(`w${w}.test`);
        expect(mine.map((a) => a.message)).toEqual(Array.from({ length: 100 }, (_, i) => `attempt ${i}`));
        expect(mine[0]).toMatchObject({ kind: 'issue', ok: false, code: 'CERTBOT_FAILED' });
        expect(mine[1]).toMatchObject({ ok: true, code: undefined });
        expect(await store.attempts.validationFailures(`w${w}.test`, 0)).toHaveLength(20);
      }
    } finally {
      await store.close();
    }
  });

  it('jobs: created, extended, updated, finished, listed newest first; requeued once', async () => {
    await withStore(async (store) => {
      await store.jobs.create({ id: 'job-1', kind: 'issue', source: 'cli', domains: ['a.test', 'b.test'], options: { force: true } });
      await store.jobs.create({ id: 'job-1', kind: 'issue', source: 'cli', domains: ['b.test', 'c.test'] }); // adds c only
      await store.jobs.updateDomain('job-1', 'a.test', { state: 'issuing', acme: [{ type: 'urn:x' }], stages: [{ stage: 'plan', ms: 3 }] });
      await store.jobs.updateDomain('job-1', 'a.test', { state: 'failed', code: 'CERTBOT_FAILED', message: 'x'.repeat(5000), finished: true });
      await store.jobs.create({ id: 'job-2', kind: 'issue', source: 'agent', domains: ['d.test'] });
      await store.jobs.finish('job-1', 'failed');
      const job = (await store.jobs.get('job-1'))!;
      expect(job).toMatchObject({ id: 'job-1', kind: 'issue', source: 'cli', state: 'failed', options: { force: true } });
      expect(job.finishedAt).toBeTypeOf('number');
      expect(job.domains.map((d) => [d.domain, d.state])).toEqual([
        ['a.test', 'failed'],
        ['b.test', 'queued'],
        ['c.test', 'queued'],
      ]);
      const a = job.domains[0]!;
      expect(a).toMatchObject({ code: 'CERTBOT_FAILED', acme: [{ type: 'urn:x' }], stages: [{ stage: 'plan', ms: 3 }] });
      expect(a.message).toHaveLength(4000);
      expect(a.startedAt).toBeTypeOf('number');
      expect(a.finishedAt).toBeTypeOf('number');
      expect(job.domains[1]).toMatchObject({ code: null, message: null, acme: null, lineage: null, stages: [], startedAt: null, finishedAt: null });
      expect((await store.jobs.list()).map((j) => j.id)).toEqual(['job-2', 'job-1']);
      expect((await store.jobs.list(1)).map((j) => j.id)).toEqual(['job-2']);
      expect(await store.jobs.get('nope')).toBeNull();
      expect(await store.jobs.orphaned()).toEqual([]); // job-2's owner (this process) is alive
      expect(await store.jobs.markRequeued('job-2')).toBe(true);
      expect(await store.jobs.markRequeued('job-2')).toBe(false);
      // a handover: a compare-and-set on the owner the taker found; its note kept beside the job's own options
      const owner = (await store.jobs.get('job-2'))!.owner;
      expect(await store.jobs.takeOver('job-2', 'someone else', { node: 'x' })).toBe(false);
      expect(await store.jobs.takeOver('job-1', job.owner, { node: 'x' })).toBe(false); // no longer running
      expect(await store.jobs.takeOver('job-2', owner, { node: 'n2', from: owner })).toBe(true);
      await store.jobs.create({ id: 'job-3', kind: 'issue', source: 'cli', domains: ['e.test'], options: { force: false } });
      const stamp = (await store.jobs.get('job-3'))!.owner;
      expect(await store.jobs.takeOver('job-3', stamp, { node: 'n2' })).toBe(true);
      expect(await store.jobs.takeOver('job-3', stamp, { node: 'n3' })).toBe(true); // the same stamp: this process took it
      expect((await store.jobs.get('job-3'))!.options).toEqual({ force: false, handedOver: [{ node: 'n2' }, { node: 'n3' }] });
      expect((await store.jobs.get('job-2'))!.options).toEqual({ handedOver: [{ node: 'n2', from: owner }] });
    });
  });

  it('certificates: upserted by a scan, attempts keep their last-outcome columns, revocations, deletes', async () => {
    await withStore(async (store) => {
      const facts = (lineage: string, serial: string) => ({
        lineage,
        names: [lineage, `www.${lineage}`],
        certPath: `/etc/le/live/${lineage}/cert.pem`,
        fileKey: '1:2:3:4',
        notBefore: 1_700_000_000_000,
        notAfter: 1_900_000_000_000,
        serial,
        issuer: 'CN=Pebble',
        keyType: 'ecdsa',
        vhosts: ['/etc/nginx/x.conf'],
      });
      await store.certificates.upsert([facts('b.test', '0b'), facts('a.test', '0a'), facts('a.test', '0a2')]);
      expect((await store.certificates.list()).map((c) => [c.lineage, c.serial])).toEqual([
        ['a.test', '0a2'],
        ['b.test', '0b'],
      ]);
      await store.attempts.record({ kind: 'renew', domain: 'a.test', lineage: 'a.test', ok: false, code: 'CERTBOT_FAILED', message: 'no' }, 5000);
      await store.attempts.record({ kind: 'renew', domain: 'a.test', lineage: 'a.test', ok: false, code: 'CERTBOT_FAILED', message: 'no' }, 6000);
      expect(await store.certificates.get('a.test')).toMatchObject({
        names: ['a.test', 'www.a.test'],
        notAfter: 1_900_000_000_000,
        lastOutcome: 'failed',
        lastErrorCode: 'CERTBOT_FAILED',
        lastErrorAt: 6000,
        consecutiveFailures: 2,
        renewedAt: null,
      });
      await store.attempts.record({ kind: 'renew', domain: 'a.test', lineage: 'a.test', ok: true }, 7000);
      expect(await store.certificates.get('a.test')).toMatchObject({
        lastOutcome: 'ok',
        lastAttemptAt: 7000,
        lastAttemptKind: 'renew',
        consecutiveFailures: 0,
        renewedAt: 7000,
      });
      await store.attempts.record({ kind: 'issue', domain: 'z.test', lineage: 'z.test', ok: true }, 8000); // no such row: only the attempt
      expect(await store.attempts.last('z.test')).toEqual({
        at: 8000,
        kind: 'issue',
        domain: 'z.test',
        lineage: 'z.test',
        ok: true,
        code: undefined,
        message: undefined,
      });
      expect(await store.attempts.last('none.test')).toBeNull();
      expect(await store.attempts.validationFailures('a.test', 0)).toEqual([]);
      await store.attempts.recordValidationFailure('a.test', 'old', 1000);
      await store.attempts.recordValidationFailure('a.test', 'new', 3000);
      expect(await store.attempts.validationFailures('a.test', 2000)).toEqual([{ at: 3000, detail: 'new' }]);
      expect(await store.certificates.revocation('a.test')).toBeNull();
      await store.certificates.setRevocation('a.test', { serial: '0a', state: 'good', at: 1 });
      await store.certificates.setRevocation('a.test', { serial: '0a', state: 'revoked', at: 2, source: 'crl' });
      expect(await store.certificates.revocation('a.test')).toEqual({ serial: '0a', state: 'revoked', at: 2, source: 'crl' });
      await store.certificates.upsert([facts('c.test', '0c')]);
      await store.certificates.deleteExcept(['a.test', 'c.test']);
      expect((await store.certificates.list()).map((c) => c.lineage)).toEqual(['a.test', 'c.test']);
      await store.certificates.delete('a.test');
      expect(await store.certificates.get('a.test')).toBeNull();
      await store.certificates.deleteExcept([]);
      expect(await store.certificates.list()).toEqual([]);
    });
  });

  it('the outbox: one notification per key, claimed by one deliverer, retried, delivered once per tap', async () => {
    await withStore(async (store) => {
      expect(await store.outbox.enqueue('k1', 'expiring', '{"a":1}', 1000)).toBe(true);
      expect(await store.outbox.enqueue('k1', 'expiring', '{"a":2}', 1000)).toBe(false);
      expect(await store.outbox.enqueue('k2', 'failed', '{}', 5000)).toBe(true);
      const claimed = await store.outbox.claim(2000);
      expect(claimed).toEqual([{ id: claimed[0]!.id, key: 'k1', kind: 'expiring', payload: '{"a":1}', attempts: 0, deliveredTo: [] }]);
      await store.outbox.markDeliveredTo(claimed[0]!.id, 'webhook');
      await store.outbox.markDeliveredTo(claimed[0]!.id, 'webhook');
      await store.outbox.settle(claimed[0]!.id, { delivered: false, error: 'HTTP 500', retryAt: 3000 });
      expect(await store.outbox.claim(2500)).toEqual([]);
      expect((await store.outbox.claim(6000)).map((r) => [r.key, r.attempts, r.deliveredTo])).toEqual([
        ['k1', 1, ['webhook']],
        ['k2', 0, []],
      ]);
      await store.outbox.settle(claimed[0]!.id, { delivered: true });
      const list = await store.outbox.list();
      expect(list.map((r) => [r.key, r.attempts, r.lastError, r.deliveredAt === null])).toEqual([
        ['k1', 2, null, false],
        ['k2', 0, null, true],
      ]);
      expect(list[1]!.nextAttemptAt).toBe(5000);
    });
  });

  it('undo steps: added, listed newest first, claimed by one caller, finished or put back', async () => {
    await withStore(async (store) => {
      const a = await store.undo.add({ runId: 'r1', plugin: 'cf', kind: 'dns-delete', payload: '{"id":1}', when: 'always' });
      const b = await store.undo.add({ runId: 'r1', plugin: 'cf', kind: 'dns-delete', payload: '{"id":2}', when: 'failure', owner: '1 1' });
      await store.undo.add({ runId: 'r2', plugin: 'cf', kind: 'x', payload: '{}', when: 'always' });
      expect(b).toBeGreaterThan(a);
      expect((await store.undo.list({ runId: 'r1' })).map((s) => [s.id, s.when, s.state, s.owner])).toEqual([
        [b, 'failure', 'pending', '1 1'],
        [a, 'always', 'pending', expect.stringMatching(new RegExp(`^${process.pid} `))],
      ]);
      expect(await store.undo.claim(a)).toBe(true);
      expect(await store.undo.claim(a)).toBe(true); // its own running step: this process may take it again
      expect(await store.undo.list({ state: 'pending' })).toHaveLength(2);
      expect(await store.undo.list({ state: 'open' })).toHaveLength(3);
      await store.undo.finish(a, 'timeout');
      expect((await store.undo.list({ runId: 'r1' })).find((s) => s.id === a)).toMatchObject({ state: 'pending', lastError: 'timeout', attempts: 2 });
      await store.undo.finish(a);
      expect(await store.undo.claim(a)).toBe(false);
      expect(await store.undo.claim(999_999)).toBe(false);
      expect(await store.undo.list({ state: 'open' })).toHaveLength(2);
    });
  });

  it('sites, replays, rate limits, renew runs, DNS-01 progress, ARI windows, back-offs', async () => {
    await withStore(async (store) => {
      await store.sites.upsert('b.test', { domain: 'b.test', documentRoot: '/srv/b' }, 'agent');
      await store.sites.upsert('a.test', { domain: 'a.test' }, 'agent');
      await store.sites.upsert('a.test', { domain: 'a.test', aliases: ['ü.test'] }, 'api');
      expect(await store.sites.list()).toEqual([
        { domain: 'a.test', site: { domain: 'a.test', aliases: ['ü.test'] }, source: 'api' },
        { domain: 'b.test', site: { domain: 'b.test', documentRoot: '/srv/b' }, source: 'agent' },
      ]);
      await store.sites.delete('b.test');
      expect((await store.sites.list()).map((s) => s.domain)).toEqual(['a.test']);

      expect(await store.replay.remember('sig-1', 2000, 1000)).toBe(true);
      expect(await store.replay.remember('sig-1', 2000, 1500)).toBe(false);
      expect(await store.replay.remember('sig-1', 9000, 3000)).toBe(true); // expired: forgotten

      expect(await store.rateLimits.get('letsencrypt')).toBeNull();
      await store.rateLimits.set('letsencrypt', { until: 4_000_000_000_000, message: 'too many' });
      await store.rateLimits.set('letsencrypt', { until: 4_000_000_000_001, message: 'still' });
      expect(await store.rateLimits.get('letsencrypt')).toEqual({ until: 4_000_000_000_001, message: 'still' });

      await store.renewRuns.put('run-1', [
        { name: 'b.test', due: true, serial: '0b' },
        { name: 'a.test', serial: null },
        { name: 'c.test', due: false, serial: '0c' },
      ]);
      expect(await store.renewRuns.take('run-1')).toEqual([
        { name: 'b.test', due: true, serial: '0b' },
        { name: 'a.test', serial: null },
        { name: 'c.test', due: false, serial: '0c' },
      ]);
      expect(await store.renewRuns.take('run-1')).toEqual([]);

      expect(await store.dnsProgress.get('w.test')).toBeNull();
      await store.dnsProgress.set('w.test', { phase: 'dns_propagation', message: 'waiting', at: 1 });
      await store.dnsProgress.set('w.test', { phase: 'le_verify', message: 'visible', at: 2 });
      expect(await store.dnsProgress.get('w.test')).toEqual({ phase: 'le_verify', message: 'visible', at: 2 });

      expect(await store.ariWindows.get('a.test')).toBeNull();
      const w = {
        certId: 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE',
        serial: '0a',
        start: 1000,
        end: 2000,
        explanationUrl: null,
        renewAt: 1500,
        fetchedAt: 900,
        nextFetchAt: 999_000,
        error: null,
      };
      await store.ariWindows.set('b.test', { ...w, start: null, end: null, renewAt: null, error: 'no renewalInfo' });
      await store.ariWindows.set('a.test', { ...w, renewAt: 1400 });
      await store.ariWindows.set('a.test', w);
      expect(await store.ariWindows.get('a.test')).toEqual(w);
      expect((await store.ariWindows.list()).map((r) => [r.lineage, r.error])).toEqual([
        ['a.test', null],
        ['b.test', 'no renewalInfo'],
      ]);
      await store.ariWindows.delete('a.test');
      expect(await store.ariWindows.get('a.test')).toBeNull();

      expect(await store.backoff.get('letsencrypt', 'a.test')).toBeNull();
      const b = { failures: 3, lastError: 'connection: refused', lastAt: 4_000_000_000_000, until: 4_000_003_600_000, unpauseUrl: null };
      await store.backoff.set('letsencrypt', 'b.test', { ...b, unpauseUrl: 'https://ca.test/unpause?jwt=x' });
      await store.backoff.set('letsencrypt', 'a.test', { ...b, failures: 2, until: null });
      await store.backoff.set('letsencrypt', 'a.test', b);
      expect(await store.backoff.get('letsencrypt', 'a.test')).toEqual(b);
      expect((await store.backoff.list()).map((r) => [r.name, r.unpauseUrl])).toEqual([
        ['a.test', null],
        ['b.test', 'https://ca.test/unpause?jwt=x'],
      ]);
      await store.backoff.clear('letsencrypt', 'a.test');
      expect(await store.backoff.get('letsencrypt', 'a.test')).toBeNull();
    });
  });

  it("fleet records: tokens with their acks, the newer of two lineages, each node's served serial; back-off records", async () => {
    const fresh = await backend.fresh();
    const store = fresh.open();
    const other = fresh.open(); // another process (another node) on the same store
    try {
      const row = (serial: string, notAfter: number, at = 1) => ({
        id: 'a.test',
        names: ['a.test', 'www.a.test'],
        serial,
        notAfter,
        cert: 'C',
        chain: 'CH',
        fullchain: 'FC',
        key: 'K',
        node: 'n1',
        at,
      });
      await store.fleet!.publishChallenge({ token: 'tok', content: 'tok.abc', node: 'n1', at: 1 });
      await other.fleet!.ack('tok', 'n2');
      await other.fleet!.ack('tok', 'n2');
      await other.fleet!.ack('nope', 'n2'); // a withdrawn (or never published) token is never acknowledged
      expect(await store.fleet!.challenges()).toEqual([{ token: 'tok', content: 'tok.abc', node: 'n1', at: 1 }]);
      expect(await store.fleet!.acks('tok')).toEqual(['n2']);
      expect(await store.fleet!.acks('nope')).toEqual([]);
      await store.fleet!.withdrawChallenge('tok');
      expect(await store.fleet!.challenges()).toEqual([]);
      expect(await store.fleet!.acks('tok')).toEqual([]);
      await store.fleet!.putLineage(row('0A', 2000));
      await other.fleet!.putLineage(row('0B', 1000, 5)); // an older certificate: not kept
      expect(await store.fleet!.lineageSerials()).toEqual([{ id: 'a.test', serial: '0A' }]);
      await other.fleet!.putLineage(row('0C', 3000, 6));
      expect(await store.fleet!.lineage('a.test')).toEqual({ ...row('0C', 3000, 6) });
      expect(await store.fleet!.lineage('b.test')).toBeNull();
      await store.fleet!.heartbeat('n2', 10);
      await store.fleet!.heartbeat('n1', 5);
      await store.fleet!.heartbeat('n1', 20);
      expect(await store.fleet!.nodes()).toEqual([
        { node: 'n1', seenAt: 20 },
        { node: 'n2', seenAt: 10 },
      ]);
      await store.fleet!.reportServed([
        { node: 'n2', lineage: 'a.test', serial: '0A', error: null, at: 1 },
        { node: 'n1', lineage: 'a.test', serial: null, error: 'refused', at: 1 },
      ]);
      await other.fleet!.reportServed([{ node: 'n1', lineage: 'a.test', serial: '0C', error: null, at: 2 }]);
      expect(await store.fleet!.served()).toEqual([
        { node: 'n1', lineage: 'a.test', serial: '0C', error: null, at: 2 },
        { node: 'n2', lineage: 'a.test', serial: '0A', error: null, at: 1 },
      ]);

      expect(await store.backoff.get('letsencrypt', 'a.test')).toBeNull();
      await store.backoff.set('letsencrypt', 'a.test', { failures: 1, lastError: 'x', lastAt: 1, until: null, unpauseUrl: null });
      await other.backoff.set('letsencrypt', 'a.test', { failures: 2, lastError: 'y', lastAt: 2, until: 9, unpauseUrl: 'https://portal' });
      expect(await store.backoff.list()).toEqual([
        { account: 'letsencrypt', name: 'a.test', failures: 2, lastError: 'y', lastAt: 2, until: 9, unpauseUrl: 'https://portal' },
      ]);
      await store.backoff.clear('letsencrypt', 'a.test');
      expect(await store.backoff.get('letsencrypt', 'a.test')).toBeNull();
    } finally {
      await store.close();
      await other.close();
    }
  });
});

describe('PostgreSQL migrations', () => {
  it('six nodes starting at once on an empty database run each migration once; a restart runs none', async () => {
    const url = await cluster.createDatabase('migrations_race');
    const script = `
      import { PgStore } from ${JSON.stringify(path.resolve('dist/src/store/postgres/index.js'))};
      const store = new PgStore(process.argv[1]);
      await store.open();
      await store.sites.upsert('n' + process.pid + '.test', {}, 'agent');
      await store.close();
    `;
    const runs = await Promise.all(Array.from({ length: 6 }, () => execa('node', ['--input-type=module', '-e', script, url], { reject: false })));
    for (const r of runs) expect(r.exitCode, r.stderr).toBe(0);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const versions = (await client.query('SELECT version FROM schema_migrations ORDER BY version')).rows.map((r: { version: number }) => r.version);
      expect(versions).toEqual(MIGRATIONS.map((_, i) => i + 1));
      expect(Number((await client.query('SELECT count(*) AS n FROM sites')).rows[0].n)).toBe(6);
      const again = new PgStore(url);
      await again.open();
      await again.close();
      expect((await client.query('SELECT count(*) AS n FROM schema_migrations')).rows[0].n).toBe(String(MIGRATIONS.length));
    } finally {
      await client.end();
    }
  });
});
