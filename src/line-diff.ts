/**
 * The one line diff of the project (Myers): the unified diffs of `--dry-run` (diff.ts) and the three-way revert of
 * one edit among others (nginx/merge.ts) both take their hunks from here.
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
 * Myers' O((N+M)D) difference of two line arrays, common prefix and suffix trimmed first (the usual local edit in a
 * large file costs next to nothing). Each round keeps only the diagonals it can reach (2d+3 entries), so memory is
 * O(D^2). Past `maxEdits` differing lines the changed middle is one replacement hunk (bounded work).
 */
export function diffLines(a: readonly string[], b: readonly string[], maxEdits = Infinity): Hunk[] {
  let prefix = 0;
  while (prefix < a.length && prefix < b.length && a[prefix] === b[prefix]) prefix++;
  let suffix = 0;
  while (suffix < a.length - prefix && suffix < b.length - prefix && a[a.length - 1 - suffix] === b[b.length - 1 - suffix]) suffix++;
  const A = a.slice(prefix, a.length - suffix);
  const B = b.slice(prefix, b.length - suffix);
  const n = A.length;
  const m = B.length;
  if (n === 0 && m === 0) return [];
  const whole = [{ aStart: prefix, aEnd: prefix + n, bStart: prefix, bEnd: prefix + m }];
  if (n === 0 || m === 0) return whole;
  const offset = n + m + 1;
  const v = new Int32Array(2 * offset + 1);
  // trace[d] keeps the frontier as it stood before round d, only the window [-d-1, d+1] that round reads
  const trace: Int32Array[] = [];
  let done = false;
  for (let d = 0; d <= Math.min(n + m, maxEdits) && !done; d++) {
    trace.push(v.slice(offset - d - 1, offset + d + 2));
    // (round d writes the diagonals of d's parity and reads the others: one array is enough)
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!) ? v[offset + k + 1]! : v[offset + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && A[x] === B[y]) {
        x++;
        y++;
      }
      v[offset + k] = x;
      if (x >= n && y >= m) {
        done = true;
        break;
      }
    }
  }
  if (!done) return whole;
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
