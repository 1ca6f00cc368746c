/**
 * The splice engine: every edit to a user's file is a replacement of a byte range, placed with the
 * neighbours' indentation and the file's own line ending. After splicing, the result is parsed again and
 * compared statement by statement with the original (verifySplices): anything other than the intended
 * additions and argument changes (a statement moved, swallowed, or a comment turned into code) refuses the
 * edit before a byte is written.
 */
import { AutoSslError } from '../errors.js';
import { parseConfig, type Directive, type ParsedConfig } from './parse.js';
import { fingerprint } from './fingerprint.js';
import { encodingProblem } from './value.js';

export interface Splice {
  start: number;
  end: number;
  text: string;
  /** insert: new statements only; args: replaces one directive's arguments; remove: drops whole statements. */
  kind: 'insert' | 'args' | 'remove';
  /** Human description for --dry-run and logs. */
  why: string;
}

/** A statement to place: a directive, or a block with its children. Arguments are written as raw nginx text. */
export interface NewStatement {
  name: string;
  args: string[];
  children?: NewStatement[];
}

function lineStart(src: string, offset: number): number {
  const i = src.lastIndexOf('\n', offset - 1);
  return i + 1;
}

/** The whitespace that starts the line holding `offset`. */
export function indentOf(src: string, offset: number): string {
  const start = lineStart(src, offset);
  return /^[ \t]*/.exec(src.slice(start, offset))![0];
}

/** The indentation one level deeper: the file's own habit (tabs or N spaces), 4 spaces if it has none. */
export function indentUnit(config: ParsedConfig): string {
  const counts = new Map<string, number>();
  const visit = (dir: Directive): void => {
    if (!dir.block || dir.block.verbatim !== undefined) return;
    const outer = indentOf(config.source, dir.start);
    for (const child of dir.block.children) {
      if (lineStart(config.source, child.start) === lineStart(config.source, dir.start)) continue;
      const inner = indentOf(config.source, child.start);
      if (inner.startsWith(outer) && inner.length > outer.length) {
        const unit = inner.slice(outer.length);
        counts.set(unit, (counts.get(unit) ?? 0) + 1);
      }
      if (child.kind === 'directive') visit(child);
    }
  };
  for (const node of config.children) if (node.kind === 'directive') visit(node);
  let best = '    ';
  let bestCount = 0;
  for (const [unit, count] of counts) if (count > bestCount) [best, bestCount] = [unit, count];
  return best;
}

/** Offset of the end of the line that holds `offset` (before its CR/LF), skipping a same-line comment. */
function endOfLine(src: string, offset: number): number {
  let i = src.indexOf('\n', offset);
  if (i < 0) i = src.length;
  if (i > 0 && src[i - 1] === '\r') i--;
  return i;
}

export function renderStatements(statements: readonly NewStatement[], indent: string, unit: string, eol: string): string[] {
  const lines: string[] = [];
  for (const s of statements) {
    const head = [s.name, ...s.args].join(' ');
    if (s.children) {
      lines.push(`${indent}${head} {`);
      lines.push(...renderStatements(s.children, indent + unit, unit, eol));
      lines.push(`${indent}}`);
    } else lines.push(`${indent}${head};`);
  }
  return lines;
}

