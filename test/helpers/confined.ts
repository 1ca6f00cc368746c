/**
 * Independent check that an edit stayed inside the target server blocks: a line diff (LCS) of the file, and
 * every removed line must lie inside a server block of the names in the original, every added line inside a
 * server block of the names in the result (which covers a new redirect block), or inside one of autossl's own
 * `map $... $autossl_...` blocks (per-host redirects and HSTS).
 */
import { lineColumn, parseConfig, walkDirectives, argValues } from '../../src/nginx/parse.js';
import { matchServerName } from '../../src/nginx/listen.js';

function lineDiff(a: string[], b: string[]): { removed: number[]; added: number[] } {
  const dp: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--)
    for (let j = b.length - 1; j >= 0; j--) dp[i]![j] = a[i] === b[j] ? dp[i + 1]![j + 1]! + 1 : Math.max(dp[i + 1]![j]!, dp[i]![j + 1]!);
  const removed: number[] = [];
  const added: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      i++;
      j++;
    } else if (j < b.length && (i >= a.length || dp[i]![j + 1]! >= dp[i + 1]![j]!)) added.push(j++);
    else removed.push(i++);
  }
  return { removed, added };
}

function targetLineRanges(source: string, names: readonly string[]): Array<[number, number]> {
  const config = parseConfig(source);
  const ranges: Array<[number, number]> = [];
  for (const d of walkDirectives(config.children)) {
    // autossl's own per-host maps (redirect / HSTS for the covered names only) belong to the edit of a target block
    if (d.name === 'map' && d.block && argValues(d)[1]?.startsWith('$autossl_')) {
      ranges.push([lineColumn(source, d.start).line - 1, lineColumn(source, d.end).line - 1]);
      continue;
    }
    if (d.name !== 'server' || !d.block) continue;
    const serverNames = d.block.children.flatMap((c) => (c.kind === 'directive' && c.name === 'server_name' ? argValues(c) : []));
    if (!serverNames.some((p) => names.some((n) => matchServerName(p, n)))) continue;
    ranges.push([lineColumn(source, d.start).line - 1, lineColumn(source, d.end).line - 1]);
  }
  return ranges;
}

export function linesOutsideTargets(before: string, after: string, names: readonly string[]): string[] {
  const a = before.split('\n');
  const b = after.split('\n');
  const { removed, added } = lineDiff(a, b);
  const inOld = targetLineRanges(before, names);
  const inNew = targetLineRanges(after, names);
  const within = (line: number, ranges: Array<[number, number]>): boolean => ranges.some(([s, e]) => s <= line && line <= e);
  const problems: string[] = [];
  for (const l of removed) if (!within(l, inOld)) problems.push(`-${l + 1}: ${a[l]}`);
  for (const l of added) {
    // a blank separator line right before a new block is part of that block
    if (!within(l, inNew) && !(b[l]!.trim() === '' && (within(l + 1, inNew) || within(l - 1, inNew)))) problems.push(`+${l + 1}: ${b[l]}`);
  }
  return problems;
}
