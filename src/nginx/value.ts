/**
 * The one gate between a value autossl chose or was given (a path, a name, a template's result, a plugin's
 * directive value) and the bytes of an nginx file.
 *
 * nginx reads bytes: `;`, `{`, `}`, `"`, `#`, `$`, whitespace and line breaks are syntax, everything else is part of
 * a word. Files are handled as latin1 strings (one JS character per byte, see parse.ts), so a JS string written with
 * Buffer.from(text, 'latin1') keeps only the low byte of a character above U+00FF: U+013B became `;`, U+017D `}`,
 * U+010A a line break, and a user name of such letters was nginx syntax. Here a value is checked for what nginx would
 * read differently (control and format characters, bidi controls, line separators, lone surrogates; in a single
 * token also quotes, `;`, braces, `#`, `$`, backslash and whitespace) and turned into its UTF-8 bytes: every byte of
 * a multi-byte UTF-8 sequence is >= 0x80, so no character can become syntax, and the path nginx opens is the one
 * Node means by the same string. spliceAndVerify() then checks the edited file keeps the encoding it was read in,
 * and fileBytes() refuses to narrow anything that did not come through here.
 */
import { isUtf8 } from 'node:buffer';
import { AutoSslError, quote, type ErrorCode } from '../errors.js';

/**
 * - `token`: one literal word (a path, a name): no whitespace, quotes, `;{}#\`, and no `$` unless `variables`;
 * - `words`: nginx text already split into words by our lexer (a plugin's directive value): syntax characters are
 *   its own, but no character nginx or a terminal would read differently.
 */
export type ValueKind = 'token' | 'words';

export interface ValueOptions {
  /** What the value is, for the message ("document root", "agent user name"). */
  what: string;
  kind?: ValueKind;
  /** `$name` is meant as an nginx variable (only plugin values; paths and names never). */
  variables?: boolean;
  /** The error code of a refusal (CONFIG_INVALID for config values, PLUGIN_ERROR for plugins...). */
  code?: ErrorCode;
}

// Control characters (C0, DEL, C1), format characters (bidi embeddings and isolates U+202A-U+202E, U+2066-U+2069,
// zero-width characters, BOM, soft hyphen), line and paragraph separators, lone surrogates (no UTF-8 form).
const NEVER = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
/** Spaces other than ASCII space and tab: nginx reads them as part of a word, a reader as a gap. */
const OTHER_SPACE = /[^\P{White_Space} \t\n\r\v\f]/u;
/** What ends, quotes, comments or escapes inside a word, or separates words. */
const TOKEN_SYNTAX = /[\s"'`;{}#\\]/;

/** Why nginx would read `value` differently from what it says, or null when it would not. */
export function nginxValueProblem(value: unknown, options: Omit<ValueOptions, 'what' | 'code'> = {}): string | null {
  if (typeof value !== 'string') return 'it is not a string';
  if (value === '') return 'it is empty';
  const words = options.kind === 'words';
  for (const ch of value) {
    if (NEVER.test(ch) && !(words && ch === '\t')) return `it holds ${describeChar(ch)}, a control, format or separator character`;
  }
  const space = OTHER_SPACE.exec(value);
  if (space) return `it holds ${describeChar(space[0])}, a space nginx would read as part of a word`;
  if (!words) {
    const syntax = TOKEN_SYNTAX.exec(value);
    if (syntax) return `it holds ${describeChar(syntax[0])}, which nginx reads as syntax`;
    if (!options.variables && value.includes('$')) return 'it holds "$", which nginx reads as a variable';
  }
  return null;
}

/** A character as a message shows it: U+202E, never the character itself (it would reorder the message). */
export function describeChar(ch: string): string {
  const cp = ch.codePointAt(0)!;
  const code = `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  return cp > 0x20 && cp < 0x7f ? `"${ch}" (${code})` : code;
}

/**
 * THE gate: `value` (a JS string, as the user, the config or a plugin gave it) as the text to put into an nginx
 * file (its UTF-8 bytes, one character per byte), or a coded error saying why not.
 */
export function nginxValue(value: string, options: ValueOptions): string {
  const problem = nginxValueProblem(value, options);
  if (problem) {
    throw new AutoSslError(options.code ?? 'CONFIG_INVALID', `The ${options.what} ${quote(value, 200)} cannot be written into an nginx file: ${problem}.`, {
      hint:
        options.kind === 'words'
          ? 'Write the value with printable characters only; nothing was written.'
          : 'Use a value without whitespace, quotes, ";", "{", "}", "#", "$", backslashes, control or bidi characters; nothing was written.',
    });
  }
  return toFileText(value);
}

/** A JS string as file text: its UTF-8 bytes, one character per byte (the way files are held, see parse.ts). */
function toFileText(value: string): string {
  // eslint-disable-next-line no-control-regex
  return /^[\u0000-\u007f]*$/.test(value) ? value : Buffer.from(value, 'utf8').toString('latin1');
}

/** A value read from a file (file text) as the JS string it means: UTF-8 when it is valid UTF-8, else byte for byte. */
export function valueFromFile(text: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\u0000-\u007f]*$/.test(text)) return text;
  const bytes = Buffer.from(text, 'latin1');
  return isUtf8(bytes) ? bytes.toString('utf8') : text;
}

/** The encoding a file was read in: UTF-8 (ASCII included) or some 8-bit encoding autossl cannot name. */
export function fileEncoding(source: string): 'utf-8' | '8-bit' {
  // eslint-disable-next-line no-control-regex
  return /^[\u0000-\u007f]*$/.test(source) || isUtf8(Buffer.from(source, 'latin1')) ? 'utf-8' : '8-bit';
}

/**
 * Checks that an edit keeps the file in the encoding it was read in: a UTF-8 file (with non-ASCII bytes) stays valid UTF-8, and into a
 * file that is not UTF-8 no new non-ASCII bytes are written (only bytes copied from the file itself), since nginx
 * would open a path other than the one the value names. Returns why not, or null.
 */
export function encodingProblem(before: string, after: string, inserted: readonly string[]): string | null {
  // eslint-disable-next-line no-control-regex
  const wide = [...inserted].join('').match(/[^\u0000-\u00ff]/);
  if (wide) return `a value holds ${describeChar(wide[0])} that did not pass through nginxValue()`;
  // eslint-disable-next-line no-control-regex
  if (/^[\u0000-\u007f]*$/.test(before)) return null; // ASCII reads the same in any encoding: the edit decides it
  if (fileEncoding(before) === 'utf-8') return fileEncoding(after) === 'utf-8' ? null : 'the file is UTF-8 and the edit would break that';
  for (const text of inserted) {
    for (const run of text.match(/[\u0080-\u00ff]+/g) ?? []) {
      if (!before.includes(run)) return 'the file is not UTF-8 (an 8-bit encoding), and a new value holds characters outside ASCII';
    }
  }
  return null;
}

/** File text as bytes for writing; refuses (never narrows) a character that is not one byte. */
export function fileBytes(text: string, file: string): Buffer {
  // eslint-disable-next-line no-control-regex
  const wide = /[^\u0000-\u00ff]/.exec(text);
  if (wide) {
    throw new AutoSslError(
      'VHOST_EDIT_UNSAFE',
      `${file}: refusing to write ${describeChar(wide[0])} at offset ${wide.index}: it is not a byte of the file (a value that did not pass through nginxValue); nothing was written.`,
    );
  }
  return Buffer.from(text, 'latin1');
}
