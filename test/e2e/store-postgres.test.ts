/**
 * The whole pipeline on the PostgreSQL store (pebble, certbot, nginx all real on 127.0.0.1; a private PostgreSQL
 * cluster): issue → served, status from the database, the job and its attempt in PostgreSQL's tables, no SQLite
 * database created beside; then the order lock is an advisory lock another node would wait on.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig } from '../../scripts/sandbox/rig.js';
import { PgLocker } from '../../src/store/postgres/locker.js';
import { parseJson } from '../helpers/json.js';
import { PG_PASSWORD, startPostgres, type PgCluster } from '../helpers/postgres.js';
import { expectIssuedAndServed } from '../helpers/served.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const DOMAIN = 'pg.store.test';

let rig: AcmeRig;
let cluster: PgCluster;
let url: string;
let config: string;

const cli = (args: string[]) => execa('node', [CLI, ...args, '--config', config], { reject: false });

beforeAll(async () => {
  cluster = await startPostgres();
  url = await cluster.createDatabase('e2e');
  rig = await AcmeRig.start();
  rig.addSite(DOMAIN, `server {\n    listen 127.0.0.1:80;\n    server_name {name};\n    root {root};\n}\n`);
  await rig.reloadNginx();
  config = rig.writeAutosslConfig({ store: { postgres: url }, sites: [{ domain: DOMAIN }] });
});

afterAll(async () => {
  await rig?.stop();
  await cluster?.stop();
});

describe('store: { postgres }', () => {
  it('issue → served → status end to end with every record in PostgreSQL, none in SQLite', async () => {
    const { run, serial } = await expectIssuedAndServed(cli, rig.certbotDirs().configDir, DOMAIN);

    const status = await cli(['status', '--json']);
    expect(status.exitCode, status.stderr).toBe(0);
    const report = parseJson(status.stdout) as { certificates: Array<{ lineage: string | null; state: string; serial: string | null }> };
    expect(report.certificates.find((c) => c.lineage === DOMAIN)).toMatchObject({ state: 'ok', serial });

    const jobs = await cli(['jobs', '--json']);
    expect(jobs.exitCode, jobs.stderr).toBe(0);
    expect(jobs.stdout).toContain(DOMAIN);
    expect(jobs.stdout + status.stdout + run.stdout).not.toContain(PG_PASSWORD);

    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      expect((await client.query(`SELECT kind, ok FROM attempts WHERE domain = $1`, [DOMAIN])).rows).toEqual([{ kind: 'issue', ok: true }]);
      expect((await client.query(`SELECT state FROM job_domains WHERE domain = $1`, [DOMAIN])).rows).toEqual([{ state: 'done' }]);
      expect((await client.query(`SELECT lineage FROM certificates`)).rows.map((r: { lineage: string }) => r.lineage)).toContain(DOMAIN);
      // no advisory lock is left held once the run ended
      expect((await client.query(`SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'`)).rows[0].n).toBe('0');
    } finally {
      await client.end();
    }
    expect(fs.existsSync(path.join(rig.info.dir, 'state', 'state.db'))).toBe(false);
  });

  it('an order lock held by another node: a forced issue of that name waits, then fails LOCK_TIMEOUT naming it', async () => {
    const held = await new PgLocker(url).lock(`order-${DOMAIN}`, 5_000, 'held by the test');
    try {
      fs.writeFileSync(
        config,
        JSON.stringify(
          rig.autosslConfig({
            store: { postgres: url },
            sites: [{ domain: DOMAIN }],
            certbot: { ...(rig.autosslConfig().certbot as object), timeoutMs: 1_000 },
          }),
          null,
          2,
        ),
      );
      const run = await cli(['issue', DOMAIN, '--force', '--json']);
      expect(run.exitCode).not.toBe(0);
      expect(run.stdout).toMatch(/LOCK_TIMEOUT/);
      expect(run.stdout).toContain(`order-${DOMAIN}`);
    } finally {
      await held.release();
    }
  });
});
