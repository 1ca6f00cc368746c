/**
 * A lossless reader for nginx configuration files.
 *
 * It follows nginx's own tokenizer (src/core/ngx_conf_file.c, ngx_conf_read_token) rather than a grammar of
 * our own, because users' files are only "valid" in the sense that nginx accepts them:
 *  - `#` starts a comment only where a token may start; inside a word (`a#b`) it is an ordinary character;
 *  - a word ends at whitespace, `;` or `{` (but `${` continues a variable); `}` inside a word is a character;
 *  - `"..."` and `'...'` are quoted tokens in which `;{}#` are ordinary; a backslash escapes the next character
 *    everywhere (`\ ` keeps a space inside a word);
 *  - after a closing quote only whitespace, `;`, `{` or `)` may follow;
 *  - `*_by_lua_block { ... }` bodies are Lua, read with Lua's rules for strings and comments (lua-nginx-module
 *    does the same), so a `}` inside a Lua string does not close the block.
 *
 * Every node keeps its byte range in the source, so edits are text splices and every byte we do not touch
 * stays as it was. Files are handled as latin1 strings: one JS character per byte, so offsets are byte offsets
 * and any encoding (UTF-8 comments, stray bytes) survives a read-modify-write unchanged.
 */
import { AutoSslError } from '../errors.js';

export interface Word {
  /** The bytes as written, quotes and backslashes included. */
  raw: string;
  /** The value nginx sees: quotes removed, escapes resolved. */
  value: string;
  start: number;
  end: number;
  quoted: boolean;
}

export interface Comment {
  kind: 'comment';
  text: string;
  start: number;
  end: number;
}

export interface Directive {
  kind: 'directive';
  name: string;
  /** args[0] is the directive name. */
  words: Word[];
  /** Offset of the name's first byte. */
  start: number;
  /** Offset just past the terminating `;` or the block's closing `}`. */
  end: number;
  /** Comments written between the directive's words (rare, but nginx allows them). */
  innerComments: Comment[];
  block?: Block;
  parent: Directive | null;
}

export interface Block {
  /** Offset of `{`. */
  open: number;
  /** Offset of the matching `}`. */
  close: number;
  children: Node[];
  /** For `*_by_lua_block`: the Lua body is kept verbatim and not parsed as nginx. */
  verbatim?: string;
}

export type Node = Directive | Comment;

export interface ParsedConfig {
  file: string;
  source: string;
  children: Node[];
  /** The line ending the file uses (new lines we insert use it too). */
  eol: '\n' | '\r\n';
}

/** 1-based line and column of an offset, for messages that match what an editor shows. */
export function lineColumn(source: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < source.length; i++) {
    if (source.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

function isSpace(ch: string | undefined): boolean {
  return ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n';
}

/** nginx's unescaping of a word (ngx_conf_read_token): \" \' \\ drop the backslash; \t \r \n become controls. */
function unescape(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '\\' && i + 1 < text.length) {
      const next = text[i + 1]!;
      if (next === '"' || next === "'" || next === '\\') {
        out += next;
        i++;
        continue;
      }
      if (next === 't' || next === 'r' || next === 'n') {
        out += next === 't' ? '\t' : next === 'r' ? '\r' : '\n';
        i++;
        continue;
      }
    }
    out += ch;
  }
  return out;
}

class Parser {
  private pos = 0;
  constructor(
    private readonly file: string,
    private readonly src: string,
  ) {}

  fail(offset: number, message: string): never {
    const { line, column } = lineColumn(this.src, offset);
    throw new AutoSslError('NGINX_PARSE_ERROR', `${this.file}:${line}:${column}: ${message}`, {
      details: { file: this.file, line, column },
    });
  }

  parseFile(): Node[] {
    const children = this.parseChildren(null);
    if (this.pos < this.src.length) this.fail(this.pos, 'unexpected "}"');
    return children;
  }

  private skipSpace(): void {
    while (this.pos < this.src.length && isSpace(this.src[this.pos])) this.pos++;
  }

  private readComment(): Comment {
    const start = this.pos;
    let end = this.src.indexOf('\n', start);
    if (end < 0) end = this.src.length;
    // A CR before LF belongs to the line ending, not to the comment.
    const textEnd = end > start && this.src[end - 1] === '\r' ? end - 1 : end;
    this.pos = textEnd;
    return { kind: 'comment', text: this.src.slice(start, textEnd), start, end: textEnd };
  }

  /** Reads children until a `}` (left unconsumed) or the end of the file. */
  private parseChildren(parent: Directive | null): Node[] {
    const children: Node[] = [];
    for (;;) {
      this.skipSpace();
      if (this.pos >= this.src.length) {
        if (parent)
          this.fail(this.pos, `unexpected end of file, expecting "}" to close "${parent.name}" opened at line ${lineColumn(this.src, parent.start).line}`);
        return children;
      }
      const ch = this.src[this.pos]!;
      if (ch === '#') {
        children.push(this.readComment());
        continue;
      }
      if (ch === '}') {
        if (!parent) this.fail(this.pos, 'unexpected "}"');
        return children;
      }
      if (ch === ';' || ch === '{') this.fail(this.pos, `unexpected "${ch}"`);
      children.push(this.parseDirective(parent));
    }
  }

