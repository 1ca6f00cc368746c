/**
 * Generators of nginx configuration text for the editor fuzz (test/fuzz, scripts/fuzz-editor.ts).
 *
 * A file is generated as a model (directives with their words, blocks, Lua bodies, comments) and rendered with
 * random layout: spaces, tabs, CRLF or LF, blank lines, comments where nginx allows them (after a statement, between
 * words, before `;` or `{`, at the end of a file without a newline), one-line blocks. Every word carries the value
 * nginx gives it, built piece by piece from ngx_conf_read_token's rules, not by our lexer: the model is the oracle
 * the lexer is checked against.
 */
import fc from 'fast-check';

/** One token: as written, and as nginx reads it (quotes removed, \" \' \\ \t \r \n resolved, others kept). */
export interface Tok {
  raw: string;
  value: string;
}

export interface GenDirective {
  kind: 'directive';
  words: Tok[];
  /** Layout between the words (each starts with whitespace; may hold a comment): words.length - 1 of them. */
  seps: string[];
  /** Layout before the `;` or `{`: empty, whitespace, or whitespace and a comment. */
  beforeTerm: string;
  children?: GenItem[];
  /** Layout before each child and before the closing `}`: children.length + 1 of them. */
  gaps?: string[];
  /** A `*_by_lua_block` body, verbatim. */
  lua?: string;
}

export interface GenComment {
  kind: 'comment';
  /** Text from `#` to the end of the line, without the line ending. */
  text: string;
}

export type GenItem = GenDirective | GenComment;

export interface GenFile {
  eol: '\n' | '\r\n';
  items: GenItem[];
  /** Layout before each item and after the last: items.length + 1 of them. */
  gaps: string[];
}

// -------------------------------------------------------------------------------------------------------------
// tokens

const SAFE = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-:=~^*()[]@!%&+,<>?|';
const safeChar = fc.constantFrom(...SAFE.split(''));
const varName = fc.stringMatching(/^[a-z_][a-z0-9_]{0,6}$/);

/** A backslash escape: nginx resolves \" \' \\ \t \r \n and keeps the backslash of any other. */
const escape = (): fc.Arbitrary<Tok> =>
  // an escaped LF continues the word; an escaped CR of a CRLF would leave the LF to end it, so LF only
  fc.constantFrom('"', "'", '\\', 't', 'r', 'n', ' ', ';', '{', '}', '#', '$', 'x', '\n').map((ch) => {
    const resolved: Record<string, string> = { '"': '"', "'": "'", '\\': '\\', t: '\t', r: '\r', n: '\n' };
    return { raw: `\\${ch}`, value: resolved[ch] ?? `\\${ch}` };
  });

const join = (pieces: Tok[]): Tok => ({ raw: pieces.map((p) => p.raw).join(''), value: pieces.map((p) => p.value).join('') });
const plain = (arb: fc.Arbitrary<string>): fc.Arbitrary<Tok> => arb.map((s) => ({ raw: s, value: s }));

/** An unquoted word: `#`, `}`, quotes are ordinary inside it (not first); `{` only in `${var}`. */
export function bareWord(): fc.Arbitrary<Tok> {
  const first = fc.oneof({ weight: 6, arbitrary: plain(safeChar) }, plain(varName.map((n) => `$${n}`)), plain(varName.map((n) => `\${${n}}`)), escape());
  const rest = fc.oneof(
    { weight: 8, arbitrary: plain(safeChar) },
    plain(fc.constantFrom('#', '}', '"', "'", '\u00e9', '\u00ff')),
    plain(varName.map((n) => `$${n}`)),
    plain(varName.map((n) => `\${${n}}`)),
    escape(),
  );
  return fc.tuple(first, fc.array(rest, { maxLength: 6 })).map(([f, r]) => join([f, ...r]));
}

/** A quoted word: `;{}#` and the other quote are ordinary; a literal line break is allowed; escapes as above. */
export function quotedWord(eol: string): fc.Arbitrary<Tok> {
  return fc.constantFrom('"', "'").chain((q) => {
    const piece = fc.oneof(
      { weight: 8, arbitrary: plain(safeChar) },
      plain(fc.constantFrom(' ', '\t', ';', '{', '}', '#', q === '"' ? "'" : '"', '$host', '\u00e9', eol)),
      escape(),
    );
    return fc.array(piece, { maxLength: 8 }).map((pieces) => {
      const inner = join(pieces);
      return { raw: `${q}${inner.raw}${q}`, value: inner.value };
    });
  });
}

export const word = (eol: string): fc.Arbitrary<Tok> => fc.oneof({ weight: 3, arbitrary: bareWord() }, quotedWord(eol));

