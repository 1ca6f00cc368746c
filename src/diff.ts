/**
 * Unified diffs for `--dry-run` and `vhost show --diff`, in the form `patch` applies (GNU patch: `cd / && patch
 * -p0 < diff`, or `patch FILE < diff`):
 *  - a line is compared and printed with its own ending: a CRLF file's lines keep their `\r` (dropping it made the
 *    context differ from the file, so patch rejected the hunk or applied it "with fuzz" and mixed line endings);
 *  - a last line without a newline is marked `\ No newline at end of file`, and the counts in each `@@` header are
 *    exact (the old header counted the empty string after the final newline as a line: one off);
 *  - changes far apart are separate hunks with `context` lines each side (line-diff.ts: Myers' diff);
 *  - the file name ends at a tab, as `diff -u` writes it, and is C-quoted when it holds a tab, newline, quote or
 *    backslash, so a hostile name cannot forge diff lines;
 *  - what a terminal would act on instead of showing (control characters, a CR inside a line, ESC, bidi and other
 *    format characters, line separators) is printed escaped, `\x1b` or `\u202e`, so no line can hide its `+`, move
 *    the cursor or reorder what is read. Such a diff starts with a `#` line saying so (patch skips it; the hunks
 *    holding an escape no longer apply, which beats applying something else than what was read).
 * Texts are the files as read (latin1: one character per byte); diffBytes() gives the bytes to print.
 */
import { isUtf8 } from 'node:buffer';
import { diffLines, splitLines } from './line-diff.js';

/** Above this many differing lines in the changed middle, it is shown as one replacement (bounded work). */
const MAX_EDIT_DISTANCE = 2_000;

type Op = ' ' | '-' | '+';

/** What a terminal acts on instead of showing: controls but tab (C0, DEL, C1), format (bidi) and separator characters. */
const UNSHOWABLE = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\p{Cf}\p{Zl}\p{Zp}]/gu;
const UNSHOWABLE_BYTE = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g;

/**
 * A file name as a diff header writes it (file text: UTF-8 bytes, one character per byte): C-quoted, each byte that
 * is not shown as written in octal, when it holds anything that would end, break or reorder the line.
 */
