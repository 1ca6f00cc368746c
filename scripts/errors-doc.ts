/**
 * Writes docs/errors.md from src/errors.ts: every code, its kind (what the CLI exits and the agent answers) and its
 * hint. Run after adding a code: `npm run docs:errors`; test/unit/errors-doc.test.ts fails while the committed
 * file differs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { statusOf } from '../src/agent/answers.js';
import { ERROR_CODES, errorKind, type ErrorCode } from '../src/errors.js';

const KINDS = {
  input: 'the request, the config or the command line is wrong (CLI exit 2)',
  conflict: 'the world is not in the state the request needs (CLI exit 1)',
  unavailable: 'a service or resource autossl needs is missing or busy (CLI exit 1)',
  failed: 'the work was tried and failed (CLI exit 1)',
  internal: 'a bug: please report it (CLI exit 1)',
} as const;

/** docs/errors.md as it should read for the codes in src/errors.ts. */
export function renderErrorsDoc(): string {
  const escape = (text: string): string => text.replace(/\|/g, '\\|');
  const rows = (Object.entries(ERROR_CODES) as Array<[ErrorCode, string]>).map(
    ([code, hint]) => `| \`${code}\` | ${errorKind(code)} | ${statusOf(code)} | ${escape(hint)} |`,
  );
  return [
    '# Error codes',
    '',
    '<!-- generated from src/errors.ts by `npm run docs:errors`: edit the codes and hints there, not here -->',
    '',
    'Every failure a user can see is an `AutoSslError`: a stable `code` for machines (panels, scripts, tests), a',
    'message that names the problem, and a `hint` that names the fix. Codes are part of the public interface: new',
    'ones are added, none is renamed. What each fault leaves behind, and how to get out of it: README',
    '"Failure behaviour".',
    '',
    '| kind | meaning |',
    '|---|---|',
    ...Object.entries(KINDS).map(([kind, meaning]) => `| ${kind} | ${meaning} |`),
    '',
    '| code | kind | agent HTTP status | hint |',
    '|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = path.resolve(import.meta.dirname, '../../docs/errors.md');
  fs.writeFileSync(file, renderErrorsDoc());
  process.stdout.write(`wrote ${file}\n`);
}