const NAMES = [
  'listen',
  'server_name',
  'root',
  'index',
  'add_header',
  'set',
  'return',
  'rewrite',
  'try_files',
  'proxy_pass',
  'include',
  'charset',
  'x_y',
  'a',
  'Z9',
];
const BLOCK_NAMES = ['server', 'location', 'if', 'map', 'upstream', 'http', 'events', 'types', 'limit_except', 'b'];
const LUA_NAMES = ['content_by_lua_block', 'access_by_lua_block', 'init_by_lua_block', 'rewrite_by_lua_block', 'header_filter_by_lua_block'];

export const directiveName = fc.constantFrom(...NAMES).map((n) => ({ raw: n, value: n }));

// -------------------------------------------------------------------------------------------------------------
// layout

export const commentText = fc.array(fc.constantFrom(...`${SAFE} \t#{};"'\\$\u00e9\u00ff`.split('')), { maxLength: 12 }).map((c) => `#${c.join('')}`);

/** Whitespace: at least `min` characters of spaces, tabs and line endings. */
const ws = (eol: string, min: number): fc.Arbitrary<string> =>
  fc.array(fc.constantFrom(' ', ' ', '\t', eol), { minLength: min, maxLength: 4 }).map((a) => a.join(''));

/** Between two words: whitespace, sometimes a comment (nginx allows one there) and more whitespace. */
export const sep = (eol: string): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 5, arbitrary: ws(eol, 1) },
    fc.tuple(ws(eol, 1), commentText, ws(eol, 0)).map(([a, c, b]) => `${a}${c}${eol}${b}`),
  );

/** Before `;` or `{`: nothing, whitespace, or whitespace then a comment. */
export const beforeTerm = (eol: string): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constant('') },
    { weight: 2, arbitrary: ws(eol, 1) },
    fc.tuple(ws(eol, 1), commentText, ws(eol, 0)).map(([a, c, b]) => `${a}${c}${eol}${b}`),
  );

/** Before a statement or a closing brace: any whitespace, often a line break and an indent. */
export const gap = (eol: string): fc.Arbitrary<string> =>
  fc.oneof({ weight: 4, arbitrary: fc.constantFrom(eol, `${eol}    `, `${eol}\t`, `${eol}${eol}  `, ' ') }, ws(eol, 0));

// -------------------------------------------------------------------------------------------------------------
// Lua bodies (lua-nginx-module reads them with Lua's string and comment rules)

const luaText = fc.array(fc.constantFrom(...'abc xyz{}()[]=.,;:#\'"'.split('')), { maxLength: 10 }).map((a) => a.join(''));

export function luaBody(eol: string): fc.Arbitrary<string> {
  // no backslash-newline in a string: Lua allows it, but lua-nginx-module's block lexer ends the string there
  const dq = fc
    .array(fc.oneof(fc.constantFrom(..."ab {}[]#;'".split('')), fc.constantFrom('\\"', '\\\\', '\\n')), { maxLength: 6 })
    .map((a) => `"${a.join('')}"`);
  const sq = fc.array(fc.oneof(fc.constantFrom(...'ab {}[]#;"'.split('')), fc.constantFrom("\\'", '\\\\')), { maxLength: 6 }).map((a) => `'${a.join('')}'`);
  const long = fc.tuple(fc.nat(2), luaText).map(([level, text]) => {
    const eq = '='.repeat(level);
    const closer = `]${eq}]`;
    return `[${eq}[${text.split(closer).join('')}${closer}`;
  });
  const lineComment = luaText.map((t) => `--${t.replace(/^\[=*\[/, '')}${eol}`);
  const longComment = long.map((l) => `--${l}`);
  const code = fc.constantFrom('local a = 1', 'ngx.say(a)', 'x = t[1]', 'if a then return end', 'b = a .. "}"', 'ngx.exit(204)', 'local t = {}');
  const piece = fc.letrec<{ piece: string; table: string }>((tie) => ({
    piece: fc.oneof({ depthSize: 'small', withCrossShrink: true }, code, dq, sq, long, lineComment, longComment, tie('table')),
    table: fc.array(tie('piece'), { maxLength: 3 }).map((items) => `{ ${items.join(', ')} }`),
  })).piece;
  return fc
    .array(fc.tuple(piece, fc.constantFrom(' ', eol, `${eol}  `)), { maxLength: 5 })
    .map((a) => (a.length ? ` ${a.map(([p, w]) => p + w).join('')}` : ''));
}

// -------------------------------------------------------------------------------------------------------------
// files

