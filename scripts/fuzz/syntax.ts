/**
 * The syntax-level editor fuzz: a generated file (gen.ts) and a generated edit plan made of the splice functions
 * the editor uses. Invariants checked on every case:
 *  1. the lexer reads exactly the model (names, raw and nginx value of each word, comments, Lua bodies), and
 *     printConfig(parseConfig(x)) === x;
 *  2. the edit is refused with an AutoSslError code other than INTERNAL, or its result
 *     - is the source with only the splice ranges replaced (every other byte as it was),
 *     - parses again and prints back unchanged,
 *     - holds exactly the statements expected: the original ones in order, minus the removed, with the new
 *       arguments, and the inserted ones at the place the function promises (an oracle computed from the edit's
 *       meaning, not from the splice positions spliceAndVerify compares);
 *  3. an argument change applied again to the result changes nothing.
 */
import fc from 'fast-check';
import { AutoSslError } from '../../src/errors.js';
import { parseConfig, walkDirectives, type Directive, type Node, type ParsedConfig } from '../../src/nginx/parse.js';
import { fingerprint, printConfig } from '../../src/nginx/fingerprint.js';
import {
  applySplices,
  insertAfter,
  insertAtBlockStart,
  insertBlockAfter,
  removeStatement,
  replaceArgs,
  spliceAndVerify,
  type NewStatement,
  type Splice,
} from '../../src/nginx/splice.js';
import { bareWord, expectedShape, genFile, quotedWord, render, type GenFile, type Shape, type Tok } from './gen.js';

export type OpKind = 'insertAfter' | 'insertAtBlockStart' | 'insertBlockAfter' | 'replaceArgs' | 'remove';

export interface GenStatement {
  name: string;
  args: Tok[];
  children?: GenStatement[];
}

/** An edit, with its target chosen by index among the directives it can apply to. */
export interface OpSeed {
  kind: OpKind;
  target: number;
  statements: GenStatement[];
  args: Tok[];
}

export interface SyntaxCase {
  file: GenFile;
  ops: OpSeed[];
}

/**
 * Arguments a new statement may carry: tokens that stay one token, whatever follows them. They are file text as
 * the writer's gate (src/nginx/value.ts) makes it: a non-ASCII character as its UTF-8 bytes.
 */
const utf8 = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');
const newArg = fc.oneof({ weight: 3, arbitrary: bareWord() }, quotedWord('\n')).map((t) => ({ raw: utf8(t.raw), value: utf8(t.value) }));
const NEW_NAMES = ['add_header', 'listen', 'ssl_certificate', 'return', 'set', 'x_fuzz'];

const statement: fc.Arbitrary<GenStatement> = fc.letrec<{ s: GenStatement }>((tie) => ({
  s: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ name: fc.constantFrom(...NEW_NAMES), args: fc.array(newArg, { maxLength: 3 }) }),
    fc.record({ name: fc.constantFrom('location', 'server', 'if'), args: fc.array(newArg, { maxLength: 2 }), children: fc.array(tie('s'), { maxLength: 2 }) }),
  ),
})).s;

export const opSeed: fc.Arbitrary<OpSeed> = fc.record({
  kind: fc.constantFrom<OpKind>('insertAfter', 'insertAtBlockStart', 'insertBlockAfter', 'replaceArgs', 'remove'),
  target: fc.nat(),
  statements: fc.array(statement, { minLength: 1, maxLength: 3 }),
  args: fc.array(newArg, { maxLength: 3 }),
});

export const syntaxCase: fc.Arbitrary<SyntaxCase> = fc.record({ file: genFile(), ops: fc.array(opSeed, { minLength: 1, maxLength: 4 }) });

// -------------------------------------------------------------------------------------------------------------

export class FuzzFailure extends Error {
  constructor(
    readonly invariant: string,
    message: string,
    readonly source: string,
  ) {
    super(`${invariant}: ${message}\n--- source (JSON) ---\n${JSON.stringify(source)}`);
  }
}

function shapeOf(nodes: readonly Node[]): Shape[] {
  return nodes.map((n) => {
    if (n.kind === 'comment') return { kind: 'comment', text: n.text };
    const shape: Shape = { kind: 'directive', text: n.name, words: n.words.map((w) => [w.raw, w.value]), inner: n.innerComments.map((c) => c.text) };
    if (n.block?.verbatim !== undefined) shape.lua = n.block.verbatim;
    else if (n.block) shape.children = shapeOf(n.block.children);
    return shape;
  });
}

const toNew = (s: GenStatement): NewStatement => ({ name: s.name, args: s.args.map((a) => a.raw), ...(s.children ? { children: s.children.map(toNew) } : {}) });

interface Entry {
  depth: number;
  text: string;
}

function newEntries(list: readonly GenStatement[], depth: number): Entry[] {
  return list.flatMap((s) => [
    { depth, text: `${[s.name, ...s.args.map((a) => a.value)].join('\u0000')}${s.children ? '{' : ';'}` },
    ...(s.children ? newEntries(s.children, depth + 1) : []),
  ]);
}