function headerName(file: string): string {
  const bytes = Buffer.from(file, 'utf8').toString('latin1');
  if (!/[\t\n\r"\\\u0000-\u001f\u007f]/.test(file) && !/[\p{Cf}\p{Zl}\p{Zp}\u0080-\u009f]/u.test(file)) return bytes;
  const escaped = [...file]
    .map((ch) => {
      const named: Record<string, string> = { '\t': '\\t', '\n': '\\n', '\r': '\\r', '"': '\\"', '\\': '\\\\' };
      if (named[ch]) return named[ch];
      const utf8 = Buffer.from(ch, 'utf8').toString('latin1');
      return /[\u0000-\u001f\u007f]/.test(ch) || /^[\p{Cf}\p{Zl}\p{Zp}\u0080-\u009f]$/u.test(ch)
        ? [...utf8].map((b) => `\\${b.charCodeAt(0).toString(8).padStart(3, '0')}`).join('')
        : utf8;
    })
    .join('');
  return `"${escaped}"`;
}

/** `\x1b` for a byte or a character below U+0100, `\u202e` above. */
function escapeChar(ch: string): string {
  const cp = ch.codePointAt(0)!;
  return cp < 0x100 ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u${cp.toString(16).padStart(4, '0')}`;
}

/**
 * A line's text (file bytes, without its ending) with what a terminal would not show as written escaped. A UTF-8
 * line is read as UTF-8 (a bidi control is three bytes there); any other line byte by byte.
 */
function showable(text: string): string {
  const bytes = Buffer.from(text, 'latin1');
  if (isUtf8(bytes)) {
    const decoded = bytes.toString('utf8');
    UNSHOWABLE.lastIndex = 0;
    return UNSHOWABLE.test(decoded) ? Buffer.from(decoded.replace(UNSHOWABLE, escapeChar), 'utf8').toString('latin1') : text;
  }
  return text.replace(UNSHOWABLE_BYTE, escapeChar);
}

/** One printed diff line: the op, the line without its "\n" (a final "\r" stays), and the no-newline marker if due. */
function printLine(op: Op, line: string, seen: { escaped: boolean }): string {
  // a CR ending the line (CRLF, or a last line without LF) is the line's ending, printed as it is
  const ending = /\r?\n$|\r$/.exec(line)?.[0] ?? '';
  const shown = `${showable(line.slice(0, line.length - ending.length))}${ending}`;
  if (shown !== line) seen.escaped = true;
  return ending.endsWith('\n') ? `${op}${shown}` : `${op}${shown}\n\\ No newline at end of file\n`;
}

/** The note a diff starts with when a line of it is printed escaped. */
export const ESCAPED_NOTE =
  '# autossl: characters a terminal would not show as written are escaped below (\\xNN, \\uNNNN); hunks holding one do not apply with patch\n';

/** A unified diff of two versions of `file`; empty when they are equal. */
export function unifiedDiff(file: string, before: string, after: string, context = 3): string {
  if (before === after) return '';
  const a = splitLines(before);
  const b = splitLines(after);
  const changes = diffLines(a, b, MAX_EDIT_DISTANCE);
  // Only `context` lines before the first change and after the last can appear in a hunk.
  const first = Math.max(0, changes[0]!.aStart - context);
  const ops: Array<{ op: Op; line: string }> = [];
  let at = first;
  for (const h of changes) {
    while (at < h.aStart) ops.push({ op: ' ', line: a[at++]! });
    for (const line of a.slice(h.aStart, h.aEnd)) ops.push({ op: '-', line });
    for (const line of b.slice(h.bStart, h.bEnd)) ops.push({ op: '+', line });
    at = h.aEnd;
  }
  for (const line of a.slice(at, at + context)) ops.push({ op: ' ', line });
  // Line numbers (1-based) of each op in the old and the new file.
  const oldNo: number[] = [];
  const newNo: number[] = [];
  let o = first + 1;
  let p = first + 1;
  for (const op of ops) {
    oldNo.push(o);
    newNo.push(p);
    if (op.op !== '+') o++;
    if (op.op !== '-') p++;
  }
  // Group changes: two changes share a hunk when at most 2 * context unchanged lines lie between them.
  const changed = ops.flatMap((op, i) => (op.op === ' ' ? [] : [i]));
  const hunks: Array<[number, number]> = [];
  for (const i of changed) {
    const last = hunks[hunks.length - 1];
    if (last && i - last[1] - 1 <= 2 * context) last[1] = i;
    else hunks.push([i, i]);
  }
  let body = '';
  const seen = { escaped: false };
  for (const [from, to] of hunks) {
    const start = Math.max(0, from - context);
    const end = Math.min(ops.length - 1, to + context);
    const slice = ops.slice(start, end + 1);
    const oldLen = slice.filter((s) => s.op !== '+').length;
    const newLen = slice.filter((s) => s.op !== '-').length;
    // an empty range is numbered by the line before it (0 at the start of the file), as diff -u does
    const oldStart = oldLen === 0 ? oldNo[start]! - 1 : oldNo[start]!;
    const newStart = newLen === 0 ? newNo[start]! - 1 : newNo[start]!;
    body += `@@ -${oldStart},${oldLen} +${newStart},${newLen} @@\n`;
    for (const s of slice) body += printLine(s.op, s.line, seen);
  }
  return `${seen.escaped ? ESCAPED_NOTE : ''}--- ${headerName(file)}\t(current)\n+++ ${headerName(file)}\t(autossl)\n${body}`;
}

/** The bytes of a diff to print: the texts were read as latin1, so this gives the files' own bytes back. */
export function diffBytes(diff: string): Buffer {
  return Buffer.from(diff, 'latin1');
}
