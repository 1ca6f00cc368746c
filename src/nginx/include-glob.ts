/**
 * `include` patterns expanded as nginx does (glob(3): sorted matches, symlinked directories followed once), and the
 * stat keys the file and tree caches compare.
 */
import fs from 'node:fs';
import path from 'node:path';

/** What a file is now (device, inode, size, times): a change to any means it must be read again. */
export function statKey(st: fs.Stats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

function globToRegExp(segment: string): RegExp {
  let re = '';
  for (let i = 0; i < segment.length; i++) {
    const ch = segment[i]!;
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '[') {
      const close = segment.indexOf(']', i + 1);
      if (close < 0) re += '\\[';
      else {
        re += `[${segment
          .slice(i + 1, close)
          .replace(/^!/, '^')
          .replace(/\\/g, '\\\\')}]`;
        i = close;
      }
    } else re += ch.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  // glob(3) does not match a leading dot with a wildcard
  return new RegExp(`^${segment.startsWith('.') ? '' : '(?!\\.)'}${re}$`);
}

/** A file's identity: two paths to one file (symlinks, hard links, a directory loop) have the same key. */
function identity(st: fs.Stats): string {
  return `${st.dev}:${st.ino}`;
}

/**
 * Expands an include pattern like nginx: sorted matches; no match is fine for a glob, an error for a plain path.
 *
 * Symlinked directories are followed, as glob(3) does, but a directory is walked once however many paths lead to
 * it: with `d/up -> ..` every wildcard directory level matches the parent again, so a deep pattern would walk the
 * tree again at every level, and a file that includes its own pattern would come back under a new name each
 * time (the include loop check compares names) and the tree load would never end. Identity is device and
 * inode, not the path string; a match reached through a symlinked directory is named by its real directory, so
 * a file has one name however it was reached, and one match per file is kept.
 */
export function expandInclude(pattern: string, listed?: IncludeInputs): string[] {
  if (!/[*?[]/.test(pattern)) return [pattern];
  const segments = pattern.split('/').filter((s, i) => s !== '' || i === 0);
  const absolute = segments[0] === '';
  const rest = segments.slice(absolute ? 1 : 0);
  const kinds = new Map<string, fs.Dirent>();
  // `linked`: a wildcard led through a symlink to get here, so the path may be one of many names for the place
  let bases: Array<{ path: string; linked: boolean }> = [{ path: absolute ? '/' : '.', linked: false }];
  rest.forEach((segment, index) => {
    const last = index === rest.length - 1;
    const next: typeof bases = [];
    if (!/[*?[]/.test(segment)) {
      for (const base of bases) next.push({ path: path.join(base.path, segment), linked: base.linked });
      bases = next;
      return;
    }
    const re = globToRegExp(segment);
    for (const base of bases) {
      let entries: fs.Dirent[];
      // stated before it is listed: a file added in between changes the key, so a cached tree is not reused
      listed?.dirs.push({ dir: base.path, key: stateOf(base.path) });
      try {
        entries = fs.readdirSync(base.path, { withFileTypes: true });
      } catch {
        continue;
      }
      for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
        if (!re.test(e.name)) continue;
        const full = path.join(base.path, e.name);
        // a symlink matched here and walked into is a linked directory; the last segment names files
        next.push({ path: full, linked: base.linked || (!last && e.isSymbolicLink()) });
        kinds.set(full, e);
      }
    }
    if (last) {
      bases = next;
      return;
    }
    // Directories a wildcard matched are walked once each: drop what is not a directory and what was seen.
    const seen = new Set<string>();
    bases = next.filter((b) => {
      const entry = kinds.get(b.path);
      if (entry && !entry.isSymbolicLink() && !entry.isDirectory()) return false;
      let st: fs.Stats;
      try {
        st = fs.statSync(b.path);
      } catch {
        return false; // a dangling symlink or a loop of symlinks (ELOOP): nothing to walk
      }
      if (!st.isDirectory() || seen.has(identity(st))) return false;
      seen.add(identity(st));
      return true;
    });
  });
  const plain = bases.every((b) => !b.linked && !kinds.get(b.path)?.isSymbolicLink());
  if (listed && (!plain || [...kinds.values()].some((e) => e.isSymbolicLink()))) listed.linked = true;
  if (plain) {
    // The common case (real files in real directories): the directory listing already says what is a file.
    return bases
      .filter((b) => {
        const entry = kinds.get(b.path);
        if (entry) return entry.isFile();
        try {
          return fs.statSync(b.path).isFile();
        } catch {
          return false;
        }
      })
      .map((b) => b.path);
  }
  const seen = new Set<string>();
  const out: string[] = [];
  for (const b of bases) {
    let st: fs.Stats;
    let name = b.path;
    try {
      st = fs.statSync(b.path);
      if (b.linked) name = path.join(fs.realpathSync(path.dirname(b.path)), path.basename(b.path));
    } catch {
      continue;
    }
    if (!st.isFile() || seen.has(identity(st))) continue;
    seen.add(identity(st));
    out.push(name);
  }
  return out;
}

/** What an include expansion read: the directories it listed, and whether a symlink took part. */
export interface IncludeInputs {
  dirs: Array<{ dir: string; key: string }>;
  linked: boolean;
}

/** A path's state for the tree cache: its stat key, or "missing". */
export function stateOf(p: string): string {
  try {
    return statKey(fs.statSync(p));
  } catch {
    return 'missing';
  }
}