function endOfLine(src: string, offset: number): number {
  let i = src.indexOf('\n', offset);
  if (i < 0) i = src.length;
  if (i > 0 && src[i - 1] === '\r') i--;
  return i;
}

const contains = (outer: Directive, inner: Directive): boolean => outer.start <= inner.start && inner.end <= outer.end;

/** Picks the targets of the seeds; drops seeds whose target overlaps another's (the editor never plans those). */
export function resolveOps(config: ParsedConfig, seeds: readonly OpSeed[]): Array<{ seed: OpSeed; target: Directive }> {
  const all = [...walkDirectives(config.children)];
  const out: Array<{ seed: OpSeed; target: Directive }> = [];
  for (const seed of seeds) {
    const candidates = all.filter((d) => {
      if (seed.kind === 'insertAtBlockStart') return d.block !== undefined && d.block.verbatim === undefined;
      if (seed.kind === 'insertBlockAfter') return d.parent === null;
      return true;
    });
    if (candidates.length === 0) continue;
    const target = candidates[seed.target % candidates.length]!;
    const clash = out.some(
      (o) => o.target === target || ((o.seed.kind === 'remove' || seed.kind === 'remove') && (contains(o.target, target) || contains(target, o.target))),
    );
    if (!clash) out.push({ seed, target });
  }
  return out;
}

function spliceFor(config: ParsedConfig, seed: OpSeed, target: Directive): Splice {
  const stmts = seed.statements.map(toNew);
  switch (seed.kind) {
    case 'insertAfter':
      return insertAfter(config, target, stmts, 'fuzz');
    case 'insertAtBlockStart':
      return insertAtBlockStart(config, target, stmts, 'fuzz');
    case 'insertBlockAfter':
      return insertBlockAfter(config, target, stmts, 'fuzz');
    case 'replaceArgs':
      return replaceArgs(
        target,
        seed.args.map((a) => a.raw),
        'fuzz',
      );
    case 'remove':
      return removeStatement(config, target, 'fuzz');
  }
}

/**
 * What the edited file must hold, from the meaning of each edit: statements inserted after a statement follow it
 * (and a comment on the rest of its line), at its depth; inserted at a block's start, they are its first children;
 * a removed statement goes with what it contains (and its own trailing comment when it is alone on its line).
 */
function expectedEntries(config: ParsedConfig, ops: ReadonlyArray<{ seed: OpSeed; target: Directive; splice: Splice }>): Entry[] {
  const { source } = config;
  const before = fingerprint(config);
  const dropped = new Set<number>();
  const replaced = new Map<number, string>();
  const inserts = new Map<number, Array<{ at: number; order: number; entries: Entry[] }>>();
  const indexOf = (d: Directive): number => before.findIndex((f) => f.node === d);
  const lastOfSubtree = (d: Directive): number => {
    let i = indexOf(d);
    while (i + 1 < before.length && before[i + 1]!.start >= d.start && before[i + 1]!.end <= d.end) i++;
    return i;
  };
  const withTrailingComment = (d: Directive, i: number): number => {
    const rest = source.slice(d.end, endOfLine(source, d.end));
    const next = before[i + 1];
    return /^[ \t]*#/.test(rest) && next?.kind === 'comment' && next.start === d.end + rest.indexOf('#') ? i + 1 : i;
  };
  ops.forEach(({ seed, target, splice }, order) => {
    const i = indexOf(target);
    const depth = before[i]!.depth;
    const add = (after: number, entries: Entry[]): void => {
      const list = inserts.get(after) ?? [];
      list.push({ at: splice.start, order, entries });
      inserts.set(after, list);
    };
    switch (seed.kind) {
      case 'insertAfter':
      case 'insertBlockAfter':
        add(withTrailingComment(target, lastOfSubtree(target)), newEntries(seed.statements, depth));
        break;
      case 'insertAtBlockStart':
        add(i + target.innerComments.length, newEntries(seed.statements, depth + 1));
        break;
      case 'replaceArgs': {
        const body = target.block?.verbatim !== undefined ? `\u0001${target.block.verbatim}` : target.block ? '{' : ';';
        replaced.set(i, `${[target.name, ...seed.args.map((a) => a.value)].join('\u0000')}${body}`);
        break;
      }
      case 'remove':
        before.forEach((f, j) => {
          if (splice.start <= f.start && f.end <= splice.end) dropped.add(j);
        });
        break;
    }
  });
  const out: Entry[] = [];
  const flush = (after: number): void => {
    // several insertions at one place: in text order; at one offset, the later edit first (applySplices)
    const list = (inserts.get(after) ?? []).sort((a, b) => a.at - b.at || b.order - a.order);
    for (const x of list) out.push(...x.entries);
  };
  flush(-1);
  before.forEach((f, j) => {
    if (!dropped.has(j)) out.push({ depth: f.depth, text: replaced.get(j) ?? f.text });
    flush(j);
  });
  return out;
}

