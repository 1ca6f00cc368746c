/**
 * A private PostgreSQL cluster for a test file: initdb into the run's TMPDIR, listening on 127.0.0.1 only at a free
 * port (and a unix socket in its own directory, never the system's /var/run/postgresql), started with
 * `pg_ctl start -w`, stopped and removed by stop(). As root it runs as the unprivileged `postgres` user (Debian's
 * package creates it): PostgreSQL refuses to run as root. The superuser `autossl` has a password (scram), so the
 * connection strings the tests use carry one, as a deployment's would.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import pg from 'pg';

/** The server's programs: Debian puts each major version's under /usr/lib/postgresql/<major>/bin (the newest is used). */
function binDir(): string {
  if (process.env.AUTOSSL_PG_BIN) return process.env.AUTOSSL_PG_BIN;
  const majors = fs.existsSync('/usr/lib/postgresql')
    ? fs
        .readdirSync('/usr/lib/postgresql')
        .filter((v) => fs.existsSync(`/usr/lib/postgresql/${v}/bin/initdb`))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (!majors[0]) throw new Error("PostgreSQL's server is not installed (Debian: apt-get install postgresql; .ci/run installs it)");
  return `/usr/lib/postgresql/${majors[0]}/bin`;
}
export const PG_PASSWORD = 'pw-S3cret!';

export interface PgCluster {
  port: number;
  dir: string;
  /** A connection string for `database` (created by createDatabase), with the password. */
  url(database?: string): string;
  /**
   * The same over the cluster's unix socket (libpq's form, `postgresql://user:pw@/db?host=DIR&port=N`): a path
   * reaches processes in other network namespaces (the fleet rig's nodes), which the host's loopback does not.
   */
  socketUrl(database?: string): string;
  /** The directory of its unix socket. */
  socketDir: string;
  /** A fresh, empty database of its own for one test. */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

export async function startPostgres(): Promise<PgCluster> {
  const BIN = binDir();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-pg-'));
  const dir = path.join(root, 'data');
  const sockets = path.join(root, 'sockets');
  fs.mkdirSync(sockets);
  const asRoot = process.getuid?.() === 0;
  // the cluster's own user owns its files; as root that is `postgres`, which must reach them through TMPDIR
  const run = (cmd: string, args: string[]) =>
    asRoot ? execa('runuser', ['-u', 'postgres', '--', cmd, ...args], { cwd: root }) : execa(cmd, args, { cwd: root });
  if (asRoot) {
    fs.chmodSync(root, 0o755);
    await execa('chown', ['postgres:postgres', root, sockets]);
  }
  const pwfile = path.join(root, 'pw');
  fs.writeFileSync(pwfile, `${PG_PASSWORD}\n`, { mode: 0o600 });
  if (asRoot) await execa('chown', ['postgres:postgres', pwfile]);
  await run(path.join(BIN, 'initdb'), [
    '-D',
    dir,
    '-U',
    'autossl',
    '--pwfile',
    pwfile,
    '--auth-local=scram-sha-256',
    '--auth-host=scram-sha-256',
    '-E',
    'UTF8',
    '--locale=C.UTF-8',
    '--no-sync',
  ]);
  fs.rmSync(pwfile);
  let port = 0;
  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    const opts = `-c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories=${sockets} -c fsync=off -c max_connections=200 -c shared_buffers=16MB`;
    try {
      await run(path.join(BIN, 'pg_ctl'), ['start', '-w', '-t', '60', '-D', dir, '-l', path.join(root, 'log'), '-o', opts]);
      break;
    } catch (error) {
      if (attempt >= 3)
        throw new Error(
          `the test cluster did not start: ${fs.existsSync(path.join(root, 'log')) ? fs.readFileSync(path.join(root, 'log'), 'utf8') : (error as Error).message}`,
        );
    }
  }
  const url = (database = 'postgres') => `postgresql://autossl:${encodeURIComponent(PG_PASSWORD)}@127.0.0.1:${port}/${database}`;
  const socketUrl = (database = 'postgres') =>
    `postgresql://autossl:${encodeURIComponent(PG_PASSWORD)}@/${database}?host=${encodeURIComponent(sockets)}&port=${port}`;
  return {
    port,
    dir,
    url,
    socketUrl,
    socketDir: sockets,
    async createDatabase(name: string) {
      const client = new pg.Client({ connectionString: url() });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
      } finally {
        await client.end();
      }
      return url(name);
    },
    async stop() {
      await run(path.join(BIN, 'pg_ctl'), ['stop', '-w', '-m', 'immediate', '-D', dir]).catch(() => {});
      if (!process.env.AUTOSSL_KEEP_RIG) fs.rmSync(root, { recursive: true, force: true });
    },
  };
}
