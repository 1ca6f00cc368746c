/**
 * Safe apply: the only code that writes users' nginx files, and the journal that can always undo it.
 *
 * Every write is one journal entry: the bytes before and the bytes written, kept under
 * `<stateDir>/journal/<transaction>/` and named in its manifest *before* the file is replaced (temp file, fsync,
 * rename, fsync of the directory). A domain's transaction is reverted entry by entry, newest first:
 *   - the file still holds what autossl wrote: the old bytes go back, byte for byte;
 *   - someone edited the file since (another domain of the batch, another autossl process): only autossl's own
 *     change is taken back, with a three-way merge (merge.ts); if its lines were touched, that is a conflict and
 *     the journal is kept rather than guessing.
 * A journal left by a process that died is recovered only where the file still holds exactly the bytes autossl
 * wrote (sha256); a hand edit made since is never overwritten: the journal stays and the conflict is reported with
 * the file and the backup's path.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { AutoSslError } from '../errors.js';
import { ownerAlive, ownerStamp } from '../lock.js';
import { revertEdit } from './merge.js';
import { fileBytes } from './value.js';

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

/**
 * Writes `data` to `file` atomically: a temp file in the same directory, fsync, rename, fsync the directory.
 * A symlink is written through, never replaced: Debian's `sites-enabled/x -> ../sites-available/x` stays a link and
 * the edit lands in the file it points at (the one the admin edits), as nginx reads it.
 */
export async function atomicWrite(link: string, data: Buffer, writer: FileWriter = defaultWriter, like?: fs.Stats): Promise<void> {
  const file = await writeTarget(link);
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
    const code = (error as NodeJS.ErrnoException).code;
    throw new AutoSslError('WRITE_FAILED', `Could not write ${file}: ${code ? `${code}: ` : ''}${(error as Error).message.replace(/^[A-Z]+: /, '')}. The file was left as it was.`, { cause: error, details: { file } });
  }
  await fsyncDir(dir);
}

/** The file a write to `file` must replace: `file` itself, or the file its symlinks lead to. */
async function writeTarget(file: string): Promise<string> {
  const st = await fsp.lstat(file).catch(() => null);
  if (!st?.isSymbolicLink()) return file;
  try {
    return await fsp.realpath(file);
  } catch (error) {
    throw new AutoSslError('WRITE_FAILED', `Could not write ${file}: it is a symlink that leads nowhere (${(error as NodeJS.ErrnoException).code ?? 'unresolvable'}). The link was left as it was.`, { cause: error, details: { file } });
  }
}

