/** Atomic writes of users' files (temp file, fsync, rename, fsync of the directory) and the reads they check against. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { AutoSslError } from '../errors.js';

export const sha256 = (data: string | Buffer): string =>
  crypto
    .createHash('sha256')
    .update(typeof data === 'string' ? Buffer.from(data, 'latin1') : data)
    .digest('hex');

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
    throw new AutoSslError(
      'WRITE_FAILED',
      `Could not write ${file}: ${code ? `${code}: ` : ''}${(error as Error).message.replace(/^[A-Z]+: /, '')}. The file was left as it was.`,
      { cause: error, details: { file } },
    );
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
    throw new AutoSslError(
      'WRITE_FAILED',
      `Could not write ${file}: it is a symlink that leads nowhere (${(error as NodeJS.ErrnoException).code ?? 'unresolvable'}). The link was left as it was.`,
      { cause: error, details: { file } },
    );
  }
}

/** Reads a file that must be a regular file (never a FIFO or device: those would block or never end). */
export async function readRegular(file: string): Promise<Buffer | null> {
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
