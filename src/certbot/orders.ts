/**
 * Parallel orders past certbot's one-process lock (certbot #8703: a second certbot on the same directories exits at
 * once). Each new lineage is ordered by a certbot of its own, in a private config/work/logs directory set seeded
 * with the main directory's ACME account (the same account key and id: one account, one set of rate limits), then
 * adopted into the main config directory, holding certbot's own lock on it (and autossl's), so the result is
 * indistinguishable for certbot: `certbot certificates` lists it, `certbot renew` renews it with the hooks.
 *
 * Adoption never overwrites: a lineage name that exists in the main directory by then is LINEAGE_CONFLICT. An
 * existing lineage (a renewal, a reissue, names added) is ordered in the main directory as before, one at a time.
 */
import { spawnOffLoop } from '../spawn.js';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { AutoSslError } from '../errors.js';
import { ownerAlive, ownerStamp, withLock } from '../lock.js';
import { execCertbot, certbotLockFile, type CertbotSettings } from './certbot.js';
import { readLineage, type Lineage } from './lineage.js';

const LINEAGE_FILES = ['cert', 'chain', 'fullchain', 'privkey'] as const;

/** The accounts directory certbot uses for a server URL: accounts/<host[:port]>/<path>. */
export function accountDir(configDir: string, server: string | undefined): string {
  const url = new URL(server ?? 'https://acme-v02.api.letsencrypt.org/directory');
  return path.join(configDir, 'accounts', url.host, ...url.pathname.split('/').filter(Boolean));
}

function hasAccount(dir: string): boolean {
  try {
    return fs.readdirSync(dir).some((id) => fs.existsSync(path.join(dir, id, 'private_key.json')));
  } catch {
    return false;
  }
}

const registering = new Map<string, Promise<void>>();

/** Registers the account in the main directory once (serialized), when it has none yet. */
export async function ensureAccount(s: CertbotSettings): Promise<void> {
  const dir = accountDir(s.configDir, s.server);
  if (hasAccount(dir)) return;
  let pending = registering.get(dir);
  if (!pending) {
    pending = (async () => {
      // under the main directory's certbot lock: another process may be registering it right now
      const args = ['register', '--agree-tos', ...(s.email ? ['-m', s.email, '--no-eff-email'] : ['--register-unsafely-without-email'])];
      const run = await execCertbot({ ...s }, args);
      if (run.exitCode !== 0 && !hasAccount(dir)) {
        throw new AutoSslError(
          'CERTBOT_FAILED',
          `certbot could not register an ACME account: ${run.problems.map((p) => p.detail).join('; ') || run.stderr.trim().split('\n').pop()}`,
          { details: { stderr: run.stderr.slice(-2000) } },
        );
      }
    })();
    registering.set(dir, pending);
    pending.finally(() => registering.delete(dir)).catch(() => undefined);
  }
  await pending;
}

