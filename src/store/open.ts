/**
 * Which Store a config uses: the built-in SQLite one, the built-in PostgreSQL one (`store: { postgres }`, for a
 * fleet: src/store/postgres/), or a module named by `store` (a path beside the config or a
 * package name, found as plugins are) whose default export (or `createStore`) is a StoreFactory. The module is
 * imported once per engine; the factory opens a store each time one is needed (a writable one, a read-only one).
 */
import type { AutoSslConfig } from '../config/schema.js';
import { AutoSslError, quote } from '../errors.js';
import { locate } from '../pipeline/plugin.js';
import { SqliteStore } from './sqlite/index.js';
import type { Store, StoreFactory } from './store.js';

/** Opens a store of this config: read-only for the commands that only read. */
export type OpenStore = (options?: { readOnly?: boolean }) => Store;

export async function storeOpener(config: Readonly<AutoSslConfig>): Promise<OpenStore> {
  const sqlite = (readOnly: boolean): Store => new SqliteStore(config.stateDir, { readOnly });
  const spec = config.store;
  if (spec === undefined || spec === 'sqlite') return (o) => sqlite(o?.readOnly === true);
  if ('postgres' in spec) return postgresOpener(spec.postgres);
  let factory: unknown;
  try {
    const mod = (await import(locate(spec.module, config.configDir))) as Record<string, unknown>;
    factory = mod.default ?? mod.createStore;
  } catch (error) {
    if (error instanceof AutoSslError)
      throw new AutoSslError('CONFIG_INVALID', `store: ${error.message}`, { hint: error.hint, cause: error, details: { store: spec.module } });
    throw new AutoSslError(
      'CONFIG_INVALID',
      `store: cannot load the store module ${quote(spec.module)}: ${((error as Error).message ?? String(error)).split('\n')[0]}`,
      { cause: error, details: { store: spec.module } },
    );
  }
  if (typeof factory !== 'function')
    throw new AutoSslError(
      'CONFIG_INVALID',
      `store: the module ${quote(spec.module)} does not export a store factory (a default function taking { config, options, readOnly, sqlite } and returning a Store).`,
      { details: { store: spec.module } },
    );
  return (o) => {
    const readOnly = o?.readOnly === true;
    let store: Store;
    try {
      store = (factory as StoreFactory)({ config, options: spec.options, readOnly, sqlite: () => sqlite(readOnly) });
    } catch (error) {
      if (error instanceof AutoSslError) throw error;
      throw new AutoSslError(
        'STATE_UNAVAILABLE',
        `The store ${quote(spec.module)} could not be opened: ${((error as Error).message ?? String(error)).split('\n')[0]}`,
        {
          hint: "Check the store's settings (store.options in the config) and that what it keeps its data in is reachable, then run again.",
          cause: error,
          details: { store: spec.module },
        },
      );
    }
    if (!store || typeof store !== 'object' || !store.jobs || !store.certificates || !store.locker) {
      throw new AutoSslError(
        'CONFIG_INVALID',
        `store: the factory of ${quote(spec.module)} returned no Store (jobs, attempts, certificates, ... and a locker).`,
        { details: { store: spec.module } },
      );
    }
    return store;
  };
}

/**
 * The PostgreSQL store: connected and migrated once here, so an unreachable database is STATE_UNAVAILABLE before the
 * engine plans or orders anything; each store opened after is a pool of its own on the same database.
 */
async function postgresOpener(spec: string): Promise<OpenStore> {
  // loaded only here: the pg driver is ~15 MB of resident memory every SQLite agent would carry (test/agent/flood.test.ts)
  const [{ PgStore }, { parsePgUrl }] = await Promise.all([import('./postgres/index.js'), import('./postgres/db.js')]);
  const url = spec === '$AUTOSSL_STORE_POSTGRES' ? process.env.AUTOSSL_STORE_POSTGRES?.trim() : spec;
  if (!url)
    throw new AutoSslError('CONFIG_INVALID', 'store: "postgres" reads its connection string from AUTOSSL_STORE_POSTGRES, which is not set.', {
      hint: 'Set AUTOSSL_STORE_POSTGRES=postgresql://user@host/database in the environment of every autossl process (the service, cron, certbot\'s hooks), or write the connection string into the config: "store": { "postgres": "..." }.',
    });
  if (!isPostgresUrl(url, parsePgUrl)) {
    // not quoted back: a connection string carries a password
    throw new AutoSslError(
      'CONFIG_INVALID',
      `store: the PostgreSQL connection string${spec === '$AUTOSSL_STORE_POSTGRES' ? ' in AUTOSSL_STORE_POSTGRES' : ''} is not a postgresql:// URL.`,
      {
        hint: 'Write it as postgresql://user[:password]@host[:port]/database[?sslmode=verify-full] (percent-encode special characters of the password, or leave the password to PGPASSWORD or ~/.pgpass).',
      },
    );
  }
  const probe = new PgStore(url);
  try {
    await probe.open();
  } finally {
    await probe.close();
  }
  return () => new PgStore(url);
}

function isPostgresUrl(url: string, parsePgUrl: typeof import('./postgres/db.js').parsePgUrl): boolean {
  const parsed = parsePgUrl(url);
  if (!parsed) return false;
  const u = parsed.url;
  // no host: a unix socket directory in ?host=
  return (u.protocol === 'postgresql:' || u.protocol === 'postgres:') && ((!parsed.socket && u.hostname !== '') || u.searchParams.has('host'));
}
