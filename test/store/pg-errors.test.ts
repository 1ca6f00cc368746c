/**
 * The PostgreSQL store's failures, through the CLI: an unreachable database is STATE_UNAVAILABLE before anything is
 * planned or ordered (certbot never runs), a wrong password too; no message ever carries the password; a connection
 * string that is not a postgresql:// URL is CONFIG_INVALID without quoting it; `store: "postgres"` reads
 * AUTOSSL_STORE_POSTGRES and says so when it is not set.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_PASSWORD, startPostgres, type PgCluster } from '../helpers/postgres.js';

const CLI = path.resolve('dist/src/cli.js');
let cluster: PgCluster;
let dir: string;

beforeAll(async () => {
  cluster = await startPostgres();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-pgerr-'));
  // a certbot that records being run: no order may be placed
  fs.writeFileSync(path.join(dir, 'certbot'), `#!/bin/sh\necho "$@" >> ${path.join(dir, 'certbot-ran')}\nexit 1\n`, { mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'nginx.conf'), 'events {}\nhttp { server { listen 127.0.0.1:80; server_name down.test; root /tmp; } }\n');
});

afterAll(async () => {
  await cluster?.stop();
});

function config(store: unknown): string {
  const file = path.join(dir, `c-${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(
    file,
    JSON.stringify({
      certbot: { binary: path.join(dir, 'certbot'), configDir: path.join(dir, 'le'), workDir: path.join(dir, 'work'), logsDir: path.join(dir, 'logs') },
      nginx: { config: path.join(dir, 'nginx.conf') },
      stateDir: path.join(dir, 'state'),
      store,
      sites: [{ domain: 'down.test' }],
    }),
  );
  return file;
}

const cli = (args: string[], env: Record<string, string | undefined> = {}) =>
  execa('node', [CLI, ...args], { reject: false, env: { AUTOSSL_STORE_CONNECT_TIMEOUT_MS: '5000', ...env }, extendEnv: true });

describe('the PostgreSQL store when the database cannot be used', () => {
  it('unreachable: issue is STATE_UNAVAILABLE naming the database without its password, and certbot never runs', async () => {
    const url = `postgresql://autossl:${encodeURIComponent(PG_PASSWORD)}@127.0.0.1:9/autossl`; // nothing listens on port 9
    const run = await cli(['issue', 'down.test', '--json', '--config', config({ postgres: url })]);
    expect(run.exitCode).not.toBe(0);
    const out = JSON.parse(run.stdout) as { error: { code: string; message: string; hint: string } };
    expect(out.error.code).toBe('STATE_UNAVAILABLE');
    expect(out.error.message).toContain('postgresql://autossl@127.0.0.1:9/autossl');
    expect(out.error.hint).toMatch(/reachable/);
    expect(run.stdout + run.stderr).not.toContain(PG_PASSWORD);
    expect(run.stdout + run.stderr).not.toContain(encodeURIComponent(PG_PASSWORD));
    expect(run.stdout + run.stderr).not.toMatch(/\n\s+at /);
    expect(fs.existsSync(path.join(dir, 'certbot-ran'))).toBe(false);
  });

  it('a wrong password is STATE_UNAVAILABLE saying so, without either password', async () => {
    const wrong = 'Wr0ng-pass';
    const run = await cli(['status', '--json', '--config', config({ postgres: `postgresql://autossl:${wrong}@127.0.0.1:${cluster.port}/postgres` })]);
    expect(run.exitCode).not.toBe(0);
    expect(run.stdout).toMatch(/STATE_UNAVAILABLE/);
    expect(run.stdout).toMatch(/password authentication failed/);
    expect(run.stdout + run.stderr).not.toContain(wrong);
    expect(run.stdout + run.stderr).not.toContain(PG_PASSWORD);
  });

  it('a connection string that is not a postgresql:// URL is CONFIG_INVALID and is not quoted back', async () => {
    for (const bad of [`host=127.0.0.1 password=${PG_PASSWORD}`, `postgresql://autossl:${PG_PASSWORD}@127.0.0.1:port/x`]) {
      const run = await cli(['status', '--json', '--config', config({ postgres: bad })]);
      expect(run.exitCode).toBe(2);
      expect(run.stdout).toMatch(/CONFIG_INVALID/);
      expect(run.stdout + run.stderr).not.toContain(PG_PASSWORD);
    }
  });

  it('store: "postgres" reads AUTOSSL_STORE_POSTGRES: unset is CONFIG_INVALID naming it; set, the state goes to that database', async () => {
    const file = config('postgres');
    const unset = await cli(['jobs', '--json', '--config', file], { AUTOSSL_STORE_POSTGRES: undefined });
    expect(unset.exitCode).toBe(2);
    expect(unset.stdout).toMatch(/AUTOSSL_STORE_POSTGRES/);
    const url = await cluster.createDatabase('from_env');
    const set = await cli(['jobs', '--json', '--config', file], { AUTOSSL_STORE_POSTGRES: url });
    expect(set.exitCode, set.stdout + set.stderr).toBe(0);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      expect((await client.query('SELECT count(*) AS n FROM schema_migrations')).rows[0].n).not.toBe('0'); // migrated by the CLI
    } finally {
      await client.end();
    }
  });
});

describe('the PostgreSQL store when the database goes away while open', () => {
  it('store calls and locks are STATE_UNAVAILABLE without the password (the cluster stopped)', async () => {
    const { PgStore } = await import('../../src/store/postgres/index.js');
    const url = await cluster.createDatabase('goes_away');
    const store = new PgStore(url);
    try {
      await store.sites.upsert('a.test', {}, 'agent');
      expect(await store.sites.list()).toHaveLength(1);
      await cluster.stop();
      const failures = [
        await store.sites.list().catch((e: unknown) => e),
        await store.jobs.create({ id: 'j', kind: 'issue', source: 'cli', domains: ['a.test'] }).catch((e: unknown) => e),
        await store.locker.lock('order-a.test', 1000, 'The order of a.test').catch((e: unknown) => e),
      ];
      for (const e of failures) {
        expect(e).toMatchObject({ code: 'STATE_UNAVAILABLE' });
        expect((e as Error).message + String((e as { hint?: string }).hint)).not.toContain(PG_PASSWORD);
      }
    } finally {
      await store.close();
    }
  });
});