/** For a refused edit: the explanation when its plain result was in fact what the edits mean. */
function overcautious(
  config: ParsedConfig,
  ops: ReadonlyArray<{ seed: OpSeed; target: Directive; splice: Splice }>,
  why: string,
  encoding = false,
): string | undefined {
  if (encoding) return undefined; // a new non-ASCII value into a file that is not UTF-8: refused by design (value.ts)
  let raw: ParsedConfig;
  try {
    raw = parseConfig(
      applySplices(
        config.source,
        ops.map((o) => o.splice),
      ),
      config.file,
    );
  } catch {
    return undefined;
  }
  const expected = JSON.stringify(expectedEntries(config, ops));
  const actual = JSON.stringify(fingerprint(raw).map((f) => ({ depth: f.depth, text: f.text })));
  if (expected !== actual) return undefined;
  return `${why}\nops ${JSON.stringify(ops.map((o) => [o.seed.kind, o.target.name, o.target.start]))}\nsource ${JSON.stringify(config.source)}\nafter ${JSON.stringify(raw.source)}`;
}

/** Every byte outside the splices is the source's, in order (an independent re-statement of applySplices). */
function checkUntouched(source: string, splices: readonly Splice[], after: string): void {
  const sorted = [...splices].sort((a, b) => a.start - b.start || a.end - b.end);
  let cursor = 0;
  let pos = 0;
  for (const s of sorted) {
    const keep = source.slice(cursor, s.start);
    if (after.slice(pos, pos + keep.length) !== keep) throw new FuzzFailure('untouched bytes', `bytes ${cursor}..${s.start} changed`, source);
    pos += keep.length + s.text.length;
    cursor = s.end;
  }
  if (after.slice(pos) !== source.slice(cursor)) throw new FuzzFailure('untouched bytes', `the tail from ${cursor} changed`, source);
}

export interface CaseResult {
  outcome: 'edited' | 'refused' | 'no-op';
  code?: string;
  /** A refused edit whose plain splice result holds exactly the intended statements: the check refused too much. */
  overcautious?: string;
}

/** Runs one case; throws FuzzFailure when an invariant does not hold. */
export function runSyntaxCase(c: SyntaxCase): CaseResult {
  const source = render(c.file);
  let config: ParsedConfig;
  try {
    config = parseConfig(source, 'fuzz.conf');
  } catch (error) {
    throw new FuzzFailure('lexer accepts the model', (error as Error).message, source);
  }
  const want = JSON.stringify(expectedShape(c.file.items));
  const got = JSON.stringify(shapeOf(config.children));
  if (want !== got) throw new FuzzFailure('lexer reads the model', `expected ${want}\n     got ${got}`, source);
  if (printConfig(config) !== source) throw new FuzzFailure('round trip', 'printConfig(parseConfig(x)) !== x', source);

  const ops = resolveOps(config, c.ops).map((o) => ({ ...o, splice: spliceFor(config, o.seed, o.target) }));
  if (ops.length === 0) return { outcome: 'no-op' };
  const splices = ops.map((o) => o.splice);
  let after: string;
  try {
    after = spliceAndVerify(config, splices);
  } catch (error) {
    const described = `ops ${JSON.stringify(ops.map((o) => [o.seed.kind, o.target.name, o.target.start]))}`;
    if (error instanceof AutoSslError && error.code !== 'INTERNAL')
      return { outcome: 'refused', code: error.code, overcautious: overcautious(config, ops, error.message, error.details.encoding === true) };
    throw new FuzzFailure('refusals are coded', `${(error as Error).name}: ${(error as Error).message}; ${described}`, source);
  }
  checkUntouched(source, splices, after);
  let reparsed: ParsedConfig;
  try {
    reparsed = parseConfig(after, 'fuzz.conf');
  } catch (error) {
    throw new FuzzFailure('result parses', (error as Error).message, source);
  }
  if (printConfig(reparsed) !== after) throw new FuzzFailure('result round trip', 'printConfig differs', source);
  const expected = JSON.stringify(expectedEntries(config, ops));
  const actual = JSON.stringify(fingerprint(reparsed).map((f) => ({ depth: f.depth, text: f.text })));
  if (expected !== actual)
    throw new FuzzFailure(
      'statements as intended',
      `ops ${JSON.stringify(ops.map((o) => [o.seed.kind, o.target.name, o.target.start]))}\nexpected ${expected}\n     got ${actual}\n--- after (JSON) ---\n${JSON.stringify(after)}`,
      source,
    );
  // an argument change is idempotent: the same change on the result is no change
  for (const o of ops) {
    if (o.seed.kind !== 'replaceArgs') continue;
    const shifted = splices.filter((s) => s.end <= o.target.start).reduce((pos, s) => pos + s.text.length - (s.end - s.start), o.target.start);
    const again = [...walkDirectives(reparsed.children)].find((d) => d.start === shifted);
    if (!again) throw new FuzzFailure('replaceArgs idempotent', `no directive at ${shifted} after the edit`, source);
    const twice = spliceAndVerify(reparsed, [
      replaceArgs(
        again,
        o.seed.args.map((a) => a.raw),
        'fuzz again',
      ),
    ]);
    if (twice !== after) throw new FuzzFailure('replaceArgs idempotent', `a second run changed the file:\n${JSON.stringify(twice)}`, source);
  }
  return { outcome: 'edited' };
}