function directive(eol: string, depth: number, item: fc.Arbitrary<GenItem>): fc.Arbitrary<GenDirective> {
  const simple = fc
    .tuple(directiveName, fc.array(word(eol), { maxLength: 4 }))
    .chain(([name, args]) =>
      fc
        .tuple(fc.array(sep(eol), { minLength: args.length, maxLength: args.length }), beforeTerm(eol))
        .map(([seps, bt]): GenDirective => ({ kind: 'directive', words: [name, ...args], seps, beforeTerm: bt })),
    );
  const block = fc
    .tuple(fc.constantFrom(...BLOCK_NAMES), fc.array(word(eol), { maxLength: 2 }), fc.array(item, { maxLength: depth < 2 ? 4 : 0 }))
    .chain(([name, args, children]) =>
      fc
        .tuple(
          fc.array(sep(eol), { minLength: args.length, maxLength: args.length }),
          beforeTerm(eol),
          fc.array(gap(eol), { minLength: children.length + 1, maxLength: children.length + 1 }),
        )
        .map(([seps, bt, gaps]): GenDirective => ({ kind: 'directive', words: [{ raw: name, value: name }, ...args], seps, beforeTerm: bt, children, gaps })),
    );
  const lua = fc
    .tuple(fc.constantFrom(...LUA_NAMES), beforeTerm(eol), luaBody(eol))
    .map(([name, bt, body]): GenDirective => ({ kind: 'directive', words: [{ raw: name, value: name }], seps: [], beforeTerm: bt, lua: body }));
  return fc.oneof({ weight: 6, arbitrary: simple }, { weight: 3, arbitrary: block }, { weight: 1, arbitrary: lua });
}

function items(eol: string): fc.Arbitrary<GenItem> {
  const at = (depth: number): fc.Arbitrary<GenItem> =>
    fc.oneof(
      {
        weight: 5,
        arbitrary: directive(eol, depth, depth < 2 ? fc.constant(null).chain(() => at(depth + 1)) : fc.constant<GenItem>({ kind: 'comment', text: '#leaf' })),
      },
      { weight: 1, arbitrary: commentText.map((text): GenComment => ({ kind: 'comment', text })) },
    );
  return at(0);
}

export function genFile(): fc.Arbitrary<GenFile> {
  return fc
    .constantFrom<'\n' | '\r\n'>('\n', '\r\n')
    .chain((eol) =>
      fc
        .array(items(eol), { maxLength: 6 })
        .chain((list) => fc.array(gap(eol), { minLength: list.length + 1, maxLength: list.length + 1 }).map((gaps) => ({ eol, items: list, gaps }))),
    );
}

// -------------------------------------------------------------------------------------------------------------
// rendering

/**
 * Renders a model. A word ending in a bare `$` never occurs, so a `{` right after a word opens a block as meant;
 * a comment is always followed by a line ending, except as the very last thing in the file.
 */
export function render(file: GenFile): string {
  const { eol } = file;
  const renderItems = (list: readonly GenItem[], gaps: readonly string[], last: boolean): string => {
    let out = '';
    list.forEach((item, i) => {
      out += gaps[i]!;
      if (item.kind === 'comment') {
        // a comment runs to the end of the line: it needs one unless it ends the file
        out += item.text;
        const isLast = last && i === list.length - 1 && gaps[i + 1] === '';
        if (!isLast) out += eol;
        return;
      }
      out += renderDirective(item);
    });
    return out + gaps[list.length]!;
  };
  const renderDirective = (d: GenDirective): string => {
    let out = d.words[0]!.raw;
    d.words.slice(1).forEach((w, i) => (out += d.seps[i]! + w.raw));
    // after a quoted word nginx needs a space before anything but ; { ) : a comment there needs whitespace first
    out += d.beforeTerm;
    if (d.lua !== undefined) return `${out}{${d.lua}}`;
    if (!d.children) return `${out};`;
    return `${out}{${renderItems(d.children, d.gaps!, false)}}`;
  };
  return renderItems(file.items, file.gaps, true);
}

/** What our parser must read from a rendered model: names, values and raws of words, comments, Lua bodies. */
export interface Shape {
  kind: 'directive' | 'comment';
  text: string;
  words?: Array<[string, string]>;
  inner?: string[];
  lua?: string;
  children?: Shape[];
}

export function expectedShape(list: readonly GenItem[]): Shape[] {
  return list.map((item) => {
    if (item.kind === 'comment') return { kind: 'comment', text: item.text };
    const inner = [...item.seps, item.beforeTerm].flatMap((s) => [...s.matchAll(/#[^\r\n]*/g)].map((m) => m[0]));
    const shape: Shape = { kind: 'directive', text: item.words[0]!.value, words: item.words.map((w) => [w.raw, w.value]), inner };
    if (item.lua !== undefined) shape.lua = item.lua;
    if (item.children) shape.children = expectedShape(item.children);
    return shape;
  });
}
