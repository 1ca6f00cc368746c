/**
 * The connection pool every table of the PostgreSQL store shares, and what a failure to reach the database means:
 * STATE_UNAVAILABLE naming the database without its password (messages reach logs and panels), before anything is
 * ordered. The schema is migrated on the first use (src/store/postgres/migrations.ts).
 */
import pg from 'pg';
import { AutoSslError } from '../../errors.js';
import { migrate } from './migrations.js';

/** BIGINT columns (ms epochs, ids) as numbers: every value autossl keeps fits in 2^53. */
const INT8 = 20;
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/** How long connecting may take before the database counts as unreachable (AUTOSSL_STORE_CONNECT_TIMEOUT_MS). */
export function connectTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const ms = Number(env.AUTOSSL_STORE_CONNECT_TIMEOUT_MS ?? '');
  return Number.isInteger(ms) && ms > 0 && ms <= 600_000 ? ms : 10_000;
}

/** The host put into libpq's socket form for WHATWG URL's sake (a reserved name: never resolved, never connected to). */
const SOCKET_HOST = 'unix-socket.invalid';

/**
 * A connection string as a URL, or null. libpq's unix-socket form with a user and no host
 * (`postgresql://user:pw@/db?host=/run/postgresql`, what a node in another network namespace uses) is refused by
 * WHATWG URL; node-postgres accepts it, so it is read here with a placeholder host (`socket`: true, no host).
 */
export function parsePgUrl(url: string): { url: URL; socket: boolean } | null {
  try {
    return { url: new URL(url), socket: false };
  } catch {
    const m = /^(postgres(?:ql)?:\/\/[^/?#]*@)([/?#].*)?$/i.exec(url);
    if (!m) return null;
    try {
      return { url: new URL(`${m[1]}${SOCKET_HOST}${m[2] ?? ''}`), socket: true };
    } catch {
      return null;
    }
  }
}

/** The password a connection string carries (in its user part), to keep it out of messages. */
export function passwordOf(url: string): string | undefined {
  const u = parsePgUrl(url)?.url;
  if (u) {
    if (!u.password) return undefined;
    try {
      return decodeURIComponent(u.password);
    } catch {
      return u.password;
    }
  }
  return /password\s*=\s*'?([^'\s]+)/i.exec(url)?.[1];
}

/** A connection string without its password (URL or key=value form), for messages and `location`. */
export function redact(url: string): string {
  const parsed = parsePgUrl(url);
  if (!parsed) return url.replace(/(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)/gi, '$1***');
  const u = parsed.url;
  if (u.password) u.password = '';
  for (const k of [...u.searchParams.keys()]) if (/pass|secret|key/i.test(k)) u.searchParams.set(k, '***');
  const out = u.toString().replace(/^(\w+:\/\/[^@/]*):@/, '$1@');
  return parsed.socket ? out.replace(`@${SOCKET_HOST}`, '@') : out;
}

/** The error codes of "the database is not there for us" (no server, refused, auth, no such database, shut down). */
function isConnectionFailure(error: unknown): boolean {
  const e = error as { code?: string; message?: string } | null;
  const code = e?.code ?? '';
  if (/^(08|28|3D|57P|53)/.test(code)) return true;
  if (['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ENOENT', 'EACCES'].includes(code))
    return true;
  return /timeout|terminated|Connection terminated|connect/i.test(e?.message ?? '') && !/^[0-9A-Z]{5}$/.test(code);
}

/** STATE_UNAVAILABLE for a database autossl cannot use; the message never carries the password. */
export function unavailable(error: unknown, location: string, secret?: string): AutoSslError {
  const raw = ((error as Error)?.message ?? String(error)).split('\n')[0]!;
  const why = secret ? raw.split(secret).join('***') : raw;
  return new AutoSslError('STATE_UNAVAILABLE', `Cannot use autossl's state database ${location}: ${why}.`, {
    hint: `Check that PostgreSQL is running and reachable from this host at ${location}, and that the role, its password (in the connection string, PGPASSWORD or ~/.pgpass) and the database are right (store.postgres in the config, or AUTOSSL_STORE_POSTGRES), then run again. autossl orders nothing while its state database is unreachable.`,
    details: { store: location, code: (error as { code?: string })?.code },
  });
}

export type Query = <R = Record<string, unknown>>(text: string, params?: readonly unknown[]) => Promise<{ rows: R[]; rowCount: number }>;

export class Db {
  readonly pool: pg.Pool;
  readonly location: string;
  private ready: Promise<void> | null = null;
  private readonly secret: string | undefined;

  constructor(readonly url: string) {
    this.location = redact(url);
    this.secret = passwordOf(url);
    this.pool = new pg.Pool({
      connectionString: url,
      max: 4,
      connectionTimeoutMillis: connectTimeoutMs(),
      idleTimeoutMillis: 10_000,
      allowExitOnIdle: true,
      application_name: 'autossl',
      types,
    });
    // a pooled connection the server drops while idle: the next query opens another (or fails, STATE_UNAVAILABLE)
    this.pool.on('error', () => {});
  }

  /** Connects and migrates once per store; a failure is STATE_UNAVAILABLE (and the next call tries again). */
  open(): Promise<void> {
    this.ready ??= (async () => {
      const client = await this.pool.connect();
      try {
        await migrate(client);
      } finally {
        client.release();
      }
    })().catch((error: unknown) => {
      this.ready = null;
      throw this.failure(error);
    });
    return this.ready;
  }

  failure(error: unknown): unknown {
    if (error instanceof AutoSslError) return error;
    return isConnectionFailure(error) ? unavailable(error, this.location, this.secret) : error;
  }

  readonly query: Query = async (text, params) => {
    await this.open();
    try {
      const r = await this.pool.query(text, params as unknown[]);
      return { rows: r.rows, rowCount: r.rowCount ?? 0 };
    } catch (error) {
      throw this.failure(error);
    }
  };

  /** One transaction on one connection; rolled back when `fn` throws. */
  async tx<T>(fn: (q: Query) => Promise<T>): Promise<T> {
    await this.open();
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw this.failure(error);
    }
    const q: Query = async (text, params) => {
      const r = await client.query(text, params as unknown[]);
      return { rows: r.rows, rowCount: r.rowCount ?? 0 };
    };
    try {
      await q('BEGIN');
      const out = await fn(q);
      await q('COMMIT');
      client.release();
      return out;
    } catch (error) {
      await q('ROLLBACK').catch(() => {});
      client.release(true);
      throw this.failure(error);
    }
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => {});
  }
}
