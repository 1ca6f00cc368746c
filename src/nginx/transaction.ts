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
import fsp from 'node:fs/promises';
import path from 'node:path';
import { AutoSslError } from '../errors.js';
import { ownerStamp } from '../lock.js';
import { revertEdit } from './merge.js';
import { fileBytes } from './value.js';
import { atomicWrite, defaultWriter, readRegular, sha256, type FileWriter } from './atomic-write.js';

// the journal's own checks and tests name these here
export { sha256, type FileWriter };

export interface JournalEntry {
  /** Global order of writes (newest reverted first). */
  seq: number;
  file: string;
  /** Backup files holding the bytes before and after this write. */
  pre: string;
  post: string;
  preSha: string;
  postSha: string;
}

export interface Manifest {
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
      throw new AutoSslError(
        'STATE_UNAVAILABLE',
        `Cannot create the journal directory ${this.dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; nothing was written.`,
        { details: { path: this.dir } },
      );
    }
    // the manifest exists before any backup, so a directory without one never holds anything worth keeping
    try {
      await this.saveManifest();
    } catch (error) {
      await fsp.rm(this.dir, { recursive: true, force: true }).catch(() => undefined); // nothing of the run is in it yet
      const e = error as AutoSslError;
      throw new AutoSslError(e.code ?? 'WRITE_FAILED', `Cannot start the journal in ${this.dir} (${e.message}); no vhost was touched.`, {
        hint: e.hint,
        details: { path: this.dir },
        cause: error,
      });
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
    const entry: JournalEntry = {
      seq,
      file,
      pre: path.join(this.dir, `${seq}.pre`),
      post: path.join(this.dir, `${seq}.post`),
      preSha: sha256(current),
      postSha: sha256(after),
    };
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
export async function revertEntry(entry: JournalEntry, owner: EditTransaction | null): Promise<boolean> {
  const pre = await fsp.readFile(entry.pre);
  if (sha256(pre) !== entry.preSha) {
    throw new AutoSslError('JOURNAL_DAMAGED', `The journal copy of ${entry.file} is damaged (${entry.pre}); ${entry.file} was left as it is.`, {
      details: { file: entry.file, backup: entry.pre },
    });
  }
  const current = await readRegular(entry.file);
  if (current !== null && sha256(current) === entry.preSha) return false; // already back
  const stat = await fsp.stat(entry.file).catch(() => undefined);
  if (current !== null && sha256(current) === entry.postSha) {
    await atomicWrite(entry.file, pre, defaultWriter, stat);
  } else {
    if (!owner || current === null) {
      throw new AutoSslError(
        'JOURNAL_CONFLICT',
        `${entry.file} was changed after autossl wrote it, so autossl's edit cannot be undone automatically; the file was left as it is. The bytes before autossl's edit are in ${entry.pre}.`,
        { details: { file: entry.file, backup: entry.pre } },
      );
    }
    const post = (await fsp.readFile(entry.post)).toString('latin1');
    const merged = revertEdit(current.toString('latin1'), post, pre.toString('latin1'));
    if (!merged.ok) {
      throw new AutoSslError(
        'JOURNAL_CONFLICT',
        `Cannot take autossl's edit out of ${entry.file}: ${merged.reason}. The file was left as it is; the bytes before autossl's edit are in ${entry.pre}.`,
        { details: { file: entry.file, backup: entry.pre } },
      );
    }
    await atomicWrite(entry.file, fileBytes(merged.text, entry.file), defaultWriter, stat);
    await fixLaterEntries(entry, post, pre.toString('latin1'), owner);
  }
  const check = await readRegular(entry.file);
  if (check === null)
    throw new AutoSslError('WRITE_FAILED', `Could not restore ${entry.file}; its original is kept at ${entry.pre}.`, { details: { file: entry.file } });
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
