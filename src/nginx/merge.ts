/**
 * Undoing one edit in a file that others edited since: a line-based three-way merge.
 *
 * When a domain's edit must be rolled back but another domain (same batch, or another process) has edited the
 * same file after it, putting the old bytes back would throw the other edit away. Instead the change that turned
 * `pre` into `post` is reversed on `current`: each hunk of diff(post -> pre) is applied where its lines (and the
 * lines around it) still stand unchanged in `current`. If a hunk's neighbourhood changed, the revert is refused
 * (a conflict) rather than guessed. Lines keep their own line endings, so bytes outside the hunks are untouched.
 */

/** Splits text into lines that keep their terminators (joining them gives the text back byte for byte). */
export function splitLines(text: string): string[] {
  return text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
}

/** Replace a[aStart, aEnd) by b[bStart, bEnd). */
export interface Hunk {
  aStart: number;
  aEnd: number;
  bStart: number;
  bEnd: number;
}

/**
 * Myers' O(ND) difference of two line arrays (common prefix and suffix trimmed first, so the usual local edit
 * in a large file costs next to nothing). Returns the hunks in order.
 */
export function diffLines(a: readonly string[], b: readonly string[]): Hunk[] {
  let prefix = 0;
  while (prefix < a.length && prefix < b.length && a[prefix] === b[prefix]) prefix++;
  let suffix = 0;
  while (suffix < a.length - prefix && suffix < b.length - prefix && a[a.length - 1 - suffix] === b[b.length - 1 - suffix]) suffix++;
  const A = a.slice(prefix, a.length - suffix);
  const B = b.slice(prefix, b.length - suffix);
  const n = A.length;
  const m = B.length;
  if (n === 0 && m === 0) return [];
  if (n === 0 || m === 0) return [{ aStart: prefix, aEnd: prefix + n, bStart: prefix, bEnd: prefix + m }];
  const max = n + m;
  const offset = max + 1;
  let v = new Int32Array(2 * max + 3);
  // trace[d] keeps the frontier as it stood before round d, only the window [-d-1, d+1] that round reads
  const trace: Int32Array[] = [];
  outer: for (let d = 0; d <= max; d++) {
    trace.push(v.slice(offset - d - 1, offset + d + 2));
    const next = v.slice();
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!) ? v[offset + k + 1]! : v[offset + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && A[x] === B[y]) {
        x++;
        y++;
      }
      next[offset + k] = x;
      if (x >= n && y >= m) break outer;
    }
    v = next;
  }
  // walk back from (n, m) through the saved frontiers, collecting the equal diagonal runs
  const matches: Array<[number, number]> = [];
  let x = n;
  let y = m;
  for (let d = trace.length - 1; d >= 0; d--) {
    const window = trace[d]!;
    const at = (k: number): number => window[k + d + 1]!;
    const k = x - y;
    const prevK = k === -d || (k !== d && at(k - 1) < at(k + 1)) ? k + 1 : k - 1;
    const prevX = d === 0 ? 0 : at(prevK);
    const prevY = d === 0 ? 0 : prevX - prevK;
    while (x > prevX && y > prevY) {
      x--;
      y--;
      matches.push([x, y]);
    }
    x = prevX;
    y = prevY;
  }
  matches.reverse();
  const hunks: Hunk[] = [];
  let ai = 0;
  let bi = 0;
  for (const [mx, my] of [...matches, [n, m] as [number, number]]) {
    if (mx > ai || my > bi) hunks.push({ aStart: prefix + ai, aEnd: prefix + mx, bStart: prefix + bi, bEnd: prefix + my });
    ai = mx + 1;
    bi = my + 1;
  }
  return hunks;
}

/** For each line of `a`, the index of the equal line of `b` it is aligned with, or -1. */
function alignment(a: readonly string[], b: readonly string[]): Int32Array {
  const map = new Int32Array(a.length).fill(-1);
  let ai = 0;
  let bi = 0;
  for (const h of diffLines(a, b)) {
    while (ai < h.aStart) map[ai++] = bi++;
    ai = h.aEnd;
    bi = h.bEnd;
  }
  while (ai < a.length) map[ai++] = bi++;
  return map;
}

export type RevertResult = { ok: true; text: string } | { ok: false; reason: string };

/**
 * Reverses the edit `pre -> post` on `current`. When `current === post` the result is exactly `pre`.
 * Each hunk needs its own lines and one line of context on each side unchanged in `current`.
 */
export function revertEdit(current: string, post: string, pre: string): RevertResult {
  if (current === post) return { ok: true, text: pre };
  if (current === pre) return { ok: true, text: pre }; // already reverted (by hand, or by an earlier run)
  const postLines = splitLines(post);
  const preLines = splitLines(pre);
  const curLines = splitLines(current);
  const map = alignment(postLines, curLines);
  const replacements: Array<{ start: number; end: number; lines: string[] }> = [];
  for (const h of diffLines(postLines, preLines)) {
    // the region and its neighbours must map onto consecutive lines of `current`
    const from = Math.max(0, h.aStart - 1);
    const to = Math.min(postLines.length - 1, h.aEnd);
    let anchor: number | null = null;
    for (let i = from; i <= to; i++) {
      const j = map[i]!;
      if (j < 0) return { ok: false, reason: `line ${i + 1} of autossl's edit ("${postLines[i]!.trim().slice(0, 60)}") was changed since` };
      if (anchor !== null && j !== anchor + (i - from)) return { ok: false, reason: `lines were inserted or removed inside autossl's edit near line ${i + 1}` };
      if (anchor === null) anchor = j - (i - from);
    }
    const base = anchor ?? 0;
    const start = postLines.length === 0 ? 0 : base + (h.aStart - from);
    replacements.push({ start, end: start + (h.aEnd - h.aStart), lines: preLines.slice(h.bStart, h.bEnd) });
  }
  const out = [...curLines];
  for (const r of replacements.sort((x, y) => y.start - x.start)) out.splice(r.start, r.end - r.start, ...r.lines);
  return { ok: true, text: out.join('') };
}
