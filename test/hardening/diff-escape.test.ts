/**
 * Issue 19, found 1: the `--dry-run` diff printed an injected line without its `+` (a forged diff). Whatever a
 * terminal would act on instead of showing (a CR inside a line, ESC sequences, bidi controls, line separators) is
 * printed escaped, so every printed line starts with its own op and reads in order; such a diff says so first.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { diffBytes, ESCAPED_NOTE, unifiedDiff } from '../../src/diff.js';

/** File text (one char per byte) of a Unicode string, as the editor holds UTF-8 files. */
const bytes = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');
/** The printed diff as a UTF-8 terminal reads it. */
const printed = (diff: string): string => diffBytes(diff).toString('utf8');

describe('printed diffs cannot be forged', () => {
  it('a CR inside an added line cannot hide its +, an ESC sequence cannot move the cursor', () => {
    const before = 'server {\n    root /srv/a;\n}\n';
    const after = 'server {\n    root /srv/a;\n    add_header X "a\r    root /srv/a;";\n    add_header Y "\u001b[1A\u001b[2K";\n}\n';
    const out = printed(unifiedDiff('/etc/nginx/sites/a.conf', before, after));
    expect(out.startsWith(ESCAPED_NOTE)).toBe(true);
    expect(out).toContain('+    add_header X "a\\x0d    root /srv/a;";\n');
    expect(out).toContain('+    add_header Y "\\x1b[1A\\x1b[2K";\n');
    // eslint-disable-next-line no-control-regex
    expect(out.replace(/\r\n/g, '\n')).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/);
  });

  it('bidi controls and line separators in a UTF-8 file are escaped; other UTF-8 text is shown as it is', () => {
    const before = bytes('# café\nserver {\n}\n');
    const after = bytes('# café\nserver {\n    root "/srv/\u202eelif.conf\u2066x\u2069\u2028y";\n}\n');
    const out = printed(unifiedDiff('/etc/nginx/a.conf', before, after));
    expect(out).toContain('+    root "/srv/\\u202eelif.conf\\u2066x\\u2069\\u2028y";\n');
    expect(out).toContain(' # café\n');
    expect(out).not.toMatch(/[\u202a-\u202e\u2066-\u2069\u2028\u2029]/);
  });

  it('a CRLF file keeps its line endings (the diff still applies), and a clean diff has no note', () => {
    const out = unifiedDiff('/a.conf', 'a;\r\nb;\r\n', 'a;\r\nc;\r\n');
    expect(out).not.toContain(ESCAPED_NOTE);
    expect(out).toContain('+c;\r\n');
  });

  it('a hostile file name cannot forge a header line, in any script', () => {
    const out = printed(unifiedDiff('/etc/nginx/x\u202e\nfoo\u0122.conf', 'a\n', 'b\n'));
    const [minus, plus] = out.split('\n');
    expect(minus).toBe('--- "/etc/nginx/x\\342\\200\\256\\nfooĢ.conf"\t(current)');
    expect(plus!.startsWith('+++ "')).toBe(true);
  });

  it('random files: every printed line starts with an op, a header, @@ or the markers, and holds nothing unshowable', () => {
    const text = fc
      .array(fc.oneof(fc.string({ unit: 'binary', maxLength: 6 }), fc.constantFrom('\r', '\n', '\r\n', '\u001b', '\u202e', '\u2028', '\u0085', '\t')), {
        maxLength: 30,
      })
      .map((p) => bytes(p.join('')));
    fc.assert(
      fc.property(text, text, (before, after) => {
        const out = printed(unifiedDiff('/a.conf', before, after));
        for (const line of out.split('\n').slice(0, -1)) {
          expect(line).toMatch(/^([-+ @\\#]|$)/);
          // eslint-disable-next-line no-control-regex
          expect(line.replace(/\r$/, '')).not.toMatch(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\u2028\u2029\u200b-\u200f\ufeff]/);
        }
      }),
      { numRuns: 300 },
    );
  });
});
