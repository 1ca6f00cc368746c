/**
 * Recovery of the journals runs that died left behind (see transaction.ts): what it would do (`pendingRecovery`),
 * doing it (`recoverJournals`), and dropping a journal resolved by hand (`discardJournal`).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { AutoSslError } from '../errors.js';
import { ownerAlive, ownerStamp } from '../lock.js';
import { atomicWrite, readRegular, sha256 } from './atomic-write.js';
import { revertEntry, type JournalEntry, type Manifest } from './transaction.js';

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
      return (
        typeof x === 'object' &&
        x !== null &&
        typeof x.seq === 'number' &&
        typeof x.file === 'string' &&
        path.isAbsolute(x.file) &&
        typeof x.pre === 'string' &&
        typeof x.post === 'string' &&
        typeof x.preSha === 'string' &&
        typeof x.postSha === 'string' &&
        path.dirname(x.pre as string) === dir
      );
    });
    return ok ? (m as unknown as Manifest) : null;
  }
  if (typeof m.pid === 'number' && Array.isArray(m.entries)) {
    const entries: JournalEntry[] = [];
    for (const [i, e] of (m.entries as Array<Record<string, unknown>>).entries()) {
      if (
        typeof e?.file !== 'string' ||
        typeof e.backup !== 'string' ||
        typeof e.before !== 'string' ||
        typeof e.after !== 'string' ||
        path.dirname(e.backup) !== dir
      )
        return null;
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
    throw new AutoSslError(
      'STATE_UNAVAILABLE',
      `Cannot read the journal directory ${journalDir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`,
      { details: { path: journalDir } },
    );
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
      const sha =
        expected.get(e.file) ??
        (await readRegular(e.file).then(
          (b) => (b ? sha256(b) : ''),
          () => '',
        ));
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
    else if (left.length !== manifest.entries.length)
      await atomicWrite(path.join(dir, 'manifest.json'), Buffer.from(JSON.stringify({ ...manifest, entries: left }, null, 2)));
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