/** Reads a file that must be a regular file (never a FIFO or device: those would block or never end). */
async function readRegular(file: string): Promise<Buffer | null> {
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new AutoSslError('WRITE_FAILED', `${file} is not a regular file; autossl edits only regular files.`, { details: { file } });
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

interface JournalEntry {
  /** Global order of writes (newest reverted first). */
  seq: number;
  file: string;
  /** Backup files holding the bytes before and after this write. */
  pre: string;
  post: string;
  preSha: string;
  postSha: string;
}

interface Manifest {
  version: 2;
  /** "<pid> <process start time>" of the writer: a journal of a live process is never recovered. */
  owner: string;
  started: string;
  label: string;
  entries: JournalEntry[];
}

let lastSeq = 0;
function nextSeq(): number {
  lastSeq = Math.max(lastSeq + 1, Date.now() * 1000);
  return lastSeq;
}

/** Transactions of this process with entries not yet committed or reverted (see fixLaterEntries). */
const open = new Set<EditTransaction>();

export interface TransactionOptions {
  /** Where backups and the manifest are kept until commit (inside autossl's state directory). */
  journalDir: string;
  /** What the transaction is for (the domain): shown by `autossl recover`. */
  label?: string;
  writer?: FileWriter;
}

export class EditTransaction {
  readonly dir: string;
  private readonly entries: JournalEntry[] = [];
  private readonly writer: FileWriter;
  private readonly label: string;
  private started = false;
  /** Every file this transaction wrote and then took back (the editor takes back an edit nginx -t refused). */
  readonly restored = new Set<string>();

  constructor(options: TransactionOptions) {
    this.dir = path.join(options.journalDir, `${Date.now()}-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
    this.writer = options.writer ?? defaultWriter;
    this.label = options.label ?? '';
  }

  /** The files this transaction changed and has not reverted, in the order first written. */
  get files(): string[] {
    return [...new Set(this.entries.map((e) => e.file))];
  }

  /** A point to revert back to (see revert). */
  mark(): number {
    return this.entries.length;
  }

  private async saveManifest(): Promise<void> {
    const manifest: Manifest = { version: 2, owner: ownerStamp(), started: new Date().toISOString(), label: this.label, entries: this.entries };
    await atomicWrite(path.join(this.dir, 'manifest.json'), Buffer.from(JSON.stringify(manifest, null, 2)));
  }

  private async begin(): Promise<void> {
    if (this.started) return;
    try {
      await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new AutoSslError('STATE_UNAVAILABLE', `Cannot create the journal directory ${this.dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; nothing was written.`, { details: { path: this.dir } });
    }
    // the manifest exists before any backup, so a directory without one never holds anything worth keeping
    try {
      await this.saveManifest();
    } catch (error) {
      await fsp.rm(this.dir, { recursive: true, force: true }).catch(() => undefined); // nothing of the run is in it yet
      const e = error as AutoSslError;
      throw new AutoSslError(e.code ?? 'WRITE_FAILED', `Cannot start the journal in ${this.dir} (${e.message}); no vhost was touched.`, { hint: e.hint, details: { path: this.dir }, cause: error });
    }
    this.started = true;
    open.add(this);
  }

  /** Writes `after` to `file`, provided the file still holds `before` (byte for byte). */
  async write(file: string, before: string, after: string): Promise<void> {
    const bytes = fileBytes(after, file); // refused before anything is journaled, never narrowed
    const current = await readRegular(file);
    if (current === null || sha256(current) !== sha256(before)) {
      throw new AutoSslError('VHOST_CHANGED', `${file} changed since autossl read it; nothing was written.`, { details: { file } });
    }
    const stat = await fsp.stat(file);
    await this.begin();
    const seq = nextSeq();
    const entry: JournalEntry = { seq, file, pre: path.join(this.dir, `${seq}.pre`), post: path.join(this.dir, `${seq}.post`), preSha: sha256(current), postSha: sha256(after) };
    await atomicWrite(entry.pre, current);
    await atomicWrite(entry.post, bytes);
    this.entries.push(entry);
    // the manifest names the backup before the file changes: a crash after this point is recoverable
    await this.saveManifest();
    try {
      await atomicWrite(file, bytes, this.writer, stat);
    } catch (error) {
      this.entries.pop();
      await this.saveManifest().catch(() => undefined);
      throw error;
    }
  }

  /**
   * Takes back every write made since `mark` (all of them by default), newest first. Returns the files changed
   * back. A write whose lines were changed since cannot be taken back: JOURNAL_CONFLICT, and the journal is kept.
   */
  async revert(mark = 0): Promise<string[]> {
    const reverted: string[] = [];
    while (this.entries.length > mark) {
      const entry = this.entries[this.entries.length - 1]!;
      if (await revertEntry(entry, this)) {
        reverted.push(entry.file);
        this.restored.add(entry.file);
      }
      this.entries.pop();
      await this.saveManifest();
    }
    if (this.entries.length === 0) await this.close();
    return [...new Set(reverted)];
  }

  /**
   * After a revert that could not merge (JOURNAL_CONFLICT, reported in the run's own result): the bytes before each
   * write still in the journal are kept under `keepDir` and the journal goes, so no later command takes it for a
   * killed run's work. Returns each file with where its bytes before autossl's edit are kept.
   */
  async abandon(keepDir: string): Promise<Array<{ file: string; backup: string }>> {
    const kept: Array<{ file: string; backup: string }> = [];
    if (this.entries.length) {
      const dir = path.join(keepDir, path.basename(this.dir));
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
      for (const e of [...this.entries].sort((a, b) => a.seq - b.seq)) {
        if (kept.some((k) => k.file === e.file)) continue; // the oldest write holds the bytes before the run
        const backup = path.join(dir, `${path.basename(e.file)}.${e.seq}.before`);
        await fsp.copyFile(e.pre, backup);
        kept.push({ file: e.file, backup });
      }
    }
    this.entries.length = 0;
    await this.close();
    return kept;
  }

  /** Forgets the journal: the edits stay. */
  async commit(): Promise<void> {
    this.entries.length = 0;
    await this.close();
  }

  private async close(): Promise<void> {
    open.delete(this);
    if (this.started) await fsp.rm(this.dir, { recursive: true, force: true });
    this.started = false;
  }

  /** Entries of this transaction on `file` written after `seq` (for fixLaterEntries). */
  laterEntries(file: string, seq: number): JournalEntry[] {
    return this.entries.filter((e) => e.file === file && e.seq > seq);
  }

  async persist(): Promise<void> {
    if (this.started) await this.saveManifest();
  }
}

/** Reverts one write. Returns whether the file changed. */
async function revertEntry(entry: JournalEntry, owner: EditTransaction | null): Promise<boolean> {
  const pre = await fsp.readFile(entry.pre);
  if (sha256(pre) !== entry.preSha) {
    throw new AutoSslError('JOURNAL_DAMAGED', `The journal copy of ${entry.file} is damaged (${entry.pre}); ${entry.file} was left as it is.`, { details: { file: entry.file, backup: entry.pre } });
  }
  const current = await readRegular(entry.file);
  if (current !== null && sha256(current) === entry.preSha) return false; // already back
  const stat = await fsp.stat(entry.file).catch(() => undefined);
  if (current !== null && sha256(current) === entry.postSha) {
    await atomicWrite(entry.file, pre, defaultWriter, stat);
  } else {
    if (!owner || current === null) {
      throw new AutoSslError('JOURNAL_CONFLICT', `${entry.file} was changed after autossl wrote it, so autossl's edit cannot be undone automatically; the file was left as it is. The bytes before autossl's edit are in ${entry.pre}.`, { details: { file: entry.file, backup: entry.pre } });
    }
    const post = (await fsp.readFile(entry.post)).toString('latin1');
    const merged = revertEdit(current.toString('latin1'), post, pre.toString('latin1'));
    if (!merged.ok) {
      throw new AutoSslError('JOURNAL_CONFLICT', `Cannot take autossl's edit out of ${entry.file}: ${merged.reason}. The file was left as it is; the bytes before autossl's edit are in ${entry.pre}.`, { details: { file: entry.file, backup: entry.pre } });
    }
    await atomicWrite(entry.file, fileBytes(merged.text, entry.file), defaultWriter, stat);
    await fixLaterEntries(entry, post, pre.toString('latin1'), owner);
  }
  const check = await readRegular(entry.file);
  if (check === null) throw new AutoSslError('WRITE_FAILED', `Could not restore ${entry.file}; its original is kept at ${entry.pre}.`, { details: { file: entry.file } });
  return true;
}

/**
 * After one transaction's edit was merged out of a file, later writes of other open transactions of this process
 * to that file have stale before/after copies (they still contain the removed edit): take it out of those too, so
 * that their own revert, or a recovery after a crash, still finds exactly the bytes it expects.
 */
async function fixLaterEntries(reverted: JournalEntry, post: string, pre: string, owner: EditTransaction): Promise<void> {
  for (const tx of open) {
    if (tx === owner) continue;
    const later = tx.laterEntries(reverted.file, reverted.seq);
    if (!later.length) continue;
    for (const e of later) {
      for (const side of ['pre', 'post'] as const) {
        const text = (await fsp.readFile(e[side])).toString('latin1');
        const fixed = revertEdit(text, post, pre);
        if (!fixed.ok) continue;
        await atomicWrite(e[side], fileBytes(fixed.text, e[side]));
        e[side === 'pre' ? 'preSha' : 'postSha'] = sha256(fixed.text);
      }
    }
    await tx.persist();
  }
}

// --------------------------------------------------------------------------------------------- recovery

export interface JournalConflict {
  file: string;
  /** The bytes before autossl's edit. */
  backup: string;
  journal: string;
  reason: string;
}

export interface RecoveryReport {
  /** Files put back as they were before a run that died. */
  restored: string[];
  /** Files changed since autossl wrote them: left alone, journal kept. */
  conflicts: JournalConflict[];
  /** Journals that cannot be read: kept, with the reason. */
  damaged: Array<{ journal: string; reason: string }>;
  /** Journals of runs still in progress (another live process). */
  active: number;
}

interface LoadedJournal {
  dir: string;
  manifest: Manifest;
}

/** Version 1 journals (one backup per file per transaction) are read as one entry each. */
function upgradeManifest(raw: unknown, dir: string): Manifest | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const m = raw as Record<string, unknown>;
  if (m.version === 2 && typeof m.owner === 'string' && Array.isArray(m.entries)) {
    const ok = (m.entries as unknown[]).every((e) => {
      const x = e as Record<string, unknown>;
      return typeof x === 'object' && x !== null && typeof x.seq === 'number' && typeof x.file === 'string' && path.isAbsolute(x.file) && typeof x.pre === 'string' && typeof x.post === 'string' && typeof x.preSha === 'string' && typeof x.postSha === 'string' && path.dirname(x.pre as string) === dir;
    });
    return ok ? (m as unknown as Manifest) : null;
  }
  if (typeof m.pid === 'number' && Array.isArray(m.entries)) {
    const entries: JournalEntry[] = [];
    for (const [i, e] of (m.entries as Array<Record<string, unknown>>).entries()) {
      if (typeof e?.file !== 'string' || typeof e.backup !== 'string' || typeof e.before !== 'string' || typeof e.after !== 'string' || path.dirname(e.backup) !== dir) return null;
      entries.push({ seq: i, file: e.file, pre: e.backup, post: '', preSha: e.before, postSha: e.after });
    }
    return { version: 2, owner: `${m.pid} -`, started: String(m.started ?? ''), label: '', entries };
  }
  return null;
}

async function loadJournals(journalDir: string): Promise<{ journals: LoadedJournal[]; damaged: RecoveryReport['damaged']; active: number }> {
  const journals: LoadedJournal[] = [];
  const damaged: RecoveryReport['damaged'] = [];
  let active = 0;
  let names: string[];
  try {
    names = await fsp.readdir(journalDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { journals, damaged, active };
    throw new AutoSslError('STATE_UNAVAILABLE', `Cannot read the journal directory ${journalDir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`, { details: { path: journalDir } });
  }
  for (const name of names.sort()) {
    if (name === 'locks') continue;
    const dir = path.join(journalDir, name);
    const st = await fsp.lstat(dir).catch(() => null);
    if (!st?.isDirectory()) continue;
    const manifestFile = path.join(dir, 'manifest.json');
    let text: string | null;
    try {
      text = await fsp.readFile(manifestFile, 'utf8');
    } catch {
      text = null;
    }
    if (text === null) {
      // created and never used (died before its first manifest): nothing to undo
      const files = await fsp.readdir(dir).catch(() => ['?']);
      if (files.length === 0 && Date.now() - st.mtimeMs > 60_000) await fsp.rm(dir, { recursive: true, force: true });
      continue;
    }
    let manifest: Manifest | null = null;
    try {
      manifest = upgradeManifest(JSON.parse(text), dir);
    } catch {
      manifest = null;
    }
    if (!manifest) {
      damaged.push({ journal: manifestFile, reason: 'the manifest cannot be read (not autossl journal JSON); its backups are kept beside it' });
      continue;
    }
    // this process's pid as its stamp has it (the agent's batch process works under the agent's)
    const own = manifest.owner.startsWith(`${ownerStamp().split(' ')[0]} `);
    if (ownerAlive(manifest.owner) && !own) {
      active++;
      continue;
    }
    if (own) continue; // this process's own, still open
    journals.push({ dir, manifest });
  }
  return { journals, damaged, active };
}

/**
 * What a recovery would do, without doing it (for commands that never write: status, check, --dry-run, vhost
 * show): journals left by runs that died, and which of their files could be restored.
 */
export async function pendingRecovery(journalDir: string): Promise<RecoveryReport & { restorable: string[] }> {
  const { journals, damaged, active } = await loadJournals(journalDir);
  const report = { restored: [] as string[], restorable: [] as string[], conflicts: [] as JournalConflict[], damaged, active };
  const expected = new Map<string, string>();
  for (const { dir, manifest } of journals) {
    for (const e of [...manifest.entries].sort((a, b) => b.seq - a.seq)) {
      const sha = expected.get(e.file) ?? (await readRegular(e.file).then((b) => (b ? sha256(b) : ''), () => ''));
      if (sha === e.postSha) {
        report.restorable.push(e.file);
        expected.set(e.file, e.preSha);
      } else if (sha !== e.preSha) report.conflicts.push({ file: e.file, backup: e.pre, journal: dir, reason: 'changed after autossl wrote it' });
    }
  }
  report.restorable = [...new Set(report.restorable)];
  return report;
}

/**
 * Undoes the writes of runs that died before they committed or rolled back, newest first, each only where the
 * file still holds exactly the bytes autossl wrote. Journals of live processes are left alone.
 */
export async function recoverJournals(journalDir: string): Promise<RecoveryReport> {
  const { journals, damaged, active } = await loadJournals(journalDir);
  const report: RecoveryReport = { restored: [], conflicts: [], damaged, active };
  const all = journals.flatMap((j) => j.manifest.entries.map((entry) => ({ entry, journal: j })));
  all.sort((a, b) => b.entry.seq - a.entry.seq);
  const blocked = new Set<string>();
  const done = new Set<JournalEntry>();
  for (const { entry, journal } of all) {
    if (blocked.has(entry.file)) continue;
    try {
      if (await revertEntry(entry, null)) report.restored.push(entry.file);
      done.add(entry);
    } catch (error) {
      blocked.add(entry.file);
      const e = error as AutoSslError;
      if (e.code === 'JOURNAL_DAMAGED') damaged.push({ journal: journal.dir, reason: e.message });
      else report.conflicts.push({ file: entry.file, backup: entry.pre, journal: journal.dir, reason: e.message });
    }
  }
  for (const { dir, manifest } of journals) {
    const left = manifest.entries.filter((e) => !done.has(e));
    if (left.length === 0) await fsp.rm(dir, { recursive: true, force: true });
    else if (left.length !== manifest.entries.length) await atomicWrite(path.join(dir, 'manifest.json'), Buffer.from(JSON.stringify({ ...manifest, entries: left }, null, 2)));
  }
  report.restored = [...new Set(report.restored)];
  return report;
}

/** Drops a journal the admin has resolved by hand (`autossl recover --discard DIR`). */
export async function discardJournal(journalDir: string, dir: string): Promise<void> {
  const resolved = path.resolve(dir);
  if (path.dirname(resolved) !== path.resolve(journalDir) || !fs.existsSync(path.join(resolved, 'manifest.json'))) {
    throw new AutoSslError('USAGE_INVALID', `${dir} is not a journal in ${journalDir}.`, { hint: 'autossl recover lists the journals it keeps.' });
  }
  await fsp.rm(resolved, { recursive: true, force: true });
}