  private parseDirective(parent: Directive | null): Directive {
    const start = this.pos;
    const words: Word[] = [];
    const innerComments: Comment[] = [];
    for (;;) {
      this.skipSpace();
      if (this.pos >= this.src.length) this.fail(this.pos, 'unexpected end of file, expecting ";" or "}"');
      const ch = this.src[this.pos]!;
      if (ch === '#') {
        innerComments.push(this.readComment());
        continue;
      }
      if (ch === ';') {
        this.pos++;
        return { kind: 'directive', name: words[0]!.value, words, start, end: this.pos, innerComments, parent };
      }
      if (ch === '{') {
        const directive: Directive = { kind: 'directive', name: words[0]!.value, words, start, end: -1, innerComments, parent };
        const open = this.pos;
        this.pos++;
        if (directive.name.endsWith('_by_lua_block')) {
          const close = this.skipLua(open);
          directive.block = { open, close, children: [], verbatim: this.src.slice(open + 1, close) };
        } else {
          const children = this.parseChildren(directive);
          directive.block = { open, close: this.pos, children };
        }
        this.pos++; // the closing brace
        directive.end = this.pos;
        return directive;
      }
      if (ch === '}') this.fail(this.pos, 'unexpected "}"');
      words.push(this.readWord());
    }
  }

  private readWord(): Word {
    const start = this.pos;
    const first = this.src[start]!;
    if (first === '"' || first === "'") {
      let i = start + 1;
      for (;;) {
        if (i >= this.src.length) this.fail(start, `unterminated ${first === '"' ? 'double' : 'single'}-quoted string`);
        const ch = this.src[i]!;
        if (ch === '\\') {
          i += 2;
          continue;
        }
        if (ch === first) break;
        i++;
      }
      this.pos = i + 1;
      const next = this.src[this.pos];
      if (next !== undefined && !isSpace(next) && next !== ';' && next !== '{' && next !== ')') {
        this.fail(this.pos, `unexpected "${next}" after a quoted string`);
      }
      const raw = this.src.slice(start, this.pos);
      return { raw, value: unescape(raw.slice(1, -1)), start, end: this.pos, quoted: true };
    }
    let i = start;
    let variable = false;
    while (i < this.src.length) {
      const ch = this.src[i]!;
      if (ch === '\\') {
        i += 2;
        variable = false;
        continue;
      }
      if (ch === '{' && variable) {
        i++;
        continue;
      }
      if (isSpace(ch) || ch === ';' || ch === '{') break;
      variable = ch === '$';
      i++;
    }
    if (i > this.src.length) this.fail(start, 'unexpected end of file after "\\"');
    this.pos = i;
    const raw = this.src.slice(start, i);
    return { raw, value: unescape(raw), start, end: i, quoted: false };
  }

  /** Finds the `}` closing a Lua block body that starts after `open`, honouring Lua strings and comments. */
  private skipLua(open: number): number {
    const src = this.src;
    let depth = 0;
    let i = open + 1;
    const longBracket = (at: number): number => {
      // "[" "="* "[" : returns the level (number of "="), or -1.
      if (src[at] !== '[') return -1;
      let j = at + 1;
      while (src[j] === '=') j++;
      return src[j] === '[' ? j - at - 1 : -1;
    };
    const skipLong = (at: number, level: number): number => {
      const closer = ']' + '='.repeat(level) + ']';
      const end = src.indexOf(closer, at + level + 2);
      if (end < 0) this.fail(at, 'unterminated Lua long string or comment');
      return end + closer.length;
    };
    while (i < src.length) {
      const ch = src[i]!;
      if (ch === '-' && src[i + 1] === '-') {
        const level = longBracket(i + 2);
        if (level >= 0) {
          i = skipLong(i + 2, level);
        } else {
          const nl = src.indexOf('\n', i);
          i = nl < 0 ? src.length : nl;
        }
        continue;
      }
      if (ch === '"' || ch === "'") {
        let j = i + 1;
        while (j < src.length && src[j] !== ch) {
          if (src[j] === '\\') j++;
          else if (src[j] === '\n') this.fail(i, 'unterminated Lua string');
          j++;
        }
        if (j >= src.length) this.fail(i, 'unterminated Lua string');
        i = j + 1;
        continue;
      }
      if (ch === '[') {
        const level = longBracket(i);
        if (level >= 0) {
          i = skipLong(i, level);
          continue;
        }
      }
      if (ch === '{') depth++;
      if (ch === '}') {
        if (depth === 0) {
          this.pos = i;
          return i;
        }
        depth--;
      }
      i++;
    }
    this.fail(open, 'unexpected end of file inside a Lua block');
  }
}

export function parseConfig(source: string, file = '<config>'): ParsedConfig {
  const parser = new Parser(file, source);
  const children = parser.parseFile();
  const crlf = source.indexOf('\r\n');
  const lf = source.indexOf('\n');
  return { file, source, children, eol: crlf >= 0 && crlf < lf ? '\r\n' : '\n' };
}

/** Visits every directive in document order, depth first. */
export function* walkDirectives(nodes: readonly Node[]): Generator<Directive> {
  for (const node of nodes) {
    if (node.kind !== 'directive') continue;
    yield node;
    if (node.block) yield* walkDirectives(node.block.children);
  }
}

export function childDirectives(parent: Directive | ParsedConfig, name?: string): Directive[] {
  const nodes = 'kind' in parent ? (parent.block?.children ?? []) : parent.children;
  return nodes.filter((n): n is Directive => n.kind === 'directive' && (name === undefined || n.name === name));
}

/** Directive arguments as nginx sees them (name excluded). */
export function argValues(directive: Directive): string[] {
  return directive.words.slice(1).map((w) => w.value);
}
