/**
 * Safe apply: the only code that writes users' nginx files.
 *
 * For each file: take its lock, check it still holds the bytes the edit was planned on (sha256), copy the
 * original into a journal, write the new content to a temp file beside it, fsync, rename over the original,
 * fsync the directory. `rollback()` puts every original back the same way and checks its hash; `commit()`
 * forgets the journal. A journal left behind by a process that died (killed between write and validate) is
 * found by `recoverJournal()` at the start of the next run and undone.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { AutoSslError } from '../errors.js';

export const sha256 = (data: string | Buffer): string => crypto.createHash('sha256').update(typeof data === 'string' ? Buffer.from(data, 'latin1') : data).digest('hex');

/** Writes bytes to a path and fsyncs them. Replaceable in tests to inject a failure half-way through. */
export type FileWriter = (file: string, data: Buffer) => Promise<void>;

export const defaultWriter: FileWriter = async (file, data) => {
  const handle = await fsp.open(file, 'wx', 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
};

interface JournalEntry {
  file: string;
  backup: string;
  before: string;
  after: string;
  existed: boolean;
}

interface Manifest {
  pid: number;
  started: string;
  entries: JournalEntry[];
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } catch {
    // some filesystems refuse fsync on a directory; the rename is still atomic
  } finally {
    await handle.close();
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Writes `data` to `file` atomically: a temp file in the same directory, fsync, rename, fsync the directory. */
export async function atomicWrite(file: string, data: Buffer, writer: FileWriter = defaultWriter, like?: fs.Stats): Promise<void> {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.${path.basename(file)}.autossl-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  try {
    await writer(temp, data);
    if (like) {
      await fsp.chmod(temp, like.mode & 0o7777);
      if (process.getuid?.() === 0) await fsp.chown(temp, like.uid, like.gid);
    }
    await fsp.rename(temp, file);
  } catch (error) {
    await fsp.rm(temp, { force: true });
    throw new AutoSslError('WRITE_FAILED', `Could not write ${file}: ${(error as Error).message}. The file was left as it was.`, { cause: error, details: { file } });
  }
  await fsyncDir(dir);
}

export class FileLocks {
  private readonly held = new Set<string>();
  constructor(private readonly dir: string, private readonly timeoutMs = 30_000) {}

  private lockPath(file: string): string {
    return path.join(this.dir, `${crypto.createHash('sha1').update(file).digest('hex')}.lock`);
  }

  async acquire(file: string): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true });
    const lock = this.lockPath(file);
    if (this.held.has(lock)) return; // this transaction already holds it (a second edit of the same file)
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      try {
        await fsp.writeFile(lock, `${process.pid}\n${file}\n`, { flag: 'wx' });
        this.held.add(lock);
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const owner = Number((await fsp.readFile(lock, 'utf8').catch(() => '')).split('\n')[0]);
      if (owner && !pidAlive(owner)) {
        await fsp.rm(lock, { force: true }); // left by a process that died
        continue;
      }
      if (Date.now() > deadline) {
        throw new AutoSslError('LOCK_TIMEOUT', `${file} is locked by process ${owner || '?'} (lock file ${lock}).`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async releaseAll(): Promise<void> {
    for (const lock of this.held) await fsp.rm(lock, { force: true });
    this.held.clear();
  }
}

export interface TransactionOptions {
  /** Where originals and the manifest are kept until commit (inside autossl's state directory). */
  journalDir: string;
  writer?: FileWriter;
  lockTimeoutMs?: number;
}

export class EditTransaction {
  private readonly dir: string;
  private readonly entries: JournalEntry[] = [];
  private readonly locks: FileLocks;
  private readonly writer: FileWriter;

  constructor(options: TransactionOptions) {
    this.dir = path.join(options.journalDir, `${Date.now()}-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
    this.locks = new FileLocks(path.join(options.journalDir, 'locks'), options.lockTimeoutMs);
    this.writer = options.writer ?? defaultWriter;
  }

  get files(): string[] {
    return this.entries.map((e) => e.file);
  }

  private async saveManifest(): Promise<void> {
    const manifest: Manifest = { pid: process.pid, started: new Date().toISOString(), entries: this.entries };
    await atomicWrite(path.join(this.dir, 'manifest.json'), Buffer.from(JSON.stringify(manifest, null, 2)));
  }

  /** Writes `after` to `file`, provided the file still holds `before` (byte for byte). */
  async write(file: string, before: string, after: string): Promise<void> {
    await this.locks.acquire(file);
    const current = await fsp.readFile(file).catch(() => null);
    if (current === null || sha256(current) !== sha256(before)) {
      throw new AutoSslError('VHOST_CHANGED', `${file} changed since autossl read it; nothing was written.`, { details: { file } });
    }
    const stat = await fsp.stat(file);
    await fsp.mkdir(this.dir, { recursive: true });
    const prior = this.entries.find((e) => e.file === file);
    if (!prior) {
      const backup = path.join(this.dir, `${this.entries.length}.orig`);
      await atomicWrite(backup, current);
      this.entries.push({ file, backup, before: sha256(current), after: sha256(after), existed: true });
    } else prior.after = sha256(after);
    // The manifest names the backup before the file changes: a crash after this point is recoverable.
    await this.saveManifest();
    await atomicWrite(file, Buffer.from(after, 'latin1'), this.writer, stat);
  }

  /** Puts every file back as it was before this transaction; verifies each by hash. */
  async rollback(): Promise<void> {
    try {
      await restoreEntries(this.entries);
      await fsp.rm(this.dir, { recursive: true, force: true });
      this.entries.length = 0;
    } finally {
      await this.locks.releaseAll();
    }
  }

  async commit(): Promise<void> {
    await fsp.rm(this.dir, { recursive: true, force: true });
    this.entries.length = 0;
    await this.locks.releaseAll();
  }
}

async function restoreEntries(entries: readonly JournalEntry[]): Promise<void> {
  for (const entry of [...entries].reverse()) {
    const original = await fsp.readFile(entry.backup);
    if (sha256(original) !== entry.before) throw new AutoSslError('INTERNAL', `The journal copy of ${entry.file} is damaged (${entry.backup}); restore it by hand.`);
    const current = await fsp.readFile(entry.file).catch(() => null);
    if (current && sha256(current) === entry.before) continue;
    const stat = await fsp.stat(entry.file).catch(() => undefined);
    await atomicWrite(entry.file, original, defaultWriter, stat);
    const check = await fsp.readFile(entry.file);
    if (sha256(check) !== entry.before) throw new AutoSslError('WRITE_FAILED', `Could not restore ${entry.file}; its original is kept at ${entry.backup}.`);
  }
}

/**
 * Undoes the edits of transactions whose process died before commit or rollback.
 * Returns the files restored. Journals of live processes are left alone.
 */
export async function recoverJournal(journalDir: string): Promise<string[]> {
  const restored: string[] = [];
  let dirs: string[];
  try {
    dirs = await fsp.readdir(journalDir);
  } catch {
    return restored;
  }
  for (const name of dirs) {
    if (name === 'locks') continue;
    const dir = path.join(journalDir, name);
    const manifest = await fsp.readFile(path.join(dir, 'manifest.json'), 'utf8').then((t) => JSON.parse(t) as Manifest).catch(() => null);
    if (!manifest) {
      // a transaction that died before it wrote anything
      const st = await fsp.stat(dir).catch(() => null);
      if (st?.isDirectory() && Date.now() - st.mtimeMs > 60_000) await fsp.rm(dir, { recursive: true, force: true });
      continue;
    }
    if (manifest.pid !== process.pid && pidAlive(manifest.pid)) continue;
    if (manifest.pid === process.pid) continue;
    await restoreEntries(manifest.entries);
    restored.push(...manifest.entries.map((e) => e.file));
    await fsp.rm(dir, { recursive: true, force: true });
  }
  return restored;
}
