/**
 * The config tree nginx actually loads: the main file, then every `include` (globs expanded and sorted the way
 * glob(3) does, relative paths resolved against the main file's directory, which is nginx's conf prefix),
 * and an index of the HTTP server blocks by name.
 *
 * Each file is read and parsed once and cached by (device, inode, size, mtime), so a second lookup in a tree of
 * 10,000 vhost files costs a stat per file and no parsing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { AutoSslError } from '../errors.js';
import { MAX_CONFIG_BYTES, readRegularFile } from '../fsutil.js';
import { parseConfig, argValues, type Directive, type Node, type ParsedConfig } from './parse.js';
import { parseListen, matchServerName, matchRank, type Listen } from './listen.js';
import { expandInclude, stateOf, statKey, type IncludeInputs } from './include-glob.js';

// callers that follow includes themselves name it here
export { expandInclude, type IncludeInputs } from './include-glob.js';

interface CacheEntry {
  key: string;
  config: ParsedConfig | null;
  error: AutoSslError | null;
}

const fileCache = new Map<string, CacheEntry>();

/** Reads and parses one file, or returns the cached parse when the file has not changed. */
export function readConfigFile(file: string): { config: ParsedConfig | null; error: AutoSslError | null } {
  const st = fs.statSync(file);
  const key = statKey(st);
  const cached = fileCache.get(file);
  if (cached && cached.key === key) return cached;
  // never readFileSync: `include /dev/zero;` would read forever and an included FIFO would block (see fsutil.ts)
  const source = readRegularFile(file, { maxBytes: MAX_CONFIG_BYTES, code: 'NGINX_PARSE_ERROR', what: 'nginx config file' }).data.toString('latin1');
  let entry: CacheEntry;
  try {
    entry = { key, config: parseConfig(source, file), error: null };
  } catch (error) {
    if (!(error instanceof AutoSslError)) throw error;
    entry = { key, config: null, error };
  }
  fileCache.set(file, entry);
  return entry;
}

/** A file's content from a dry run's overlay (parsed, not cached: it exists only in memory). */
function parseOverlay(file: string, source: string): { config: ParsedConfig | null; error: AutoSslError | null } {
  try {
    return { config: parseConfig(source, file), error: null };
  } catch (error) {
    if (!(error instanceof AutoSslError)) throw error;
    return { config: null, error };
  }
}

/** What makes two paths the same file (device and inode); the path itself when it cannot be stat'ed. */
function fileIdentity(file: string): string {
  try {
    const st = fs.statSync(file);
    return `${st.dev}:${st.ino}`;
  } catch {
    return file;
  }
}

export function clearConfigCache(): void {
  fileCache.clear();
  treeCache.clear();
}

/**
 * The last tree loaded from each main file, with what it was built from (every file read, every directory an
 * include glob listed, each with its stat key). A load whose inputs all stat the same returns it: a batch loads the
 * tree several times per domain, and rebuilding the index of thousands of server blocks each time kept the agent's
 * event loop busy for tens of ms per load. Trees are never modified after load, so sharing one is safe. Not used
 * when a symlink took part in an include glob (its target can change without any stat here changing).
 */
const treeCache = new Map<string, { tree: NginxTree; inputs: Map<string, string> }>();

/** One `server { }` block of the http context. */
export interface ServerBlock {
  file: string;
  config: ParsedConfig;
  directive: Directive;
  /** Position among all server blocks in load order (regex names are tried in this order). */
  order: number;
  names: string[];
  /** Its listens, those written in files it includes too. A block without any listens on *:80. */
  listens: Listen[];
  /** Files included from inside this block (snippets): their directives apply to it. */
  includes: string[];
  /** What each `include` inside the block expanded to. */
  includeTargets: Map<Directive, string[]>;
}

export interface ServerMatch {
  server: ServerBlock;
  rank: number;
}

export interface LoadOptions {
  /** nginx's conf prefix, where relative include paths start (default: the main file's directory). */
  prefix?: string;
  /** Files as they would be after edits not yet written (a dry run): read from here instead of the disk. */
  overlay?: ReadonlyMap<string, string>;
}

