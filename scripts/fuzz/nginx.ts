/**
 * The editor fuzz against the real nginx: generated sites nginx accepts (server blocks with real directives in the
 * contexts nginx allows them, locations of every modifier, quoted paths, `if`, Lua blocks, snippets included from
 * a server, comments and layout as in gen.ts), edited either by the editor's own planners (the challenge edit, then
 * the HTTPS edit, as `autossl issue` does) or by generated splices of statements valid where they go. Invariants:
 *  - our lexer reads every file nginx accepted;
 *  - an edit is refused with a code (never INTERNAL or a bare Error), or nginx -t accepts its result;
 *  - the planners are idempotent: planning again on their own output changes nothing.
 * Each case gets a private prefix (nginx -p, -c absolute, -e): nothing under /etc/nginx is read or written.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import fc from 'fast-check';
import { AutoSslError } from '../../src/errors.js';
import { newVhostEdit, planChallengeEdit, planHttpsEdit, type FileEdit } from '../../src/nginx/edit.js';
import { parseConfig, walkDirectives, type Directive, type ParsedConfig } from '../../src/nginx/parse.js';
import {
  insertAfter,
  insertAtBlockStart,
  insertBlockAfter,
  removeStatement,
  replaceArgs,
  spliceAndVerify,
  type NewStatement,
  type Splice,
} from '../../src/nginx/splice.js';
import { clearConfigCache, NginxTree } from '../../src/nginx/tree.js';
import { BINARIES, nginxMainConfig } from '../sandbox/rig.js';
import { beforeTerm, commentText, gap, luaBody, render, sep, word, type GenDirective, type GenFile, type GenItem, type Tok } from './gen.js';
import { FuzzFailure, type OpKind } from './syntax.js';
import { selfSignedEcdsa } from '../sandbox/openssl.js';

const DIR = '@DIR@';
const t = (raw: string): Tok => ({ raw, value: raw });

/** A directive with generated layout around fixed words. */
function stmt(eol: string, words: readonly string[], children?: fc.Arbitrary<GenItem[]>): fc.Arbitrary<GenDirective> {
  // a `$` right before `{` would make `${` part of the word (`location ~ \.php$ {` needs its space)
  const needsSpace = children !== undefined && words[words.length - 1]!.endsWith('$');
  const layout = fc.tuple(
    fc.array(sep(eol), { minLength: words.length - 1, maxLength: words.length - 1 }),
    beforeTerm(eol).map((bt) => (needsSpace && bt === '' ? ' ' : bt)),
  );
  if (!children) return layout.map(([seps, bt]) => ({ kind: 'directive', words: words.map(t), seps, beforeTerm: bt }));
  return fc
    .tuple(layout, children.map(once))
    .chain(([[seps, bt], kids]) =>
      fc
        .array(gap(eol), { minLength: kids.length + 1, maxLength: kids.length + 1 })
        .map((gaps): GenDirective => ({ kind: 'directive', words: words.map(t), seps, beforeTerm: bt, children: kids, gaps })),
    );
}

/** Directives nginx takes once per block ("is duplicate"): the first stays. */
const ONCE = new Set([
  'charset',
  'client_max_body_size',
  'root',
  'proxy_pass',
  'expires',
  'try_files',
  'content_by_lua_block',
  'access_by_lua_block',
  'return',
]);