async function copyTree(from: string, to: string): Promise<void> {
  await fsp.cp(from, to, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
}

/** How long a private order directory without its owner file is taken for one being set up right now. */
const OWNERLESS_GRACE_MS = 60_000;

/** A private certbot directory set under autossl's state dir, with the main account copied in. */
export async function privateDirs(s: CertbotSettings, stateDir: string, name: string): Promise<CertbotSettings & { root: string }> {
  const base = path.join(stateDir, 'orders');
  await fsp.mkdir(base, { recursive: true, mode: 0o700 });
  const root = await fsp.mkdtemp(path.join(base, `${name.slice(0, 60)}-`));
  // who ordered it, first of all: a run killed mid-order is finished by the next start (recoverPrivateOrders),
  // and another run starting now must see this one as alive
  await fsp.writeFile(path.join(root, 'owner'), `${ownerStamp()}\n`);
  const dirs = { configDir: path.join(root, 'config'), workDir: path.join(root, 'work'), logsDir: path.join(root, 'logs') };
  for (const d of Object.values(dirs)) await fsp.mkdir(d, { recursive: true, mode: 0o700 });
  await copyTree(path.join(s.configDir, 'accounts'), path.join(dirs.configDir, 'accounts'));
  // no lock of autossl's around a private order: these directories are this order's alone
  return { ...s, ...dirs, lockDir: undefined, pidFile: path.join(root, 'certbot.pid'), root };
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The private orders of runs that were killed: a certbot still running there is waited for (bounded), a lineage it
 * finished is adopted (so the name is never ordered twice), and the directories go. Returns the lineages adopted.
 */
export async function recoverPrivateOrders(main: CertbotSettings, stateDir: string): Promise<string[]> {
  const base = path.join(stateDir, 'orders');
  let names: string[];
  try {
    names = await fsp.readdir(base);
  } catch {
    return [];
  }
  const adopted: string[] = [];
  for (const name of names) {
    const root = path.join(base, name);
    const owner = await fsp.readFile(path.join(root, 'owner'), 'utf8').catch(() => '');
    if (owner && ownerAlive(owner)) continue;
    // no owner yet: a run between mkdtemp and writing its owner file (two runs at once removed each other's order
    // being set up: ENOTEMPTY); one killed in that instant left nothing ordered, and goes once it is old
    if (
      !owner &&
      Date.now() -
        (await fsp
          .stat(root)
          .then((st) => st.mtimeMs)
          .catch(() => 0)) <
        OWNERLESS_GRACE_MS
    )
      continue;
    const certbotPid = Number(await fsp.readFile(path.join(root, 'certbot.pid'), 'utf8').catch(() => '0'));
    const deadline = Date.now() + main.timeoutMs;
    while (certbotPid > 1 && pidAlive(certbotPid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const priv: CertbotSettings = {
      ...main,
      configDir: path.join(root, 'config'),
      workDir: path.join(root, 'work'),
      logsDir: path.join(root, 'logs'),
      lockDir: undefined,
    };
    const confs = await fsp.readdir(path.join(priv.configDir, 'renewal')).catch(() => [] as string[]);
    let keep = false;
    for (const conf of confs.filter((c) => c.endsWith('.conf'))) {
      const lineage = conf.slice(0, -'.conf'.length);
      if (readLineage(main.configDir, lineage)) continue; // the main directory has it: never overwritten
      try {
        await adopt(main, priv, lineage);
        adopted.push(lineage);
      } catch {
        keep = true; // a half-written private lineage, or a conflict: left for the admin, named by certbot's log
      }
    }
    if (!keep) await fsp.rm(root, { recursive: true, force: true });
  }
  return adopted;
}

/**
 * Holds certbot's own lock on a directory (`.certbot.lock`, an fcntl lock certbot takes with lockf) while `fn`
 * runs, so no certbot (its timer, an admin) works on the main directory meanwhile. Node has no fcntl: a small
 * Python (certbot's own interpreter) takes it, as certbot does, and keeps it until told to let go.
 */
export async function withCertbotLock<T>(dir: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const script = [
    'import fcntl, os, sys, time',
    'path, deadline = sys.argv[1], time.time() + float(sys.argv[2])',
    'while True:',
    '    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)',
    '    try:',
    '        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)',
    '        # certbot deletes the file when it lets go: the lock must be on the file that is there now',
    '        if os.fstat(fd).st_ino == os.stat(path).st_ino: break',
    '    except OSError:',
    '        pass',
    '    os.close(fd)',
    '    if time.time() > deadline:',
    '        print("timeout", flush=True); sys.exit(3)',
    '    time.sleep(0.1)',
    'print("locked", flush=True)',
    'sys.stdin.read()',
    'os.unlink(path)',
  ].join('\n');
  // started off the event loop (see spawn.ts): one per adopted lineage of a batch
  let text = '';
  let answered!: (answer: string) => void;
  const answer = new Promise<string>((resolve) => (answered = resolve));
  const child = spawnOffLoop(python, ['-c', script, path.join(dir, '.certbot.lock'), String(timeoutMs / 1000)], {
    stdin: 'pipe',
    stderr: 'inherit',
    onStdout: (chunk) => {
      text += chunk;
      if (text.includes('\n')) answered(text.trim());
    },
  });
  void child.result.then((r) => answered(r.error ? `error ${r.error}` : text.trim() || 'exited'));
  if ((await answer) !== 'locked') {
    child.kill();
    throw new AutoSslError(
      'LOCK_TIMEOUT',
      `certbot's lock on ${dir} was not free within ${Math.round(timeoutMs / 1000)} s (${await answer}): another certbot is working there.`,
      { details: { path: path.join(dir, '.certbot.lock') } },
    );
  }
  try {
    return await fn();
  } finally {
    child.end();
    await child.result;
  }
}

function rewrite(text: string, from: CertbotSettings, to: CertbotSettings): string {
  // longest first: the config dir may be a prefix of the others' paths
  const pairs = (
    [
      ['configDir', from.configDir, to.configDir],
      ['workDir', from.workDir, to.workDir],
      ['logsDir', from.logsDir, to.logsDir],
    ] as const
  )
    .slice()
    .sort((a, b) => b[1].length - a[1].length);
  let out = text;
  for (const [, a, b] of pairs) out = out.split(a).join(b);
  return out;
}

/**
 * Moves a lineage ordered in `priv` into the main directory: archive/<name> (the key stays 0600), live/<name>
 * (relative symlinks, certbot's README), renewal/<name>.conf with its paths pointing at the main directories,
 * written last (certbot finds lineages by their renewal config). Never over an existing lineage.
 */
export async function adopt(main: CertbotSettings, priv: CertbotSettings, name: string): Promise<Lineage> {
  const lockFile = certbotLockFile(main);
  return withLock(lockFile, { timeoutMs: Math.max(main.timeoutMs * 5, 600_000), what: `certbot on ${main.configDir}` }, () =>
    withCertbotLock(main.configDir, main.timeoutMs, async () => {
      const targets = {
        archive: path.join(main.configDir, 'archive', name),
        live: path.join(main.configDir, 'live', name),
        renewal: path.join(main.configDir, 'renewal', `${name}.conf`),
      };
      const taken = Object.values(targets).filter((p) => fs.existsSync(p));
      if (taken.length) {
        throw new AutoSslError(
          'LINEAGE_CONFLICT',
          `The certificate ${name} was ordered, but ${taken.join(', ')} exists in ${main.configDir} now (another process made that lineage meanwhile); autossl does not overwrite it. The new certificate stays in ${priv.configDir}.`,
          { details: { name, taken, kept: priv.configDir } },
        );
      }
      const conf = await fsp.readFile(path.join(priv.configDir, 'renewal', `${name}.conf`), 'utf8');
      const suffix = `.autossl-${process.pid}-${Date.now()}`;
      await fsp.mkdir(path.dirname(targets.archive), { recursive: true, mode: 0o700 });
      await fsp.mkdir(path.dirname(targets.live), { recursive: true, mode: 0o700 });
      await fsp.mkdir(path.dirname(targets.renewal), { recursive: true, mode: 0o755 });
      await copyTree(path.join(priv.configDir, 'archive', name), targets.archive + suffix);
      await fsp.rename(targets.archive + suffix, targets.archive);
      await fsp.mkdir(targets.live + suffix, { mode: 0o755 });
      const privateLive = path.join(priv.configDir, 'live', name);
      for (const f of LINEAGE_FILES) await fsp.symlink(await fsp.readlink(path.join(privateLive, `${f}.pem`)), path.join(targets.live + suffix, `${f}.pem`));
      if (fs.existsSync(path.join(privateLive, 'README'))) await fsp.copyFile(path.join(privateLive, 'README'), path.join(targets.live + suffix, 'README'));
      await fsp.rename(targets.live + suffix, targets.live);
      await fsp.writeFile(targets.renewal + suffix, rewrite(conf, priv, main), { mode: 0o644 });
      await fsp.rename(targets.renewal + suffix, targets.renewal);
      const lineage = readLineage(main.configDir, name);
      if (!lineage) throw new AutoSslError('CERTBOT_LINEAGE_UNKNOWN', `${targets.renewal} was not written.`);
      return lineage;
    }),
  );
}