/** More file loads than this for one tree is a loop, not a config (10,000-vhost trees load each file once). */
const MAX_FILE_VISITS = 200_000;

export class NginxTree {
  readonly files = new Map<string, ParsedConfig>();
  readonly servers: ServerBlock[] = [];
  readonly errors: AutoSslError[] = [];
  /** Every listen in the tree by socket (address:port), for the rules on options unique per socket. */
  readonly listensBySocket = new Map<string, Listen[]>();

  private constructor(
    readonly mainFile: string,
    readonly prefix: string,
    private readonly overlay?: ReadonlyMap<string, string>,
  ) {}

  static load(mainFile: string, options: LoadOptions = {}): NginxTree {
    const main = path.resolve(mainFile);
    if (!fs.existsSync(main)) {
      throw new AutoSslError('NGINX_NOT_FOUND', `nginx main config ${main} does not exist.`, {
        hint: 'Set nginx.config in the autossl config to the file nginx loads (nginx -V shows --conf-path).',
      });
    }
    const prefix = options.prefix ?? path.dirname(main);
    const cacheKey = `${main}\0${prefix}`;
    if (!options.overlay) {
      const cached = treeCache.get(cacheKey);
      if (cached && [...cached.inputs].every(([p, key]) => stateOf(p) === key)) return cached.tree;
    }
    const tree = new NginxTree(main, prefix, options.overlay);
    const inputs = options.overlay ? undefined : new Map<string, string>();
    tree.inputs = inputs;
    tree.visitFile(main, [], new Set());
    tree.inputs = undefined;
    if (inputs && !tree.linkedInclude) treeCache.set(cacheKey, { tree, inputs });
    else treeCache.delete(cacheKey);
    return tree;
  }

  /** While loading for the tree cache: each file and listed directory read, with its stat key. */
  private inputs: Map<string, string> | undefined;
  private linkedInclude = false;

  private resolve(p: string): string {
    return path.isAbsolute(p) ? p : path.join(this.prefix, p);
  }

  /**
   * Set once an include loop is found (a.conf includes b.conf, which includes a.conf; or a file itself): nginx cannot
   * load this config (1.22 dies of SIGSEGV in `nginx -t`), so no edit is planned on it (locateServers refuses), and
   * exploring every path of a loop (files that each include a glob matching the others) would take factorial time.
   */
  loop: AutoSslError | null = null;
  private visits = 0;
  /** The files being included, outermost first, with their identities (the same file by another name is a loop). */
  private chain: Array<{ file: string; id: string }> = [];

  private visitFile(file: string, context: string[], stack: Set<string>, server?: ServerBlock): void {
    if (this.loop) return;
    const id = fileIdentity(file);
    if (stack.has(id) || ++this.visits > MAX_FILE_VISITS) {
      const from = this.chain.findIndex((c) => c.id === id);
      const files = from >= 0 ? [...this.chain.slice(from).map((c) => c.file), file] : [file];
      this.loop = new AutoSslError(
        'NGINX_PARSE_ERROR',
        from >= 0
          ? files.length === 2
            ? `${files[0]}: includes itself (include loop)`
            : `include loop across files: ${files.join(' includes ')}`
          : `${file}: the includes lead to more than ${MAX_FILE_VISITS} file loads (an include loop?)`,
        {
          hint: 'nginx cannot load a config whose includes loop: remove the include that leads back (nginx -t fails on it too). Nothing was changed.',
          details: { file, files },
        },
      );
      this.errors.push(this.loop);
      return;
    }
    let parsed;
    try {
      const pending = this.overlay?.get(file);
      parsed = pending === undefined ? readConfigFile(file) : parseOverlay(file, pending);
      if (this.inputs && 'key' in parsed) this.inputs.set(file, (parsed as CacheEntry).key);
    } catch (error) {
      this.inputs?.set(file, stateOf(file));
      this.errors.push(new AutoSslError('NGINX_PARSE_ERROR', `${file}: cannot be read (${(error as Error).message})`));
      return;
    }
    if (parsed.error) {
      this.errors.push(parsed.error);
      return;
    }
    const config = parsed.config!;
    this.files.set(file, config);
    stack.add(id);
    this.chain.push({ file, id });
    this.visitNodes(config, config.children, context, stack, server);
    this.chain.pop();
    stack.delete(id);
  }

