/**
 * Read-only views of server blocks for plugins (the `vhost` hook's `edit.current`): what a block holds now, its
 * directives with their arguments as nginx reads them and where they are written (snippets included), deep-frozen
 * so a plugin cannot change the parsed tree behind the editor's back.
 */
import { lineColumn, argValues, type Directive } from './parse.js';
import { readConfigFile, type ServerBlock } from './tree.js';

export interface DirectiveView {
  readonly name: string;
  /** Arguments as nginx sees them (quotes removed, escapes resolved). */
  readonly args: readonly string[];
  readonly file: string;
  readonly line: number;
  /** For blocks (location, if, ...): what they hold. */
  readonly children?: readonly DirectiveView[];
}

export interface ServerView {
  readonly file: string;
  readonly line: number;
  readonly serverNames: readonly string[];
  /** Each listen as written, e.g. "127.0.0.1:443 ssl". */
  readonly listens: readonly string[];
  /** Whether it serves TLS (a listen with `ssl`). */
  readonly tls: boolean;
  /** The block's directives in order; an `include` is followed by what the included file holds. */
  readonly directives: readonly DirectiveView[];
}

function viewOf(d: Directive, file: string, source: string): DirectiveView {
  const view: DirectiveView = {
    name: d.name,
    args: Object.freeze(argValues(d)),
    file,
    line: lineColumn(source, d.start).line,
    ...(d.block && d.block.verbatim === undefined
      ? { children: Object.freeze(d.block.children.filter((c): c is Directive => c.kind === 'directive').map((c) => viewOf(c, file, source))) }
      : {}),
  };
  return Object.freeze(view);
}

export function serverView(server: ServerBlock): ServerView {
  const directives: DirectiveView[] = [];
  const source = server.config.source;
  for (const node of server.directive.block?.children ?? []) {
    if (node.kind !== 'directive') continue;
    directives.push(viewOf(node, server.file, source));
    for (const file of server.includeTargets.get(node) ?? []) {
      const { config } = readConfigFile(file);
      for (const inner of config?.children ?? []) if (inner.kind === 'directive') directives.push(viewOf(inner, file, config!.source));
    }
  }
  return Object.freeze({
    file: server.file,
    line: lineColumn(source, server.directive.start).line,
    serverNames: Object.freeze([...server.names]),
    listens: Object.freeze(server.listens.filter((l) => !l.implicit).map((l) => argValues(l.directive).join(' '))),
    tls: server.listens.some((l) => l.ssl),
    directives: Object.freeze(directives),
  });
}