function once(items: GenItem[]): GenItem[] {
  const seen = new Set<string>();
  return items.filter((i) => {
    if (i.kind === 'comment') return true;
    const name = i.words[0]!.raw;
    // a location is one per path ("duplicate location")
    const key = name === 'location' ? i.words.map((w) => w.raw).join(' ') : name;
    if (!ONCE.has(name) && name !== 'location') return true;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

const comment = commentText.map((text): GenItem => ({ kind: 'comment', text }));
const some = (arbs: Array<fc.Arbitrary<GenItem>>, max: number): fc.Arbitrary<GenItem[]> => fc.array(fc.oneof(...arbs, comment), { maxLength: max });

const headerValue = fc.constantFrom('"v"', '"a;b{c}#d"', '\'single "q"\'', '"esc \\" q"', 'plain', '"$host"', '"multi\nline"');

/** Directives valid in server, location and http context alike. */
function common(eol: string, k: string): Array<fc.Arbitrary<GenItem>> {
  return [
    headerValue.chain((v) => stmt(eol, ['add_header', `X-Fuzz-${k}`, v, 'always'])),
    stmt(eol, ['charset', 'utf-8']),
    stmt(eol, ['client_max_body_size', '1m']),
    stmt(eol, ['access_log', 'off']),
    stmt(eol, ['error_page', '404', '/404.html']),
  ];
}

function location(eol: string, k: string, depth: number): fc.Arbitrary<GenItem> {
  const inside = (p: string): Array<fc.Arbitrary<GenItem>> => [
    ...common(eol, `${k}l`),
    stmt(eol, ['try_files', '$uri', '$uri/', '=404']),
    stmt(eol, ['return', '204']),
    stmt(eol, ['root', `${DIR}/www`]),
    stmt(eol, ['expires', '30d']),
    stmt(eol, ['set', `$fuzz_${k}`, '"x"']),
    stmt(eol, ['proxy_pass', 'http://127.0.0.1:9']),
    stmt(eol, ['if', '($request_method', '=', 'POST)'], some([stmt(eol, ['return', '405']), stmt(eol, ['set', `$fuzz_if_${k}`, '1'])], 2)),
    // lua-nginx-module refuses an empty body ("no runnable Lua code")
    fc
      .tuple(fc.constantFrom('content_by_lua_block', 'access_by_lua_block'), beforeTerm(eol), luaBody(eol))
      .map(([name, bt, body]): GenItem => ({ kind: 'directive', words: [t(name)], seps: [], beforeTerm: bt, lua: `${body} ngx.exit(204) ` })),
    // a nested location must stay inside its parent's prefix
    ...(depth < 1 && p.startsWith('/') ? [fc.constant(null).chain(() => stmt(eol, ['location', `${p}n${k}/`], some(inside(''), 3)))] : []),
  ];
  return fc
    .constantFrom(
      ['/', `/p${k}/`],
      ['= /exact', `= /exact${k}`],
      ['~', `\\.php${k}$`],
      ['~*', `"\\.(css|js)${k}$"`],
      ['^~', `/static${k}/`],
      ['quoted', `"/a b${k}"`],
      ['newline', `"/nl${k}\n x"`],
    )
    .chain(([kind, p]) => {
      const words =
        kind === '/' || kind === 'quoted' || kind === 'newline'
          ? ['location', p!]
          : kind === '= /exact'
            ? ['location', '=', p!.slice(2)]
            : ['location', kind!, p!];
      const prefix = kind === '/' ? p! : '';
      return stmt(eol, words, some(inside(prefix), 3));
    });
}

function server(eol: string, k: number): fc.Arbitrary<GenItem> {
  const names = fc
    .subarray([`www.fuzz${k}.test`, `*.wild${k}.test`, `"~^r\\d+\\.fuzz${k}\\.test$"`, `"~^(a{1,3})\\.fuzz${k}\\.test$"`])
    .map((more) => ['server_name', `fuzz${k}.test`, ...more]);
  // socket options (ipv6only, default_server) once per address:port in the whole tree: only the first server has them
  const addresses = k === 0 ? ['127.0.0.1:80 default_server', '[::]:80 ipv6only=off', '80'] : ['127.0.0.1:80', '[::1]:80', '[::]:80', '80'];
  const listens = fc.subarray(addresses, { minLength: 1 }).map((l) => l.map((a) => ['listen', ...a.split(' ')]));
  const body = fc.tuple(
    listens,
    names,
    fc.boolean(),
    fc.array(
      fc.oneof(
        ...common(eol, `${k}s`),
        stmt(eol, ['index', 'index.html', 'index.htm']),
        stmt(eol, ['set', `$fuzz_s${k}`, "'y'"]),
        stmt(eol, ['include', `snippets/fuzz${k}.conf`]),
        stmt(eol, ['if', '($http_x_fuzz)'], some([stmt(eol, ['return', '403']), stmt(eol, ['set', `$fuzz_sif${k}`, '1'])], 2)),
        stmt(eol, ['return', '301', 'https://$host$request_uri']),
        location(eol, `${k}a`, 0),
        location(eol, `${k}b`, 0),
        location(eol, `${k}c`, 0),
        comment,
      ),
      { maxLength: 6 },
    ),
  );
  return body.chain(([ls, ns, hasRoot, rest]) => {
    const unique = once(rest);
    const fixed = [...ls.map((l) => stmt(eol, l)), stmt(eol, ns), ...(hasRoot ? [stmt(eol, ['root', `"${DIR}/www"`])] : [])];
    return fc
      .tuple(...fixed)
      .chain((head) => fc.shuffledSubarray(once([...head, ...unique]), { minLength: once([...head, ...unique]).length }))
      .chain((children) =>
        fc
          .tuple(beforeTerm(eol), fc.array(gap(eol), { minLength: children.length + 1, maxLength: children.length + 1 }))
          .map(([bt, gaps]): GenItem => ({ kind: 'directive', words: [t('server')], seps: [], beforeTerm: bt, children, gaps })),
      );
  });
}

export interface NginxCase {
  site: GenFile;
  snippets: GenFile[];
  plan: { redirect: boolean; names: number[] } | null;
  ops: Array<{ kind: OpKind; target: number; variant: number }>;
}

function fileOf(eol: '\n' | '\r\n', items: fc.Arbitrary<GenItem[]>): fc.Arbitrary<GenFile> {
  return items.chain((list) => fc.array(gap(eol), { minLength: list.length + 1, maxLength: list.length + 1 }).map((gaps) => ({ eol, items: list, gaps })));
}

export const nginxCase: fc.Arbitrary<NginxCase> = fc.constantFrom<'\n' | '\r\n'>('\n', '\r\n').chain((eol) =>
  fc.integer({ min: 1, max: 3 }).chain((n) => {
    const servers = fc.tuple(...Array.from({ length: n }, (_, k) => server(eol, k)));
    const map = stmt(
      eol,
      ['map', '$host', '$fuzz_m'],
      fc.tuple(stmt(eol, ['default', '0']), stmt(eol, ['"~^a"', '1'])).map((a) => [...a]),
    );
    const upstream = stmt(
      eol,
      ['upstream', 'fuzz_up'],
      fc.tuple(stmt(eol, ['server', '127.0.0.1:9'])).map((a) => [...a]),
    );
    // a map block takes any two words a line: nginx tokenizes our generated words there, so where it accepts the
    // file each entry must be exactly two words to our lexer too (keys: no regex `~`, none of map's keywords)
    const key = word(eol).filter((w) => !/^["']?~/.test(w.raw) && !['default', 'hostnames', 'include', 'volatile'].includes(w.value) && w.value !== '');
    const words = fc
      .uniqueArray(key, { maxLength: 3, selector: (w) => w.value.toLowerCase() })
      .chain((keys) =>
        fc
          .tuple(
            ...keys.map((k) =>
              fc.tuple(sep(eol), beforeTerm(eol)).map(([sp, bt]): GenItem => ({ kind: 'directive', words: [k, t('1')], seps: [sp], beforeTerm: bt })),
            ),
          )
          .map((a) => [...a]),
      );
    const wordMap = fc.tuple(sep(eol), sep(eol), beforeTerm(eol), words).chain(([s1, s2, bt, kids]) =>
      fc.array(gap(eol), { minLength: kids.length + 1, maxLength: kids.length + 1 }).map((gaps): GenItem => ({
        kind: 'directive',
        words: [t('map'), t('$host'), t('$fuzz_words')],
        seps: [s1, s2],
        beforeTerm: bt,
        children: kids,
        gaps,
      })),
    );
    const extras = fc.array(fc.oneof(map, upstream, wordMap, comment), { maxLength: 3 });
    const site = fileOf(
      eol,
      fc.tuple(servers, extras).chain(([s, x]) => fc.shuffledSubarray([...s, ...dedupeTop(x)], { minLength: s.length + dedupeTop(x).length })),
    );
    // snippets hold what may repeat beside the server's own statements (a second charset would be "duplicate")
    const repeatable = (k: number): Array<fc.Arbitrary<GenItem>> => [
      headerValue.chain((v) => stmt(eol, ['add_header', `X-Fuzz-${k}i`, v])),
      stmt(eol, ['error_page', '500', '/500.html']),
    ];
    const snippets = fc.tuple(...Array.from({ length: n }, (_, k) => fileOf(eol, some(repeatable(k), 3))));
    const ops = fc.array(
      fc.record({
        kind: fc.constantFrom<OpKind>('insertAfter', 'insertAtBlockStart', 'insertBlockAfter', 'replaceArgs', 'remove'),
        target: fc.nat(),
        variant: fc.nat(),
      }),
      { minLength: 1, maxLength: 3 },
    );
    return fc.record({
      site,
      snippets: snippets.map((s) => [...s]),
      plan: fc.option(fc.record({ redirect: fc.boolean(), names: fc.array(fc.nat(), { minLength: 1, maxLength: 2 }) }), { freq: 5 }),
      ops,
    });
  }),
);

/** One map and one upstream at most: nginx refuses a duplicate upstream name or map variable. */
function dedupeTop(items: GenItem[]): GenItem[] {
  const seen = new Set<string>();
  return items.filter((i) => i.kind === 'comment' || (!seen.has(i.words[0]!.raw) && seen.add(i.words[0]!.raw)));
}

// -------------------------------------------------------------------------------------------------------------

export class NginxSandbox {
  readonly dir: string;
  readonly main: string;
  readonly site: string;
  private constructor(
    dir: string,
    readonly cert: string,
    readonly key: string,
  ) {
    this.dir = dir;
    this.main = path.join(dir, 'nginx.conf');
    this.site = path.join(dir, 'sites', 'site.conf');
  }

  static async create(): Promise<NginxSandbox> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-fuzz-'));
    for (const sub of ['sites', 'snippets', 'tmp', 'www', 'acme']) fs.mkdirSync(path.join(dir, sub));
    fs.writeFileSync(path.join(dir, 'nginx.conf'), nginxMainConfig(dir, path.join(dir, 'sites')));
    const cert = path.join(dir, 'fullchain.pem');
    const key = path.join(dir, 'privkey.pem');
    await selfSignedEcdsa({ key, cert, days: 2, subject: '/CN=fuzz' });
    return new NginxSandbox(dir, cert, key);
  }

  /** nginx -t on the sandbox: null when it accepts, its complaint otherwise. */
  async test(): Promise<string | null> {
    const r = await execa(BINARIES.nginx, ['-t', '-q', '-p', this.dir, '-e', path.join(this.dir, 'error.log'), '-c', this.main], { reject: false });
    return r.exitCode === 0 ? null : String(r.stderr).trim();
  }

  write(c: NginxCase): Map<string, string> {
    const files = new Map<string, string>();
    files.set(this.site, render(c.site).replaceAll(DIR, this.dir));
    c.snippets.forEach((s, k) => files.set(path.join(this.dir, 'snippets', `fuzz${k}.conf`), render(s).replaceAll(DIR, this.dir)));
    for (const f of fs.readdirSync(path.join(this.dir, 'snippets'))) fs.rmSync(path.join(this.dir, 'snippets', f));
    for (const [file, text] of files) fs.writeFileSync(file, text, 'latin1');
    clearConfigCache();
    return files;
  }

  apply(edits: readonly FileEdit[]): void {
    for (const e of edits) fs.writeFileSync(e.file, e.after, 'latin1');
    clearConfigCache();
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface NginxResult {
  outcome: 'input-refused-by-nginx' | 'checked';
  /** What the planners did: edited (nginx -t accepted, a second plan changed nothing), nothing to do, or refused. */
  plan?: string;
  /** What the generated splices did: accepted by nginx -t, or refused with a code. */
  splices?: string;
  /** The message of a refused plan. */
  why?: string;
}

const coded = (error: unknown, what: string, source: string): string => {
  if (error instanceof AutoSslError && error.code !== 'INTERNAL') return error.code;
  throw new FuzzFailure(`${what}: refusals are coded`, `${(error as Error).name}: ${(error as Error).message}`, source);
};

/** Statements valid where they are inserted, by the context of the place. */
function statementsFor(context: string, variant: number, k: number): NewStatement[] | null {
  const header: NewStatement = { name: 'add_header', args: [`X-Fuzz-Ins-${k}`, variant % 2 ? '"v;{}#"' : 'v', 'always'] };
  const loc: NewStatement = { name: 'location', args: [`/fuzz-ins-${k}/`], children: [{ name: 'return', args: ['204'] }] };
  switch (context) {
    case 'server':
      return [[header], [loc], [header, loc]][variant % 3]!;
    case 'location':
      return [header];
    case 'if':
      return [{ name: 'set', args: [`$fuzz_ins_${k}`, '"1"'] }];
    case 'http':
      return [
        [header],
        [
          {
            name: 'server',
            args: [],
            children: [
              { name: 'listen', args: ['127.0.0.1:80'] },
              { name: 'server_name', args: [`fuzz-new-${k}.test`] },
            ],
          },
        ],
      ][variant % 2]!;
    default:
      return null; // map, upstream, types: not ours to add to
  }
}

/** New arguments by directive name; `k` keeps addresses apart (two listens on one address:port are an error). */
const REPLACEABLE: Record<string, (k: number) => string[]> = {
  add_header: () => ['X-Fuzz-Rep', '"new; value"', 'always'],
  root: () => [`"${DIR}/other dir"`],
  index: () => ['index.php'],
  client_max_body_size: () => ['2m'],
  listen: (k) => [`127.0.0.1:${8081 + k}`],
  server_name: (k) => [`fuzz-rep${k}.test`, `www.fuzz-rep${k}.test`],
  charset: () => ['koi8-r'],
  expires: () => ['1h'],
};
const REMOVABLE = new Set([
  'add_header',
  'root',
  'index',
  'charset',
  'client_max_body_size',
  'access_log',
  'error_page',
  'location',
  'if',
  'content_by_lua_block',
  'access_by_lua_block',
  'include',
  'expires',
  'try_files',
  'listen',
  'server_name',
  'return',
]);

function contextOf(d: Directive | null): string {
  return d === null ? 'http' : d.name;
}

/** Runs one case in the sandbox; throws FuzzFailure when an invariant does not hold. */
export async function runNginxCase(box: NginxSandbox, c: NginxCase): Promise<NginxResult> {
  const files = box.write(c);
  const siteText = files.get(box.site)!;
  const result: NginxResult = { outcome: 'checked' };
  if ((await box.test()) !== null) return { ...result, outcome: 'input-refused-by-nginx' };
  for (const [file, text] of files) {
    let parsed: ParsedConfig;
    try {
      parsed = parseConfig(text, file);
    } catch (error) {
      throw new FuzzFailure('our lexer reads what nginx accepts', (error as Error).message, text);
    }
    for (const m of walkDirectives(parsed.children)) {
      if (m.name !== 'map' || !m.block) continue;
      const odd = m.block.children.find((e) => e.kind === 'directive' && e.words.length !== 2);
      if (odd?.kind === 'directive')
        throw new FuzzFailure(
          'our lexer splits words as nginx does',
          `nginx read each map entry as two words; we read ${JSON.stringify(odd.words.map((w) => w.raw))}`,
          text,
        );
    }
  }
  const restore = (): void => box.write(c) && undefined;

  if (c.plan) {
    // one certificate for one or two of the sites' names (names in separate blocks share it: defect 8a's shape)
    const all = [...new Set(siteText.match(/(?<![\w.-])fuzz\d\.test/g) ?? [])];
    const names = [...new Set(c.plan.names.map((i) => all[i % all.length]!))];
    const version: [number, number, number] = [1, 22, 1];
    const plan = (): FileEdit[] => {
      const challenge = planChallengeEdit(NginxTree.load(box.main), names, { fallbackWebroot: path.join(box.dir, 'acme') });
      box.apply(challenge.edits);
      const edit = newVhostEdit(names, c.plan!.redirect);
      edit.https._add('listen', '443 ssl http2');
      edit.https._add('ssl_certificate', box.cert);
      edit.https._add('ssl_certificate_key', box.key);
      const https = planHttpsEdit(NginxTree.load(box.main), edit, { nginxVersion: version });
      box.apply(https.edits);
      return [...challenge.edits, ...https.edits];
    };
    let edits: FileEdit[] | null = null;
    try {
      edits = plan();
    } catch (error) {
      result.plan = `refused:${coded(error, 'planners', siteText)}`;
      result.why = (error as Error).message;
    }
    if (edits && edits.length === 0) result.plan = 'no-change';
    if (edits?.length) {
      const complaint = await box.test();
      if (complaint)
        throw new FuzzFailure(
          'nginx -t accepts the planned edit',
          `${complaint}\n--- edited (JSON) ---\n${JSON.stringify(fs.readFileSync(box.site, 'latin1'))}`,
          siteText,
        );
      result.plan = 'edited';
      let again: FileEdit[];
      try {
        again = plan();
      } catch (error) {
        throw new FuzzFailure('planning again on the result works', `${(error as Error).message}`, siteText);
      }
      if (again.length)
        throw new FuzzFailure(
          'the planned edit is idempotent',
          `a second plan changed ${again.map((e) => `${e.file}: ${e.changes.join('; ')}`).join(' | ')}\n--- second result (JSON) ---\n${JSON.stringify(again[0]!.after)}`,
          siteText,
        );
    }
    restore();
  }

  // generated splices of statements valid where they go
  const config: ParsedConfig = parseConfig(siteText, box.site);
  const all = [...walkDirectives(config.children)];
  const splices: Splice[] = [];
  const targets: Directive[] = [];
  c.ops.forEach((op, k) => {
    const candidates = all.filter((d) => {
      if (targets.some((x) => x === d || (x.start <= d.start && d.end <= x.end) || (d.start <= x.start && x.end <= d.end))) return false;
      if (op.kind === 'insertAtBlockStart') return d.block !== undefined && d.block.verbatim === undefined && statementsFor(d.name, 0, k) !== null;
      if (op.kind === 'insertBlockAfter') return d.parent === null;
      if (op.kind === 'insertAfter') return statementsFor(contextOf(d.parent), 0, k) !== null;
      if (op.kind === 'replaceArgs') return d.name in REPLACEABLE;
      return REMOVABLE.has(d.name) && d.parent !== null;
    });
    if (candidates.length === 0) return;
    const d = candidates[op.target % candidates.length]!;
    targets.push(d);
    switch (op.kind) {
      case 'insertAfter':
        splices.push(insertAfter(config, d, statementsFor(contextOf(d.parent), op.variant, k)!, 'fuzz'));
        break;
      case 'insertAtBlockStart':
        splices.push(insertAtBlockStart(config, d, statementsFor(d.name, op.variant, k)!, 'fuzz'));
        break;
      case 'insertBlockAfter':
        splices.push(insertBlockAfter(config, d, statementsFor('http', 1, k)!, 'fuzz'));
        break;
      case 'replaceArgs':
        splices.push(
          replaceArgs(
            d,
            REPLACEABLE[d.name]!(k).map((a) => a.replaceAll(DIR, box.dir)),
            'fuzz',
          ),
        );
        break;
      case 'remove':
        splices.push(removeStatement(config, d, 'fuzz'));
        break;
    }
  });
  if (splices.length) {
    let after: string | null = null;
    try {
      after = spliceAndVerify(config, splices);
    } catch (error) {
      result.splices = `refused:${coded(error, 'splices', siteText)}`;
    }
    if (after !== null) {
      fs.writeFileSync(box.site, after, 'latin1');
      const complaint = await box.test();
      if (complaint)
        throw new FuzzFailure(
          'nginx -t accepts the spliced edit',
          `${complaint}\nops ${JSON.stringify(c.ops)}\n--- edited (JSON) ---\n${JSON.stringify(after)}`,
          siteText,
        );
      result.splices = 'accepted';
      restore();
    }
  }
  return result;
}
