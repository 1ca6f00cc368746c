/** nginx's location selection (ngx_http_core_find_location): which `location` of a server block a URI ends in. */
import { argValues, type Directive } from './parse.js';
import { testRegexBounded } from './listen.js';
import { children, type RouteEnv } from './route-env.js';

interface LocationSpec {
  directive: Directive;
  modifier: '=' | '^~' | '~' | '~*' | '';
  path: string;
}

export function parseLocation(directive: Directive): LocationSpec | null {
  const args = argValues(directive);
  if (args.length === 0) return null;
  let modifier: LocationSpec['modifier'] = '';
  let path: string;
  if (args.length >= 2 && ['=', '^~', '~', '~*'].includes(args[0]!)) {
    modifier = args[0] as LocationSpec['modifier'];
    path = args[1]!;
  } else {
    // [\s\S], not ".": a quoted path may hold a newline (`location "/a\n b"`), which nginx accepts
    const m = /^(=|\^~|~\*|~)?([\s\S]*)$/.exec(args[0]!)!;
    modifier = (m[1] ?? '') as LocationSpec['modifier'];
    path = m[2]!;
  }
  if (path.startsWith('@')) return null; // named location: never matched by a URI
  return { directive, modifier, path };
}

/**
 * Tests a PCRE pattern of the user's config, bounded (a catastrophic pattern cannot hang planning); null when it
 * cannot tell (a PCRE feature JavaScript lacks, or out of time): the caller stays cautious.
 */
export function regexTest(pattern: string, caseInsensitive: boolean, input: string): boolean | null {
  return testRegexBounded(pattern, input, caseInsensitive);
}

/**
 * nginx's location search with nested locations (ngx_http_core_find_location): the longest prefix of a level is
 * searched for nested matches before that level's regexes; a nested exact or regex match ends the search, a nested
 * prefix (even `^~`) does not, so the level's regexes still run unless its own longest prefix is `^~`; a regex
 * match is searched for nested locations in turn. Returns the chain of locations from the outermost to the one
 * chosen (`ok`: the search ended in an exact or regex match), or the regex autossl could not evaluate.
 */
export function findLocation(locations: readonly Directive[], uri: string, env: RouteEnv): { chain: Directive[]; ok: boolean; uncertain?: Directive } {
  let longest: LocationSpec | null = null;
  const regexes: LocationSpec[] = [];
  for (const d of locations) {
    const spec = parseLocation(d);
    if (!spec) continue;
    if (spec.modifier === '=') {
      if (spec.path === uri) return { chain: [d], ok: true };
      continue;
    }
    if (spec.modifier === '~' || spec.modifier === '~*') regexes.push(spec);
    else if (uri.startsWith(spec.path) && (!longest || spec.path.length > longest.path.length)) longest = spec;
  }
  let chain: Directive[] = longest ? [longest.directive] : [];
  if (longest) {
    const nested = children(longest.directive, env, 'location');
    if (nested.length) {
      const inner = findLocation(nested, uri, env);
      chain = [...chain, ...inner.chain];
      if (inner.uncertain || inner.ok) return { ...inner, chain };
    }
  }
  if (longest?.modifier !== '^~') {
    for (const spec of regexes) {
      const hit = regexTest(spec.path, spec.modifier === '~*', uri);
      if (hit === false) continue;
      if (hit === null) return { chain: [spec.directive], ok: false, uncertain: spec.directive }; // assume it catches the request
      const nested = children(spec.directive, env, 'location');
      const inner = nested.length ? findLocation(nested, uri, env) : { chain: [], ok: true };
      return { ...inner, chain: [spec.directive, ...inner.chain], ok: true };
    }
  }
  return { chain, ok: false };
}
