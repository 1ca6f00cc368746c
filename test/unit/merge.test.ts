/** The line diff and the three-way revert that undoes one edit among others in the same file. */
import { describe, expect, it } from 'vitest';
import { revertEdit } from '../../src/nginx/merge.js';
import { diffLines, splitLines } from '../../src/line-diff.js';

/** A small seeded PRNG so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function applyHunks(a: string[], b: string[], hunks: ReturnType<typeof diffLines>): string[] {
  const out = [...a];
  for (const h of [...hunks].reverse()) out.splice(h.aStart, h.aEnd - h.aStart, ...b.slice(h.bStart, h.bEnd));
  return out;
}

function lcsLength(a: string[], b: string[]): number {
  const dp = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--)
    for (let j = b.length - 1; j >= 0; j--) dp[i]![j] = a[i] === b[j] ? dp[i + 1]![j + 1]! + 1 : Math.max(dp[i + 1]![j]!, dp[i]![j + 1]!);
  return dp[0]![0]!;
}

describe('diffLines', () => {
  it('turns a into b with a minimal edit, on 2,000 random pairs', () => {
    const rand = rng(42);
    for (let round = 0; round < 2000; round++) {
      const alphabet = 2 + Math.floor(rand() * 5);
      const a = Array.from({ length: Math.floor(rand() * 14) }, () => String.fromCharCode(97 + Math.floor(rand() * alphabet)));
      const b = Array.from({ length: Math.floor(rand() * 14) }, () => String.fromCharCode(97 + Math.floor(rand() * alphabet)));
      const hunks = diffLines(a, b);
      expect(applyHunks(a, b, hunks), `${a.join('')} -> ${b.join('')}`).toEqual(b);
      const kept = a.length - hunks.reduce((s, h) => s + (h.aEnd - h.aStart), 0);
      expect(kept, `${a.join('')} -> ${b.join('')}`).toBe(lcsLength(a, b));
    }
  });

  it('keeps line endings, so joining the lines gives back the bytes', () => {
    for (const text of ['', 'a', 'a\n', 'a\r\nb\r\n', 'x\n\n\ny', '\n']) expect(splitLines(text).join('')).toBe(text);
  });
});

describe('revertEdit', () => {
  const base = 'server {\n    server_name a;\n}\n\nserver {\n    server_name b;\n}\n';
  const withA = base.replace('server_name a;\n', 'server_name a;\n    location /acme { root /x; }\n');
  const withAB = withA.replace('server_name b;\n', 'server_name b;\n    location /acme { root /y; }\n');

  it('gives back the exact bytes when nothing else changed', () => {
    expect(revertEdit(withA, withA, base)).toEqual({ ok: true, text: base });
  });

  it("removes one domain's edit and keeps another's made after it", () => {
    const result = revertEdit(withAB, withA, base);
    expect(result).toEqual({ ok: true, text: base.replace('server_name b;\n', 'server_name b;\n    location /acme { root /y; }\n') });
  });

  it('refuses when the lines around the edit were changed since', () => {
    const touched = withA.replace('    location /acme { root /x; }\n', '    location /acme { root /changed; }\n');
    expect(revertEdit(touched, withA, base).ok).toBe(false);
    const inserted = withA.replace('server_name a;\n', 'server_name a;\n    # a hand edit right here\n');
    expect(revertEdit(inserted, withA, base).ok).toBe(false);
  });

  it('reverses argument changes and CRLF lines', () => {
    const pre = 'a\r\nssl_certificate /old;\r\nb\r\n';
    const post = 'a\r\nssl_certificate /new;\r\nb\r\n';
    const current = 'z\r\n' + post + 'tail\r\n';
    expect(revertEdit(current, post, pre)).toEqual({ ok: true, text: 'z\r\n' + pre + 'tail\r\n' });
  });
});
