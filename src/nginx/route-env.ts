/**
 * What routing reads beyond one server block: the config's `map` blocks, and the files an `include` inside a server
 * or location brings in (a block's directives as nginx sees them).
 */
import path from 'node:path';
import { argValues, childDirectives, walkDirectives, type Directive, type Node } from './parse.js';
import { readConfigFile } from './tree.js';
import { expandInclude } from './include-glob.js';

/** The `map` blocks of the config, by the variable they set. */
export type MapIndex = ReadonlyMap<string, Directive>;

/** What routing needs from the whole tree: its maps, and the prefix relative `include` paths start from. */
export interface RouteEnv {
  maps: MapIndex;
  prefix?: string;
}

/** Where a directive read from an included file was included (its parent as nginx sees it). */
const includedAt = new WeakMap<Directive, Directive>();

/** The block a directive belongs to as nginx sees it: its parent, or the block whose `include` brought it in. */
export function effectiveParent(d: Directive): Directive | null {
  return includedAt.get(d) ?? d.parent;
}

/**
 * A block's directives as nginx sees them: an `include` inside a server or location stands for the directives of
 * the files it names (a `location ~ /\. { deny all; }` in a snippet routes the challenge as much as one written in
 * place). Includes are followed three levels deep; a file that cannot be read is skipped (the tree reports it).
 */
export function children(block: Directive, env: RouteEnv, name?: string, depth = 0): Directive[] {
  const out: Directive[] = [];
  for (const d of childDirectives(block)) {
    if (d.name === 'include' && env.prefix !== undefined && depth < 3) {
      const target = argValues(d)[0];
      if (target === undefined) continue;
      for (const file of expandInclude(path.isAbsolute(target) ? target : path.join(env.prefix, target))) {
        let parsed;
        try {
          parsed = readConfigFile(file).config;
        } catch {
          parsed = null;
        }
        for (const inner of parsed?.children ?? []) {
          if (inner.kind !== 'directive') continue;
          includedAt.set(inner, block);
          if (inner.name === 'include') {
            out.push(
              ...children({ ...block, block: { open: 0, close: 0, children: [inner] } }, env, name, depth + 1).map((x) => (includedAt.set(x, block), x)),
            );
          } else if (name === undefined || inner.name === name) out.push(inner);
        }
      }
      continue;
    }
    if (name === undefined || d.name === name) out.push(d);
  }
  return out;
}

const mapIndexes = new WeakMap<object, Map<string, Directive>>();

/** Routing's view of a tree: its maps and its prefix. */
export function routeEnv(tree: { files: ReadonlyMap<string, { children: readonly Node[] }>; prefix: string }): RouteEnv {
  return { maps: mapsOf(tree), prefix: tree.prefix };
}

/** Every `map` of the tree's files, by variable name (cached per tree). */
export function mapsOf(tree: { files: ReadonlyMap<string, { children: readonly Node[] }> }): MapIndex {
  let index = mapIndexes.get(tree);
  if (!index) {
    index = new Map();
    for (const config of tree.files.values()) {
      for (const d of walkDirectives(config.children)) {
        const target = argValues(d)[1];
        if (d.name === 'map' && d.block && target?.startsWith('$')) index.set(target.slice(1), d);
      }
    }
    mapIndexes.set(tree, index);
  }
  return index;
}
