/**
 * Issue 12, defect 8(d): printed diffs must apply with the real `patch`. They dropped the `\r` of CRLF files and
 * counted one line too many in the last hunk's header, so `patch` rejected them (or applied them with fuzz and
 * mixed line endings). Every case here is applied twice with GNU patch, as a user would: `patch FILE < diff` and,
 * from `/`, `patch -p0 < diff` with the diff's absolute name; the result must be byte-identical to the edit,
 * applied without fuzz or offset.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { unifiedDiff } from '../../src/diff.js';
import { makeTree, runIssueEdits } from '../helpers/nginx-fixture.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-diff-'));
let seq = 0;

/** Applies the diff of before -> after with patch both ways; returns what patch left in the file. */
async function applyWithPatch(before: string, after: string, name = `f${seq++}.conf`): Promise<string[]> {
  const results: string[] = [];
  for (const mode of ['file', 'p0'] as const) {
    const file = path.join(dir, `${mode}-${name}`);
    fs.writeFileSync(file, before, 'latin1');
    const diff = Buffer.from(unifiedDiff(file, before, after), 'latin1'); // the files' own bytes (diffBytes)
    const args =
      mode === 'file' ? ['--batch', '--reject-file=-', '--no-backup-if-mismatch', file] : ['--batch', '--reject-file=-', '--no-backup-if-mismatch', '-p0'];
    const run = await execa('patch', args, { input: diff, cwd: '/', reject: false });
    if (run.exitCode !== 0 || /fuzz|offset/i.test(run.stdout))
      throw new Error(`patch (${mode}) exit ${run.exitCode}: ${run.stdout}${run.stderr}\n--- diff ---\n${diff.toString('latin1')}`);
    results.push(fs.readFileSync(file, 'latin1'));
  }
  return results;
}

const lines = (n: number, eol: string, last = true) => Array.from({ length: n }, (_, i) => `line ${i + 1};`).join(eol) + (last ? eol : '');

