/**
 * Per-host `map` blocks placed before a server block: HSTS and redirects reach only the certificate's names when a
 * block also answers others. blockId() keeps each block's variables stable from run to run.
 */
import crypto from 'node:crypto';
import { argValues, childDirectives, type Directive, type ParsedConfig } from './parse.js';
import { indentOf, indentUnit, renderStatements, replaceStatement, type NewStatement, type Splice } from './splice.js';
import type { ServerBlock } from './tree.js';
import { PlanBuilder } from './plan-builder.js';
import { valuesOf } from './ensure.js';

/**
 * A stable, nginx-safe variable suffix for a server block: its first name and a short hash of all its names (the
 * same block gets the same maps on every run; blocks sharing a first name do not share them).
 */
export function blockId(server: ServerBlock): string {
  const name =
    (server.names.find((n) => !n.startsWith('~')) ?? 'server')
      .replace(/[^a-z0-9]+/gi, '_')
      .replace(/^_|_$/g, '')
      .toLowerCase()
      .slice(0, 40) || 'server';
  return `${name}_${crypto.createHash('sha1').update(server.names.join(' ')).digest('hex').slice(0, 6)}`;
}

/** A `map` statement: the variable set from `source` by the entries (`default` first). */
export function mapStatement(source: string, variable: string, entries: ReadonlyArray<[string, string]>): NewStatement {
  return { name: 'map', args: [`"${source}"`, variable], children: entries.map(([k, v]) => ({ name: k, args: [v] })) };
}

/** http-level statements (maps) to put right before a server block, by block: one splice each. */
export class BeforeBlocks {
  private readonly byBlock = new Map<ServerBlock, NewStatement[]>();
  add(server: ServerBlock, statement: NewStatement): void {
    this.byBlock.set(server, [...(this.byBlock.get(server) ?? []), statement]);
  }
  /** Adds each missing map before its block, replaces one that differs, leaves an identical one alone. */
  flush(builder: PlanBuilder, label: (s: ServerBlock) => string): void {
    for (const [server, statements] of this.byBlock) {
      const siblings = server.directive.parent ? childDirectives(server.directive.parent) : childDirectives(server.config);
      const missing: NewStatement[] = [];
      for (const st of statements) {
        const existing = siblings.find((d) => d.name === 'map' && argValues(d)[1] === st.args[1]);
        if (!existing) {
          missing.push(st);
          continue;
        }
        const have = childDirectives(existing).map((d) => [d.name, ...argValues(d)].join('\u0000'));
        const want = st.children!.map((c) => [valuesOf([c.name])[0] ?? c.name, ...valuesOf(c.args)].join('\u0000'));
        if (have.join('\n') !== want.join('\n') || valuesOf([st.args[0]!])[0] !== argValues(existing)[0]) {
          for (const splice of replaceStatement(server.config, existing, [st], `${label(server)}: update map ${st.args[1]}`))
            builder.add(server.config, splice);
        }
      }
      if (missing.length)
        builder.add(
          server.config,
          insertBefore(server.config, server.directive, missing, `${label(server)}: add ${missing.map((m) => `map ${m.args[1]}`).join(', ')}`),
        );
    }
  }
}

/** Inserts statements on their own lines before `anchor`, at its indentation, a blank line between. */
function insertBefore(config: ParsedConfig, anchor: Directive, statements: readonly NewStatement[], why: string): Splice {
  const { source, eol } = config;
  const lineStart = source.lastIndexOf('\n', anchor.start - 1) + 1;
  const indent = indentOf(source, anchor.start);
  const lines = renderStatements(statements, indent, indentUnit(config), eol);
  if (/^[ \t]*$/.test(source.slice(lineStart, anchor.start))) {
    return { start: lineStart, end: lineStart, text: lines.map((l) => l + eol).join('') + eol, kind: 'insert', why };
  }
  return { start: anchor.start, end: anchor.start, text: lines.join(eol).trimStart() + eol + eol + indent, kind: 'insert', why };
}

/** Map entries for the certificate's names: exact ones as they are, `*.x` as a regex for one label. */
export function hostEntries(certNames: readonly string[], value: string, prefix = ''): Array<[string, string]> {
  return certNames.map((n): [string, string] =>
    n.startsWith('*.') ? [`"~^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[^.]+${n.slice(1).replace(/\./g, '\\.')}$"`, value] : [`"${prefix}${n}"`, value],
  );
}
