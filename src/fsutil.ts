/**
 * Reading files autossl does not control (users' nginx files, certbot's PEMs) without trusting what they are.
 *
 * `fs.readFileSync` reads until end of file: `include /dev/zero;` grows memory without bound, and a FIFO (or a
 * `cert.pem` symlinked to one) blocks the whole process at open() until a writer shows up, which may be never.
 * So a file is opened with O_NONBLOCK (a FIFO then opens at once instead of waiting for a writer), checked with
 * fstat on the open descriptor (the thing we read, not whatever the path names a moment later) to be a regular
 * file, and read with a size cap. Nothing here follows more than the path: include loops are the caller's.
 */
import fs from 'node:fs';
import path from 'node:path';
import { AutoSslError, type ErrorCode } from './errors.js';

/** The largest nginx config file read (large real configs are a few MB: generated maps, geo blocks). */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;
/** The largest PEM read: a certificate chain is a few KB; a few hundred certificates still fit. */
export const MAX_PEM_BYTES = 1024 * 1024;

export interface SafeReadOptions {
  /** The most bytes accepted; a longer file is refused rather than truncated (a cut config means something else). */
  maxBytes: number;
  /** The code of the error when the file is not a regular file or is too large. */
  code: ErrorCode;
  /** What the file is, for the message: "nginx config file", "certificate". */
  what: string;
  hint?: string;
}

/** What a non-regular file is, in words a user can act on. */
export function fileKind(st: fs.Stats): string {
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isDirectory()) return 'a directory';
  return 'not a regular file';
}

/**
 * The file's bytes and its fstat, when it is a regular file of at most `maxBytes`. Errors from open() itself
 * (ENOENT, EACCES, ELOOP) are thrown as they come, so callers keep telling "missing" from "refused".
 */
export function readRegularFile(file: string, options: SafeReadOptions): { data: Buffer; stat: fs.Stats } {
  // O_NOCTTY: opening a terminal device must not make it our controlling terminal.
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  try {
    const stat = fs.fstatSync(fd);
    const refuse = (why: string): never => {
      throw new AutoSslError(options.code, `${file}: ${why}; autossl reads a ${options.what} only from a regular file of at most ${options.maxBytes} bytes.`, {
        hint: options.hint ?? `Make ${file} a regular file (a symlink to one is fine) within the size limit, or stop pointing at it.`,
        details: { file },
      });
    };
    if (!stat.isFile()) refuse(`is ${fileKind(stat)}`);
    if (stat.size > options.maxBytes) refuse(`is ${stat.size} bytes`);
    // Read up to one byte past the cap: st_size can lie (procfs says 0) or the file can grow while we read.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      // the first read takes the whole file as fstat sizes it (plus one byte, to see the end in the same call)
      const want = total === 0 ? Math.max(stat.size + 1, 64 * 1024) : 64 * 1024;
      const chunk = Buffer.allocUnsafe(Math.min(want, options.maxBytes + 1 - total));
      const n = fs.readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(n === chunk.length ? chunk : chunk.subarray(0, n));
      total += n;
      if (total > options.maxBytes) refuse(`grew past ${options.maxBytes} bytes while being read`);
    }
    return { data: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total), stat };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The first answer `pick` gives for the regular files of a directory, in name order; files larger than maxBytes
 * and anything that is not a regular file (a FIFO would block the read) are passed over, as are unreadable ones.
 * For the small scans of certbot's hook directory and /etc/cron.d.
 */
export function firstInSmallFiles<T>(dir: string, maxBytes: number, pick: (file: string, text: string, st: fs.Stats) => T | null): T | null {
  let names: string[];
  try {
    names = fs.readdirSync(dir).sort();
  } catch {
    return null;
  }
  for (const name of names) {
    const file = path.join(dir, name);
    let text: string;
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
      if (!st.isFile() || st.size > maxBytes) continue;
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue; // not readable: not what is looked for
    }
    const found = pick(file, text, st);
    if (found !== null) return found;
  }
  return null;
}

/**
 * `read` of a file, remembered per path while the file stays the same (inode, size, mtime): thousands of vhosts
 * point at a few hundred certificate files, read once each. null when the file is missing or `read` throws.
 */
export function memoByStat<T>(read: (file: string, st: fs.Stats) => T | null): (file: string) => T | null {
  const cache = new Map<string, { key: string; value: T | null }>();
  return (file) => {
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      return null;
    }
    const key = `${st.ino}:${st.size}:${st.mtimeMs}`;
    const known = cache.get(file);
    if (known?.key === key) return known.value;
    let value: T | null;
    try {
      value = read(file, st);
    } catch {
      value = null;
    }
    if (cache.size > 50_000) cache.clear();
    cache.set(file, { key, value });
    return value;
  };
}
