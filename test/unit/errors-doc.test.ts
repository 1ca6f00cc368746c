/**
 * docs/errors.md is generated from src/errors.ts (scripts/errors-doc.ts): a code or hint changed without
 * `npm run docs:errors` fails here, so the page never goes stale.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderErrorsDoc } from '../../scripts/errors-doc.js';
import { ERROR_CODES } from '../../src/errors.js';

const FILE = path.resolve(import.meta.dirname, '../../docs/errors.md');

describe('docs/errors.md', () => {
  it('is what scripts/errors-doc.ts makes of src/errors.ts today (run npm run docs:errors after changing a code)', () => {
    expect(fs.readFileSync(FILE, 'utf8')).toBe(renderErrorsDoc());
  });

  it('has one row per code, with its hint', () => {
    const doc = renderErrorsDoc();
    for (const [code, hint] of Object.entries(ERROR_CODES)) (expect(doc).toContain(`| \`${code}\` |`), expect(doc).toContain(hint.replace(/\|/g, '\\|')));
  });
});