/** Inserts statements on new lines after `anchor` (a child of `block`), with the anchor's indentation. */
export function insertAfter(config: ParsedConfig, anchor: Directive, statements: readonly NewStatement[], why: string): Splice {
  const { source, eol } = config;
  const parent = anchor.parent;
  const unit = indentUnit(config);
  // An anchor sharing its line with the block's `{` (a one-line block) is indented one level past the block.
  const indent =
    parent?.block && lineStart(source, anchor.start) === lineStart(source, parent.block.open)
      ? indentOf(source, parent.start) + unit
      : indentOf(source, anchor.start);
  const lines = renderStatements(statements, indent, unit, eol);
  const lineEnd = endOfLine(source, anchor.end);
  if (/^[ \t]*(#.*)?$/.test(source.slice(anchor.end, lineEnd))) {
    return { start: lineEnd, end: lineEnd, text: lines.map((l) => eol + l).join(''), kind: 'insert', why };
  }
  // More statements follow on the anchor's line: ours go on new lines, the rest continues on a line of its own.
  let next = anchor.end;
  while (source[next] === ' ' || source[next] === '\t') next++;
  return { start: anchor.end, end: next, text: lines.map((l) => eol + l).join('') + eol + indent, kind: 'insert', why };
}

/** Replaces a statement alone on its line by new statements at the same place (its line's indentation). */
export function replaceStatement(config: ParsedConfig, directive: Directive, statements: readonly NewStatement[], why: string): Splice[] {
  const { source, eol } = config;
  const removal = removeStatement(config, directive, why);
  const ls = lineStart(source, directive.start);
  if (removal.start !== ls) return [removal, insertAfter(config, directive, statements, why)];
  const lines = renderStatements(statements, indentOf(source, directive.start), indentUnit(config), eol);
  return [removal, { start: ls, end: ls, text: lines.map((l) => l + eol).join(''), kind: 'insert', why }];
}

/** Inserts statements as the first lines of `block`'s body. */
export function insertAtBlockStart(config: ParsedConfig, block: Directive, statements: readonly NewStatement[], why: string): Splice {
  const { source, eol } = config;
  const body = block.block!;
  const firstChild = body.children[0];
  const unit = indentUnit(config);
  const sameLineAsOpen = (offset: number): boolean => lineStart(source, offset) === lineStart(source, body.open);
  let indent: string;
  if (firstChild && !sameLineAsOpen(firstChild.start)) indent = indentOf(source, firstChild.start);
  else indent = indentOf(source, block.start) + unit;
  // After the `{` and any comment on its line; if the block closes on that same line, open it up.
  const afterOpen = endOfLine(source, body.open);
  const lines = renderStatements(statements, indent, unit, eol);
  if (body.children.length === 0 && sameLineAsOpen(body.close) && /^[ \t]*$/.test(source.slice(body.open + 1, body.close))) {
    // `location / {}`: open the empty block up
    return { start: body.open + 1, end: body.close, text: eol + lines.join(eol) + eol + indentOf(source, block.start), kind: 'insert', why };
  }
  if (firstChild && sameLineAsOpen(firstChild.start)) {
    // `server { listen 80; ... }` on one line: our lines first, the existing statements move to a line of their own
    return { start: body.open + 1, end: firstChild.start, text: eol + lines.join(eol) + eol + indent, kind: 'insert', why };
  }
  return { start: afterOpen, end: afterOpen, text: lines.map((l) => eol + l).join(''), kind: 'insert', why };
}

/** Inserts a whole new top-level block after `anchor` (a top-level directive of the file), a blank line between. */
export function insertBlockAfter(config: ParsedConfig, anchor: Directive, statements: readonly NewStatement[], why: string): Splice {
  const { source, eol } = config;
  const indent = indentOf(source, anchor.start);
  const lines = renderStatements(statements, indent, indentUnit(config), eol);
  const lineEnd = endOfLine(source, anchor.end);
  if (/^[ \t]*(#.*)?$/.test(source.slice(anchor.end, lineEnd))) {
    return { start: lineEnd, end: lineEnd, text: eol + eol + lines.join(eol), kind: 'insert', why };
  }
  // More statements follow on the anchor's line (`server {...} server {`): the end of the line may be inside the
  // next block, so the new block goes right after the anchor and the rest continues on a line of its own.
  let next = anchor.end;
  while (source[next] === ' ' || source[next] === '\t') next++;
  return { start: anchor.end, end: next, text: eol + eol + lines.join(eol) + eol + indent, kind: 'insert', why };
}

/**
 * Replaces a directive's arguments. Only the words that differ are touched: arguments kept at the start and at the
 * end stay as written, so adding `ssl` to `listen 80 # main` + newline + `default_server;` is an insertion after
 * the last word and the comment between the words survives (a whole-range replacement deleted it, and the edit
 * was refused).
 */
export function replaceArgs(directive: Directive, args: string[], why: string): Splice {
  const old = directive.words.slice(1);
  let head = 0;
  while (head < old.length && head < args.length && old[head]!.raw === args[head]) head++;
  let tail = 0;
  while (tail < old.length - head && tail < args.length - head && old[old.length - 1 - tail]!.raw === args[args.length - 1 - tail]) tail++;
  const middle = args.slice(head, args.length - tail);
  const oldMiddle = old.slice(head, old.length - tail);
  // `{` right after the last argument (`location ~ ^/a${`): nginx reads `${` as part of a word, so a `$` needs a space
  const glued = (end: number, text: string): string => (directive.block?.open === end && text.endsWith('$') ? `${text} ` : text);
  const before = head > 0 ? old[head - 1]!.end : directive.words[0]!.end;
  if (oldMiddle.length === 0) {
    // only new words, after the kept ones; none to add is no change (a space each run was not idempotent)
    return { start: before, end: before, text: middle.length ? glued(before, ' ' + middle.join(' ')) : '', kind: 'args', why };
  }
  const end = oldMiddle[oldMiddle.length - 1]!.end;
  // words dropped with nothing in their place take the space before them along
  if (middle.length === 0) return { start: before, end, text: '', kind: 'args', why };
  return { start: oldMiddle[0]!.start, end, text: glued(end, middle.join(' ')), kind: 'args', why };
}

/** Removes a statement; when it is alone on its line, the whole line goes (its own trailing comment too). */
export function removeStatement(config: ParsedConfig, directive: Directive, why: string): Splice {
  const { source } = config;
  const ls = lineStart(source, directive.start);
  const before = source.slice(ls, directive.start);
  const end = directive.end;
  const rest = source.slice(end, endOfLine(source, end));
  const aloneBefore = /^[ \t]*$/.test(before);
  const trailing = /^[ \t]*(#.*)?$/.test(rest);
  if (aloneBefore && trailing) {
    let lineEnd = endOfLine(source, end);
    if (source[lineEnd] === '\r') lineEnd++;
    if (source[lineEnd] === '\n') lineEnd++;
    return { start: ls, end: lineEnd, text: '', kind: 'remove', why };
  }
  return { start: directive.start, end, text: '', kind: 'remove', why };
}

export function applySplices(source: string, splices: readonly Splice[]): string {
  const sorted = [...splices].sort((a, b) => b.start - a.start || b.end - a.end);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.end > sorted[i - 1]!.start) throw new AutoSslError('INTERNAL', `overlapping edits: ${sorted[i]!.why} / ${sorted[i - 1]!.why}`);
  }
  let out = source;
  for (const s of sorted) out = out.slice(0, s.start) + s.text + out.slice(s.end);
  return out;
}

/**
 * Applies the splices and proves they did only what they claim: every statement and comment outside the
 * splices is still there, in the same order, at the same depth, with the same words; statements inside
 * an `args` splice keep their name; only `insert` splices add statements; only `remove` splices drop them.
 */
export function spliceAndVerify(config: ParsedConfig, splices: readonly Splice[]): string {
  const text = applySplices(config.source, splices);
  const encoding = encodingProblem(
    config.source,
    text,
    splices.map((s) => s.text),
  );
  if (encoding) {
    throw new AutoSslError('VHOST_EDIT_UNSAFE', `${config.file}: refusing the edit: ${encoding}; nothing was written.`, {
      details: { file: config.file, encoding: true },
      hint: 'autossl writes a file in the encoding it was read in: convert the file to UTF-8, or use ASCII paths and names.',
    });
  }
  let after: ParsedConfig;
  try {
    after = parseConfig(text, config.file);
  } catch (error) {
    throw new AutoSslError('VHOST_EDIT_UNSAFE', `${config.file}: the edited file would not parse (${(error as Error).message}); nothing was written.`, {
      cause: error,
    });
  }
  const sorted = [...splices].sort((a, b) => a.start - b.start || a.end - b.end);
  const shift = (pos: number): number => {
    let delta = 0;
    for (const s of sorted) if (s.end <= pos) delta += s.text.length - (s.end - s.start);
    return pos + delta;
  };
  // ranges of inserted text in the new file
  const inserted: Array<[number, number]> = [];
  {
    let delta = 0;
    for (const s of sorted) {
      const start = s.start + delta;
      if (s.kind === 'insert') inserted.push([start, start + s.text.length]);
      delta += s.text.length - (s.end - s.start);
    }
  }
  const before = fingerprint(config);
  const afterPrints = fingerprint(after);
  // Every statement and comment outside a removal, in document order, where it must be after the splices. A list
  // compared pair by pair, not a map by offset: a comment deleted inside an args splice has its old offset, which
  // the next statement can land on after the splice (a map by offset then lost the comment without a word).
  const expected: Array<{ at: number; text: string; depth: number; argsChanged: boolean; name: string }> = [];
  for (const fp of before) {
    const removed = sorted.some((s) => s.kind === 'remove' && s.start <= fp.start && fp.end <= s.end);
    if (removed) continue;
    // an args splice of this directive: within it and before its block (`events{` gets its args right at the `{`)
    const argsSplice = sorted.find(
      (s) =>
        s.kind === 'args' && fp.start <= s.start && s.end <= fp.end && fp.node.kind === 'directive' && s.end <= ((fp.node as Directive).block?.open ?? fp.end),
    );
    const name = fp.node.kind === 'directive' ? fp.node.name : '#';
    expected.push({ at: shift(fp.start), text: fp.text, depth: fp.depth, argsChanged: argsSplice !== undefined, name });
  }
  const fail = (what: string): never => {
    throw new AutoSslError('VHOST_EDIT_UNSAFE', `${config.file}: refusing the edit, it would change more than intended (${what}); nothing was written.`);
  };
  const kept = afterPrints.filter((fp) => !inserted.some(([a, b]) => a <= fp.start && fp.start < b));
  for (let i = 0; i < Math.max(kept.length, expected.length); i++) {
    const fp = kept[i];
    const want = expected[i];
    if (!want) return fail(`unexpected statement ${JSON.stringify(fp!.text.slice(0, 60))}`);
    if (!fp) return fail(`${expected.length - kept.length} statement(s) disappeared`);
    if (fp.start !== want.at) fail(`statement ${JSON.stringify(want.text.slice(0, 60))} disappeared or moved`);
    if (want.depth !== fp.depth) fail(`statement ${JSON.stringify(want.text.slice(0, 60))} changed depth`);
    if (want.argsChanged) {
      if (fp.node.kind !== 'directive' || fp.node.name !== want.name) fail(`statement ${want.name} changed name`);
    } else if (want.text !== fp.text) fail(`statement ${JSON.stringify(want.text.slice(0, 60))} changed`);
  }
  return text;
}