  private visitNodes(config: ParsedConfig, nodes: readonly Node[], context: string[], stack: Set<string>, server?: ServerBlock): void {
    for (const node of nodes) {
      if (node.kind !== 'directive') continue;
      if (node.name === 'include') {
        const target = argValues(node)[0];
        if (target === undefined) continue;
        const listed: IncludeInputs = { dirs: [], linked: false };
        const files = expandInclude(this.resolve(target), this.inputs ? listed : undefined);
        for (const d of listed.dirs) this.inputs?.set(`${d.dir}/`, d.key);
        if (listed.linked) this.linkedInclude = true;
        server?.includeTargets.set(node, files);
        for (const f of files) {
          server?.includes.push(f);
          this.visitFile(f, context, stack, server);
        }
        continue;
      }
      if (server && node.name === 'listen') {
        this.addListen(server, parseListen(node));
        continue;
      }
      if (server && node.name === 'server_name') {
        // regexes keep their case: \D is not \d (the matcher is case-insensitive anyway)
        // nginx lowercases ASCII only (ngx_strlow): bytes >= 0x80 (read as latin1) stay as they are
        server.names.push(...argValues(node).map((n) => (n.startsWith('~') ? n : n.replace(/[A-Z]+/g, (c) => c.toLowerCase()))));
        continue;
      }
      if (!node.block || node.block.verbatim !== undefined) continue;
      if (node.name === 'server' && context[context.length - 1] === 'http' && !server) {
        const block: ServerBlock = {
          file: config.file,
          config,
          directive: node,
          order: this.servers.length,
          names: [],
          listens: [],
          includes: [],
          includeTargets: new Map(),
        };
        this.servers.push(block);
        this.visitNodes(config, node.block.children, [...context, 'server'], stack, block);
        if (block.listens.length === 0) {
          // nginx's default for a server without listen; it is not written anywhere, so it has no directive.
          this.addListen(block, { ...parseListen({ ...node, words: node.words.slice(0, 1) }), directive: node, implicit: true });
        }
        continue;
      }
      // listen/server_name inside a location or if do not belong to the server (nginx rejects them there)
      if (server) continue;
      this.visitNodes(config, node.block.children, [...context, node.name], stack, server);
    }
  }

  private addListen(server: ServerBlock, listen: Listen): void {
    server.listens.push(listen);
    const list = this.listensBySocket.get(listen.socket);
    if (list) list.push(listen);
    else this.listensBySocket.set(listen.socket, [listen]);
  }

  /**
   * The server blocks nginx would pick for `host`, grouped by whether they serve it over plain HTTP on port 80
   * or over TLS. Within each group only the best-ranked match is returned (nginx picks per listen socket;
   * blocks tied at the best rank are all returned so the caller can refuse an ambiguity).
   */
  findServers(host: string): { http: ServerBlock[]; https: ServerBlock[] } {
    const best = (predicate: (l: Listen) => boolean): ServerBlock[] => {
      let rank = -1;
      let out: ServerBlock[] = [];
      let regexOrder = Infinity;
      for (const server of this.servers) {
        if (!server.listens.some(predicate)) continue;
        let serverRank = -1;
        for (const name of server.names) {
          const m = matchServerName(name, host);
          if (m) serverRank = Math.max(serverRank, matchRank(m));
        }
        if (serverRank < 0) continue;
        // for regex names the first block in load order wins
        if (serverRank === 0 && rank === 0) {
          if (server.order < regexOrder) {
            out = [server];
            regexOrder = server.order;
          }
          continue;
        }
        if (out.some((s) => s.directive === server.directive)) continue; // the same file included twice
        if (serverRank > rank) {
          rank = serverRank;
          out = [server];
          regexOrder = server.order;
        } else if (serverRank === rank) out.push(server);
      }
      return out;
    };
    return {
      http: best((l) => !l.ssl && l.port === 80),
      https: best((l) => l.ssl),
    };
  }
}
