/** A small unified diff for `--dry-run` and `vhost show --diff` (edits are local: common ends are trimmed first). */
export function unifiedDiff(file: string, before: string, after: string, context = 3): string {
  const a = before.split('\n');
  const b = after.split('\n');
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const midA = a.slice(start, endA);
  const midB = b.slice(start, endB);
  // LCS table over the changed middle only
  const dp: number[][] = Array.from({ length: midA.length + 1 }, () => new Array<number>(midB.length + 1).fill(0));
  for (let i = midA.length - 1; i >= 0; i--) for (let j = midB.length - 1; j >= 0; j--) dp[i]![j] = midA[i] === midB[j] ? dp[i + 1]![j + 1]! + 1 : Math.max(dp[i + 1]![j]!, dp[i]![j + 1]!);
  const ops: Array<{ op: ' ' | '-' | '+'; line: string }> = [];
  for (let k = Math.max(0, start - context); k < start; k++) ops.push({ op: ' ', line: a[k]! });
  let i = 0;
  let j = 0;
  while (i < midA.length || j < midB.length) {
    if (i < midA.length && j < midB.length && midA[i] === midB[j]) {
      ops.push({ op: ' ', line: midA[i]! });
      i++;
      j++;
    } else if (j < midB.length && (i >= midA.length || dp[i]![j + 1]! >= dp[i + 1]![j]!)) ops.push({ op: '+', line: midB[j++]! });
    else ops.push({ op: '-', line: midA[i++]! });
  }
  for (let k = endA; k < Math.min(a.length, endA + context); k++) ops.push({ op: ' ', line: a[k]! });
  const oldStart = Math.max(0, start - context) + 1;
  const oldLen = ops.filter((o) => o.op !== '+').length;
  const newLen = ops.filter((o) => o.op !== '-').length;
  const visible = (s: string): string => s.replace(/\r$/, '');
  return [`--- ${file}`, `+++ ${file} (autossl)`, `@@ -${oldStart},${oldLen} +${oldStart},${newLen} @@`, ...ops.map((o) => `${o.op}${visible(o.line)}`)].join('\n') + '\n';
}