describe('printed diffs apply with patch', () => {
  const cases: Array<[string, string, string]> = [];
  for (const [eolName, eol] of [
    ['LF', '\n'],
    ['CRLF', '\r\n'],
  ] as const) {
    const base = lines(40, eol);
    const L = base.split(eol);
    const edit = (f: (l: string[]) => void): string => {
      const copy = [...L];
      f(copy);
      return copy.join(eol);
    };
    cases.push(
      [`${eolName}: insert at the start`, base, edit((l) => l.unshift('new first;'))],
      [`${eolName}: insert in the middle`, base, edit((l) => l.splice(20, 0, '    listen 443 ssl;', '    ssl_certificate x;'))],
      [`${eolName}: change the last line`, base, edit((l) => (l[39] = 'changed last;'))],
      [`${eolName}: append at the end`, base, edit((l) => l.splice(40, 0, 'appended;'))],
      [`${eolName}: three hunks far apart`, base, edit((l) => ((l[1] = 'a;'), l.splice(20, 1), (l[37] = 'z;')))],
      [`${eolName}: no newline at the end, before and after`, lines(10, eol, false), lines(10, eol, false).replace('line 10;', 'line ten;')],
      [`${eolName}: a newline added at the end`, lines(10, eol, false), lines(10, eol)],
      [`${eolName}: the final newline removed`, lines(10, eol), lines(10, eol, false)],
      [`${eolName}: empty to something`, '', lines(3, eol)],
      [`${eolName}: everything deleted`, lines(3, eol), ''],
    );
  }
  cases.push([
    'every line of 3,000 changed (past the edit-distance bound: one replacement hunk)',
    lines(3000, '\n'),
    lines(3000, '\n').replace(/line/g, 'LINE'),
  ]);
  cases.push([
    'bytes beyond ASCII (UTF-8 and a raw 0xff) survive',
    '# caf\u00c3\u00a9 \u00ff\nlisten 80;\n',
    '# caf\u00c3\u00a9 \u00ff\nlisten 80;\nlisten 443 ssl;\n',
  ]);

  it.each(cases)('%s', async (_name, before, after) => {
    expect(await applyWithPatch(before, after)).toEqual([after, after]);
  });

  it('changes far apart are separate hunks with exact counts', () => {
    const before = lines(40, '\n');
    const after = before.replace('line 2;\n', 'line two;\n').replace('line 39;\n', 'line thirty-nine;\n');
    const diff = unifiedDiff('/x.conf', before, after);
    expect(diff.match(/^@@ .* @@$/gm)).toEqual(['@@ -1,5 +1,5 @@', '@@ -36,5 +36,5 @@']);
    expect(diff.split('\n')[0]).toBe('--- /x.conf\t(current)');
  });

  it('a file name with a newline or tab is quoted, so it cannot forge diff lines', async () => {
    const name = 'we\tird\n+++ forged';
    const diff = unifiedDiff(`/tmp/${name}`, 'a\n', 'b\n');
    expect(diff.split('\n').slice(0, 2)).toEqual(['--- "/tmp/we\\tird\\n+++ forged"\t(current)', '+++ "/tmp/we\\tird\\n+++ forged"\t(autossl)']);
    // GNU patch 2.7.6 applies it, given the file or reading the name from the diff (-p0); patch 2.8 refuses a
    // quoted name with such bytes ("Invalid byte sequence"). Either way the file is the edit or untouched, and no
    // line of the name is read as a header of its own (no file "forged" appears).
    for (const mode of ['file', 'p0'] as const) {
      const file = path.join(dir, `${mode}-${name}`);
      fs.writeFileSync(file, 'a\n');
      const before = fs.readdirSync(dir).sort();
      const args = ['--batch', '--reject-file=-', '--no-backup-if-mismatch', ...(mode === 'file' ? [file] : ['-p0'])];
      const run = await execa('patch', args, { input: unifiedDiff(file, 'a\n', 'b\n'), cwd: '/', reject: false });
      if (run.exitCode !== 0) expect(run.stdout + run.stderr, mode).toMatch(/Invalid byte sequence|invalid|refus/i);
      expect(fs.readFileSync(file, 'latin1'), mode).toBe(run.exitCode === 0 ? 'b\n' : 'a\n');
      expect(fs.readdirSync(dir).sort(), mode).toEqual(before);
    }
    expect(fs.existsSync('/forged') || fs.existsSync(path.join(dir, 'forged'))).toBe(false);
  });

  it('random files and edits: LF or CRLF, with or without a final newline, 60 cases', async () => {
    const line = fc.stringMatching(/^[ -~\t]{0,12}$/);
    await fc.assert(
      fc.asyncProperty(
        fc.array(line, { maxLength: 30 }),
        fc.array(fc.tuple(fc.nat(), fc.nat(3), fc.array(line, { maxLength: 3 })), { maxLength: 4 }),
        fc.boolean(),
        fc.boolean(),
        async (base, edits, crlf, finalNewline) => {
          const eol = crlf ? '\r\n' : '\n';
          const after = [...base];
          for (const [at, remove, insert] of edits) after.splice(at % (after.length + 1), remove, ...insert);
          const text = (l: string[]) => (l.length ? l.join(eol) + (finalNewline ? eol : '') : '');
          expect(await applyWithPatch(text(base), text(after))).toEqual([text(after), text(after)]);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('the diff of a real CRLF edit (challenge + HTTPS) applies with patch', async () => {
    const site =
      'server {\r\n    listen 80;\r\n    server_name crlf.test;\r\n    root {{DIR}}/www;\r\n\r\n    location / {\r\n        try_files $uri =404;\r\n    }\r\n}\r\n';
    const t = await makeTree(site);
    const original = fs.readFileSync(t.site, 'latin1');
    await runIssueEdits(t, { names: ['crlf.test'], redirect: true });
    const edited = fs.readFileSync(t.site, 'latin1');
    expect(edited).not.toBe(original);
    expect(edited.replace(/\r\n/g, '')).not.toContain('\n'); // the editor kept CRLF
    expect(await applyWithPatch(original, edited)).toEqual([edited, edited]);
  });
});
