/**
 * Undoing one edit in a file that others edited since: a line-based three-way merge.
 *
 * When a domain's edit must be rolled back but another domain (same batch, or another process) has edited the
 * same file after it, putting the old bytes back would throw the other edit away. Instead the change that turned
 * `pre` into `post` is reversed on `current`: each hunk of diff(post -> pre) is applied where its lines (and the
 * lines around it) still stand unchanged in `current`. If a hunk's neighbourhood changed, the revert is refused
 * (a conflict) rather than guessed. Lines keep their own line endings, so bytes outside the hunks are untouched.
 */

import { diffLines, splitLines } from '../line-diff.js';

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
