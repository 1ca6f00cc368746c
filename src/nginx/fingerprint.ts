/** What a parsed file says, compared around every splice (fingerprint), and the parse printed back (its round-trip check). */
import type { Node, ParsedConfig } from './parse.js';

/**
 * A flat, order-preserving fingerprint of everything that carries meaning: each directive (depth, name,
 * argument values, Lua body) and each comment. Two files with equal fingerprints configure nginx the same
 * way and say the same things; the editor compares them before and after every splice.
 */
export interface Fingerprint {
  kind: 'directive' | 'comment';
  depth: number;
  text: string;
  start: number;
  end: number;
  node: Node;
}

export function fingerprint(config: ParsedConfig): Fingerprint[] {
  const out: Fingerprint[] = [];
  const visit = (nodes: readonly Node[], depth: number): void => {
    for (const node of nodes) {
      if (node.kind === 'comment') {
        out.push({ kind: 'comment', depth, text: node.text, start: node.start, end: node.end, node });
        continue;
      }
      const words = node.words.map((w) => w.value).join('\u0000');
      const body = node.block?.verbatim !== undefined ? `\u0001${node.block.verbatim}` : node.block ? '{' : ';';
      out.push({ kind: 'directive', depth, text: `${words}${body}`, start: node.start, end: node.end, node });
      for (const c of node.innerComments) out.push({ kind: 'comment', depth: depth + 1, text: c.text, start: c.start, end: c.end, node: c });
      if (node.block && node.block.verbatim === undefined) visit(node.block.children, depth + 1);
    }
  };
  visit(config.children, 0);
  return out;
}

/**
 * Prints a parsed file back from its nodes: the text between nodes is carried as-is. Used by the round-trip
 * test to prove the parser accounts for every byte (what it did not read as a node is only whitespace).
 */
export function printConfig(config: ParsedConfig): string {
  const { source } = config;
  let out = '';
  let cursor = 0;
  const gap = (to: number): void => {
    const text = source.slice(cursor, to);
    if (/\S/.test(text)) throw new Error(`parser skipped non-space bytes at ${cursor}: ${JSON.stringify(text.slice(0, 40))}`);
    out += text;
    cursor = to;
  };
  const emit = (nodes: readonly Node[]): void => {
    for (const node of nodes) {
      gap(node.start);
      if (node.kind === 'comment') {
        out += node.text;
        cursor = node.end;
        continue;
      }
      const parts: Array<{ start: number; end: number; text: string }> = [
        ...node.words.map((w) => ({ start: w.start, end: w.end, text: w.raw })),
        ...node.innerComments.map((c) => ({ start: c.start, end: c.end, text: c.text })),
      ].sort((a, b) => a.start - b.start);
      for (const part of parts) {
        gap(part.start);
        out += part.text;
        cursor = part.end;
      }
      if (!node.block) {
        gap(node.end - 1);
        out += ';';
        cursor = node.end;
        continue;
      }
      gap(node.block.open);
      out += '{';
      cursor = node.block.open + 1;
      if (node.block.verbatim !== undefined) {
        out += node.block.verbatim;
        cursor = node.block.close;
      } else {
        emit(node.block.children);
      }
      gap(node.block.close);
      out += '}';
      cursor = node.block.close + 1;
    }
  };
  emit(config.children);
  gap(source.length);
  return out;
}
